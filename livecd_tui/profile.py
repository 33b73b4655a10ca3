"""TOML profiles: reading with line-accurate errors, ``extends``, and atomic saving.

A profile file holds only the values that differ from what it inherits (the defaults, or the
profile named by ``extends``). Every problem is collected, so a user sees them all at once,
each with the file, line and option key it concerns.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from livecd_tui import __version__
from livecd_tui.options import (
    MENUS,
    OPTIONS,
    Option,
    defaults,
    is_active,
    path_length_problem,
    validate_value,
)

PROFILE_SUFFIX = ".toml"
#: A profile is a page of settings; anything larger is not one (``extends = "/dev/zero"``).
MAX_PROFILE_BYTES = 1 << 20
#: How many profiles an ``extends`` chain may hold, the first included.
MAX_EXTENDS_DEPTH = 32
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a profile, located as precisely as we can."""

    file: str
    line: int | None
    key: str | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ProfileError(Exception):
    """A profile could not be used; ``problems`` says every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Profile:
    """Every option's value, plus where they came from.

    ``inherited`` holds defaults < base profiles; ``values`` adds this file's own settings.
    Relative paths in values are relative to the profile's directory (``resolve_path``).
    """

    values: dict[str, Any]
    inherited: dict[str, Any]
    path: Path | None = None
    extends: str | None = None
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The profile's name: its file name without ``.toml`` (``default`` if unsaved)."""
        return self.path.stem if self.path else "default"

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in this profile are taken from."""
        return self.path.parent if self.path else Path.cwd()

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def problem(self, key: str, message: str) -> Problem:
        """``message`` about option ``key``, placed where this profile sets it (its file and
        line; just the file when the value is inherited or the default)."""
        return Problem(str(self.path or self.name), self.lines.get(key), key, message)

    def is_active(self, key: str) -> bool:
        """Whether the option is in use given the other values (its depends_on holds)."""
        return is_active(OPTIONS[key], self.values)

    def resolve_path(self, key: str) -> Path | None:
        """A path option as an absolute path, or None when empty (meaning automatic)."""
        value = self.values[key]
        if not value:
            return None
        return (self.base_dir / os.path.expanduser(value)).resolve()

    def set(self, key: str, value: Any) -> None:
        """Change one value after validating it; raises ProfileError and changes nothing
        when the value is refused."""
        option = OPTIONS.get(key)
        if option is None:
            raise ProfileError([Problem(self.name, None, key, "unknown option" + _hint(key))])
        checked, reason = validate_value(option, value)
        if reason is not None:
            raise ProfileError([Problem(self.name, None, key, reason)])
        problem = _path_problem(option, checked, self.base_dir)
        if problem:
            raise ProfileError([Problem(self.name, None, key, problem)])
        self.values[key] = checked

    def changed(self) -> dict[str, Any]:
        """The values that differ from what the profile inherits, in schema order."""
        return {k: v for k, v in self.values.items() if self.inherited.get(k) != v}

    def problems(self) -> list[Problem]:
        """Re-check every value (paths may have appeared or gone since loading)."""
        found = []
        for key, option in OPTIONS.items():
            value = self.values[key]
            _, reason = validate_value(option, value)
            reason = reason or _path_problem(option, value, self.base_dir)
            if reason and is_active(option, self.values):
                found.append(Problem(self.name, self.lines.get(key), key, reason))
        return found

    def to_toml(self) -> str:
        """The profile file's text: a header, ``extends``, then the changed values."""
        tables: dict[str, Any] = {}
        if self.extends:
            tables["extends"] = self.extends
        for key, value in self.changed().items():
            node = tables
            *parents, name = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[name] = value
        header = f"# livecd-tui {__version__} profile. Only values that differ from the defaults"
        header += " are stored;\n# `livecd-tui options` lists them all.\n"
        return header + tomli_w.dumps(tables)

    def save(self, path: Path | None = None) -> Path:
        """Write the profile atomically (temp file, fsync, rename) and remember the path."""
        target = Path(path or self.path or "default.toml")
        write_atomically(target, self.to_toml().encode())
        if self.path and target.resolve().parent != self.path.resolve().parent and self.extends:
            # Keep `extends` pointing at the same base when saving elsewhere.
            base = (self.path.parent / self.extends).resolve()
            self.extends = os.path.relpath(base, target.resolve().parent)
            write_atomically(target, self.to_toml().encode())
        self.path = target
        return target


