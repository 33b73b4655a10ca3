"""What a build packed, and what changed in the root since: a stat walk, no reading.

A manifest records, for every entry mksquashfs packs from the root (the same walk and the
same excludes, :func:`livecd_tui.excludes.walk`), what the image keeps of it: type, mode,
owner, size, mtime, a symlink's target, a device's numbers. Comparing the manifest of the last
build with a fresh walk tells which entries a rebuild must carry again, without reading one
file: the difference a layered image packs (issue "layers").

Size and mtime decide almost always. When only the inode change time moved (content written
and the mtime put back, ``touch -r``, an xattr changed), the walk cannot decide: :func:`diff`
asks ``same_content`` if given, else counts the entry changed (never wrong, only bigger).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from livecd_tui import excludes

#: Bumped when the record's fields change; an older manifest is then not used.
FORMAT = 1

_KINDS = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
}


class Record(NamedTuple):
    """One packed entry as the image keeps it (plus ``ctime_ns``, to catch a restored mtime)."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    #: A symlink's target; a device's "major,minor"; "" otherwise.
    target: str = ""

    def metadata(self) -> tuple[int, int, int, int]:
        """What a chmod, chown or touch changes (the image stores mtimes in seconds)."""
        return self.mode, self.uid, self.gid, self.mtime_ns // 1_000_000_000


Manifest = dict[str, Record]


def record(path: Path | str, st: os.stat_result) -> Record:
    """The record of one entry, from its lstat (and its link target)."""
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "?")
    target = ""
    if kind == "l":
        target = os.readlink(path)
    elif kind in "cb":
        target = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    size = st.st_size if kind in "fl" else 0
    return Record(
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        target,
    )


def take(
    root: Path,
    sources: Sequence[str],
    patterns: Sequence[excludes.Pattern],
    on_error: list[str] | None = None,
) -> Manifest:
    """The manifest of what packing ``sources`` of ``root`` with ``patterns`` would hold."""
    found: Manifest = {}
    for entry in excludes.walk(root, sources, patterns, on_error):
        if entry.excluded_by is not None:
            continue
        try:
            found[entry.relpath] = record(root / entry.relpath, entry.st)
        except OSError as err:  # a link removed between the stat and the readlink
            if on_error is not None:
                on_error.append(f"{entry.relpath}: {err.strerror}")
    return found


def file_sha256(path: Path) -> str:
    """The sha256 of a file's contents, read in blocks (the system image is big)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` (gzip'd JSON, written aside and renamed: never half a manifest).
    Names that are not UTF-8 survive: they are kept as surrogate escapes."""
    rows = [
        [name.encode("utf-8", "surrogateescape").decode("latin-1"), *rec]
        for name, rec in manifest.items()
    ]
    tmp = path.with_name(path.name + ".tmp")
    # No time in the gzip header: the same manifest is the same bytes.
    with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 1, raw, mtime=0) as packed:
        packed.write(
            json.dumps({"format": FORMAT, "entries": rows}, separators=(",", ":")).encode()
        )
    os.replace(tmp, path)


def load(path: Path) -> Manifest | None:
    """A saved manifest, or None when there is none, it is damaged or of another format
    (the next build then packs everything, as the first did)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as src:
            data = json.load(src)
        if data.get("format") != FORMAT:
            return None
        return {
            row[0].encode("latin-1").decode("utf-8", "surrogateescape"): Record(*row[1:])
            for row in data["entries"]
        }
    except (OSError, ValueError, TypeError, AttributeError, EOFError):
        return None


@dataclass
class Diff:
    """What changed from one manifest to the next, in walk order (parents first)."""

    #: New entries, and entries whose content changed or whose type changed.
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    #: Same content, other mode, owner or mtime.
    metadata: list[str] = field(default_factory=list)
    #: Gone entries; a gone directory is named once, not its contents.
    removed: list[str] = field(default_factory=list)
    #: Entries whose type changed (file <-> directory, ...): the old one must be hidden whole.
    replaced: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.metadata or self.removed or self.replaced)

    def carried(self) -> list[str]:
        """Every entry a new layer must hold, sorted (parents before their contents)."""
        return sorted({*self.added, *self.changed, *self.metadata, *self.replaced}, key=_components)


def diff(old: Manifest, new: Manifest, same_content: Callable[[str], bool] | None = None) -> Diff:
    """What turns the tree ``old`` describes into the one ``new`` describes."""
    result = Diff()
    for name, rec in new.items():
        before = old.get(name)
        if before is None:
            result.added.append(name)
        elif before.kind != rec.kind:
            result.replaced.append(name)
        elif _content_differs(before, rec):
            result.changed.append(name)
        elif before.metadata() != rec.metadata():
            result.metadata.append(name)  # the chmod/chown explains the new change time
        elif _undecided(before, rec) and not (same_content and same_content(name)):
            result.changed.append(name)
    # Below an entry that is no directory now, nothing needs hiding: it hides the old tree.
    result.removed = [
        name
        for name in _topmost(n for n in old if n not in new)
        if new.get(name.rpartition("/")[0], _DIR).kind == "d"
    ]
    return result


_DIR = Record("d", 0, 0, 0, 0, 0, 0)


def _content_differs(before: Record, now: Record) -> bool:
    if before.kind == "d":
        return False  # a directory's content is its entries, compared one by one
    return (before.size, before.target, before.mtime_ns) != (now.size, now.target, now.mtime_ns)


def _undecided(before: Record, now: Record) -> bool:
    """Same size and mtime, yet the inode changed: only the bytes can tell."""
    return before.kind == "f" and before.ctime_ns != now.ctime_ns


def _topmost(names: Iterable[str]) -> list[str]:
    """The names that are not below another name of the set (one whiteout hides a tree)."""
    result: list[str] = []
    for name in sorted(names, key=_components):
        if result and name.startswith(result[-1] + "/"):
            continue
        result.append(name)
    return result


def _components(name: str) -> list[str]:
    # "a/b" sorts right after "a", before "a-c": a tree stays together.
    return name.split("/")
