"""The TUI on the terminal a user really has: ASCII mode, small terminals, long log lines,
the finished ISO.

Pilot tests read what the app draws (the screen's text, before any terminal); the tmux test
in test_tui_tmux.py reads what reaches a real terminal under ``LANG=C TERM=linux``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from textual.widgets import Static

from livecd_tui.engine import Stage, StepContext
from livecd_tui.profile import Profile
from livecd_tui.steps import Action, Step, command
from livecd_tui.tui import glyphs
from livecd_tui.tui.app import LiveCDApp
from livecd_tui.tui.build_screen import BuildScreen, finished_iso_text
from livecd_tui.tui.dialogs import ConfirmScreen
from livecd_tui.tui.editors import ListEditor, ValueEditor
from livecd_tui.tui.stage_pane import CONTINUED, wrap_line
from tests.test_tui import SIZE, demo, echo_stages, go_to, make_app, pilot_test, settle

__all__ = ["demo"]  # the fixture, used by name

LONG_ARGV = (
    "mksquashfs /very/long/path/to/the/system/root/that/goes/on "
    "/work/stages/system/partial/system.squashfs -comp xz -noappend "
    "-wildcards -ef /work/stages/system/excludes.txt -no-progress"
)


def screen_text(app: LiveCDApp) -> str:
    """What the app draws now (the top screen over the ones below it, notifications
    included), as text: what ``export_screenshot`` draws, without the SVG."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        force_terminal=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


def non_ascii(text: str) -> set[str]:
    return {char for char in text if not char.isascii()}


# -- choosing the mode ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({"LANG": "C", "LC_ALL": "C", "TERM": "linux"}, True),
        ({"LANG": "C", "TERM": "xterm"}, True),
        ({"TERM": "xterm"}, True),  # no locale at all: C
        ({"LANG": "de_DE.ISO-8859-1", "TERM": "xterm"}, True),
        ({"LANG": "en_US.UTF-8", "TERM": "xterm-256color"}, False),
        ({"LANG": "C", "LC_ALL": "en_US.utf8", "TERM": "screen"}, False),  # LC_ALL wins
        ({"LANG": "en_US.UTF-8", "LC_CTYPE": "C", "TERM": "xterm"}, True),  # LC_CTYPE before LANG
        ({"LANG": "en_US.UTF-8", "TERM": "linux"}, True),  # the console's font
        ({"LANG": "en_US.UTF-8", "TERM": "xterm", "LIVECD_TUI_ASCII": "1"}, True),
        ({"LANG": "C", "TERM": "linux", "LIVECD_TUI_ASCII": "0"}, False),
    ],
)
def test_ascii_mode_is_chosen_by_locale_console_and_variable(
    environ: dict[str, str], wanted: bool
) -> None:
    assert glyphs.ascii_wanted(environ) is wanted


def test_a_c_locale_python_made_utf8_still_counts_as_c() -> None:
    """PEP 538 sets LC_CTYPE=C.UTF-8 in the process; the terminal is still set up for C."""
    coerced = {"LANG": "C", "LC_CTYPE": "C.UTF-8", "TERM": "xterm"}
    assert glyphs.ascii_wanted(coerced, started={"LANG": "C", "TERM": "xterm"})
    assert not glyphs.ascii_wanted(coerced, started=coerced)


def test_the_environment_the_process_started_with_is_read() -> None:
    started = glyphs.started_environ()
    assert started.get("PATH") and "LIVECD_TUI_TEST_LATE" not in started
    os.environ["LIVECD_TUI_TEST_LATE"] = "1"  # set after the start: not in it
    try:
        assert "LIVECD_TUI_TEST_LATE" not in glyphs.started_environ()
    finally:
        del os.environ["LIVECD_TUI_TEST_LATE"]


