"""TOML profiles: reading with line-accurate errors, ``extends``, and atomic saving.

A profile file holds only the values that differ from what it inherits (the defaults, or the
profile named by ``extends``). Every problem is collected, so a user sees them all at once,
each with the file, line and option key it concerns.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from livecd_tui import __version__
from livecd_tui.options import MENUS, OPTIONS, Option, defaults, is_active, validate_value

PROFILE_SUFFIX = ".toml"


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
    return _load(Path(path), chain=())


def _load(path: Path, chain: tuple[Path, ...]) -> Profile:
    shown = str(path)
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ProfileError([Problem(shown, None, "extends", f"extends cycle: {cycle}")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError([Problem(shown, None, None, "no such profile file")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError([Problem(shown, None, None, f"cannot read: {err}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line, column = _error_position(err)
        message = str(err).split(" (at line")[0]
        raise ProfileError([Problem(shown, line, None, f"TOML syntax: {message}", column)]) \
            from None

    lines = _key_lines(text)
    problems: list[Problem] = []
    inherited = defaults()
    extends = data.pop("extends", None)
    if extends is not None:
        if not isinstance(extends, str) or not extends:
            problems.append(Problem(shown, lines.get("extends"), "extends",
                                    "must be the path of another profile"))
            extends = None
        else:
            base_path = path.parent / extends
            try:
                base = _load(base_path, (*chain, resolved))
                inherited = dict(base.values)
            except ProfileError as err:
                problems.extend(err.problems)

    values = dict(inherited)
    for key, value in _flatten(data):
        line = lines.get(key)
        option = OPTIONS.get(key)
        if option is None:
            if key in MENUS:
                problems.append(Problem(shown, line, key, f"[{key}] is a table of options, "
                                        "not a value"))
            else:
                problems.append(Problem(shown, line, key, "unknown option" + _hint(key)))
            continue
        checked, reason = validate_value(option, value)
        if reason is not None:
            problems.append(Problem(shown, line, key, reason))
            continue
        values[key] = checked

    profile = Profile(values=values, inherited=inherited, path=path, extends=extends,
                      lines=lines)
    if not problems:
        for key, option in OPTIONS.items():
            reason = _path_problem(option, values[key], path.parent)
            if reason and is_active(option, values) and values[key] != inherited[key]:
                problems.append(Problem(shown, lines.get(key), key, reason))
    if problems:
        raise ProfileError(problems)
    return profile


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in OPTIONS:
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


_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGN = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Map each dotted key to the line it is set on, for error messages.

    tomllib does not report positions, so this follows table headers and assignments
    line by line; values that span lines are attributed to their first line.
    """
    lines: dict[str, int] = {}
    table = ""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        header = _TABLE.match(line)
        if header:
            table = _normalise_key(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = _normalise_key(assign.group(1))
            full = f"{table}.{key}" if table else key
            lines.setdefault(full, number)
            rest = line[assign.end():]
            depth = max(0, rest.count("[") - rest.count("]"))
    return lines


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
    raise ProfileError([Problem(name, None, None,
                                "no such profile; looked in " + ", ".join(searched))])


def list_profiles() -> list[Path]:
    """Every profile found in the search dirs, by name (the first of each name wins)."""
    seen: dict[str, Path] = {}
    for directory in profile_search_dirs():
        if directory.is_dir():
            for candidate in sorted(directory.glob("*" + PROFILE_SUFFIX)):
                seen.setdefault(candidate.stem, candidate)
    return list(seen.values())
