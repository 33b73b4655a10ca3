"""Processes a build starts or owns: running a program (the project's one way, through
``sh``), whether one is still the same process, making the commands die with the build,
and finding what a killed build left running.

Every external program runs through :func:`start` (the engine's commands, streamed to a
log) or :func:`run` (a probe or a helper whose output is wanted whole), with the same
settings: an argv list, never a shell; a real stdin (a file, never ``sh``'s feeder queue);
its output into files or pipes this process hands over (no byte-by-byte reading); its own
session, so its whole process group can be stopped; killed when the thread that started it
ends (``PR_SET_PDEATHSIG``); every exit code returned, a signal as its negative number. A
program not installed raises :class:`ProgramNotFound` (an ``OSError``, as ``subprocess``
raises), a timeout ``TimeoutError`` (also an ``OSError``).

A pid alone says little: after a build dies its pid can be given to anything. A process is
named here by its pid *and* its start time (``/proc/PID/stat`` field 22, clock ticks since
boot), which together never name two processes.

Every command the engine runs carries a token in its environment (``LIVECD_TUI_COMMAND``),
recorded in ``WORK/lock.command`` while it runs. When a build is killed outright (SIGKILL,
the OOM killer), its command dies with it (``PR_SET_PDEATHSIG``); what that command started
in turn (make's compilers, a shell's children) is found by the token and ended by the next
``status``, ``stop`` or build.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shlex
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import sh

#: The running command's record, beside the work dir's lock.
COMMAND_FILE = "lock.command"
#: The environment variable that marks a command (and everything it starts) as the build's.
TOKEN_ENV = "LIVECD_TUI_COMMAND"

#: Seconds between SIGTERM and SIGKILL when stopping a command.
KILL_GRACE = 5.0
_PR_SET_PDEATHSIG = 1
try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the leftover search still works
    _prctl = None


def _stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from field 3 (state) on, for a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields


def process_start(pid: int) -> int | None:
    """When a live process started (clock ticks since boot); None when there is no such
    process, or only its zombie (it has ended, its parent has not reaped it yet)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def _group(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if fields else None


def _other_pids() -> Iterator[int]:
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me:
            yield int(entry.name)


def alive(pid: int, start: int) -> bool:
    """Whether the process that had this pid and start time still runs."""
    return pid > 0 and process_start(pid) == start


def replace_file(target: Path, data: bytes) -> None:
    """Write ``target`` through a temporary file and a rename, so a reader sees the old
    content or the new, never a half-written file. Not fsync'd: these files describe
    processes, and a reboot ends every process they could name."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON object from a file, or None when it is missing or not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def die_with_parent() -> Callable[[], None]:
    """A function for the forked child, before it execs: the kernel SIGKILLs the child when
    the thread that forked it ends, so a build killed outright leaves no command running.

    The signal follows the parent *thread*: the engine forks from the thread that waits for
    the command, which outlives it. A parent that died before the call is caught by
    comparing ``getppid`` with the pid taken before the fork.
    """
    parent = os.getpid()

    def in_child() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


# -- running a program ------------------------------------------------------------------
class ProgramNotFound(FileNotFoundError):
    """The program is not installed (or not where its path says)."""


def _program(name: str) -> Any:
    try:
        return sh.Command(name)
    except sh.CommandNotFound:
        # The words and errno subprocess uses, so messages read as they always did.
        raise ProgramNotFound(errno.ENOENT, "No such file or directory", name) from None


def start(
    argv: Sequence[str],
    *,
    stdin: IO[bytes],
    stdout: IO[bytes],
    stderr: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Any:
    """Start *argv* in the background with the project's settings (module docstring); its
    stderr goes to *stdout* unless *stderr* is given. Returns sh's running command (wait
    for it with :func:`wait`). *env* is the whole environment (default: this process's).

    The files are handed to the program as they are (sh duplicates their descriptors), so
    nothing reads its output byte by byte and a real stdin costs no feeder thread (sh's
    queue wakes every 0.1 s and cost 100 ms per command: bench/overhead.sh).
    """
    program = _program(argv[0])
    kwargs: dict[str, Any] = dict(
        _bg=True,
        _bg_exc=False,
        _new_session=True,
        _tty_out=False,
        _env=dict(os.environ if env is None else env),
        _ok_code=list(range(256)),
        _preexec_fn=die_with_parent(),
        _in=stdin,
        _out=stdout,
    )
    if stderr is None:
        kwargs["_err_to_out"] = True
    else:
        kwargs["_err"] = stderr
    if cwd:
        kwargs["_cwd"] = str(cwd)
    try:
        return program(*argv[1:], **kwargs)
    except sh.ForkException as err:  # the exec failed: said by the child before it exited
        raise OSError(str(err).strip()) from None


def wait(process: Any) -> int:
    """Wait for a process :func:`start` started: its exit code, or -N when signal N ended
    it."""
    try:
        process.wait()
        return int(process.exit_code)
    except sh.SignalException as err:
        return -abs(getattr(err, "exit_code", 0) or 0)
    except sh.ErrorReturnCode as err:
        return int(err.exit_code)


@dataclass(frozen=True)
class Finished:
    """A program :func:`run` ran to its end."""

    argv: tuple[str, ...]
    #: The exit code, or -N when signal N ended it.
    returncode: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")


def run(
    argv: Sequence[str | Path],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float | None = None,
) -> Finished:
    """Run *argv* to its end with the project's settings, *input* as its stdin (else
    /dev/null), and return its exit code and output. Raises :class:`ProgramNotFound`, an
    ``OSError`` when it cannot start, ``TimeoutError`` when *timeout* seconds pass (its
    whole process group is stopped then)."""
    words = [str(a) for a in argv]
    with contextlib.ExitStack() as files:
        if input is None:
            stdin: IO[bytes] = files.enter_context(open(os.devnull, "rb"))
        else:
            stdin = files.enter_context(tempfile.TemporaryFile())
            stdin.write(input)
            stdin.seek(0)
        out = files.enter_context(tempfile.TemporaryFile())
        err = files.enter_context(tempfile.TemporaryFile())
        process = start(words, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
        expired = threading.Event()
        timer = None
        if timeout is not None:

            def expire() -> None:
                expired.set()
                kill_process_group(process.pid, 2.0)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        try:
            code = wait(process)
        finally:
            if timer is not None:
                timer.cancel()
        if expired.is_set():
            raise TimeoutError(f"{shlex.join(words)} timed out after {timeout:g} s")
        out.seek(0)
        err.seek(0)
        return Finished(tuple(words), code, out.read(), err.read())


def run_in_terminal(argv: Sequence[str], cwd: Path | str | None = None) -> int:
    """Run an interactive program (menuconfig, a shell) on this process's terminal, and
    return its exit code. Unlike :func:`run` it shares the terminal's session and stdio:
    it must read the keyboard and be the terminal's foreground job."""
    program = _program(argv[0])
    # Only 0 is "ok": with _fg, sh returns nothing and says any other code by raising.
    kwargs: dict[str, Any] = dict(_fg=True, _ok_code=[0])
    if cwd:
        kwargs["_cwd"] = str(cwd)
    try:
        program(*argv[1:], **kwargs)
    except sh.SignalException as err:
        return -abs(getattr(err, "exit_code", 0) or 0)
    except sh.ErrorReturnCode as err:
        return int(err.exit_code)
    return 0


