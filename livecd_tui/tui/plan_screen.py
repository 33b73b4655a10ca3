"""The plan view: the exact commands every stage will run, and exporting them as a script."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, TextArea

from livecd_tui.build import Build
from livecd_tui.engine import Stage, render_script
from livecd_tui.profile import Profile
from livecd_tui.tui import glyphs
from livecd_tui.tui.describe import shown_path
from livecd_tui.tui.dialogs import PathScreen


def plan_text(build: Build, stages: Sequence[Stage]) -> str:
    """Each stage's steps, numbered, with the shell lines that do them."""
    lines = [f"# profile {build.profile.path or '(new)'}", f"# work dir {shown_path(build.work)}"]
    for stage in stages:
        lines += ["", f"== {stage.name}: {stage.title}"]
        try:
            steps = stage.plan(build)
        except Exception as err:  # a plan that cannot be made yet says why
            lines.append(f"  (cannot plan this stage yet: {err})")
            continue
        for number, step in enumerate(steps, start=1):
            lines.append(f"  {number}. {step.describe}")
            lines += [f"       {line}" for line in step.script_lines()]
    return "\n".join(lines) + "\n"


class PlanScreen(Screen[None]):
    """A read-only, scrollable, selectable text of the plan."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("e", "export", "Export script", tooltip="Write the build as a bash script"),
    ]

    def __init__(
        self, profile: Profile, stages: Sequence[Stage], work_dir: Path | None = None
    ) -> None:
        super().__init__()
        self.build = Build.for_profile(profile, work_dir, dry_run=True)
        self.stages = list(stages)

    def compose(self) -> ComposeResult:
        yield glyphs.header(self)
        yield glyphs.text_view("plan", "Plan: the commands each stage runs", "planning...")
        yield Footer()

    def on_mount(self) -> None:
        self._plan()

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def _plan(self) -> None:
        text = plan_text(self.build, self.stages)
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str) -> None:
        area = self.query_one("#plan", TextArea)
        area.load_text(text)
        area.focus()

    def action_export(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is None:
                return
            try:
                path.write_text(render_script(self.build, self.stages))
                path.chmod(0o755)
            except Exception as err:
                self.notify(str(err), title="Not exported", severity="error")
                return
            self.notify(f"Wrote {path}", timeout=4)

        self.app.push_screen(
            PathScreen("Export the build as a bash script", f"{self.build.profile.name}-build.sh"),
            chosen,
        )

    def action_close(self) -> None:
        self.dismiss(None)