def test_to_ascii_keeps_every_cell() -> None:
    text = "╭─ Help ━━ ▏⭘ ► é… 中文 🔎 x\u0301│"
    shown = glyphs.to_ascii(text)
    assert shown.isascii()
    assert len(shown) == cell_len(text)  # one ASCII character per cell: the layout holds
    assert shown.startswith("+- Help -- |o > e. ???? ?? x|")
    assert glyphs.to_ascii("plain \x1b[1mascii\x1b[0m") == "plain \x1b[1mascii\x1b[0m"
    assert glyphs.to_ascii("\x1b[1m─\x1b[0m\n") == "\x1b[1m-\x1b[0m\n"


def test_the_ascii_driver_writes_ascii_only() -> None:
    written: list[str] = []

    class Sink(glyphs.AsciiDriver):
        def __init__(self) -> None:  # no terminal needed to see what it writes
            pass

    driver = Sink()
    driver._writer_thread = type("W", (), {"write": staticmethod(written.append)})()  # type: ignore[assignment]
    driver.write("\x1b[H┌──┐ ok ▊")
    assert written == ["\x1b[H+--+ ok |"]


# -- ASCII mode, screen by screen ----------------------------------------------------------
@pilot_test
async def test_every_screen_draws_ascii_only_in_ascii_mode(demo: Profile) -> None:
    """Editor, help, search, value and list editors, the kernel check, the preview (while
    it loads too), the check panel, the plan, the build screen (failed, zoomed), a
    notification, the command palette, a confirm dialog: nothing but ASCII in what the app
    draws."""
    app = make_app(demo, echo_stages(), ascii=True)
    seen: dict[str, str] = {}

    def look(name: str) -> None:
        seen[name] = screen_text(app)

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        look("editor")
        await go_to(pilot, app, "bootloader.serial")
        await pilot.press("question_mark")
        look("help")
        await pilot.press("escape", "slash", *"tree")
        await pilot.pause()
        look("search")
        await pilot.press("escape")
        await go_to(pilot, app, "bootloader.title")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ValueEditor)
        look("value editor")
        await pilot.press("escape")
        await go_to(pilot, app, "bootloader.entries")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ListEditor)
        look("list editor")
        await pilot.press("escape")
        await go_to(pilot, app, "kernel")
        await pilot.press("K")
        await app.workers.wait_for_complete()
        await pilot.pause()
        look("kernel check")
        await pilot.press("escape")
        await go_to(pilot, app, "system")
        await pilot.press("v")
        await pilot.pause()
        look("preview, loading")
        await app.workers.wait_for_complete()
        await pilot.pause()
        look("preview")
        await pilot.press("escape", "c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        look("check")
        await pilot.press("escape", "p")
        await app.workers.wait_for_complete()
        await pilot.pause()
        look("plan")
        await pilot.press("escape", "b", "a")
        await settle(pilot, app)
        look("build failed")
        await pilot.press("z", "w")  # w says what it did in a notification
        await pilot.pause()
        look("build zoomed, a notification")
        await pilot.press("ctrl+p", *"wrap")
        for _ in range(200):  # the palette searches in the background
            await pilot.pause(0.01)
            if "Wrap" in screen_text(app):
                break
        look("command palette")
        await pilot.press("escape")
        await pilot.press("z", "escape")
        await go_to(pilot, app, "bootloader.serial")
        await pilot.press("space", "q")  # an unsaved change, then quit: asks
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        look("confirm")
        await pilot.press("escape")
    assert set(seen) >= {"editor", "help", "build failed", "confirm"}
    if os.environ.get("SHOW_SCREENS"):
        for name, text in seen.items():
            print(f"== {name}\n{text}")
    leftovers = {name: non_ascii(text) for name, text in seen.items() if non_ascii(text)}
    assert not leftovers, leftovers
    assert "+--" in seen["help"] and "| " in seen["help"]  # ascii borders, not none
    assert "> " in seen["editor"].splitlines()[1]  # the menu icon
    assert "Long lines are cut" in seen["build zoomed, a notification"]
    assert "Wrap" in seen["command palette"]
    assert str(app.get_loading_widget().render()).isascii()


@pilot_test
async def test_unicode_mode_is_the_default_in_tests_and_keeps_textual_glyphs(demo: Profile) -> None:
    app = make_app(demo, echo_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.ascii is False
        assert "►" in screen_text(app)
    from textual.scrollbar import ScrollBar, ScrollBarRender

    assert ScrollBar.renderer is ScrollBarRender  # ASCII mode's setting does not leak


# -- the build screen on small and big terminals -------------------------------------------
def long_line_stages() -> list[Stage]:
    def long(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["echo", LONG_ARGV], "print a long command line")]

    return [Stage("preflight", "Preflight", "prints a long line", long), *echo_stages()]


def stage_list_width(screen: BuildScreen) -> int:
    return screen.query_one("#stage-list").outer_size.width


@pilot_test
async def test_the_stage_list_leaves_the_log_room_on_a_small_terminal(demo: Profile) -> None:
    app = make_app(demo, long_line_stages())
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.compact
        # "x preflight" and the border: the log gets the rest.
        assert stage_list_width(screen) == len("x preflight") + 1
        assert screen.pane("preflight").output.size.width >= 40 - 13 - 1
        row = str(screen.query_one("#stage-list").get_option_at_index(0).prompt)  # type: ignore[attr-defined]
        assert row.strip() == "preflight"
    app = make_app(demo, long_line_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert not screen.compact
        width = stage_list_width(screen)
        assert width <= 27
        await pilot.press("a")
        await settle(pilot, app)
        # The status words are padded: the list keeps its width while states change.
        assert stage_list_width(screen) == width
        assert "done" in str(screen.query_one("#stage-list").get_option_at_index(0).prompt)  # type: ignore[attr-defined]


@pilot_test
async def test_long_log_lines_wrap_and_w_cuts_them_again(demo: Profile) -> None:
    app = make_app(demo, long_line_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "o")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        log = screen.pane("preflight").output
        width = log.scrollable_content_region.width
        wrapped = [line for line in log.lines if "mksquashfs" in line or line.startswith(CONTINUED)]
        assert len(wrapped) > 1 and all(cell_len(line) <= width for line in log.lines)
        # Nothing lost: the pieces give the whole argv back (the "$ echo" line, the output).
        assert "".join(log.lines).replace(" ", "").count(LONG_ARGV.replace(" ", "")) == 2
        await pilot.press("w")
        await pilot.pause()
        assert not screen.wrap and not log.wrap
        assert LONG_ARGV in log.lines
        assert log.virtual_size.width > width  # cut on screen: it scrolls sideways
        await pilot.press("tab")
        assert app.focused is log
        await pilot.press("end", "right", "right")
        await pilot.pause()
        assert log.scroll_x > 0
        await pilot.press("shift+tab")
        await pilot.press("w")
        await pilot.pause()
        assert LONG_ARGV not in log.lines
        # Lines that come while the pane is hidden (another stage shown) wrap all the same.
        await pilot.press("down")
        await pilot.pause()
        assert not log.display or not log.region
        log.write_line(LONG_ARGV)
        await pilot.press("up")
        await pilot.pause()
        assert all(cell_len(line) <= width for line in log.lines)
        assert log.virtual_size.width <= width + 1  # no sideways scrolling
        assert log.unwrapped[-1] == LONG_ARGV


def test_wrap_line_breaks_at_spaces_and_leaves_short_lines() -> None:
    assert wrap_line("short", 20) == ["short"]
    assert wrap_line(" " * 79, 20) == [""]  # a serial console's blank line
    assert wrap_line("login:" + " " * 70, 20) == ["login:"]
    parts = wrap_line(LONG_ARGV, 30)
    assert all(cell_len(part) <= 30 for part in parts)
    assert parts[1].startswith(CONTINUED)
    assert "".join(parts).replace(" ", "") == LONG_ARGV.replace(" ", "")  # nothing lost


@pilot_test
async def test_zoom_shows_the_log_on_the_whole_screen_and_keeps_following(
    demo: Profile, tmp_path: Path
) -> None:
    go = tmp_path / "go"

    def slow(build) -> list[Step]:  # type: ignore[no-untyped-def]
        script = (
            f"for i in $(seq 1 40); do echo early $i; done; "
            f"while [ ! -e '{go}' ]; do sleep 0.05; done; "
            f"for i in $(seq 1 40); do echo late $i; done"
        )
        return [command(["sh", "-c", script], "print, wait, print")]

    app = make_app(demo, [Stage("slow", "Slow", "prints slowly", slow)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        log = screen.pane("slow").output
        for _ in range(500):
            screen._drain()
            if "early 40" in log.lines:
                break
            await pilot.pause(0.01)
        await pilot.press("z")
        await pilot.pause()
        assert screen.has_class("-zoomed")
        assert not screen.query_one("#stage-list").display
        assert log.size.width >= SIZE[0] - 2  # the whole width
        assert app.focused is log
        go.touch()
        await settle(pilot, app)
        assert "late 40" in log.lines
        assert log.is_vertical_scroll_end  # it followed the new lines
        await pilot.press("z")
        await pilot.pause()
        assert screen.query_one("#stage-list").display
        assert app.focused is screen.query_one("#stage-list")


# -- the finished ISO ----------------------------------------------------------------------
def iso_stages() -> list[Stage]:
    """A stage named iso that writes a 3 MiB file where the build's ISO goes."""

    def write_iso(build) -> list[Step]:  # type: ignore[no-untyped-def]
        def write(ctx: StepContext) -> None:
            ctx.build.iso_path.parent.mkdir(parents=True, exist_ok=True)
            ctx.build.iso_path.write_bytes(b"\0" * (3 << 20))

        return [Action("write the ISO", write)]

    return [Stage("iso", "ISO image", "writes the ISO", write_iso)]


@pilot_test
async def test_the_finished_iso_is_shown_with_its_size_and_the_usb_command(demo: Profile) -> None:
    app = make_app(demo, iso_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        info = screen.query_one("#iso-info", Static)
        assert not info.display
        await pilot.press("a")
        await settle(pilot, app)
        assert info.display
        text = str(info.render())
        assert "ISO: work/out/demo.iso (3.0 MiB)" in text
        assert "dd if=work/out/demo.iso of=/dev/sdX bs=4M conv=fsync status=progress" in text
        assert "all on it is lost" in text
        assert "dd if=" in screen_text(app)  # on screen at 80x24, not cut away
        await pilot.press("escape")
    # Opened again later: the work dir still has it.
    app = make_app(demo, iso_stages())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await pilot.pause()
        assert "work/out/demo.iso" in str(app.screen.query_one("#iso-info", Static).render())


def test_a_cd_only_iso_says_so(demo: Profile) -> None:
    from livecd_tui.build import Build

    demo.set("iso.hybrid", False)
    build = Build.for_profile(demo, Path("work").resolve())
    assert finished_iso_text(build) is None  # no ISO yet
    build.iso_path.parent.mkdir(parents=True)
    build.iso_path.write_bytes(b"iso")
    text = str(finished_iso_text(build))
    assert "(3 B)" in text and "dd if=" not in text and "burn it to a CD" in text


def test_the_command_line_chooses_ascii_or_not(
    demo: Profile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from livecd_tui import cli

    opened: list[bool | None] = []
    monkeypatch.setattr(LiveCDApp, "run", lambda self: opened.append(self.ascii))
    assert cli.main(["--ascii", "demo.toml"]) == 0
    assert cli.main(["demo.toml", "--no-ascii"]) == 0
    assert cli.main(["demo.toml"]) == 0
    assert opened == [True, False, None]  # None: decided when it runs, from the terminal
    for wrong in (
        ["--ascii", "--no-ascii"],
        ["--asci", "demo.toml"],
        ["--ascii", "demo.toml", "other.toml"],
    ):
        assert cli.main(wrong) == 2, wrong
        assert "usage: livecd-tui [--ascii|--no-ascii] [PROFILE]" in capsys.readouterr().err
