"""File operations as data: decided once, then run by Python or printed as bash.

The stages that fill a tree (the initrd, the busybox system, the modules copied into the
live system, the /etc archive's scrubbed copy) each have one planner: a generator of the
operations below. :func:`run` carries them out for the engine; :func:`render` turns the
same list into the bash of ``plan`` and ``export-script``, so the script does what the tool
does because it is made from the same decisions. What only the script's run can know (the
modules of a kernel the script builds itself) is a :class:`Deferred` operation: bash that
finds it then; the tool, planning when the kernel is there, never meets one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecd_tui import elf
from livecd_tui.build import Build
from livecd_tui.engine import StepContext, StepFailed
from livecd_tui.steps import Action, shell_quote, write_file_lines

Log = Callable[[str], None]


@dataclass(frozen=True)
class Mkdir:
    """A directory, made with its parents when missing; ``mode`` set on it when made."""

    path: Path
    mode: int | None = None


@dataclass(frozen=True)
class Copy:
    """A file copied with its mode and times, owned by whoever builds; the source's links
    are followed, the destination is replaced, never written through."""

    src: Path
    dest: Path


@dataclass(frozen=True)
class CopyTree:
    """A directory copied with its modes and times, links kept as links, unless the
    destination exists."""

    src: Path
    dest: Path


@dataclass(frozen=True)
class Symlink:
    """A symbolic link: one with the same text is kept, another link is replaced, anything
    else there is an error."""

    path: Path
    target: str


@dataclass(frozen=True)
class WriteFile:
    """A file with this content, made anew (whatever was there, a link too, is removed
    first, so nothing is written through a link); ``mode`` set, else the umask's."""

    path: Path
    content: bytes
    mode: int | None = None


@dataclass(frozen=True)
class Chmod:
    path: Path
    mode: int


@dataclass(frozen=True)
class Chown:
    """Owner and group (of the path itself, never a link's target); only when run as root,
    as whoever else builds cannot give files away."""

    path: Path
    uid: int
    gid: int


@dataclass(frozen=True)
class Remove:
    """A file, link or whole directory removed (a link's target is never touched)."""

    path: Path


@dataclass(frozen=True)
class PinTimes:
    """Every entry of a tree, links themselves included, given the build's time."""

    tree: Path
    epoch: int


@dataclass(frozen=True)
class Check:
    """A check that stops the build when it fails: ``run`` for the tool, ``script`` for
    bash (checks that read what an earlier stage made)."""

    describe: str
    run: Callable[[Log], None]
    script: tuple[str, ...]


@dataclass(frozen=True)
class Append:
    """Text known only once earlier stages have run (the sums of their images), appended
    to a file: ``text`` makes it for the tool, ``script`` is the bash that does the same."""

    path: Path
    describe: str
    text: Callable[[], str]
    script: tuple[str, ...]


@dataclass(frozen=True)
class Deferred:
    """What only the script's own run can find: bash that does it then. The tool plans when
    the thing is known, so it never runs one."""

    describe: str
    script: tuple[str, ...]


@dataclass(frozen=True)
class Fail:
    """Stop here with this message (what a failing run would say)."""

    message: str
    hint: str = ""
    option: str = ""


Op = (
    Mkdir
    | Copy
    | CopyTree
    | Symlink
    | WriteFile
    | Chmod
    | Chown
    | Remove
    | PinTimes
    | Check
    | Append
    | Deferred
    | Fail
)
Planner = Callable[[Build, Log], Iterable[Op]]


def _quiet(_line: str) -> None:
    """The log of a plan made for the script: nothing to say yet."""


def planned(planner: Planner, build: Build) -> list[Op]:
    """The planner's operations for the script. A failure that names an option refuses the
    plan; any other (a missing program, an unreadable file) ends the list with a
    :class:`Fail`, so the script stops where the tool would."""
    ops: list[Op] = []
    try:
        ops.extend(planner(build, _quiet))
    except (StepFailed, OSError) as err:
        if isinstance(err, StepFailed) and err.option:
            raise
        ops.append(Fail(str(err), getattr(err, "hint", "")))
    return ops


def action(describe: str, planner: Planner, build: Build) -> Action:
    """The Action that runs the planner's operations, and prints them for the script."""

    def run_planned(ctx: StepContext) -> None:
        run(list(planner(ctx.build, ctx.log)), ctx.log)

    return Action(describe, run_planned, tuple(render(planned(planner, build))))


