"""Kernel configuration: what a live CD needs from the kernel, and the check.

The requirements are data (:func:`requirements` builds the list for one profile); the check
compares them with a parsed ``.config`` (:func:`parse_config`), found by :func:`find_config`
in the usual places or extracted from the kernel image itself, like the kernel's
``scripts/extract-ikconfig``. When no config exists at all, :func:`check_from_modules` gives a
partial answer from ``modules.builtin`` and ``modules.dep``.

Pure Python: no Kconfig parser is used (Kconfiglib cannot read current kernels); ``.config``
is plain ``CONFIG_NAME=value`` text.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import os
import re
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from livecd_tui import procs

Need = Literal["y", "ym"]
State = Literal["ok", "module", "missing", "wrong"]

#: Linux 7.0 removed ``/linuxrc`` handling and ``/proc/sys/kernel/real-root-dev``.
CLASSIC_GONE = (7, 0)

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$")


# ----------------------------------------------------------------------------- parsing


def parse_config(text: str) -> dict[str, str]:
    """Parse ``.config`` text into ``{symbol: value}``, symbols without ``CONFIG_``.

    ``CONFIG_X=y`` gives ``"y"``, ``=m`` gives ``"m"``, numbers stay as written, string values
    lose their surrounding double quotes, and ``# CONFIG_X is not set`` gives ``"n"``.
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            values[m.group(1)] = value
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def parse_release(release: str | None) -> tuple[int, int] | None:
    """``(major, minor)`` of a kernel release such as ``6.1.0-56-amd64``, or None."""
    if not release:
        return None
    m = re.match(r"^(\d+)\.(\d+)", release.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


# ----------------------------------------------------------------------------- the image


def _setup_header(data: bytes) -> bool:
    return len(data) >= 0x270 and data[0x202:0x206] == b"HdrS"


def kernel_release_from_image(image: Path) -> str | None:
    """The release of an x86 bzImage, read from its setup header (as ``file`` does).

    The 16-bit ``kernel_version`` field at 0x20E points (minus 0x200) at a NUL-terminated
    string such as ``6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP ...``; the
    release is its first word. None when the file is not a bzImage or has no version.
    """
    try:
        with open(image, "rb") as handle:
            head = handle.read(0x10000 + 0x400)
    except OSError:
        return None
    if not _setup_header(head):
        return None
    (pointer,) = struct.unpack_from("<H", head, 0x20E)
    if pointer == 0:
        return None
    start = pointer + 0x200
    end = head.find(b"\0", start, start + 512)
    if start >= len(head) or end < 0:
        return None
    words = head[start:end].decode("ascii", "replace").split()
    if not words or not re.match(r"^\d+\.\d+", words[0]):
        return None
    return words[0]


#: Magic bytes of the compressed payloads a bzImage can carry, as extract-ikconfig scans them.
_PAYLOAD_MAGICS: tuple[tuple[str, bytes], ...] = (
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("lzo", b"\x89LZO"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
)

#: A decompressed kernel is tens of MiB; never inflate more than this from one candidate.
_MAX_PAYLOAD = 512 * 1024 * 1024
#: Stop scanning after this many candidate offsets per format (false magics are common).
_MAX_CANDIDATES = 64

_IKCFG_START = b"IKCFG_ST\x1f\x8b\x08"


def _inflate_gzip(data: bytes, limit: int = _MAX_PAYLOAD) -> bytes:
    """One gzip member from the start of ``data``; trailing bytes are ignored."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return decomp.decompress(data, limit)


def _inflate_xz(data: bytes) -> bytes:
    decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return decomp.decompress(data, _MAX_PAYLOAD)


def _inflate_lzma(data: bytes) -> bytes:
    decomp = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    return decomp.decompress(data, _MAX_PAYLOAD)


def _inflate_bzip2(data: bytes) -> bytes:
    decomp = bz2.BZ2Decompressor()
    return decomp.decompress(data, _MAX_PAYLOAD)


def _external(argv: list[str]) -> Callable[[bytes], bytes]:
    """Decompress through a command (zstd, lz4, lzop), as extract-ikconfig does."""

    def run(data: bytes) -> bytes:
        if shutil.which(argv[0]) is None:
            raise OSError(f"{argv[0]} not installed")
        proc = procs.run(argv, input=data, timeout=120)
        # Trailing garbage after the stream makes these tools complain; keep what came out.
        if not proc.out:
            raise OSError(proc.stderr)
        return proc.out

    return run


def _inflate_zstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        return _external(["zstd", "-d", "-c", "-q"])(data)
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


_INFLATE: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _inflate_gzip,
    "xz": _inflate_xz,
    "lzma": _inflate_lzma,
    "bzip2": _inflate_bzip2,
    "zstd": _inflate_zstd,
    "lz4": _external(["lz4", "-d", "-c", "-q"]),
    "lzo": _external(["lzop", "-d", "-c", "-q"]),
}


def _ikconfig_in(blob: bytes) -> str | None:
    """The config text stored between ``IKCFG_ST`` and ``IKCFG_ED`` (gzip) in ``blob``."""
    pos = blob.find(_IKCFG_START)
    while pos >= 0:
        try:
            text = _inflate_gzip(blob[pos + 8 :], 16 * 1024 * 1024)
        except (zlib.error, EOFError):
            text = b""
        if b"CONFIG_" in text:
            return text.decode("utf-8", "replace")
        pos = blob.find(_IKCFG_START, pos + 1)
    return None


def _payload_candidates(data: bytes) -> Iterable[tuple[str, int]]:
    """Offsets where a compressed kernel may start: the header's payload_offset, then scans."""
    seen: set[int] = set()
    if _setup_header(data):
        (version,) = struct.unpack_from("<H", data, 0x206)
        setup_sects = data[0x1F1] or 4
        if version >= 0x208:
            offset, length = struct.unpack_from("<II", data, 0x248)
            start = (setup_sects + 1) * 512 + offset
            for name, magic in _PAYLOAD_MAGICS:
                if length and data[start : start + len(magic)] == magic:
                    seen.add(start)
                    yield name, start
    for name, magic in _PAYLOAD_MAGICS:
        pos = data.find(magic)
        count = 0
        while pos >= 0 and count < _MAX_CANDIDATES:
            if pos not in seen:
                yield name, pos
            count += 1
            pos = data.find(magic, pos + 1)


def extract_ikconfig(image: Path) -> str | None:
    """The config built into a kernel image with ``CONFIG_IKCONFIG``, or None.

    Works like ``scripts/extract-ikconfig``: look for ``IKCFG_ST`` in the file itself (a
    vmlinux), else decompress the payload of the bzImage (gzip, xz, bzip2 and lzma in Python;
    zstd, lz4 and lzo through the ``zstd``/``lz4``/``lzop`` commands when installed) and look
    there.
    """
    try:
        data = image.read_bytes()
    except OSError:
        return None
    found = _ikconfig_in(data)
    if found is not None:
        return found
    for name, pos in _payload_candidates(data):
        try:
            payload = _INFLATE[name](data[pos:])
        except (
            OSError,
            EOFError,
            ValueError,
            lzma.LZMAError,
            zlib.error,
        ):
            continue
        if not payload:
            continue
        found = _ikconfig_in(payload)
        if found is not None:
            return found
    return None


def find_config(
    image: Path | None,
    release: str | None,
    tree: Path | None = None,
    modules_dir: Path | None = None,
) -> tuple[str, str] | None:
    """Find a kernel's config: ``(where it came from, text)`` or None.

    Looks, in order, at ``tree/.config``; ``config-RELEASE`` next to the image, in the root
    that holds ``modules_dir`` and in ``/boot``; ``MODULES/build/.config``;
    ``/proc/config.gz`` when the running kernel is ``release``; and finally the config built
    into the image (``CONFIG_IKCONFIG``). ``release`` defaults to the one in the image header.
    """
    if release is None and image is not None:
        release = kernel_release_from_image(image)
    candidates: list[Path] = []
    if tree is not None:
        candidates.append(tree / ".config")
    if release:
        if image is not None:
            candidates.append(image.parent / f"config-{release}")
        if modules_dir is not None and len(modules_dir.parts) >= 4:
            # ROOT/lib/modules/RELEASE -> ROOT/boot/config-RELEASE
            candidates.append(modules_dir.parents[2] / "boot" / f"config-{release}")
        candidates.append(Path("/boot") / f"config-{release}")
        if modules_dir is not None:
            candidates.append(modules_dir / "build" / ".config")
        candidates.append(Path("/lib/modules") / release / "build" / ".config")
    seen: set[Path] = set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        try:
            return str(path), path.read_text(errors="replace")
        except OSError:
            continue
    if release and release == os.uname().release:
        try:
            with gzip.open("/proc/config.gz", "rt", errors="replace") as handle:
                return "/proc/config.gz", handle.read()
        except OSError:
            pass
    if image is not None:
        text = extract_ikconfig(image)
        if text is not None:
            return f"{image} (IKCONFIG)", text
    return None


# ----------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class Requirement:
    """One thing the kernel must have.

    ``need`` is ``"y"`` (built in) or ``"ym"`` (built in, or a module the initrd loads).
    ``min_value`` turns it into a numeric check (``symbol >= min_value``). ``any_of`` lists
    alternatives, each a group of symbols that must all meet ``need``; when empty the
    requirement is ``symbol`` alone. ``before`` is the kernel version from which the
    requirement can no longer be met at all (the feature was removed), e.g. ``(7, 0)``;
    ``since`` the first version that has the symbol at all (``RD_ZSTD`` came in 5.9), so a
    missing symbol on an older kernel says to choose something else rather than to enable it.
    """

    symbol: str
    need: Need
    reason: str
    min_value: int | None = None
    before: tuple[int, int] | None = None
    any_of: tuple[tuple[str, ...], ...] = ()
    since: tuple[int, int] | None = None

    def alternatives(self) -> tuple[tuple[str, ...], ...]:
        """The symbol groups that satisfy this requirement, any one of them."""
        return self.any_of or ((self.symbol,),)

    def describe(self) -> str:
        """``EXT2_FS`` or ``EXT2_FS | EXT4_FS+EXT4_USE_FOR_EXT2``."""
        return " | ".join("+".join(group) for group in self.alternatives())


#: Initrd compression (``initrd.compression``) -> the kernel's decompressor.
RD_SYMBOLS: dict[str, str] = {
    "gzip": "RD_GZIP",
    "xz": "RD_XZ",
    "zstd": "RD_ZSTD",
    "lz4": "RD_LZ4",
    "bzip2": "RD_BZIP2",
    "lzma": "RD_LZMA",
    "lzo": "RD_LZO",
}

#: Squashfs compressor (``system.compressor``) -> squashfs's decompressor option.
SQUASHFS_SYMBOLS: dict[str, str] = {
    "gzip": "SQUASHFS_ZLIB",
    "zlib": "SQUASHFS_ZLIB",
    "xz": "SQUASHFS_XZ",
    "zstd": "SQUASHFS_ZSTD",
    "lz4": "SQUASHFS_LZ4",
    "lzo": "SQUASHFS_LZO",
}

#: The first kernel that can unpack an initrd with each compressor (others: long before 3.0).
RD_SINCE: dict[str, tuple[int, int]] = {"zstd": (5, 9), "lz4": (3, 11)}

#: The first kernel whose squashfs reads each compressor.
SQUASHFS_SINCE: dict[str, tuple[int, int]] = {"zstd": (4, 14), "lz4": (3, 19)}

MEDIA = ("cdrom", "usb", "virtio", "nvme", "sata")


def _r(
    symbol: str,
    need: Need,
    reason: str,
    *,
    min_value: int | None = None,
    before: tuple[int, int] | None = None,
    any_of: tuple[tuple[str, ...], ...] = (),
    since: tuple[int, int] | None = None,
) -> Requirement:
    return Requirement(symbol, need, reason, min_value, before, any_of, since)


def _media_requirements(media: Sequence[str]) -> list[Requirement]:
    reqs: list[Requirement] = []
    scsi_disk = False
    if "cdrom" in media:
        reqs += [
            _r("SCSI", "ym", "CD drives are driven through the SCSI layer"),
            _r("BLK_DEV_SR", "ym", "the CD drive as /dev/sr0"),
            _r("CDROM", "ym", "the CD-ROM layer under sr"),
            _r("ATA", "ym", "the (S)ATA bus the CD drive hangs on"),
            _r("ATA_SFF", "y", "old-style ATA controllers (needed for ata_piix)"),
            _r("ATA_BMDMA", "y", "bus-master DMA for old-style ATA (needed for ata_piix)"),
            _r("ATA_PIIX", "ym", "the Intel PIIX IDE controller (QEMU's CD drive, older PCs)"),
            _r("SATA_AHCI", "ym", "AHCI SATA controllers (CD drives on modern PCs)"),
        ]
    if "sata" in media:
        reqs += [
            _r("SCSI", "ym", "SATA disks are driven through the SCSI layer"),
            _r("ATA", "ym", "the SATA bus"),
            _r("SATA_AHCI", "ym", "AHCI SATA controllers"),
        ]
        scsi_disk = True
    if "usb" in media:
        reqs += [
            _r("SCSI", "ym", "USB sticks are driven through the SCSI layer"),
            _r("USB", "ym", "USB support"),
            _r("USB_XHCI_HCD", "ym", "USB 3 host controllers"),
            _r("USB_XHCI_PCI", "ym", "the PCI glue of USB 3 host controllers"),
            _r("USB_EHCI_HCD", "ym", "USB 2 host controllers"),
            _r("USB_EHCI_PCI", "ym", "the PCI glue of USB 2 host controllers"),
            _r("USB_STORAGE", "ym", "USB mass storage (sticks, USB CD drives)"),
            _r("USB_UAS", "ym", "USB attached SCSI (fast USB 3 drives)"),
        ]
        scsi_disk = True
    if "virtio" in media:
        reqs += [
            _r("VIRTIO_PCI", "ym", "virtio devices of virtual machines"),
            _r("VIRTIO_BLK", "ym", "virtio disks (/dev/vda)"),
            _r("SCSI", "ym", "virtio-scsi goes through the SCSI layer"),
            _r("SCSI_VIRTIO", "ym", "virtio-scsi disks and CD drives"),
        ]
    if "nvme" in media:
        reqs.append(_r("BLK_DEV_NVME", "ym", "NVMe disks (/dev/nvme0n1)"))
    if scsi_disk:
        reqs.append(_r("BLK_DEV_SD", "ym", "disks and sticks as /dev/sd*"))
    return reqs


def requirements(
    initrd_format: str,
    writable: str,
    squashfs_compressor: str,
    initrd_compression: str,
    media: Sequence[str],
    uefi: bool,
    initrd_size_mib: int,
    persistence: str = "off",
    encrypted_persistence: bool = False,
) -> list[Requirement]:
    """The kernel symbols one live CD needs, each once, with the reason in one line.

    ``initrd_format`` is ``"initramfs"`` or ``"classic"`` (the article's ext2 RAM disk with
    ``/linuxrc``); ``writable`` is ``"overlay"`` or ``"classic"`` (symlinks + ``/etc``
    archive); ``media`` is a subset of :data:`MEDIA`; ``initrd_compression`` may be
    ``"none"``; ``persistence`` is ``"off"``, ``"partition"`` or ``"file"`` (a LUKS store
    with ``encrypted_persistence``). Raises ValueError on an unknown choice.
    """
    if initrd_format not in ("initramfs", "classic"):
        raise ValueError(f"unknown initrd format {initrd_format!r}")
    if writable not in ("overlay", "classic"):
        raise ValueError(f"unknown writable strategy {writable!r}")
    if squashfs_compressor not in SQUASHFS_SYMBOLS:
        raise ValueError(f"the kernel's squashfs cannot read {squashfs_compressor!r}")
    if initrd_compression not in RD_SYMBOLS and initrd_compression not in ("none", ""):
        raise ValueError(f"the kernel cannot unpack a {initrd_compression!r} initrd")
    unknown = [m for m in media if m not in MEDIA]
    if unknown:
        raise ValueError(f"unknown media {unknown}; known: {', '.join(MEDIA)}")

    classic = initrd_format == "classic"
    reqs: list[Requirement] = []
    if classic:
        reqs.append(
            _r(
                "BLK_DEV_INITRD",
                "y",
                "the boot loader's initrd reaches the kernel, which runs its /linuxrc "
                "(that classic path exists only before Linux 7.0)",
                before=CLASSIC_GONE,
            )
        )
    else:
        reqs.append(_r("BLK_DEV_INITRD", "y", "the boot loader's initramfs reaches the kernel"))
    if initrd_compression in RD_SYMBOLS:
        reqs.append(
            _r(
                RD_SYMBOLS[initrd_compression],
                "y",
                f"the kernel itself unpacks the {initrd_compression} initrd",
                since=RD_SINCE.get(initrd_compression),
            )
        )
    reqs += [
        _r("BINFMT_ELF", "y", "runs the programs (busybox) of the initrd"),
        _r(
            "BINFMT_SCRIPT",
            "y",
            "the init script is a #! shell script; as a module it could not even start",
        ),
        _r("DEVTMPFS", "y", "the kernel fills /dev with device nodes"),
        _r("TMPFS", "y", "the writable root (and overlay upper) lives in RAM"),
        _r("PROC_FS", "y", "the init script reads /proc (cmdline, mounts)"),
        _r("SYSFS", "y", "devices and block device names under /sys"),
        _r("MODULES", "y", "the initrd loads the drivers that are modules"),
        _r("TTY", "y", "/dev/console and terminals: without them init and the shell are mute"),
    ]
    if classic:
        size_kib = int(initrd_size_mib) * 1024
        reqs += [
            _r(
                "BLK_DEV_RAM",
                "y",
                "the classic initrd is a RAM disk; as a module the kernel "
                "silently ignores the initrd",
            ),
            _r(
                "BLK_DEV_RAM_SIZE",
                "y",
                f"the RAM disk must hold the {initrd_size_mib} MiB image (or pass "
                f"ramdisk_size={size_kib} on the kernel command line)",
                min_value=size_kib,
            ),
            _r(
                "EXT2_FS",
                "y",
                "the initrd image is ext2 and is mounted before any module can load",
                any_of=(("EXT2_FS",), ("EXT4_FS", "EXT4_USE_FOR_EXT2")),
            ),
            _r(
                "PROC_SYSCTL",
                "y",
                "/linuxrc writes /proc/sys/kernel/real-root-dev so the "
                "kernel keeps the root it pivoted into",
            ),
        ]
    reqs += [
        _r("BLK_DEV_LOOP", "ym", "the system image is a file on the medium, mounted via loop"),
        _r("SQUASHFS", "ym", "the system image is squashfs"),
        _r(
            SQUASHFS_SYMBOLS[squashfs_compressor],
            "y",
            f"squashfs must read {squashfs_compressor} blocks (a bool inside squashfs)",
            since=SQUASHFS_SINCE.get(squashfs_compressor),
        ),
        _r("ISO9660_FS", "ym", "the medium is an ISO 9660 filesystem"),
    ]
    if writable == "overlay":
        reqs.append(
            _r(
                "OVERLAY_FS",
                "ym",
                "a tmpfs overlay makes the read-only system writable",
                since=(3, 18),
            )
        )
    reqs += _media_requirements(media)
    if uefi or "usb" in media:
        reqs.append(_r("VFAT_FS", "ym", "the EFI system partition and USB media are FAT"))
    reqs += _persistence_requirements(persistence, encrypted_persistence)
    return _dedupe(reqs)


def _persistence_requirements(persistence: str, encrypted: bool) -> list[Requirement]:
    if persistence not in ("off", "partition", "file"):
        raise ValueError(f"unknown persistence {persistence!r}")
    if persistence == "off":
        return []
    reqs = [
        _r(
            "EXT4_FS",
            "ym",
            "the persistence store is an ext2/3/4 filesystem",
            any_of=(("EXT4_FS",), ("EXT2_FS",)),
        )
    ]
    if persistence == "file":
        reqs += [
            _r("VFAT_FS", "ym", "the persistence file is on a FAT filesystem"),
            _r("NLS_CODEPAGE_437", "ym", "the code page FAT file names use by default"),
        ]
    if encrypted:
        reqs += [
            _r("BLK_DEV_DM", "ym", "the opened LUKS store is a device-mapper device"),
            _r("DM_CRYPT", "ym", "dm-crypt decrypts the LUKS persistence store"),
            _r("CRYPTO_XTS", "ym", "LUKS2's default cipher is aes-xts-plain64"),
            _r("CRYPTO_AES", "ym", "LUKS2's default cipher is aes-xts-plain64"),
        ]
    return reqs


def _dedupe(reqs: Iterable[Requirement]) -> list[Requirement]:
    """One requirement per symbol: the first kept, its need tightened to the strictest."""
    out: dict[str, Requirement] = {}
    for req in reqs:
        old = out.get(req.symbol)
        if old is None:
            out[req.symbol] = req
        elif old.need == "ym" and req.need == "y":
            out[req.symbol] = dataclasses.replace(old, need="y", reason=req.reason)
    return list(out.values())


# ----------------------------------------------------------------------------- by purpose

#: Driver groups, as the article chooses drivers by what the CD is for. Each adds symbols
#: that may be modules: the live system loads them after boot, so a kernel without them
#: still boots the CD (the check warns, the fix adds them).
GROUPS: dict[str, str] = {
    "disk": "disk controllers (SATA/AHCI, NVMe, virtio, SCSI disks), partitions, RAID, LVM",
    "usb": "USB host controllers and USB storage (booting from a stick)",
    "filesystems": "the filesystems found on disks: ext4, XFS, Btrfs, FAT, FUSE",
    "network": "networking and common network cards (Intel, Realtek, virtio)",
    "sound": "sound cards (HD Audio, AC97, USB audio)",
}

#: Purpose presets: the groups each kind of CD wants. "minimal" adds nothing beyond what
#: booting the CD needs.
PRESETS: dict[str, tuple[str, ...]] = {
    "minimal": (),
    "rescue": ("disk", "usb", "filesystems"),
    "desktop": ("usb", "network", "sound"),
}


def _group(name: str) -> list[Requirement]:
    if name == "disk":
        return [
            *_media_requirements(["sata", "virtio", "nvme"]),
            _r("MSDOS_PARTITION", "y", "PC (MBR) partition tables on the machine's disks"),
            _r("EFI_PARTITION", "y", "GPT partition tables on the machine's disks"),
            _r("BLK_DEV_MD", "ym", "software RAID (md) arrays"),
            _r("BLK_DEV_DM", "ym", "LVM and encrypted volumes (device mapper)"),
        ]
    if name == "usb":
        return _media_requirements(["usb"])
    if name == "filesystems":
        return [
            _r("EXT4_FS", "ym", "ext4 (and ext2/ext3) root filesystems of Linux systems"),
            _r("XFS_FS", "ym", "XFS filesystems"),
            _r("BTRFS_FS", "ym", "Btrfs filesystems"),
            _r("VFAT_FS", "ym", "FAT filesystems: EFI partitions, USB sticks, cameras"),
            _r("MSDOS_FS", "ym", "plain MS-DOS FAT filesystems"),
            _r("FUSE_FS", "ym", "filesystems in user space (ntfs-3g, sshfs)"),
            _r("NLS_CODEPAGE_437", "ym", "the code page FAT file names use by default"),
            _r("NLS_ISO8859_1", "ym", "the character set FAT file names use by default"),
            _r("NLS_UTF8", "ym", "UTF-8 file names on FAT and ISO 9660 (Joliet)"),
        ]
    if name == "network":
        return [
            _r("NET", "y", "networking at all"),
            _r("INET", "y", "TCP/IP"),
            _r("UNIX", "ym", "Unix sockets (syslog, udev, most daemons)"),
            _r("PACKET", "ym", "raw packets: DHCP clients need them"),
            _r("NETDEVICES", "y", "network device drivers at all"),
            _r("ETHERNET", "y", "Ethernet drivers"),
            _r("E1000", "ym", "Intel PRO/1000 (QEMU's default network card)"),
            _r("E1000E", "ym", "Intel PCI Express gigabit cards"),
            _r("IGB", "ym", "Intel server gigabit cards"),
            _r("R8169", "ym", "Realtek gigabit cards, common on PC boards"),
            _r("VIRTIO_NET", "ym", "virtio network cards of virtual machines"),
        ]
    if name == "sound":
        return [
            _r("SOUND", "ym", "sound at all"),
            _r("SND", "ym", "ALSA, the kernel's sound system"),
            _r("SND_HDA_INTEL", "ym", "HD Audio, the sound chip of most PCs since 2004"),
            _r("SND_HDA_GENERIC", "ym", "the generic HD Audio codec driver"),
            _r("SND_HDA_CODEC_REALTEK", "ym", "Realtek HD Audio codecs, the most common"),
            _r("SND_INTEL8X0", "ym", "AC97 sound (older PCs, QEMU's AC97)"),
            _r("SND_USB_AUDIO", "ym", "USB sound cards and headsets"),
        ]
    raise ValueError(f"unknown driver group {name!r}; known: {', '.join(GROUPS)}")


def group_requirements(groups: Iterable[str]) -> list[Requirement]:
    """The symbols the chosen driver groups (:data:`GROUPS`) add, each once."""
    reqs: list[Requirement] = []
    for name in groups:
        reqs += _group(name)
    return _dedupe(reqs)


def preset_groups(preset: str) -> tuple[str, ...]:
    """The driver groups of a purpose preset (:data:`PRESETS`)."""
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}") from None


# ----------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class Finding:
    """The outcome of one requirement: ``ok``, ``module`` (fine for ``ym``: the initrd loads
    it), ``missing`` (not set) or ``wrong`` (a module where built-in is needed, a value too
    small, or a kernel that no longer has the feature)."""

    requirement: Requirement
    state: State
    value: str | None
    message: str


_RANK: dict[State, int] = {"ok": 0, "module": 1, "wrong": 2, "missing": 3}


def _parse_int(value: str) -> int | None:
    try:
        return int(value, 0)
    except ValueError:
        return None


def _judge_symbol(req: Requirement, symbol: str, value: str | None) -> tuple[State, str]:
    if value is None or value == "n":
        return "missing", f"{symbol} is not set"
    if req.min_value is not None:
        number = _parse_int(value)
        if number is None:
            return "wrong", f"{symbol}={value} is not a number"
        if number < req.min_value:
            return "wrong", f"{symbol}={value}, needs at least {req.min_value}"
        return "ok", f"{symbol}={value}"
    if value == "m":
        if req.need == "y":
            return "wrong", f"{symbol} is a module (m) but must be built in (y)"
        return "module", f"{symbol}=m (the initrd loads it)"
    return "ok", f"{symbol}={value}"


def _judge(req: Requirement, lookup: Callable[[str], str | None]) -> tuple[State, str | None, str]:
    """Best alternative; within one alternative, its worst symbol."""
    best: tuple[State, str | None, str] | None = None
    for group in req.alternatives():
        worst: tuple[State, str | None, str] | None = None
        for symbol in group:
            value = lookup(symbol)
            state, text = _judge_symbol(req, symbol, value)
            if worst is None or _RANK[state] > _RANK[worst[0]]:
                worst = (state, value, text)
        assert worst is not None
        if len(group) > 1 and worst[0] == "ok":
            worst = ("ok", worst[1], "+".join(f"{s}={lookup(s)}" for s in group))
        if best is None or _RANK[worst[0]] < _RANK[best[0]]:
            best = worst
    assert best is not None
    if len(req.alternatives()) > 1 and best[0] != "ok":
        best = (best[0], best[1], f"needs {req.describe()}; {best[2]}")
    return best


def _version_finding(req: Requirement, release: str | None, value: str | None) -> Finding | None:
    if req.before is None:
        return None
    version = parse_release(release)
    if version is None or version < req.before:
        return None
    gone = f"{req.before[0]}.{req.before[1]}"
    return Finding(
        req,
        "wrong",
        value,
        f"Linux {gone} removed the classic /linuxrc and real-root-dev (this kernel is "
        f'{release}): use initrd.format = "initramfs", or a kernel older than {gone}',
    )


def _too_old(req: Requirement, release: str | None) -> str | None:
    """Why a missing symbol cannot be enabled: the kernel predates it (``since``)."""
    version = parse_release(release)
    if req.since is None or version is None or version >= req.since:
        return None
    return (
        f"{req.symbol} exists only since Linux {req.since[0]}.{req.since[1]} and this kernel "
        f"is {release}: {req.reason}; choose another option or a newer kernel"
    )


def fixable(finding: Finding, release: str | None) -> bool:
    """Whether changing the kernel config can help: not for a removed or too new feature."""
    req = finding.requirement
    if finding.state in ("ok", "module"):
        return False
    if _version_finding(req, release, finding.value) is not None:
        return False
    return _too_old(req, release) is None


def check(
    config: dict[str, str], reqs: Sequence[Requirement], release: str | None
) -> list[Finding]:
    """Compare a parsed config with the requirements: one :class:`Finding` per requirement.

    ``release`` (e.g. ``6.1.0-56-amd64``) applies the version rules: a requirement with
    ``before=(7, 0)`` on a 7.0 or newer kernel is ``wrong`` whatever the config says.
    """
    findings: list[Finding] = []
    for req in reqs:
        state, value, text = _judge(req, config.get)
        gone = _version_finding(req, release, value)
        if gone is not None:
            findings.append(gone)
            continue
        message = text if state == "ok" else f"{text}: {req.reason}"
        if state == "missing":
            message = _too_old(req, release) or message
        if state == "ok" and req.before is not None and parse_release(release) is None:
            message += (
                f" (kernel version unknown: this needs a kernel older than "
                f"{req.before[0]}.{req.before[1]})"
            )
        findings.append(Finding(req, state, value, message))
    return findings


#: Module names (as in modules.builtin / modules.dep) -> the symbol that builds them.
MODULE_SYMBOLS: dict[str, str] = {
    "loop": "BLK_DEV_LOOP",
    "squashfs": "SQUASHFS",
    "isofs": "ISO9660_FS",
    "overlay": "OVERLAY_FS",
    "brd": "BLK_DEV_RAM",
    "ext2": "EXT2_FS",
    "ext4": "EXT4_FS",
    "vfat": "VFAT_FS",
    "sr_mod": "BLK_DEV_SR",
    "cdrom": "CDROM",
    "sd_mod": "BLK_DEV_SD",
    "scsi_mod": "SCSI",
    "libata": "ATA",
    "ata_piix": "ATA_PIIX",
    "ahci": "SATA_AHCI",
    "usbcore": "USB",
    "xhci_hcd": "USB_XHCI_HCD",
    "xhci_pci": "USB_XHCI_PCI",
    "ehci_hcd": "USB_EHCI_HCD",
    "ehci_pci": "USB_EHCI_PCI",
    "usb_storage": "USB_STORAGE",
    "uas": "USB_UAS",
    "virtio_pci": "VIRTIO_PCI",
    "virtio_blk": "VIRTIO_BLK",
    "virtio_scsi": "SCSI_VIRTIO",
    "nvme": "BLK_DEV_NVME",
    "binfmt_misc": "BINFMT_MISC",
    "configs": "IKCONFIG",
    # driver groups
    "md_mod": "BLK_DEV_MD",
    "dm_mod": "BLK_DEV_DM",
    "xfs": "XFS_FS",
    "btrfs": "BTRFS_FS",
    "msdos": "MSDOS_FS",
    "fuse": "FUSE_FS",
    "nls_cp437": "NLS_CODEPAGE_437",
    "nls_iso8859_1": "NLS_ISO8859_1",
    "nls_utf8": "NLS_UTF8",
    "unix": "UNIX",
    "af_packet": "PACKET",
    "e1000": "E1000",
    "e1000e": "E1000E",
    "igb": "IGB",
    "r8169": "R8169",
    "virtio_net": "VIRTIO_NET",
    "soundcore": "SOUND",
    "snd": "SND",
    "snd_hda_intel": "SND_HDA_INTEL",
    "snd_hda_codec_generic": "SND_HDA_GENERIC",
    "snd_hda_codec_realtek": "SND_HDA_CODEC_REALTEK",
    "snd_intel8x0": "SND_INTEL8X0",
    "snd_usb_audio": "SND_USB_AUDIO",
}


def _module_name(path: str) -> str:
    name = path.strip().rsplit("/", 1)[-1]
    name = re.sub(r"\.ko(\.(gz|xz|zst|bz2))?$", "", name)
    return name.replace("-", "_")


def config_from_modules(modules_dir: Path) -> dict[str, str]:
    """What ``modules.builtin`` (``y``) and ``modules.dep`` (``m``) say about the symbols of
    :data:`MODULE_SYMBOLS`; symbols found in neither are ``n`` when both files exist."""
    config: dict[str, str] = {}
    files = {"modules.builtin": "y", "modules.dep": "m"}
    present = 0
    for name, state in files.items():
        try:
            text = (modules_dir / name).read_text(errors="replace")
        except OSError:
            continue
        present += 1
        for line in text.splitlines():
            path = line.split(":", 1)[0]
            if not path.strip():
                continue
            symbol = MODULE_SYMBOLS.get(_module_name(path))
            if symbol and config.get(symbol) != "y":
                config[symbol] = state
    if present == len(files):
        for symbol in MODULE_SYMBOLS.values():
            config.setdefault(symbol, "n")
    return config


def check_from_modules(modules_dir: Path, reqs: Sequence[Requirement]) -> list[Finding]:
    """A partial check without a config, from ``modules.builtin`` and ``modules.dep``.

    Only requirements whose symbols build a known module (loop, squashfs, isofs, brd, sr_mod,
    ...) can be judged; the others (plain bools such as DEVTMPFS, values such as
    BLK_DEV_RAM_SIZE) are left out and named in the first finding's message. The release is
    the modules dir's name.
    """
    config = config_from_modules(modules_dir)
    release = modules_dir.name
    known = set(MODULE_SYMBOLS.values())
    checkable: list[Requirement] = []
    skipped: list[str] = []
    for req in reqs:
        usable = [g for g in req.alternatives() if all(s in known for s in g)]
        if (req.min_value is None and usable) or _version_finding(req, release, None):
            checkable.append(req)
        else:
            skipped.append(req.symbol)
    findings: list[Finding] = []
    for req in checkable:
        gone = _version_finding(req, release, config.get(req.symbol))
        if gone is not None:
            findings.append(gone)
            continue
        groups = tuple(g for g in req.alternatives() if all(s in known for s in g))
        narrowed = dataclasses.replace(req, any_of=groups if req.any_of else ())
        state, value, text = _judge(narrowed, config.get)
        message = text if state == "ok" else f"{text}: {req.reason}"
        findings.append(Finding(req, state, value, f"{message} (from modules.builtin/modules.dep)"))
    note = (
        f"partial check without a kernel config; not checked: {', '.join(skipped)}"
        if skipped
        else "partial check without a kernel config"
    )
    if findings:
        first = findings[0]
        findings[0] = Finding(
            first.requirement, first.state, first.value, f"{first.message}; {note}"
        )
    return findings
