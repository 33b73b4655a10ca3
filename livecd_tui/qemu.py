"""Test-boot a live ISO in QEMU: accelerator detection, firmware lookup, argv, boot phases.

The engine runs :func:`qemu_argv` with stdout piped and reads the guest's serial console
line by line; :func:`boot_phase` turns those lines into a progress display.

Facts checked on Debian 12 (QEMU 7.2, SeaBIOS 1.16, OVMF 2022.11):
- ``/dev/kvm`` can exist while KVM guests hang, so :func:`detect_accel` boots a 512-byte
  guest that writes to the serial port and only answers ``"kvm"`` if the text comes back;
- under TCG a live ISO (Debian 6.1 kernel, busybox initramfs) reaches the live system in
  about 12 s from BIOS and 13 s from UEFI, as a CD or a USB disk;
- every QEMU run goes under ``timeout`` so that a hung guest cannot outlive the engine.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from livecd_tui import procs

#: The QEMU binary for x86-64 guests.
QEMU_BINARY = "qemu-system-x86_64"
#: The KVM device; its absence means TCG.
KVM_DEVICE = Path("/dev/kvm")
#: Seconds the boot-sector probe gets to print (a working KVM needs well under 1 s).
KVM_PROBE_TIMEOUT = 5.0
#: Seconds the kernel probe gets to reach its panic (about 1.5 s under TCG here).
KVM_KERNEL_PROBE_TIMEOUT = 12.0
#: Text the probe boot sector writes to COM1 from 64-bit code.
KVM_PROBE_TEXT = b"LIVECD-KVM-OK"
#: What the kernel probe waits for: the kernel ran to its end (no root: it panics) or to init.
_KERNEL_PROBE_DONE = re.compile(rb"Kernel panic - not syncing|Run /\S*init")

FIRMWARES = ("bios", "uefi")
MEDIA = ("cdrom", "usb", "virtio")
ACCELS = ("kvm", "tcg")

#: OVMF images, most convenient first. A combined image (code + variables, used with
#: ``-bios``) comes before split ``*_CODE`` images (used as a read-only pflash drive).
OVMF_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/ovmf/OVMF.fd"),  # Debian/Ubuntu package ovmf: combined image
    Path("/usr/share/OVMF/OVMF_CODE.fd"),  # Debian/Ubuntu: 2 MB code image
    Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),  # Debian/Ubuntu: 4 MB code image
    Path("/usr/share/qemu/OVMF.fd"),  # openSUSE, QEMU's own install
    Path("/usr/share/edk2/ovmf/OVMF_CODE.fd"),  # Fedora
    Path("/usr/share/edk2/x64/OVMF_CODE.4m.fd"),  # Arch (edk2-ovmf)
    Path("/usr/share/edk2-ovmf/x64/OVMF_CODE.fd"),  # older Arch
    Path("/usr/share/edk2-ovmf/OVMF_CODE.fd"),  # Gentoo
)

_accel_cache: str | None = None


# --------------------------------------------------------------------------------------------
# Accelerator
# --------------------------------------------------------------------------------------------


def kvm_probe_image() -> bytes:
    """A 512-byte boot sector that enters long mode and writes :data:`KVM_PROBE_TEXT` to COM1.

    Assembled with GNU as from this source (``as --64``; ``ld -m elf_x86_64 -Ttext=0x7c00
    --oformat binary``); the text follows the code and is addressed RIP-relative::

        .code16: cli; zero ds es ss; sp=0x7c00; fast A20 (port 0x92)
                 zero 0x1000-0x3fff; PML4[0]=0x2003; PDPT[0]=0x3003; PD[0]=0x83 (2 MiB page)
                 lgdt; cr0.PE=1; ljmp 0x08:pm32
        .code32: ds es ss=0x10; cr4.PAE=1; cr3=0x1000; EFER.LME=1; cr0.PG=1; ljmp 0x18:lm64
        .code64: dx=0x3f8; rsi=&msg; print bytes up to NUL with out; hlt loop
        gdt: null, 32-bit code 0x00cf9a000000ffff, data 0x00cf92000000ffff,
             64-bit code 0x00af9a000000ffff
    """
    code = bytes.fromhex(
        "fa31c08ed88ec08ed0bc007ce4920c02e692bf001031c0b90018f3ab66c70600100320000066c706"
        "00200330000066c706003083000000660f0116c07c0f20c06683c8010f22c066ea4f7c0000080066"
        "b810008ed88ec08ed00f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f30"
        "0f20c00d000000800f22c0ea8a7c0000180066baf803488d3531000000ac84c07403eeebf8f4ebfd"
        "0000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf001f00a07c0000"
    )
    image = code + KVM_PROBE_TEXT + b"\r\n\x00"
    return image.ljust(510, b"\x00") + b"\x55\xaa"


def _run_probe(argv: list[str], done: re.Pattern[bytes], timeout: float) -> bool:
    """Run QEMU *argv* (serial on stdout) until *done* matches its output or *timeout*."""
    full = ["timeout", "--kill-after=2", str(max(1, round(timeout) + 1)), *argv]
    read_fd, write_fd = os.pipe()
    try:
        with (
            open(os.devnull, "rb") as stdin,
            open(os.devnull, "wb") as stderr,
            os.fdopen(write_fd, "wb") as stdout,
        ):  # closed once the child has its copy
            proc = procs.start(full, stdin=stdin, stdout=stdout, stderr=stderr)
    except OSError:
        os.close(read_fd)
        return False
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.2)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                seen += chunk
                if done.search(seen):
                    return True
            elif not proc.is_alive():
                break
        return bool(done.search(seen))
    finally:
        # The whole group: timeout and QEMU (killing timeout alone orphans QEMU).
        procs.kill_process_group(proc.pid, grace=3.0)
        procs.wait(proc)
        os.close(read_fd)


def stop_qemu(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Stop a QEMU started as ``timeout ... qemu-system-x86_64`` (argv of this module).

    Killing only the ``timeout`` process leaves QEMU running with no timer (seen: orphaned
    guests spinning for minutes). Start the process with ``start_new_session=True``; this
    sends SIGTERM to the whole process group (``timeout`` and QEMU), then SIGKILL if it is
    still there after *grace* seconds.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def _accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    # "max": every feature TCG can emulate, so kernels built for x86-64-v2+ run too.
    return ["-accel", "tcg", "-cpu", "max"]


def probe_accel(
    accel: str,
    timeout: float = KVM_PROBE_TIMEOUT,
    kernel: Path | None = None,
) -> bool:
    """True if a tiny guest runs to the end under *accel* ("kvm" or "tcg").

    Without *kernel*: the long-mode boot sector of :func:`kvm_probe_image` must print its
    text. With *kernel* (a bzImage): it is booted without initrd or root and must get as far
    as its "VFS: Unable to mount root" panic (``panic=-1`` + ``-no-reboot`` then end QEMU).
    The kernel probe is the one that counts: on the CI machines the boot sector runs fine
    under KVM, but Linux hangs right after its real-mode setup code.
    """
    if accel not in ACCELS:
        raise ValueError(f"accel must be one of {ACCELS}, not {accel!r}")
    if shutil.which(QEMU_BINARY) is None or shutil.which("timeout") is None:
        return False
    common = [QEMU_BINARY, *_accel_args(accel), "-nodefaults", "-display", "none"]
    common += ["-serial", "stdio", "-monitor", "none", "-no-reboot"]
    if kernel is not None:
        argv = [*common, "-m", "256", "-kernel", str(kernel)]
        argv += ["-append", "console=ttyS0 panic=-1 loglevel=4"]
        return _run_probe(argv, _KERNEL_PROBE_DONE, timeout)
    with tempfile.TemporaryDirectory(prefix="livecd-kvm-probe-") as tmp:
        image = Path(tmp) / "probe.img"
        image.write_bytes(kvm_probe_image())
        argv = [*common, "-m", "32", "-boot", "order=c"]
        argv += ["-drive", f"file={image},format=raw,if=ide,index=0"]
        return _run_probe(argv, re.compile(re.escape(KVM_PROBE_TEXT)), timeout)


def find_probe_kernel() -> Path | None:
    """A Linux kernel on this machine to probe KVM with: the running one's, else any."""
    boot = Path("/boot")
    candidates = [boot / f"vmlinuz-{os.uname().release}", boot / "vmlinuz"]
    candidates += sorted(boot.glob("vmlinuz-*"), reverse=True)
    for path in candidates:
        if path.is_file() and os.access(path, os.R_OK):
            return path
    return None


