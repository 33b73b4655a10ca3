"""QEMU helpers (livecd_tui.qemu): argv shapes, accelerator detection, OVMF, boot phases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livecd_tui import qemu
from tests.integration.serial import direct_kernel_args

ISO = Path("/w/live.iso")


def opt(argv: list[str], name: str) -> list[str]:
    """Values of every occurrence of option *name*."""
    return [argv[i + 1] for i, word in enumerate(argv) if word == name]


# ------------------------------------------------------------------------------------------
# argv
# ------------------------------------------------------------------------------------------


def test_bios_cdrom_tcg_headless_serial_on_stdout() -> None:
    argv = qemu.qemu_argv(ISO, "bios", "cdrom", 1024, "tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert opt(argv, "-m") == ["1024"]
    assert opt(argv, "-accel") == ["tcg"]
    assert opt(argv, "-serial") == ["stdio"]
    assert opt(argv, "-monitor") == ["none"]
    assert "-nographic" in argv and "-no-reboot" in argv
    assert "-enable-kvm" not in argv
    assert opt(argv, "-drive") == [f"file={ISO},format=raw,if=ide,index=2,media=cdrom,readonly=on"]
    assert opt(argv, "-boot") == ["order=d"]
    assert "-bios" not in argv


def test_uefi_usb_kvm_with_given_ovmf() -> None:
    argv = qemu.qemu_argv(ISO, "uefi", "usb", 512, "kvm", ovmf=Path("/fw/OVMF.fd"))
    assert opt(argv, "-accel") == ["kvm"] and opt(argv, "-cpu") == ["host"]
    assert opt(argv, "-bios") == ["/fw/OVMF.fd"]
    assert f"file={ISO},format=raw,if=none,id=livecd-usb,readonly=on" in opt(argv, "-drive")
    devices = opt(argv, "-device")
    assert devices[0].startswith("qemu-xhci")
    assert devices[1] == "usb-storage,bus=xhci.0,drive=livecd-usb,bootindex=0"
    assert "-boot" not in argv


def test_split_ovmf_code_is_a_pflash_drive() -> None:
    argv = qemu.qemu_argv(
        ISO, "uefi", "cdrom", 512, "tcg", ovmf=Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
    )
    assert "-bios" not in argv
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in opt(
        argv, "-drive"
    )


def test_virtio_medium_serial_log_timeout_and_extra_args(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    extra = direct_kernel_args(
        Path("/k/vmlinuz"), Path("/k/initrd.img"), "console=ttyS0 livecd.debug"
    )
    argv = qemu.qemu_argv(
        ISO, "bios", "virtio", 256, "tcg", serial_log=log, extra_args=extra, timeout=120
    )
    assert argv[:3] == ["timeout", "--kill-after=5", "120"]
    assert argv[3] == "qemu-system-x86_64"
    assert opt(argv, "-serial") == [f"file:{log}"]
    assert opt(argv, "-device") == ["virtio-blk-pci,drive=livecd-vd,bootindex=0"]
    assert argv[-6:] == [
        "-kernel",
        "/k/vmlinuz",
        "-initrd",
        "/k/initrd.img",
        "-append",
        "console=ttyS0 livecd.debug",
    ]


def test_uefi_finds_ovmf_itself() -> None:
    found = qemu.find_ovmf()
    assert found is not None, "OVMF is installed on the test machines (Debian: ovmf)"
    argv = qemu.qemu_argv(ISO, "uefi", "cdrom", 1024, "tcg")
    assert str(found) in " ".join(argv)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"firmware": "coreboot"}, "firmware"),
        ({"medium": "floppy"}, "medium"),
        ({"accel": "hvf"}, "accel"),
        ({"memory_mib": 64}, "memory"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "iso": ISO,
        "firmware": "bios",
        "medium": "cdrom",
        "memory_mib": 512,
        "accel": "tcg",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        qemu.qemu_argv(**args)  # type: ignore[arg-type]


def test_uefi_without_ovmf_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "find_ovmf", lambda: None)
    with pytest.raises(FileNotFoundError):
        qemu.qemu_argv(ISO, "uefi", "cdrom", 512, "tcg")


def test_direct_kernel_args_one_line() -> None:
    with pytest.raises(ValueError):
        direct_kernel_args(Path("/k"), Path("/i"), "a\nb")


# ------------------------------------------------------------------------------------------
# OVMF
# ------------------------------------------------------------------------------------------


def test_find_ovmf_finds_the_installed_one() -> None:
    found = qemu.find_ovmf()
    assert found is not None and found.is_file()
    assert found in qemu.OVMF_CANDIDATES


def test_find_ovmf_order_and_none(tmp_path: Path) -> None:
    second = tmp_path / "OVMF_CODE.fd"
    second.write_bytes(b"x")
    assert qemu.find_ovmf([tmp_path / "missing.fd", second]) == second
    assert qemu.find_ovmf([tmp_path / "missing.fd"]) is None


# ------------------------------------------------------------------------------------------
# accelerator
# ------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "_accel_cache", None)


@pytest.mark.usefixtures("fresh_cache")
def test_detect_accel_is_tcg_without_dev_kvm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(qemu, "KVM_DEVICE", tmp_path / "no-kvm")

    def must_not_run(*args: object, **kwargs: object) -> bool:
        raise AssertionError("no probe guest without /dev/kvm")

    monkeypatch.setattr(qemu, "probe_accel", must_not_run)
    assert qemu.detect_accel() == "tcg"


@pytest.mark.usefixtures("fresh_cache")
def test_detect_accel_needs_both_probes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.write_bytes(b"")
    monkeypatch.setattr(qemu, "KVM_DEVICE", kvm)
    calls: list[tuple[str, Path | None]] = []

    def sector_ok_kernel_hangs(accel: str, timeout: float = 0, kernel: Path | None = None) -> bool:
        calls.append((accel, kernel))
        return kernel is None

    monkeypatch.setattr(qemu, "probe_accel", sector_ok_kernel_hangs)
    assert qemu.detect_accel(kernel=Path("/k/vmlinuz")) == "tcg"
    assert calls == [("kvm", None), ("kvm", Path("/k/vmlinuz"))]
    # Cached: no new probe.
    assert qemu.detect_accel() == "tcg"
    assert len(calls) == 2
    monkeypatch.setattr(qemu, "probe_accel", lambda *a, **k: True)
    assert qemu.detect_accel() == "tcg"
    assert qemu.detect_accel(refresh=True, kernel=Path("/k/vmlinuz")) == "kvm"


@pytest.mark.usefixtures("fresh_cache")
def test_detect_accel_returns_one_of_two() -> None:
    """The real thing, on this machine (where /dev/kvm may exist but hang guests)."""
    start = time.monotonic()
    accel = qemu.detect_accel()
    assert accel in ("kvm", "tcg")
    limit = qemu.KVM_PROBE_TIMEOUT + qemu.KVM_KERNEL_PROBE_TIMEOUT + 10
    assert time.monotonic() - start < limit
    assert qemu.detect_accel() == accel


def test_probe_image_is_a_boot_sector() -> None:
    image = qemu.kvm_probe_image()
    assert len(image) == 512 and image[510:] == b"\x55\xaa"
    assert qemu.KVM_PROBE_TEXT in image


@pytest.mark.integration
def test_probe_sector_runs_under_tcg() -> None:
    """The probe sector really reaches long mode and prints (TCG, a fraction of a second)."""
    assert qemu.probe_accel("tcg", timeout=20)


@pytest.mark.integration
def test_probe_kernel_runs_under_tcg() -> None:
    kernel = qemu.find_probe_kernel()
    assert kernel is not None, "a kernel in /boot is needed (Debian: linux-image-amd64)"
    assert qemu.probe_accel("tcg", timeout=60, kernel=kernel)


@pytest.mark.integration
def test_stop_qemu_leaves_no_guest_behind() -> None:
    """Killing only `timeout` would orphan QEMU: stop_qemu ends the whole group."""
    argv = [*qemu.qemu_argv(ISO, "bios", "cdrom", 128, "tcg", timeout=300)]
    # No ISO needed for this: boot the probe-free firmware with no drive at all.
    argv = [a for a in argv if not a.startswith("file=") and a != "-drive"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(1.0)
    children = _children(proc.pid)
    qemu.stop_qemu(proc)
    assert proc.returncode is not None
    time.sleep(0.5)
    assert not [
        pid
        for pid in children
        if Path(f"/proc/{pid}").exists()
        and "qemu" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


# ------------------------------------------------------------------------------------------
# boot phases
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "phase"),
    [
        ("SeaBIOS (version 1.16.2-debian-1.16.2-1)", "firmware"),
        ("Booting from DVD/CD...", "firmware"),
        ('BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM QM00003 "', "firmware"),
        ("\x1b[2;24HGNU GRUB  version 2.06-13+deb12u2", "boot loader"),
        ("Welcome to GRUB!", "boot loader"),
        ("ISOLINUX 6.04 20200816 ETCD Copyright (C) 1994-2015 H. Peter Anvin et al", "boot loader"),
        ("Loading /boot/vmlinuz... ok", "boot loader"),
        ("[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)", "kernel"),
        ("[    1.715008] Run /init as init process", "initrd"),
        ("livecd: found the live medium on /dev/sr0", "initrd"),
        ("livecd: switching to the live system", "live system"),
        ("LIVECD-BOOT-OK", "live system"),
        ("Welcome to Debian GNU/Linux 12 (bookworm)!", "live system"),
        ("livecd login: ", "live system"),
        ("livecd: rescue shell", "failed"),
        ("[    3.1] Kernel panic - not syncing: Attempted to kill init!", "failed"),
        ("[    2.1] usbcore: registered new interface driver uas", None),
        ("", None),
    ],
)
def test_boot_phase(line: str, phase: str | None) -> None:
    assert qemu.boot_phase(line) == phase
    if phase is not None:
        assert phase in qemu.BOOT_PHASES


def test_strip_ansi() -> None:
    assert qemu.strip_ansi("\x1b[0m\x1b[30m\x1b[47mWelcome\x1b[?25h") == "Welcome"


def test_module_runs_without_textual() -> None:
    code = "import sys, livecd_tui.qemu, livecd_tui.bootconf; assert 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_drive_paths_with_commas_cannot_add_options() -> None:
    """A comma in the ISO's or firmware's path is doubled, so QEMU reads one file name."""
    iso = Path("/w/x.iso,readonly=off,if=virtio")
    for medium in qemu.MEDIA:
        drive = qemu.medium_args(iso, medium)[1]
        assert drive.startswith("file=/w/x.iso,,readonly=off,,if=virtio,format=raw,")
    code = qemu.ovmf_args(Path("/fw/a,b/OVMF_CODE.fd"))[1]
    assert code.endswith("file=/fw/a,,b/OVMF_CODE.fd")


@pytest.mark.parametrize(
    ("lines", "marker", "serial", "phrase", "option"),
    [
        ([], "login:", True, "no boot phase at all", "boottest.firmware"),
        (
            ["SeaBIOS (version 1.16)", "Booting from DVD/CD..."],
            "login:",
            False,
            "firmware phase",
            "bootloader.serial",
        ),
        (
            [
                "SeaBIOS",
                "Linux version 6.1.0",
                "livecd: switching to the live system",
                "Debian GNU/Linux 12 live ttyS0",
                "",
                "live login: ",
            ],
            "READY",
            True,
            "but boottest.marker is 'READY'",
            "boottest.marker",
        ),
        (
            [
                "SeaBIOS",
                "Linux version 6.1.0",
                "Run /init as init process",
                "livecd: boot failed: no medium",
                "livecd: rescue shell",
            ],
            "login:",
            True,
            "failed phase",
            "",
        ),
        (
            ["SeaBIOS", "Linux version 6.1.0", "[    3.2] random: crng init done"],
            "login:",
            True,
            "the kernel phase; its last line: '[    3.2] random: crng init done'",
            "",
        ),
    ],
)
def test_diagnose_boot_names_the_phase_and_the_option(
    lines: list[str], marker: str, serial: bool, phrase: str, option: str
) -> None:
    message, at_fault = qemu.diagnose_boot(lines, marker, serial)
    assert phrase in message
    assert at_fault == option
