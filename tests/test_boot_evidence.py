"""The boot matrix tests read from the serial log which firmware, loader and medium booted;
these lines are copied from real logs (QEMU 7.2 under TCG), so each witness is seen to match
what the tools print, and to be absent, or in conflict, when it should."""

from __future__ import annotations

from tests.integration.helpers import Booted, booted_with

SEABIOS = "\x1bcSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n"
OVMF_USB = (
    'BdsDxe: starting Boot0002 "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:04.0-1" from '
    "PciRoot(0x0)/Pci(0x4,0x0)/USB(0x0,0x0)\r\n"
)
OVMF_CD = (
    'BdsDxe: starting Boot0001 "UEFI QEMU DVD-ROM QM00003 " from '
    "PciRoot(0x0)/Pci(0x1,0x1)/Ata(Secondary,Master,0x0)\r\n"
)
KERNEL_EFI = "[    0.000000] efi: EFI v2.70 by EDK II\r\n"
GRUB2 = "\x1b[2;24HGNU GRUB  version 2.06-13+deb12u2\r\n"
KERNEL_SR0 = "[    3.172614] sr 1:0:0:0: [sr0] scsi3-mmc drive: 4x/4x cd/rw xa/form2 tray\r\n"
USB_STORAGE = "[    6.710175] usb-storage 2-1:1.0: USB Mass Storage device detected\r\n"


def test_bios_cd_grub2() -> None:
    log = (
        SEABIOS
        + "Booting from DVD/CD...\r\n"
        + GRUB2
        + "\x1b[H\x1b[J\x1b[1;1Hlivecd-tui: GRUB 2 for pc\x1b[0mlivecd-tui: GRUB 2 for p"
        + KERNEL_SR0
        + "livecd: found the live medium on /dev/sr0 (iso9660, label X)\n"
    )
    assert booted_with(log) == Booted("seabios", "grub2-pc", "cd")


def test_uefi_usb_grub2() -> None:
    log = (
        OVMF_USB
        + GRUB2
        + "livecd-tui: GRUB 2 for efi\n"
        + KERNEL_EFI
        + KERNEL_SR0
        + USB_STORAGE
        + "livecd: found the live medium on /dev/sda (iso9660, label X)\n"
    )
    assert booted_with(log) == Booted("ovmf", "grub2-efi", "usb")


def test_isolinux_and_grub_legacy_banners() -> None:
    usb = (
        SEABIOS
        + "Booting from Hard Disk...\r\n"
        + "ISOLINUX 6.04 20200816 EHDD Copyright (C) 1994-2015 H. Peter Anvin et al\r\n"
        + USB_STORAGE
        + "livecd: found the live medium on /dev/sda1 (iso9660, label X)\n"
    )
    assert booted_with(usb) == Booted("seabios", "isolinux", "usb")
    cd = (
        SEABIOS
        + "Booting from DVD/CD...\r\nLoading stage2 ...\r\n"
        + "    GNU GRUB  version 0.97  (639K lower / 260992K upper memory)\r\n"
        + "livecd: medium found on /dev/sr0 (iso9660, label LIVECD_CLASSIC)\n"
    )
    assert booted_with(cd) == Booted("seabios", "grub-legacy", "cd")


def test_witnesses_that_disagree_or_are_missing_show() -> None:
    # The kernel's probe of QEMU's empty IDE CD drive says nothing about the medium.
    assert booted_with(KERNEL_SR0) == Booted("none", "none", "none")
    # A CD the firmware booted while the init mounted a USB disk; a kernel that saw UEFI
    # after SeaBIOS; GRUB 2 without the menu's echo.
    log = (
        SEABIOS
        + KERNEL_EFI
        + "Booting from DVD/CD...\r\n"
        + GRUB2
        + USB_STORAGE
        + "livecd: found the live medium on /dev/sda (iso9660, label X)\n"
    )
    assert booted_with(log) == Booted("ovmf+seabios", "grub2-?", "cd+usb")
    assert booted_with(OVMF_CD + GRUB2 + "livecd-tui: GRUB 2 for pc\n").medium == "cd"
