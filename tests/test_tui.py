"""The TUI driven through Textual's pilot at 80x24: the editor, its dialogs, the build screen.

Build tests use small real stages (echo, sh, sleep) so they run in milliseconds; the real
``preflight`` stage is streamed when the stages can be imported.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList

from livecd_tui import runner, workdir
from livecd_tui.checks import CheckItem, CheckReport
from livecd_tui.engine import Stage, StepContext
from livecd_tui.options import OPTIONS
from livecd_tui.profile import Profile, load_profile
from livecd_tui.steps import Action, Step, command
from livecd_tui.terminal import printable
from livecd_tui.tui import recovery
from livecd_tui.tui.app import LiveCDApp
from livecd_tui.tui.build_screen import BuildScreen, format_duration
from livecd_tui.tui.describe import check_value, option_label, search, value_text
from livecd_tui.tui.detached import build_args, snapshot_profile
from livecd_tui.tui.dialogs import ConfirmScreen, HelpScreen, SearchScreen
from livecd_tui.tui.editor_screen import EditorScreen
from livecd_tui.tui.editors import ChoiceEditor, ListEditor, ValueEditor
from livecd_tui.tui.stage_pane import MAX_LINES, boot_progress, parse_progress
from livecd_tui.tui.tree import MenuTree

ROOT = Path(__file__).resolve().parent.parent
SIZE = (80, 24)


def pilot_test(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot test in its own event loop (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def fixed_clock() -> float:
    return 1000.0


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    """A copy of the demo profile, loaded by a path relative to a fresh current dir."""
    shutil.copy(ROOT / "profiles" / "demo.toml", tmp_path / "demo.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # recovery files
    return load_profile(Path("demo.toml"))


def make_app(profile: Profile, stages: list[Stage] | None = None, **kwargs: object) -> LiveCDApp:
    return LiveCDApp(
        profile, work_dir=Path("work").resolve(), stages=stages or [], clock=fixed_clock, **kwargs
    )  # type: ignore[arg-type]


def tree_of(app: LiveCDApp) -> MenuTree:
    return app.screen.query_one(MenuTree)


async def go_to(pilot, app: LiveCDApp, key: str) -> None:  # type: ignore[no-untyped-def]
    """Put the editor's cursor on ``key`` the way search does."""
    editor = app.screen
    assert isinstance(editor, EditorScreen)
    editor.jump_to(key)
    # The cursor moves after the tree's next refresh: under load that is a few frames away.
    for _ in range(100):
        await pilot.pause()
        if tree_of(app).current_key == key:
            break
        await pilot.pause(0.02)
    assert tree_of(app).current_key == key


# -- words ---------------------------------------------------------------------------------
def test_value_text_menuconfig_style() -> None:
    assert value_text(OPTIONS["kernel.drivers.disk"], True) == "[*]"
    assert value_text(OPTIONS["kernel.drivers.disk"], False) == "[ ]"
    assert value_text(OPTIONS["kernel.source"], "tree") == "<tree>"
    assert value_text(OPTIONS["initrd.wait"], 10) == "(10)"
    assert value_text(OPTIONS["system.dirs"], ["bin", "usr"]) == "(bin, usr)"
    assert value_text(OPTIONS["kernel.image"], "/x" * 40).endswith("...)")


def test_labels_mark_changed_and_invalid(demo: Profile) -> None:
    assert option_label(OPTIONS["system.source"], demo, None).plain.startswith("+ <busybox>")
    assert option_label(OPTIONS["iso.tool"], demo, None).plain.startswith("  <xorriso>")
    assert option_label(OPTIONS["iso.tool"], demo, "bad").plain.startswith("! ")
    assert option_label(OPTIONS["kernel.tree"], demo, None).plain.startswith("- ")


def test_check_value_never_changes_the_profile(demo: Profile) -> None:
    assert "above the maximum" in (check_value(demo, "initrd.wait", 100000) or "")
    assert check_value(demo, "initrd.wait", 20) is None
    assert demo.values["initrd.wait"] == 10


