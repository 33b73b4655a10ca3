"""The livecd-tui application: one profile, its editor, its build screen.

The app owns the profile and whether it has unsaved changes; screens read them from here
and tell the app when they change something. Saving, opening and quitting live here because
every screen reaches them.

Nothing is lost with the terminal: unsaved edits are kept in a recovery file (offered back on
the next start), builds run in the background and are followed again when the app opens the
same profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.command import CommandPalette
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget

from livecd_tui.profile import Profile
from livecd_tui.tui import glyphs, recovery
from livecd_tui.tui.dialogs import ConfirmScreen, OpenProfileScreen, PathScreen
from livecd_tui.tui.editor_screen import EditorScreen

if TYPE_CHECKING:
    from textual.timer import Timer

    from livecd_tui.engine import Stage
    from livecd_tui.tui.build_screen import BuildScreen

#: Seconds after an edit before it is written to the recovery file (edits in a burst: once).
KEEP_EDITS_AFTER = 0.5
#: Seconds a hung-up app may take to exit before it is made to.
HANGUP_EXIT_GRACE = 10.0


class LiveCDApp(App[None]):
    """Edit a profile menuconfig-style and build it, stage by stage."""

    CSS_PATH = "app.tcss"
    TITLE = "livecd-tui"

    #: The profile being edited; replaced as a whole when another one is opened.
    profile: reactive[Profile] = reactive(Profile({}, {}), always_update=True, init=False)
    #: Whether the profile differs from its file.
    dirty: reactive[bool] = reactive(False)

    def __init__(
        self,
        profile: Profile,
        work_dir: Path | None = None,
        stages: Sequence[Stage] | None = None,
        clock: Callable[[], float] = time.monotonic,
        detach: bool | None = None,
        ascii: bool | None = None,
    ) -> None:
        """``stages`` and ``clock`` default to the real ones; tests and screenshots pass
        small stages and a fixed clock so every picture comes out the same. ``detach``:
        builds run as background processes (by default with the real stages, which are
        the only ones ``livecd-tui build`` runs), else inside the app. ``ascii``: draw
        ASCII only (see :mod:`glyphs`); by default as the terminal and locale ask when the
        app runs as the program, else not."""
        super().__init__()
        #: Whether the app draws ASCII only (decided at the latest when it runs).
        self.ascii: bool | None = None
        if ascii is not None:
            self._use_ascii(ascii)
        self.set_reactive(LiveCDApp.profile, profile)
        self.work_dir = work_dir
        self.clock = clock
        self._stages = list(stages) if stages is not None else None
        self.detach = stages is None if detach is None else detach
        self._saved_text = profile.to_toml()
        self._build_screen: BuildScreen | None = None
        #: The recovery file last written, and the timer that writes the next one.
        self._kept: Path | None = None
        self._keep_timer: Timer | None = None
        #: Whether the app is the program (``run``), not a test's (``run_test``).
        self._own_process = False
        #: Textual's own glyphs set to ASCII while the app runs (ASCII mode).
        self._ascii_textual: contextlib.AbstractContextManager[None] | None = None

    def _use_ascii(self, ascii: bool) -> None:
        self.ascii = ascii
        if ascii:
            self.css_path = [*self.css_path, glyphs.CSS]
            self.driver_class = glyphs.AsciiDriver

    def on_load(self) -> None:
        if self.ascii is None:
            self.ascii = False
        if self.ascii:
            self._ascii_textual = glyphs.textual_in_ascii()
            self._ascii_textual.__enter__()

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header's title, with an ASCII separator in ASCII mode."""
        if not self.ascii:
            return super().format_title(title, sub_title)
        return (
            Content.assemble(title, (" - ", "dim"), Content(sub_title).stylize("dim"))
            if sub_title
            else Content(title)
        )

    def action_command_palette(self) -> None:
        """Textual's command palette; with an ASCII icon in ASCII mode."""
        if not self.ascii:
            super().action_command_palette()
        elif self.use_command_palette and not isinstance(self.screen, CommandPalette):
            self.push_screen(glyphs.AsciiCommandPalette())

    def get_loading_widget(self) -> Widget:
        """Textual's loading indicator; one without its dots in ASCII mode."""
        return glyphs.AsciiLoadingIndicator() if self.ascii else super().get_loading_widget()

    def on_mount(self) -> None:
        self._show_title()
        self.push_screen(EditorScreen())
        if self.detach and self._build_holds_work_dir():
            self.show_build()  # a build runs in the background: show it again
        self._offer_recovery()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hung_up)

    def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._ascii_textual is not None:
            self._ascii_textual.__exit__(None, None, None)
            self._ascii_textual = None

    def _build_holds_work_dir(self) -> bool:
        from livecd_tui.build import Build
        from livecd_tui.workdir import read_lock

        holder = read_lock(Build.for_profile(self.profile, self.work_dir).work)
        return holder is not None and holder.pid != os.getpid()

    def _hung_up(self) -> None:
        """The terminal went away (SSH dropped): keep the edits, leave a background build
        running, stop one running inside the app, and go."""
        if self.dirty:
            with contextlib.suppress(OSError):
                self._kept = recovery.keep(self.profile)
        if self._build_screen is not None:
            self._build_screen.hang_up()
        if self._own_process:
            # Exiting draws on a terminal that is gone: make sure the process ends anyway.
            timer = threading.Timer(HANGUP_EXIT_GRACE, os._exit, (129,))
            timer.daemon = True
            timer.start()
        self.exit(return_code=129)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run in a terminal, as the program (the process is the app's to end)."""
        self._own_process = not kwargs.get("headless", False)
        if self.ascii is None:
            self._use_ascii(self._own_process and glyphs.ascii_wanted())
        return super().run(*args, **kwargs)

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
        """Recompute whether the profile has unsaved changes (after any edit), and keep
        them in the recovery file shortly after (or drop it when there are none)."""
        self.dirty = self.profile.to_toml() != self._saved_text
        if self._keep_timer is not None:
            self._keep_timer.stop()
            self._keep_timer = None
        if self.dirty:
            self._keep_timer = self.set_timer(KEEP_EDITS_AFTER, self._keep_edits)
        else:
            self._forget_edits()

    def _keep_edits(self) -> None:
        self._keep_timer = None
        if not self.dirty:
            return
        try:
            kept = recovery.keep(self.profile)
        except OSError as err:
            self.notify(f"Unsaved edits cannot be kept for a restart: {err}", severity="warning")
            return
        if self._kept is not None and self._kept != kept:
            recovery.forget(self._kept)  # saved under another name since
        self._kept = kept

    def _forget_edits(self) -> None:
        """No unsaved edits to keep (saved, discarded, or a clean quit)."""
        if self._keep_timer is not None:
            self._keep_timer.stop()
            self._keep_timer = None
        for path in {self._kept, recovery.recovery_path(self.profile.path)}:
            if path is not None:
                with contextlib.suppress(OSError):
                    recovery.forget(path)
        self._kept = None

    def _offer_recovery(self) -> None:
        """Offer back the edits a previous app kept for this profile (restore/discard)."""
        found = recovery.recovered(self.profile)
        if found is None:
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.kept_at))
        shown = found.changes[:6] + (
            [f"... and {len(found.changes) - 6} more"] if len(found.changes) > 6 else []
        )
        refused = ("\nNot taken back: " + "; ".join(found.refused[:3])) if found.refused else ""
        where = self.profile.path or "the new profile"
        question = (
            f"Unsaved edits of {where} were kept at {when} (the app lost its "
            "terminal or was killed):\n  " + "\n  ".join(shown) + refused + "\nRestore them?"
        )

        def answered(answer: str | None) -> None:
            if answer == "restore":
                self.profile.values.clear()
                self.profile.values.update(found.values)
                self.editor.values_replaced()
                self.note_change()
                self.notify("Edits restored (not saved yet: s saves them)", timeout=5)
            elif answer == "discard":
                recovery.forget(found.path)

        self.push_screen(
            ConfirmScreen(question, [("restore", "Restore", "r"), ("discard", "Discard", "d")]),
            answered,
        )

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

    @property
    def following(self) -> bool:
        """Whether the running build is a background process (it outlives the app)."""
        return self.building and self._build_screen is not None and self._build_screen.following

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

                self.push_screen(
                    ConfirmScreen(
                        f"{path} exists. Replace it?",
                        [("yes", "Replace", "y"), ("cancel", "No", "n")],
                    ),
                    answered,
                )
                return
            self._save(path)

        initial = str(self.profile.path or "profiles/my-profile.toml")
        self.push_screen(PathScreen("Save profile as", initial), chosen)

    def open_other_profile(self) -> None:
        def opened(profile: Profile | None) -> None:
            if profile is not None:
                self._forget_build_screen()
                self._forget_edits()
                self.profile = profile
                self.notify(f"Opened {profile.path}", timeout=3)
                if self.detach and self._build_holds_work_dir():
                    self.show_build()
                self._offer_recovery()

        self._unless_building(
            "open another profile",
            lambda: self._unless_unsaved(
                "open another profile", lambda: self.push_screen(OpenProfileScreen(), opened)
            ),
        )

    def _unless_building(self, doing: str, then: Callable[[], object]) -> None:
        """Run ``then``, first asking what becomes of a running build: one in the
        background can go on (the default) or be stopped; one inside the app (step mode)
        stops with it."""
        screen = self._build_screen
        if screen is None or not self.building:
            then()
            return
        if screen.following:

            def background(answer: str | None) -> None:
                if answer == "leave":
                    then()  # the screen lets go of the build when the app quits or forgets it
                elif answer == "stop":
                    self.notify("Stopping the build...", timeout=3)
                    screen.stop_build(then)

            pid = f" (pid {screen.follow_pid})" if screen.follow_pid else ""
            self.push_screen(
                ConfirmScreen(
                    f"A build is running in the background{pid}. Leave it running (it goes on "
                    f"without the app; open this profile again to see it), or stop it, before "
                    f"you {doing}?",
                    [
                        ("leave", "Leave it running", "l"),
                        ("stop", "Stop it", "s"),
                        ("cancel", "Cancel", "c"),
                    ],
                ),
                background,
            )
            return

        def inside(answer: str | None) -> None:
            if answer == "stop":
                screen.stop_build()
                then()

        self.push_screen(
            ConfirmScreen(
                f"A build is running inside the app (step mode). Stop it and {doing}?",
                [("stop", "Stop it", "y"), ("cancel", "Keep building", "n")],
            ),
            inside,
        )

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
        self.push_screen(
            ConfirmScreen(
                f"{where} has unsaved changes. Save them before you {doing}?",
                [("save", "Save", "s"), ("discard", "Discard", "d"), ("cancel", "Cancel", "c")],
            ),
            answered,
        )

    def quit_safely(self) -> None:
        """Quit, asking first about a running build and unsaved changes."""

        def leave() -> None:
            self._forget_edits()  # a clean quit: saved or discarded
            if self._build_screen is not None:
                self._build_screen.unfollow()
            self.exit()

        self._unless_building("quit", lambda: self._unless_unsaved("quit", leave))

    # -- other screens -------------------------------------------------------------------
    def show_build(self) -> None:
        from livecd_tui.tui.build_screen import BuildScreen

        if self._build_screen is None:
            try:
                self._build_screen = BuildScreen(self.stages, detach=self.detach)
            except ImportError as err:
                self.notify(f"The stages cannot be loaded: {err}", severity="error")
                return
            self.install_screen(self._build_screen, "build")
        self.push_screen("build")

    def _forget_build_screen(self) -> None:
        if self._build_screen is not None:
            self._build_screen.retire()
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
            yield SystemCommand(
                binding.description,
                binding.tooltip or f"key: {binding.key}",
                partial(self.call_later, self.run_action, binding.action, active.node),
            )
