"""The preview of what the system stage will pack (``livecd-tui capture`` in the TUI).

The walk and the sample take seconds to minutes on a whole system, so they run in a thread
worker; the text is the same the command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, TextArea

from livecd_tui.build import Build
from livecd_tui.profile import Profile
from livecd_tui.tui import glyphs


class CaptureScreen(Screen[None]):
    """A read-only, scrollable text: packed dirs, what is left out and why, the sizes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("r", "refresh", "Again", tooltip="Walk the system and pack a sample again"),
        Binding(
            "a", "every_path", "All paths", tooltip="List every path left out, not only examples"
        ),
    ]

    def __init__(self, profile: Profile, work_dir: Path | None = None) -> None:
        super().__init__()
        self.build = Build.for_profile(profile, work_dir)
        self.every_path = False

    def compose(self) -> ComposeResult:
        yield glyphs.header(self)
        yield glyphs.text_view("capture", "Preview: what the system image will hold")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        area = self.query_one("#capture", TextArea)
        area.load_text("walking the system and packing a sample with mksquashfs...\n")
        area.loading = True
        self._preview(self.every_path)

    def action_every_path(self) -> None:
        self.every_path = not self.every_path
        self.action_refresh()

    @work(thread=True, exclusive=True, exit_on_error=False, group="capture")
    def _preview(self, every_path: bool) -> None:
        from livecd_tui.capture import preview

        try:
            shown = preview(self.build, every_path=every_path)
        except Exception as err:  # a preview that cannot be made says why, in the view
            self.app.call_from_thread(
                self._show, [f"the preview failed: {type(err).__name__}: {err}"], []
            )
            return
        self.app.call_from_thread(self._show, shown.lines, shown.warnings)

    def _show(self, lines: list[str], warnings: list[str]) -> None:
        area = self.query_one("#capture", TextArea)
        area.loading = False
        area.load_text("\n".join(lines) + "\n")
        area.border_subtitle = f"{len(warnings)} warning(s)" if warnings else "no warnings"
        for warning in warnings:
            self.notify(warning, title="Preview", severity="warning", timeout=8)
        area.focus()

    def action_close(self) -> None:
        self.dismiss(None)
