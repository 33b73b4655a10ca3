"""The method: what the profile's initrd format, writable strategy and boot loader mean.

Three options choose how the live CD works (docs/method.md, "How a live CD boots"):
``initrd.format`` (a cpio initramfs with ``/init``, or the article's ext2 RAM disk with
``/linuxrc``), ``writable.strategy`` (overlayfs, or the article's tmpfs root of links with
``/etc`` from an archive) and ``bootloader.type`` (GRUB 2, ISOLINUX, GRUB legacy). Each
choice is a small class here that answers what the stages ask of it, and
``Build.method`` (or :meth:`Method.of` for a profile alone) holds a build's three. Another
format, strategy or loader is one class here and its choice in options.py, not a string
compared in every stage.

Below the stages: this module imports none of them, only the layout and the boot loader
configs' writers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from livecd_tui import bootconf, layout
from livecd_tui.profile import Profile

#: The /etc archive's file name extension for each writable.archive_compression.
TAR_EXTENSIONS = {"bzip2": "bz2", "gzip": "gz", "xz": "xz"}


class Choice:
    """One option's choice, answering questions about the profile it was made for."""

    #: The option's value that selects this class.
    name: ClassVar[str]

    def __init__(self, profile: Profile) -> None:
        self.profile = profile


# ---------------------------------------------------------------------------- initrd.format


class InitrdFormat(Choice):
    """How the initrd is packed, and how its script hands over to the live system."""

    #: The init script (``livecd_tui/data/NAME``) at the initrd's root: what the kernel runs.
    script: ClassVar[str]
    #: The program that script moves into the live system's root with.
    switch_program: ClassVar[str]
    #: An ext2 RAM-disk image (mke2fs, debugfs, e2fsck), not a cpio archive.
    ram_disk: ClassVar[bool]
    #: Programs the exported script packs it with, where livecd-tui does that in Python.
    script_tools: ClassVar[tuple[str, ...]]

    def kernel_words(self) -> list[str]:
        """Words every boot menu entry passes to the kernel for this initrd."""
        return []


class Initramfs(InitrdFormat):
    """A cpio archive the kernel unpacks into RAM; its ``/init`` switch_roots (modern)."""

    name = "initramfs"
    script = "init"
    switch_program = "switch_root"
    ram_disk = False
    script_tools = ("cpio", "mknod")


class Ext2RamDisk(InitrdFormat):
    """The article's ext2 RAM-disk image; its ``/linuxrc`` pivot_roots (classic)."""

    name = "classic"
    script = "linuxrc"
    switch_program = "pivot_root"
    ram_disk = True
    script_tools = ()

    def kernel_words(self) -> list[str]:
        # The kernel's RAM disk must hold the whole ext2 image. No root=: with root=/dev/ram0
        # the kernel would run the image's /sbin/init and never /linuxrc.
        return [f"ramdisk_size={int(self.profile['initrd.size_mib']) * 1024}"]


# ---------------------------------------------------------------------------- writable.strategy


class WritableStrategy(Choice):
    """How the read-only system becomes writable at boot, and what that packs."""

    #: Kernel modules the initrd loads for it (each skipped when built into the kernel).
    modules: ClassVar[tuple[str, ...]]
    #: The live root is a tmpfs of links into the squashfs, with the archived dirs unpacked
    #: into it and the empty dirs made at boot (the article); /etc then lives in the
    #: archive, not in the squashfs. Else the whole squashfs is an overlay's lower layer.
    linked_root: ClassVar[bool]

    def archive_compression(self) -> str:
        """How the /etc archive is compressed (a writable.archive_compression choice), or
        "" when there is nothing to pack."""
        raise NotImplementedError

    def archive_name(self) -> str:
        """The archive's file name in the CD's live dir, or "" when there is none."""
        compression = self.archive_compression()
        return f"etc.tar.{TAR_EXTENSIONS[compression]}" if compression else ""

    def archive_file(self) -> str:
        """The archive's path on the CD (what livecd.conf names), or ""."""
        name = self.archive_name()
        return layout.live_file(name) if name else ""

    def archive_dirs(self) -> list[str]:
        """The system's top-level dirs packed whole into the archive (not the squashfs)."""
        return []

    def empty_dirs(self) -> list[str]:
        """Top-level dirs made empty at boot (not packed at all)."""
        return []


class Overlay(WritableStrategy):
    """overlayfs over the squashfs, upper layer on tmpfs (modern); the /etc overrides, if
    any, are packed and unpacked into the overlay."""

    name = "overlay"
    modules = ("overlay",)
    linked_root = False

    def archive_compression(self) -> str:
        return "gzip" if self.profile["writable.overrides"] else ""