def install(src_root: Path, path: str, dest_root: Path) -> Iterator[Op]:
    """In-root ``path`` copied from ``src_root`` to the same path under ``dest_root``.

    Every symlink met while resolving ``path`` in the source -- directory links of a
    merged-/usr system (``/lib -> usr/lib``) as well as file links (``libc.so.6``,
    ``/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...``) -- is recreated with the
    same link text, so the names the loader and scripts use work in the new tree exactly as
    in the source; each directory is made with the source's mode, the file copied with its
    mode bits and times (a directory is just made). Idempotent.
    """
    canonical, links = elf.install_links(src_root, path)
    for link, target in links:
        yield from _dirs(src_root, dest_root, os.path.dirname(link))
        yield Symlink(dest_root / link.lstrip("/"), target)
    src = src_root / canonical.lstrip("/")
    if stat.S_ISDIR(src.lstat().st_mode):  # FileNotFoundError for a missing path
        yield from _dirs(src_root, dest_root, canonical)
        return
    if not src.is_file():
        raise ValueError(f"{path}: only regular files, directories and symlinks can be installed")
    yield from _dirs(src_root, dest_root, os.path.dirname(canonical))
    yield Copy(src, dest_root / canonical.lstrip("/"))


def install_path(src_root: Path, path: str, dest_root: Path) -> None:
    """Run :func:`install` at once."""
    run(list(install(src_root, path, dest_root)), _quiet)


def _dirs(src_root: Path, dest_root: Path, canonical_dir: str) -> Iterator[Mkdir]:
    """Each directory of an in-root path, with the mode it has in the source."""
    parts = [p for p in canonical_dir.split("/") if p]
    for i in range(1, len(parts) + 1):
        src = src_root.joinpath(*parts[:i])
        try:
            mode = stat.S_IMODE(src.lstat().st_mode) if src.is_dir() else 0o755
        except FileNotFoundError:
            mode = 0o755
        yield Mkdir(dest_root.joinpath(*parts[:i]), mode)


# -- running -------------------------------------------------------------------------------
def run(ops: Iterable[Op], log: Log) -> None:
    """Carry the operations out, in order."""
    for op in ops:
        _RUN[type(op)](op, log)


def _mkdir(op: Mkdir, _log: Log) -> None:
    if not os.path.lexists(op.path):
        op.path.mkdir(parents=True)
        if op.mode is not None:
            os.chmod(op.path, op.mode)


def _copy(op: Copy, _log: Log) -> None:
    # Next to the target then renamed: a link there is replaced, not written through, and a
    # read-only file already there does not stop it.
    fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=op.dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(op.src, tmp)
        shutil.copystat(op.src, tmp)
        os.replace(tmp, op.dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _copy_tree(op: CopyTree, _log: Log) -> None:
    if not os.path.lexists(op.dest):
        op.dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(op.src, op.dest, symlinks=True)


def _symlink(op: Symlink, _log: Log) -> None:
    if op.path.is_symlink():
        if os.readlink(op.path) == op.target:
            return
        op.path.unlink()
    elif os.path.lexists(op.path):
        raise FileExistsError(f"{op.path} exists and is not a symbolic link")
    op.path.symlink_to(op.target)


def _write_file(op: WriteFile, _log: Log) -> None:
    _remove(Remove(op.path), _log)
    fd = os.open(
        op.path,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
        0o666 if op.mode is None else 0o600,
    )
    with os.fdopen(fd, "wb") as out:
        out.write(op.content)
    if op.mode is not None:
        os.chmod(op.path, op.mode)


def _chmod(op: Chmod, _log: Log) -> None:
    os.chmod(op.path, op.mode)


def _chown(op: Chown, _log: Log) -> None:
    if os.geteuid() == 0:
        os.lchown(op.path, op.uid, op.gid)


def _remove(op: Remove, _log: Log) -> None:
    if op.path.is_dir() and not op.path.is_symlink():
        shutil.rmtree(op.path)
    elif os.path.lexists(op.path):
        op.path.unlink()


def _pin_times(op: PinTimes, _log: Log) -> None:
    times = (op.epoch, op.epoch)
    for dirpath, dirnames, filenames in os.walk(op.tree):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), times, follow_symlinks=False)
    os.utime(op.tree, times)


def _check(op: Check, log: Log) -> None:
    op.run(log)


def _append(op: Append, _log: Log) -> None:
    with open(op.path, "a", encoding="utf-8") as out:
        out.write(op.text())


def _deferred(op: Deferred, _log: Log) -> None:
    raise StepFailed(
        f"{op.describe}: only the exported script finds this when it runs",
        hint="this is a bug in livecd-tui: the plan was made too early",
    )


def _fail(op: Fail, _log: Log) -> None:
    raise StepFailed(op.message, hint=op.hint, option=op.option)


_RUN: dict[type, Callable[[Any, Log], None]] = {
    Mkdir: _mkdir,
    Copy: _copy,
    CopyTree: _copy_tree,
    Symlink: _symlink,
    WriteFile: _write_file,
    Chmod: _chmod,
    Chown: _chown,
    Remove: _remove,
    PinTimes: _pin_times,
    Check: _check,
    Append: _append,
    Deferred: _deferred,
    Fail: _fail,
}