def test_search_finds_hidden_options_with_the_reason(demo: Profile) -> None:
    matches = search("source tree", demo)
    assert matches[0].key == "kernel.tree"
    assert matches[0].hidden and 'kernel.source is "tree"' in matches[0].hidden
    assert search("   ", demo) == []


def test_progress_and_durations() -> None:
    assert parse_progress("[=======/        ]  120/400  30%") == 30
    assert parse_progress("xorriso : UPDATE :  45.5% done") == 45.5
    assert parse_progress("compiling foo.c") is None
    assert boot_progress("SeaBIOS (version 1.16)") == (0.2, "firmware")
    assert boot_progress("Run /init as init process") == (0.8, "initrd")
    assert boot_progress("random kernel chatter") is None
    assert format_duration(4.25) == "4.2s"
    assert format_duration(62) == "1m02s"
    assert format_duration(3720) == "1h02m"


def test_control_sequences_never_reach_the_terminal() -> None:
    # GRUB on a serial console: a terminal reset, colours, cursor moves, a title.
    assert printable("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (1.16)") == "SeaBIOS (1.16)"
    assert printable("\x1b[0;30;47mWe\x1b[09;02Hlcome\x1b]0;title\x07!\x07") == "Welcome!"
    assert printable("a\tb") == "a       b"
    assert printable("plain line") == "plain line"


