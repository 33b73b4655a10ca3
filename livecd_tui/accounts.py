"""The account files of the packed copy: passwd, shadow, group, gshadow as text.

Pure functions over the files' text, so the scrub can lock every password hash and add the
live login's account to a *copy*, the same way for the squashfs (as pseudo files) and for
the ``/etc`` archive (in its staging tree). Lines that are not ``name:...`` records
(comments, blank lines, NIS ``+`` lines) are kept as they are; a record's password field is
the second one in all four files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Password fields that hold no secret and lock nothing open: kept as they are.
NO_SECRET = ("*", "!", "!!", "!*", "x")
LOCKED = "!"
FIRST_UID = 1000
LAST_UID = 59999


@dataclass
class AccountFiles:
    """The four files' texts (None: the system has no such file)."""

    passwd: str | None = None
    shadow: str | None = None
    group: str | None = None
    gshadow: str | None = None
    #: What was changed, one line each, for the report.
    changes: list[str] = field(default_factory=list)

    def texts(self) -> dict[str, str | None]:
        return {
            "passwd": self.passwd,
            "shadow": self.shadow,
            "group": self.group,
            "gshadow": self.gshadow,
        }


def records(text: str) -> list[list[str] | str]:
    """Each line as its fields, or as the raw text for lines that are not records."""
    out: list[list[str] | str] = []
    for line in text.split("\n"):
        if not line or line.startswith(("#", "+", "-")) or ":" not in line:
            out.append(line)
        else:
            out.append(line.split(":"))
    return out


def join(lines: Sequence[list[str] | str]) -> str:
    return "\n".join(line if isinstance(line, str) else ":".join(line) for line in lines)


def names(text: str | None) -> list[str]:
    """The record names of a file, in order."""
    if text is None:
        return []
    return [r[0] for r in records(text) if isinstance(r, list)]


def lock_passwords(text: str, keep: Iterable[str] = ()) -> tuple[str, list[str]]:
    """Every password field that holds a hash (or is empty) set to ``!``.

    An empty field means "no password needed", which lets anyone in: it is locked too.
    Returns the new text and the names whose field changed. Names in ``keep`` are left.
    """
    kept = set(keep)
    changed = []
    lines = records(text)
    for line in lines:
        if (
            isinstance(line, list)
            and len(line) > 1
            and line[0] not in kept
            and line[1] not in NO_SECRET
        ):
            line[1] = LOCKED
            changed.append(line[0])
    return join(lines), changed


def set_password(text: str, name: str, value: str) -> tuple[str, bool]:
    """Set ``name``'s password field; (new text, whether the record was there)."""
    lines = records(text)
    for line in lines:
        if isinstance(line, list) and line[0] == name and len(line) > 1:
            line[1] = value
            return join(lines), True
    return text, False


def free_id(*texts: str | None, field_index: int = 2) -> int:
    """The first id from 1000 unused in the given files' ``field_index`` column."""
    used: set[int] = set()
    for text in texts:
        if text is None:
            continue
        for line in records(text):
            if isinstance(line, list) and len(line) > field_index and line[field_index].isdigit():
                used.add(int(line[field_index]))
    for candidate in range(FIRST_UID, LAST_UID + 1):
        if candidate not in used:
            return candidate
    raise ValueError("no free id between 1000 and 59999")


def _append(text: str, line: str) -> str:
    if not text:
        return line + "\n"
    return text + ("" if text.endswith("\n") else "\n") + line + "\n"


def add_to_groups(
    text: str, user: str, groups: Iterable[str], member_field: int = 3
) -> tuple[str, list[str]]:
    """Add ``user`` to the member list of each of ``groups`` the file has."""
    wanted = set(groups)
    joined = []
    lines = records(text)
    for line in lines:
        if isinstance(line, list) and line[0] in wanted:
            while len(line) <= member_field:
                line.append("")
            members = [m for m in line[member_field].split(",") if m]
            if user not in members:
                members.append(user)
                line[member_field] = ",".join(members)
                joined.append(line[0])
    return join(lines), joined


