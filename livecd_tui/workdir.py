"""The work dir: its marker, its lock and the lock's readers, and the guards that keep a
root-run tool from deleting or writing what it must not.

The build deletes things inside its work dir, so a work dir carries a marker
(``WORK_MARKER``) from the moment it is made, and a non-empty dir without one is refused.

A build owns its work dir through an ``flock`` on ``WORK/lock``, held for the life of the
process: the kernel drops it however the process dies, so a dead build's lock is simply
taken over. Who holds it is in ``WORK/lock.json`` (pid, the process's start time, profile),
written by the holder through a rename, so a reader never sees it half-written. Readers
never touch the lock itself (a reader holding it for a moment would make a build starting
at that moment fail): a build is running when the process the file names is alive and
started when the file says.

This module sits below the engine and imports no stage: what a build packs (which the work
dir and the ISO must stay out of) comes from the stages' own declarations (``packs``),
handed in by the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Protocol

from livecd_tui import procs
from livecd_tui.bootconf import ISO_APPLICATION_ID
from livecd_tui.build import EPOCH_FILE, WORK_MARKER, Build, BuildError
from livecd_tui.kernel.kbuild import make_path_problem

#: What the marker file says.
MARKER_TEXT = "This directory is a livecd-tui work dir.\n"
LOCK_FILE = "lock"
#: Who holds the lock (``LockInfo`` as JSON), beside it.
HOLDER_FILE = "lock.json"
DETACHED_LOG = "logs/build.out"
#: How long a build refused the lock waits for the holder to name itself (it writes its
#: file right after taking the lock).
HOLDER_WAIT = 5.0
#: A detached build's first moments (``runner.start_detached``): where its output goes
#: until it holds the lock (then it becomes ``DETACHED_LOG``), and the pipe on which it
#: says it holds it.
EARLY_LOG_ENV = "LIVECD_TUI_EARLY_LOG"
READY_FD_ENV = "LIVECD_TUI_READY_FD"


class Packing(Protocol):
    """What the guards need of a stage: the top-level dirs of the system root it packs
    into the image (``engine.Stage.packs``)."""

    @property
    def packs(self) -> Callable[[Build], Sequence[str]]: ...


# -- the marker -------------------------------------------------------------------------
def marker_problem(work: Path) -> str | None:
    """Why *work* may not be used as a work dir: a non-empty dir livecd-tui did not make."""
    if work.is_dir() and not (work / WORK_MARKER).exists() and any(work.iterdir()):
        return (
            f"the work dir {work} is not empty and was not made by livecd-tui "
            f"(no {WORK_MARKER} in it); choose an empty or new directory"
        )
    return None


def prepare_work_dir(work: Path, epoch: int | None = None) -> None:
    """Create the work dir with its marker; refuse a non-empty dir that lacks the marker,
    because the build deletes things inside its work dir."""
    if work.exists():
        if not work.is_dir():
            raise BuildError(f"work dir {work} exists and is not a directory")
        problem = marker_problem(work)
        if problem:
            raise BuildError(problem)
    # The marker before anything else: a build starting beside this one must never see the
    # dir non-empty and unmarked (it would refuse it as not made by livecd-tui).
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARKER).write_text(MARKER_TEXT)
    for sub in ("stages", "logs", "state", "out"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if epoch is not None and not (work / EPOCH_FILE).exists():
        (work / EPOCH_FILE).write_text(f"{epoch}\n")


# -- the lock ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LockInfo:
    """Who holds a work dir."""

    pid: int
    since: float
    profile: str
    #: The holder's start time (``procs.process_start``): with the pid, names one process.
    start: int = 0

    def describe(self, work: Path) -> str:
        stage = running_stage(work)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid}, profile {self.profile}, running since {when}" + (
            f", stage {stage}" if stage else ""
        )


def read_lock(work: Path) -> LockInfo | None:
    """The build holding the work dir, or None when no live process holds it. Takes no
    lock: reads the holder's file and checks that its process still runs."""
    data = procs.read_json(work / HOLDER_FILE)
    if data is None:
        return None
    try:
        info = LockInfo(
            int(data["pid"]), float(data["since"]), str(data.get("profile", "")), int(data["start"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    return info if procs.alive(info.pid, info.start) else None


@contextlib.contextmanager
def work_lock(build: Build) -> Iterator[None]:
    """Hold the work dir for this process, or refuse naming the build that holds it."""
    work = build.work
    path = work / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a")  # noqa: SIM115 - closed below; never written
    try:
        _take_lock(handle, work)
        me = os.getpid()
        info = LockInfo(me, time.time(), build.profile_shown, procs.process_start(me) or 0)
        procs.replace_file(work / HOLDER_FILE, json.dumps(asdict(info)).encode())
        try:
            _announce_held(work)
            yield
        finally:
            # Before the lock goes: a reader must never see a holder that let go.
            (work / HOLDER_FILE).unlink(missing_ok=True)
    finally:
        handle.close()


def _take_lock(handle: IO[str], work: Path) -> None:
    """Take the lock, or raise naming its holder (who may need a moment to write its
    name: the lock comes first)."""
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = read_lock(work)
        if holder is not None or time.monotonic() > deadline:
            who = holder.describe(work) if holder else "another process"
            raise BuildError(in_use_message(work, who))
        time.sleep(0.02)


def in_use_message(work: Path, who: str) -> str:
    quoted = shlex.quote(str(work))  # a hint to paste into a shell
    return (
        f"work dir {work} is in use by a running build ({who}); follow it with "
        f"`livecd-tui attach {quoted}` or stop it with `livecd-tui stop {quoted}`"
    )


def _announce_held(work: Path) -> None:
    """In a build ``start_detached`` started: its output becomes ``DETACHED_LOG`` (only now,
    so a build refused the work dir never touches the running one's), and the starter
    learns that the lock is held."""
    early = os.environ.pop(EARLY_LOG_ENV, None)
    if early:
        with contextlib.suppress(OSError):
            os.replace(early, work / DETACHED_LOG)
    _tell_starter(b"held\n")


def _tell_starter(message: bytes) -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None or not fd.isdigit():
        return
    with contextlib.suppress(OSError):
        os.write(int(fd), message)
    with contextlib.suppress(OSError):
        os.close(int(fd))


def report_refusal(message: str) -> None:
    """In a build ``start_detached`` started, refused before it held the lock: hand the
    reason to the starter, which says it as its own (no-op in any other build)."""
    _tell_starter(b"refused " + message.encode(errors="replace"))


def running_stage(work: Path) -> str | None:
    """The stage whose state says running (trust it only while the lock is held)."""
    state_dir = work / "state"
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("status") == "running":
                return path.stem
    return None


# -- dangerous paths --------------------------------------------------------------------
#: The running system's own directories: never a work dir, never where an ISO goes.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib",
    "/var/log",
    "/var/spool",
)
#: Characters a path may not hold: tools read line-based lists naming it (mksquashfs's
#: exclude and pseudo files), where a line break would start a definition of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PathProblem:
    """Why a path the build would write or delete in is dangerous, and the option to change."""

    key: str
    message: str

    def __str__(self) -> str:
        return self.message


def path_problems(build: Build, stages: Iterable[Packing]) -> list[str]:
    """Why the work dir or the ISO's path would be dangerous, if they would (the messages of
    :func:`path_findings`)."""
    return [finding.message for finding in path_findings(build, stages)]


def path_findings(build: Build, stages: Iterable[Packing]) -> list[PathProblem]:
    """Why the work dir or the ISO's path would be dangerous, each with its option.

    The build deletes things inside its work dir and writes the ISO where the profile says,
    running as root: the work dir passes :func:`work_dir_problems`; the ISO output is a new
    file or an ISO livecd-tui wrote (never a symlink, another file or a directory), outside
    the system's own directories and what *stages* pack.
    """
    stages = list(stages)
    found = [PathProblem("build.work_dir", m) for m in work_dir_problems(build.work, build, stages)]
    found += [PathProblem("iso.output", m) for m in output_problems(build, stages)]
    if build.profile["kernel.source"] == "tree":
        tree = build.profile.resolve_path("kernel.tree") or Path("/usr/src/linux")
        for key, what, path in (
            ("kernel.tree", "kernel tree", tree),
            ("build.work_dir", "work dir", build.work),
        ):
            problem = make_path_problem(what, path)
            if problem:
                found.append(PathProblem(key, problem))
    return found


def work_dir_problems(
    work: Path, build: Build | None = None, stages: Iterable[Packing] = (), marker: bool = True
) -> list[str]:
    """Why deleting inside *work* would be dangerous: it is /, $HOME, the system root (or
    holds one of them), a system directory, inside what *build*'s *stages* pack (unless
    excluded), or a non-empty dir without the marker (unless not *marker*: ``clean`` wants
    the marker whatever the dir holds). ``build``, ``clean`` and ``export-script`` all ask."""
    problems: list[str] = []
    if _CONTROL.search(str(work)):
        return [
            f"the work dir {_show(work)} holds a line break or control character; "
            "choose another (--work-dir or build.work_dir)"
        ]
    real = _real(work)
    system = _packed_root(build)
    problems += _place_problems("work dir", real, system)
    if not problems:
        problems += _system_dir_problems("work dir", real, contains=True)
    if build is not None and system is not None:
        problems += _packed_problems(build, stages, "work dir", real, system)
    if marker and (problem := marker_problem(real)):
        problems.append(problem)
    return problems


def output_problems(build: Build, stages: Iterable[Packing] = ()) -> list[str]:
    """Why writing the ISO (and its .sha256) where the profile says would be dangerous.

    The default, ``WORK/out/PROFILE.iso``, lies in the work dir and is the build's own.
    """
    value = build.profile["iso.output"]
    if not value:
        return []
    given = Path(os.path.abspath(build.profile.base_dir / os.path.expanduser(value)))
    if _CONTROL.search(str(given)):
        return [f"iso.output {_show(given)} holds a line break or control character"]
    iso = _real(given)
    system = _packed_root(build)
    problems = _place_problems("ISO output", iso, system)
    if problems:
        return problems
    if given.is_symlink():
        return [
            f"iso.output {given} is a symbolic link (to {iso}); livecd-tui replaces "
            "only a file it wrote: name the file itself"
        ]
    if iso.is_dir():
        return [f"the ISO output {iso} is a directory; give a file name"]
    problems += _system_dir_problems("ISO output", iso, contains=False)
    if system is not None and not problems:
        problems += _packed_problems(build, stages, "ISO output", iso.parent, system, shown=iso)
    if os.path.lexists(iso) and not written_by_livecd_tui(iso):
        problems.append(
            f"iso.output {iso} exists and is not an ISO livecd-tui wrote (its "
            f"volume descriptor lacks the application id {ISO_APPLICATION_ID}); "
            "move it away or choose another path"
        )
    sums = iso.with_name(iso.name + ".sha256")
    if build.profile["iso.checksum"] and os.path.lexists(sums) and not _checksum_file(sums):
        problems.append(
            f"{sums} (written beside the ISO, iso.checksum) exists and is not a "
            "checksum line livecd-tui wrote; move it away or turn iso.checksum "
            "off"
        )
    return problems


def written_by_livecd_tui(path: Path) -> bool:
    """Whether *path* is a regular file holding an ISO 9660 image whose primary volume
    descriptor carries livecd-tui's application id (every image it writes has it)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False  # a FIFO would block the read, a device is no image to replace
        with open(path, "rb") as handle:
            handle.seek(16 * 2048)  # the first volume descriptor, after the system area
            descriptor = handle.read(2048)
    except OSError:
        return False
    return (
        descriptor[:6] == b"\x01CD001"
        and descriptor[574:702].rstrip(b" ") == ISO_APPLICATION_ID.encode()
    )


def _checksum_file(path: Path) -> bool:
    """Whether *path* is a small regular file holding one ``sha256sum`` line."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > 4096:
            return False
        return re.fullmatch(r"[0-9a-f]{64}  [^\n]+\n", path.read_text()) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _packed_root(build: Build | None) -> Path | None:
    """The system root being packed, when it is a real root (a busybox system is made
    inside the work dir and needs no guarding)."""
    if build is None or build.profile["system.source"] != "root":
        return None
    return _real(build.system_root)


def _place_problems(what: str, path: Path, system: Path | None) -> list[str]:
    home = _real(Path.home())
    if path == Path("/"):
        return [f"the {what} is /"]
    if system is not None and path == system:
        return [f"the {what} is the system root being packed ({system})"]
    if path == home:
        return [f"the {what} is your home directory ({home})"]
    if system is not None and path in system.parents:
        return [f"the {what} {path} contains the system root {system}"]
    if path in home.parents:
        return [f"the {what} {path} contains your home directory {home}"]
    return []


def _system_dir_problems(what: str, path: Path, contains: bool) -> list[str]:
    if _real(Path.home()) in path.parents:
        return []  # a service account's home under /var/lib is still its own
    for name in SYSTEM_DIRS:
        system_dir = _real(Path(name))
        if path == system_dir or system_dir in path.parents:
            return [
                f"the {what} {path} is inside the system directory {system_dir}; "
                "choose a place of your own (e.g. under /srv, /var/tmp or $HOME)"
            ]
        if contains and path in system_dir.parents:
            return [f"the {what} {path} contains the system directory {system_dir}"]
    return []


def _packed_problems(
    build: Build,
    stages: Iterable[Packing],
    what: str,
    path: Path,
    system: Path,
    shown: Path | None = None,
) -> list[str]:
    """Whether the dir *path* lies in what is packed (and not excluded): the build would
    pack its own files (*shown* is the path to name, if another)."""
    packed = [_real(system / name.strip("/")) for stage in stages for name in stage.packs(build)]
    excluded = [system / e.strip("/") for e in build.profile["system.excludes"]]
    inside = next((d for d in packed if path == d or d in path.parents), None)
    if inside and not any(path == e or e in path.parents for e in excluded):
        return [
            f"the {what} {shown or path} is inside {inside}, which is packed; add "
            f"{path.relative_to(system)} to system.excludes or choose another place"
        ]
    return []


def _show(path: Path | str) -> str:
    """A path for a message, line breaks and control characters made visible."""
    return repr(str(path)) if _CONTROL.search(str(path)) else str(path)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def clean(work: Path, build: Build | None = None, stages: Iterable[Packing] = ()) -> str | None:
    """Delete a work dir, but only one livecd-tui made and no build holds, and never one
    the build's guards refuse (/, $HOME, the system root, a system directory...), marker or
    not; *build* adds what its *stages* pack. Returns what it ended that a killed build
    had left running, if anything."""
    problems = work_dir_problems(work, build, stages, marker=False)
    if problems:
        raise BuildError(f"refusing to delete {_show(work)}: " + "; ".join(problems))
    work = _real(work)
    if not (work / WORK_MARKER).is_file():
        raise BuildError(
            f"refusing to delete {work}: it has no {WORK_MARKER} file, so "
            "livecd-tui did not make it"
        )
    holder = read_lock(work)
    if holder:
        raise BuildError(
            f"refusing to delete {work}: a build is running in it ({holder.describe(work)})"
        )
    ended = procs.end_leftovers(work)  # what a killed build left running writes into it
    shutil.rmtree(work)
    return ended