def kill_process_group(pid: int, grace: float = KILL_GRACE) -> None:
    """SIGTERM a process group, then SIGKILL it if it is still there after ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class CommandRecord:
    """The command a build runs, as the work dir remembers it."""

    token: str
    stage: str
    command: str
    #: The build process that runs it (pid and start time).
    build_pid: int
    build_start: int
    started: float

    def orphaned(self) -> bool:
        """Whether the build that ran it is gone (so whatever carries its token is left
        over)."""
        return not alive(self.build_pid, self.build_start)


_MY_START: tuple[int, int] | None = None


def _my_start() -> int:
    """This process's start time, read once (per process: a fork has its own)."""
    global _MY_START
    me = os.getpid()
    if _MY_START is None or _MY_START[0] != me:
        _MY_START = (me, process_start(me) or 0)
    return _MY_START[1]


def new_command(work: Path, stage: str, command: str) -> CommandRecord:
    """Record the command about to start; its environment must carry the token."""
    record = CommandRecord(uuid.uuid4().hex, stage, command, os.getpid(), _my_start(), time.time())
    replace_file(work / COMMAND_FILE, json.dumps(asdict(record)).encode())
    return record


def command_ended(work: Path) -> None:
    """Forget the command once it has ended. Only the build holding the work dir writes
    the record, so the record there is its own."""
    (work / COMMAND_FILE).unlink(missing_ok=True)


def read_command(work: Path) -> CommandRecord | None:
    data = read_json(work / COMMAND_FILE)
    if data is None:
        return None
    try:
        return CommandRecord(
            str(data["token"]),
            str(data["stage"]),
            str(data["command"]),
            int(data["build_pid"]),
            int(data["build_start"]),
            float(data["started"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def carriers(token: str) -> list[int]:
    """Every process whose environment carries this command token."""
    needle = f"{TOKEN_ENV}={token}".encode()
    found = []
    for pid in _other_pids():
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as env:
            if needle in env.read().split(b"\0"):
                found.append(pid)
    return [pid for pid in found if process_start(pid) is not None]


def leftovers(token: str) -> list[int]:
    """What a command left running: the processes carrying its token, and every other
    member of their process groups (a program that cleared its environment stays in the
    command's group). A group with a carrier in it is the command's still: the kernel does
    not reuse a group id while the group has members."""
    found = set(carriers(token))
    groups = {group for pid in found if (group := _group(pid)) is not None}
    if groups:
        found.update(pid for pid in _other_pids() if _group(pid) in groups)
    return sorted(found)


def end_leftovers(work: Path, grace: float = 2.0) -> str | None:
    """End what a dead build's command left running (SIGTERM, then SIGKILL after
    ``grace``), and forget the record. Says what was ended; None when nothing was."""
    record = read_command(work)
    if record is None or not record.orphaned():
        return None
    found = leftovers(record.token)
    # Named by pid and start time: a pid freed in the meantime may be given to another.
    named = [(pid, start) for pid in found if (start := process_start(pid)) is not None]
    for pid, _ in named:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while named and time.monotonic() < deadline:
        time.sleep(0.05)
        named = [(pid, start) for pid, start in named if alive(pid, start)]
    for pid, start in named:
        if alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    current = read_command(work)
    if current is not None and current.token == record.token:  # not a new build's
        command_ended(work)
    if not found:
        return None
    return (
        f"{len(found)} process(es) of `{record.command}` (stage {record.stage}), "
        "left running by a build that was killed"
    )
