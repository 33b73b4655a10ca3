"""What a kernel tree's Kconfig files say about a symbol: its type, where it is declared,
what it depends on, and what else would have to be set for it to stick.

``make olddefconfig`` silently drops a symbol whose dependencies are not met. This module
says why ("BLK_DEV_RAM: depends on BLK_DEV [BLK_DEV=n]") and proposes the dependencies to
set, so the fix (:mod:`livecd_tui.kernel.kernelfix`) can add them and run olddefconfig again.

It reads just enough of the Kconfig language, following ``source`` from the tree's top
``Kconfig`` for one architecture: ``if``/``endif``, ``menu``/``endmenu`` with their
``depends on`` and ``visible if``, ``choice``/``endchoice``, and each ``config``'s type,
prompt, ``depends on`` and ``select``. Defaults, ranges and ``imply`` are left to the
kernel's own tools.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``uname -m`` -> the kernel's SRCARCH.
_SRCARCH = {
    "x86_64": "x86",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "powerpc",
    "ppc64": "powerpc",
    "riscv64": "riscv",
    "s390x": "s390",
    "loongarch64": "loongarch",
    "mips64": "mips",
}

TYPES = ("bool", "tristate", "int", "hex", "string")

#: Values of a tristate: n < m < y.
LEVEL = {"n": 0, "m": 1, "y": 2}


def host_srcarch() -> str:
    machine = os.uname().machine
    return _SRCARCH.get(machine, machine)


@dataclass
class Definition:
    """One ``config``/``menuconfig`` entry (a symbol may be declared in several places)."""

    name: str
    where: str
    kind: str = ""
    #: Its own ``depends on`` expressions.
    depends: list[str] = field(default_factory=list)
    #: What encloses it: ``if`` conditions, menus' and choices' ``depends on``.
    context: list[str] = field(default_factory=list)
    #: Whether the user can set it (it has a prompt), and the prompt's conditions
    #: (``bool "..." if EXPR``, an enclosing menu's ``visible if``).
    prompt: bool = False
    prompt_if: list[str] = field(default_factory=list)

    def conditions(self) -> list[tuple[str, str]]:
        """Every condition for the user to set it: (how it is written, expression)."""
        out = [("depends on", e) for e in self.depends]
        out += [("inside", e) for e in self.context]
        if self.prompt:
            out += [("prompt if", e) for e in self.prompt_if]
        return out


@dataclass
class KconfigIndex:
    """Every symbol declared for one architecture, and who selects whom."""

    tree: Path
    srcarch: str
    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    #: Symbol -> the symbols whose ``select`` sets it (with their ``if``, when they have one).
    selected_by: dict[str, list[str]] = field(default_factory=dict)

    def kind(self, name: str) -> str:
        defs = self.definitions.get(name)
        return next((d.kind for d in defs if d.kind), "") if defs else ""


@dataclass
class _Frame:
    """An open ``if``, ``menu`` or ``choice`` block (or a ``comment``, whose lines go
    nowhere)."""

    what: str
    depends: list[str] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined, numbered from 1."""
    pending = ""
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _uncomment(line: str) -> str:
    """The line without a ``#`` comment (outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote and line[i - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:i].strip()
    return line


def _split_prompt(rest: str) -> tuple[bool, str | None]:
    """``"text" if EXPR`` -> (has prompt, EXPR or None)."""
    rest = rest.strip()
    if not rest or rest[0] not in "\"'":
        return False, None
    end = rest.find(rest[0], 1)
    while end > 0 and rest[end - 1] == "\\":
        end = rest.find(rest[0], end + 1)
    tail = rest[end + 1 :].strip() if end > 0 else ""
    if tail.startswith("if "):
        return True, tail[3:].strip()
    return True, None


class _Reader:
    def __init__(self, tree: Path, srcarch: str) -> None:
        self.index = KconfigIndex(tree, srcarch)
        self.stack: list[_Frame] = []
        self.seen: set[Path] = set()

    def source(self, path: str, here: Path) -> None:
        path = path.replace("$(SRCARCH)", self.index.srcarch)
        path = path.replace("$(HEADER_ARCH)", self.index.srcarch)
        if "$(" in path:
            return
        tree = self.index.tree
        targets = sorted(tree.glob(path)) if any(c in path for c in "*?[") else [tree / path]
        for target in targets:
            if target.is_file():
                self.read(target)

    def read(self, path: Path) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return
        rel = path.relative_to(self.index.tree)
        current: Definition | _Frame | None = None
        help_indent: int | None = None
        for number, line in _logical_lines(text):
            stripped = line.strip()
            if help_indent is not None:
                if not stripped or _indent(line) > help_indent:
                    continue
                help_indent = None
            stripped = _uncomment(stripped)
            if not stripped:
                continue
            word, _, rest = stripped.replace("\t", " ").partition(" ")
            rest = " ".join(rest.split())
            if word in ("help", "---help---"):
                help_indent = _indent(line)
                continue
            if word in ("source", "osource", "rsource", "orsource"):
                target = rest.strip("\"'")
                if word.startswith(("r", "or")):
                    target = str((path.parent / target).relative_to(self.index.tree))
                self.source(target, path)
                current = None
            elif word in ("config", "menuconfig"):
                definition = Definition(rest.split()[0] if rest else "", f"{rel}:{number}")
                for frame in self.stack:
                    definition.context += frame.depends
                    definition.prompt_if += frame.visible
                self.index.definitions.setdefault(definition.name, []).append(definition)
                current = definition
            elif word in ("menu", "choice", "if"):
                frame = _Frame(word, [rest] if word == "if" and rest else [])
                self.stack.append(frame)
                current = frame if word != "if" else None
            elif word in ("endmenu", "endchoice", "endif"):
                opened = {"endmenu": "menu", "endchoice": "choice", "endif": "if"}[word]
                while self.stack:
                    if self.stack.pop().what == opened:
                        break
                current = None
            elif word == "comment":
                current = _Frame("comment")
            elif word == "mainmenu":
                current = None
            elif current is not None:
                self._attribute(current, word, rest)

    def _attribute(self, current: Definition | _Frame, word: str, rest: str) -> None:
        if word == "depends" and rest.startswith("on "):
            current.depends.append(rest[3:].strip())
        elif word == "visible" and rest.startswith("if ") and isinstance(current, _Frame):
            current.visible.append(rest[3:].strip())
        elif not isinstance(current, Definition):
            return
        elif word in TYPES:
            current.kind = word
            has_prompt, condition = _split_prompt(rest)
            if has_prompt:
                current.prompt = True
                if condition:
                    current.prompt_if.append(condition)
        elif word in ("def_bool", "def_tristate"):
            current.kind = word[4:]
        elif word == "prompt":
            current.prompt = True
            _, condition = _split_prompt(rest)
            if condition:
                current.prompt_if.append(condition)
        elif word == "select" and rest:
            target, _, condition = rest.partition(" if ")
            source = current.name + (f" if {condition.strip()}" if condition.strip() else "")
            self.index.selected_by.setdefault(target.strip(), []).append(source)


@functools.lru_cache(maxsize=4)
def _read_cached(tree: str, srcarch: str, stamp: int) -> KconfigIndex:
    reader = _Reader(Path(tree), srcarch)
    reader.read(Path(tree) / "Kconfig")
    return reader.index


def read_kconfig(tree: Path, srcarch: str | None = None) -> KconfigIndex:
    """Read a kernel tree's Kconfig files (about 0.3 s for Linux 6.1; cached per tree)."""
    top = Path(tree).resolve()
    try:
        stamp = (top / "Kconfig").stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _read_cached(str(top), srcarch or host_srcarch(), stamp)


