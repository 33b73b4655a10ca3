"""One stage's pane on the build screen: its failure, current step, progress bar and log.

The pane reads progress out of the output lines (mksquashfs and xorriso percentages, the
boot phases of the boot test's serial console, objects kbuild makes) so a progress bar
moves instead of a wall of ``\\r``-redrawn lines filling the log.
"""

from __future__ import annotations

import re
import textwrap
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Log, OptionList, ProgressBar, Static

from livecd_tui.engine import Failure, Stage
from livecd_tui.kernel import kbuild
from livecd_tui.qemu import BOOT_PHASES, boot_phase
from livecd_tui.tui import glyphs

#: Lines each pane keeps in memory (the full log is in WORK/logs/STAGE.log).
MAX_LINES = 2000
#: The start of a wrapped line's continuations.
CONTINUED = "  "

_MKSQUASHFS = re.compile(r"\]\s+\d+/\d+\s+(\d{1,3})%\s*$")
_XORRISO = re.compile(r"UPDATE\s*:\s*([\d.]+)%\s+done")
#: The phases of a good boot, in order ("failed" is not progress).
_BOOT_ORDER = [phase for phase in BOOT_PHASES if phase != "failed"]


def parse_progress(line: str) -> float | None:
    """A percentage from a tool's progress line (mksquashfs, xorriso), else None."""
    for pattern in (_MKSQUASHFS, _XORRISO):
        found = pattern.search(line)
        if found:
            return min(100.0, float(found.group(1)))
    return None


def boot_progress(line: str) -> tuple[float, str] | None:
    """How far a boot on the serial console got (0..1) and the phase's name, or None."""
    phase = boot_phase(line)
    if phase is None or phase not in _BOOT_ORDER:
        return None
    return (_BOOT_ORDER.index(phase) + 1) / len(_BOOT_ORDER), phase


def failure_text(failure: Failure, log_hint: str = "") -> Text:
    """The top of a failed stage's pane: what failed and how, the command to copy (or, for
    a step livecd-tui does itself, its error), the hint and where the full log is."""
    is_action = failure.command == failure.describe
    how = (
        f"killed by {failure.signal}"
        if failure.signal
        else f"exit code {failure.exit_code}"
        if failure.exit_code is not None
        else "error"
    )
    text = Text.assemble(
        (f"FAILED at step {failure.step + 1} ({failure.describe}): {how}\n", "bold")
    )
    if is_action:
        text.append(f"error: {failure.tail[-1] if failure.tail else '(no message)'}")
    else:
        text.append(f"$ {failure.command}")
    if failure.hint:
        text.append(f"\nhint: {failure.hint}", style="italic")
    if log_hint:
        text.append(f"\nfull log: {log_hint}", style="dim")
    return text


