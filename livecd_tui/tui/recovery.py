"""Unsaved edits that survive a lost terminal: a recovery file per profile.

Shortly after each edit the app writes the profile as it is in memory to
``$XDG_STATE_HOME/livecd-tui/recovery/HASH.toml`` (``~/.local/state`` when the variable is
unset), HASH naming the profile file. Saving, or quitting the app cleanly, removes it; an app
that dies with the terminal (SSH gone) leaves it, and the next start on the same profile
offers the edits back. The file is an ordinary profile in TOML, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecd_tui.options import OPTIONS, format_value
from livecd_tui.profile import Profile, ProfileError, write_atomically


def recovery_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "livecd-tui" / "recovery"


def recovery_path(profile_path: Path | None) -> Path:
    """The recovery file of the profile at ``profile_path`` (None: an unsaved profile)."""
    key = str(profile_path.resolve()) if profile_path else "(unsaved profile)"
    return recovery_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.toml"


def keep(profile: Profile) -> Path:
    """Write the profile's in-memory values to its recovery file."""
    target = recovery_path(profile.path)
    where = profile.path.resolve() if profile.path else "an unsaved profile"
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    text = (
        f"# livecd-tui: unsaved edits of {where}, kept at {when}.\n"
        "# The TUI offers them back when it opens that profile again.\n" + profile.to_toml()
    )
    write_atomically(target, text.encode())
    return target


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Recovered:
    """Edits found in a recovery file: the values they give, what differs, what could not be
    taken back (a value no longer valid, a path that is gone)."""

    path: Path
    kept_at: float
    values: dict[str, Any]
    changes: list[str]
    refused: list[str]


def recovered(profile: Profile) -> Recovered | None:
    """The edits kept for this profile, if any differ from what it holds now."""
    path = recovery_path(profile.path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        kept_at = path.stat().st_mtime
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    data.pop("extends", None)
    copy = dataclasses.replace(profile, values=dict(profile.inherited))
    refused = []
    for key, value in _flatten(data):
        try:
            copy.set(key, value)
        except ProfileError as err:
            refused.append("; ".join(str(p.message) for p in err.problems) + f" ({key})")
    changes = [
        f"{key}: {_short(profile.values.get(key))} -> {_short(value)}"
        for key, value in copy.values.items()
        if profile.values.get(key) != value
    ]
    if not changes:
        return None
    return Recovered(path, kept_at, copy.values, changes, refused)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in OPTIONS:
            yield from _flatten(value, key + ".")
        else:
            yield key, value


def _short(value: Any) -> str:
    text = format_value(value)
    return text if len(text) <= 30 else text[:27] + "..."
