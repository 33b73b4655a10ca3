"""The engine: runs the stages' steps, logs them, records state, skips what is up to date.

One engine serves both the headless ``build`` command and the TUI. It reports what happens
through listener callbacks (plain dataclass events); listeners are called from the thread
that runs the build, so a UI must hand them over to its own thread.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import os
import select
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from livecd_tui import __version__, procs, workdir
from livecd_tui.build import WORK_MARKER, Build, BuildError, StepContext
from livecd_tui.options import OPTIONS
from livecd_tui.profile import write_atomically
from livecd_tui.steps import Action, Command, Step
from livecd_tui.terminal import printable

Status = Literal["pending", "running", "done", "failed", "interrupted", "skipped"]

#: How many output lines a failure report quotes.
TAIL_LINES = 20
#: Output lines kept for a step's diagnosis of its failure (a boot's serial console).
DIAGNOSE_LINES = 20_000
#: Files up to this size are fingerprinted by content, bigger ones by size and mtime.
SMALL_FILE = 32 * 1024 * 1024


class StepFailed(Exception):
    """Raised by an Action (or the engine) when a step cannot do its job."""

    def __init__(self, message: str, hint: str = "", option: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.option = option


class PlanError(BuildError):
    """A stage cannot be planned: the profile asks for what the stage cannot do.
    ``option`` is the option most likely at fault ("" when nothing names one)."""

    def __init__(self, message: str, option: str = "") -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Stage:
    """A stage: what it is, which options and earlier stages it uses, and its planner."""

    name: str
    title: str
    describe: str
    plan: Callable[[Build], list[Step]]
    #: Option keys or key prefixes (``"bootloader."``) whose values the stage reads.
    reads: tuple[str, ...] = ()
    #: Earlier stages whose outputs this one reads.
    uses: tuple[str, ...] = ()
    #: Files or dirs whose contents the stage reads (fingerprinted by size and mtime).
    inputs: Callable[[Build], list[Path]] = field(default=lambda build: [])
    #: Run once the stage's outputs are in their done dir: publishes what must describe a
    #: finished stage only (the scrub report in out/).
    on_done: Callable[[Build], None] | None = None
    #: The top-level dirs of the system root the stage packs into the image: what the work
    #: dir and the ISO must stay out of (``workdir``'s guards ask every stage).
    packs: Callable[[Build], Sequence[str]] = field(default=lambda build: [])


@dataclass(frozen=True)
class Failure:
    """Why a stage failed, in the terms a user can act on."""

    stage: str
    step: int
    describe: str
    command: str
    exit_code: int | None
    signal: str | None
    tail: list[str]
    hint: str = ""
    #: "command" (a program livecd-tui ran), "action" (one of livecd-tui's own steps) or
    #: "plan" (the stage could not even be planned: the profile asks for the impossible).
    kind: str = "command"
    #: The option that most likely fixes it, when the step knows.
    option: str = ""

    def report(self) -> str:
        """A readable multi-line report: what failed, the command, the output's end, a hint."""
        how = (
            f"killed by {self.signal}"
            if self.signal
            else f"exit code {self.exit_code}"
            if self.exit_code is not None
            else "failed"
        )
        if self.kind == "plan":
            lines = [f"stage {self.stage} could not be planned"]
        else:
            lines = [f"stage {self.stage} failed at step {self.step + 1} ({self.describe}): {how}"]
        if self.kind == "command":
            lines.append(f"  command: {self.command}")
        if self.tail:
            lines.append("  last lines of output:")
            lines += [f"    {line}" for line in self.tail]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        if self.option:
            lines.append(f"  option: {self.option}")
        return "\n".join(lines)


@dataclass
class StageState:
    """What the work dir remembers about one stage."""

    name: str
    status: Status = "pending"
    started: float | None = None
    ended: float | None = None
    fingerprint: str = ""
    #: Digest of the stage's outputs: later stages re-run only when this changes.
    output: str = ""
    log: str = ""
    failure: dict[str, Any] | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


# -- events handed to listeners --------------------------------------------------------
@dataclass(frozen=True)
class StageStarted:
    stage: str
    steps: int