def detect_accel(refresh: bool = False, kernel: Path | None = None) -> str:
    """``"kvm"`` if KVM really runs guests here, else ``"tcg"``. Cached per process.

    Only when :data:`KVM_DEVICE` exists and is usable are probe guests started under KVM:
    the boot sector (a second or two), then a Linux kernel (*kernel*, or
    :func:`find_probe_kernel`) up to its panic. A guest that hangs means ``"tcg"``; the
    worst case costs :data:`KVM_PROBE_TIMEOUT` + :data:`KVM_KERNEL_PROBE_TIMEOUT` once.
    """
    global _accel_cache
    if _accel_cache is not None and not refresh:
        return _accel_cache
    accel = "tcg"
    if (
        KVM_DEVICE.exists()
        and os.access(KVM_DEVICE, os.R_OK | os.W_OK)
        and probe_accel("kvm", KVM_PROBE_TIMEOUT)
    ):
        probe_kernel = kernel if kernel is not None else find_probe_kernel()
        if probe_kernel is None or probe_accel("kvm", KVM_KERNEL_PROBE_TIMEOUT, probe_kernel):
            accel = "kvm"
    _accel_cache = accel
    return accel


# --------------------------------------------------------------------------------------------
# Firmware and argv
# --------------------------------------------------------------------------------------------