def write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so a crash leaves either the old or the new file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_profile() -> Profile:
    """A profile with every option at its default."""
    return Profile(values=defaults(), inherited=defaults())


def load_profile(path: Path | str) -> Profile:
    """Read a profile and everything it extends; raise ProfileError with every problem."""
    path = Path(path)
    try:
        return _load(path, chain=())
    except _Unreadable as err:
        raise ProfileError([Problem(str(path), None, None, err.reason)]) from None


class _Unreadable(Exception):
    """A profile file that cannot be read at all; ``reason`` says why, without its name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def not_a_profile_file(path: Path) -> str | None:
    """Why ``path`` cannot be a profile file (missing, a directory, a device, a FIFO, a
    symbolic link loop, too big), or None when it is a regular file of a sane size."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "does not exist"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"is {_file_kind(info.st_mode)}, not a profile file"
    kernel = next(
        (d for d in ("/proc", "/sys") if os.path.realpath(path).startswith(d + "/")), None
    )
    if kernel:  # regular files in name only: reading /proc/kmsg takes the kernel's messages
        return f"is a file of the kernel's {kernel}, not a profile file"
    if info.st_size > MAX_PROFILE_BYTES:
        return _too_big(info.st_size)
    return None


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _too_big(size: int) -> str:
    return (
        f"is {size} bytes; a profile file is at most {MAX_PROFILE_BYTES // 1024} KiB "
        "(is it the right file?)"
    )


