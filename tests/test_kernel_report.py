"""The kernel report behind ``livecd-tui check`` and the TUI's kernel screen: where the
config comes from for a prebuilt kernel and a tree, the partial check without a config,
and the purpose presets reaching the warnings."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from livecd_tui.build import Build
from livecd_tui.checks import kernel_items, kernel_report
from livecd_tui.kernel import kconfig
from livecd_tui.profile import Profile, load_profile
from livecd_tui.stages.kernel import driver_groups, requirements_for

RELEASE = "6.1.99-fake"


def _bzimage(release: str = RELEASE) -> bytes:
    """A bzImage header with a version string and no config inside."""
    data = bytearray(512 * 5)
    data[0x1F1] = 4
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, 0x020F)
    version = f"{release} (test@host) #1 SMP\0".encode()
    struct.pack_into("<H", data, 0x20E, 0x400 - 0x200)
    data[0x400 : 0x400 + len(version)] = version
    return bytes(data) + gzip.compress(b"no config in here" * 10)


def _root(tmp_path: Path, builtin: str, dep: str) -> tuple[Path, Path]:
    image = tmp_path / "root" / "boot" / f"vmlinuz-{RELEASE}"
    image.parent.mkdir(parents=True)
    image.write_bytes(_bzimage())
    mods = tmp_path / "root" / "lib" / "modules" / RELEASE
    mods.mkdir(parents=True)
    (mods / "modules.builtin").write_text(builtin)
    (mods / "modules.dep").write_text(dep)
    return image, mods


def _profile(tmp_path: Path, body: str) -> Profile:
    path = tmp_path / "p.toml"
    path.write_text(body)
    return load_profile(path)


def test_prebuilt_without_config_is_a_partial_check(tmp_path: Path) -> None:
    image, mods = _root(
        tmp_path,
        "kernel/fs/isofs/isofs.ko\n",
        "kernel/drivers/block/loop.ko:\nkernel/fs/squashfs/squashfs.ko:\n",
    )
    profile = _profile(
        tmp_path,
        f'[kernel]\nimage = "{image}"\nmodules_dir = "{mods}"\n'
        '[kernel.drivers]\npreset = "minimal"\n',
    )
    report = kernel_report(profile)
    assert report.partial and report.source is None and report.tree is None
    assert report.release == RELEASE
    assert "partial check from modules.builtin and modules.dep" in report.headline()
    by = {f.requirement.symbol: f for f in report.findings}
    assert by["ISO9660_FS"].state == "ok" and by["BLK_DEV_LOOP"].state == "module"
    assert "DEVTMPFS" not in by, "a plain option cannot be judged from module lists"
    assert "not checked: " in report.findings[0].message
    assert by["BLK_DEV_SR"].state == "missing"
    lines = [item.message for item in kernel_items(profile)]
    assert "partial" in lines[0]


def test_prebuilt_with_no_config_and_no_modules_says_so(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(_bzimage())
    mods = tmp_path / "empty-mods"
    mods.mkdir()
    profile = _profile(tmp_path, f'[kernel]\nimage = "{image}"\nmodules_dir = "{mods}"\n')
    report = kernel_report(profile)
    assert report.error and "modules.builtin" in report.error
    assert not report.findings


def test_prebuilt_config_next_to_the_image_wins(tmp_path: Path) -> None:
    image, mods = _root(tmp_path, "", "")
    config = image.parent / f"config-{RELEASE}"
    profile = _profile(
        tmp_path,
        f'[kernel]\nimage = "{image}"\nmodules_dir = "{mods}"\n'
        '[kernel.drivers]\npreset = "desktop"\n',
    )
    reqs = requirements_for(Build.for_profile(profile))
    config.write_text("".join(f"CONFIG_{r.symbol}=y\n" for r in reqs))
    report = kernel_report(profile)
    assert report.source == str(config) and not report.partial
    assert not report.problems
    assert report.groups == ("usb", "network", "sound")
    assert {f.requirement.symbol for f in report.warnings} >= {"SND", "E1000", "USB_STORAGE"}
    assert not report.fixable() or report.tree is None


def test_proc_config_gz_for_the_running_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "config.gz"
    fake.write_bytes(gzip.compress(b"CONFIG_FROM_PROC=y\n"))
    real_open = gzip.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        return real_open(fake if str(path) == "/proc/config.gz" else path, *args, **kwargs)

    monkeypatch.setattr(kconfig.gzip, "open", fake_open)
    monkeypatch.setattr(kconfig.os, "uname", lambda: SimpleNamespace(release="6.1.77-running"))
    found = kconfig.find_config(None, "6.1.77-running")
    assert found == ("/proc/config.gz", "CONFIG_FROM_PROC=y\n")
    assert kconfig.find_config(None, "6.1.78-other") is None


def test_tree_report_reads_its_config_and_version(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 3\n")
    profile = _profile(tmp_path, f'[kernel]\nsource = "tree"\ntree = "{tree}"\n')
    missing = kernel_report(profile)
    assert missing.error and ".config" in missing.error
    assert kernel_items(profile)[0].key == "kernel.tree"
    (tree / ".config").write_text("CONFIG_BLK_DEV_INITRD=y\n")
    report = kernel_report(profile)
    assert report.tree == tree and report.release == "6.12.3"
    assert report.source == str(tree / ".config")
    assert report.problems and report.fixable()
    items = [item.message for item in kernel_items(profile)]
    assert any("kernel-fix" in line for line in items)


@pytest.mark.parametrize(
    ("preset", "groups"),
    [
        ("minimal", ()),
        ("rescue", ("disk", "usb", "filesystems")),
        ("desktop", ("usb", "network", "sound")),
        ("custom", ("disk", "usb")),
    ],
)
def test_presets_choose_the_groups(tmp_path: Path, preset: str, groups: tuple[str, ...]) -> None:
    profile = _profile(tmp_path, f'[kernel.drivers]\npreset = "{preset}"\nsound = false\n')
    assert driver_groups(profile) == groups
