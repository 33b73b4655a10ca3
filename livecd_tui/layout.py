"""Where everything lives on the CD: the ISO's layout, declared once.

The iso stage lays the CD tree out from it, the boot loader stage writes its files and its
menu's kernel and initrd lines from it, and the initrd's ``/etc/livecd.conf`` hands the init
scripts the marker file, the system image and the /etc archive from it
(docs/initrd-contract.md). Paths are absolute, as the boot loaders and the booted init
script see the CD; :func:`in_tree` places one in a CD tree being built.
"""

from __future__ import annotations

from pathlib import Path

#: The kernel and the initrd every boot loader entry loads.
KERNEL = "/boot/vmlinuz"
INITRD = "/boot/initrd.img"
#: The marker file: its first line (iso.marker) tells this CD from the machine's other media.
MARKER = "/LABEL"
#: The live system: the squashfs image, and the /etc archive next to it (when there is one).
LIVE_DIR = "/live"
SQUASHFS = f"{LIVE_DIR}/system.squashfs"

#: GRUB's directory (GRUB 2's prefix; GRUB legacy's stage2 and menu).
GRUB_DIR = "/boot/grub"
GRUB_CFG = f"{GRUB_DIR}/grub.cfg"
MENU_LST = f"{GRUB_DIR}/menu.lst"
STAGE2_ELTORITO = f"{GRUB_DIR}/stage2_eltorito"
#: ISOLINUX's directory: isolinux.bin, ldlinux.c32 and its config.
ISOLINUX_DIR = "/isolinux"
ISOLINUX_CFG = f"{ISOLINUX_DIR}/isolinux.cfg"


def live_file(name: str) -> str:
    """Where a file of the live system's directory (the /etc archive) is on the CD."""
    return f"{LIVE_DIR}/{name}"


def relative(path: str) -> str:
    """*path* as a name inside the CD tree (what xorriso and the tree's links take)."""
    return path.lstrip("/")


def in_tree(tree: Path, path: str) -> Path:
    """Where the CD's *path* is in the CD tree (or a boot loader stage's part of it) *tree*."""
    return tree / relative(path)
