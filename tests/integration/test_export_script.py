"""export-script end to end: the exported bash script, run with plain bash, builds the demo
ISO and boots it in QEMU to the login prompt (its own boottest stage), and what it builds is
what livecd-tui builds: the same files in every stage, byte for byte, except the initrd's
cpio headers (GNU cpio numbers inodes and counts directory links its own way)."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import EPOCH, PROFILES, livecd, write_profile

#: Files of each stage that must be the same bytes from the script and from the tool.
SAME_BYTES = [
    "kernel/vmlinuz",
    "kernel/release",
    "system/system.squashfs",
    "bootloader/boot/grub/grub.cfg",
    "bootloader/boot/grub/i386-pc/eltorito.img",
    "bootloader/EFI/BOOT/BOOTX64.EFI",
    "bootloader/boot/grub/efi.img",
    "initrd/tree/etc/livecd.conf",
    "initrd/tree/init",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The demo exported and run with bash, and the same profile built by livecd-tui."""
    tmp = tmp_path_factory.mktemp("export")
    profile = write_profile(
        tmp / "demo.toml", PROFILES / "demo.toml", "[boottest]\nenabled = true\n"
    )
    script = tmp / "build.sh"
    result = livecd("export-script", profile, "--work-dir", tmp / "script-work", "-o", script)
    assert result.code == 0, result.output
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    run = subprocess.run(
        ["bash", str(script)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=900,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    tool = livecd("build", profile, "--work-dir", tmp / "tool-work")
    assert tool.code == 0, tool.output
    return tmp / "script-work", tmp / "tool-work", output


def test_every_action_is_real_bash(tmp_path: Path) -> None:
    """No step of any shipped profile is left to livecd-tui in the script."""
    for name in ("demo", "modern", "classic"):
        script = tmp_path / f"{name}.sh"
        result = livecd("export-script", name, "--work-dir", tmp_path / name, "-o", script)
        assert result.code == 0, result.output
        text = script.read_text()
        assert "(done by livecd-tui itself)" not in text, name
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_script_builds_an_iso_that_boots(built: tuple[Path, Path, str]) -> None:
    work, _, output = built
    iso = work / "out" / "demo.iso"
    assert iso.is_file()
    line = (work / "out" / "demo.iso.sha256").read_text()
    assert line == f"{hashlib.sha256(iso.read_bytes()).hexdigest()}  demo.iso\n"
    assert "livecd: switching to the live system" in output
    assert "live system up, root is overlay" in output
    assert "== found 'login:': success" in output
    assert not (work / "stages" / "boottest.partial").exists()


def test_the_script_builds_what_the_tool_builds(built: tuple[Path, Path, str]) -> None:
    script_work, tool_work, _ = built
    for rel in SAME_BYTES:
        a = (script_work / "stages" / rel).read_bytes()
        b = (tool_work / "stages" / rel).read_bytes()
        assert a == b, rel
    # The initrd: the same entries with the same modes, owners, times and contents.
    listings = []
    for work in (script_work, tool_work):
        archive = gzip.decompress((work / "stages" / "initrd" / "initrd.img").read_bytes())
        text = subprocess.run(
            ["cpio", "-tv", "--quiet"], input=archive, capture_output=True, check=True
        ).stdout.decode()
        # Columns: mode, links, owner, group, size, date, name; the link count differs.
        listings.append([(f[0], *f[2:]) for f in map(str.split, text.splitlines())])
        assert len(archive) > 1_000_000
    assert listings[0] == listings[1]
    assert _tree(script_work / "stages/initrd/tree") == _tree(tool_work / "stages/initrd/tree")


def _tree(top: Path) -> dict[str, str]:
    """Each file's digest and each link's target, by path (device nodes left out: the
    script mknods them in the tree, livecd-tui writes them straight into the archive)."""
    found = {}
    for path in sorted(top.rglob("*")):
        rel = str(path.relative_to(top))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[rel] = "dir"
    return found