@dataclass(frozen=True)
class LiveLogin:
    """Who logs in on the live system, from the profile's ``system.login.*``."""

    user: str  # "root" or the live user's name
    #: The password field to store: "" (none), "!" (locked), a crypt hash, or None to keep
    #: the system's own (a new live user is then locked).
    password_field: str | None
    groups: tuple[str, ...] = ()
    shell: str = "/bin/sh"
    #: Days since 1970 for shadow's "last changed" column (the build's epoch).
    days: int = 0


def apply_scrub_and_login(files: AccountFiles, lock: bool, login: LiveLogin) -> AccountFiles:
    """Lock every hash (when ``lock``), then give the live login its account and password.

    The live user is added when missing: a passwd record (password ``x`` when there is a
    shadow file), shadow, group and gshadow records, and membership of its groups.
    """
    out = AccountFiles(files.passwd, files.shadow, files.group, files.gshadow)
    if lock:
        for attr in ("passwd", "shadow", "group", "gshadow"):
            text = getattr(out, attr)
            if text is None:
                continue
            new, changed = lock_passwords(text)
            if changed:
                setattr(out, attr, new)
                out.changes.append(
                    f"{attr}: password fields of {', '.join(changed)} locked ({LOCKED})"
                )
    user = login.user
    if user != "root" and out.passwd is not None and user not in names(out.passwd):
        uid = free_id(out.passwd, out.group, field_index=2)
        gid = uid if uid not in _ids(out.group) else free_id(out.group)
        has_shadow = out.shadow is not None
        password = LOCKED if login.password_field is None else login.password_field
        out.passwd = _append(
            out.passwd,
            ":".join(
                [
                    user,
                    "x" if has_shadow else password,
                    str(uid),
                    str(gid),
                    "Live user",
                    f"/home/{user}",
                    login.shell,
                ]
            ),
        )
        if has_shadow:
            out.shadow = _append(
                out.shadow or "",
                ":".join([user, password, str(login.days), "0", "99999", "7", "", "", ""]),
            )
        if out.group is not None and user not in names(out.group):
            out.group = _append(out.group, f"{user}:x:{gid}:")
        if out.gshadow is not None and user not in names(out.gshadow):
            out.gshadow = _append(out.gshadow, f"{user}:!::")
        out.changes.append(
            f"passwd: live user {user} added (uid {uid}, gid {gid}, home "
            f"/home/{user}, shell {login.shell})"
        )
        if login.groups:
            joined: list[str] = []
            if out.group is not None:
                out.group, joined = add_to_groups(out.group, user, login.groups)
            if out.gshadow is not None:
                out.gshadow, _ = add_to_groups(out.gshadow, user, joined)
            if joined:
                out.changes.append(f"group: {user} joins {', '.join(joined)}")
    if login.password_field is None:
        return out
    target = "shadow" if out.shadow is not None and user in names(out.shadow) else "passwd"
    text = getattr(out, target)
    if text is not None:
        current = _field(text, user)
        if current is not None and current != login.password_field:
            new, _ = set_password(text, user, login.password_field)
            setattr(out, target, new)
            out.changes.append(f"{target}: {user}'s password {_describe(login.password_field)}")
    return out


def _ids(text: str | None) -> set[int]:
    if text is None:
        return set()
    return {
        int(r[2]) for r in records(text) if isinstance(r, list) and len(r) > 2 and r[2].isdigit()
    }


def _field(text: str, name: str) -> str | None:
    for line in records(text):
        if isinstance(line, list) and line[0] == name and len(line) > 1:
            return line[1]
    return None


def _describe(password_field: str) -> str:
    if password_field == "":
        return "set to none (empty: logs in without one)"
    if password_field == LOCKED:
        return "locked"
    return "set to the profile's hash (system.login.password_hash)"
