"""Persistence on the build side: the options, what the initrd and the menu get, the kernel
symbols it needs, and `livecd-tui persistence-image` (with a fake runner, and once for real).
The boots that prove it are in tests/integration/test_persistence.py."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from livecd_tui import persistence
from livecd_tui.build import Build
from livecd_tui.kernel import kconfig
from livecd_tui.profile import ProfileError, load_profile
from livecd_tui.stages.bootloader import menu_entries
from livecd_tui.stages.cdmodules import wanted_modules

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "profiles" / "demo.toml"
CLI = [sys.executable, "-m", "livecd_tui.cli"]


def profile_with(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(f'extends = "{DEMO}"\n{body}')
    return path


def build_with(tmp_path: Path, body: str) -> Build:
    return Build.for_profile(load_profile(profile_with(tmp_path, body)), tmp_path / "work")


def test_the_menu_always_has_an_entry_without_persistence(tmp_path: Path) -> None:
    assert "nopersist" not in menu_entries(build_with(tmp_path, ""))
    on = build_with(tmp_path, '[writable]\npersistence = "partition"\n')
    assert menu_entries(on) == ["normal", "toram", "debug", "nopersist"]
    first = build_with(
        tmp_path,
        '[writable]\npersistence = "file"\n[bootloader]\nentries = ["nopersist", "normal"]\n',
    )
    assert menu_entries(first) == ["nopersist", "normal"]


def test_the_initrd_gets_the_stores_drivers_and_the_conf(tmp_path: Path) -> None:
    from livecd_tui.stages import initrd

    off = build_with(tmp_path, "")
    assert "ext4" not in wanted_modules(off)[1]
    part = build_with(
        tmp_path, '[writable]\npersistence = "partition"\npersistence_label = "MY-STORE"\n'
    )
    assert {"ext4", "virtio_blk", "sd_mod"} <= set(wanted_modules(part)[1])
    assert "vfat" not in wanted_modules(part)[1]
    file = build_with(tmp_path, '[writable]\npersistence = "file"\n')
    assert {"ext4", "vfat", "nls_cp437"} <= set(wanted_modules(file)[1])
    conf = dict(
        shlex.split(line)[0].split("=", 1)
        for line in initrd.livecd_conf(part, []).splitlines()
        if not line.startswith("#")
    )
    assert conf["LIVECD_PERSISTENCE"] == "partition"
    assert conf["LIVECD_PERSISTENCE_LABEL"] == "MY-STORE"
    assert conf["LIVECD_PERSISTENCE_FILE"] == "/livecd/persistence.img"


def test_the_kernel_must_have_an_ext_driver_and_for_a_file_fat() -> None:
    def needs(persistence: str) -> dict[str, kconfig.Requirement]:
        reqs = kconfig.requirements(
            initrd_format="initramfs",
            writable="overlay",
            squashfs_compressor="xz",
            initrd_compression="gzip",
            media=["cdrom"],
            uefi=False,
            initrd_size_mib=16,
            persistence=persistence,
        )
        return {r.symbol: r for r in reqs}

    assert "EXT4_FS" not in needs("off") and "VFAT_FS" not in needs("off")
    part = needs("partition")
    assert part["EXT4_FS"].any_of == (("EXT4_FS",), ("EXT2_FS",)), "ext2 alone will do"
    assert "VFAT_FS" not in part
    assert {"EXT4_FS", "VFAT_FS", "NLS_CODEPAGE_437"} <= set(needs("file"))
    with pytest.raises(ValueError, match="persistence"):
        needs("cloud")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('persistence = "usb"', "writable.persistence"),
        ('persistence = "file"\npersistence_file = "../escape.img"', "writable.persistence_file"),
        ('persistence = "file"\npersistence_file = "/abs.img"', "writable.persistence_file"),
        ('persistence = "file"\npersistence_file = "a/./b.img"', "writable.persistence_file"),
        (
            'persistence = "partition"\npersistence_label = "has space"',
            "writable.persistence_label",
        ),
        (
            'persistence = "partition"\npersistence_label = "SEVENTEEN-CHARS-X"',
            "writable.persistence_label",
        ),
        ('persistence = "partition"\npersistence_label = ""', "writable.persistence_label"),
    ],
)
def test_bad_persistence_values_are_refused_at_their_line(
    tmp_path: Path, body: str, where: str
) -> None:
    path = profile_with(tmp_path, f"[writable]\n{body}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"{path}:" in str(err.value) and where in str(err.value)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16M", 16 << 20),
        ("1G", 1 << 30),
        ("512m", 512 << 20),
        ("2GiB", 2 << 30),
        (str(32 << 20), 32 << 20),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert persistence.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1k", "15M", "-1G", "1.5G", "lots", "0"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(persistence.PersistenceError, match="--size"):
        persistence.parse_size(text)


class Recorder:
    def __init__(self, fail_on: str = "") -> None:
        self.ran: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: Sequence[str]) -> None:
        self.ran.append(list(argv))
        if self.fail_on and self.fail_on in argv:
            raise persistence.PersistenceError(f"{argv[0]} failed")


def test_a_luks_store_gets_its_key_from_a_file_and_a_failure_leaves_nothing(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("correct horse")
    run = Recorder(fail_on="reencrypt")
    spec = persistence.ImageSpec(tmp_path / "s.img", 32 << 20, "LIVECD-DATA", key_file=key)
    with pytest.raises(persistence.PersistenceError):
        persistence.make_image(spec, run)
    assert [argv[:2] for argv in run.ran] == [["mkfs.ext4", "-q"], ["cryptsetup", "reencrypt"]]
    assert run.ran[0][-1] == f"{(32 - 16) << 10}k", "the filesystem leaves LUKS its room"
    assert all("correct horse" not in " ".join(argv) for argv in run.ran)
    assert "--label" in run.ran[1] and "LIVECD-DATA" in run.ran[1]
    assert not spec.path.exists(), "a half-made store is removed"


def test_an_existing_file_is_never_touched(tmp_path: Path) -> None:
    precious = tmp_path / "disk.img"
    precious.write_bytes(b"the user's data")
    run = Recorder()
    with pytest.raises(persistence.PersistenceError, match="exists"):
        persistence.make_image(persistence.ImageSpec(precious, 32 << 20, "X"), run)
    assert precious.read_bytes() == b"the user's data" and run.ran == []


def test_the_cli_makes_a_labelled_ext4_store(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path, '[writable]\npersistence = "partition"\npersistence_label = "MY-STORE"\n'
    )
    out = tmp_path / "store.img"
    run = subprocess.run(
        [*CLI, "persistence-image", str(profile), str(out), "--size", "20M"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.stat().st_size == 20 << 20
    blkid = subprocess.run(
        ["blkid", "-o", "export", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "LABEL=MY-STORE" in blkid.splitlines() and "TYPE=ext4" in blkid.splitlines()
    again = subprocess.run(
        [*CLI, "persistence-image", str(profile), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert again.returncode == 1 and "exists" in again.stderr
    off = subprocess.run(
        [*CLI, "persistence-image", str(DEMO), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert off.returncode == 2 and "writable.persistence: is off" in off.stderr
    assert "Traceback" not in again.stderr + off.stderr


def test_check_says_what_the_live_system_looks_for_and_what_the_root_lacks(tmp_path: Path) -> None:
    from livecd_tui.checks import persistence_items

    assert persistence_items(load_profile(DEMO)) == []
    part = persistence_items(
        load_profile(profile_with(tmp_path, '[writable]\npersistence = "file"\n'))
    )
    assert len(part) == 1 and part[0].note and "livecd/persistence.img" in part[0].message
    root = tmp_path / "root"
    (root / "usr" / "sbin").mkdir(parents=True)
    body = (
        f'[system]\nsource = "root"\nroot = "{root}"\n'
        '[writable]\npersistence = "partition"\npersistence_encrypted = true\n'
    )
    lacking = persistence_items(load_profile(profile_with(tmp_path, body)))[1]
    assert not lacking.ok and lacking.key == "writable.persistence_encrypted"
    assert "cryptsetup missing" in lacking.message
    (root / "usr" / "sbin" / "cryptsetup").write_text("")
    found = persistence_items(load_profile(profile_with(tmp_path, body)))[1]
    assert found.ok and found.message.endswith("usr/sbin/cryptsetup")