def find_ovmf(candidates: Sequence[Path] = OVMF_CANDIDATES) -> Path | None:
    """Path of an installed OVMF (UEFI firmware for QEMU), or None."""
    for path in candidates:
        if path.is_file():
            return path
    return None


def option_value(path: Path | str) -> str:
    """*path* as the value of a QEMU ``-drive`` option: a comma is written twice, or the
    rest of the name would be read as more options (``x.iso,readonly=off,...``)."""
    return str(path).replace(",", ",,")


def ovmf_args(ovmf: Path) -> list[str]:
    """QEMU arguments that load *ovmf*.

    A split ``*CODE*`` image is attached as a read-only pflash drive (OVMF then runs without
    persistent variables, which a test boot does not need); a combined image uses ``-bios``.
    """
    if "CODE" in ovmf.name.upper():
        return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={option_value(ovmf)}"]
    return ["-bios", str(ovmf)]


def secure_boot_args(vars_file: Path, code: Path) -> list[str]:
    """QEMU arguments for OVMF with Secure Boot: *code* (the ``secboot`` build, which needs
    SMM) read-only, and *vars_file*, a writable copy of a variable store whose keys decide
    what may boot (the firmware writes to it). Goes with ``-machine q35,smm=on``; the
    ``secure`` pflash property keeps the guest OS from writing the variables directly."""
    return [
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={option_value(code)}",
        "-drive", f"if=pflash,format=raw,unit=1,file={option_value(vars_file)}",
    ]  # fmt: skip


