"""Small modal screens: help, search, confirmations, choosing a profile or a file name."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option as ListOption

from livecd_tui.profile import Profile, ProfileError, list_profiles, load_profile
from livecd_tui.tui.describe import Match, search


class HelpScreen(ModalScreen[None]):
    """The ``?`` help of one option or menu: a scrollable text, closed by any of Esc/q/?."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,enter", "close", "Close"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.help_title = title
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="help-body") as body:
            body.border_title = self.help_title
            body.border_subtitle = "Esc: close"
            yield Static(Text(self.text), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_relative(y=lines, animate=False)


class SearchScreen(ModalScreen[str | None]):
    """``/``: type words, see matching options (hidden ones say why), Enter jumps."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "to_results", "Results", show=False),
    ]

    def __init__(self, profile: Profile, query: str = "") -> None:
        super().__init__()
        self.profile = profile
        self.query_text = query
        self.matches: list[Match] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="search") as box:
            box.border_title = "Search keys, titles and help"
            box.border_subtitle = "Enter: jump   Down: results   Esc: cancel"
            yield Input(self.query_text, compact=True, placeholder="words to find", id="query")
            yield OptionList(id="results")

    def on_mount(self) -> None:
        self._show(self.query_text)

    @on(Input.Changed, "#query")
    def _typed(self, event: Input.Changed) -> None:
        self._show(event.value)

    def _show(self, words: str) -> None:
        self.matches = search(words, self.profile)
        results = self.query_one("#results", OptionList)
        options = []
        for match in self.matches:
            line = Text.assemble((match.key, "bold"), f"  {match.title}")
            if match.hidden:
                line.append(f"\n    hidden: {match.hidden}", style="dim")
            options.append(ListOption(line, id=match.key))
        if not options and words.strip():
            options.append(ListOption(Text("no match", style="dim"), disabled=True))
        results.set_options(options)
        if self.matches:
            results.highlighted = 0

    @on(Input.Submitted, "#query")
    def _submitted(self) -> None:
        if self.matches:
            results = self.query_one("#results", OptionList)
            index = results.highlighted or 0
            self.dismiss(self.matches[index].key)

    @on(OptionList.OptionSelected, "#results")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_to_results(self) -> None:
        self.query_one("#results", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[str]):
    """A question with a few answers, each a button with its own key; Esc answers 'cancel'."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer('cancel')", "Cancel"),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]

    def __init__(self, question: str, answers: list[tuple[str, str, str]]) -> None:
        """``answers``: (answer id, button label, key) in the order shown."""
        super().__init__()
        self.question = question
        self.answers = answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Label(self.question, id="question")
            with Horizontal(id="answers"):
                for answer, label, key in self.answers:
                    yield Button(f"{label} ({key})", id=f"answer-{answer}", compact=True)

    def on_key(self, event: events.Key) -> None:
        for answer, _, key in self.answers:
            if event.key == key:
                event.stop()
                self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id:
            self.dismiss(event.button.id.removeprefix("answer-"))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class PathScreen(ModalScreen[Path | None]):
    """Ask for a file name (save as, export script)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, initial: str) -> None:
        super().__init__()
        self.path_title = title
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="path") as box:
            box.border_title = self.path_title
            box.border_subtitle = "Enter: OK   Esc: cancel"
            yield Input(self.initial, compact=True, id="path-input")

    @on(Input.Submitted, "#path-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)


class OpenProfileScreen(ModalScreen[Profile | None]):
    """``o``: pick one of the known profiles or type a path; a bad profile says why."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="open") as box:
            box.border_title = "Open a profile"
            box.border_subtitle = "Enter: open   Tab: list/path   Esc: cancel"
            yield OptionList(
                *[ListOption(str(path), id=str(path)) for path in list_profiles()], id="profiles"
            )
            yield Input(
                compact=True, placeholder="or type a path to a .toml profile", id="open-path"
            )
            yield Static("", id="open-problem", classes="dialog-hint refused")

    @on(OptionList.OptionSelected, "#profiles")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._open(Path(event.option.id))

    @on(Input.Submitted, "#open-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._open(Path(event.value.strip()).expanduser())

    def _open(self, path: Path) -> None:
        try:
            profile = load_profile(path)
        except ProfileError as err:
            self.query_one("#open-problem", Static).update(
                Text("\n".join(str(p) for p in err.problems[:4]))
            )
            self.app.bell()
            return
        self.dismiss(profile)

    def action_cancel(self) -> None:
        self.dismiss(None)