@dataclass(frozen=True)
class StageSkipped:
    stage: str
    reason: str


@dataclass(frozen=True)
class StepStarted:
    stage: str
    index: int
    total: int
    describe: str
    command: str


@dataclass(frozen=True)
class OutputLine:
    stage: str
    line: str


@dataclass(frozen=True)
class StageFinished:
    stage: str
    status: Status
    duration: float
    failure: Failure | None = None


Event = StageStarted | StageSkipped | StepStarted | OutputLine | StageFinished
Listener = Callable[[Event], None]


def load_state(build: Build, name: str) -> StageState:
    """The recorded state of one stage (``pending`` if it never ran)."""
    path = build.state_path(name)
    try:
        data = json.loads(path.read_text())
        return StageState(**{k: v for k, v in data.items() if k in StageState.__annotations__})
    except (OSError, ValueError, TypeError):
        return StageState(name=name)


def save_state(build: Build, state: StageState) -> None:
    write_atomically(
        build.state_path(state.name), json.dumps(asdict(state), indent=1, sort_keys=True).encode()
    )


#: How the last build in a work dir ended, for ``attach`` and ``status``.
RESULT_FILE = "state/build.json"
#: Faults the build went on after (a listener or a diagnosis that raised), in logs/.
ENGINE_LOG = "engine.log"
#: The exit code each outcome of a build gives (an interrupted one: 128 + the signal).
OUTCOME_CODES = {
    "done": 0,
    "failed": 1,
    "interrupted": 1,
    "plan failed": 2,
    "refused": 2,
    "running": 1,
}


def load_result(work: Path) -> dict[str, Any] | None:
    """How the last build in the work dir ended (``outcome``: running, done, failed,
    interrupted, plan failed, refused), or None for a work dir that never said."""
    return procs.read_json(work / RESULT_FILE)


def result_code(result: Mapping[str, Any]) -> int:
    """The exit code of the build the result describes: what ``build`` itself returned."""
    outcome = str(result.get("outcome", ""))
    if outcome == "interrupted" and result.get("signal"):
        with contextlib.suppress(KeyError):
            return 128 + signal.Signals[str(result["signal"])].value
    return OUTCOME_CODES.get(outcome, 1)


def fingerprint(
    build: Build, stage: Stage, steps: Sequence[Step], upstream: Mapping[str, str] | None = None
) -> str:
    """A digest of everything a stage's result depends on.

    The plan's own text covers the option values that reach commands; ``reads`` adds the
    options used inside actions; inputs are fingerprinted by path, size and mtime (cheap
    enough for a system root); earlier stages by their own fingerprints (``upstream``, by
    default those recorded in the work dir).
    """
    digest = hashlib.sha256()
    digest.update(f"livecd-tui {__version__}\n".encode())
    for step in steps:
        digest.update(("\n".join(step.script_lines()) + "\n").encode())
    for key, value in sorted(build.profile.values.items()):
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in stage.reads):
            digest.update(f"{key}={value!r}\n".encode())
    for path in stage.inputs(build):
        _digest_tree(digest, path, skip=build.work)
    for name in stage.uses:
        used = upstream[name] if upstream is not None else load_state(build, name).output
        digest.update(f"uses {name} {used}\n".encode())
    return digest.hexdigest()


def plan_stage(build: Build, stage: Stage) -> list[Step]:
    """A stage's steps; a value its planner cannot use becomes a clear BuildError."""
    try:
        return stage.plan(build)
    except (ValueError, StepFailed) as err:
        option = getattr(err, "option", "") or _named_option(str(err), stage)
        message = f"cannot plan stage {stage.name}: {err}"
        if option:  # said where the profile sets it, as a profile's problems are
            message = str(build.profile.problem(option, message))
        raise PlanError(message, option) from None


def _named_option(message: str, stage: Stage) -> str:
    """The option a planner's message names (the longest key in it), else the stage's
    first option."""
    named = [key for key in OPTIONS if key in message]
    if named:
        return max(named, key=len)
    return next((r for r in stage.reads if r in OPTIONS), "")


