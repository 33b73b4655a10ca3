"""The modern method end to end: initramfs + overlay + GRUB 2 (and isolinux) with Debian's
kernel, booted in QEMU as a BIOS CD, a UEFI CD and a BIOS USB disk."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.disk_images import flip_a_byte_of
from tests.integration.helpers import PROFILES, livecd, serial_log, write_profile


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo profile built once (boot test included: BIOS CD). Variants extend it and
    share its work dir and its ISO path, so they re-run only the stages they change."""
    tmp = tmp_path_factory.mktemp("demo")
    profile = write_profile(tmp / "demo.toml", PROFILES / "demo.toml",
                            '[iso]\noutput = "out/demo.iso"\n')
    work = tmp / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == ["preflight", "kernel", "system", "writable", "initrd",
                            "bootloader", "iso", "boottest"]
    return profile, work


def test_demo_iso_boots_bios_cd_into_overlay(demo: tuple[Path, Path]) -> None:
    profile, work = demo
    iso = profile.parent / "out" / "demo.iso"
    assert iso.is_file()
    line = (iso.parent / "demo.iso.sha256").read_text()
    assert line.split()[0] == hashlib.sha256(iso.read_bytes()).hexdigest()
    log = serial_log(work)
    assert "livecd: switching to the live system" in log
    assert "live system up, root is overlay" in log
    assert "login:" in log


@pytest.mark.parametrize(("firmware", "medium"), [("uefi", "cdrom"), ("bios", "usb")])
def test_demo_iso_boots_uefi_and_usb(demo: tuple[Path, Path], firmware: str,
                                     medium: str) -> None:
    profile, work = demo
    variant = write_profile(profile.with_name(f"{firmware}-{medium}.toml"), profile,
                            f'[boottest]\nfirmware = "{firmware}"\nmedium = "{medium}"\n')
    result = livecd("build", variant, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    assert result.ran() == ["boottest"]
    log = serial_log(work)
    assert "live system up, root is overlay" in log and "login:" in log


def test_changing_the_menu_title_rebuilds_only_bootloader_and_iso(
        demo: tuple[Path, Path]) -> None:
    profile, work = demo
    variant = write_profile(profile.with_name("title.toml"), profile,
                            '[bootloader]\ntitle = "Another title"\n')
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == ["bootloader", "iso", "boottest"]
    again = livecd("build", variant, "--work-dir", work)
    assert again.code == 0 and again.ran() == []


def test_wrong_marker_reaches_the_rescue_shell(demo: tuple[Path, Path]) -> None:
    """An ISO whose LABEL does not hold the initrd's marker: the init must say what it saw
    and open a rescue shell instead of panicking."""
    profile, work = demo
    variant = write_profile(profile.with_name("wrong.toml"), profile,
                            '[iso]\nmarker = "some other disc"\n'
                            '[boottest]\nmarker = "livecd: rescue shell"\ntimeout = 300\n'
                            '[initrd]\nwait = 3\n')
    # Only the ISO is rebuilt: its LABEL changes, the initrd keeps the old marker.
    result = livecd("build", variant, "--work-dir", work, "--only", "iso,boottest")
    assert result.code == 0, result.output
    log = serial_log(work)
    assert "livecd: rescue shell" in log
    assert "sr0" in log, "the rescue report lists the block devices it saw"


def test_check_entry_passes_then_names_a_flipped_byte(demo: tuple[Path, Path]) -> None:
    """The check entry (made the default by putting it first): the built ISO passes the
    media check and boots to login; a copy with one byte of the squashfs flipped stops in
    the rescue shell, naming the squashfs."""
    profile, work = demo
    variant = write_profile(profile.with_name("check.toml"), profile,
                            '[bootloader]\nentries = ["check", "normal"]\n'
                            '[iso]\noutput = "out/check.iso"\n')
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == ["bootloader", "iso", "boottest"], "the sums were in the initrd"
    conf = (work / "stages" / "initrd" / "tree" / "etc" / "livecd.conf").read_text()
    squashfs = work / "stages" / "system" / "system.squashfs"
    assert (f"LIVECD_SUMS='{hashlib.sha256(squashfs.read_bytes()).hexdigest()}  "
            "/live/system.squashfs'\n") in conf
    log = serial_log(work)
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert "livecd: media check: passed, the medium is intact" in log
    assert "livecd: switching to the live system" in log and "login:" in log

    damaged = write_profile(profile.with_name("damaged.toml"), variant,
                            '[iso]\noutput = "out/damaged.iso"\n'
                            '[boottest]\nmarker = "livecd: rescue shell"\ntimeout = 300\n')
    iso = profile.parent / "out" / "damaged.iso"
    shutil.copyfile(profile.parent / "out" / "check.iso", iso)
    flip_a_byte_of(iso, "/live/system.squashfs")
    result = livecd("build", damaged, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    log = serial_log(work)
    assert ("livecd: media check: /live/system.squashfs FAILED (damaged: its sha256 is not "
            "the one recorded at build time)") in log
    assert "livecd: boot failed: media check failed, damaged: /live/system.squashfs" in log
    assert "livecd: rescue shell" in log
    assert "passed, the medium is intact" not in log
    assert "switching to the live system" not in log


def test_isolinux_variant_boots(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "isolinux.toml", PROFILES / "demo.toml",
                            '[bootloader]\ntype = "isolinux"\n')
    result = livecd("build", profile, "--work-dir", tmp_path / "work")
    assert result.code == 0, result.output
    assert "live system up, root is overlay" in serial_log(tmp_path / "work")


def test_two_builds_give_the_same_iso(tmp_path: Path) -> None:
    """Same profile, same inputs, same SOURCE_DATE_EPOCH, two work dirs: same bytes."""
    profile = write_profile(tmp_path / "repro.toml", PROFILES / "demo.toml",
                            "[boottest]\nenabled = false\n")
    sums = []
    for work in ("one", "two"):
        result = livecd("build", profile, "--work-dir", tmp_path / work)
        assert result.code == 0, result.output
        sums.append((tmp_path / work / "out" / "repro.iso.sha256").read_text().split()[0])
    assert sums[0] == sums[1]


def test_initrd_with_dynamic_programs_boots(tmp_path: Path) -> None:
    """bash as the initrd's shell and udev as its device manager: dynamic programs whose
    libraries come from the ELF files, laid out as on this merged-/usr system."""
    profile = write_profile(tmp_path / "dyn.toml", PROFILES / "demo.toml",
                            '[initrd]\nshell = "bash"\ndevice_manager = "udev"\n')
    result = livecd("build", profile, "--work-dir", tmp_path / "work")
    assert result.code == 0, result.output[-4000:]
    log = serial_log(tmp_path / "work")
    assert "livecd: switching to the live system" in log and "login:" in log


def test_the_articles_toolbox_boots_without_busybox(demo: tuple[Path, Path]) -> None:
    """initrd.toolbox = "system": the initramfs holds the system's bash, mount,
    switch_root, insmod and coreutils with their libraries, no busybox, and boots."""
    profile, work = demo
    variant = write_profile(profile.with_name("system-toolbox.toml"), profile,
                            '[initrd]\ntoolbox = "system"\n')
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran()[:1] == ["initrd"] and "boottest" in result.ran()
    tree = work / "stages" / "initrd" / "tree"
    assert not list(tree.rglob("busybox")), "no busybox in the initrd"
    assert (tree / "usr" / "sbin" / "switch_root").is_file()
    assert (tree / "bin" / "sh").resolve().name == "bash"
    log = serial_log(work)
    assert "livecd: switching to the live system" in log
    assert "live system up, root is overlay" in log and "login:" in log