def medium_args(iso: Path, medium: str) -> list[str]:
    """QEMU arguments that attach *iso* as a CD, a USB disk (xHCI) or a virtio disk."""
    name = option_value(iso)
    if medium == "cdrom":
        return ["-drive", f"file={name},format=raw,if=ide,index=2,media=cdrom,readonly=on"]
    if medium == "usb":
        return [
            "-drive", f"file={name},format=raw,if=none,id=livecd-usb,readonly=on",
            "-device", "qemu-xhci,id=xhci",
            "-device", "usb-storage,bus=xhci.0,drive=livecd-usb,bootindex=0",
        ]  # fmt: skip
    if medium == "virtio":
        return [
            "-drive", f"file={name},format=raw,if=none,id=livecd-vd,readonly=on",
            "-device", "virtio-blk-pci,drive=livecd-vd,bootindex=0",
        ]  # fmt: skip
    raise ValueError(f"medium must be one of {MEDIA}, not {medium!r}")


def qemu_argv(
    iso: Path,
    firmware: str,
    medium: str,
    memory_mib: int,
    accel: str,
    serial_log: Path | None = None,
    ovmf: Path | None = None,
    extra_args: Sequence[str] = (),
    timeout: int | None = None,
    secure_boot: tuple[Path, Path] | None = None,
) -> list[str]:
    """argv that boots *iso* headless, with the guest's serial console on stdout.

    *firmware* is ``"bios"`` (SeaBIOS) or ``"uefi"`` (OVMF: *ovmf* or :func:`find_ovmf`).
    *medium* is ``"cdrom"``, ``"usb"`` (USB disk on xHCI, as a hybrid ISO written to a
    stick) or ``"virtio"``. With *serial_log* the serial console goes to that file instead of
    stdout. ``-nographic`` also sends SeaBIOS's text screen to the serial port;
    ``-monitor none`` keeps the QEMU monitor off stdout; ``-no-reboot`` makes a guest reboot
    end QEMU. With *timeout* (seconds) the argv starts with ``timeout`` so that QEMU is
    killed even if the caller dies. Start it with ``start_new_session=True`` and end it with
    :func:`stop_qemu`, which also stops QEMU and not only ``timeout``. With *secure_boot*
    (the writable VARS copy, the secboot CODE image) the UEFI machine is a q35 with SMM
    running OVMF with Secure Boot (:func:`secure_boot_args`); *ovmf* is then unused.
    """
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {FIRMWARES}, not {firmware!r}")
    if accel not in ACCELS:
        raise ValueError(f"accel must be one of {ACCELS}, not {accel!r}")
    if memory_mib < 128:
        raise ValueError(f"memory must be at least 128 MiB, not {memory_mib}")
    argv: list[str] = []
    if timeout is not None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        argv += ["timeout", "--kill-after=5", str(timeout)]
    if secure_boot is not None and firmware != "uefi":
        raise ValueError("Secure Boot needs the UEFI firmware")
    machine = "q35,smm=on" if secure_boot is not None else "pc"
    argv += [QEMU_BINARY, "-machine", machine, "-m", str(memory_mib)]
    argv += _accel_args(accel)
    if secure_boot is not None:
        argv += secure_boot_args(*secure_boot)
    elif firmware == "uefi":
        path = ovmf if ovmf is not None else find_ovmf()
        if path is None:
            raise FileNotFoundError("no OVMF firmware found (Debian: apt-get install ovmf)")
        argv += ovmf_args(path)
    argv += medium_args(iso, medium)
    if medium == "cdrom" and firmware == "bios":
        argv += ["-boot", "order=d"]
    argv += ["-nographic", "-monitor", "none", "-no-reboot"]
    argv += ["-serial", f"file:{serial_log}" if serial_log is not None else "stdio"]
    argv += list(extra_args)
    return argv


# --------------------------------------------------------------------------------------------
# Boot phases from the serial console
# --------------------------------------------------------------------------------------------

#: Phases in boot order; "failed" is reported for a rescue shell or a kernel panic.
BOOT_PHASES: tuple[str, ...] = (
    "firmware",
    "boot loader",
    "kernel",
    "initrd",
    "live system",
    "failed",
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>c]")

