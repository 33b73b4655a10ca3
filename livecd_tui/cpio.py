"""Reproducible cpio ``newc`` archives: the initramfs format the kernel unpacks.

Why not ``find | cpio -o -H newc``: that needs root to own files as uid 0 and to create
``/dev/console``, it records the build machine's inode numbers, owners and mtimes, and its
entry order is whatever readdir returns -- so two builds of the same tree differ. This writer
runs unprivileged and is byte-for-byte reproducible: entries sorted by name, owner 0:0, one
given mtime, inode numbers from a counter, and device nodes described rather than mknod'ed.

The layout follows the kernel's own writer, ``usr/gen_init_cpio.c``: names relative without a
leading ``/`` and no ``.`` entry (the rootfs root already exists), directories with nlink 2,
a ``TRAILER!!!`` entry, and zero padding of the whole archive to a multiple of 512 bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = ["DeviceNode", "write_newc"]

NEWC_MAGIC = b"070701"
TRAILER = b"TRAILER!!!"
_CHUNK = 1 << 20
_MAX_FIELD = 0xFFFFFFFF
_FIRST_INO = 721  # gen_init_cpio's first inode number


@dataclass(frozen=True)
class DeviceNode:
    """A device node to put in the archive without creating it on the build host.

    ``path`` is relative to the archive root (a leading ``/`` is accepted), e.g.
    ``DeviceNode("dev/console", "c", 5, 1)``: the kernel needs /dev/console before any devtmpfs
    is mounted, and an unprivileged build cannot mknod it.
    """

    path: str
    kind: Literal["c", "b"]
    major: int
    minor: int
    mode: int = 0o600


@dataclass(frozen=True)
class _Entry:
    name: bytes  # relative, no leading slash, no trailing NUL
    mode: int  # file type + permission bits
    nlink: int
    rdev_major: int = 0
    rdev_minor: int = 0
    source: Path | None = None  # regular file to copy the data from
    link_target: bytes | None = None  # symlink text
    size: int = 0


def _header(
    *,
    ino: int,
    mode: int,
    nlink: int,
    mtime: int,
    size: int,
    rdev_major: int,
    rdev_minor: int,
    namesize: int,
    dev: tuple[int, int] = (3, 1),
) -> bytes:
    fields = (
        ino,
        mode,
        0,  # uid: everything in an initramfs belongs to root
        0,  # gid
        nlink,
        mtime,
        size,
        # devmajor/devminor of the file's filesystem: host-specific, so a constant; 3:1 is
        # what gen_init_cpio writes (0:0 for the trailer), which keeps us byte-comparable.
        dev[0],
        dev[1],
        rdev_major,
        rdev_minor,
        namesize,
        0,  # check: only used by the "070702" crc format
    )
    for value in fields:
        if not 0 <= value <= _MAX_FIELD:
            raise ValueError(f"cpio newc field out of range (32 bits): {value}")
    return NEWC_MAGIC + b"".join(b"%08X" % v for v in fields)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _scan(root: Path) -> list[_Entry]:
    """Everything under ``root`` without following symlinks, in no particular order."""
    entries: list[_Entry] = []
    stack: list[tuple[Path, bytes]] = [(root, b"")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            for dirent in it:
                name = prefix + os.fsencode(dirent.name)
                st = dirent.stat(follow_symlinks=False)
                mode = stat.S_IFMT(st.st_mode) | stat.S_IMODE(st.st_mode)
                path = Path(dirent.path)
                if stat.S_ISDIR(st.st_mode):
                    entries.append(_Entry(name, mode, nlink=2))
                    stack.append((path, name + b"/"))
                elif stat.S_ISREG(st.st_mode):
                    # nlink 1 even for hard links: each name is written as a full copy. The
                    # newc hard-link convention (same ino, data only with the last name) would
                    # tie the bytes to inode numbers and to which name sorts last, and the
                    # kernel only re-links entries with nlink >= 2; full copies are simple,
                    # reproducible and read the same by every tool.
                    entries.append(_Entry(name, mode, nlink=1, source=path, size=st.st_size))
                elif stat.S_ISLNK(st.st_mode):
                    target = os.readlink(os.fsencode(dirent.path))
                    entries.append(
                        _Entry(name, mode, nlink=1, link_target=target, size=len(target))
                    )
                else:  # device nodes, fifos, sockets: the kernel mknod()s them
                    entries.append(
                        _Entry(
                            name,
                            mode,
                            nlink=1,
                            rdev_major=os.major(st.st_rdev),
                            rdev_minor=os.minor(st.st_rdev),
                        )
                    )
    return entries


def _node_entry(node: DeviceNode) -> _Entry:
    name = node.path.strip("/")
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad device node path {node.path!r}: want e.g. 'dev/console'")
    if node.kind not in ("c", "b"):
        raise ValueError(f"{node.path}: kind must be 'c' or 'b', not {node.kind!r}")
    ftype = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
    return _Entry(
        os.fsencode(name),
        ftype | (node.mode & 0o7777),
        nlink=1,
        rdev_major=node.major,
        rdev_minor=node.minor,
    )


def write_newc(root: Path, out: BinaryIO, *, mtime: int, nodes: Sequence[DeviceNode] = ()) -> None:
    """Write the tree under ``root`` plus ``nodes`` to ``out`` as a newc cpio archive.

    Every file, directory and symlink under ``root`` (symlinks stored as links, never
    followed), named relative to ``root`` and sorted bytewise, which puts each directory
    before its contents as the unpacker needs. Owner 0:0, all mtimes ``mtime`` (e.g. the
    build's SOURCE_DATE_EPOCH), permission and type bits kept. ``nodes`` are merged into the
    sort as if they existed; their parent directory must be in the tree. The same tree and
    ``mtime`` always give the same bytes, whatever the inode numbers, the source mtimes or the
    order the filesystem lists directories in.
    """
    root = Path(root)
    entries = {e.name: e for e in _scan(root)}
    for node in nodes:
        entry = _node_entry(node)
        if entry.name in entries:
            raise ValueError(f"device node {node.path!r} clashes with an entry of {root}")
        parent = entry.name.rpartition(b"/")[0]
        if parent and not (parent in entries and stat.S_ISDIR(entries[parent].mode)):
            raise ValueError(
                f"device node {node.path!r}: its directory {os.fsdecode(parent)!r} "
                f"is not a directory in {root}; create it there first"
            )
        entries[entry.name] = entry

    offset = 0

    def emit(data: bytes) -> None:
        nonlocal offset
        out.write(data)
        offset += len(data)

    # Inode numbers from a counter (starting where gen_init_cpio starts), never the host's.
    for ino, name in enumerate(sorted(entries), start=_FIRST_INO):
        entry = entries[name]
        emit(
            _header(
                ino=ino,
                mode=entry.mode,
                nlink=entry.nlink,
                mtime=mtime,
                size=entry.size,
                rdev_major=entry.rdev_major,
                rdev_minor=entry.rdev_minor,
                namesize=len(name) + 1,
            )
        )
        emit(name + b"\0")
        emit(_pad4(offset))
        if entry.link_target is not None:
            emit(entry.link_target)
        elif entry.source is not None:
            _copy_exactly(entry.source, entry.size, emit)
        emit(_pad4(offset))

    emit(
        _header(
            ino=0,
            mode=0,
            nlink=1,
            mtime=0,
            size=0,
            rdev_major=0,
            rdev_minor=0,
            namesize=len(TRAILER) + 1,
            dev=(0, 0),
        )
    )
    emit(TRAILER + b"\0")
    emit(_pad4(offset))
    emit(b"\0" * (-offset % 512))  # like gen_init_cpio and GNU cpio: whole blocks


def _copy_exactly(source: Path, size: int, emit: Callable[[bytes], None]) -> None:
    """Copy ``size`` bytes of ``source``; a file that changed size meanwhile is an error
    (the header already promised ``size`` bytes)."""
    remaining = size
    with open(source, "rb") as f:
        while remaining:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                break
            emit(chunk)
            remaining -= len(chunk)
        if remaining or f.read(1):
            raise RuntimeError(f"{source} changed size while being archived")