class LinkedRoot(WritableStrategy):
    """The article's tmpfs root: links into the squashfs, /etc from an archive, /home /root
    /var made empty at boot (classic)."""

    name = "classic"
    modules = ()
    linked_root = True

    def archive_compression(self) -> str:
        return str(self.profile["writable.archive_compression"])

    def archive_dirs(self) -> list[str]:
        return list(self.profile["writable.archive_dirs"])

    def empty_dirs(self) -> list[str]:
        return list(self.profile["writable.empty_dirs"])


# ---------------------------------------------------------------------------- bootloader.type


class BootLoader(Choice):
    """The boot loader on the CD: its menu, what it boots from, how the ISO carries it."""

    #: Where its menu goes on the CD.
    config_file: ClassVar[str]
    #: Boots from UEFI too (the kernel then wants FAT for the EFI system partition).
    uefi: ClassVar[bool]
    #: With iso.hybrid, the same ISO boots from a USB stick.
    usb: ClassVar[bool]
    #: What it adds to the ISO besides kernel, initrd and images, for the size estimate
    #: before it is built; measured on the demo build (GRUB 2: BIOS core image, EFI image
    #: twice, modules; ISO 9660 metadata).
    size_estimate: ClassVar[int]
    #: The option naming its boot image file, if it has one (nothing to look for then).
    image_option: ClassVar[str] = ""

    def config_text(self, menu: bootconf.Menu) -> str:
        """Its menu file's text."""
        raise NotImplementedError

    def iso_argv(self, tree: Path, output: Path, epoch: int) -> list[str]:
        """The argv that writes the ISO of *tree* to *output* with its boot records, by the
        profile's iso.tool, iso.volume_label and iso.hybrid."""
        raise NotImplementedError

    def _iso(self) -> tuple[str, str, bool]:
        p = self.profile
        return p["iso.volume_label"], p["iso.tool"], bool(p["iso.hybrid"])


class Grub2(BootLoader):
    """GRUB 2: one image for BIOS and UEFI, CD and USB stick."""

    name = "grub2"
    config_file = layout.GRUB_CFG
    uefi = True
    usb = True
    size_estimate = 10 * 1024 * 1024

    def config_text(self, menu: bootconf.Menu) -> str:
        return bootconf.grub_cfg(menu)

    def iso_argv(self, tree: Path, output: Path, epoch: int) -> list[str]:
        label, tool, hybrid = self._iso()
        return bootconf.xorriso_grub2_argv(
            tree, output, label, hybrid=hybrid, efi=True, epoch=epoch, tool=tool
        )


class Isolinux(BootLoader):
    """ISOLINUX: small, BIOS only, also as an isohybrid USB image."""

    name = "isolinux"
    config_file = layout.ISOLINUX_CFG
    uefi = False
    usb = True
    size_estimate = 1024 * 1024

    def config_text(self, menu: bootconf.Menu) -> str:
        return bootconf.isolinux_cfg(menu)

    def iso_argv(self, tree: Path, output: Path, epoch: int) -> list[str]:
        label, tool, hybrid = self._iso()
        return bootconf.xorriso_isolinux_argv(
            tree, output, label, hybrid=hybrid, epoch=epoch, tool=tool
        )


class GrubLegacy(BootLoader):
    """The article's GRUB legacy: stage2_eltorito and a menu.lst, BIOS CD only."""

    name = "grub-legacy"
    config_file = layout.MENU_LST
    uefi = False
    usb = False
    size_estimate = 1024 * 1024
    image_option = "bootloader.stage2_eltorito"

    def config_text(self, menu: bootconf.Menu) -> str:
        return bootconf.menu_lst(menu)

    def iso_argv(self, tree: Path, output: Path, epoch: int) -> list[str]:
        label, tool, _hybrid = self._iso()
        return bootconf.mkisofs_grub_legacy_argv(tool, tree, output, label, epoch=epoch)


# ---------------------------------------------------------------------------- the three


#: Every class of each option, by its choice (a test keeps them equal to options.py's).
INITRD_FORMATS: dict[str, type[InitrdFormat]] = {c.name: c for c in (Initramfs, Ext2RamDisk)}
WRITABLE_STRATEGIES: dict[str, type[WritableStrategy]] = {c.name: c for c in (Overlay, LinkedRoot)}
BOOT_LOADERS: dict[str, type[BootLoader]] = {c.name: c for c in (Grub2, Isolinux, GrubLegacy)}


@dataclass(frozen=True)
class Method:
    """A build's method: its initrd format, writable strategy and boot loader."""

    initrd: InitrdFormat
    writable: WritableStrategy
    loader: BootLoader

    @classmethod
    def of(cls, profile: Profile) -> Method:
        """The method *profile* chooses (its values read when asked, so always current)."""
        return cls(
            INITRD_FORMATS[profile["initrd.format"]](profile),
            WRITABLE_STRATEGIES[profile["writable.strategy"]](profile),
            BOOT_LOADERS[profile["bootloader.type"]](profile),
        )