#: What OVMF, shim and GRUB print when Secure Boot refuses an image.
SECURE_BOOT_REFUSAL = re.compile(
    r"Verification failed: \(0x1A\) Security Violation|"
    r"bad shim signature|shim_lock protocol not found|"
    r"verification requested but nobody cares|"
    r"prohibited by secure boot policy|: Access Denied"
)


# Checked in order: the first pattern that matches gives the phase.
_PHASE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Kernel panic|livecd: rescue shell|livecd: boot failed|"
                + SECURE_BOOT_REFUSAL.pattern), "failed"),
    (re.compile(r"livecd: switching to the live system|LIVECD-BOOT-OK|\blogin: |"
                r"INIT: version|Welcome to (?!GRUB).*!|"
                r"Please press Enter to activate this console"), "live system"),
    (re.compile(r"Run /init as init process|Run /linuxrc|livecd: |linuxrc: |"
                r"Unpacking initramfs|RAMDISK: "), "initrd"),
    (re.compile(r"Linux version \d|EFI stub: |Decompressing Linux|Booting the kernel|"
                r"Command line: "), "kernel"),
    (re.compile(r"GNU GRUB|Welcome to GRUB|GRUB loading|ISOLINUX \d|SYSLINUX \d|"
                r"Booting `|Loading /|boot: |Press any key to continue"), "boot loader"),
    (re.compile(r"SeaBIOS|iPXE|BdsDxe|Booting from |Boot failed"), "firmware"),
)  # fmt: skip


def strip_ansi(line: str) -> str:
    """*line* without terminal escape sequences (GRUB draws its menu with them)."""
    return _ANSI.sub("", line)


def boot_phase(line: str) -> str | None:
    """Boot phase a serial console line shows (one of :data:`BOOT_PHASES`), or None.

    Lines that say nothing new (most kernel messages, blank lines) give None; a caller
    keeps the last phase it saw.
    """
    text = strip_ansi(line)
    for pattern, phase in _PHASE_PATTERNS:
        if pattern.search(text):
            return phase
    return None


def diagnose_boot(lines: Sequence[str], marker: str, serial: bool) -> tuple[str, str]:
    """What a boot that never showed *marker* reached, and the option most likely at fault.

    *lines* are the serial console's lines; *serial* says whether the boot loader gives the
    kernel a serial console (without it the console stops after the boot loader).
    """
    phase = None
    last = ""
    login_seen = False
    refusal = ""
    for line in lines:
        text = strip_ansi(line).strip()
        if not text:
            continue
        last = text
        phase = boot_phase(text) or phase
        login_seen = login_seen or "login:" in text
        found = SECURE_BOOT_REFUSAL.search(text)
        refusal = refusal or (found.group(0).lstrip(": ") if found else "")
    shown = f"; its last line: {last[:120]!r}" if last else ""
    if phase is None:
        return (
            "the serial console showed no boot phase at all (not even the firmware)" + shown,
            "boottest.firmware",
        )
    said = f"the boot reached the {phase} phase{shown}"
    if refusal:
        return (
            f"{said}; Secure Boot refused an image ({refusal!r}): the firmware's keys "
            "(boottest.secure_boot_vars) do not trust its signer, or the kernel is not "
            "signed by a key shim trusts",
            "bootloader.secure_boot",
        )
    if login_seen and marker != "login:":
        return (
            f"{said}; a login prompt appeared but boottest.marker is {marker!r}",
            "boottest.marker",
        )
    if phase in ("firmware", "boot loader") and not serial:
        return (
            f"{said}; without bootloader.serial the kernel writes nothing on the serial console",
            "bootloader.serial",
        )
    if phase == "failed":
        return f"{said}; the boot stopped with an error (read the lines above it)", ""
    return said, ""
