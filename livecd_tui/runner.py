"""Builds that outlive the terminal: the work dir lock, detached builds, following and
stopping them, and the guards that keep a root-run tool from deleting what it must not.

A build owns its work dir through ``WORK/lock``: an ``flock`` held for the life of the
process, plus a line of JSON saying who holds it. The kernel drops the lock when the process
dies however it dies, so a lock left by a dead process is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from livecd_tui.build import WORK_MARKER, Build
from livecd_tui.engine import (
    BuildError,
    Event,
    OutputLine,
    StageFinished,
    StageStarted,
    load_state,
    prepare_work_dir,
)

LOCK_FILE = "lock"
DETACHED_LOG = "logs/build.out"


@dataclass(frozen=True)
class LockInfo:
    """Who holds a work dir."""

    pid: int
    since: float
    profile: str

    def describe(self, work: Path) -> str:
        stage = running_stage(work)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return (f"pid {self.pid}, profile {self.profile}, running since {when}"
                + (f", stage {stage}" if stage else ""))


def read_lock(work: Path) -> LockInfo | None:
    """The build holding the work dir, or None when no live process holds it."""
    path = work / LOCK_FILE
    try:
        handle = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                data = json.loads(handle.read() or "{}")
                return LockInfo(int(data["pid"]), float(data["since"]),
                                str(data.get("profile", "")))
            except (ValueError, KeyError, TypeError):
                return LockInfo(0, 0.0, "?")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def work_lock(build: Build) -> Iterator[None]:
    """Hold the work dir for this process, or refuse naming the build that holds it."""
    path = build.work / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_lock(build.work)
            who = holder.describe(build.work) if holder else "another process"
            raise BuildError(f"work dir {build.work} is in use by a running build ({who}); "
                             f"follow it with `livecd-tui attach {build.work}` or stop it "
                             f"with `livecd-tui stop {build.work}`") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": time.time(),
                                 "profile": build.profile_shown}))
        handle.flush()
        yield
    finally:
        handle.close()


def running_stage(work: Path) -> str | None:
    """The stage whose state says running (trust it only while the lock is held)."""
    state_dir = work / "state"
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("status") == "running":
                return path.stem
    return None


# -- dangerous paths --------------------------------------------------------------------
def path_problems(build: Build) -> list[str]:
    """Why the work dir or the ISO's path would be dangerous, if they would.

    The build deletes things inside its work dir and writes the ISO where the profile says,
    running as root: neither may be /, the system root, $HOME, or inside what is packed
    (unless the profile excludes it); an existing non-empty work dir must carry the marker.
    """
    problems: list[str] = []
    work = _real(build.work)
    home = _real(Path.home())
    iso = _real(build.iso_path)
    # A busybox system is made inside the work dir: only a real root needs guarding.
    packs_root = build.profile["system.source"] == "root"
    system = _real(build.system_root) if packs_root else None
    for what, path in (("work dir", work), ("ISO output", iso)):
        if path == Path("/"):
            problems.append(f"the {what} is /")
        elif system is not None and path == system:
            problems.append(f"the {what} is the system root being packed ({system})")
        elif path == home:
            problems.append(f"the {what} is your home directory ({home})")
        elif system is not None and path in system.parents:
            problems.append(f"the {what} {path} contains the system root {system}")
        elif path in home.parents:
            problems.append(f"the {what} {path} contains your home directory {home}")
    if iso.is_dir():
        problems.append(f"the ISO output {iso} is a directory; give a file name")
    if system is not None:
        packed = _packed_dirs(build)
        excluded = [system / e.strip("/") for e in build.profile["system.excludes"]]
        for what, path in (("work dir", work), ("ISO output", iso.parent)):
            inside = next((d for d in packed if path == d or d in path.parents), None)
            if inside and not any(path == e or e in path.parents for e in excluded):
                problems.append(f"the {what} {path} is inside {inside}, which is packed; "
                                f"add {path.relative_to(system)} to system.excludes or "
                                "choose another place")
    if work.is_dir() and not (work / WORK_MARKER).exists() and any(work.iterdir()):
        problems.append(f"the work dir {work} is not empty and was not made by livecd-tui "
                        f"(no {WORK_MARKER} in it)")
    return problems


def _packed_dirs(build: Build) -> list[Path]:
    from livecd_tui.stages.system import squashfs_sources
    from livecd_tui.stages.writable import archive_name

    system = build.system_root
    names = squashfs_sources(build, system)
    if archive_name(build) and build.profile["writable.strategy"] == "classic":
        names += list(build.profile["writable.archive_dirs"])
    return [_real(system / n.strip("/")) for n in names]


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def clean(work: Path) -> None:
    """Delete a work dir, but only one livecd-tui made and no build holds."""
    work = _real(work)
    if not (work / WORK_MARKER).is_file():
        raise BuildError(f"refusing to delete {work}: it has no {WORK_MARKER} file, so "
                         "livecd-tui did not make it")
    holder = read_lock(work)
    if holder:
        raise BuildError(f"refusing to delete {work}: a build is running in it "
                         f"({holder.describe(work)})")
    shutil.rmtree(work)


# -- detached builds ---------------------------------------------------------------------
def start_detached(profile: Path, work: Path, extra: list[str]) -> int:
    """Start ``livecd-tui build`` in its own session, immune to the terminal hanging up;
    its output goes to ``WORK/logs/build.out``. Returns its pid once it holds the lock."""
    holder = read_lock(work)
    if holder:  # before touching its output file
        raise BuildError(f"work dir {work} is in use by a running build "
                         f"({holder.describe(work)})")
    prepare_work_dir(work)
    log = work / DETACHED_LOG
    argv = [sys.executable, "-m", "livecd_tui.cli", "build", str(profile),
            "--work-dir", str(work), *extra]
    with open(log, "w") as out, open(os.devnull) as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        holder = read_lock(work)
        if holder and holder.pid == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            raise BuildError(f"the build exited at once (exit {proc.returncode}): "
                             + log.read_text(errors="replace")[-2000:])
        time.sleep(0.05)
    return proc.pid


def stop(work: Path, timeout: float = 30.0) -> LockInfo | None:
    """SIGTERM the build holding the work dir and wait until it let go; None if idle."""
    holder = read_lock(work)
    if holder is None or holder.pid <= 0:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(holder.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while read_lock(work) is not None:
        if time.monotonic() > deadline:
            raise BuildError(f"the build (pid {holder.pid}) did not stop within {timeout:g} s")
        time.sleep(0.1)
    return holder


class Follower:
    """Turns a work dir that another process is building into engine events: stages that
    start and finish (from the state files) and their log lines (from the log files),
    earlier lines included, so a re-attached viewer sees the whole stage."""

    def __init__(self, work: Path, stages: list[str]) -> None:
        self.work = work
        self.stages = stages
        self._status: dict[str, tuple[str, float | None]] = {}
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, str] = {}
        self._first = True

    def poll(self, emit: Callable[[Event], None]) -> None:
        """Emit what happened since the last poll."""
        build_view = _StateView(self.work)
        for name in self.stages:
            state = build_view.state(name)
            key = (state.status, state.started)
            previous = self._status.get(name)
            if state.status == "running" and (previous is None or previous != key):
                self._offsets[name] = 0
                emit(StageStarted(name, 0))
            self._follow_log(name, emit)
            if previous != key and state.status in ("done", "failed", "interrupted",
                                                     "skipped") and not (
                    self._first and state.status == "skipped"):
                duration = state.duration or 0.0
                emit(StageFinished(name, state.status, duration, None))
            self._status[name] = key
        self._first = False

    def _follow_log(self, name: str, emit: Callable[[Event], None]) -> None:
        path = self.work / "logs" / f"{name}.log"
        offset = self._offsets.get(name)
        if offset is None:
            return
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return
        if not data:
            return
        self._offsets[name] = offset + len(data)
        text = self._partial.pop(name, "") + data.decode(errors="replace")
        *lines, rest = text.split("\n")
        if rest:
            self._partial[name] = rest
        for line in lines:
            emit(OutputLine(name, line))

    def building(self) -> bool:
        return read_lock(self.work) is not None


class _StateView:
    def __init__(self, work: Path) -> None:
        from livecd_tui.profile import new_profile

        self.build = Build(profile=new_profile(), work=work)

    def state(self, name: str) -> Any:
        return load_state(self.build, name)
