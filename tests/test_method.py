"""The method object (livecd_tui.method): one class per choice, answering the stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecd_tui import bootconf, layout, method, tools
from livecd_tui.build import Build
from livecd_tui.options import OPTIONS
from livecd_tui.profile import new_profile


@pytest.mark.parametrize(
    ("key", "classes"),
    [
        ("initrd.format", method.INITRD_FORMATS),
        ("writable.strategy", method.WRITABLE_STRATEGIES),
        ("bootloader.type", method.BOOT_LOADERS),
    ],
)
def test_every_choice_has_its_class(key: str, classes: dict[str, type]) -> None:
    """A choice added to options.py without its class (or the reverse) fails here, not in
    the middle of a build."""
    assert set(classes) == set(OPTIONS[key].choices)
    assert all(cls.name == name for name, cls in classes.items())


def test_every_loader_has_its_tools() -> None:
    assert set(tools.LOADER_TOOLS) == set(method.BOOT_LOADERS.values())


def test_modern_and_classic_answer_as_the_method_says() -> None:
    profile = new_profile()
    build = Build(profile=profile, work=Path("/nonexistent"))
    modern = build.method
    assert (modern.initrd.script, modern.initrd.switch_program) == ("init", "switch_root")
    assert not modern.initrd.ram_disk and modern.initrd.kernel_words() == []
    assert modern.writable.modules == ("overlay",) and not modern.writable.linked_root
    assert modern.writable.archive_name() == "" and modern.writable.archive_file() == ""
    assert modern.writable.archive_dirs() == [] == modern.writable.empty_dirs()
    assert modern.loader.uefi and modern.loader.usb
    assert modern.loader.config_file == layout.GRUB_CFG

    profile.set("initrd.format", "classic")
    profile.set("initrd.size_mib", 16)
    profile.set("writable.strategy", "classic")
    profile.set("writable.archive_compression", "xz")
    profile.set("bootloader.type", "grub-legacy")
    classic = build.method  # asked again: the profile's values now, nothing cached
    assert isinstance(classic.initrd, method.Ext2RamDisk)
    assert (classic.initrd.script, classic.initrd.switch_program) == ("linuxrc", "pivot_root")
    assert classic.initrd.ram_disk and classic.initrd.kernel_words() == ["ramdisk_size=16384"]
    assert classic.writable.linked_root and classic.writable.modules == ()
    assert classic.writable.archive_file() == "/live/etc.tar.xz"
    assert classic.writable.archive_dirs() == ["etc"]
    assert classic.writable.empty_dirs() == ["home", "root", "var"]
    assert not classic.loader.uefi and not classic.loader.usb
    assert classic.loader.config_file == "/boot/grub/menu.lst"


def test_overlay_packs_an_archive_only_for_overrides(tmp_path: Path) -> None:
    profile = new_profile()
    profile.set("writable.overrides", str(tmp_path))
    writable = method.Method.of(profile).writable
    assert writable.archive_compression() == "gzip"
    assert writable.archive_file() == layout.live_file("etc.tar.gz")
    assert writable.archive_dirs() == []


@pytest.mark.parametrize("loader", list(method.BOOT_LOADERS))
def test_each_loader_writes_its_menu_and_its_iso(loader: str) -> None:
    profile = new_profile()
    profile.set("bootloader.type", loader)
    if loader == "grub-legacy":
        profile.set("iso.tool", "genisoimage")
        profile.set("iso.hybrid", False)
    chosen = method.Method.of(profile).loader
    text = chosen.config_text(bootconf.Menu("Live", 5, ["normal"], "", False, 115200))
    assert layout.KERNEL in text and layout.INITRD in text
    argv = chosen.iso_argv(Path("/t"), Path("/o.iso"), 0)
    assert argv[-1] == "/t" and "/o.iso" in argv
    assert bootconf.MKISOFS_TOOLS[profile["iso.tool"]][0] == argv[0]
