"""The modern method end to end: initramfs + overlay + GRUB 2 (and isolinux) with Debian's
kernel, booted in QEMU through the tool in every cell of the boot matrix (BIOS and UEFI, CD
and USB disk; isolinux as a CD and a USB disk), each boot's serial log proving which
firmware, loader and medium were used; the toram and debug entries, and the rescue shell."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from tests.disk_images import flip_a_byte_of
from tests.integration.helpers import (
    PROFILES,
    Booted,
    booted_with,
    livecd,
    serial_log,
    write_profile,
)
from tests.integration.serial import booted, log_in


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo profile built once (boot test included: BIOS CD). Variants extend it and
    share its work dir and its ISO path, so they re-run only the stages they change."""
    tmp = tmp_path_factory.mktemp("demo")
    profile = write_profile(
        tmp / "demo.toml", PROFILES / "demo.toml", '[iso]\noutput = "out/demo.iso"\n'
    )
    work = tmp / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == [
        "preflight",
        "kernel",
        "system",
        "writable",
        "initrd",
        "bootloader",
        "iso",
        "boottest",
    ]
    return profile, work


def test_demo_iso_boots_bios_cd_into_overlay(demo: tuple[Path, Path]) -> None:
    profile, work = demo
    iso = profile.parent / "out" / "demo.iso"
    assert iso.is_file()
    line = (iso.parent / "demo.iso.sha256").read_text()
    assert line.split()[0] == hashlib.sha256(iso.read_bytes()).hexdigest()
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub2-pc", "cd")
    assert "livecd: switching to the live system" in log
    assert "live system up, root is overlay" in log
    assert "login:" in log


