"""The build screen: a list of stages with their state and one live log pane per stage.

A build runs as a detached process (``runner.start_detached``: its own session, so it goes
on when the terminal hangs up or the app quits) and the screen follows it: a thread worker
polls a ``runner.Follower`` over the work dir's state and log files. Opening the screen on a
work dir another process is building follows that build the same way, earlier log lines
included. Step mode is interactive, so it runs the engine inside the app, in a thread worker.

Either way the thread only appends events to a deque (the engine's listener is also called
from the thread that reads a command's output); a timer on the UI thread drains the deque
about 15 times a second, for at most ``DRAIN_BUDGET`` each time, and updates the widgets in
batches. A stage printing a flood of lines costs one ``Log.write_lines`` per tick with at
most ``MAX_LINES`` lines (the whole log is on disk), and the feeding threads wait while the
screen is far behind (``Backpressure``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, OptionList, Static
from textual.widgets.option_list import Option as ListOption

from livecd_tui import procs, runner, workdir
from livecd_tui.build import Build
from livecd_tui.engine import (
    BuildError,
    Engine,
    Event,
    Failure,
    OutputLine,
    Stage,
    StageFinished,
    StageSkipped,
    StageStarted,
    StepStarted,
    load_state,
)
from livecd_tui.options import MENUS, OPTIONS
from livecd_tui.profile import Profile
from livecd_tui.scrub import human
from livecd_tui.terminal import printable
from livecd_tui.tui import glyphs
from livecd_tui.tui.describe import shown_path
from livecd_tui.tui.detached import FollowFeed, build_args, snapshot_profile
from livecd_tui.tui.stage_pane import MAX_LINES, StageList, StageLog, StagePane

if TYPE_CHECKING:
    from livecd_tui.tui.app import LiveCDApp

#: Lines of an earlier run's log shown when the screen opens.
TAIL_ON_OPEN = 200
#: How often the event buffer is drained, per second.
DRAIN_RATE = 15
#: The most time one drain may take (keys wait for it).
DRAIN_BUDGET = 0.01
#: Events the build threads may be ahead of the screen before they wait for it.
BACKLOG = 5000
#: Seconds without a drain after which the screen counts as stopped (nobody waits for it).
STALLED = 0.5
SPINNER = "|/-\\"
SPINNER_RATE = 8
#: Seconds between two looks at a followed build's files.
FOLLOW_INTERVAL = 0.2
#: Width of the status words in the stage list ("running 12.3s", "up to date").
STATUS_WIDTH = 13
#: Terminals narrower than this show the stage list with names only.
COMPACT_BELOW = 72
#: Seconds between two looks at the work dir's lock while no build runs (a build started
#: elsewhere, by the CLI or another app, is then followed here).
LOCK_WATCH_INTERVAL = 1.0


class Backpressure:
    """Keeps the threads that feed the screen from running far ahead of it.

    While the screen is more than BACKLOG events behind, a feeding thread waits a little:
    a flood of lines then neither piles up in memory nor keeps the UI thread from the GIL
    (keys stay quick), and the command waits on its full pipe meanwhile. Only while the
    screen is draining: a screen that stops (hidden, closing) never holds a build up.
    Headless builds have no such listener and run at full speed.
    """

    def __init__(self) -> None:
        self.drained_at = time.monotonic()

    def hold(self, events: Sized) -> None:
        while len(events) > BACKLOG and time.monotonic() - self.drained_at < STALLED:
            time.sleep(0.005)


def format_duration(seconds: float) -> str:
    """``4.2s``, ``1m02s``, ``1h02m``: short enough for the stage list."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def finished_iso_text(build: Build) -> Text | None:
    """Where the finished ISO is, its size, and how to put it on a USB stick (or that it
    only boots from a CD); None while there is no ISO."""
    iso = build.iso_path
    try:
        size = iso.stat().st_size
    except OSError:
        return None
    where = shown_path(iso)
    text = Text.assemble(("ISO: ", "bold"), (where, "bold"), f" ({human(size)})")
    profile = build.profile
    if profile["iso.hybrid"] and build.method.loader.usb:
        text.append(
            "\nTo a USB stick (sdX: the whole stick, see lsblk; all on it is lost):\n",
            style="italic",
        )
        text.append(
            "  "
            + shlex.join(
                ["dd", f"if={where}", "of=/dev/sdX", "bs=4M", "conv=fsync", "status=progress"]
            ),
            style="bold",
        )
    else:
        text.append(
            "\nA CD image only (no USB boot: iso.hybrid off or GRUB legacy): burn it to a CD.",
            style="italic",
        )
    return text


