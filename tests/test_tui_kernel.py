"""The TUI's kernel screen (requirements table, fix, menuconfig) and the kernel build's
progress estimate, through Textual's pilot at 80x24.

The screen's tools (check, plan, apply, run menuconfig) are fakes here; the real ones are
tested against a real kernel tree in test_kernelfix.py. One test runs the real check on
the demo profile (the running system's prebuilt kernel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from livecd_tui.checks import KernelReport
from livecd_tui.engine import Stage
from livecd_tui.kernel import kbuild, kconfig
from livecd_tui.kernel.kernelfix import Ask, Change, FixPlan, FixResult
from livecd_tui.profile import Profile
from livecd_tui.steps import Step, command
from livecd_tui.tui.build_screen import BuildScreen
from livecd_tui.tui.check_screen import CheckScreen
from livecd_tui.tui.dialogs import HelpScreen
from livecd_tui.tui.kernel_screen import FixScreen, KernelScreen, KernelTools
from tests.test_tui import SIZE, demo, go_to, make_app, pilot_test, settle, until

__all__ = ["demo"]  # the fixture, imported for this module's tests

REQS = kconfig.requirements("classic", "classic", "xz", "gzip", ["cdrom"], False, 8)


class FakeTools(KernelTools):
    """Counts calls; the config is 'fixed' by apply."""

    def __init__(self, tree: Path | None) -> None:
        super().__init__(self._report, self._plan, self._apply, self._run)
        self.tree = tree
        self.config = {r.symbol: "y" for r in REQS if r.min_value is None}
        self.config.pop("BLK_DEV_RAM")
        self.config["BLK_DEV_RAM_SIZE"] = "4096"
        self.calls: list[str] = []
        self.ran: list[list[str]] = []

    def _report(self, profile: Profile) -> KernelReport:
        self.calls.append("report")
        findings = kconfig.check(self.config, REQS, "6.1.0")
        advised = kconfig.check(self.config, kconfig.group_requirements(["sound"]), "6.1.0")
        return KernelReport(
            Path("/tmp/bzImage"),
            "6.1.0",
            "/tmp/fake/.config",
            findings,
            advised,
            ("sound",),
            tree=self.tree,
        )

    def _plan(self, profile: Profile, modules: bool) -> FixPlan:
        self.calls.append(f"plan modules={modules}")
        ask = Ask("BLK_DEV_RAM", "y", "the classic initrd is a RAM disk")
        dep = Ask("BLK_DEV", "y", "BLK_DEV_RAM depends on it", dependency=True)
        changes = [
            Change("BLK_DEV_RAM", "n", "y", ask),
            Change("BLK_DEV", "n", "y", dep),
            Change("BLK_DEV_RAM_COUNT", "n", "16"),
        ]
        assert self.tree is not None
        return FixPlan(self.tree, self.tree / ".config", "", "", [ask, dep], changes)

    def _apply(self, profile: Profile, plan: FixPlan) -> FixResult:
        self.calls.append("apply")
        self.config["BLK_DEV_RAM"] = "y"
        self.config["BLK_DEV_RAM_SIZE"] = "8192"
        return FixResult(
            plan,
            kconfig.check(self.config, REQS, "6.1.0"),
            [],
            plan.config.with_name(".config.old"),
        )

    def _run(self, argv: list[str]) -> int:
        self.ran.append(argv)
        return 0


@pytest.fixture
def tools(tmp_path: Path) -> FakeTools:
    return FakeTools(tmp_path / "linux")


def _table(app) -> DataTable:  # type: ignore[no-untyped-def,type-arg]
    return app.screen.query_one("#kernel-table", DataTable)


def _head(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.query_one("#kernel-head", Static).render())


@pilot_test
async def test_the_table_lists_every_requirement_problems_first(
    demo: Profile, tools: FakeTools
) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, KernelScreen)
        table = _table(app)
        advised = len(kconfig.group_requirements(["sound"]))
        assert table.row_count == len(REQS) + advised
        first = [str(table.get_row_at(i)[0]) + " " + str(table.get_row_at(i)[1]) for i in range(3)]
        assert first[:2] == ["missing BLK_DEV_RAM", "wrong BLK_DEV_RAM_SIZE"]
        assert first[2].startswith("warning SOUND")
        assert "2 problem(s)" in _head(app)
        assert "7 driver(s) of sound missing (warnings: the CD still boots)" in _head(app)
        # ? explains the highlighted requirement
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "BLK_DEV_RAM: missing" in app.screen.text
        assert "built in (y)" in app.screen.text
        await pilot.press("escape")
        await pilot.press("j", "question_mark")
        assert "at least 8192" in app.screen.text


@pilot_test
async def test_fix_shows_every_change_then_writes_and_checks_again(
    demo: Profile, tools: FakeTools
) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        await pilot.press("f")
        await settle(pilot, app)
        assert isinstance(app.screen, FixScreen)
        text = str(app.screen.query_one("#fix-text", Static).render())
        assert "3 symbol(s)" in text and "BLK_DEV_RAM" in text
        assert "BLK_DEV_RAM depends on it" in text and "BLK_DEV_RAM_COUNT=16" in text
        assert tools.calls == ["report", "plan modules=False"]
        await pilot.press("y")
        await settle(pilot, app)
        await settle(pilot, app)
        assert isinstance(app.screen, KernelScreen)
        assert tools.calls == ["report", "plan modules=False", "apply", "report"]
        assert "all requirements met" in _head(app)


@pilot_test
async def test_fix_cancelled_writes_nothing(demo: Profile, tools: FakeTools) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        await pilot.press("F")  # as modules
        await settle(pilot, app)
        assert isinstance(app.screen, FixScreen)
        await pilot.press("n")
        await settle(pilot, app)
        assert isinstance(app.screen, KernelScreen)
        assert tools.calls == ["report", "plan modules=True"]


@contextlib.contextmanager
def _no_suspend() -> Iterator[None]:
    yield


@pilot_test
async def test_menuconfig_runs_with_the_app_suspended_then_checks_again(
    demo: Profile, tools: FakeTools
) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.suspend = _no_suspend  # type: ignore[method-assign]
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        await pilot.press("m")
        await settle(pilot, app)
        assert tools.ran == [["make", "-C", str(tools.tree), "menuconfig"]]
        await pilot.press("n")
        await settle(pilot, app)
        assert tools.ran[-1][-1] == "nconfig"
        assert tools.calls == ["report", "report", "report"]


@pilot_test
async def test_menuconfig_without_a_terminal_says_the_command(
    demo: Profile, tools: FakeTools
) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        await pilot.press("m")  # the headless test driver cannot suspend
        await pilot.pause()
        assert tools.ran == []
        assert any("make -C" in n.message for n in app._notifications)


@pilot_test
async def test_a_prebuilt_kernel_cannot_be_fixed(demo: Profile) -> None:
    tools = FakeTools(None)
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(KernelScreen(demo, tools))
        await settle(pilot, app)
        await pilot.press("f", "m")
        await settle(pilot, app)
        assert isinstance(app.screen, KernelScreen)
        assert tools.calls == ["report"] and tools.ran == []
        assert 'kernel.source = "tree"' in _head(app)


@pilot_test
async def test_reached_from_the_kernel_menu_and_the_check_panel(demo: Profile) -> None:
    """With the real check: the demo profile's kernel is the running system's."""
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "initrd")
        await pilot.press("K")
        assert not isinstance(app.screen, KernelScreen), "only in the Kernel menu"
        await go_to(pilot, app, "kernel.drivers.preset")
        await pilot.press("K")
        await settle(pilot, app)
        assert isinstance(app.screen, KernelScreen)
        if not any(Path("/boot").glob("config-*")):
            pytest.skip("no kernel config in /boot")
        assert _table(app).row_count > 10
        await pilot.press("escape")
        await pilot.press("c")
        await settle(pilot, app)
        assert isinstance(app.screen, CheckScreen)
        await pilot.press("K")
        await settle(pilot, app)
        assert isinstance(app.screen, KernelScreen)
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, CheckScreen)


@pilot_test
async def test_kernel_build_progress_follows_the_estimate(demo: Profile) -> None:
    script = (
        f"echo '{kbuild.estimate_line(4, 'from the last build of this tree')}'; "
        "echo '  CC      init/main.o'; echo '  LD [M]  fs/x.ko'; exec sleep 30"
    )

    def kernel(build) -> list[Step]:  # type: ignore[no-untyped-def]
        return [command(["sh", "-c", script], "build the kernel image")]

    app = make_app(demo, [Stage("kernel", "Kernel", "builds", kernel)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "a")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        pane = screen.pane("kernel")
        await until(pilot, app, lambda: pane.objects == 2)
        assert pane.objects_expected == 4
        assert pane.bar.progress == pytest.approx(0.5)
        assert pane.detail == "2/4 objects made"
        await pilot.press("x")
        await settle(pilot, app)
