"""The kernel screen: each requirement of the profile's method against the kernel's config
(ok / module / missing / wrong, with its reason), and for a kernel source tree the two ways
to change the config: the fix (scripts/config + olddefconfig, after showing every change)
and the kernel's own menuconfig or nconfig, run on the terminal with the app suspended.

Reading configs, planning and applying the fix run in thread workers; the workers hand their
results to the screen with ``call_from_thread`` and never touch a widget themselves.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Static

from livecd_tui import procs
from livecd_tui.profile import Profile
from livecd_tui.tui.dialogs import HelpScreen

if TYPE_CHECKING:
    from livecd_tui.checks import KernelReport
    from livecd_tui.kernel.kconfig import Finding
    from livecd_tui.kernel.kernelfix import FixPlan, FixResult

#: How each state looks in the table.
STATE_STYLES = {
    "ok": "green",
    "module": "cyan",
    "missing": "bold red",
    "wrong": "bold red",
    "warning": "yellow",
}


def _report(profile: Profile) -> KernelReport:
    from livecd_tui.checks import kernel_report

    return kernel_report(profile)


def _plan(profile: Profile, modules: bool) -> FixPlan:
    from livecd_tui.checks import fix_inputs
    from livecd_tui.kernel.kernelfix import plan_fix

    tree, reqs, release = fix_inputs(profile)
    return plan_fix(tree, reqs, release, modules=modules)


def _apply(profile: Profile, plan: FixPlan) -> FixResult:
    from livecd_tui.checks import fix_inputs
    from livecd_tui.kernel.kernelfix import apply_fix

    _, reqs, release = fix_inputs(profile)
    return apply_fix(plan, reqs, release)


def _run_tool(argv: list[str]) -> int:
    print(
        f"livecd-tui: {shlex.join(argv)}; livecd-tui checks the config again when it exits",
        flush=True,
    )
    return procs.run_in_terminal(argv)


@dataclass
class KernelTools:
    """What the screen calls; tests pass quick fakes."""

    report: Callable[[Profile], KernelReport] = _report
    plan: Callable[[Profile, bool], FixPlan] = _plan
    apply: Callable[[Profile, FixPlan], FixResult] = _apply
    run_tool: Callable[[list[str]], int] = _run_tool


def explain(finding: Finding, state: str, report: KernelReport) -> str:
    """The ``?`` text of one row: the requirement in full, and for a tree what its symbol
    depends on."""
    req = finding.requirement
    lines = [
        f"{req.symbol}: {state}",
        "",
        finding.message,
        "",
        f"Why: {req.reason}.",
        "Needs: "
        + ("built in (y)" if req.need == "y" else "built in (y) or a module (m) the initrd loads"),
    ]
    if req.min_value is not None:
        lines.append(f"Value: at least {req.min_value}")
    if req.any_of:
        lines.append(f"Any of: {req.describe()}")
    if req.before:
        lines.append(f"Only for kernels older than {req.before[0]}.{req.before[1]}")
    if req.since:
        lines.append(f"Exists since Linux {req.since[0]}.{req.since[1]}")
    if report.tree is not None and report.source:
        from livecd_tui.kernel import kconfig
        from livecd_tui.kernel.kconfig_deps import dependency_hint

        try:
            config = kconfig.parse_config((report.tree / ".config").read_text(errors="replace"))
            lines += ["", f"In {report.tree}: " + dependency_hint(report.tree, req.symbol, config)]
        except OSError:
            pass
    return "\n".join(lines)


class FixScreen(ModalScreen[bool]):
    """Every symbol the fix changes, then write (y) or not (n, Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Write .config"),
        Binding("n,escape", "answer(False)", "Cancel"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, plan: FixPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        text = Text()
        text.append(
            f"{len(plan.changes)} symbol(s) of {plan.config} change "
            f"(the current file is kept as {plan.config.name}.old):\n",
            style="bold",
        )
        for line in plan.summary():
            text.append(line + "\n")
        for stuck in plan.not_stuck:
            text.append(f"will not stick: {stuck.line()}\n", style="red")
        for finding in plan.unfixable:
            text.append(
                f"no config change fixes {finding.requirement.symbol}: {finding.message}\n",
                style="red",
            )
        with Vertical(classes="dialog full", id="fix") as box:
            box.border_title = "Fix the kernel config"
            box.border_subtitle = "y: write   n/Esc: cancel   j/k: scroll"
            with VerticalScroll(id="fix-body"):
                yield Static(text, id="fix-text")
            with Horizontal(id="answers"):
                yield Button("Write .config (y)", id="fix-yes", compact=True)
                yield Button("Cancel (n)", id="fix-no", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "fix-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_scroll(self, lines: int) -> None:
        self.query_one("#fix-body", VerticalScroll).scroll_relative(y=lines, animate=False)


class KernelScreen(ModalScreen[None]):
    """The requirement table; f fixes the tree's .config, m runs menuconfig, r re-checks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding(
            "question_mark",
            "explain",
            "Why",
            tooltip="The requirement in full and, for a tree, what its symbol depends on",
        ),
        Binding("r", "recheck", "Check again"),
        Binding(
            "f",
            "fix",
            "Fix .config",
            tooltip="Set what is missing with scripts/config "
            "+ make olddefconfig, after showing every change",
        ),
        Binding(
            "F",
            "fix(True)",
            "Fix as modules",
            show=False,
            tooltip="The same, asking m where a module the initrd loads is enough",
        ),
        Binding(
            "m",
            "config_tool('menuconfig')",
            "menuconfig",
            tooltip="make menuconfig in the kernel tree, then check again",
        ),
        Binding(
            "n",
            "config_tool('nconfig')",
            "nconfig",
            show=False,
            tooltip="make nconfig in the kernel tree, then check again",
        ),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
    ]

    def __init__(self, profile: Profile, tools: KernelTools | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.tools = tools or KernelTools()
        self.report: KernelReport | None = None
        #: The finding and shown state of each table row, by row key.
        self.rows: dict[str, tuple[Finding, str]] = {}
        #: Whether a check, plan or fix is running (a second one waits for it).
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog full", id="kernel") as box:
            box.border_title = "Kernel requirements"
            box.border_subtitle = "?: why   f: fix   m: menuconfig   r: again   Esc: close"
            yield Static(Text("checking...", style="italic"), id="kernel-head")
            table: DataTable[Text | str] = DataTable(
                id="kernel-table", cursor_type="row", zebra_stripes=False
            )
            table.add_columns("state", "symbol", "found", "why")
            yield table

    def on_mount(self) -> None:
        self.action_recheck()

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#kernel-table", DataTable)

    # -- checking ------------------------------------------------------------------------
    def action_recheck(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.table.loading = True
        self._check()

    @work(thread=True, exclusive=True, exit_on_error=False, group="kernel")
    def _check(self) -> None:
        try:
            report = self.tools.report(self.profile)
        except Exception as err:  # a broken check must not take the app down
            self.app.call_from_thread(self._failed, "the check failed", err)
            return
        self.app.call_from_thread(self.show_report, report)

    def show_report(self, report: KernelReport) -> None:
        self.busy = False
        self.report = report
        table = self.table
        table.loading = False
        table.clear()
        self.rows = {}
        head = Text(report.headline(), style="bold red" if report.error else "bold")
        problems, warnings = len(report.problems), len(report.warnings)
        if not report.error:
            head.append(
                f"\n{problems} problem(s)" if problems else "\nall requirements met",
                style="bold red" if problems else "green",
            )
            if warnings:
                head.append(
                    f", {warnings} driver(s) of {'+'.join(report.groups)} missing "
                    "(warnings: the CD still boots)",
                    style="yellow",
                )
            if report.tree is None and (problems or warnings):
                head.append(
                    '\nprebuilt kernel: fix and menuconfig need kernel.source = "tree"',
                    style="italic",
                )
        self.query_one("#kernel-head", Static).update(head)
        ordered = sorted(report.findings, key=lambda f: f.state in ("ok", "module"))
        shown: list[tuple[Finding, str]] = [(f, f.state) for f in ordered]
        shown[len(report.problems) : len(report.problems)] = [
            (f, "warning") for f in report.warnings
        ]
        for number, (finding, state) in enumerate(shown):
            key = f"{number}:{finding.requirement.symbol}"
            self.rows[key] = (finding, state)
            table.add_row(
                Text(state, style=STATE_STYLES.get(state, "")),
                finding.requirement.symbol,
                _found(finding),
                finding.requirement.reason,
                key=key,
            )
        table.focus()
        self.refresh_bindings()

    def _failed(self, what: str, err: Exception) -> None:
        self.busy = False
        self.table.loading = False
        self.notify(f"{type(err).__name__}: {err}", title=what, severity="error", timeout=10)
        self.refresh_bindings()

    # -- explaining ----------------------------------------------------------------------
    def action_explain(self) -> None:
        table = self.table
        if self.report is None or not self.rows or table.cursor_row < 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key not in self.rows:
            return
        finding, state = self.rows[key]
        self.app.push_screen(
            HelpScreen(finding.requirement.symbol, explain(finding, state, self.report))
        )

    def action_cursor(self, step: int) -> None:
        if step > 0:
            self.table.action_cursor_down()
        else:
            self.table.action_cursor_up()

    # -- fixing --------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("fix", "config_tool"):
            return self.report is not None and self.report.tree is not None
        return True

    def _can_change(self) -> bool:
        if self.report is None or self.report.tree is None:
            self.notify(
                'Only a kernel source tree can be changed (kernel.source = "tree")',
                severity="warning",
            )
            return False
        if getattr(self.app, "building", False):
            self.notify(
                "A build is running: change the kernel config when it is done", severity="warning"
            )
            return False
        if self.busy:
            self.notify("Wait for the check to finish", severity="warning")
            return False
        return True

    def action_fix(self, modules: bool = False) -> None:
        if not self._can_change():
            return
        self.busy = True
        self.notify(
            "Planning the fix on a copy of .config (scripts/config + olddefconfig)...", timeout=4
        )
        self._plan_fix(modules)

    @work(thread=True, exclusive=True, exit_on_error=False, group="kernel")
    def _plan_fix(self, modules: bool) -> None:
        try:
            plan = self.tools.plan(self.profile, modules)
        except Exception as err:
            self.app.call_from_thread(self._failed, "Cannot plan the fix", err)
            return
        self.app.call_from_thread(self._confirm, plan)

    def _confirm(self, plan: FixPlan) -> None:
        self.busy = False
        if not plan.changes:
            extra = "; ".join(f.requirement.symbol for f in plan.unfixable)
            self.notify(
                "Nothing to change in .config"
                + (f" (no config change fixes {extra})" if extra else ""),
                timeout=6,
            )
            return

        def answered(write: bool | None) -> None:
            if write:
                self.busy = True
                self._apply_fix(plan)

        self.app.push_screen(FixScreen(plan), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="kernel")
    def _apply_fix(self, plan: FixPlan) -> None:
        try:
            result = self.tools.apply(self.profile, plan)
        except Exception as err:
            self.app.call_from_thread(self._failed, "The fix failed", err)
            return
        self.app.call_from_thread(self._applied, result)

    def _applied(self, result: FixResult) -> None:
        self.busy = False
        if result.ok:
            self.notify(
                f"Wrote {result.plan.config}; every requirement holds now "
                f"(the old one is {result.backup.name})",
                timeout=6,
            )
        else:
            lines = [f"Wrote {result.plan.config} (the old one is {result.backup}), but:", ""]
            lines += [f"did not stick: {stuck.line()}" for stuck in result.not_stuck]
            lines += [
                f"still {f.state}: {f.requirement.symbol}: {f.message}"
                for f in result.findings
                if f.state in ("missing", "wrong")
            ]
            self.app.push_screen(HelpScreen("After the fix", "\n".join(lines)))
        self.action_recheck()

    # -- menuconfig ----------------------------------------------------------------------
    def action_config_tool(self, tool: str) -> None:
        if not self._can_change():
            return
        from livecd_tui.kernel.kernelfix import menuconfig_argv

        assert self.report is not None and self.report.tree is not None
        argv = menuconfig_argv(self.report.tree, tool)
        try:
            with self.app.suspend():
                code = self.tools.run_tool(argv)
        except SuspendNotSupported:
            self.notify(
                f"Cannot leave the app in this terminal; run: {shlex.join(argv)}",
                severity="error",
                timeout=10,
            )
            return
        except OSError as err:
            self.notify(str(err), title=f"Cannot run {argv[0]}", severity="error")
            return
        if code:
            self.notify(f"{shlex.join(argv)} exited with {code}", severity="warning")
        self.action_recheck()

    def action_close(self) -> None:
        self.dismiss(None)


def _found(finding: Finding) -> str:
    """The symbol's value as found (``y``, ``m``, ``16384``, ``not set``)."""
    if finding.value is None or finding.value == "n":
        return "not set"
    return finding.value
