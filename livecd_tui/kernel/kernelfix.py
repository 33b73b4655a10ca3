"""Fix a kernel tree's ``.config`` so it meets the requirements, the way a person would:
with the kernel's own ``scripts/config`` and ``make olddefconfig``.

:func:`plan_fix` works on a scratch copy of the config and changes nothing: it asks for
each missing symbol, runs olddefconfig, and for every asked symbol that did not stick adds
the dependencies the Kconfig files name (:mod:`livecd_tui.kernel.kconfig_deps`), round after
round. The plan lists every symbol whose value will change. :func:`apply_fix` then runs
the same ``scripts/config`` + olddefconfig on the real config, keeps the previous one as
``.config.old`` and checks again, naming the asked symbols that still did not stick and
the dependency that holds each back.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from livecd_tui import procs
from livecd_tui.kernel import kconfig, kconfig_deps
from livecd_tui.kernel.kconfig import Finding, Requirement

#: Rounds of "ask, olddefconfig, add the dependencies of what did not stick".
MAX_ROUNDS = 12
#: olddefconfig takes about 1.5 s on Linux 6.1; never wait forever on a broken tree.
MAKE_TIMEOUT = 600

Runner = Callable[[list[str], Mapping[str, str]], None]


class FixError(Exception):
    """A command of the fix failed, or the tree cannot be fixed; says what and how."""


@dataclass(frozen=True)
class Ask:
    """One symbol the fix sets: the value and why (a requirement's reason, or which asked
    symbol depends on it)."""

    symbol: str
    value: str
    why: str
    dependency: bool = False


@dataclass(frozen=True)
class Change:
    """One symbol whose value differs between the config and the fixed one (``n`` when
    unset). ``asked`` is None for changes olddefconfig made on its own (defaults, selects)."""

    symbol: str
    old: str
    new: str
    asked: Ask | None = None


@dataclass(frozen=True)
class NotStuck:
    """An asked symbol that olddefconfig did not keep, and why (its unmet dependencies)."""

    symbol: str
    asked: str
    got: str
    hint: str

    def line(self) -> str:
        return f"{self.symbol}: asked {self.asked}, got {self.got}; {self.hint}"


@dataclass
class FixPlan:
    """What the fix will do to one config file, computed on a scratch copy."""

    tree: Path
    config: Path
    original: str
    result: str
    asks: list[Ask]
    changes: list[Change]
    #: Findings no config change can fix (classic initrd on Linux 7.0, a too old kernel).
    unfixable: list[Finding] = field(default_factory=list)
    #: Asked symbols that do not stick even with their dependencies.
    not_stuck: list[NotStuck] = field(default_factory=list)
    rounds: int = 0

    @property
    def asked_changes(self) -> list[Change]:
        return [c for c in self.changes if c.asked is not None]

    @property
    def other_changes(self) -> list[Change]:
        return [c for c in self.changes if c.asked is None]

    def summary(self) -> list[str]:
        """The changes as lines, asked symbols first with their reasons."""
        lines: list[str] = []
        for change in self.asked_changes:
            assert change.asked is not None
            lines.append(f"{change.symbol:24} {change.old:>5} -> {change.new:5} {change.asked.why}")
        others = self.other_changes
        if others:
            lines.append(
                f"and {len(others)} more that olddefconfig changes as a result "
                "(defaults and selects of the above):"
            )
            lines += _columns(
                [f"{c.symbol}={c.new}" if c.new != "n" else f"-{c.symbol}" for c in others]
            )
        return lines


@dataclass
class FixResult:
    """After writing: the config checked again."""

    plan: FixPlan
    findings: list[Finding]
    not_stuck: list[NotStuck]
    backup: Path

    @property
    def ok(self) -> bool:
        return not self.not_stuck and all(f.state in ("ok", "module") for f in self.findings)


def _columns(words: list[str], width: int = 96) -> list[str]:
    lines: list[str] = []
    line = " "
    for word in words:
        if len(line) + len(word) + 1 > width and line.strip():
            lines.append(line)
            line = " "
        line += " " + word
    if line.strip():
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------- commands


def config_args(wanted: Mapping[str, str]) -> list[str]:
    """``scripts/config`` arguments that set each symbol to its value (``y``, ``m``,
    ``n``, a number, or a string)."""
    args: list[str] = []
    for name, value in wanted.items():
        if value == "y":
            args += ["--enable", name]
        elif value == "m":
            args += ["--module", name]
        elif value == "n":
            args += ["--disable", name]
        elif re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", value):
            args += ["--set-val", name, value]
        else:
            args += ["--set-str", name, value]
    return args


def run_command(argv: list[str], env: Mapping[str, str]) -> None:
    """Run one command quietly; on failure say the command, the exit code and its output."""
    try:
        proc = procs.run(argv, env={**os.environ, **env}, timeout=MAKE_TIMEOUT)
    except OSError as err:  # not installed, or a TimeoutError
        raise FixError(f"cannot run {shlex.join(argv)}: {err}") from None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise FixError(
            f"{shlex.join(argv)} failed with exit code {proc.returncode}:\n  " + "\n  ".join(tail)
        )


def scripts_config_argv(tree: Path, config: Path, wanted: Mapping[str, str]) -> list[str]:
    script = tree / "scripts" / "config"
    head = [str(script)] if os.access(script, os.X_OK) else ["bash", str(script)]
    return [*head, "--file", str(config), *config_args(wanted)]


def olddefconfig_argv(tree: Path) -> list[str]:
    return ["make", "-s", "-C", str(tree), "olddefconfig"]


def configure(
    tree: Path, config: Path, wanted: Mapping[str, str], run: Runner = run_command
) -> None:
    """Set symbols with ``scripts/config``, then let ``make olddefconfig`` settle the rest.

    ``KCONFIG_CONFIG`` points make at ``config``, so a scratch copy outside the tree can be
    configured without touching the tree's own ``.config``.
    """
    if not (tree / "scripts" / "config").is_file():
        raise FixError(f"{tree} is not a kernel source tree (no scripts/config)")
    env = {"KCONFIG_CONFIG": str(config.resolve())}
    if wanted:
        run(scripts_config_argv(tree, config, wanted), env)
    run(olddefconfig_argv(tree), env)


def menuconfig_argv(tree: Path, tool: str = "menuconfig") -> list[str]:
    """``make -C TREE menuconfig`` (or ``nconfig``), for a person to run in a terminal."""
    if tool not in ("menuconfig", "nconfig"):
        raise ValueError(f"unknown config tool {tool!r}")
    return ["make", "-C", str(tree), tool]


def tree_version(tree: Path) -> str | None:
    """``VERSION.PATCHLEVEL.SUBLEVEL`` from the tree's Makefile (no build needed)."""
    try:
        head = (tree / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        return None
    parts = [
        re.search(rf"^{name}\s*=\s*(\d+)", head, re.M)
        for name in ("VERSION", "PATCHLEVEL", "SUBLEVEL")
    ]
    if parts[0] is None or parts[1] is None:
        return None
    return ".".join(p.group(1) if p else "0" for p in parts)


# ----------------------------------------------------------------------------- planning


def _satisfied(value: str | None, asked: str) -> bool:
    value = value or "n"
    if asked in ("y", "m", "n"):
        return (
            kconfig_deps.LEVEL.get(value, 0) >= kconfig_deps.LEVEL[asked]
            if asked != "n"
            else value == "n"
        )
    try:
        return int(value, 0) >= int(asked, 0)
    except ValueError:
        return value == asked


def asks_for(
    findings: Sequence[Finding],
    config: Mapping[str, str],
    release: str | None,
    index: kconfig_deps.KconfigIndex | None,
    modules: bool = False,
) -> list[Ask]:
    """What to set for each finding the config can fix. A ``ym`` requirement is asked as
    built in (``y``) unless ``modules`` (then ``m`` for a tristate, when the kernel has
    modules); with alternatives, the one needing the fewest changes."""
    asks: list[Ask] = []
    has_modules = config.get("MODULES") == "y" or any(
        f.requirement.symbol == "MODULES" for f in findings
    )
    for finding in findings:
        if not kconfig.fixable(finding, release):
            continue
        req = finding.requirement
        groups = req.alternatives()
        group = min(groups, key=lambda g: sum(not _meets(req, config.get(s)) for s in g))
        for symbol in group:
            if _meets(req, config.get(symbol)):
                continue
            asks.append(
                Ask(symbol, _value_for(req, symbol, index, modules and has_modules), req.reason)
            )
    return asks


def _meets(req: Requirement, value: str | None) -> bool:
    if value is None or value == "n":
        return False
    if req.min_value is not None:
        try:
            return int(value, 0) >= req.min_value
        except ValueError:
            return False
    return value == "y" or (value == "m" and req.need == "ym")


def _value_for(
    req: Requirement, symbol: str, index: kconfig_deps.KconfigIndex | None, modules: bool
) -> str:
    if req.min_value is not None:
        return str(req.min_value)
    if req.need == "ym" and modules and index is not None and index.kind(symbol) == "tristate":
        return "m"
    return "y"


def _merge(asks: dict[str, Ask], ask: Ask) -> bool:
    """Add an ask, or raise an existing one's value; True when something changed."""
    old = asks.get(ask.symbol)
    if old is None:
        asks[ask.symbol] = ask
        return True
    if old.value in ("m",) and ask.value == "y":
        asks[ask.symbol] = Ask(old.symbol, "y", old.why, old.dependency)
        return True
    return False


def plan_fix(
    tree: Path,
    reqs: Sequence[Requirement],
    release: str | None = None,
    config: Path | None = None,
    modules: bool = False,
    run: Runner = run_command,
) -> FixPlan:
    """Compute the fix on a scratch copy: what to ask, and every symbol that will change.

    ``config`` defaults to ``tree/.config``; ``release`` to the tree's Makefile version.
    Nothing in the tree is written (make runs with ``KCONFIG_CONFIG`` on the copy).
    """
    tree = Path(tree)
    config = Path(config) if config is not None else tree / ".config"
    try:
        original = config.read_text(errors="replace")
    except OSError as err:
        raise FixError(
            f"cannot read {config}: {err}; configure the tree first "
            f"(make -C {tree} defconfig, or menuconfig)"
        ) from None
    release = release or tree_version(tree)
    index = kconfig_deps.read_kconfig(tree)
    values = kconfig.parse_config(original)
    findings = kconfig.check(values, reqs, release)
    unfixable = [
        f for f in findings if f.state not in ("ok", "module") and not kconfig.fixable(f, release)
    ]
    asks: dict[str, Ask] = {}
    for ask in asks_for(findings, values, release, index, modules):
        _merge(asks, ask)
    plan = FixPlan(tree, config, original, original, list(asks.values()), [], unfixable)
    if not asks:
        return plan

    with tempfile.TemporaryDirectory(prefix="livecd-kernelfix-") as tmp:
        scratch = Path(tmp) / ".config"
        scratch.write_text(original)
        pending = {a.symbol: a.value for a in asks.values()}
        result = values
        for plan.rounds in range(1, MAX_ROUNDS + 1):
            configure(tree, scratch, pending, run)
            result = kconfig.parse_config(scratch.read_text(errors="replace"))
            stuck_not = [a for a in asks.values() if not _satisfied(result.get(a.symbol), a.value)]
            added = False
            for ask in stuck_not:
                needs = kconfig_deps.needs_for(index, ask.symbol, ask.value, result, modules)
                for name, value in needs.set.items():
                    added |= _merge(
                        asks, Ask(name, value, f"{ask.symbol} depends on it", dependency=True)
                    )
            if not added:
                break
            pending = {
                a.symbol: a.value
                for a in asks.values()
                if not _satisfied(result.get(a.symbol), a.value)
            }

        # The plan proper: every ask at once on a fresh copy, exactly what apply_fix does.
        scratch.write_text(original)
        final = {a.symbol: a.value for a in asks.values()}
        configure(tree, scratch, final, run)
        plan.result = scratch.read_text(errors="replace")
    plan.asks = list(asks.values())
    after = kconfig.parse_config(plan.result)
    plan.changes = diff_configs(values, after, asks)
    plan.not_stuck = _not_stuck(tree, plan.asks, after)
    return plan


def diff_configs(
    before: Mapping[str, str], after: Mapping[str, str], asks: Mapping[str, Ask] | None = None
) -> list[Change]:
    """Symbols whose value differs (unset counts as ``n``), asked ones first."""
    asks = asks or {}
    changes = []
    for symbol in dict.fromkeys([*before, *after]):
        old, new = before.get(symbol, "n") or "n", after.get(symbol, "n") or "n"
        if old != new:
            changes.append(Change(symbol, old, new, asks.get(symbol)))
    order = {name: i for i, name in enumerate(asks)}
    return sorted(changes, key=lambda c: (c.asked is None, order.get(c.symbol, 0)))


def _not_stuck(tree: Path, asks: Sequence[Ask], after: Mapping[str, str]) -> list[NotStuck]:
    out = []
    for ask in asks:
        got = after.get(ask.symbol, "n") or "n"
        if not _satisfied(got, ask.value):
            out.append(
                NotStuck(
                    ask.symbol,
                    ask.value,
                    got,
                    kconfig_deps.dependency_hint(tree, ask.symbol, after),
                )
            )
    return out


# ----------------------------------------------------------------------------- applying


def apply_fix(
    plan: FixPlan,
    reqs: Sequence[Requirement],
    release: str | None = None,
    run: Runner = run_command,
) -> FixResult:
    """Write the plan into the real config with scripts/config + olddefconfig, keep the
    previous config as ``CONFIG.old``, and check again."""
    try:
        current = plan.config.read_text(errors="replace")
    except OSError as err:
        raise FixError(f"cannot read {plan.config}: {err}") from None
    if current != plan.original:
        raise FixError(f"{plan.config} changed since the fix was planned; plan it again")
    backup = plan.config.with_name(plan.config.name + ".old")
    configure(plan.tree, plan.config, {a.symbol: a.value for a in plan.asks}, run)
    # olddefconfig kept the scripts/config output as .old; the user's own config is the
    # one worth keeping.
    backup.write_text(plan.original)
    after = kconfig.parse_config(plan.config.read_text(errors="replace"))
    release = release or tree_version(plan.tree)
    return FixResult(
        plan, kconfig.check(after, reqs, release), _not_stuck(plan.tree, plan.asks, after), backup
    )
