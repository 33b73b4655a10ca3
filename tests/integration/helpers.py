"""Helpers for the integration tests: they build real ISOs with the real tools and boot them
in QEMU through the real `livecd-tui` command. Nothing here is faked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from livecd_tui import qemu

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
#: A fixed time for every timestamp, so builds are comparable.
EPOCH = "1700000000"


@dataclass
class Result:
    code: int
    output: str

    def ran(self) -> list[str]:
        """Stages that ran (not skipped), in order."""
        return re.findall(r"^==> (\w+): \d+ step", self.output, re.M)

    def status(self, stage: str) -> str | None:
        found = re.findall(
            rf"^==> {stage}: (done|failed|interrupted|up to date)", self.output, re.M
        )
        return found[-1] if found else None


def livecd(*args: str | Path, timeout: float = 1800) -> Result:
    """Run the real `livecd-tui` command and return its exit code and output."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    proc = subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr)


def write_profile(path: Path, base: Path, body: str) -> Path:
    """A test profile that extends a shipped one."""
    path.write_text(f'extends = "{base}"\n{body}')
    return path


def serial_log(work: Path) -> str:
    return (work / "logs" / "boottest.log").read_text(errors="replace")


@dataclass(frozen=True)
class Booted:
    """What the serial log proves was used: ``firmware`` "seabios" or "ovmf", ``loader``
    "grub2-pc", "grub2-efi", "isolinux" or "grub-legacy", ``medium`` "cd" or "usb". A field
    whose witnesses disagree reads e.g. "cd+usb", one without any witness "none"."""

    firmware: str
    loader: str
    medium: str


def _one(found: set[str]) -> str:
    return "+".join(sorted(found)) or "none"


def booted_with(log: str) -> Booted:
    """Read from a serial log which firmware, boot loader and medium really booted.

    Each answer is what every witness in the log agrees on, so that a wrong or missing
    witness shows (QEMU 7.2, SeaBIOS 1.16, OVMF 2022.11, GRUB 2.06, ISOLINUX 6.04):
    - firmware: SeaBIOS prints its banner; OVMF's boot manager its ``BdsDxe: starting``
      line, and the kernel says ``efi: EFI v...`` only when started by UEFI firmware;
    - loader: GRUB 2's grub.cfg echoes ``livecd-tui: GRUB 2 for $grub_platform`` (pc or
      efi), GRUB legacy and ISOLINUX print their banners (ISOLINUX's says ``ETCD`` from a
      CD, ``EHDD`` from a disk);
    - medium: the firmware's boot line (SeaBIOS ``Booting from DVD/CD`` or ``Hard Disk``: the
      tests attach no other disk; OVMF's ``DVD-ROM`` or ``USB HARDDRIVE``), the kernel's
      ``USB Mass Storage device detected`` and the device the init script mounted
      (``/dev/sr*`` for a CD, ``/dev/sd*`` for the USB disk). The kernel's own probe line
      for the empty IDE CD drive (``[sr0]``) is no witness: QEMU's PC always has that drive.
    """
    log = qemu.strip_ansi(log)
    firmware = set()
    if "SeaBIOS (version" in log:
        firmware.add("seabios")
    if "BdsDxe: starting Boot" in log or re.search(r"\befi: EFI v\d", log):
        firmware.add("ovmf")
    loader = set()
    if re.search(r"GNU GRUB +version 0\.9", log):
        loader.add("grub-legacy")
    if re.search(r"GNU GRUB +version 2\.", log):
        platforms = set(re.findall(r"livecd-tui: GRUB 2 for (pc|efi)", log))
        loader |= {f"grub2-{p}" for p in platforms} or {"grub2-?"}
    if re.search(r"ISOLINUX \d+\.\d+", log):
        loader.add("isolinux")
    medium = set()
    for pattern, kind in (
        (r"Booting from DVD/CD", "cd"),
        (r"Booting from Hard Disk", "usb"),
        (r'BdsDxe: starting Boot\w+ "UEFI QEMU DVD-ROM', "cd"),
        (r'BdsDxe: starting Boot\w+ "UEFI QEMU QEMU USB HARDDRIVE', "usb"),
        (r"ISOLINUX \S+ \S+ ETCD", "cd"),
        (r"ISOLINUX \S+ \S+ EHDD", "usb"),
        (r"USB Mass Storage device detected", "usb"),
        (r"livecd: (?:found the live )?medium (?:found )?on /dev/sr\d", "cd"),
        (r"livecd: (?:found the live )?medium (?:found )?on /dev/sd[a-z]", "usb"),
    ):
        if re.search(pattern, log):
            medium.add(kind)
    return Booted(_one(firmware), _one(loader), _one(medium))
