"""The persistence store: an ext2/3/4 filesystem (optionally inside LUKS) whose label the
live system's init looks for, made as an image file by ``livecd-tui persistence-image``.

The same image serves both modes of ``writable.persistence``: written to a partition of a
USB stick (``dd``), attached as a VM disk, or copied as a file onto a FAT filesystem at
``writable.persistence_file``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from livecd_tui import procs

#: Smaller ext4 filesystems lose most of their space to the journal and metadata.
MIN_SIZE = 16 << 20
FILESYSTEMS = ("ext4", "ext2")
#: Runs one argv and raises PersistenceError when it fails.
Runner = Callable[[Sequence[str]], None]
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class PersistenceError(Exception):
    """Why the image cannot be made, said for the user."""


def parse_size(text: str) -> int:
    """``"512M"``, ``"2g"``, ``"1048576"`` in bytes; at least :data:`MIN_SIZE`."""
    found = re.fullmatch(r"\s*([1-9][0-9]*)\s*([kKmMgGtT]?)(?:i?B)?\s*", text)
    if found is None:
        raise PersistenceError(
            f"--size {text!r}: a number of bytes with an optional K, M, G or T, e.g. 512M"
        )
    size = int(found[1]) * _UNITS[found[2].lower()]
    if size < MIN_SIZE:
        raise PersistenceError(f"--size {text!r} is smaller than {MIN_SIZE >> 20}M")
    return size


@dataclass(frozen=True)
class ImageSpec:
    """What to make: where, how big, the label the init looks for, the filesystem, and a
    file holding the LUKS passphrase (None: not encrypted)."""

    path: Path
    size: int
    label: str
    fs: str = "ext4"
    key_file: Path | None = None
    #: How long opening the store derives its key on the machine that makes it (PBKDF2),
    #: in ms: cryptsetup's default; a slow or emulated machine opens it many times slower.
    iter_time_ms: int = 2000


def mkfs_argv(fs: str, label: str, target: str | Path, size: int | None = None) -> list[str]:
    """mkfs for the store (of ``size`` bytes when given, else the whole target); root owns
    its top directory (the overlay's upper dir goes there)."""
    if fs not in FILESYSTEMS:
        raise PersistenceError(f"unknown filesystem {fs!r}; choose from {', '.join(FILESYSTEMS)}")
    argv = [f"mkfs.{fs}", "-q", "-F", "-L", label, "-E", "root_owner=0:0", str(target)]
    return argv + ([f"{size >> 10}k"] if size is not None else [])


#: Room LUKS2 takes at the start of an encrypted store (header and keyslots).
LUKS_ROOM = 16 << 20


def encrypt_argv(spec: ImageSpec) -> list[str]:
    """Encrypt the made filesystem in place (LUKS2, labelled, PBKDF2 so a small live
    system can open it). Offline: no device-mapper needed, the key comes from a file."""
    assert spec.key_file is not None
    return [
        "cryptsetup",
        "reencrypt",
        "--encrypt",
        "--batch-mode",
        "--type",
        "luks2",
        "--reduce-device-size",
        f"{LUKS_ROOM >> 20}M",
        "--label",
        spec.label,
        "--pbkdf",
        "pbkdf2",
        "--iter-time",
        str(spec.iter_time_ms),
        "--key-file",
        str(spec.key_file),
        str(spec.path),
    ]


def make_image(spec: ImageSpec, run: Runner | None = None) -> None:
    """Make the store as a new file (an existing one is never touched)."""
    run = run or _run
    if spec.key_file is not None and spec.size < MIN_SIZE + LUKS_ROOM:
        raise PersistenceError(
            f"an encrypted store needs at least "
            f"{(MIN_SIZE + LUKS_ROOM) >> 20}M (LUKS takes {LUKS_ROOM >> 20}M)"
        )
    try:
        fd = os.open(spec.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PersistenceError(f"{spec.path} exists: remove it or choose another name") from None
    except OSError as err:
        raise PersistenceError(f"cannot create {spec.path}: {err.strerror}") from None
    made = False
    try:
        os.ftruncate(fd, spec.size)
        os.close(fd)
        if spec.key_file is None:
            run(mkfs_argv(spec.fs, spec.label, spec.path))
        else:
            # The filesystem leaves LUKS its room at the end; encrypting shifts it there.
            run(mkfs_argv(spec.fs, spec.label, spec.path, spec.size - LUKS_ROOM))
            run(encrypt_argv(spec))
        made = True
    finally:
        if not made:
            spec.path.unlink(missing_ok=True)


def _run(argv: Sequence[str]) -> None:
    try:
        result = procs.run(argv)
    except procs.ProgramNotFound:
        raise PersistenceError(f"{argv[0]} is not installed") from None
    if result.returncode != 0:
        said = (result.err or result.out).decode(errors="replace").strip().splitlines()
        raise PersistenceError(
            f"{' '.join(argv[:2])} failed (exit {result.returncode})"
            + (f": {said[-1]}" if said else "")
        )
