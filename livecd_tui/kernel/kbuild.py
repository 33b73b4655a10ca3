"""Building a kernel tree: reading kbuild's output for progress, and remembering the last
build of a tree so the next one can be estimated (and skipped when nothing changed).

kbuild prints one short line per target it makes (``  CC      init/main.o``,
``  LD [M]  fs/foo.ko``); every such target leaves a ``.NAME.cmd`` file next to it, so the
number of ``.cmd`` files after a build is about the number of lines a build from scratch
prints (Linux 6.1, tinyconfig + the classic fragment: 1279 files, 1329 lines).
After each build the kernel stage writes that count and the time into
``TREE/.livecd-tui-build.json``. Before the next one, :func:`estimate` turns it into "about
N objects to make", a line the stage logs and the TUI's progress bar reads back
(:func:`parse_estimate`), and :func:`sources_changed_stamp` notices files edited since.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from livecd_tui.kernel import kconfig

#: What the kernel's make takes literally in a path: its recipes hand paths (the tree,
#: INSTALL_MOD_PATH) to sh unquoted, so a backquote or ``;`` there would run as a command.
_MAKE_SAFE = re.compile(r"[\w./+,@=-]+")


def make_path_problem(what: str, path: Path) -> str | None:
    """Why *path* cannot be given to the kernel's make, or None when it can."""
    if _MAKE_SAFE.fullmatch(str(path)):
        return None
    return (
        f"the {what} {str(path)!r} holds characters the kernel's make hands to a shell; "
        "for a kernel built from a tree use a path of letters, digits and . _ - + , @ = /"
    )


#: Written into the tree after each build by livecd-tui.
RECORD_NAME = ".livecd-tui-build.json"
#: Touched when files in the tree changed after the last recorded build; the kernel
#: stage's fingerprint covers it, so an edited tree is built again.
CHANGED_NAME = ".livecd-tui-sources-changed"
#: Directories never looked at for changes.
_SKIP_DIRS = {".git", ".svn", ".hg", ".pc"}
#: Files never counted as changes (our own, and the config which is fingerprinted apart).
_SKIP_FILES = {RECORD_NAME, CHANGED_NAME, ".config", ".config.old"}

#: kbuild's quiet output: a short upper-case verb, an optional ``[M]``, the target.
_KBUILD_LINE = re.compile(r"^  [A-Z][A-Z0-9_]{1,9}(?: \[M\])?\s+\S")
_ESTIMATE = re.compile(r"^kbuild: about (\d+) objects? to make\b")
#: Without a previous build, objects per option set to y or m, in tenths (6.1, tinyconfig
#: + the classic fragment: 516 options, 1329 lines printed, 1279 .cmd files counted).
_OBJECTS_PER_10_OPTIONS = 25


def is_object_line(line: str) -> bool:
    """Whether an output line is kbuild saying it made one target."""
    return bool(_KBUILD_LINE.match(line))


def estimate_line(objects: int, source: str) -> str:
    """The line the kernel stage logs before make; :func:`parse_estimate` reads it back."""
    return f"kbuild: about {objects} objects to make ({source})"


def parse_estimate(line: str) -> int | None:
    """The object count of an :func:`estimate_line`, else None."""
    found = _ESTIMATE.match(line)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class TreeRecord:
    """What the last build of a tree left: the count of made targets and when it ended."""

    objects: int
    finished_ns: int


def read_record(tree: Path) -> TreeRecord | None:
    try:
        data = json.loads((tree / RECORD_NAME).read_text())
        return TreeRecord(int(data["objects"]), int(data["finished_ns"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _walk(tree: Path, newer_than: int | None) -> tuple[int, Path | None]:
    """(number of ``.cmd`` files, the newest file changed after ``newer_than``)."""
    count = 0
    newest: tuple[int, str] | None = None
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            # modules.order is remade in every directory without a line of output
            if name.endswith(".cmd") and not name.endswith("modules.order.cmd"):
                count += 1
            if newer_than is None or name in _SKIP_FILES:
                continue
            path = os.path.join(dirpath, name)
            try:
                mtime = os.lstat(path).st_mtime_ns
            except OSError:
                continue
            if mtime > newer_than and (newest is None or mtime > newest[0]):
                newest = (mtime, path)
    return count, Path(newest[1]) if newest else None


def count_objects(tree: Path) -> int:
    """Targets the tree's last build made (its ``.cmd`` files; about 0.4 s for 6.1)."""
    return _walk(tree, None)[0]


def write_record(tree: Path) -> TreeRecord:
    """Remember this build of the tree (called right after it). Never fails the build: a
    read-only tree just has no record."""
    record = TreeRecord(count_objects(tree), time.time_ns())
    with contextlib.suppress(OSError):
        (tree / RECORD_NAME).write_text(
            json.dumps({"objects": record.objects, "finished_ns": record.finished_ns}) + "\n"
        )
    return record


def changed_since_record(tree: Path) -> Path | None:
    """The newest file changed in the tree after its recorded build, or None (also when
    there is no record)."""
    record = read_record(tree)
    if record is None:
        return None
    return _walk(tree, record.finished_ns)[1]


def sources_changed_stamp(tree: Path) -> Path:
    """The stamp file the kernel stage fingerprints; touched here when the tree changed
    after its last recorded build, so the stage runs again (make then rebuilds only what
    changed). Unchanged tree: the stamp is left alone and the stage stays up to date."""
    stamp = tree / CHANGED_NAME
    changed = changed_since_record(tree)
    if changed is not None:
        with contextlib.suppress(OSError, ValueError):
            stamp.write_text(f"{changed.relative_to(tree)}\n")
    return stamp


def estimate(tree: Path) -> tuple[int, str]:
    """How many targets the next build makes, at most, and where the number comes from."""
    record = read_record(tree)
    if record is not None:
        return record.objects, "from the last build of this tree"
    built = count_objects(tree)
    if built:
        return built, "from the objects already in the tree"
    try:
        config = kconfig.parse_config((tree / ".config").read_text(errors="replace"))
    except OSError:
        config = {}
    options = sum(1 for v in config.values() if v in ("y", "m"))
    return max(1, options * _OBJECTS_PER_10_OPTIONS // 10), (
        f"estimated from the config: {options} options set"
    )