class StageList(OptionList):
    """The stages, one row each; j/k move like the editor's tree."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]


def wrap_line(line: str, width: int) -> list[str]:
    """One log line cut into lines of at most ``width`` cells, at spaces where it can be
    (an argv stays readable), the continuations indented by two."""
    if width < 8 or cell_len(line) <= width:
        return [line]
    line = line.rstrip()  # a serial console pads its lines with spaces
    if cell_len(line) <= width:
        return [line]
    return textwrap.wrap(
        line,
        width,
        subsequent_indent=CONTINUED,
        break_on_hyphens=False,
        replace_whitespace=False,
        expand_tabs=False,
    )


class StageLog(Log):
    """A stage's log lines, wrapped at the pane's width or cut and scrolled sideways.

    The lines as they came are kept (at most ``MAX_LINES``), so the log is wrapped again
    when the pane's width changes or wrapping is turned off.
    """

    #: Wrap long lines (else they are cut; the log then scrolls sideways).
    wrap: reactive[bool] = reactive(True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=MAX_LINES, **kwargs)
        self._raw: deque[str] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0

    @property
    def unwrapped(self) -> list[str]:
        """The lines as they were written (the last ``MAX_LINES``), however they are shown."""
        return list(self._raw)

    def _wrap_width(self) -> int:
        # The scroll bar's column kept free: lines that make it appear still fit.
        width = self.content_region.width - self.styles.scrollbar_size_vertical
        return max(0, width) if self.wrap else 0

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> Self:
        lines = [part for line in lines for part in (line.splitlines() or [""])]
        width = self._wrap_width()
        shown_before = bool(self._raw)
        self._raw.extend(lines)
        if shown_before and width != self._wrapped_at:
            # Written at another width (the pane was hidden, or resized since): all again.
            self._show_again()
            return self
        self._wrapped_at = width
        return self._show(lines, width, scroll_end)

    def _show(self, lines: list[str], width: int, scroll_end: bool | None) -> Self:
        if width:
            lines = [part for line in lines for part in wrap_line(line, width)]
        return super().write_lines(lines, scroll_end)

    def clear(self) -> Self:
        self._raw.clear()
        return super().clear()

    def _show_again(self) -> None:
        """Show the kept lines again at the current width (or unwrapped)."""
        width = self._wrapped_at = self._wrap_width()
        super().clear()
        self._show(list(self._raw), width, scroll_end=True)

    def _rewrap(self) -> None:
        if self._wrap_width() != self._wrapped_at:
            self._show_again()

    def on_mount(self) -> None:
        # Follow the end through new lines and size changes (a failure shown above the
        # log, zooming) until the user scrolls up.
        self.anchor()

    def watch_wrap(self) -> None:
        if self.is_mounted:
            self._rewrap()

    def on_resize(self) -> None:
        self._rewrap()


class StagePane(Vertical):
    """One stage's output: the failure (if any), the current step, progress, the log."""

    #: Set when the stage failed: shown at the top, with the command to copy.
    failure: reactive[Failure | None] = reactive(None)
    #: One line under the failure: what the stage is doing or did.
    status_line: reactive[str] = reactive("")
    #: What the tools say about their progress (objects made, boot phase), after the line.
    detail: reactive[str] = reactive("")

    def __init__(self, stage: Stage, log_hint: str = "") -> None:
        super().__init__(id=f"pane-{stage.name}")
        self.stage = stage
        self.log_hint = log_hint
        #: Objects kbuild reported made in this run of the stage, and how many the stage
        #: expects (its "kbuild: about N objects to make" line; 0 when it said nothing).
        self.objects = 0
        self.objects_expected = 0

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-failure")
        yield Static(self.status_line, classes="pane-status")
        bar = ProgressBar(total=1, show_eta=False, classes="pane-progress")
        if glyphs.is_ascii(self):
            bar.BAR_RENDERABLE = glyphs.AsciiBar
        yield bar
        yield StageLog(classes="pane-log")

    @property
    def output(self) -> StageLog:
        return self.query_one(StageLog)

    @property
    def bar(self) -> ProgressBar:
        return self.query_one(ProgressBar)

    def watch_status_line(self) -> None:
        self._show_status()

    def watch_detail(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        if self.is_mounted:
            line = self.status_line + (f" - {self.detail}" if self.detail else "")
            self.query_one(".pane-status", Static).update(Text(line))

    def within_step(self, fraction: float) -> None:
        """Move the bar inside the current step (tools that report percentages)."""
        step = int(self.bar.progress)
        self.bar.update(progress=step + min(max(fraction, 0.0), 0.999))

    def track(self, line: str) -> bool:
        """Read progress out of one output line; True when the line is only a progress
        report (a bar redrawn with \\r), which the log then leaves out."""
        percent = parse_progress(line)
        if percent is not None:
            self.within_step(percent / 100)
            return True
        if self.stage.name == "boottest":
            boot = boot_progress(line)
            if boot is not None:
                self.within_step(boot[0])
                self.detail = f"boot phase: {boot[1]}"
        elif kbuild.is_object_line(line):
            self.objects += 1
            if self.objects_expected:
                self.within_step(self.objects / self.objects_expected)
        elif (expected := kbuild.parse_estimate(line)) is not None:
            self.objects_expected = expected
        return False

    def objects_detail(self) -> str:
        """``12 objects made``, or with the stage's estimate ``12/1279 objects made``."""
        if self.objects_expected:
            return f"{self.objects}/{self.objects_expected} objects made"
        return f"{self.objects} objects made"

    def reset(self, steps: int) -> None:
        """A fresh run of the stage: empty log, no failure, bar at zero."""
        self.failure = None
        self.output.clear()
        self.bar.update(total=max(1, steps), progress=0)
        self.objects = 0
        self.objects_expected = 0
        self.detail = ""

    def watch_failure(self, failure: Failure | None) -> None:
        self.set_class(failure is not None, "-failed")
        if failure is not None:
            self.query_one(".pane-failure", Static).update(failure_text(failure, self.log_hint))
