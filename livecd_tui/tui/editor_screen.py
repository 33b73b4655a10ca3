"""The profile editor: the menu tree, a help panel for the highlighted option, and the keys
menuconfig users expect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

from livecd_tui.options import MENUS, OPTIONS, dependents_of
from livecd_tui.profile import Profile, ProfileError
from livecd_tui.tui import glyphs
from livecd_tui.tui.describe import (
    LEGEND,
    full_help,
    hidden_reason,
    menu_path,
    summary_line,
)
from livecd_tui.tui.dialogs import HelpScreen, SearchScreen
from livecd_tui.tui.editors import editor_for
from livecd_tui.tui.tree import MenuTree

if TYPE_CHECKING:
    from livecd_tui.tui.app import LiveCDApp


class HelpPanel(Static):
    """A few lines on the highlighted option: problem, key, type, default, help."""

    def show(self, key: str | None, profile: Profile, problem: str | None) -> None:
        if key is None:
            self.update("")
            return
        if key in MENUS:
            self.update(Text.assemble((menu_path(key), "bold"), "\n", MENUS[key].help))
            return
        option = OPTIONS[key]
        text = Text()
        if problem:
            text.append(f"{problem}\n", style="bold red")
        hidden = hidden_reason(option, profile)
        if hidden:
            text.append(f"hidden: {hidden}\n", style="italic")
        text.append(summary_line(option) + "\n", style="bold")
        text.append(option.help)
        self.update(text)


class EditorScreen(Screen[None]):
    """Edit the app's profile; every change goes through ``apply`` (``Profile.set``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", tooltip="Everything about this option"),
        Binding("slash", "search", "Search", tooltip="Search keys, titles and help"),
        Binding("s", "save", "Save", tooltip="Save the profile (S: save as)"),
        Binding("S", "save_as", "Save as", show=False, tooltip="Save under another name"),
        Binding("o", "open", "Open", show=False, tooltip="Open another profile"),
        Binding("c", "checks", "Check", tooltip="Problems, missing tools, kernel config"),
        Binding(
            "K",
            "kernel",
            "Kernel check",
            tooltip="Each kernel requirement against the "
            "kernel's config; fix it or run menuconfig (in the Kernel menu)",
        ),
        Binding(
            "v",
            "capture",
            "Preview",
            tooltip="What the system image will hold, what is "
            "left out and why, its size (in the System menu)",
        ),
        Binding("p", "plan", "Plan", show=False, tooltip="Every command the build will run"),
        Binding("b", "build", "Build", tooltip="The build screen"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks before losing changes)"),
    ]

    app: LiveCDApp

    def compose(self) -> ComposeResult:
        yield glyphs.header(self)
        yield MenuTree(self.app.profile, id="tree")
        with Vertical(id="help-panel") as panel:
            panel.border_title = f"Help -- {LEGEND}"
            yield HelpPanel(id="help")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "profile", self._profile_replaced, init=False)
        self.menu_tree.focus()

    @property
    def menu_tree(self) -> MenuTree:
        return self.query_one(MenuTree)

    @property
    def profile(self) -> Profile:
        return self.app.profile

    def _profile_replaced(self, profile: Profile) -> None:
        self.menu_tree.profile = profile
        self.menu_tree.rebuild()
        self._show_help()

    def values_replaced(self) -> None:
        """Many values changed at once (edits restored): show them all."""
        self._profile_replaced(self.profile)

    # -- the help panel --------------------------------------------------------------
    @on(Tree.NodeHighlighted)
    def _highlighted(self) -> None:
        self._show_help()
        self.refresh_bindings()

    def _show_help(self) -> None:
        key = self.menu_tree.current_key
        problem = self.menu_tree.problem(key) if key else None
        self.query_one(HelpPanel).show(key, self.profile, problem)

    # -- changing values -------------------------------------------------------------
    def apply(self, key: str, value: Any) -> bool:
        """Set one value; a refused value changes nothing and says why."""
        try:
            self.profile.set(key, value)
        except ProfileError as err:
            self.notify(
                "; ".join(p.message for p in err.problems),
                title=f"{key} not changed",
                severity="error",
            )
            return False
        self.menu_tree.refresh_values(structural=bool(dependents_of(key)))
        self.app.note_change()
        self._show_help()
        return True

    @on(MenuTree.ToggleRequested)
    def _toggle(self, event: MenuTree.ToggleRequested) -> None:
        option = OPTIONS[event.key]
        value = self.profile.values[event.key]
        if option.kind == "bool":
            self.apply(event.key, not value)
        elif option.kind == "choice":
            index = option.choices.index(value) if value in option.choices else -1
            self.apply(event.key, option.choices[(index + 1) % len(option.choices)])
        else:
            self._edit(event.key)

    @on(MenuTree.EditRequested)
    def _edit_requested(self, event: MenuTree.EditRequested) -> None:
        self._edit(event.key)

    def _edit(self, key: str) -> None:
        editor = editor_for(self.profile, key)
        if editor is None:
            self.apply(key, not self.profile.values[key])
            return

        def done(value: Any) -> None:
            if value is not None and value != self.profile.values[key]:
                self.apply(key, value)

        self.app.push_screen(editor, done)

    # -- finding options -------------------------------------------------------------
    def jump_to(self, key: str) -> None:
        """Put the cursor on an option or menu, showing hidden options if it is one."""
        if key in OPTIONS and not self.profile.is_active(key):
            self.menu_tree.show_hidden = True
            reason = hidden_reason(OPTIONS[key], self.profile)
            self.notify(f"{key} is hidden: {reason}", title="Hidden option", timeout=6)
        if not self.menu_tree.move_to(key):
            self.notify(f"{key} is not in the menus", severity="warning")
        self.menu_tree.focus()

    def action_help(self) -> None:
        key = self.menu_tree.current_key
        if key is None:
            return
        title = MENUS[key].title if key in MENUS else OPTIONS[key].title
        self.app.push_screen(
            HelpScreen(title, full_help(key, self.profile, self.menu_tree.problem(key)))
        )

    def action_search(self) -> None:
        def done(key: str | None) -> None:
            if key:
                self.jump_to(key)

        self.app.push_screen(SearchScreen(self.profile), done)

    # -- app-wide actions, started from here -----------------------------------------
    def action_save(self) -> None:
        self.app.save_profile()

    def action_save_as(self) -> None:
        self.app.save_profile_as()

    def action_open(self) -> None:
        self.app.open_other_profile()

    def action_checks(self) -> None:
        self.app.show_checks()

    def action_kernel(self) -> None:
        from livecd_tui.tui.kernel_screen import KernelScreen

        self.app.push_screen(KernelScreen(self.profile))

    def action_capture(self) -> None:
        from livecd_tui.tui.capture_screen import CaptureScreen

        self.app.push_screen(CaptureScreen(self.profile, self.app.work_dir))

    #: Keys that belong to one menu: they show (and work) only while the cursor is in it.
    MENU_ACTIONS: ClassVar[dict[str, str]] = {"kernel": "kernel", "capture": "system"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The kernel check belongs to the Kernel menu, the preview to the System menu:
        their keys show there."""
        menu = self.MENU_ACTIONS.get(action)
        if menu is not None:
            key = self.menu_tree.current_key if self.is_mounted else None
            return bool(key and (key == menu or key.startswith(menu + ".")))
        return True

    def action_plan(self) -> None:
        self.app.show_plan()

    def action_build(self) -> None:
        self.app.show_build()

    def action_quit(self) -> None:
        self.app.quit_safely()