# ----------------------------------------------------------------------------- expressions

_TOKEN = re.compile(r"\s*(&&|\|\||!=|<=|>=|[!()=<>]|\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.+-]+)")
_MACRO = "__MACRO__"

#: An expression node: ``("sym", NAME)``, ``("not", node)``, ``("and"|"or", node, node)``,
#: ``("cmp", OP, LEFT, RIGHT)``.
Node = tuple[Any, ...]


def _strip_macros(expr: str) -> str:
    """Replace ``$(cc-option,...)``-style macros (known only to the compiler) by a token."""
    out = []
    i = 0
    while i < len(expr):
        if expr.startswith("$(", i):
            depth = 0
            j = i + 1
            while j < len(expr):
                depth += {"(": 1, ")": -1}.get(expr[j], 0)
                if depth == 0:
                    break
                j += 1
            out.append(_MACRO)
            i = j + 1
        else:
            out.append(expr[i])
            i += 1
    return "".join(out)


def _tokens(expr: str) -> list[str]:
    text = _strip_macros(expr)
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if not found:
            raise ValueError(f"cannot read Kconfig expression {expr!r}")
        tokens.append(found.group(1))
        pos = found.end()
    return tokens


class _Parser:
    def __init__(self, expr: str) -> None:
        self.tokens = _tokens(expr)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek() == "||":
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.peek() == "&&":
            self.take()
            node = ("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            return ("not", self.unary())
        if self.peek() == "(":
            self.take()
            node = self.or_()
            if self.peek() != ")":
                raise ValueError("missing )")
            self.take()
            return node
        left = self.take()
        if self.peek() in ("=", "!=", "<", ">", "<=", ">="):
            op = self.take()
            return ("cmp", op, left, self.take())
        return ("sym", left)


@functools.lru_cache(maxsize=4096)
def parse_expr(expr: str) -> Node:
    """A Kconfig expression as nested tuples: ``("and", a, b)``, ``("sym", "PCI")``..."""
    return _Parser(expr).parse()


def _value(token: str, config: Mapping[str, str]) -> str:
    if token[:1] in "\"'":
        return token[1:-1]
    if token in LEVEL or re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", token):
        return token
    if token == _MACRO:
        return "y"
    return config.get(token, "n") or "n"


def _level(token: str, config: Mapping[str, str]) -> int:
    return LEVEL.get(_value(token, config), 0)


def evaluate(node: Node, config: Mapping[str, str]) -> int:
    """The tristate value of an expression (0 n, 1 m, 2 y) under ``config``."""
    kind = node[0]
    if kind == "sym":
        return _level(node[1], config)
    if kind == "not":
        return 2 - evaluate(node[1], config)
    if kind == "and":
        return min(evaluate(node[1], config), evaluate(node[2], config))
    if kind == "or":
        return max(evaluate(node[1], config), evaluate(node[2], config))
    op, left, right = node[1], _value(node[2], config), _value(node[3], config)
    if op in ("=", "!="):
        return 2 if (left == right) == (op == "=") else 0
    try:
        a, b = int(left, 0), int(right, 0)
    except ValueError:
        a, b = left, right  # type: ignore[assignment]
    result = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    return 2 if result else 0


def evaluate_text(expr: str, config: Mapping[str, str]) -> int:
    try:
        return evaluate(parse_expr(expr), config)
    except (ValueError, IndexError):
        return 2  # an expression we cannot read is not what blocks the user


def symbols_in(expr: str) -> list[str]:
    """The symbols an expression names, in order, each once."""
    try:
        tokens = _tokens(expr)
    except ValueError:
        return []
    names = [t for t in tokens if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t)]
    return list(dict.fromkeys(n for n in names if n not in LEVEL and n != _MACRO))


