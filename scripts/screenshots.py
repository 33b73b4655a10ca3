"""Write SVG screenshots of the main screens to ``screenshots/`` (for the README).

Run from the repository: ``python scripts/screenshots.py [OUTPUT_DIR]``. Each picture
is the app at 80x24 driven by the pilot, as the tests drive it: the demo profile, the real
stages (``preflight`` alone, then the whole demo build with its boot test),
and three small stages for the failed-stage picture, so it shows the debugging keys without
breaking a real build.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from livecd_tui.engine import Stage
from livecd_tui.profile import load_profile
from livecd_tui.steps import Step, command
from livecd_tui.tui.app import LiveCDApp
from livecd_tui.tui.build_screen import BuildScreen
from livecd_tui.tui.editor_screen import EditorScreen

SIZE = (80, 24)
Steps = Callable[[Pilot[None]], Awaitable[None]]


def failing_stages() -> list[Stage]:
    """A stage that works, one that fails while bootloader.timeout is 3 or less, one more."""

    def tools(build: object) -> list[Step]:
        return [
            command(
                ["sh", "-c", 'for t in mksquashfs xorriso; do echo "ok $t"; done'], "find the tools"
            )
        ]

    def timeout(build: object) -> list[Step]:
        value = build.profile["bootloader.timeout"]  # type: ignore[attr-defined]
        return [
            command(
                ["sh", "-c", f"echo 'menu timeout {value}'; test {value} -gt 3"],
                "check the boot menu waits long enough",
                hint="set bootloader.timeout above 3",
            )
        ]

    def finish(build: object) -> list[Step]:
        return [command(["echo", "done"], "finish")]

    return [
        Stage("tools", "Tools", "finds the tools", tools),
        Stage("menu", "Boot menu", "checks the menu", timeout, reads=("bootloader.timeout",)),
        Stage("finish", "Finish", "finishes", finish),
    ]


async def jump(pilot: Pilot[None], key: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    screen.jump_to(key)
    await pilot.pause()


async def settle(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    if isinstance(pilot.app.screen, BuildScreen):
        pilot.app.screen._drain()
    await pilot.pause()


async def editor(pilot: Pilot[None]) -> None:
    await jump(pilot, "bootloader.timeout")


async def help_screen(pilot: Pilot[None]) -> None:
    await jump(pilot, "bootloader.serial")
    await pilot.press("question_mark")


async def search(pilot: Pilot[None]) -> None:
    await pilot.press("slash", *"tree")


async def refused(pilot: Pilot[None]) -> None:
    await jump(pilot, "bootloader.timeout")
    await pilot.press("enter", "backspace", *"9999")


async def list_editor(pilot: Pilot[None]) -> None:
    await jump(pilot, "bootloader.entries")
    await pilot.press("enter")


async def choice_editor(pilot: Pilot[None]) -> None:
    await jump(pilot, "system.compressor")
    await pilot.press("enter")


async def checks(pilot: Pilot[None]) -> None:
    await pilot.press("c")
    await settle(pilot)


async def plan(pilot: Pilot[None]) -> None:
    await pilot.press("p")
    await settle(pilot)


async def preflight(pilot: Pilot[None]) -> None:
    await pilot.press("b", "o")
    await settle(pilot)


async def build_all(pilot: Pilot[None]) -> None:
    await pilot.press("b", "a")
    await settle(pilot)
    await pilot.press("end")  # the boot test's pane: the live system's serial console


async def failed(pilot: Pilot[None]) -> None:
    await pilot.press("b", "a")
    await settle(pilot)


async def failed_zoomed(pilot: Pilot[None]) -> None:
    await failed(pilot)
    await pilot.press("z")


SHOTS: list[tuple[str, Steps, bool, bool]] = [
    # (file name, what to do, whether to use the small failing stages, ASCII mode)
    ("editor", editor, False, False),
    ("help", help_screen, False, False),
    ("search", search, False, False),
    ("refused-value", refused, False, False),
    ("list-editor", list_editor, False, False),
    ("choice-editor", choice_editor, False, False),
    ("check", checks, False, False),
    ("plan", plan, False, False),
    ("build-preflight", preflight, False, False),
    ("build-failed", failed, True, False),
    ("build-failed-zoomed", failed_zoomed, True, False),
    # A Linux console without a UTF-8 locale (LANG=C, TERM=linux).
    ("help-ascii", help_screen, False, True),
    ("build-failed-ascii", failed, True, True),
    # The whole demo build, boot test included: a minute or so on a machine with the tools.
    ("build-all", build_all, False, False),
]


async def shoot(
    name: str, steps: Steps, small: bool, ascii: bool, out: Path, profile_path: Path, work: Path
) -> Path:
    """Drive a fresh app to one state and save it."""
    app = LiveCDApp(
        load_profile(profile_path),
        work_dir=work / name,
        stages=failing_stages() if small else None,
        ascii=ascii,
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await steps(pilot)
        await pilot.pause()
        return Path(app.save_screenshot(f"{name}.svg", str(out)))


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="livecd-tui-shots-"))
    try:
        for name, steps, small, ascii in SHOTS:
            path = await shoot(name, steps, small, ascii, out, Path("profiles/demo.toml"), work)
            print(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")))
