"""mksquashfs's ``-wildcards`` excludes, matched here the way mksquashfs 4.5 matches them.

The system stage hands mksquashfs exclude patterns (the profile's, the work dir, the scrub's).
The preview, the scrub report and the ``/etc`` archive's scrub must know which files those
patterns leave out *without* running mksquashfs, so this module re-implements its rules, and
the tests check them against the real mksquashfs on generated trees:

* A pattern is split at ``/``; each component is matched with ``fnmatch(3)`` and the flags
  ``FNM_PATHNAME | FNM_PERIOD``: ``*``, ``?`` and ``[...]`` never match a leading dot, a
  backslash makes the next character literal.
* Patterns are anchored at the image's root, whose entries are the packed directories
  (``usr/share/doc``). A match on the last component excludes the entry and all below it; a
  match on an earlier one carries the rest of the pattern into that directory.
* ``... NAME`` (non-anchored) matches ``NAME`` at any depth. mksquashfs 4.5 only honours the
  first component of a non-anchored pattern (``... a/b`` excludes every ``a``), so that is
  what is modelled, and :func:`parse` says so in :attr:`Pattern.warning`.
* mksquashfs strips leading blanks of ``-ef`` lines and skips ``#`` comments: :func:`escape`
  protects names that start with either.

Extended globs (``+(...)``, FNM_EXTMATCH) are not modelled: they are taken literally.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NON_ANCHORED = "... "


@dataclass(frozen=True)
class Pattern:
    """One exclude pattern, with why it is there (for the preview and reports)."""

    text: str
    reason: str = ""
    #: The option that put the pattern there (empty for the work dir).
    option: str = ""
    parts: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)
    #: For each part, the literal name it matches, or "" when it has wildcards.
    literals: tuple[str, ...] = field(default=(), compare=False, repr=False)
    anchored: bool = True
    warning: str = ""


def parse(text: str, reason: str = "", option: str = "") -> Pattern:
    """A pattern as mksquashfs reads it from ``-e`` or an ``-ef`` line."""
    body = text.lstrip()
    anchored = not body.startswith(NON_ANCHORED)
    if not anchored:
        body = body[len(NON_ANCHORED) :]
    names = [n for n in body.split("/") if n]
    warning = ""
    if not anchored and len(names) > 1:
        warning = (
            f"mksquashfs 4.5 reads {text!r} as {NON_ANCHORED}{names[0]!r}: it leaves "
            f"out every {names[0]!r}, not only {'/'.join(names)!r}"
        )
        names = names[:1]
    compiled = tuple(_compile(n) for n in names)
    literals = tuple(_literal(n) for n in names)
    return Pattern(text, reason, option, compiled, literals, anchored, warning)


def escape(name: str) -> str:
    """A literal path as a pattern matching exactly it (``*?[]\\`` and blanks escaped, and a
    leading ``#``, which an ``-ef`` file would take for a comment)."""
    out = []
    for char in name:
        if char in "*?[]\\" or char.isspace():
            out.append("\\" + char)
        else:
            out.append(char)
    text = "".join(out)
    return "\\" + text if text.startswith("#") else text


def _literal(name: str) -> str:
    """The one name a component matches when it has no wildcards, else ""."""
    out = []
    i = 0
    while i < len(name):
        char = name[i]
        if char in "*?[":
            return ""
        if char == "\\" and i + 1 < len(name):
            i += 1
            char = name[i]
        out.append(char)
        i += 1
    return "".join(out)


def _compile(name: str) -> re.Pattern[str]:
    """One pattern component as a regex with fnmatch's FNM_PERIOD rule."""
    out = []
    i = 0
    first = True
    while i < len(name):
        char = name[i]
        if char == "\\" and i + 1 < len(name):
            out.append(re.escape(name[i + 1]))
            i += 2
        elif char == "*":
            out.append(r"(?!\.)[^/]*" if first else r"[^/]*")
            i += 1
        elif char == "?":
            out.append(r"(?!\.)[^/]" if first else r"[^/]")
            i += 1
        elif char == "[":
            end, cls = _bracket(name, i)
            if end < 0:
                out.append(r"\[")
                i += 1
            else:
                out.append((r"(?!\.)" if first else "") + cls)
                i = end
        else:
            out.append(re.escape(char))
            i += 1
        first = False
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _bracket(name: str, start: int) -> tuple[int, str]:
    """A ``[...]`` expression at ``start``: (index after it, regex class), or (-1, "")."""
    i = start + 1
    negate = i < len(name) and name[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    if i < len(name) and name[i] == "]":
        items.append(r"\]")
        i += 1
    while i < len(name) and name[i] != "]":
        char = name[i]
        if char == "\\" and i + 1 < len(name):
            items.append(re.escape(name[i + 1]))
            i += 2
            continue
        if char == "[" and name.startswith("[:", i):
            end = name.find(":]", i + 2)
            if end > 0:
                items.append(_POSIX_CLASSES.get(name[i + 2 : end], ""))
                i = end + 2
                continue
        if i + 2 < len(name) and name[i + 1] == "-" and name[i + 2] != "]":
            items.append(f"{re.escape(char)}-{re.escape(name[i + 2])}")
            i += 3
            continue
        items.append(re.escape(char))
        i += 1
    if i >= len(name):
        return -1, ""
    return i + 1, "[" + ("^/" if negate else "") + "".join(items) + "]"


_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\s",
    "xdigit": "0-9a-fA-F",
    "punct": r"!-/:-@\[-`{-~",
}


class Matcher:
    """The exclude state of one directory: which pattern parts apply to its entries."""

    def __init__(
        self, patterns: Sequence[Pattern], active: tuple[tuple[Pattern, int], ...] | None = None
    ) -> None:
        self.patterns = tuple(patterns)
        self.floating = tuple(p for p in self.patterns if not p.anchored)
        self.active = (
            active if active is not None else tuple((p, 0) for p in self.patterns if p.anchored)
        )
        self._inner: Matcher | None = None

    def match(self, name: str) -> tuple[Pattern | None, Matcher]:
        """(the pattern that excludes ``name``, or None; the matcher for its contents)."""
        deeper: list[tuple[Pattern, int]] = []
        for pattern in self.floating:
            if _component_matches(pattern, 0, name):
                return pattern, self
        for pattern, index in self.active:
            if _component_matches(pattern, index, name):
                if index + 1 == len(pattern.parts):
                    return pattern, self
                deeper.append((pattern, index + 1))
        if not deeper:
            if not self.active:
                return None, self
            if self._inner is None:
                self._inner = Matcher(self.patterns, ())
            return None, self._inner
        return None, Matcher(self.patterns, tuple(deeper))

    def excluded(self, relpath: str) -> Pattern | None:
        """The pattern that leaves ``relpath`` (relative to the image root) out, if any."""
        matcher: Matcher = self
        for name in [n for n in relpath.split("/") if n]:
            found, matcher = matcher.match(name)
            if found is not None:
                return found
        return None


def _component_matches(pattern: Pattern, index: int, name: str) -> bool:
    literal = pattern.literals[index]
    if literal:
        return literal == name
    return pattern.parts[index].match(name) is not None


@dataclass(frozen=True)
class Entry:
    """One file or directory met while walking what would be packed."""

    relpath: str
    st: os.stat_result
    #: The pattern that leaves it out (its contents are then not walked), or None.
    excluded_by: Pattern | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def walk(
    root: Path,
    sources: Sequence[str],
    patterns: Sequence[Pattern],
    on_error: list[str] | None = None,
) -> Iterator[Entry]:
    """Every entry mksquashfs would meet packing ``sources`` (names in ``root``) with these
    excludes: packed entries, and each excluded one (whose contents are skipped). Symbolic
    links are entries, never followed; directories come before their contents, names sorted.
    """
    top = Matcher(patterns)
    for name in sources:
        path = root / name
        try:
            st = os.lstat(path)
        except OSError as err:
            if on_error is not None:
                on_error.append(f"{name}: {err.strerror}")
            continue
        found, inner = top.match(name)
        yield Entry(name, st, found)
        if found is None and stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(path, name, inner, on_error)


def _walk_dir(
    path: Path, rel: str, matcher: Matcher, on_error: list[str] | None
) -> Iterator[Entry]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        if on_error is not None:
            on_error.append(f"{rel}: {err.strerror}")
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        child = f"{rel}/{entry.name}"
        found, inner = matcher.match(entry.name)
        yield Entry(child, st, found)
        if found is None and stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(Path(entry.path), child, inner, on_error)


def tree_totals(path: Path) -> tuple[int, int]:
    """(files, bytes) below ``path`` (or of the file itself), symlinks not followed."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return 1, st.st_size
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                continue
    return files, size
