"""Words for options: menuconfig-style labels, help texts, search and value checks.

Plain functions over the schema and a profile, kept apart from the widgets so they can be
tested without running an app.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text

from livecd_tui.options import (
    MENUS,
    OPTIONS,
    Option,
    dependents_of,
    describe_type,
    format_value,
)
from livecd_tui.profile import Profile, ProfileError

#: Widest value shown inside a tree label before it is cut with an ellipsis.
VALUE_WIDTH = 28

#: One-character marks in front of a label (readable without colour).
MARK_INVALID = "!"
MARK_CHANGED = "+"
MARK_HIDDEN = "-"
LEGEND = f"{MARK_CHANGED} changed  {MARK_INVALID} invalid  {MARK_HIDDEN} hidden"


def short(text: str, width: int = VALUE_WIDTH) -> str:
    """``text`` cut to ``width`` characters, the cut shown with an ellipsis."""
    return text if len(text) <= width else text[: width - 3] + "..."


def shown_path(path: Path) -> str:
    """A path relative to the current dir when it is below it (short, and the same in every
    test run), else absolute."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative


def value_text(option: Option, value: Any) -> str:
    """An option's value the way menuconfig shows it: ``[*]``, ``(value)``, ``<choice>``."""
    if option.kind == "bool":
        return "[*]" if value else "[ ]"
    if option.kind == "choice":
        return f"<{value}>"
    if option.kind == "list":
        return "(" + short(", ".join(value)) + ")"
    return "(" + short(str(value)) + ")"


def menu_label(key: str) -> Text:
    """A menu's line in the tree: its title and menuconfig's arrow."""
    return Text.assemble("  ", (MENUS[key].title, "bold"), "  --->")


def option_label(option: Option, profile: Profile, problem: str | None) -> Text:
    """An option's line in the tree: mark, value and title, styled by its state."""
    value = profile.values[option.key]
    hidden = not profile.is_active(option.key)
    changed = value != option.default
    if problem:
        mark, style = MARK_INVALID, "bold red"
    elif changed:
        mark, style = MARK_CHANGED, "bold"
    elif hidden:
        mark, style = MARK_HIDDEN, ""
    else:
        mark, style = " ", ""
    if hidden:
        style = (style + " dim").strip()
    return Text.assemble(
        (mark + " ", style), (value_text(option, value), style), " ", (option.title, style)
    )


def hidden_reason(option: Option, profile: Profile) -> str | None:
    """Why an option is hidden (its ``depends_on`` is not met), or None when it is shown."""
    unmet = [
        (other, allowed)
        for other, allowed in option.depends_on
        if profile.values.get(other) not in allowed
    ]
    if not unmet:
        return None
    return "used only when " + " and ".join(
        f"{other} is {' or '.join(format_value(v) for v in allowed)}"
        f" (now {format_value(profile.values.get(other))})"
        for other, allowed in unmet
    )


def menu_path(key: str) -> str:
    """Where an option or menu sits in the menus: ``Kernel > Driver groups``."""
    parts = key.split(".")
    titles = []
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if prefix in MENUS:
            titles.append(MENUS[prefix].title)
    return " > ".join(titles)


def summary_line(option: Option) -> str:
    """Type and default on one line, for the help panel."""
    return f"{option.key} | {describe_type(option)} | default {format_value(option.default)}"


def full_help(key: str, profile: Profile, problem: str | None = None) -> str:
    """Everything about an option or menu, as the ``?`` help shows it."""
    if key in MENUS:
        menu = MENUS[key]
        lines = [f"{menu.title}  ({menu_path(key)})", f"TOML table: [{key}]", "", menu.help]
        inside = [o for o in OPTIONS.values() if o.section == key]
        if inside:
            lines += ["", "Options:"] + [f"  {o.key}: {o.title}" for o in inside]
        return "\n".join(lines)
    option = OPTIONS[key]
    value = profile.values[key]
    lines = [
        f"{option.title}  ({menu_path(option.section)})",
        "",
        option.help,
        "",
        f"TOML key:  {key}",
        f"Type:      {describe_type(option)}",
        f"Value:     {format_value(value)}",
        f"Default:   {format_value(option.default)}",
    ]
    allowed = option.choices or option.item_choices
    if allowed:
        lines.append("Allowed:   " + ", ".join(allowed))
    if option.depends_on:
        condition = " and ".join(
            f"{other} is {' or '.join(format_value(v) for v in values)}"
            for other, values in option.depends_on
        )
        state = "met" if profile.is_active(key) else "NOT met: the option is hidden"
        lines.append(f"Depends on: {condition} ({state})")
    dependents = dependents_of(key)
    if dependents:
        lines.append("Shows:     " + ", ".join(d.key for d in dependents))
    if problem:
        lines += ["", f"Problem:   {problem}"]
    return "\n".join(lines)


def problems_by_key(profile: Profile) -> dict[str, str]:
    """Each invalid option's reason, for marking the tree."""
    return {p.key: p.message for p in profile.problems() if p.key}


def check_value(profile: Profile, key: str, value: Any) -> str | None:
    """Why ``profile.set(key, value)`` would refuse the value, or None if it would take it.

    Tried on a copy, so the profile itself never changes.
    """
    scratch = dataclasses.replace(profile, values=dict(profile.values))
    try:
        scratch.set(key, value)
    except ProfileError as err:
        return "; ".join(p.message for p in err.problems)
    return None


def parse_text(option: Option, text: str) -> tuple[Any, str | None]:
    """A value typed into an input, in the option's type: (value, None) or (None, reason)."""
    if option.kind == "int":
        try:
            return int(text.strip()), None
        except ValueError:
            return None, f"{text.strip() or 'an empty value'!r} is not a whole number"
    return text, None


@dataclass(frozen=True)
class Match:
    """One search hit: the option or menu, and why it is hidden (None when shown)."""

    key: str
    title: str
    hidden: str | None


def search(words: str, profile: Profile) -> list[Match]:
    """Options and menus whose key, title or help holds every word (case-insensitive).

    Matches in the key or title come before matches found only in the help text.
    """
    terms = words.lower().split()
    if not terms:
        return []
    ranked: list[tuple[int, Match]] = []
    for menu in MENUS.values():
        haystack = f"{menu.key} {menu.title} {menu.help}".lower()
        if all(t in haystack for t in terms):
            strong = all(t in f"{menu.key} {menu.title}".lower() for t in terms)
            ranked.append((0 if strong else 1, Match(menu.key, menu.title + " --->", None)))
    for option in OPTIONS.values():
        haystack = f"{option.key} {option.title} {option.help}".lower()
        if all(t in haystack for t in terms):
            strong = all(t in f"{option.key} {option.title}".lower() for t in terms)
            ranked.append(
                (
                    0 if strong else 1,
                    Match(option.key, option.title, hidden_reason(option, profile)),
                )
            )
    ranked.sort(key=lambda pair: pair[0])  # stable: schema order within each rank
    return [match for _, match in ranked]