# -- printing as bash ----------------------------------------------------------------------
def render(ops: Iterable[Op]) -> list[str]:
    """The operations as bash lines, for plan and export-script."""
    lines: list[str] = []
    made: set[Mkdir] = set()
    shown: list[Op] = []
    for op in ops:  # a directory made once is not made again (until something is removed)
        if isinstance(op, Remove):
            made.clear()
        elif isinstance(op, Mkdir):
            if op in made:
                continue
            made.add(op)
        shown.append(op)
    for group in _groups(shown):
        lines += _render_group(group)
    return lines


def _groups(ops: list[Op]) -> Iterator[list[Op]]:
    """Runs of operations printed as one line: plain mkdirs; links with one target made in
    one directory (a busybox's applets)."""
    group: list[Op] = []
    for op in ops:
        if group and not _same_kind(group[-1], op):
            yield group
            group = []
        group.append(op)
    if group:
        yield group


def _same_kind(a: Op, b: Op) -> bool:
    if isinstance(a, Mkdir) and isinstance(b, Mkdir):
        return a.mode == b.mode
    if isinstance(a, Symlink) and isinstance(b, Symlink):
        return a.target == b.target and a.path.parent == b.path.parent
    return False


def _render_group(group: list[Op]) -> list[str]:
    first = group[0]
    if isinstance(first, Mkdir) and len(group) > 1:
        mode = "" if first.mode is None else f" -m {first.mode:o}"
        return _wrapped(
            f"mkdir -p{mode}", [shell_quote(op.path) for op in group if isinstance(op, Mkdir)]
        )
    if isinstance(first, Symlink) and len(group) > 1:
        names = [shell_quote(op.path.name) for op in group if isinstance(op, Symlink)]
        return [
            *_wrapped("for name in", names, end=";"),
            f"do ln -sfT {shell_quote(first.target)} "
            f'{shell_quote(first.path.parent)}/"$name"; done',
        ]
    return [line for op in group for line in _render_one(op)]


def _wrapped(head: str, words: list[str], end: str = "", width: int = 92) -> list[str]:
    """``head`` then the words, over several lines joined with backslashes when long."""
    lines, line = [], head
    for word in words:
        if len(line) + 1 + len(word) > width and line != head:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line += " " + word
    return [*lines, line + end]


def _render_one(op: Op) -> list[str]:
    if isinstance(op, Mkdir):
        return [
            f"mkdir -p {shell_quote(op.path)}"
            if op.mode is None
            else f"mkdir -p -m {op.mode:o} {shell_quote(op.path)}"
        ]
    if isinstance(op, Copy):
        # Not cp -p: as root it would keep the source's owner, which the tool does not.
        return [
            f"cp --preserve=mode,timestamps --remove-destination {shell_quote(op.src)} "
            f"{shell_quote(op.dest)}"
        ]
    if isinstance(op, CopyTree):
        return [
            f"[ -e {shell_quote(op.dest)} ] || {{ mkdir -p {shell_quote(op.dest.parent)} && "
            f"cp -dR --preserve=mode,timestamps {shell_quote(op.src)} {shell_quote(op.dest)}; }}"
        ]
    if isinstance(op, Symlink):
        return [f"ln -sfT {shell_quote(op.target)} {shell_quote(op.path)}"]
    if isinstance(op, WriteFile):
        lines = [f"rm -rf {shell_quote(op.path)}"]
        try:
            lines += write_file_lines(op.path, op.content.decode())
        except UnicodeDecodeError:
            escaped = "".join(f"\\{byte:03o}" for byte in op.content)
            lines.append(f"printf '%b' {shlex.quote(escaped)} > {shell_quote(op.path)}")
        if op.mode is not None:
            lines.append(f"chmod {op.mode:o} {shell_quote(op.path)}")
        return lines
    if isinstance(op, Chmod):
        return [f"chmod {op.mode:o} {shell_quote(op.path)}"]
    if isinstance(op, Chown):
        return [f'[ "$(id -u)" != 0 ] || chown -h {op.uid}:{op.gid} {shell_quote(op.path)}']
    if isinstance(op, Remove):
        return [f"rm -rf {shell_quote(op.path)}"]
    if isinstance(op, PinTimes):
        return [f"find {shell_quote(op.tree)} -exec touch -h -d @{op.epoch} {{}} +"]
    if isinstance(op, Check | Append | Deferred):
        return [f"# {op.describe}", *op.script]
    return fail_lines(op.message, op.hint)


def fail_lines(message: str, hint: str = "") -> list[str]:
    """Bash that stops the script with the message a failing step would give."""
    text = message + (f" (hint: {hint})" if hint else "")
    return [f"echo {shell_quote('livecd-build: ' + text)} >&2", "exit 1"]