def render(node: Node) -> str:
    kind = node[0]
    if kind == "sym":
        return str(node[1])
    if kind == "not":
        return f"!{render(node[1])}"
    if kind in ("and", "or"):
        return f"({render(node[1])} {'&&' if kind == 'and' else '||'} {render(node[2])})"
    return f"{node[2]}{node[1]}{node[3]}"


# ----------------------------------------------------------------------------- what blocks it


@dataclass
class Needs:
    """What setting a symbol takes: other symbols to set, and obstacles no setting can
    remove (a ``!FOO`` that is on, an architecture symbol, a symbol without prompt)."""

    set: dict[str, str] = field(default_factory=dict)
    obstacles: list[str] = field(default_factory=list)

    def merge(self, other: Needs) -> None:
        for name, value in other.set.items():
            if LEVEL.get(self.set.get(name, "n"), 0) < LEVEL.get(value, 0):
                self.set[name] = value
        self.obstacles += [o for o in other.obstacles if o not in self.obstacles]


def _needs_expr(
    node: Node, want: int, config: Mapping[str, str], index: KconfigIndex, modules: bool
) -> Needs:
    """What makes ``node`` reach ``want``; dependencies are set to y, or to m when
    ``modules`` and ``want`` allow it."""
    if evaluate(node, config) >= want:
        return Needs()
    kind = node[0]
    if kind == "sym" or (kind == "cmp" and _simple_cmp(node)):
        name = node[1] if kind == "sym" else node[2]
        if name in LEVEL or name == _MACRO:
            return Needs(obstacles=[f"needs {render(node)}"])
        if name not in index.definitions:
            return Needs(obstacles=[f"{name} is not declared for {index.srcarch}"])
        if index.kind(name) not in ("bool", "tristate"):
            return Needs(obstacles=[f"needs {render(node)}"])
        exact = node[3] if kind == "cmp" and node[1] == "=" else None
        level = exact or ("m" if modules and want == 1 and index.kind(name) == "tristate" else "y")
        return Needs(set={name: level})
    if kind == "and":
        needs = _needs_expr(node[1], want, config, index, modules)
        needs.merge(_needs_expr(node[2], want, config, index, modules))
        return needs
    if kind == "or":
        left = _needs_expr(node[1], want, config, index, modules)
        if not left.obstacles:
            return left
        right = _needs_expr(node[2], want, config, index, modules)
        return right if not right.obstacles else left
    return Needs(obstacles=[f"needs {render(node)} (now false)"])