@pytest.mark.parametrize(
    ("firmware", "medium"), [("uefi", "cdrom"), ("bios", "usb"), ("uefi", "usb")]
)
def test_demo_iso_boots_uefi_and_usb(demo: tuple[Path, Path], firmware: str, medium: str) -> None:
    """The same hybrid ISO in the other cells of the matrix: only the boot test runs."""
    profile, work = demo
    variant = write_profile(
        profile.with_name(f"{firmware}-{medium}.toml"),
        profile,
        f'[boottest]\nfirmware = "{firmware}"\nmedium = "{medium}"\n',
    )
    result = livecd("build", variant, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    assert result.ran() == ["boottest"]
    log = serial_log(work)
    assert booted_with(log) == Booted(
        {"bios": "seabios", "uefi": "ovmf"}[firmware],
        {"bios": "grub2-pc", "uefi": "grub2-efi"}[firmware],
        {"cdrom": "cd", "usb": "usb"}[medium],
    )
    assert "live system up, root is overlay" in log and "login:" in log


def test_changing_the_menu_title_rebuilds_only_bootloader_and_iso(demo: tuple[Path, Path]) -> None:
    profile, work = demo
    variant = write_profile(
        profile.with_name("title.toml"), profile, '[bootloader]\ntitle = "Another title"\n'
    )
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == ["bootloader", "iso", "boottest"]
    again = livecd("build", variant, "--work-dir", work)
    assert again.code == 0 and again.ran() == []


def test_wrong_marker_reaches_the_rescue_shell(demo: tuple[Path, Path]) -> None:
    """An ISO whose LABEL does not hold the initrd's marker: the init must say what it saw
    and open a rescue shell instead of panicking."""
    profile, work = demo
    variant = write_profile(
        profile.with_name("wrong.toml"),
        profile,
        '[iso]\nmarker = "some other disc"\n'
        '[boottest]\nmarker = "livecd: rescue shell"\ntimeout = 300\n'
        "[initrd]\nwait = 3\n",
    )
    # Only the ISO is rebuilt: its LABEL changes, the initrd keeps the old marker.
    result = livecd("build", variant, "--work-dir", work, "--only", "iso,boottest")
    assert result.code == 0, result.output
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub2-pc", "cd")
    assert "livecd: rescue shell" in log
    assert "holding 'livecd-tui demo'" in log, "it says which marker it looked for"
    # The report's line for the CD it saw and refused (the kernel's own "[sr0]" probe line
    # does not match: it has no "/dev/" and no label).
    assert re.search(r"^ +/dev/sr0 .*LIVECD_DEMO", log, re.M), (
        "the rescue report lists the block devices it saw"
    )
    assert "switching to the live system" not in log


def test_check_entry_passes_then_names_a_flipped_byte(demo: tuple[Path, Path]) -> None:
    """The check entry (made the default by putting it first): the built ISO passes the
    media check and boots to login; a copy with one byte of the squashfs flipped stops in
    the rescue shell, naming the squashfs."""
    profile, work = demo
    variant = write_profile(
        profile.with_name("check.toml"),
        profile,
        '[bootloader]\nentries = ["check", "normal"]\n[iso]\noutput = "out/check.iso"\n',
    )
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert result.ran() == ["bootloader", "iso", "boottest"], "the sums were in the initrd"
    conf = (work / "stages" / "initrd" / "tree" / "etc" / "livecd.conf").read_text()
    squashfs = work / "stages" / "system" / "system.squashfs"
    assert (
        f"LIVECD_SUMS='{hashlib.sha256(squashfs.read_bytes()).hexdigest()}  "
        "/live/system.squashfs'\n"
    ) in conf
    log = serial_log(work)
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert "livecd: media check: passed, the medium is intact" in log
    assert "livecd: switching to the live system" in log and "login:" in log

    damaged = write_profile(
        profile.with_name("damaged.toml"),
        variant,
        '[iso]\noutput = "out/damaged.iso"\n'
        '[boottest]\nmarker = "livecd: rescue shell"\ntimeout = 300\n',
    )
    iso = profile.parent / "out" / "damaged.iso"
    shutil.copyfile(profile.parent / "out" / "check.iso", iso)
    flip_a_byte_of(iso, "/live/system.squashfs")
    result = livecd("build", damaged, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    log = serial_log(work)
    assert (
        "livecd: media check: /live/system.squashfs FAILED (damaged: its sha256 is not "
        "the one recorded at build time)"
    ) in log
    assert "livecd: boot failed: media check failed, damaged: /live/system.squashfs" in log
    assert "livecd: rescue shell" in log
    assert "passed, the medium is intact" not in log
    assert "switching to the live system" not in log


def test_isolinux_variant_boots_as_cd_and_usb(tmp_path: Path) -> None:
    """ISOLINUX's image boots as a CD and, isohybrid, as a USB disk: one build, two boots."""
    profile = write_profile(
        tmp_path / "isolinux.toml",
        PROFILES / "demo.toml",
        '[bootloader]\ntype = "isolinux"\n[iso]\noutput = "out/isolinux.iso"\n',
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "isolinux", "cd")
    assert "live system up, root is overlay" in log
    usb = write_profile(tmp_path / "isolinux-usb.toml", profile, '[boottest]\nmedium = "usb"\n')
    result = livecd("build", usb, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "isolinux", "usb")
    assert "live system up, root is overlay" in log and "login:" in log


def test_two_builds_give_the_same_iso(tmp_path: Path) -> None:
    """Same profile, same inputs, same SOURCE_DATE_EPOCH, two work dirs: same bytes."""
    profile = write_profile(
        tmp_path / "repro.toml", PROFILES / "demo.toml", "[boottest]\nenabled = false\n"
    )
    sums = []
    for work in ("one", "two"):
        result = livecd("build", profile, "--work-dir", tmp_path / work)
        assert result.code == 0, result.output
        sums.append((tmp_path / work / "out" / "repro.iso.sha256").read_text().split()[0])
    assert sums[0] == sums[1]


def test_initrd_with_dynamic_programs_boots(tmp_path: Path) -> None:
    """bash as the initrd's shell and udev as its device manager: dynamic programs whose
    libraries come from the ELF files, laid out as on this merged-/usr system."""
    profile = write_profile(
        tmp_path / "dyn.toml",
        PROFILES / "demo.toml",
        '[initrd]\nshell = "bash"\ndevice_manager = "udev"\n',
    )
    result = livecd("build", profile, "--work-dir", tmp_path / "work")
    assert result.code == 0, result.output[-4000:]
    log = serial_log(tmp_path / "work")
    assert "livecd: switching to the live system" in log and "login:" in log


def test_the_articles_toolbox_boots_without_busybox(demo: tuple[Path, Path]) -> None:
    """initrd.toolbox = "system": the initramfs holds the system's bash, mount,
    switch_root, insmod and coreutils with their libraries, no busybox, and boots."""
    profile, work = demo
    variant = write_profile(
        profile.with_name("system-toolbox.toml"), profile, '[initrd]\ntoolbox = "system"\n'
    )
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


def _entry_iso(demo: tuple[Path, Path], name: str, body: str) -> Path:
    """The demo with another boot menu entry first (the default), built through the tool
    into its own ISO; QEMU boots it after, so the test can type on the serial console."""
    profile, work = demo
    variant = write_profile(
        profile.with_name(f"{name}.toml"),
        profile,
        f'{body}[iso]\noutput = "out/{name}.iso"\n[boottest]\nenabled = false\n',
    )
    result = livecd("build", variant, "--work-dir", work)
    assert result.code == 0, result.output
    assert {"bootloader", "iso"} <= set(result.ran())
    return profile.parent / "out" / f"{name}.iso"


def test_toram_entry_runs_from_ram_without_the_medium(demo: tuple[Path, Path]) -> None:
    """writable.copy_to_ram makes the 'toram' entry the default: the image is copied to a tmpfs,
    the CD is unmounted, and the live system's squashfs is the copy in RAM."""
    iso = _entry_iso(demo, "toram", "[writable]\ncopy_to_ram = true\n")
    with booted(iso) as guest:
        log_in(guest)
        seen = guest.run(
            "cat /proc/cmdline /sys/block/loop*/loop/backing_file; "
            "grep -c iso9660 /proc/mounts; grep ' /run/livecd/toram ' "
            "/proc/mounts; echo toram-$((6*7))",
            "toram-42",
        )
        boot = guest.output
    assert booted_with(boot) == Booted("seabios", "grub2-pc", "cd")
    assert re.search(r"copying the system image to RAM \(\d+ MiB\)", boot)
    assert "livecd.toram" in seen, "the toram entry was the one booted"
    assert "/run/livecd/toram/live/system.squashfs" in seen, "the squashfs is the copy in RAM"
    assert "/run/livecd/medium" not in seen
    assert re.search(r"^0$", seen, re.M), "no iso9660 filesystem (the CD) is mounted"
    assert re.search(r"^tmpfs /run/livecd/toram tmpfs", seen, re.M)


def test_debug_entry_stops_in_a_shell_before_switching_root(demo: tuple[Path, Path]) -> None:
    """The 'debug' entry first: the init stops in a shell in the initramfs with the live
    system mounted, and goes on to the live system when that shell exits."""
    iso = _entry_iso(demo, "debug", '[bootloader]\nentries = ["debug", "normal"]\n')
    with booted(iso) as guest:
        guest.expect("debug shell: the live system is mounted on", 900)
        before = guest.output
        seen = guest.run(
            "cat /proc/cmdline; test -f /init && ls /run/livecd/system/bin "
            ">/dev/null && echo initramfs-$((6*7))",
            "initramfs-42",
            timeout=300,
        )
        guest.send("exit")
        log_in(guest)
    assert booted_with(before) == Booted("seabios", "grub2-pc", "cd")
    assert "livecd.debug" in seen, "the debug entry was the one booted"
    assert "switching to the live system" not in before, "the shell came before the switch"
    assert "livecd: switching to the live system" in guest.output