def _read_profile_bytes(path: Path) -> bytes:
    """The bytes of a profile file: regular files only, at most MAX_PROFILE_BYTES.

    Checked before opening (a tape device rewinds on open), and again on the open file, which
    is opened non-blocking (a FIFO swapped in meanwhile must not hang the tool).
    """
    reason = not_a_profile_file(path)
    if reason:
        raise _Unreadable(reason)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise _Unreadable(f"cannot be read: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _Unreadable(f"is {_file_kind(mode)}, not a profile file")
        try:
            data = handle.read(MAX_PROFILE_BYTES + 1)
        except OSError as err:
            raise _Unreadable(f"cannot be read: {err.strerror}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise _Unreadable(_too_big(len(data)))
    return data


def _decode(data: bytes, shown: str) -> str:
    """The text of a profile file: UTF-8, a leading byte order mark dropped (editors on
    Windows write one; TOML does not allow it, but it means nothing here)."""
    try:
        return data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start + (len(_BOM) if data.startswith(_BOM) else 0)
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            why = "is UTF-16 (it starts with a UTF-16 byte order mark)"
        else:
            byte = data[offset]
            latin = f", '{chr(byte)}' in Latin-1" if byte >= 0xA0 else ""
            why = f"is not UTF-8 (byte 0x{byte:02x}{latin})"
        raise ProfileError(
            [Problem(shown, line, None, f"the file {why}; save it as UTF-8", column)]
        ) from None


def _load(path: Path, chain: tuple[Path, ...]) -> Profile:
    shown = str(path)
    resolved = Path(os.path.realpath(path))
    text = _decode(_read_profile_bytes(path), shown)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line, column = _error_position(err)
        message = str(err).split(" (at line")[0]
        raise ProfileError(
            [Problem(shown, line, None, f"TOML syntax: {message}", column)]
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ProfileError(
            [
                Problem(
                    shown,
                    None,
                    None,
                    "TOML arrays or tables nested hundreds of levels deep (no option is)",
                )
            ]
        ) from None

    lines = _key_lines(text)
    problems: list[Problem] = []
    inherited = defaults()
    extends = data.pop("extends", None)
    if extends is not None:
        line = lines.get("extends")
        if not isinstance(extends, str) or not extends:
            problems.append(Problem(shown, line, "extends", "must be the path of another profile"))
            extends = None
        else:
            base_path = path.parent / os.path.expanduser(extends)
            base_real = Path(os.path.realpath(base_path))
            looked = f" (looked at {base_path})" if str(base_path) != extends else ""
            if base_real in (*chain, resolved):
                cycle = " -> ".join(str(p) for p in (*chain, resolved, base_real))
                problems.append(Problem(shown, line, "extends", f"extends cycle: {cycle}"))
            elif len(chain) + 1 >= MAX_EXTENDS_DEPTH:
                problems.append(
                    Problem(
                        shown,
                        line,
                        "extends",
                        (
                            f"{extends}: more than {MAX_EXTENDS_DEPTH} profiles extend one "
                            "another; merge some of them"
                        ),
                    )
                )
            else:
                try:
                    base = _load(base_path, (*chain, resolved))
                    inherited = dict(base.values)
                except _Unreadable as err:
                    problems.append(
                        Problem(shown, line, "extends", f"{extends} {err.reason}{looked}")
                    )
                except ProfileError as err:
                    problems.extend(err.problems)

    values = dict(inherited)
    for key, value in _flatten(data):
        line = _line_of(lines, key)
        option = OPTIONS.get(key)
        if option is None:
            if key in MENUS:
                problems.append(
                    Problem(shown, line, key, f"[{key}] is a table of options, not a value")
                )
            else:
                problems.append(Problem(shown, line, key, "unknown option" + _hint(key)))
            continue
        checked, reason = validate_value(option, value)
        if reason is not None:
            problems.append(Problem(shown, line, key, reason))
            continue
        values[key] = checked

    profile = Profile(values=values, inherited=inherited, path=path, extends=extends, lines=lines)
    if not problems:
        for key, option in OPTIONS.items():
            reason = _path_problem(option, values[key], path.parent)
            if reason and is_active(option, values) and values[key] != inherited[key]:
                problems.append(Problem(shown, lines.get(key), key, reason))
    if problems:
        raise ProfileError(problems)
    return profile


#: Option keys are at most a few tables deep; a deeper table is reported as it stands.
_MAX_TABLE_DEPTH = 8


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in OPTIONS and key.count(".") < _MAX_TABLE_DEPTH:
            yield from _flatten(value, key + ".")
        else:
            yield key, value


def _path_problem(option: Option, value: Any, base: Path) -> str | None:
    if option.kind != "path" or not option.must_exist or not value:
        return None
    full = base / os.path.expanduser(value)
    if not full.exists():
        return f"{value} does not exist" + (f" (looked at {full})" if full != Path(value) else "")
    return None


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, OPTIONS.keys(), n=1, cutoff=0.6)
    if not close:
        # A right name in the wrong table: compare last parts.
        name = key.rpartition(".")[2]
        close = [k for k in OPTIONS if k.rpartition(".")[2] == name][:1]
    return f"; did you mean {close[0]}?" if close else ""


def _error_position(err: tomllib.TOMLDecodeError) -> tuple[int | None, int | None]:
    lineno = getattr(err, "lineno", None)
    colno = getattr(err, "colno", None)
    if lineno is None:
        match = re.search(r"at line (\d+), column (\d+)", str(err))
        if match:
            return int(match.group(1)), int(match.group(2))
    return lineno, colno


# No two parts of these may match the same text: a line of 20,000 blanks (in a multi-line
# string) made a lazy group backtrack for minutes.
_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGN = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Map each dotted key to the line it is set on, for error messages.

    tomllib does not report positions, so this follows table headers and assignments
    line by line, keys of inline tables included; values that span lines are attributed to
    their first line.
    """
    lines: dict[str, int] = {}
    table = ""
    depth = 0
    in_string = ""  # the quotes of the multi-line string the line is inside, if any
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:  # its lines are text, whatever they look like
            if line.count(in_string) % 2:
                in_string = ""
            continue
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        header = _TABLE.match(line)
        if header:
            table = _normalise_key(header.group(1).strip())
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = _normalise_key(assign.group(1))
            full = f"{table}.{key}" if table else key
            lines.setdefault(full, number)
            rest = line[assign.end() :]
            if rest.lstrip().startswith("{"):
                _inline_key_lines(rest, full, number, lines)
            in_string = next((q for q in ('"""', "'''") if rest.count(q) % 2), "")
            depth = 0 if in_string else max(0, rest.count("[") - rest.count("]"))
    return lines


_INLINE_KEY = re.compile(rf"\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=\s*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _inline_key_lines(value: str, prefix: str, number: int, lines: dict[str, int]) -> None:
    """Record the keys of the inline table that ``value`` (the rest of a line) starts with,
    nested inline tables included (those inside arrays cannot be options: skipped)."""
    stack: list[str | None] = []  # the key of each open {, None for [ and what is in one
    pending: str | None = prefix  # the key whose value comes next
    index = 0
    while index < len(value):
        char = value[index]
        if char in "\"'":
            string = _STRING.match(value, index)
            index = string.end() if string else len(value)
            continue
        index += 1
        if char == "#":
            break
        if char in "{[":
            stack.append(pending if char == "{" else None)
            pending = None
        elif char in "]}":
            if stack:
                stack.pop()
            if not stack:
                break
        if char in "{," and stack and stack[-1] is not None:
            found = _INLINE_KEY.match(value, index)
            if found:
                pending = f"{stack[-1]}.{_normalise_key(found.group(1))}"
                lines.setdefault(pending, number)
                index = found.end()


def _line_of(lines: dict[str, int], key: str) -> int | None:
    """The line a key is set on, else that of a deeper key in it (one too deep to be
    followed), else that of the nearest table holding it."""
    if key in lines:
        return lines[key]
    deeper = next((n for k, n in lines.items() if k.startswith(key + ".")), None)
    if deeper is not None:
        return deeper
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def _normalise_key(raw: str) -> str:
    parts = [part.strip().strip("\"'") for part in raw.split(".")]
    return ".".join(parts)


def profile_search_dirs() -> list[Path]:
    """Where profiles are looked for by name: ./profiles, the user's config dir, and the
    profiles shipped beside the package."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    shipped = Path(__file__).resolve().parent.parent / "profiles"
    dirs = [Path("profiles"), config_home / "livecd-tui" / "profiles", shipped]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def find_profile(name: str) -> Path:
    """A profile by path, else by name in ``profile_search_dirs``; raises ProfileError."""
    too_long = path_length_problem(name)
    if too_long:
        raise ProfileError([Problem(name[:60] + "...", None, None, too_long)])
    direct = Path(os.path.expanduser(name))
    if direct.is_file():
        return direct
    filename = name if name.endswith(PROFILE_SUFFIX) else name + PROFILE_SUFFIX
    searched = []
    for directory in profile_search_dirs():
        candidate = directory / filename
        searched.append(str(directory))
        if candidate.is_file():
            return candidate
    if os.path.lexists(direct):  # there is something by that name, but not a file
        raise ProfileError(
            [Problem(name, None, None, not_a_profile_file(direct) or "is not a profile file")]
        )
    raise ProfileError(
        [Problem(name, None, None, "no such profile; looked in " + ", ".join(searched))]
    )


def list_profiles() -> list[Path]:
    """Every profile found in the search dirs, by name (the first of each name wins)."""
    seen: dict[str, Path] = {}
    for directory in profile_search_dirs():
        if directory.is_dir():
            for candidate in sorted(directory.glob("*" + PROFILE_SUFFIX)):
                seen.setdefault(candidate.stem, candidate)
    return list(seen.values())
