"""The two kinds of step a stage is made of, and how each reads as a shell line.

A ``Command`` is an argv list run as is, never through a shell, so a profile value with
spaces, quotes or ``$(...)`` reaches the program unchanged. An ``Action`` is a small named
piece of Python (writing a config file, packing a cpio archive) with the bash lines that do
the same, for ``plan`` and ``export-script``; the Actions that fill a tree get both from one
list of file operations (:mod:`livecd_tui.fileops`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livecd_tui.build import StepContext


@dataclass(frozen=True)
class Command:
    """Run ``argv``; optionally read stdin from a file and/or write stdout to a file."""

    argv: tuple[str, ...]
    describe: str
    cwd: Path | None = None
    stdin: Path | None = None
    stdout: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    #: Variables removed from the environment (a tool that refuses a flag and a variable).
    unset_env: tuple[str, ...] = ()
    #: Package hint shown when the program is missing or fails.
    hint: str = ""
    #: The option that most likely fixes a failure of this command.
    option: str = ""
    #: Succeed (and stop the program) as soon as an output line contains this text.
    until: str | None = None
    #: Fail (and stop the program) after this many seconds.
    timeout: float | None = None
    #: On failure, given every output line: a sentence on what went wrong and the option
    #: most likely at fault ("" keeps ``option``), or None (the boot test's boot phase).
    diagnose: Callable[[Sequence[str]], tuple[str, str] | None] | None = field(
        default=None, compare=False
    )

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) for a in self.argv):
            raise TypeError(f"argv must be a non-empty sequence of strings: {self.argv!r}")

    def shell_line(self) -> str:
        """The command as one copy-pasteable bash line (cd, env and redirections included)."""
        line = shlex.join(self.argv)
        if self.env:
            line = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env) + " " + line
        if self.unset_env:
            line = "env " + " ".join(f"-u {k}" for k in self.unset_env) + " " + line
        if self.stdin:
            line += " < " + shlex.quote(str(self.stdin))
        if self.stdout:
            line += " > " + shlex.quote(str(self.stdout))
        if self.cwd:
            line = f"(cd {shlex.quote(str(self.cwd))} && {line})"
        return line

    def script_lines(self) -> list[str]:
        if self.until is None and self.timeout is None:
            return [self.shell_line()]
        # One argv (env, timeout, program) so that a background job's pid is the program's.
        argv: list[str] = []
        if self.env or self.unset_env:
            argv += ["env", *(f"-u{k}" for k in self.unset_env), *(f"{k}={v}" for k, v in self.env)]
        if self.timeout:
            argv += ["timeout", str(int(self.timeout))]
        argv += self.argv
        line = shlex.join(argv)
        redirect = f" < {shlex.quote(str(self.stdin))}" if self.stdin else ""
        if self.cwd:
            line = f"(cd {shlex.quote(str(self.cwd))} && exec {line}{redirect})"
            redirect = ""
        if self.until is None:
            out = f" > {shlex.quote(str(self.stdout))}" if self.stdout else ""
            return [line + redirect + out]
        # Succeed as soon as the output holds the text, even a prompt without a newline
        # (grep on a pipe only sees whole lines), and stop the program then, as the engine
        # does; fail when it ends (or times out) without it.
        until = shlex.quote(self.until)
        return [
            "until_log=$(mktemp)",
            f'{line}{redirect} > "$until_log" 2>&1 &',
            "until_pid=$!",
            'tail -s 0.2 -n +1 -f --pid="$until_pid" "$until_log" &',
            "tail_pid=$!",
            f'until grep -qF -- {until} "$until_log"; do',
            '    if ! kill -0 "$until_pid" 2>/dev/null; then',
            f'        grep -qF -- {until} "$until_log" && break',
            f"        echo {shlex.quote(f'{self.argv[0]} ended without printing {self.until!r}')}"
            " >&2",
            "        exit 1",
            "    fi",
            "    sleep 0.2",
            "done",
            'kill "$until_pid" 2>/dev/null || true',
            'wait "$until_pid" "$tail_pid" 2>/dev/null || true',
            f"echo {shlex.quote(f'== found {self.until!r}: success')}",
            'rm -f "$until_log"',
        ]


@dataclass(frozen=True)
class Action:
    """A named piece of Python run by the engine, with its bash equivalent for scripts."""

    describe: str
    run: Callable[[StepContext], None] = field(compare=False)
    script: tuple[str, ...] = ()

    def shell_line(self) -> str:
        return f"# {self.describe}"

    def script_lines(self) -> list[str]:
        return list(self.script) or [f": # {self.describe} (done by livecd-tui itself)"]


Step = Command | Action


def command(argv: Sequence[str | Path], describe: str, **kwargs: object) -> Command:
    """Build a Command from strings and paths (paths become their text)."""
    return Command(tuple(str(a) for a in argv), describe, **kwargs)  # type: ignore[arg-type]


def shell_quote(value: str | Path) -> str:
    """Quote one word for the bash equivalents of actions."""
    return shlex.quote(str(value))


def write_file_lines(path: str | Path, text: str) -> list[str]:
    """Bash that writes ``text`` to ``path`` byte for byte: a quoted here-document when the
    text allows one (it ends with a newline and no line is the delimiter), else printf."""
    lines = text.split("\n")
    if text.endswith("\n") and "EOF" not in lines:
        return [f"cat > {shell_quote(path)} <<'EOF'\n{text}EOF"]
    return [f"printf '%s' {shell_quote(text)} > {shell_quote(path)}"]