def option_for_failure(
    stage: Stage, failure: Failure | None, profile: Profile | None = None
) -> str | None:
    """The option a user most likely changes to fix a failed stage: the one that chooses a
    missing tool named in the failure, the one the failed step named, one named in the
    failure text, else the first option or menu the stage reads."""
    if failure is not None:
        text = "\n".join([failure.command, failure.hint, *failure.tail])
        if profile is not None:
            from livecd_tui import tools

            for tool in tools.required_tools(profile):
                if tool.name in text and tool.find() is None:
                    return tool.option
        if failure.option in OPTIONS:  # the step's own verdict (a boot test's diagnosis)
            return failure.option
        for key in OPTIONS:
            if key in text:
                return key
    for read in stage.reads:
        key = read.rstrip(".")
        if key in OPTIONS or key in MENUS:
            return key
    return None


@dataclass(frozen=True)
class BuildEnded:
    """The worker's last word: whether every stage succeeded, or the error that stopped
    the build (a bad selection, a stage that could not be planned)."""

    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Following:
    """The follower's first word: which process builds the work dir."""

    pid: int
    started_here: bool


@dataclass(frozen=True)
class Notice:
    """Something a helper thread wants the user to read."""

    message: str
    title: str = ""


@dataclass(frozen=True)
class StepWaiting:
    """Step mode: the build thread is holding before a step until the user says go."""

    stage: str
    index: int
    total: int
    describe: str


@dataclass
class StageView:
    """What the screen knows about one stage; the list row and the pane are drawn from it."""

    status: str = "pending"
    started: float | None = None
    duration: float | None = None
    failure: Failure | None = None