def output_digest(top: Path) -> str:
    """A digest of a finished stage's outputs: contents of small files, size and mtime of
    big ones (a re-run that makes the same kernel or config does not cascade)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if os.path.islink(path):
                digest.update(f"{rel} -> {os.readlink(path)}\n".encode())
            elif st.st_size <= SMALL_FILE:
                with open(path, "rb") as handle:
                    digest.update(f"{rel} {hashlib.sha256(handle.read()).hexdigest()}\n".encode())
            else:
                digest.update(f"{rel} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _digest_tree(digest: Any, top: Path, skip: Path) -> None:
    try:
        st = top.lstat()
    except OSError:
        digest.update(f"missing {top}\n".encode())
        return
    digest.update(f"{top} {st.st_mode} {st.st_size} {st.st_mtime_ns}\n".encode())
    if not top.is_dir() or top.is_symlink():
        return
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                digest.update(f"{path} {st.st_mode} {st.st_size} {st.st_mtime_ns}\n".encode())


class Engine:
    """Runs a build's stages in order, one at a time, and can be stopped from another thread."""

    def __init__(
        self, build: Build, stages: Sequence[Stage], listeners: Iterable[Listener] = ()
    ) -> None:
        self.build = build
        self.stages = list(stages)
        self.listeners = list(listeners)
        self._process: Any = None
        self._stopping = threading.Event()
        self._stop_reason = ""
        self._lock = threading.RLock()
        #: Faults already noted in the engine log (each kind once: a listener that fails on
        #: every output line must not write a traceback per line).
        self._noted: set[str] = set()
        #: What the build found and ended before starting (a killed build's leftovers).
        self.notes: list[str] = []

    # -- selection ---------------------------------------------------------------------
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise BuildError(f"unknown stage {name!r}; stages are: {', '.join(self.names())}")

    def select(
        self, only: Sequence[str] = (), start: str | None = None, resume: bool = False
    ) -> list[Stage]:
        """Which stages to consider, from the ``--only``/``--from``/``--resume`` options."""
        for name in [*only, *([start] if start else [])]:
            self.stage(name)
        if only:
            return [s for s in self.stages if s.name in only]
        if resume:
            for s in self.stages:
                if load_state(self.build, s.name).status in ("failed", "interrupted", "running"):
                    start = s.name
                    break
            else:
                raise BuildError(
                    "nothing to resume: no stage failed or was interrupted "
                    "in " + str(self.build.work)
                )
        if start:
            index = self.names().index(start)
            return self.stages[index:]
        return list(self.stages)

    # -- running -----------------------------------------------------------------------
    def run(
        self, selected: Sequence[Stage], force: Sequence[str] = (), force_all: bool = False
    ) -> bool:
        """Run the selected stages; True when all succeeded or were up to date.

        Refuses dangerous work dirs and outputs, and a work dir another build holds.
        """
        problems = workdir.path_problems(self.build, self.stages)
        if problems:
            raise BuildError("; ".join(problems))
        workdir.prepare_work_dir(self.build.work, self.build.epoch)
        try:
            with workdir.work_lock(self.build):
                self._mark_stale_runs()
                leftover = procs.end_leftovers(self.build.work)
                if leftover:
                    self.notes.append(f"ended {leftover}")
                return self._run_recorded(selected, force, force_all)
        finally:
            # Cleared only now: a stop that came before the build got this far (a signal
            # right after the handler was installed) must still stop it.
            self._stopping.clear()

    def _run_recorded(
        self, selected: Sequence[Stage], force: Sequence[str], force_all: bool
    ) -> bool:
        """Run, keeping ``RESULT_FILE`` saying how the build goes and how it ended."""
        me = os.getpid()
        result: dict[str, Any] = {
            "pid": me,
            "start": procs.process_start(me) or 0,
            "started": time.time(),
            "outcome": "running",
        }
        self._save_result(result)
        result["outcome"] = "failed"
        try:
            ok = self._run_locked(selected, force, force_all)
            result["outcome"] = (
                "done" if ok else "interrupted" if self._stopping.is_set() else "failed"
            )
            return ok
        except BuildError as err:
            result["outcome"] = "plan failed" if isinstance(err, PlanError) else "refused"
            result["message"] = str(err)
            raise
        finally:
            if result["outcome"] == "interrupted" and self._stop_reason:
                result["signal"] = self._stop_reason
            result["ended"] = time.time()
            self._save_result(result)

    def _save_result(self, result: Mapping[str, Any]) -> None:
        # Only a report: a full disk must not turn a finished build into a traceback.
        with self._survive(f"writing {RESULT_FILE}", OSError):
            procs.replace_file(
                self.build.work / RESULT_FILE, json.dumps(result, sort_keys=True).encode()
            )

    def _mark_stale_runs(self) -> None:
        """A stage still marked running when we got the lock belongs to a dead build."""
        for stage in self.stages:
            state = load_state(self.build, stage.name)
            if state.status == "running":
                state.status = "interrupted"
                state.ended = state.ended or time.time()
                save_state(self.build, state)

    def _run_locked(self, selected: Sequence[Stage], force: Sequence[str], force_all: bool) -> bool:
        selected_names = {s.name for s in selected}
        for stage in selected:
            missing = [
                u
                for u in stage.uses
                if u not in selected_names
                and load_state(self.build, u).status not in ("done", "skipped")
            ]
            if missing:
                raise BuildError(
                    f"stage {stage.name} needs the output of {', '.join(missing)}; build that first"
                )
        self._plan_ahead(selected)
        for stage in selected:
            if self._stopping.is_set():
                return False
            forced = force_all or stage.name in force
            if not self._run_stage(stage, forced):
                return False
        return True

    def _plan_ahead(self, selected: Sequence[Stage]) -> None:
        """Plan every selected stage before the first runs (as ``plan`` does: no probes),
        so that a value a late stage refuses stops the build before an hour of building."""
        ahead = Build(
            profile=self.build.profile,
            work=self.build.work,
            facts=dict(self.build.facts),
            dry_run=True,
        )
        for stage in selected:
            ahead.facts.update(load_state(ahead, stage.name).facts)
            try:
                plan_stage(ahead, stage)
            except PlanError as err:
                self._plan_failed(stage, str(err), err.option)
                raise
            except Exception as err:  # a planner's own fault: said on its stage's pane
                message = f"cannot plan stage {stage.name}: {type(err).__name__}: {err}"
                self._plan_failed(stage, message)
                raise PlanError(message) from err

    def stop(self, reason: str = "") -> None:
        """Stop the build: kill the running command's whole process group. ``reason``: the
        signal's name when a signal stopped it (recorded in ``RESULT_FILE``)."""
        if reason and not self._stopping.is_set():
            self._stop_reason = reason
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None:
            procs.kill_process_group(process.pid)

    def _emit(self, event: Event) -> None:
        for listener in self.listeners:
            # A broken listener must not stop a build; noted, it does not hide a bug either.
            with self._survive(f"listener {getattr(listener, '__qualname__', listener)!s}"):
                listener(event)

    @contextlib.contextmanager
    def _survive(
        self,
        what: str,
        kinds: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    ) -> Iterator[None]:
        """Go on when the block raises one of *kinds*, after noting it with
        :meth:`_note`: the build must not stop for it, and nobody must miss it."""
        try:
            yield
        except kinds as err:
            self._note(what, err)

    def _note(self, what: str, err: BaseException) -> None:
        """Write a fault the build went on after, with its traceback, to
        ``logs/ENGINE_LOG`` in the work dir (stderr when there is no work dir or it cannot
        be written); each kind of fault once per engine."""
        key = f"{what}: {type(err).__name__}"
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        text = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what} failed, the build went on: "
            f"{type(err).__name__}: {err}\n" + "".join(traceback.format_exception(err))
        )
        try:
            if not self.build.work.is_dir():  # a dry run: nothing is written there
                raise FileNotFoundError(self.build.work)
            logs = self.build.work / "logs"
            logs.mkdir(exist_ok=True)
            with open(logs / ENGINE_LOG, "a", encoding="utf-8", errors="replace") as handle:
                handle.write(text)
        except OSError:
            with contextlib.suppress(OSError, ValueError):  # stderr closed: nowhere left
                sys.stderr.write(f"livecd-tui: {text}")

    def _run_stage(self, stage: Stage, forced: bool) -> bool:
        build = self.build
        previous = load_state(build, stage.name)
        build.facts.update(previous.facts)
        try:
            steps = plan_stage(build, stage)
        except PlanError as err:
            self._plan_failed(stage, str(err), err.option)
            raise
        print_fp = fingerprint(build, stage, steps)
        if (
            not forced
            and previous.status in ("done", "skipped")
            and previous.fingerprint == print_fp
            and build.done_dir(stage.name).exists()
        ):
            previous.status = "skipped"
            with self._survive("saving the skipped state", OSError):  # "done" says the same
                save_state(build, previous)
            self._emit(StageSkipped(stage.name, "up to date"))
            return True

        partial = build.partial_dir(stage.name)
        log_path = build.log_path(stage.name)
        started = time.time()
        state = StageState(
            name=stage.name,
            status="running",
            started=started,
            fingerprint=print_fp,
            log=str(log_path),
        )
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            log = open(log_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as err:
            return self._finish(state, io_failure(stage.name, 0, "prepare the stage", err, []))
        try:
            save_state(build, state)
        except OSError as err:
            log.close()
            return self._finish(
                state, io_failure(stage.name, 0, "record that the stage runs", err, [])
            )
        self._emit(StageStarted(stage.name, len(steps)))
        #: The first error writing the log (a full disk): the stage cannot be trusted.
        log_errors: list[OSError] = []
        last_flush = [0.0]

        def write(line: str) -> None:
            line = line.rstrip("\r\n")
            try:
                log.write(line + "\n")
                now = time.monotonic()
                if now - last_flush[0] > 0.2:  # a flood of lines must not cost a flush each
                    log.flush()
                    last_flush[0] = now
            except OSError as err:
                if not log_errors:
                    log_errors.append(err)
            tail.append(line)
            self._emit(OutputLine(stage.name, line))

        failure = self._run_steps(stage, steps, partial, write, tail)
        if failure is None and not self._stopping.is_set():
            try:
                log.flush()
            except OSError as err:
                log_errors.append(err)
            if log_errors:
                failure = io_failure(
                    stage.name, len(steps), "write the stage's log", log_errors[0], list(tail)
                )
        if failure is None and not self._stopping.is_set():
            try:
                done = build.done_dir(stage.name)
                shutil.rmtree(done, ignore_errors=True)
                partial.rename(done)
                state.output = output_digest(done)
                if stage.on_done is not None:  # an OSError: the outputs were not published
                    stage.on_done(build)
                write(f"== {stage.name}: done in {time.time() - started:.1f} s")
            except OSError as err:
                failure = io_failure(
                    stage.name, len(steps), "publish the stage's outputs", err, list(tail)
                )
        if failure:
            write(failure.report())
        try:
            log.close()
        except OSError as err:
            failure = failure or io_failure(
                stage.name, len(steps), "write the stage's log", err, list(tail)
            )
        return self._finish(state, failure)

    def _finish(self, state: StageState, failure: Failure | None) -> bool:
        """Record how the stage ended and say so; True when it is done.

        When even the state cannot be saved (the disk is full), the stage's outputs are
        removed to make room and it is recorded as failed; failing that, the state on disk
        still says running, which a later build and ``status`` read as interrupted.
        """
        build = self.build
        status: Status = (
            "interrupted" if self._stopping.is_set() else "failed" if failure else "done"
        )
        state.status = status
        state.ended = time.time()
        state.failure = asdict(failure) if failure else None
        state.facts = {k: v for k, v in build.facts.items() if k.startswith(state.name + ".")}
        try:
            save_state(build, state)
        except OSError as err:
            failure = io_failure(
                state.name, 0, "save the stage's state", err, failure.tail if failure else []
            )
            for path in (build.partial_dir(state.name), build.done_dir(state.name)):
                shutil.rmtree(path, ignore_errors=True)
            state.status = status = "failed"
            state.output = ""
            state.failure = asdict(failure)
            with self._survive("saving the failed state", OSError):
                save_state(build, state)
        duration = state.ended - (state.started or state.ended)
        self._emit(StageFinished(state.name, status, duration, failure))
        return status == "done"

    def _plan_failed(self, stage: Stage, message: str, option: str = "") -> None:
        """The stage cannot be planned with this profile: record it as failed, and what
        earlier builds made from it on (later stages, the ISO) as no longer current."""
        now = time.time()
        failure = Failure(
            stage.name,
            0,
            "plan the stage",
            "",
            None,
            None,
            [message],
            "fix the profile (`livecd-tui check` lists its problems) and build again",
            "plan",
            option,
        )
        with self._survive("recording a stage that cannot be planned", OSError):
            save_state(
                self.build,
                StageState(
                    name=stage.name,
                    status="failed",
                    started=now,
                    ended=now,
                    failure=asdict(failure),
                ),
            )
            later = self.names()[self.names().index(stage.name) + 1 :]
            for name in later:
                state = load_state(self.build, name)
                if state.status in ("done", "skipped"):
                    # Built from the profile as it was: kept on disk, but not current.
                    state.status = "pending"
                    state.started = state.ended = None
                    save_state(self.build, state)
        self._emit(StageFinished(stage.name, "failed", 0.0, failure))

    def _run_steps(
        self,
        stage: Stage,
        steps: Sequence[Step],
        partial: Path,
        write: Callable[[str], None],
        tail: deque[str],
    ) -> Failure | None:
        for index, step in enumerate(steps):
            if self._stopping.is_set():
                return None
            write(f"$ {step.shell_line()}" if isinstance(step, Command) else f"# {step.describe}")
            self._emit(StepStarted(stage.name, index, len(steps), step.describe, step.shell_line()))
            if self._stopping.is_set():  # stopped while a listener held the step
                return None
            if isinstance(step, Action):
                try:
                    step.run(StepContext(self.build, stage.name, partial, write))
                except (StepFailed, OSError) as err:
                    said = (
                        str(err) if isinstance(err, StepFailed) else f"{type(err).__name__}: {err}"
                    )
                    return Failure(
                        stage.name,
                        index,
                        step.describe,
                        step.describe,
                        None,
                        None,
                        shown_tail([*tail, said]),
                        getattr(err, "hint", ""),
                        "action",
                        getattr(err, "option", ""),
                    )
                continue
            failure = self._run_command(stage.name, index, step, write, tail)
            if failure:
                return failure
        return None

    def _run_command(
        self, stage: str, index: int, step: Command, write: Callable[[str], None], tail: deque[str]
    ) -> Failure | None:
        env = dict(os.environ)
        env["SOURCE_DATE_EPOCH"] = str(self.build.epoch)
        env["LC_ALL"] = "C.UTF-8"
        env.update(dict(step.env))
        for name in step.unset_env:
            env.pop(name, None)
        matched = threading.Event()
        timed_out = threading.Event()
        seen: deque[str] = deque(maxlen=DIAGNOSE_LINES)

        def keep(line: str) -> None:
            write(line)
            if step.diagnose is not None:
                seen.append(line)

        lines = LineSplitter(keep)
        marker = MarkerWatch(step.until) if step.until is not None else None

        def on_output(chunk: str) -> None:
            # Called from the output pipe's thread: never let an exception escape there.
            with self._survive("handling a command's output"):
                lines.feed(chunk)
                if marker is not None and not matched.is_set() and marker.feed(chunk):
                    matched.set()
                    self._kill_current_later()

        def failed(code: int | None, sig: str | None, extra: str = "") -> Failure:
            found = list(tail) + ([extra] if extra else [])
            option = step.option
            if step.diagnose is not None:
                # A diagnosis must not hide the failure it diagnoses.
                with self._survive(f"diagnosing {step.describe!r}"):
                    verdict = step.diagnose(list(seen))
                    if verdict is not None:
                        found.append(verdict[0])
                        option = verdict[1] or option
            return Failure(
                stage,
                index,
                step.describe,
                step.shell_line(),
                code,
                sig,
                shown_tail(found),
                step.hint,
                "command",
                option,
            )

        files: list[Any] = []
        output = OutputPipe(on_output)
        try:
            # Always a real stdin (procs.start says why); the commands read nothing else.
            files.append(open(step.stdin or os.devnull, "rb"))  # noqa: SIM115 - closed below
            if step.stdout:
                files.append(open(step.stdout, "wb"))  # noqa: SIM115 - closed below
        except OSError as err:
            for f in files:
                f.close()
            output.finish()
            return failed(None, None, f"cannot open redirection: {err}")
        timer = None
        record = None
        try:
            with self._lock:
                if self._stopping.is_set():
                    return None
                # Recorded first: if this build is killed outright, what the command
                # started is found by the token in its environment and ended later.
                record = procs.new_command(self.build.work, stage, step.shell_line())
                env[procs.TOKEN_ENV] = record.token
                self._process = procs.start(
                    step.argv,
                    stdin=files[0],
                    stdout=files[1] if step.stdout else output.writer,
                    stderr=output.writer if step.stdout else None,
                    env=env,
                    cwd=step.cwd,
                )
            output.child_started()
            if step.timeout:

                def expire() -> None:
                    timed_out.set()
                    self._kill_current_later()

                timer = threading.Timer(step.timeout, expire)
                timer.daemon = True
                timer.start()
            code = procs.wait(self._process)
        except procs.ProgramNotFound:
            return failed(127, None, f"{step.argv[0]}: command not found")
        except OSError as err:
            return failed(None, None, f"cannot start {step.argv[0]}: {err}")
        finally:
            if timer:
                timer.cancel()
            with self._lock:
                self._process = None
            if record is not None:
                with self._survive("recording that the command ended", OSError):
                    procs.command_ended(self.build.work)
            for f in files:
                f.close()
            output.finish()
            lines.flush()
        if matched.is_set():
            write(f"== found {step.until!r}: success")
            return None
        if timed_out.is_set():
            what = f" without seeing {step.until!r}" if step.until is not None else ""
            return failed(None, None, f"timed out after {step.timeout:g} s{what}")
        if code == 0 and step.until is not None:
            return failed(0, None, f"exited before {step.until!r} appeared")
        if code == 0:
            return None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return failed(None, name)
        return failed(code, None)

    def _kill_current_later(self) -> None:
        """Kill the running command from a helper thread (never block sh's threads)."""
        with self._lock:
            process = self._process
        if process is not None:
            threading.Thread(
                target=procs.kill_process_group, args=(process.pid, 2.0), daemon=True
            ).start()


def io_failure(stage: str, step: int, what: str, err: OSError, tail: Sequence[str]) -> Failure:
    """A failure of livecd-tui's own bookkeeping (a full disk, most often), as a report."""
    where = f": {err.filename}" if err.filename else ""
    full = err.errno in (errno.ENOSPC, errno.EDQUOT)
    hint = (
        "the work dir's filesystem is full: make room (df -h shows it), then build "
        "again with --resume"
        if full
        else ""
    )
    return Failure(
        stage,
        step,
        f"cannot {what}",
        f"cannot {what}",
        None,
        None,
        shown_tail([*tail, f"{err.strerror or err}{where}"]),
        hint,
        "action",
    )


def shown_tail(lines: Sequence[str]) -> list[str]:
    """The last output lines a failure quotes, as text a terminal can show (a booting
    GRUB's serial console is full of control sequences); blank ones left out."""
    shown = [printable(line) for line in lines]
    return [line for line in shown if line.strip()][-TAIL_LINES:]


class OutputPipe:
    """A pipe for a command's output, read in big chunks by a thread of its own.

    sh reads unbuffered output one byte per system call (3.4 million calls for 500,000
    lines), and its line-buffered mode holds back what does not end in a newline: a login
    prompt, a progress bar redrawn with a carriage return. Reading the pipe directly gives
    whatever has arrived, at once, in one call.
    """

    #: How long output may still arrive once the command has ended (from a process it left
    #: behind holding the pipe) before the reader stops.
    LINGER = 1.0

    def __init__(self, feed: Callable[[str], None]) -> None:
        read_fd, write_fd = os.pipe()
        #: The end the command writes to (sh duplicates it for the child).
        self.writer = os.fdopen(write_fd, "wb")
        self._read_fd = read_fd
        self._feed = feed
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="command output", daemon=True)
        self._thread.start()

    def child_started(self) -> None:
        """Close this process's copy of the write end, so the pipe ends with the command."""
        self.writer.close()

    def finish(self) -> None:
        """After the command ended: read what is left, then stop."""
        self.writer.close()
        self._ended.set()
        self._thread.join()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        deadline = None
        try:
            while True:
                if self._ended.is_set() and deadline is None:
                    deadline = time.monotonic() + self.LINGER
                if deadline is not None and time.monotonic() > deadline:
                    break
                if not poller.poll(100):
                    if self._ended.is_set():
                        break  # ended, and nothing more in the pipe
                    continue
                data = os.read(self._read_fd, 65536)
                if not data:
                    break
                self._feed(decoder.decode(data))
            rest = decoder.decode(b"", final=True)
            if rest:
                self._feed(rest)
        finally:
            os.close(self._read_fd)


