"""The programs and files a build needs, where to find them and which package provides them.

Used by the ``preflight`` stage, ``livecd-tui check`` and the set-up script's report on
machines without apt (an LFS box).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from livecd_tui import procs, secureboot, toolbox
from livecd_tui.method import BootLoader, Grub2, GrubLegacy, Isolinux, Method
from livecd_tui.profile import Profile


@dataclass(frozen=True)
class Tool:
    """A program (looked up on PATH) or a file (looked up by glob) the build needs."""

    name: str
    why: str
    debian: str
    lfs: str
    #: Globs for files; empty for programs on PATH.
    paths: tuple[str, ...] = ()
    version_args: tuple[str, ...] = ("--version",)
    #: The profile option that makes the build need it: what ``check`` and the TUI point a
    #: user to when it is missing (the boot loader's choice for the rest).
    option: str = "bootloader.type"

    def find(self) -> str | None:
        """The program's or file's path, or None when it is missing."""
        if not self.paths:
            return shutil.which(self.name, path=_search_path())
        for pattern in self.paths:
            for match in sorted(glob.glob(pattern)):
                if os.path.exists(match):
                    return match
        return None

    def version(self, path: str) -> str:
        """The first line the program prints about its version ("" for files)."""
        if self.paths or not self.version_args:
            return ""
        try:
            result = procs.run([path, *self.version_args], timeout=10)
        except OSError:  # not runnable, or hung (a TimeoutError)
            return ""
        text = (result.stdout or result.stderr).strip().splitlines()
        return text[0][:80] if text else ""


def _search_path() -> str:
    # Tools like mke2fs live in /sbin, which is not on every user's PATH.
    extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    return os.pathsep.join([os.environ.get("PATH", ""), *extra])


MKSQUASHFS = Tool(
    "mksquashfs",
    "packs the system image",
    "squashfs-tools",
    "squashfs-tools (not in BLFS: build it from its source)",
    version_args=("-version",),
)
BUSYBOX = Tool(
    "busybox",
    "shell and commands of the initrd",
    "busybox-static",
    "busybox (not in BLFS: build it static from its source)",
    version_args=("--help",),
    option="initrd.busybox",
)
MKE2FS = Tool(
    "mke2fs",
    "makes the classic ext2 RAM-disk image",
    "e2fsprogs",
    "e2fsprogs (LFS)",
    version_args=("-V",),
    option="initrd.format",
)
GZIP = Tool("gzip", "compresses the initrd", "gzip", "gzip (LFS)")
XZ = Tool("xz", "compresses the initrd", "xz-utils", "xz (LFS)")
ZSTD = Tool("zstd", "compresses the initrd", "zstd", "zstd (LFS)")
TAR = Tool("tar", "packs the /etc archive", "tar", "tar (LFS)")
BZIP2 = Tool("bzip2", "compresses the /etc archive", "bzip2", "bzip2 (LFS)")
MAKE = Tool("make", "builds the kernel", "make", "make (LFS)")
GCC = Tool("gcc", "builds the kernel", "gcc", "gcc (LFS)")
BC = Tool("bc", "builds the kernel", "bc", "bc (LFS)")
FLEX = Tool("flex", "builds the kernel", "flex", "flex (LFS)")
BISON = Tool("bison", "builds the kernel", "bison", "bison (LFS)")
GRUB_MKIMAGE = Tool("grub-mkimage", "makes GRUB 2's boot images", "grub-common", "grub (LFS)")
GRUB_PC = Tool(
    "grub i386-pc modules",
    "GRUB 2 for BIOS",
    "grub-pc-bin",
    "grub (LFS)",
    paths=("/usr/lib/grub/i386-pc/modinfo.sh",),
)
GRUB_EFI = Tool(
    "grub x86_64-efi modules",
    "GRUB 2 for UEFI",
    "grub-efi-amd64-bin",
    "grub (BLFS: GRUB-2 for EFI)",
    paths=("/usr/lib/grub/x86_64-efi/modinfo.sh",),
)
MFORMAT = Tool("mformat", "makes the UEFI boot partition image", "mtools", "mtools (BLFS)")
MCOPY = Tool("mcopy", "fills the UEFI boot partition image", "mtools", "mtools (BLFS)")
ISOLINUX_BIN = Tool(
    "isolinux.bin",
    "isolinux boot loader",
    "isolinux",
    "syslinux (not in BLFS: build it from its source)",
    paths=(
        "/usr/lib/ISOLINUX/isolinux.bin",
        "/usr/share/syslinux/isolinux.bin",
        "/usr/lib/syslinux/isolinux.bin",
    ),
)
LDLINUX = Tool(
    "ldlinux.c32",
    "isolinux's core module",
    "syslinux-common",
    "syslinux (not in BLFS: build it from its source)",
    paths=(
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "/usr/share/syslinux/ldlinux.c32",
        "/usr/lib/syslinux/ldlinux.c32",
    ),
)
ISOHDPFX = Tool(
    "isohdpfx.bin",
    "isolinux's hybrid MBR for USB sticks",
    "isolinux",
    "syslinux (not in BLFS: build it from its source)",
    paths=(
        "/usr/lib/ISOLINUX/isohdpfx.bin",
        "/usr/share/syslinux/isohdpfx.bin",
        "/usr/lib/syslinux/isohdpfx.bin",
    ),
)
STAGE2 = Tool(
    "stage2_eltorito",
    "GRUB legacy's CD boot loader",
    "grub-legacy (apt-get download grub-legacy; dpkg-deb -x)",
    "GRUB 0.97 (build it from its source)",
    paths=(
        "/usr/lib/grub/*-pc/stage2_eltorito",
        "/boot/grub/stage2_eltorito",
        os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
            "livecd-tui/grub-legacy/usr/lib/grub/*-pc/stage2_eltorito",
        ),
    ),
    option="bootloader.stage2_eltorito",
)
SHIM = Tool(
    "shimx64.efi.signed",
    "Debian's shim, signed by Microsoft (Secure Boot)",
    "shim-signed",
    "none: a signed shim comes only from a distribution",
    paths=("/usr/lib/shim/shimx64.efi.signed",),
    option="bootloader.secure_boot",
)
MOKMANAGER = Tool(
    "mmx64.efi.signed",
    "shim's MOK manager (Secure Boot)",
    "shim-signed",
    "none: a signed MokManager comes only from a distribution",
    paths=("/usr/lib/shim/mmx64.efi.signed",),
    option="bootloader.secure_boot",
)
GRUB_SIGNED = Tool(
    "gcdx64.efi.signed",
    "Debian's signed CD GRUB (Secure Boot with shim)",
    "grub-efi-amd64-signed",
    'none: use bootloader.secure_boot = "own-keys" on LFS',
    paths=("/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",),
    option="bootloader.secure_boot",
)
SBSIGN = Tool(
    "sbsign",
    "signs GRUB, shim and the kernel with your key",
    "sbsigntool",
    "sbsigntools (not in BLFS: build it from its source)",
    version_args=("--help",),
    option="bootloader.secure_boot",
)
XORRISO = Tool("xorriso", "writes the ISO image", "xorriso", "libisoburn (BLFS)", option="iso.tool")
GENISOIMAGE = Tool(
    "genisoimage",
    "writes the ISO image",
    "genisoimage",
    "cdrtools (not in BLFS: build it from its source)",
    option="iso.tool",
)
MKISOFS = Tool(
    "mkisofs",
    "writes the ISO image",
    "genisoimage (mkisofs link) or xorriso",
    "cdrtools (not in BLFS: build it from its source)",
    option="iso.tool",
)
SHA256SUM = Tool("sha256sum", "writes the ISO's checksum file", "coreutils", "coreutils (LFS)")
QEMU = Tool(
    "qemu-system-x86_64",
    "boots the ISO to test it",
    "qemu-system-x86",
    "qemu (BLFS)",
    option="boottest.enabled",
)
OVMF = Tool(
    "OVMF",
    "UEFI firmware for the boot test",
    "ovmf",
    "edk2 OVMF (not in BLFS: build it from its source)",
    paths=(
        "/usr/share/ovmf/OVMF.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/qemu/OVMF.fd",
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
    ),
    option="boottest.firmware",
)

OVMF_SECBOOT = Tool(
    "OVMF Secure Boot",
    "UEFI firmware with Secure Boot for the boot test",
    "ovmf",
    "edk2 OVMF built with -D SECURE_BOOT_ENABLE -D SMM_REQUIRE",
    paths=("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",),
    option="boottest.firmware",
)
VIRT_FW_VARS = Tool(
    "virt-fw-vars",
    "enrolls your certificate in the boot test's UEFI variables",
    "none (PyPI: pip install virt-firmware)",
    "pip install virt-firmware",
    # Installed with livecd-tui's test extras: next to its Python.
    paths=(
        os.path.join(os.path.dirname(sys.executable), "virt-fw-vars"),
        "/usr/local/bin/virt-fw-vars",
        "/usr/bin/virt-fw-vars",
    ),
    option="boottest.secure_boot_vars",
)


def required_tools(profile: Profile) -> list[Tool]:
    """Every tool the profile's build will use, in stage order."""
    p = profile
    tools = [MKSQUASHFS]
    if p["system.source"] == "busybox" or toolbox.choose(p).kind == "busybox":
        tools.append(BUSYBOX)
    if p["kernel.source"] == "tree":
        tools += [MAKE, GCC, BC, FLEX, BISON]
    tools.append({"gzip": GZIP, "xz": XZ, "zstd": ZSTD}[p["initrd.compression"]])
    method = Method.of(p)
    if method.initrd.ram_disk:
        tools.append(MKE2FS)
    archive = method.writable.archive_compression()
    if archive:  # tar, and the program it runs to compress
        tools += [TAR, {"bzip2": BZIP2, "gzip": GZIP, "xz": XZ}[archive]]
    loader = method.loader
    if not (loader.image_option and p[loader.image_option]):  # else its image is named
        tools += LOADER_TOOLS[type(loader)]
    if isinstance(loader, Grub2):
        if secureboot.mode_of(p) == "shim":
            tools += [SHIM, MOKMANAGER, GRUB_SIGNED]
        elif secureboot.mode_of(p) == "own-keys":
            tools += [SHIM, MOKMANAGER, SBSIGN]
    tools.append(
        {"xorriso": XORRISO, "genisoimage": GENISOIMAGE, "mkisofs": MKISOFS}[p["iso.tool"]]
    )
    if p["iso.checksum"]:
        tools.append(SHA256SUM)
    if p["boottest.enabled"]:
        tools.append(QEMU)
        if p["boottest.firmware"] == "uefi":
            tools.append(OVMF)
            if secureboot.mode_of(p) != "off":
                tools.append(OVMF_SECBOOT)
                if secureboot.mode_of(p) == "own-keys" and not p["boottest.secure_boot_vars"]:
                    tools.append(VIRT_FW_VARS)
    return list(dict.fromkeys(tools))


#: What each boot loader needs on this host to make or gather its files for the CD.
LOADER_TOOLS: dict[type[BootLoader], list[Tool]] = {
    Grub2: [GRUB_MKIMAGE, GRUB_PC, GRUB_EFI, MFORMAT, MCOPY],
    Isolinux: [ISOLINUX_BIN, LDLINUX, ISOHDPFX],
    GrubLegacy: [STAGE2],
}


def find(tool: Tool) -> Path | None:
    found = tool.find()
    return Path(found) if found else None


def missing_report(tools: list[Tool]) -> list[str]:
    """One line per missing tool: what it is for and which package provides it."""
    lines = []
    for tool in tools:
        if tool.find() is None:
            lines.append(
                f"missing {tool.name} ({tool.why}): Debian package {tool.debian}; "
                f"LFS/BLFS: {tool.lfs}"
            )
    return lines


def all_tools() -> list[Tool]:
    """Every tool any profile may need."""
    return [value for value in globals().values() if isinstance(value, Tool)]


if __name__ == "__main__":
    # `python -m livecd_tui.tools`: the set-up script's report of what is missing.
    report = missing_report(all_tools())
    print("\n".join(report) if report else "setup: every tool livecd-tui can use is here")
    raise SystemExit(1 if report else 0)