class BuildScreen(Screen[None]):
    """Run the stages and watch them; debug a failed one without leaving the app."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a", "build_all", "Build all", tooltip="Run every stage (up to date ones are skipped)"
        ),
        Binding("f", "build_from", "From here", tooltip="Run from the selected stage on"),
        Binding("o", "build_only", "Only this", tooltip="Run only the selected stage"),
        Binding(
            "F",
            "force",
            "Force",
            show=False,
            tooltip="Rebuild the selected stage even if it is up to date",
        ),
        Binding(
            "s",
            "step_mode",
            "Step",
            tooltip="Run the selected stage one step at a "
            "time, waiting for Space before each; it runs inside the app (not in the "
            "background), so quitting the app stops it",
        ),
        Binding("space", "next_step", "Run step", tooltip="Step mode: run the step shown"),
        Binding(
            "x",
            "stop",
            "Stop",
            tooltip="Stop the build, running here or in the background (kills the running command)",
        ),
        Binding("r", "retry", "Retry", tooltip="Run again from the failed stage"),
        Binding(
            "e", "fix", "Fix", tooltip="Go to the option to change, then come back with b and retry"
        ),
        Binding("n", "skip", "Skip", tooltip="Go on with the stages after the failed one"),
        Binding("t", "shell", "Shell", tooltip="A shell in the stage's work dir"),
        Binding(
            "y",
            "copy_command",
            "Copy cmd",
            show=False,
            tooltip="Copy the failing command to the clipboard",
        ),
        Binding("v", "view_log", "Full log", show=False, tooltip="The whole log in a pager"),
        Binding(
            "z",
            "zoom",
            "Zoom",
            tooltip="The log on the whole screen (it keeps "
            "following the build); z again brings the stage list back",
        ),
        Binding(
            "w",
            "toggle_wrap",
            "Wrap",
            tooltip="Wrap long log lines, or cut them (Tab "
            "to the log, then the arrows scroll it sideways)",
        ),
        Binding("escape,b", "editor", "Editor", tooltip="Back to the profile editor"),
        Binding(
            "q",
            "quit",
            "Quit",
            show=False,
            tooltip="Quit (asks first; a build in the background can go on)",
        ),
    ]

    app: LiveCDApp

    #: Whether a build runs (here or followed); the keys on offer follow it.
    running: reactive[bool] = reactive(False)
    #: In step mode, the stage whose next step waits for Space.
    waiting: reactive[str | None] = reactive(None)
    #: Whether long log lines wrap (else they are cut and the log scrolls sideways).
    wrap: reactive[bool] = reactive(True, init=False)
    #: Whether the log fills the screen (the stage list hidden).
    zoomed: reactive[bool] = reactive(False, init=False)
    #: Whether the stage list shows names only (a narrow terminal: room for the log).
    compact: reactive[bool] = reactive(False, init=False)
    #: Where the finished ISO is and how to use it, once a build made it.
    finished_iso: reactive[Text | None] = reactive(None, init=False)

    def __init__(self, stages: Sequence[Stage], detach: bool = False) -> None:
        """``detach``: run builds as detached processes (the real stages only: a detached
        build runs ``livecd-tui build``) and follow builds other processes run."""
        super().__init__()
        self.stages = list(stages)
        self.detach = detach
        #: Whether the running build is a detached process this screen follows.
        self.following = False
        #: The followed build's pid, once known.
        self.follow_pid: int | None = None
        #: The work dir of the followed build.
        self.follow_work: Path | None = None
        #: Set to make the follower thread leave (the build goes on).
        self._unfollow = threading.Event()
        #: Set when the user stopped a detached build that may not hold its lock yet.
        self._stop_requested = threading.Event()
        #: Set when the app forgot this screen: it follows nothing any more.
        self._retired = False
        self.views: dict[str, StageView] = {s.name: StageView() for s in self.stages}
        self.engine: Engine | None = None
        #: Holds the feeding threads back while the screen is far behind.
        self._backpressure = Backpressure()
        #: Filled by the engine's threads, emptied by the UI's timer.
        self._events: deque[tuple[float, Event | BuildEnded | StepWaiting | Following | Notice]] = (
            deque()
        )
        #: The stages the current (or last) run was asked to run.
        self._chosen: list[str] = []
        #: Step mode: the build thread waits on this before each step.
        self._gate = threading.Event()
        #: The width of the stage names' column.
        self._name_width = max((len(s.name) for s in self.stages), default=0)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        build = self._build()
        yield glyphs.header(self)
        with Horizontal():
            yield StageList(
                *[ListOption(self._row(s.name), id=s.name) for s in self.stages], id="stage-list"
            )
            with ContentSwitcher(
                id="panes", initial=f"pane-{self.stages[0].name}" if self.stages else None
            ):
                for stage in self.stages:
                    yield StagePane(stage, shown_path(build.log_path(stage.name)))
        yield Static("", id="iso-info")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._load_previous(self._build())
        stage_list = self.query_one(StageList)
        stage_list.highlighted = 0
        stage_list.focus()
        self.set_interval(1 / DRAIN_RATE, self._drain)
        if self.detach:
            self.attach()
            self.set_interval(LOCK_WATCH_INTERVAL, self.attach)

    def _build(self) -> Build:
        """A Build of a snapshot of the profile: edits made while building do not leak in."""
        profile = self.app.profile
        snapshot = dataclasses.replace(profile, values=dict(profile.values))
        return Build.for_profile(snapshot, self.app.work_dir)

    def _load_previous(self, build: Build) -> None:
        """Show what the work dir remembers: each stage's last state and its log's end."""
        alive = self.detach and workdir.read_lock(build.work) is not None
        for stage in self.stages:
            state = load_state(build, stage.name)
            view = self.views[stage.name]
            # "running" on disk and no build holding the work dir: a build that died
            # without saying so; it did not finish.
            view.status = "interrupted" if state.status == "running" and not alive else state.status
            view.duration = state.duration
            pane = self.pane(stage.name)
            if state.failure:
                with contextlib.suppress(TypeError):
                    view.failure = Failure(**state.failure)
                    pane.failure = view.failure
            pane.status_line = f"{stage.title}: {self._status_words(view)}"
            if state.status != "pending" and state.log:
                with contextlib.suppress(OSError):
                    lines = Path(state.log).read_text(errors="replace").splitlines()
                    pane.output.write_lines([printable(line) for line in lines[-TAIL_ON_OPEN:]])
            self._update_row(stage.name)
        if self.views.get("iso", StageView()).status == "done":
            self.finished_iso = finished_iso_text(build)

    def pane(self, name: str) -> StagePane:
        return self.query_one(f"#pane-{name}", StagePane)

    # -- the list rows -------------------------------------------------------------------
    def _status_words(self, view: StageView) -> str:
        if view.status == "running":
            elapsed = self.app.clock() - (view.started or self.app.clock())
            return f"running {format_duration(max(0.0, elapsed))}"
        if view.status == "done":
            return "done" + (
                f" {format_duration(view.duration)}" if view.duration is not None else ""
            )
        return {
            "skipped": "up to date",
            "failed": "FAILED",
            "interrupted": "stopped",
            "pending": "pending",
        }.get(view.status, view.status)

    def _row(self, name: str) -> Text:
        view = self.views[name]
        marks = {
            "done": ("+", "green"),
            "skipped": ("=", "green"),
            "failed": ("!", "bold red"),
            "interrupted": ("x", "yellow"),
            "pending": (" ", ""),
        }
        if view.status == "running":
            # From the clock, not a tick count: a fixed clock gives the same picture.
            frame = int(self.app.clock() * SPINNER_RATE)
            mark, style = SPINNER[frame % len(SPINNER)], "bold"
        else:
            mark, style = marks.get(view.status, (" ", ""))
        row = Text.assemble(
            (mark, style), " ", (f"{name:<{self._name_width}}", "bold" if style else "")
        )
        if not self.compact:
            # Padded to the widest words: the list keeps its width while stages run.
            row.append(f" {self._status_words(view):<{STATUS_WIDTH}}", style)
        return row

    def _update_row(self, name: str) -> None:
        stage_list = self.query_one(StageList)
        stage_list.replace_option_prompt(name, self._row(name))

    @on(OptionList.OptionHighlighted, "#stage-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.query_one(ContentSwitcher).current = f"pane-{event.option.id}"
        self.refresh_bindings()

    @property
    def selected(self) -> str | None:
        """The highlighted stage's name."""
        option = self.query_one(StageList).highlighted_option
        return option.id if option else None

    # -- running -------------------------------------------------------------------------
    def start(
        self,
        names: Sequence[str],
        force: Sequence[str] = (),
        force_all: bool = False,
        step_mode: bool = False,
    ) -> None:
        """Run these stages (in order): as a detached build the screen follows, or, in step
        mode (or without ``detach``), in the app's own build worker; in step mode the build
        waits before each step until the user presses Space."""
        if self.running:
            self.notify("A build is already running", severity="warning")
            return
        problems = self.app.profile.problems()
        if problems:
            self.notify(
                "\n".join(f"{p.key}: {p.message}" for p in problems[:3]),
                title="Fix the profile first (c lists the problems)",
                severity="error",
                timeout=8,
            )
            return
        build = self._build()
        if self.detach and step_mode:
            holder = workdir.read_lock(build.work)
            if holder is not None:
                self.notify(
                    holder.describe(build.work),
                    title="A build is running in the work dir",
                    severity="warning",
                )
                return
            self.notify(
                "Step mode runs the stage inside this app, not in the background: "
                "quitting the app stops it",
                timeout=6,
            )
        if self.detach and not step_mode:
            self._start_detached(build, names, force, force_all)
            return
        clock = self.app.clock
        events = self._events
        backpressure = self._backpressure
        gate = self._gate
        gate.set()

        def listen(event: Event) -> None:
            # Called from the build thread and the output pipe's: only append (deque is safe).
            events.append((clock(), event))
            backpressure.hold(events)
            if step_mode and isinstance(event, StepStarted):
                # The engine calls listeners before it runs the step, from the build
                # thread: holding here holds the build, until Space (or stop) opens the gate.
                gate.clear()
                events.append(
                    (clock(), StepWaiting(event.stage, event.index, event.total, event.describe))
                )
                gate.wait()

        self.engine = Engine(build, self.stages, [listen])
        selected = [self.engine.stage(name) for name in names]
        self._begin(names)

        def ended(event: BuildEnded) -> None:
            events.append((clock(), event))

        self._run(self.engine, selected, list(force), force_all, ended)

    def _begin(self, names: Sequence[str]) -> None:
        """What will run starts from a clean slate."""
        self._chosen = list(names)
        for name in names:
            if self.views[name].status in ("failed", "interrupted"):
                self.views[name].status = "pending"
                self._update_row(name)
        self.running = True

    @work(thread=True, exclusive=True, exit_on_error=False, group="build")
    def _run(
        self,
        engine: Engine,
        selected: list[Stage],
        force: list[str],
        force_all: bool,
        ended: Callable[[BuildEnded], None],
    ) -> None:
        """The build thread: runs the engine and reports how it ended; touches no widget."""
        try:
            ended(BuildEnded(engine.run(selected, force=force, force_all=force_all)))
        except BuildError as err:
            ended(BuildEnded(False, str(err)))
        except Exception as err:  # shown to the user instead of killing the app
            ended(BuildEnded(False, f"{type(err).__name__}: {err}"))

    # -- detached builds -------------------------------------------------------------------
    def _report(self) -> Callable[[object, float], None]:
        """A function threads call to hand an event over (``age``: how long ago it was)."""
        clock = self.app.clock
        events = self._events
        backpressure = self._backpressure

        def report(event: object, age: float = 0.0) -> None:
            events.append((clock() - age, event))  # type: ignore[arg-type]
            backpressure.hold(events)

        return report

    def _start_detached(
        self, build: Build, names: Sequence[str], force: Sequence[str], force_all: bool
    ) -> None:
        """Start ``livecd-tui build`` on a snapshot of the profile in the background, and
        follow it."""
        holder = workdir.read_lock(build.work)
        if holder is not None:
            self.notify(
                holder.describe(build.work),
                title="A build is already running in the work dir: following it",
                severity="warning",
                timeout=8,
            )
            self.attach()
            return
        extra = build_args(names, [s.name for s in self.stages], force, force_all)
        self._begin(names)
        self._follow_start(build)
        self._follow(
            FollowFeed(build.work, self.stages, build.profile), self._report(), (build, extra)
        )

    def attach(self) -> None:
        """Follow the build another process runs in the work dir, if one does."""
        if not self.detach or self.running or self._retired:
            return
        build = self._build()
        holder = workdir.read_lock(build.work)
        if holder is None or holder.pid == os.getpid():
            return
        self._chosen = []
        self.running = True
        self._follow_start(build)
        self._follow(
            FollowFeed(build.work, self.stages, build.profile, since=holder.since),
            self._report(),
            None,
        )

    def _follow_start(self, build: Build) -> None:
        self.following = True
        self.follow_pid = None
        self.follow_work = build.work
        self._unfollow.clear()
        self._stop_requested.clear()

    @work(thread=True, exclusive=True, exit_on_error=False, group="build")
    def _follow(
        self,
        feed: FollowFeed,
        report: Callable[[object, float], None],
        launch: tuple[Build, list[str]] | None,
    ) -> None:
        """The follower thread: starts the detached build (``launch``: the build and its
        options) or finds the one running, then turns its files into events until it ends or
        the screen lets go; touches no widget."""
        unfollow, stop_requested = self._unfollow, self._stop_requested
        try:
            if launch is not None:
                build, extra = launch
                problems = workdir.path_problems(build, self.stages)
                if problems:
                    raise BuildError("; ".join(problems))
                workdir.prepare_work_dir(build.work, build.epoch)
                snapshot = snapshot_profile(build.profile, build.work)
                feed.since = time.time()
                if build.profile.path:  # the lock names the user's profile, not the copy
                    extra = [*extra, "--shown-as", str(build.profile.path.resolve())]
                pid = runner.start_detached(snapshot, build.work, extra)
                if stop_requested.is_set():  # stopped before the build held its lock
                    runner.stop(build.work)
            else:
                holder = workdir.read_lock(feed.work)
                pid = holder.pid if holder else 0
            report(Following(pid, launch is not None), 0.0)
            while True:
                building = feed.building()
                feed.poll(report)
                if not building:
                    break
                if unfollow.wait(FOLLOW_INTERVAL):
                    return  # the screen let go; the build goes on
            outcome = feed.outcome()
            report(BuildEnded(outcome.ok, outcome.error), 0.0)
        except (BuildError, OSError) as err:
            report(BuildEnded(False, str(err)), 0.0)
        except Exception as err:  # shown to the user instead of killing the app
            report(BuildEnded(False, f"{type(err).__name__}: {err}"), 0.0)

    def unfollow(self) -> None:
        """Stop following the detached build; it goes on."""
        self._unfollow.set()

    # -- stopping --------------------------------------------------------------------------
    def stop_build(self, then: Callable[[], object] | None = None) -> None:
        """Stop the running build; the running stage's pane says so. ``then`` runs (on the
        UI thread) once a detached build has let go of the work dir."""
        if not self.running:
            if then is not None:
                then()
            return
        for name, view in self.views.items():
            if view.status == "running":
                self.pane(name).status_line = "stopping: killing the running command..."
        if self.following:
            self._stop_detached(then)
        else:
            self._kill_engine()
            if then is not None:
                then()

    def _stop_detached(self, then: Callable[[], object] | None) -> None:
        """``runner.stop`` (SIGTERM, then wait for the lock) in a plain thread: it takes the
        build's grace period, and a worker of this screen would be cancelled with it."""
        work, app, report = self.follow_work, self.app, self._report()
        self._stop_requested.set()
        if work is None:
            return

        def stop() -> None:
            try:
                runner.stop(work)
            except BuildError as err:
                report(Notice(str(err), "Could not stop the build"), 0.0)
                return
            if then is not None:
                with contextlib.suppress(RuntimeError):  # the app is gone already
                    app.call_from_thread(then)

        threading.Thread(target=stop, name="stop-build", daemon=True).start()

    def _kill_engine(self) -> None:
        """Killing can take the engine's grace period, so it happens in a plain thread (a
        worker of this screen would be cancelled when the screen goes)."""
        engine, gate = self.engine, self._gate
        if engine is None or not self.running or self.following:
            return

        def stop() -> None:
            engine.stop()
            gate.set()  # a build held in step mode goes on, sees the stop and ends

        threading.Thread(target=stop, name="stop-build", daemon=True).start()

    def hang_up(self) -> None:
        """The terminal is gone: let a background build go on; stop one inside the app now
        (its commands run in their own sessions and would outlive the app)."""
        self.unfollow()
        if self.engine is not None and self.running and not self.following:
            self.engine.stop()
            self._gate.set()

    def retire(self) -> None:
        """The app forgets this screen (another profile opened): let go of every build."""
        self._retired = True
        self.unfollow()
        self._kill_engine()

    def on_unmount(self) -> None:
        self.unfollow()
        self._kill_engine()

    # -- draining the engine's events ----------------------------------------------------
    def _drain(self) -> None:
        """Apply what the build threads reported since the last tick, for at most
        DRAIN_BUDGET seconds: a flood of lines (a followed log read at once, a fast command)
        is taken over several ticks, and keys are handled between them."""
        self._backpressure.drained_at = time.monotonic()
        lines: dict[str, list[str]] = {}
        panes: dict[str, StagePane] = {}
        deadline = time.monotonic() + DRAIN_BUDGET
        taken = 0
        while True:
            taken += 1
            if taken % 512 == 0 and time.monotonic() > deadline:
                break
            try:
                at, event = self._events.popleft()
            except IndexError:
                break
            if isinstance(event, OutputLine):
                pane = panes.get(event.stage)
                if pane is None:
                    pane = panes[event.stage] = self.pane(event.stage)
                if not pane.track(event.line):
                    lines.setdefault(event.stage, []).append(event.line)
                continue
            self._write_lines(lines)
            lines = {}
            self._apply(at, event)
        self._write_lines(lines)
        for name, view in self.views.items():
            if view.status == "running":
                self._update_row(name)
                pane = self.pane(name)
                if pane.objects:
                    pane.detail = pane.objects_detail()

    def _write_lines(self, lines: dict[str, list[str]]) -> None:
        for name, batch in lines.items():
            self.pane(name).output.write_lines([printable(line) for line in batch[-MAX_LINES:]])

    def _apply(
        self, at: float, event: Event | BuildEnded | StepWaiting | Following | Notice
    ) -> None:
        if isinstance(event, BuildEnded):
            self._ended(event)
            return
        if isinstance(event, Notice):
            self.notify(event.message, title=event.title, severity="error", timeout=10)
            return
        if isinstance(event, Following):
            self.follow_pid = event.pid
            if event.started_here:
                self.notify(
                    f"The build runs in the background (pid {event.pid}): it goes on "
                    "if you quit or lose the terminal; open the profile again to see "
                    "it",
                    title="Build started",
                    timeout=6,
                )
            else:
                self.notify(
                    f"Following the build running in the background (pid "
                    f"{event.pid}); x stops it, q leaves it running",
                    title="A build is running",
                    timeout=8,
                )
            return
        if isinstance(event, StepWaiting):
            self.waiting = event.stage
            self.pane(event.stage).status_line = (
                f"step {event.index + 1}/{event.total} waits: Space runs it, x stops, "
                "t opens a shell (step mode runs inside the app)"
            )
            return
        name = event.stage
        view = self.views[name]
        pane = self.pane(name)
        title = next((s.title for s in self.stages if s.name == name), name)
        if isinstance(event, StageStarted):
            view.status, view.started, view.duration, view.failure = "running", at, None, None
            pane.reset(event.steps)
            pane.status_line = f"{title}: starting ({event.steps} steps)"
            self.query_one(StageList).highlighted = self._index(name)
        elif isinstance(event, StageSkipped):
            view.status = "skipped"
            pane.status_line = f"{title}: skipped ({event.reason})"
            pane.bar.update(total=1, progress=1)
        elif isinstance(event, StepStarted):
            pane.bar.update(total=max(1, event.total), progress=event.index)
            pane.status_line = f"step {event.index + 1}/{event.total}: {event.describe}"
        elif isinstance(event, StageFinished):
            view.status = event.status
            # A followed build's own clock; the app's for a build here (fixed in pictures).
            view.duration = (
                event.duration if self.following or view.started is None else at - view.started
            )
            view.failure = event.failure
            pane.failure = event.failure
            if event.status == "done":
                pane.bar.update(progress=pane.bar.total or 1)
            words = {
                "done": "done",
                "failed": "failed",
                "interrupted": "stopped by the user",
                "skipped": "up to date",
            }
            pane.status_line = f"{title}: {words.get(event.status, event.status)}"
            if event.status == "interrupted":
                pane.output.write_line(
                    "== stopped by the user: the command's process group was killed"
                )
        self._update_row(name)
        self.refresh_bindings()

    def _ended(self, event: BuildEnded) -> None:
        self.running = False
        self.following = False
        self.follow_pid = None
        self.waiting = None
        if event.error:
            # Say it where the build stopped: the stage that could not be planned (every
            # stage is planned before the first runs), else the first that did not run.
            stuck = next(
                (n for n in self._chosen if self.views[n].status == "failed"), None
            ) or next((n for n in self._chosen if self.views[n].status == "pending"), None)
            if stuck is not None:
                pane = self.pane(stuck)
                pane.status_line = "could not run: see the log"
                pane.output.write_line(f"== could not run this stage: {event.error}")
                self.query_one(StageList).highlighted = self._index(stuck)
            self.notify(event.error, title="The build stopped", severity="error", timeout=15)
        elif event.ok:
            build = self._build()
            iso = build.iso_path
            if self.views.get("iso", StageView()).status in ("done", "skipped"):
                self.finished_iso = finished_iso_text(build)
            if self.finished_iso is None:  # else the ISO's bar says it, not hidden by this
                self.notify(
                    "Every stage finished" + (f"\nISO: {shown_path(iso)}" if iso.is_file() else ""),
                    title="Build done",
                    timeout=5,
                )
        self.refresh_bindings()

    def _index(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)

    def watch_running(self) -> None:
        self.refresh_bindings()
        if self.running:
            self.finished_iso = None

    def on_resize(self, event: events.Resize) -> None:
        self.compact = event.size.width < COMPACT_BELOW

    def watch_compact(self) -> None:
        for stage in self.stages:
            self._update_row(stage.name)

    def watch_wrap(self, wrap: bool) -> None:
        for log in self.query(StageLog):
            log.wrap = wrap

    def watch_zoomed(self, zoomed: bool) -> None:
        self.set_class(zoomed, "-zoomed")
        name = self.selected
        if zoomed and name:
            self.pane(name).output.focus()
        else:
            self.query_one(StageList).focus()

    def watch_finished_iso(self, text: Text | None) -> None:
        info = self.query_one("#iso-info", Static)
        info.update(text or "")
        info.set_class(text is not None, "-shown")

    def watch_waiting(self) -> None:
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    def _selected_failure(self) -> Failure | None:
        name = self.selected
        return self.views[name].failure if name else None

    def _selected_failed(self) -> bool:
        name = self.selected
        return name is not None and self.views[name].status == "failed"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only the keys that make sense now (hidden ones stay out of the footer)."""
        if action == "stop":
            return self.running
        if action in ("build_all", "force"):
            return not self.running
        if action in ("build_from", "build_only", "step_mode"):
            return not self.running and not self._selected_failed()
        if action == "next_step":
            return self.waiting is not None
        if action == "shell" and self.waiting is not None:
            return True
        if action in ("retry", "fix", "skip", "shell", "copy_command"):
            return not self.running and self._selected_failed()
        return True

    def action_build_all(self) -> None:
        self.start([s.name for s in self.stages])

    def action_build_from(self) -> None:
        if self.selected:
            self.start([s.name for s in self.stages[self._index(self.selected) :]])

    def action_build_only(self) -> None:
        if self.selected:
            self.start([self.selected])

    def action_force(self) -> None:
        if self.selected:
            self.start([self.selected], force=[self.selected])

    def action_step_mode(self) -> None:
        if self.selected:
            self.start([self.selected], force=[self.selected], step_mode=True)

    def action_next_step(self) -> None:
        if self.waiting is not None:
            self.pane(self.waiting).status_line = "running the step..."
            self.waiting = None
            self._gate.set()

    def action_stop(self) -> None:
        self.stop_build()

    def action_retry(self) -> None:
        if self.selected:
            self.start([s.name for s in self.stages[self._index(self.selected) :]])

    def action_skip(self) -> None:
        if self.selected:
            later = [s.name for s in self.stages[self._index(self.selected) + 1 :]]
            if later:
                self.start(later)
            else:
                self.notify("No stage after this one", severity="warning")

    def action_fix(self) -> None:
        name = self.selected
        if not name:
            return
        key = option_for_failure(self._stage(name), self.views[name].failure, self.app.profile)
        if key is None:
            self.notify("This stage reads no option", severity="warning")
            return
        self.app.jump_to_option(key)
        self.app.notify(f"Change {key}, then press b and r to retry", timeout=6)

    def action_copy_command(self) -> None:
        failure = self._selected_failure()
        if failure:
            self.app.copy_to_clipboard(failure.command)
            self.notify("Copied the failing command", timeout=2)

    def _stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def _suspended(self, argv: list[str], cwd: Path, banner: str) -> None:
        """Run a program on the terminal, the app hidden until it exits."""
        try:
            with self.app.suspend():
                print(banner, flush=True)
                procs.run_in_terminal(argv, cwd)
        except SuspendNotSupported:
            self.notify("Cannot leave the app in this terminal", severity="error")
        except OSError as err:
            self.notify(str(err), title=f"Cannot run {argv[0]}", severity="error")

    def action_shell(self) -> None:
        name = self.waiting or self.selected
        if not name:
            return
        build = self._build()
        where = next(
            (d for d in (build.partial_dir(name), build.done_dir(name), build.work) if d.is_dir()),
            Path.cwd(),
        )
        shell = os.environ.get("SHELL") or "/bin/sh"
        self._suspended(
            [shell], where, f"livecd-tui: a shell in {where} for stage {name}; exit it to go back"
        )

    def action_view_log(self) -> None:
        name = self.selected
        if not name:
            return
        log = self._build().log_path(name)
        if not log.exists():
            self.notify("This stage has no log yet", severity="warning")
            return
        pager = shlex.split(os.environ.get("PAGER") or "less")
        if Path(pager[0]).name == "less":
            pager.append("+G")
        self._suspended([*pager, str(log)], log.parent, "")

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self.notify(
            "Long lines wrap"
            if self.wrap
            else "Long lines are cut: Tab to the log, arrows scroll it sideways",
            timeout=3,
        )

    def action_editor(self) -> None:
        self.app.pop_screen()

    def action_quit(self) -> None:
        self.app.quit_safely()