class LineSplitter:
    """Turns output chunks into lines; a carriage return (progress bars) also ends one."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.pending = ""

    def feed(self, chunk: str) -> None:
        text = self.pending + chunk.replace("\r\n", "\n")
        *complete, self.pending = text.replace("\r", "\n").split("\n")
        for line in complete:
            if line:
                self.emit(line)

    def flush(self) -> None:
        if self.pending:
            self.emit(self.pending)
            self.pending = ""


class MarkerWatch:
    """Whether a text has appeared in a stream of output chunks: anywhere, across chunk
    boundaries, and with more output after it in the same chunk (as ``grep -F`` over the
    whole log finds it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._carry = ""

    def feed(self, chunk: str) -> bool:
        """Take the next chunk; True once the text has been seen."""
        window = self._carry + chunk
        if self.text in window:
            return True
        # Only the end that could start the text again is worth keeping.
        self._carry = window[-(len(self.text) - 1) :] if len(self.text) > 1 else ""
        return False


def render_script(build: Build, stages: Sequence[Stage]) -> str:
    """The whole build as a standalone, commented bash script: the method by hand."""
    from livecd_tui.options import format_value

    lines = [
        "#!/bin/bash",
        f"# Live CD build for profile {build.profile.name!r}, written by livecd-tui {__version__}.",
        "# Each stage writes into WORK/stages/NAME.partial, renamed to NAME when it succeeds,",
        "# exactly as livecd-tui does it. Run as root (reading a whole system root needs it).",
        "set -euo pipefail",
        f"export SOURCE_DATE_EPOCH={build.epoch}",
        "export LC_ALL=C.UTF-8",
        f"WORK={shlex.quote(str(build.work))}",
        # The script deletes inside $WORK, as the build does: the same marker guards it.
        f'if [ -d "$WORK" ] && [ ! -e "$WORK/{WORK_MARKER}" ] && [ -n "$(ls -A "$WORK")" ]; then',
        f'  echo "refusing: $WORK is not empty and has no {WORK_MARKER}" >&2; exit 2',
        "fi",
        'mkdir -p "$WORK/stages" "$WORK/out"',
        f'echo {shlex.quote(workdir.MARKER_TEXT.strip())} > "$WORK/{WORK_MARKER}"',
        "",
    ]
    for stage in stages:
        lines += [f"# {'=' * 76}", f"# Stage {stage.name}: {stage.title}"]
        lines += [f"# {text}" for text in _wrap(stage.describe)]
        reads = [
            f"#   {k} = {format_value(v)}"
            for k, v in build.profile.values.items()
            if any(k == r or (r.endswith(".") and k.startswith(r)) for r in stage.reads)
        ]
        if reads:
            lines += ["# Options it reads:", *reads]
        partial = shlex.quote(str(build.partial_dir(stage.name)))
        done = shlex.quote(str(build.done_dir(stage.name)))
        lines += [f"rm -rf {partial}", f"mkdir -p {partial}"]
        for step in plan_stage(build, stage):
            lines.append(f"# {step.describe}")
            lines += step.script_lines()
        lines += [f"rm -rf {done}", f"mv {partial} {done}", ""]
    lines.append(f"echo {shlex.quote('ISO: ' + str(build.iso_path))}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 88) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)
