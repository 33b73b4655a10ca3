"""Value editors, one per kind of option, each a small modal that returns the new value.

An editor never changes the profile: it checks every value against a copy of it (the same
``Profile.set`` the save path uses) and dismisses with a value the profile will take, or
with None when the user backs out.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option as ListOption

from livecd_tui.options import OPTIONS, Option, describe_type, format_value
from livecd_tui.profile import Profile
from livecd_tui.tui.describe import check_value, parse_text


class OptionValidator(Validator):
    """Checks typed text the way the profile will: type, range, length, path existence."""

    def __init__(self, profile: Profile, option: Option) -> None:
        super().__init__()
        self.profile = profile
        self.option = option

    def validate(self, value: str) -> ValidationResult:
        parsed, reason = parse_text(self.option, value)
        if reason is None:
            reason = check_value(self.profile, self.option.key, parsed)
        return self.success() if reason is None else self.failure(reason)


class EditorDialog(ModalScreen[Any]):
    """Common frame: a titled box with the option's type, default and a hint line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
    ]

    HINT = ""

    def __init__(self, profile: Profile, key: str) -> None:
        super().__init__()
        self.profile = profile
        self.option = OPTIONS[key]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = f"{self.option.title} ({self.option.key})"
            yield Label(
                f"{describe_type(self.option)}; default {format_value(self.option.default)}",
                classes="dialog-type",
            )
            yield from self.compose_body()
            yield Static(self.HINT, id="reason", classes="dialog-hint")

    def compose_body(self) -> ComposeResult:
        yield from ()

    def show_reason(self, reason: str | None) -> None:
        """Show why the value is refused, or the keys when it is fine."""
        hint = self.query_one("#reason", Static)
        hint.set_class(reason is not None, "refused")
        hint.update(Text(reason) if reason else self.HINT)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ValueEditor(EditorDialog):
    """A text input for strings, paths and numbers, validated as you type."""

    HINT = "Enter: set   Esc: cancel"

    def compose_body(self) -> ComposeResult:
        value = self.profile.values[self.option.key]
        yield Input(
            str(value),
            compact=True,
            id="value",
            select_on_focus=False,
            validators=[OptionValidator(self.profile, self.option)],
            validate_on=["changed", "submitted"],
            type="integer" if self.option.kind == "int" else "text",
        )

    @on(Input.Changed, "#value")
    def _typed(self, event: Input.Changed) -> None:
        result = event.validation_result
        self.show_reason(
            None if result is None or result.is_valid else "; ".join(result.failure_descriptions)
        )

    @on(Input.Submitted, "#value")
    def _submitted(self, event: Input.Submitted) -> None:
        result = event.validation_result
        if result is not None and not result.is_valid:
            self.show_reason("; ".join(result.failure_descriptions))
            self.app.bell()
            return
        value, _ = parse_text(self.option, event.value)
        self.dismiss(value)


class ChoiceEditor(EditorDialog):
    """A selector for choices, the current one marked as menuconfig's radio lists do."""

    HINT = "Enter: choose   Esc: cancel"

    def compose_body(self) -> ComposeResult:
        current = self.profile.values[self.option.key]
        items = OptionList(
            *[
                ListOption(f"({'X' if c == current else ' '}) {c}", id=c)
                for c in self.option.choices
            ],
            id="choices",
        )
        items.highlighted = self.option.choices.index(current)
        yield items

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ListEditor(EditorDialog):
    """A list: add items by typing, remove or move the highlighted one; Esc keeps it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "done", "Done"),
        Binding("delete,ctrl+d", "remove", "Remove item"),
        Binding("shift+up,ctrl+up", "move(-1)", "Move up"),
        Binding("shift+down,ctrl+down", "move(1)", "Move down"),
    ]

    HINT = "Enter: add   Del: remove   Shift+Up/Down: move   Tab: list/input   Esc: done"

    def __init__(self, profile: Profile, key: str) -> None:
        super().__init__(profile, key)
        self.items: list[str] = list(profile.values[key])

    def compose_body(self) -> ComposeResult:
        yield OptionList(id="items")
        suggester = SuggestFromList(self.option.item_choices) if self.option.item_choices else None
        yield Input(compact=True, placeholder="new item", id="new-item", suggester=suggester)

    def on_mount(self) -> None:
        self._show_items()
        self.query_one("#new-item", Input).focus()

    def _show_items(self, highlight: int | None = None) -> None:
        items = self.query_one("#items", OptionList)
        items.set_options(
            [Text(item) for item in self.items]
            or [ListOption(Text("(empty)", style="dim"), disabled=True)]
        )
        if self.items:
            items.highlighted = min(highlight if highlight is not None else 0, len(self.items) - 1)

    def _try(self, new: list[str], highlight: int | None) -> bool:
        reason = check_value(self.profile, self.option.key, new)
        if reason:
            self.show_reason(reason)
            self.app.bell()
            return False
        self.items = new
        self.show_reason(None)
        self._show_items(highlight)
        return True

    @on(Input.Submitted, "#new-item")
    def _add(self, event: Input.Submitted) -> None:
        if event.value and self._try([*self.items, event.value], len(self.items)):
            event.input.clear()

    def action_remove(self) -> None:
        index = self.query_one("#items", OptionList).highlighted
        if index is not None and self.items:
            self._try(self.items[:index] + self.items[index + 1 :], index)

    def action_move(self, step: int) -> None:
        index = self.query_one("#items", OptionList).highlighted
        target = (index or 0) + step
        if index is None or not 0 <= target < len(self.items):
            return
        new = list(self.items)
        new[index], new[target] = new[target], new[index]
        self._try(new, target)

    def action_done(self) -> None:
        self.dismiss(self.items)


def editor_for(profile: Profile, key: str) -> EditorDialog | None:
    """The editor for an option's kind (None for bools, which Space and Enter toggle)."""
    kind = OPTIONS[key].kind
    if kind == "bool":
        return None
    if kind == "choice":
        return ChoiceEditor(profile, key)
    if kind == "list":
        return ListEditor(profile, key)
    return ValueEditor(profile, key)
