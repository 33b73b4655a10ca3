"""The TUI's side of detached builds: the profile snapshot a detached build reads, the
build options a screen action becomes, and a follower that turns a work dir another process
builds into the same events the in-process engine gives (steps and failures included).

Nothing here touches a widget: the feed runs in a thread worker and hands events on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from livecd_tui.build import Build
from livecd_tui.engine import (
    Event,
    Failure,
    OutputLine,
    Stage,
    StageFinished,
    StageStarted,
    StepStarted,
    load_state,
    plan_stage,
)
from livecd_tui.options import OPTIONS, defaults
from livecd_tui.profile import Profile, write_atomically
from livecd_tui.runner import Follower
from livecd_tui.steps import Command, Step
from livecd_tui.workdir import DETACHED_LOG

#: Where, inside the work dir, the TUI writes the profile a detached build reads.
SNAPSHOT_DIR = ".snapshot"


def snapshot_profile(profile: Profile, work: Path) -> Path:
    """Write the in-memory profile (saved or not) for a detached build to read, and return
    its path: ``WORK/.snapshot/NAME.toml``.

    Every value that differs from the defaults is written (no ``extends``), path options made
    absolute against the profile's own directory. The file keeps the profile's name, which
    decides the ISO's name (``out/NAME.iso``), so the build lands where a headless build of
    the profile would put it.
    """
    values = dict(profile.values)
    for key, option in OPTIONS.items():
        if option.kind == "path" and values.get(key):
            values[key] = str(profile.resolve_path(key))
    flat = Profile(values=values, inherited=defaults())
    origin = profile.path.resolve() if profile.path else "an unsaved profile"
    text = (
        f"# A snapshot of {origin} taken by the livecd-tui TUI for a detached build;\n"
        "# edit the profile itself, not this file.\n" + flat.to_toml()
    )
    target = work / SNAPSHOT_DIR / f"{profile.name}.toml"
    write_atomically(target, text.encode())
    return target


def build_args(
    names: Sequence[str], every: Sequence[str], force: Sequence[str] = (), force_all: bool = False
) -> list[str]:
    """The ``livecd-tui build`` options that run ``names`` out of ``every`` stage."""
    names = list(names)
    every = list(every)
    args: list[str] = []
    if names != every:
        start = every.index(names[0]) if names and names[0] in every else -1
        if start >= 0 and names == every[start:]:
            args += ["--from", names[0]]
        else:
            args += ["--only", ",".join(names)]
    if force_all:
        args.append("--force")
    for name in force:
        args += ["--force", name]
    return args


@dataclass(frozen=True)
class Outcome:
    """How a followed build ended: ok, or the error that stopped it before a stage ran."""

    ok: bool
    error: str | None = None


#: Emit an event; ``age`` says how many seconds ago it happened (a stage that started before
#: the viewer attached shows its true running time).
Emit = Callable[[Event, float], None]


class FollowFeed:
    """A ``runner.Follower`` plus what the build screen shows of an in-process build: the
    step each log line header starts (from the stage's plan) and a failed stage's failure
    (from its state file)."""

    def __init__(
        self, work: Path, stages: Sequence[Stage], profile: Profile, since: float | None = None
    ) -> None:
        self.work = work
        self.stages = {s.name: s for s in stages}
        self.follower = Follower(work, [s.name for s in stages])
        #: A Build to plan stages with (the profile's values, the followed work dir).
        self.build = Build(
            profile=dataclasses.replace(profile, values=dict(profile.values)),
            work=work,
            dry_run=True,
        )
        #: When the followed build started (its output file is newer than that).
        self.since = since if since is not None else time.time()
        self._steps: dict[str, list[Step]] = {}
        self._next: dict[str, int] = {}

    def poll(self, emit: Emit) -> None:
        """Emit what happened since the last poll."""

        def enrich(event: Event) -> None:
            if isinstance(event, StageStarted):
                self._started(event.stage, emit)
            elif isinstance(event, OutputLine):
                emit(event, 0.0)
                self._step_header(event, emit)
            elif isinstance(event, StageFinished) and event.status != "skipped":
                state = load_state(self.build, event.stage)
                if state.ended is not None and state.ended < self.since:
                    if event.status != "done":
                        return  # an earlier run's: the screen shows it, or reruns it
                elif event.stage not in self._steps:
                    # It started and ended between two looks: show its whole log.
                    self._started(event.stage, emit)
                    for line in self._log_lines(event.stage):
                        enrich(OutputLine(event.stage, line))
                failure = None
                if state.failure:
                    with contextlib.suppress(TypeError):
                        failure = Failure(**state.failure)
                emit(dataclasses.replace(event, failure=failure), 0.0)
            else:
                emit(event, 0.0)

        self.follower.poll(enrich)

    def _started(self, name: str, emit: Emit) -> None:
        state = load_state(self.build, name)
        steps = self._plan(name)
        self._steps[name] = steps
        self._next[name] = 0
        age = max(0.0, time.time() - state.started) if state.started else 0.0
        emit(StageStarted(name, len(steps)), age)

    def _log_lines(self, name: str) -> list[str]:
        try:
            return (self.work / "logs" / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return []

    def building(self) -> bool:
        return self.follower.building()

    def _plan(self, name: str) -> list[Step]:
        """The stage's steps as planned here, to tell which log line starts which step; no
        steps when it cannot be planned (the log still streams)."""
        stage = self.stages.get(name)
        if stage is None:
            return []
        for other in self.stages:  # the facts earlier stages recorded (a kernel's release)
            self.build.facts.update(load_state(self.build, other).facts)
        try:
            return plan_stage(self.build, stage)
        except Exception:  # a plan is only a nicety here
            return []

    def _step_header(self, event: OutputLine, emit: Emit) -> None:
        steps = self._steps.get(event.stage, [])
        index = self._next.get(event.stage, 0)
        if index >= len(steps):
            return
        step = steps[index]
        header = f"$ {step.shell_line()}" if isinstance(step, Command) else f"# {step.describe}"
        if event.line == header:
            self._next[event.stage] = index + 1
            emit(StepStarted(event.stage, index, len(steps), step.describe, step.shell_line()), 0.0)

    def outcome(self) -> Outcome:
        """How the build ended, from the last word of its output (``logs/build.out``)."""
        last = last_word(self.work / DETACHED_LOG, self.since)
        if last is None:  # a build started in another terminal: no output file of its own
            return Outcome(
                not any(
                    load_state(self.build, name).status in ("failed", "interrupted")
                    for name in self.stages
                )
            )
        if last.startswith("build finished"):
            return Outcome(True)
        if last.startswith(("build failed", "build stopped by")) or "stopping the build" in last:
            return Outcome(False)
        return Outcome(False, last)


def last_word(path: Path, since: float) -> str | None:
    """The last ``livecd-tui: ...`` line of a detached build's output written after
    ``since``, without the prefix; None when there is none."""
    try:
        if os.path.getmtime(path) < since - 2:
            return None
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 16384))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if line.startswith("livecd-tui: "):
            return line.removeprefix("livecd-tui: ").strip()
    return None
