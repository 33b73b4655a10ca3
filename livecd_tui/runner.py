"""Builds that outlive the terminal: starting a build detached from it, following it, and
stopping it. The work dir itself (its lock, who holds it, the guards on paths, ``clean``)
is ``workdir``'s.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from livecd_tui import procs
from livecd_tui.build import Build, BuildError
from livecd_tui.engine import Event, OutputLine, StageFinished, StageStarted, load_state
from livecd_tui.workdir import (
    EARLY_LOG_ENV,
    READY_FD_ENV,
    LockInfo,
    in_use_message,
    prepare_work_dir,
    read_lock,
)

#: How long ``start_detached`` waits for the build to hold the lock.
START_TIMEOUT = 120.0


# -- detached builds ---------------------------------------------------------------------
def start_detached(profile: Path, work: Path, extra: list[str]) -> int:
    """Start ``livecd-tui build`` in its own session, immune to the terminal hanging up;
    its output goes to ``WORK/logs/build.out``. Returns its pid once it holds the lock.

    The build says so on a pipe (or, refused, why); until then its output goes to a file
    of its own, so a build that loses the race for the work dir leaves the running one's
    output alone.
    """
    holder = read_lock(work)
    if holder:  # before starting anything
        raise BuildError(in_use_message(work, holder.describe(work)))
    prepare_work_dir(work)
    fd, early_name = tempfile.mkstemp(prefix=".build.out.", dir=work / "logs")
    early = Path(early_name)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{EARLY_LOG_ENV: str(early), READY_FD_ENV: str(write_fd)})
    argv = [
        sys.executable,
        "-m",
        "livecd_tui.cli",
        "build",
        str(profile),
        "--work-dir",
        str(work),
        *extra,
    ]
    try:
        with os.fdopen(fd, "w") as out, open(os.devnull) as devnull:
            proc = subprocess.Popen(
                argv,
                stdin=devnull,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=(write_fd,),
                env=env,
            )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        word = _read_until_closed(ready, START_TIMEOUT)
    if word.startswith(b"held"):
        return proc.pid
    if not word and proc.poll() is None:  # slow to start (a loaded machine): it goes on
        return proc.pid
    code = proc.wait()
    output = early.read_text(errors="replace") if early.exists() else ""
    early.unlink(missing_ok=True)
    if word.startswith(b"refused "):
        raise BuildError(word[len(b"refused ") :].decode(errors="replace"))
    raise BuildError(f"the build exited at once (exit {code}): " + output[-2000:])


def _read_until_closed(pipe: IO[bytes], timeout: float) -> bytes:
    """What the other end wrote before closing it, or what came within ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([pipe], [], [], left)
        if not ready:
            break
        chunk = os.read(pipe.fileno(), 65536)
        if not chunk:
            break
        data += chunk
    return data


def stop(work: Path, timeout: float = 30.0) -> LockInfo | None:
    """SIGTERM the build holding the work dir and wait until it let go; None if idle."""
    holder = read_lock(work)
    if holder is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(holder.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while procs.alive(holder.pid, holder.start) and read_lock(work) == holder:
        if time.monotonic() > deadline:
            raise BuildError(f"the build (pid {holder.pid}) did not stop within {timeout:g} s")
        time.sleep(0.1)
    return holder


def end_leftovers(work: Path) -> str | None:
    """End what a killed build left running in the work dir (see ``procs``), unless a
    build is running there now; says what was ended."""
    if read_lock(work) is not None:
        return None
    return procs.end_leftovers(work)


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
            if (
                previous != key
                and state.status in ("done", "failed", "interrupted", "skipped")
                and not (self._first and state.status == "skipped")
            ):
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