def _simple_cmp(node: Node) -> bool:
    """``FOO = y``, ``FOO = m``, ``FOO != n``: a condition on one symbol being on."""
    op, right = node[1], node[3]
    return (op == "=" and right in ("y", "m")) or (op == "!=" and right == "n")


def needs_for(
    index: KconfigIndex, name: str, value: str, config: Mapping[str, str], modules: bool = False
) -> Needs:
    """The symbols to set (and obstacles) for ``name`` to take ``value`` under ``config``;
    with ``modules``, a tristate dependency that may be a module is asked as ``m``.

    Only direct conditions are followed; the fix runs olddefconfig and asks again for the
    symbols that still did not stick, so dependencies of dependencies come in later rounds.
    """
    definitions = index.definitions.get(name)
    if not definitions:
        return Needs(obstacles=[f"{name} is not in this kernel's Kconfig (renamed or removed?)"])
    # A tristate at y needs its dependencies at y; at m, or a bool, int or string, needs
    # them at least m (Kconfig lets a bool depending on an m symbol be y).
    want = 2 if value == "y" and index.kind(name) == "tristate" else 1
    best: Needs | None = None
    for definition in definitions:
        needs = Needs()
        for _, expr in definition.conditions():
            try:
                node = parse_expr(expr)
            except (ValueError, IndexError):
                continue
            needs.merge(_needs_expr(node, want, config, index, modules))
        if not definition.prompt:
            selectors = index.selected_by.get(name, [])
            needs.obstacles.append(
                f"{name} has no prompt: only a select sets it"
                + (
                    f" ({', '.join(selectors[:4])}{'...' if len(selectors) > 4 else ''})"
                    if selectors
                    else ""
                )
            )
        if best is None or (len(needs.obstacles), len(needs.set)) < (
            len(best.obstacles),
            len(best.set),
        ):
            best = needs
    assert best is not None
    return best


def dependency_hint(
    tree: Path, name: str, config: Mapping[str, str], srcarch: str | None = None
) -> str:
    """Why ``name`` may not stick: its unmet conditions with the current values of the
    symbols in them, and where it is declared; or that nothing blocks it."""
    index = read_kconfig(tree, srcarch)
    definitions = index.definitions.get(name)
    if not definitions:
        return f"{name} is not in this kernel's Kconfig (renamed or removed?)"
    hints: list[str] = []
    for definition in definitions:
        for how, expr in definition.conditions():
            if evaluate_text(expr, config) == 2:
                continue
            values = ", ".join(f"{s}={config.get(s, 'n') or 'n'}" for s in symbols_in(expr))
            hints.append(f"{how} {expr} [{values}]")
        if not definition.prompt:
            selectors = index.selected_by.get(name, [])
            hints.append(
                "no prompt: set only by select"
                + (f" from {', '.join(selectors[:4])}" if selectors else "")
            )
    where = ", ".join(d.where for d in definitions)
    if not hints:
        return f"its dependencies are met ({where})"
    return "; ".join(dict.fromkeys(hints)) + f" ({where})"
