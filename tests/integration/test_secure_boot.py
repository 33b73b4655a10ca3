"""Secure Boot, both modes, booted in QEMU with OVMF's Secure Boot firmware (q35 + SMM).

- shim: the demo ISO (Debian's signed kernel) boots through Debian's shim and signed GRUB
  with Microsoft's keys in the firmware; a kernel signed by anyone else is refused by GRUB.
- own-keys: a key pair made by ``livecd-tui secure-boot-keys`` signs GRUB, shim and the
  kernel; the boot test's variable store (made by the tool with virt-fw-vars) holds only
  that certificate, and the ISO boots; a firmware that does not trust the key refuses it,
  and boots it once the certificate is enrolled as a MOK.

The good boots go through the tool's own boot test; the refusals are booted with the
tool's QEMU argv and stopped as soon as the refusal shows on the serial console.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from livecd_tui import qemu, secureboot, tools
from livecd_tui.build import find_prebuilt_kernel
from tests.integration.helpers import PROFILES, livecd, serial_log, write_profile
from tests.integration.serial import Guest

#: What the Debian kernel prints when the firmware booted it with Secure Boot on.
SB_ON = "secureboot: Secure boot enabled"


@contextlib.contextmanager
def secure_boot_guest(iso: Path, vars_template: Path, tmp: Path) -> Iterator[Guest]:
    """*iso* booted as a UEFI CD with Secure Boot, on a copy of *vars_template*."""
    copy = tmp / f"vars-{vars_template.name}"
    shutil.copyfile(vars_template, copy)
    argv = qemu.qemu_argv(
        iso,
        firmware="uefi",
        medium="cdrom",
        memory_mib=1024,
        accel="tcg",
        timeout=600,
        secure_boot=(copy, secureboot.OVMF_SECBOOT_CODE),
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Guest(proc)
    finally:
        qemu.stop_qemu(proc)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key pair made by the real command."""
    directory = tmp_path_factory.mktemp("keys") / "sb"
    result = livecd("secure-boot-keys", directory, "--name", "livecd-tui test key")
    assert result.code == 0, result.output
    assert "mokutil --import" in result.output
    for name in ("db.key", "db.crt", "db.cer"):
        assert (directory / name).stat().st_size > 0
    again = livecd("secure-boot-keys", directory)
    assert again.code == 2 and "exist already" in again.output
    return directory


def test_shim_iso_boots_with_secure_boot_on_as_cd_and_usb(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "shim.toml",
        PROFILES / "demo.toml",
        '[bootloader]\nsecure_boot = "shim"\n'
        '[boottest]\nfirmware = "uefi"\ntimeout = 600\n'
        '[iso]\noutput = "shim.iso"\n',
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output
    assert "OVMF_VARS_4M.ms.fd" in result.output  # Microsoft's keys, nothing of ours
    assert "-machine q35,smm=on" in result.output
    log = serial_log(work)
    assert SB_ON in log and "login:" in log
    # The same image as a USB disk: the ESP is the appended GPT partition (the FAT image).
    usb = write_profile(tmp_path / "usb.toml", profile, '[boottest]\nmedium = "usb"\n')
    result = livecd("build", usb, "--work-dir", work, "--only", "boottest")
    assert result.code == 0, result.output
    assert "usb-storage,bus=xhci.0" in result.output
    log = serial_log(work)
    assert SB_ON in log and "login:" in log


def test_shim_refuses_a_kernel_debian_did_not_sign(tmp_path: Path, keys: Path) -> None:
    """The kernel carries a signature, but not one shim trusts: GRUB asks shim, and stops."""
    found = find_prebuilt_kernel(Path("/"))
    assert found is not None
    unsigned = tmp_path / "vmlinuz.unsigned"
    shutil.copyfile(found[0], unsigned)
    subprocess.run(["sbattach", "--remove", str(unsigned)], check=True, capture_output=True)
    kernel = tmp_path / "vmlinuz"
    subprocess.run(
        secureboot.sbsign_argv(keys / "db.key", keys / "db.crt", unsigned, kernel),
        check=True,
        capture_output=True,
    )
    # An unsigned kernel is refused before anything is built.
    refused = write_profile(
        tmp_path / "unsigned.toml",
        PROFILES / "demo.toml",
        f'[kernel]\nimage = "{unsigned}"\n[bootloader]\nsecure_boot = "shim"\n',
    )
    check = livecd("check", refused)
    assert check.code != 0
    assert "carries no signature" in check.output and "bootloader.secure_boot" in check.output
    # A kernel signed with another key builds, and GRUB refuses it at boot.
    profile = write_profile(
        tmp_path / "wrong.toml",
        PROFILES / "demo.toml",
        f'[kernel]\nimage = "{kernel}"\n'
        '[bootloader]\nsecure_boot = "shim"\n'
        '[boottest]\nenabled = false\n[iso]\noutput = "wrong.iso"\n',
    )
    result = livecd("build", profile, "--work-dir", tmp_path / "work")
    assert result.code == 0, result.output
    with secure_boot_guest(tmp_path / "wrong.iso", secureboot.OVMF_VARS_MS, tmp_path) as guest:
        guest.expect("bad shim signature", 400)
        assert "Linux version" not in guest.output


def test_own_keys_iso_boots_only_where_the_key_is_enrolled(tmp_path: Path, keys: Path) -> None:
    profile = write_profile(
        tmp_path / "own.toml",
        PROFILES / "demo.toml",
        '[bootloader]\nsecure_boot = "own-keys"\n'
        f'secure_boot_key = "{keys / "db.key"}"\n'
        f'secure_boot_cert = "{keys / "db.crt"}"\n'
        '[boottest]\nfirmware = "uefi"\ntimeout = 600\n'
        '[iso]\noutput = "own.iso"\n',
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output
    # The boot test's firmware trusts only the test key: virt-fw-vars enrolled it as PK,
    # KEK and db, with no Microsoft key, so shim itself booted on the test key's signature.
    assert "virt-fw-vars" in result.output and "--set-pk" in result.output
    assert "OVMF_VARS_4M.ms.fd" not in result.output
    log = serial_log(work)
    assert SB_ON in log and "login:" in log
    iso = tmp_path / "own.iso"
    # With Microsoft's keys but not ours, shim starts and refuses the GRUB we signed.
    with secure_boot_guest(iso, secureboot.OVMF_VARS_MS, tmp_path) as guest:
        guest.expect("Verification failed", 400)
        assert "Linux version" not in guest.output
    # The same firmware with the certificate enrolled as a MOK (what mokutil --import and
    # MokManager do) boots it: shim trusts its MOK list for GRUB and the kernel.
    mok = tmp_path / "mok.fd"
    subprocess.run(
        [
            str(tools.VIRT_FW_VARS.find()),
            "--input",
            str(secureboot.OVMF_VARS_MS),
            "--add-mok",
            secureboot.OWNER_GUID,
            str(keys / "db.crt"),
            "--output",
            str(mok),
        ],
        check=True,
        capture_output=True,
    )
    with secure_boot_guest(iso, mok, tmp_path) as guest:
        guest.expect("login:", 500)
        assert SB_ON in guest.output and "MokListRT" in guest.output
