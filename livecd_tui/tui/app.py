"""The livecd-tui application: one profile, its editor, its build screen.

The app owns the profile and whether it has unsaved changes; screens read them from here
and tell the app when they change something. Saving, opening and quitting live here because
every screen reaches them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.reactive import reactive
from textual.screen import Screen

from livecd_tui.profile import Profile
from livecd_tui.tui.dialogs import ConfirmScreen, OpenProfileScreen, PathScreen
from livecd_tui.tui.editor_screen import EditorScreen

if TYPE_CHECKING:
    from livecd_tui.engine import Stage
    from livecd_tui.tui.build_screen import BuildScreen


class LiveCDApp(App[None]):
    """Edit a profile menuconfig-style and build it, stage by stage."""

    CSS_PATH = "app.tcss"
    TITLE = "livecd-tui"

    #: The profile being edited; replaced as a whole when another one is opened.
    profile: reactive[Profile] = reactive(Profile({}, {}), always_update=True, init=False)
    #: Whether the profile differs from its file.
    dirty: reactive[bool] = reactive(False)

    def __init__(self, profile: Profile, work_dir: Path | None = None,
                 stages: Sequence[Stage] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``stages`` and ``clock`` default to the real ones; tests and screenshots pass
        small stages and a fixed clock so every picture comes out the same."""
        super().__init__()
        self.set_reactive(LiveCDApp.profile, profile)
        self.work_dir = work_dir
        self.clock = clock
        self._stages = list(stages) if stages is not None else None
        self._saved_text = profile.to_toml()
        self._build_screen: BuildScreen | None = None

    def on_mount(self) -> None:
        self._show_title()
        self.push_screen(EditorScreen())

    # -- state -------------------------------------------------------------------------
    @property
    def stages(self) -> list[Stage]:
        """The stages the build screen and the plan show (the real ones by default)."""
        if self._stages is None:
            from livecd_tui.stages import STAGES

            self._stages = list(STAGES)
        return self._stages

    @property
    def editor(self) -> EditorScreen:
        return next(s for s in self.screen_stack if isinstance(s, EditorScreen))

    def note_change(self) -> None:
        """Recompute whether the profile has unsaved changes (after any edit)."""
        self.dirty = self.profile.to_toml() != self._saved_text

    def watch_dirty(self) -> None:
        self._show_title()

    def watch_profile(self) -> None:
        self._saved_text = self.profile.to_toml()
        self.dirty = False
        self._show_title()

    def _show_title(self) -> None:
        where = str(self.profile.path) if self.profile.path else "(new profile)"
        self.sub_title = where + (" [+] unsaved" if self.dirty else "")

    @property
    def building(self) -> bool:
        return self._build_screen is not None and self._build_screen.running

    # -- profile files -------------------------------------------------------------------
    def save_profile(self) -> None:
        if self.profile.path is None:
            self.save_profile_as()
            return
        self._save(self.profile.path)

    def _save(self, path: Path) -> bool:
        try:
            saved = self.profile.save(path)
        except OSError as err:
            self.notify(str(err), title="Not saved", severity="error")
            return False
        self._saved_text = self.profile.to_toml()
        self.note_change()
        self._show_title()
        self.notify(f"Saved {saved}", timeout=3)
        return True

    def save_profile_as(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.exists() and path.resolve() != (self.profile.path or Path()).resolve():
                def answered(answer: str | None) -> None:
                    if answer == "yes":
                        self._save(path)

                self.push_screen(ConfirmScreen(f"{path} exists. Replace it?",
                                               [("yes", "Replace", "y"), ("cancel", "No", "n")]),
                                 answered)
                return
            self._save(path)

        initial = str(self.profile.path or "profiles/my-profile.toml")
        self.push_screen(PathScreen("Save profile as", initial), chosen)

    def open_other_profile(self) -> None:
        if self.building:
            self.notify("Stop the build before opening another profile", severity="warning")
            return

        def opened(profile: Profile | None) -> None:
            if profile is not None:
                self._forget_build_screen()
                self.profile = profile
                self.notify(f"Opened {profile.path}", timeout=3)

        self._unless_unsaved("open another profile",
                             lambda: self.push_screen(OpenProfileScreen(), opened))

    def _unless_unsaved(self, doing: str, then: Callable[[], object]) -> None:
        """Run ``then``, first asking whether to save when there are unsaved changes."""
        if not self.dirty:
            then()
            return

        def answered(answer: str | None) -> None:
            if answer == "save":
                if self.profile.path is not None and self._save(self.profile.path):
                    then()
                elif self.profile.path is None:
                    self.save_profile_as()
            elif answer == "discard":
                then()

        where = self.profile.path or "the new profile"
        self.push_screen(ConfirmScreen(
            f"{where} has unsaved changes. Save them before you {doing}?",
            [("save", "Save", "s"), ("discard", "Discard", "d"), ("cancel", "Cancel", "c")]),
            answered)

    def quit_safely(self) -> None:
        """Quit, asking first about unsaved changes and a running build."""
        def leave() -> None:
            if self._build_screen is not None:
                self._build_screen.stop_build()
            self.exit()

        if self.building:
            def answered(answer: str | None) -> None:
                if answer == "stop":
                    self._unless_unsaved("quit", leave)

            self.push_screen(ConfirmScreen("A build is running. Stop it and quit?",
                                           [("stop", "Stop and quit", "y"),
                                            ("cancel", "Keep building", "n")]), answered)
            return
        self._unless_unsaved("quit", leave)

    # -- other screens -------------------------------------------------------------------
    def show_build(self) -> None:
        from livecd_tui.tui.build_screen import BuildScreen

        if self._build_screen is None:
            try:
                self._build_screen = BuildScreen(self.stages)
            except ImportError as err:
                self.notify(f"The stages cannot be loaded: {err}", severity="error")
                return
            self.install_screen(self._build_screen, "build")
        self.push_screen("build")

    def _forget_build_screen(self) -> None:
        if self._build_screen is not None:
            self.uninstall_screen("build")
            self._build_screen = None

    def show_checks(self) -> None:
        from livecd_tui.tui.check_screen import CheckScreen

        self.push_screen(CheckScreen(self.profile), self._jump_if_chosen)

    def show_plan(self) -> None:
        from livecd_tui.tui.plan_screen import PlanScreen

        try:
            stages = self.stages
        except ImportError as err:
            self.notify(f"The stages cannot be loaded: {err}", severity="error")
            return
        self.push_screen(PlanScreen(self.profile, stages, self.work_dir))

    def _jump_if_chosen(self, key: str | None) -> None:
        if key:
            self.jump_to_option(key)

    def jump_to_option(self, key: str) -> None:
        """Back to the editor (over any screens above it) with the cursor on ``key``."""
        while not isinstance(self.screen, EditorScreen) and len(self.screen_stack) > 1:
            self.pop_screen()
        self.call_after_refresh(self.editor.jump_to, key)

    # -- command palette -----------------------------------------------------------------
    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette lists every key of the current screen, by its description."""
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in seen or not active.enabled:
                continue
            seen.add(binding.action)
            yield SystemCommand(binding.description,
                                binding.tooltip or f"key: {binding.key}",
                                partial(self.call_later, self.run_action, binding.action,
                                        active.node))