def test_core_does_not_import_textual() -> None:
    code = (
        "import sys, livecd_tui.options, livecd_tui.profile, livecd_tui.engine, "
        "livecd_tui.build, livecd_tui.steps, livecd_tui.cli\n"
        "assert not [m for m in sys.modules if m.startswith('textual')], 'textual!'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if "cannot import name" in result.stderr:
        pytest.skip("some core module is still being written: " + result.stderr[-200:])
    assert result.returncode == 0, result.stderr


# -- the editor ----------------------------------------------------------------------------
@pilot_test
async def test_tree_moves_opens_and_goes_back(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        tree = tree_of(app)
        assert tree.current_key == "kernel"
        await pilot.press("j", "j")
        assert tree.current_key == "system"
        await pilot.press("k", "up", "enter")
        await pilot.pause()
        assert tree.current_key == "kernel.drivers"
        await pilot.press("right")
        await pilot.pause()
        assert tree.current_key == "kernel.drivers.preset"
        await pilot.press("escape")
        assert tree.current_key == "kernel.drivers"
        await pilot.press("left")
        assert tree.current_key == "kernel"
        assert not tree.cursor_node.is_expanded  # type: ignore[union-attr]
        assert "demo.toml" in app.sub_title and "unsaved" not in app.sub_title


@pilot_test
async def test_space_toggles_bool_and_marks_unsaved(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "kernel.drivers.network")
        await pilot.press("space")
        assert demo.values["kernel.drivers.network"] is True
        assert app.dirty and "unsaved" in app.sub_title
        assert str(tree_of(app).cursor_node.label).startswith("+ [*]")  # type: ignore[union-attr]
        await pilot.press("enter")  # Enter toggles a bool too
        assert demo.values["kernel.drivers.network"] is False
        assert not app.dirty


@pilot_test
async def test_space_cycles_choice_and_shows_dependents(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "kernel.source")
        assert "kernel.tree" not in tree_of(app)._by_key
        await pilot.press("space")
        await pilot.pause()
        assert demo.values["kernel.source"] == "tree"
        assert "kernel.tree" in tree_of(app)._by_key
        assert "kernel.image" not in tree_of(app)._by_key
        assert tree_of(app).current_key == "kernel.source"


@pilot_test
async def test_hidden_options_are_shown_greyed_on_z(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("z")
        await pilot.pause()
        node = tree_of(app)._by_key["kernel.tree"]
        assert str(node.label).startswith("- (/usr/src/linux)")
        await pilot.press("z")
        await pilot.pause()
        assert "kernel.tree" not in tree_of(app)._by_key


@pilot_test
async def test_edit_string_value(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.title")
        await pilot.press("enter")
        assert isinstance(app.screen, ValueEditor)
        app.screen.query_one(Input).value = ""
        await pilot.press(*"My CD", "enter")
        await pilot.pause()
        assert demo.values["bootloader.title"] == "My CD"
        assert isinstance(app.screen, EditorScreen)


@pilot_test
async def test_edit_int_refuses_out_of_range_and_changes_nothing(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.timeout")
        await pilot.press("enter", "backspace", *"9999")
        await pilot.pause()
        hint = str(app.screen.query_one("#reason").render())
        assert "above the maximum 3600" in hint
        await pilot.press("enter")
        assert isinstance(app.screen, ValueEditor), "an invalid value must not close the editor"
        await pilot.press("escape")
        assert demo.values["bootloader.timeout"] == 1
        assert not app.dirty
        await pilot.press("enter", "backspace", "7", "enter")
        assert demo.values["bootloader.timeout"] == 7


@pilot_test
async def test_edit_path_refuses_missing_file(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "kernel.config")
        await pilot.press("enter", *"/no/such/config", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ValueEditor)
        assert "does not exist" in str(app.screen.query_one("#reason").render())
        await pilot.press("escape")
        Path("my.config").write_text("CONFIG_X=y\n")
        await pilot.press("enter", *"my.config", "enter")
        assert demo.values["kernel.config"] == "my.config"


@pilot_test
async def test_choice_editor_selects(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "iso.tool")
        await pilot.press("enter")
        assert isinstance(app.screen, ChoiceEditor)
        await pilot.press("down", "enter")
        assert demo.values["iso.tool"] == "genisoimage"


@pilot_test
async def test_list_editor_adds_removes_and_refuses(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.entries")
        await pilot.press("enter")
        assert isinstance(app.screen, ListEditor)
        await pilot.press(*"bogus", "enter")
        assert "not one of" in str(app.screen.query_one("#reason").render())
        assert app.screen.items == ["normal", "toram", "debug"]
        app.screen.query_one(Input).value = ""
        app.screen.query_one(OptionList).focus()
        await pilot.press("down", "delete")  # remove "toram"
        assert app.screen.items == ["normal", "debug"]
        await pilot.press("shift+up")  # "debug" becomes the first, the default entry
        assert app.screen.items == ["debug", "normal"]
        await pilot.press("escape")
        assert demo.values["bootloader.entries"] == ["debug", "normal"]

        await go_to(pilot, app, "system.excludes")
        await pilot.press("enter", *"usr/share/doc", "enter", "escape")
        assert demo.values["system.excludes"] == ["usr/share/doc"]


@pilot_test
async def test_search_jumps_to_a_hidden_option_and_says_why(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*"make jobs")
        results = app.screen.query_one("#results", OptionList)
        assert results.option_count >= 1
        assert "hidden:" in str(results.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await pilot.pause()
        tree = tree_of(app)
        assert tree.show_hidden
        assert tree.current_key == "kernel.jobs"
        assert any("hidden" in n.message for n in app._notifications)


@pilot_test
async def test_help_names_key_default_and_dependencies(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.serial")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        assert "TOML key:  bootloader.serial" in text
        assert "Default:   true" in text
        assert "Shows:     bootloader.serial_speed" in text
        await pilot.press("escape")
        await go_to(pilot, app, "bootloader.serial_speed")
        await pilot.press("question_mark")
        assert "Depends on: bootloader.serial is true (met)" in app.screen.text  # type: ignore[attr-defined]
        await pilot.press("escape")
        panel = str(app.screen.query_one("#help").render())
        assert "bootloader.serial_speed" in panel and "Baud rate" in panel


@pilot_test
async def test_save_then_reload_gives_the_same_profile(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "kernel.drivers.sound")
        await pilot.press("space")
        await go_to(pilot, app, "initrd.compression")
        await pilot.press("space")
        await pilot.press("s")
        assert not app.dirty and "unsaved" not in app.sub_title
    again = load_profile(Path("demo.toml"))
    assert again.values == demo.values
    assert again.values["initrd.compression"] == "xz"


@pilot_test
async def test_save_as_writes_a_new_file(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("S")
        app.screen.query_one(Input).value = "other.toml"
        await pilot.press("enter")
        await pilot.pause()
        assert demo.path == Path("other.toml")
        assert load_profile(Path("other.toml")).values == demo.values
        assert "other.toml" in app.sub_title


@pilot_test
async def test_quit_asks_before_losing_changes(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "iso.checksum")
        await pilot.press("space", "q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("c")  # cancel: still here, still changed
        assert isinstance(app.screen, EditorScreen) and app.dirty
        await pilot.press("q", "s")  # save and quit
        await pilot.pause()
    assert app.return_code == 0
    assert load_profile(Path("demo.toml")).values["iso.checksum"] is False


@pilot_test
async def test_quit_discarding_changes(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "iso.checksum")
        await pilot.press("space", "q", "d")
        await pilot.pause()
    assert load_profile(Path("demo.toml")).values["iso.checksum"] is True


@pilot_test
async def test_open_another_profile(demo: Profile) -> None:
    shutil.copy(ROOT / "profiles" / "classic.toml", "classic.toml")
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("o")
        app.screen.query_one("#open-path", Input).focus()
        app.screen.query_one("#open-path", Input).value = "nowhere.toml"
        await pilot.press("enter")
        assert "nowhere.toml: does not exist" in str(app.screen.query_one("#open-problem").render())
        app.screen.query_one("#open-path", Input).value = "classic.toml"
        await pilot.press("enter")
        await pilot.pause()
        assert app.profile.path == Path("classic.toml")
        assert tree_of(app).profile is app.profile


@pilot_test
async def test_command_palette_lists_the_screen_keys(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE):
        names = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Save", "Search", "Help", "Build", "Quit", "Check"} <= names


@pilot_test
async def test_check_panel_jumps_to_the_option(demo: Profile) -> None:
    def checker(profile: Profile) -> CheckReport:
        return CheckReport(
            [
                CheckItem("profile", True, "no problems"),
                CheckItem("tool", False, "xorriso missing", "iso.tool"),
            ]
        )

    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        from livecd_tui.tui.check_screen import CheckScreen

        app.push_screen(CheckScreen(demo, checker), app._jump_if_chosen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        findings = app.screen.query_one("#findings", OptionList)
        assert "1 problem" in str(findings.get_option_at_index(0).prompt)
        await pilot.press("down", "enter")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen)
        assert tree_of(app).current_key == "iso.tool"


@pilot_test
async def test_check_panel_notes_an_unused_setting_and_goes_to_it(demo: Profile) -> None:
    demo.set("kernel.tree", "/tmp")  # set, but the demo's kernel is prebuilt
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        from livecd_tui.checks import run_checks
        from livecd_tui.tui.check_screen import CheckScreen

        app.push_screen(
            CheckScreen(demo, lambda p: run_checks(p, with_kernel=False)), app._jump_if_chosen
        )
        await app.workers.wait_for_complete()
        await pilot.pause()
        findings = app.screen.query_one("#findings", OptionList)
        prompts = [
            str(findings.get_option_at_index(i).prompt) for i in range(findings.option_count)
        ]
        note = next(i for i, p in enumerate(prompts) if "is not used" in p)
        assert prompts[note].startswith("i  kernel.tree = ") and "-> kernel.tree" in prompts[note]
        assert 'applies only when kernel.source is "tree"' in prompts[note]
        findings.highlighted = note
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen)
        assert tree_of(app).current_key == "kernel.tree"


# -- plan and build ------------------------------------------------------------------------
def echo_stages(flag: Path | None = None) -> list[Stage]:
    """Three real little stages; the second fails until bootloader.timeout is above 3."""

    def first(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["sh", "-c", "for i in 1 2 3; do echo line $i; done"], "print lines")]

    def second(build) -> list[Step]:  # type: ignore[no-untyped-def]
        timeout = build.profile["bootloader.timeout"]
        return [
            command(
                ["sh", "-c", f"echo checking; test {timeout} -gt 3 || exit 3"], "check the timeout"
            )
        ]

    def third(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["echo", "the end"], "say the end")]

    return [
        Stage("first", "First", "prints lines", first),
        Stage("second", "Second", "checks the timeout", second, reads=("bootloader.timeout",)),
        Stage("third", "Third", "ends", third),
    ]


async def settle(pilot, app: LiveCDApp) -> None:  # type: ignore[no-untyped-def]
    """Wait for the build worker, then let the drain timer's work happen now."""
    await app.workers.wait_for_complete()
    screen = app.screen
    if isinstance(screen, BuildScreen):
        screen._drain()
    await pilot.pause()


@pilot_test
async def test_plan_view_and_export(demo: Profile) -> None:
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = app.screen.query_one("#plan").text  # type: ignore[attr-defined]
        assert "== second: Second" in text and "test 1 -gt 3" in text
        await pilot.press("e")
        app.screen.query_one(Input).value = "build.sh"
        await pilot.press("enter")
        await pilot.pause()
    script = Path("build.sh").read_text()
    assert script.startswith("#!/bin/bash") and "echo 'the end'" in script


@pilot_test
async def test_build_streams_a_stage(demo: Profile) -> None:
    app = make_app(demo, echo_stages()[:1])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        await pilot.press("a")
        await settle(pilot, app)
        assert screen.views["first"].status == "done"
        assert screen.pane("first").objects == 0
        log = list(screen.pane("first").output.lines)
        assert "line 1" in log and "line 3" in log
        assert "done" in str(screen.query_one(OptionList).get_option_at_index(0).prompt)
        assert screen.pane("first").bar.percentage == 1
        await pilot.press("a")  # again: up to date
        await settle(pilot, app)
        assert screen.views["first"].status == "skipped"


@pilot_test
async def test_failed_stage_shows_command_then_retry_after_changing_option(demo: Profile) -> None:
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert [v.status for v in screen.views.values()] == ["done", "failed", "pending"]
        failure = str(screen.pane("second").query_one(".pane-failure").render())
        assert "exit code 3" in failure and "$ sh -c 'echo checking; test 1 -gt 3" in failure
        assert screen.selected == "second"
        await pilot.press("e")  # jump to the option the stage reads
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen)
        assert tree_of(app).current_key == "bootloader.timeout"
        await pilot.press("enter", "backspace", "5", "enter", "b")
        assert app.screen is screen
        await pilot.press("r")
        await settle(pilot, app)
        assert [v.status for v in screen.views.values()] == ["done", "done", "done"]
        assert not screen.pane("second").has_class("-failed")


@pilot_test
async def test_skip_goes_on_after_a_failed_stage(demo: Profile) -> None:
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        await pilot.press("n")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.views["third"].status == "done"


@pilot_test
async def test_stop_kills_the_running_stage(demo: Profile) -> None:
    started = threading.Event()

    def slow(build) -> list[Step]:  # type: ignore[no-untyped-def]
        def mark(ctx: StepContext) -> None:
            started.set()

        return [Action("say it started", mark), command(["sleep", "30"], "wait a long time")]

    app = make_app(demo, [Stage("slow", "Slow", "sleeps", slow)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        assert await asyncio.to_thread(started.wait, 10)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.running
        await pilot.press("x")
        await settle(pilot, app)
        assert screen.views["slow"].status == "interrupted"
        assert not screen.running
        assert any("stopped by the user" in line for line in screen.pane("slow").output.lines)
        assert "stopped" in str(screen.query_one(OptionList).get_option_at_index(0).prompt)


@pilot_test
async def test_build_refuses_a_profile_with_problems(demo: Profile) -> None:
    demo.values["kernel.image"] = "/no/such/vmlinuz"  # as if the file vanished after loading
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.views["first"].status == "pending"
        assert any("Fix the profile first" in (n.title or "") for n in app._notifications)


@pilot_test
async def test_real_preflight_stage_streams(demo: Profile) -> None:
    try:
        from livecd_tui.stages import preflight
    except ImportError as err:
        pytest.skip(f"stages not importable yet: {err}")
    app = make_app(demo, [preflight.STAGE])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.views["preflight"].status in ("done", "failed")
        lines = list(screen.pane("preflight").output.lines)
        assert any("busybox" in line for line in lines)


@pilot_test
async def test_a_stage_that_cannot_be_planned_says_so_in_its_pane(demo: Profile) -> None:
    def broken(build) -> list[Step]:  # type: ignore[no-untyped-def]
        raise RuntimeError("no plan today")

    app = make_app(demo, [*echo_stages()[:1], Stage("broken", "Broken", "cannot plan", broken)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        # Every stage is planned before the first runs: nothing ran.
        assert screen.views["first"].status != "done"
        assert screen.selected == "broken"
        assert any("no plan today" in line for line in screen.pane("broken").output.unwrapped)
        assert any(n.title == "The build stopped" for n in app._notifications)
        assert not screen.running


async def until(pilot, app: LiveCDApp, condition: Callable[[], bool]) -> None:  # type: ignore[no-untyped-def]
    """Drain the build screen's events until ``condition`` holds (a condition wait with a
    deadline, for states only a running build thread can reach)."""
    for _ in range(1000):
        screen = app.screen
        if isinstance(screen, BuildScreen):
            screen._drain()
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition not reached in 10 s")


@pilot_test
async def test_step_mode_waits_before_each_step(demo: Profile) -> None:
    def two(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["echo", "one"], "say one"), command(["echo", "two"], "say two")]

    app = make_app(demo, [Stage("two", "Two", "two steps", two)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "s")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        await until(pilot, app, lambda: screen.waiting == "two")
        lines = list(screen.pane("two").output.lines)
        assert lines[-1] == "$ echo one" and "one" not in lines
        assert "waits" in screen.pane("two").status_line
        await pilot.press("space")
        await until(
            pilot,
            app,
            lambda: screen.waiting == "two" and "$ echo two" in screen.pane("two").output.lines,
        )
        assert "one" in screen.pane("two").output.lines
        await pilot.press("x")
        await settle(pilot, app)
        assert screen.views["two"].status == "interrupted"
        assert "two" not in screen.pane("two").output.lines
        assert screen.waiting is None


@pilot_test
async def test_progress_lines_move_the_bar_instead_of_filling_the_log(demo: Profile) -> None:
    script = (
        "printf '[==  ] 1/4 25%%\\r[=== ] 3/4 75%%\\r'; echo; "
        "echo '  CC      init/main.o'; echo '  CC [M]  fs/x.o'; exec sleep 30"
    )

    def squash(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["sh", "-c", script], "pack")]

    app = make_app(demo, [Stage("squash", "Squash", "packs", squash)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        pane = screen.pane("squash")
        await until(pilot, app, lambda: pane.objects == 2)
        assert pane.bar.progress == pytest.approx(0.75)
        assert not any("%" in line for line in pane.output.unwrapped if not line.startswith("$"))
        assert "2 objects made" in pane.detail
        await pilot.press("x")
        await settle(pilot, app)


@pilot_test
async def test_a_flood_of_output_keeps_memory_bounded(demo: Profile) -> None:
    def flood(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["seq", "1", "50000"], "print fifty thousand lines")]

    app = make_app(demo, [Stage("flood", "Flood", "floods", flood)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        log = screen.pane("flood").output
        assert log.line_count <= MAX_LINES
        assert "50000" in log.lines[-2:]
        assert screen.views["flood"].status == "done"
        assert len(Path("work/logs/flood.log").read_text().splitlines()) > 50000


@pilot_test
async def test_build_screen_shows_what_the_work_dir_remembers(demo: Profile) -> None:
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        await settle(pilot, app)
    again = make_app(demo, echo_stages())
    async with again.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        screen = again.screen
        assert isinstance(screen, BuildScreen)
        assert [v.status for v in screen.views.values()] == ["done", "failed", "pending"]
        assert screen.pane("second").has_class("-failed")
        assert "checking" in screen.pane("second").output.lines


# -- edits kept through a lost terminal ------------------------------------------------------
@pilot_test
async def test_unsaved_edits_are_kept_and_offered_back(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "iso.checksum")
        await pilot.press("space")
        await wait_until(pilot, lambda: recovery.recovery_path(demo.path).exists())
    # The app ended without a clean quit (as when SSH drops): the edit waits on disk.
    kept = recovery.recovery_path(demo.path)
    assert kept.exists() and "checksum = false" in kept.read_text()

    again = make_app(load_profile(Path("demo.toml")))
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(again.screen, ConfirmScreen)
        assert "iso.checksum: true -> false" in again.screen.question
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(again.screen, EditorScreen)
        assert again.profile.values["iso.checksum"] is False
        assert again.dirty and "unsaved" in again.sub_title
        assert str(tree_of(again)._by_key["iso.checksum"].label).startswith("+ [ ]")
        await pilot.press("s")  # saving drops the recovery file
        await pilot.pause()
        assert not kept.exists()
    assert load_profile(Path("demo.toml")).values["iso.checksum"] is False


@pilot_test
async def test_kept_edits_can_be_discarded_and_a_clean_quit_keeps_none(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.serial")
        await pilot.press("space")
        await wait_until(pilot, lambda: recovery.recovery_path(demo.path).exists())
    again = make_app(load_profile(Path("demo.toml")))
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(again.screen, ConfirmScreen)
        await pilot.press("d")
        await pilot.pause()
        assert not recovery.recovery_path(demo.path).exists()
        assert again.profile.values["bootloader.serial"] is True and not again.dirty
        await go_to(pilot, again, "bootloader.serial")
        await pilot.press("space")
        await wait_until(pilot, lambda: recovery.recovery_path(demo.path).exists())
        await pilot.press("q", "d")  # quit, discarding: a clean quit leaves nothing behind
        await pilot.pause()
    assert not recovery.recovery_path(demo.path).exists()


@pilot_test
async def test_a_hang_up_keeps_the_edit_made_just_before(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "iso.checksum")
        await pilot.press("space")
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal went away, at once
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_code == 129
    assert "checksum = false" in recovery.recovery_path(demo.path).read_text()


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10
) -> None:
    """Let the app run until ``condition`` holds, draining a build screen's events."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        screen = pilot.app.screen
        if isinstance(screen, BuildScreen):
            screen._drain()
        await pilot.pause(0.05)


# -- detached builds -------------------------------------------------------------------------
def test_detached_build_options() -> None:
    every = ["a", "b", "c"]
    assert build_args(every, every) == []
    assert build_args(["b", "c"], every) == ["--from", "b"]
    assert build_args(["b"], every) == ["--only", "b"]
    assert build_args(["a", "c"], every) == ["--only", "a,c"]
    assert build_args(["b"], every, force=["b"]) == ["--only", "b", "--force", "b"]
    assert build_args(every, every, force_all=True) == ["--force"]


def test_snapshot_keeps_the_name_and_makes_paths_absolute(demo: Profile, tmp_path: Path) -> None:
    Path("my.config").write_text("CONFIG_X=y\n")
    demo.set("kernel.config", "my.config")
    demo.set("bootloader.title", "not saved yet")
    path = snapshot_profile(demo, tmp_path / "work")
    assert path == tmp_path / "work" / ".snapshot" / "demo.toml"
    snap = load_profile(path)
    assert snap.name == "demo" and snap.extends is None
    assert snap.values["kernel.config"] == str(tmp_path / "my.config")
    assert {k: v for k, v in snap.values.items() if k != "kernel.config"} == {
        k: v for k, v in demo.values.items() if k != "kernel.config"
    }


def need_build_tools() -> None:
    missing = [
        t
        for t in ("busybox", "mksquashfs", "xorriso", "grub-mkimage", "mformat")
        if shutil.which(t) is None
    ]
    if missing:
        pytest.skip(f"the demo build needs {', '.join(missing)}")
    try:
        import livecd_tui.stages  # noqa: F401
    except ImportError as err:
        pytest.skip(f"stages not importable: {err}")


@pytest.fixture
def tiny(demo: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    """The demo without its boot test (a build of a few seconds), saved; its default work
    dir under a fresh cache dir."""
    need_build_tools()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo.set("boottest.enabled", False)
    demo.save()
    return load_profile(Path("demo.toml"))


def real_app(profile: Profile) -> LiveCDApp:
    """The app as ``livecd-tui PROFILE`` opens it: real stages, builds in the background."""
    return LiveCDApp(profile)


@pytest.fixture
def stop_builds(tiny: Profile) -> Iterator[Path]:
    """Whatever a test leaves running in the tiny profile's work dir is stopped."""
    from livecd_tui.build import Build

    work = Build.for_profile(tiny).work
    yield work
    runner.stop(work)


@pilot_test
async def test_opening_the_app_follows_a_running_detached_build(
    tiny: Profile, stop_builds: Path
) -> None:
    work = stop_builds
    workdir.prepare_work_dir(work)  # as `livecd-tui build --detach` does
    runner.start_detached(tiny.path.resolve(), work, [])  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while workdir.running_stage(work) in (None, "preflight", "kernel"):
        assert time.monotonic() < deadline, "the build never reached the system stage"
        time.sleep(0.05)

    app = real_app(tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BuildScreen), "a running build is shown at once"
        assert screen.following and screen.running
        await wait_until(pilot, lambda: any(v.status == "running" for v in screen.views.values()))
        assert screen.views["preflight"].status in ("done", "skipped")
        name = next(n for n, v in screen.views.items() if v.status == "running")
        # The stage's earlier lines are there, from the first one on.
        first = (work / "logs" / f"{name}.log").read_text().splitlines()[0]
        await wait_until(pilot, lambda: first in screen.pane(name).output.lines)
        assert "step" in screen.pane(name).status_line
        await pilot.press("x")
        await wait_until(pilot, lambda: not screen.running, timeout=30)
        assert workdir.read_lock(work) is None
        stopped = [n for n, v in screen.views.items() if v.status == "interrupted"]
        assert len(stopped) == 1
        assert "stopped" in str(
            screen.query_one(OptionList).get_option_at_index(screen._index(stopped[0])).prompt
        )


@pilot_test
async def test_a_build_started_here_goes_on_after_quitting(
    tiny: Profile, stop_builds: Path
) -> None:
    work = stop_builds
    tiny.set("bootloader.title", "edited, not saved")  # the build uses the edits
    app = real_app(tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        await wait_until(pilot, lambda: screen.follow_pid is not None, timeout=30)
        holder = workdir.read_lock(work)
        assert holder is not None and holder.pid == screen.follow_pid != os.getpid()
        assert holder.profile == str(tiny.path.resolve())  # type: ignore[union-attr]
        # A stage over before the follower looked still shows its whole log.
        await wait_until(
            pilot,
            lambda: any(
                line.startswith("== preflight: done")
                for line in screen.pane("preflight").output.lines
            ),
        )
        # The log says "done" a moment before the state file does.
        await wait_until(pilot, lambda: screen.views["preflight"].status == "done")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Leave it running" in str(app.screen.query_one("#answer-leave", Button).label)
        await pilot.press("enter", "d")  # leave it running (the default); discard the edit
        await pilot.pause()
    assert app.return_code == 0
    # Still running, or (on a slow machine) already over; either way not stopped: the
    # status below says every stage is done.
    deadline = time.monotonic() + 120
    while workdir.read_lock(work) is not None:
        assert time.monotonic() < deadline, "the build did not finish"
        time.sleep(0.2)
    # Where a headless build of the profile puts it, under the profile's name.
    status = subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", "status", "demo.toml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"work dir {work}" in status and "no build running" in status
    assert "iso         done" in status and "interrupted" not in status, status
    assert (work / "out" / "demo.iso").is_file()
    assert "edited, not saved" in (work / "stages/bootloader/boot/grub/grub.cfg").read_text()
    assert 'title = "edited, not saved"' in (work / ".snapshot/demo.toml").read_text()


@pilot_test
async def test_quitting_can_stop_a_background_build(tiny: Profile, stop_builds: Path) -> None:
    work = stop_builds
    app = real_app(tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        await wait_until(
            pilot,
            lambda: (
                screen.follow_pid is not None
                and workdir.running_stage(work) not in (None, "preflight")
            ),
            timeout=30,
        )
        await pilot.press("q", "s")  # stop it, then quit
        await wait_until(pilot, lambda: not app.is_running, timeout=30)
    assert workdir.read_lock(work) is None
    status = subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", "status", str(work)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "interrupted" in status and "running" not in status.split("\n", 2)[2], status
