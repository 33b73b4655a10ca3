"""SVG snapshots of the main screens at 80x24 (pytest-textual-snapshot).

Everything that could differ between runs is pinned: a fixed clock (spinner, elapsed
times), the profile and work dir relative to a fresh current dir, small real stages.
Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the pictures in the report.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from livecd_tui.engine import Stage
from livecd_tui.profile import Profile, load_profile
from livecd_tui.steps import Action, Step, command
from livecd_tui.tui.app import LiveCDApp
from livecd_tui.tui.build_screen import BuildScreen
from livecd_tui.tui.editor_screen import EditorScreen

ROOT = Path(__file__).resolve().parent.parent
SIZE = (80, 24)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    shutil.copy(ROOT / "profiles" / "demo.toml", tmp_path / "demo.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # recovery files
    return load_profile(Path("demo.toml"))


def small_stages(fifo: Path | None = None) -> list[Stage]:
    """Three little stages; the second fails while bootloader.timeout is 3 or less. With a
    fifo, the first one says it is running through it and then sleeps."""

    def first(build) -> list[Step]:  # type: ignore[no-untyped-def]
        if fifo is not None:
            return [
                command(
                    ["sh", "-c", f"echo ready > '{fifo}'; exec sleep 30"], "wait for a long time"
                )
            ]
        return [command(["sh", "-c", "for i in 1 2 3; do echo line $i; done"], "print lines")]

    def second(build) -> list[Step]:  # type: ignore[no-untyped-def]
        timeout = build.profile["bootloader.timeout"]
        return [
            command(
                ["sh", "-c", f"echo checking; test {timeout} -gt 3 || exit 3"],
                "check the timeout",
                hint="set bootloader.timeout above 3",
            )
        ]

    def third(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["echo", "the end"], "say the end")]

    return [
        Stage("first", "First", "prints lines", first),
        Stage("second", "Second", "checks the timeout", second, reads=("bootloader.timeout",)),
        Stage("third", "Third", "ends", third),
    ]


def make_app(profile: Profile, stages: list[Stage] | None = None, ascii: bool = False) -> LiveCDApp:
    return LiveCDApp(
        profile,
        work_dir=Path("work").resolve(),
        stages=stages or small_stages(),
        clock=lambda: 1000.0,
        ascii=ascii,
    )


async def jump(pilot, key: str) -> None:  # type: ignore[no-untyped-def]
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    screen.jump_to(key)
    await pilot.pause()


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.app.workers.wait_for_complete()
    if isinstance(pilot.app.screen, BuildScreen):
        pilot.app.screen._drain()
    await pilot.pause()


def test_editor(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await jump(pilot, "bootloader.timeout")

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


def test_help(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await jump(pilot, "bootloader.serial")
        await pilot.press("question_mark")

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


def test_search(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(demo), terminal_size=SIZE, press=["slash", *"tree"])


def test_refused_value(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await jump(pilot, "bootloader.timeout")
        await pilot.press("enter", "backspace", *"9999")

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


def test_plan(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("p")
        await settle(pilot)

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


def test_build_running(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    fifo = Path("ready")  # relative to the test's own current dir: the same in every run
    os.mkfifo(fifo)

    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        # Blocks until the stage's command has started and written to the fifo.
        assert (await asyncio.to_thread(fifo.read_text)).strip() == "ready"
        pilot.app.screen._drain()
        await pilot.pause()

    assert snap_compare(make_app(demo, small_stages(fifo)), terminal_size=SIZE, run_before=before)


def test_build_failed(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        await settle(pilot)

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


# -- the terminal a user really has ---------------------------------------------------------
def test_editor_ascii(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    """ASCII mode (a Linux console without a UTF-8 locale): ascii borders and tree."""

    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await jump(pilot, "bootloader.timeout")

    assert snap_compare(make_app(demo, ascii=True), terminal_size=SIZE, run_before=before)


def test_build_failed_ascii(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        await settle(pilot)

    assert snap_compare(make_app(demo, ascii=True), terminal_size=SIZE, run_before=before)


def test_build_failed_small(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    """At 40x12 the stage list shows names only; the log gets the rest, wrapped."""

    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        await settle(pilot)

    assert snap_compare(make_app(demo), terminal_size=(40, 12), run_before=before)


def test_build_zoomed(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        await settle(pilot)
        await pilot.press("z")

    assert snap_compare(make_app(demo), terminal_size=SIZE, run_before=before)


def iso_stage() -> Stage:
    """A stage named iso that writes a small file where the ISO goes."""

    def write_iso(build) -> list[Step]:  # type: ignore[no-untyped-def]
        def write(ctx) -> None:  # type: ignore[no-untyped-def]
            ctx.build.iso_path.parent.mkdir(parents=True, exist_ok=True)
            ctx.build.iso_path.write_bytes(b"\0" * 1536)

        return [Action("write the ISO", write)]

    return Stage("iso", "ISO image", "writes the ISO", write_iso)


def test_build_done_shows_the_iso(snap_compare, demo: Profile) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("b", "a")
        await settle(pilot)
        # The picture is about the ISO's bar; the log's "done in 0.1 s" is real time.
        pilot.app.screen.pane("iso").output.clear()
        await pilot.pause()

    demo.set("bootloader.timeout", 5)  # the second stage passes
    assert snap_compare(
        make_app(demo, [*small_stages(), iso_stage()]), terminal_size=SIZE, run_before=before
    )
