"""The check panel: the profile's problems, missing tools and kernel-config findings.

Checking reads the kernel's config and looks for tools, so it runs in a thread; choosing a
finding that names an option goes back to the editor on that option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option as ListOption

from livecd_tui.profile import Profile
from livecd_tui.tui import glyphs

if TYPE_CHECKING:
    from livecd_tui.checks import CheckReport

Checker = Callable[[Profile], "CheckReport"]

KIND_TITLES = {"profile": "Profile", "tool": "Tools", "kernel": "Kernel config"}


def default_checker(profile: Profile) -> CheckReport:
    """The real checks (imported late: they pull in the kernel-config readers)."""
    from livecd_tui.checks import run_checks

    return run_checks(profile)


class CheckScreen(ModalScreen[str | None]):
    """Findings grouped by kind, problems first; Enter on one jumps to its option."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("r", "recheck", "Check again"),
        Binding(
            "K",
            "kernel",
            "Kernel",
            tooltip="Each kernel requirement in a table; fix the tree's .config or run menuconfig",
        ),
    ]

    def __init__(self, profile: Profile, checker: Checker | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.checker = checker or default_checker

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog full", id="checks") as box:
            box.border_title = "Check"
            box.border_subtitle = "Enter: go to the option   K: kernel   r: again   Esc: close"
            yield OptionList(
                ListOption(Text("checking...", style="italic"), disabled=True), id="findings"
            )

    def on_mount(self) -> None:
        self.action_recheck()

    def action_recheck(self) -> None:
        self.query_one("#findings", OptionList).loading = True
        self._check()

    @work(thread=True, exclusive=True, exit_on_error=False, group="check")
    def _check(self) -> None:
        try:
            report = self.checker(self.profile)
        except Exception as err:  # a broken check must not take the app down
            self.app.call_from_thread(self._show_error, f"{type(err).__name__}: {err}")
            return
        self.app.call_from_thread(self._show, report)

    def _show_error(self, message: str) -> None:
        findings = self.query_one("#findings", OptionList)
        findings.loading = False
        findings.set_options(
            [ListOption(Text(f"the check failed: {message}", style="red"), disabled=True)]
        )

    def _show(self, report: CheckReport) -> None:
        findings = self.query_one("#findings", OptionList)
        findings.loading = False
        options: list[ListOption | None] = []
        problems = len(report.problems)
        head = f"{problems} problem(s)" if problems else "all checks passed"
        options.append(ListOption(Text(head, style="bold"), disabled=True))
        for kind, title in KIND_TITLES.items():
            # Problems, then notes, then what is fine.
            items = sorted(
                (i for i in report.items if i.kind == kind), key=lambda i: (i.ok, not i.note)
            )
            if not items:
                continue
            # OptionList draws its separators with "─": a blank line in ASCII mode.
            gap = ListOption("", disabled=True) if glyphs.is_ascii(self) else None
            options += [gap, ListOption(Text(title, style="bold underline"), disabled=True)]
            for number, item in enumerate(items):
                mark, style = ("ok ", "dim") if item.ok else ("!! ", "bold red")
                if kind == "kernel":  # the kernel findings start with their own state
                    mark = "   " if item.ok else mark
                if item.note:
                    mark, style = ("i  ", "bold yellow")
                line = Text.assemble((mark, style), item.message)
                leads_somewhere = bool(item.key) and (not item.ok or item.note)
                if leads_somewhere:
                    line.append(f"  -> {item.key}", style="italic")
                options.append(
                    ListOption(
                        line, id=f"{kind}-{number}:{item.key or ''}", disabled=not leads_somewhere
                    )
                )
        findings.set_options(options)
        findings.focus()

    @on(OptionList.OptionSelected, "#findings")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        key = (event.option.id or "").partition(":")[2]
        if key:
            self.dismiss(key)
        else:
            self.notify("No option to change for this one", severity="warning")

    def action_cursor(self, step: int) -> None:
        findings = self.query_one("#findings", OptionList)
        if step > 0:
            findings.action_cursor_down()
        else:
            findings.action_cursor_up()

    def action_kernel(self) -> None:
        from livecd_tui.tui.kernel_screen import KernelScreen

        # Back here afterwards, checked again: the fix or menuconfig may have changed it.
        self.app.push_screen(KernelScreen(self.profile), lambda _: self.action_recheck())

    def action_close(self) -> None:
        self.dismiss(None)
