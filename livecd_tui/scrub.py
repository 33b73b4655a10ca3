"""Scrub: what the packed copy of a system leaves out or replaces, and the live login.

An installed system carries what lets people into it: SSH host keys, password hashes,
tokens, histories, logs. A live CD made from it is booted by others, so the copy that is
packed must not carry them. Nothing here touches the system root: the squashfs gets
mksquashfs exclude patterns and pseudo files (``-wildcards -ef``, ``-pf``) that replace
files inside the image, and the ``/etc`` archive gets the same changes in its staging tree.

One :class:`ScrubPlan` serves both: exclude patterns (each with the option that asked for
it), replacement files (locked ``/etc/shadow``, empty ``/etc/machine-id``, the live login's
account, autologin), and directories to recreate empty. The report lists every file that
was removed, replaced or added.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import shlex
import shutil
import stat
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from livecd_tui import accounts, excludes, fileops, procs, secrets
from livecd_tui.build import Build
from livecd_tui.steps import shell_quote

#: History files left out wherever they are (system.scrub.histories).
HISTORY_FILES = (
    ".bash_history",
    ".ash_history",
    ".sh_history",
    ".zsh_history",
    ".history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
    ".wget-hsts",
    ".rediscli_history",
)


@dataclass(frozen=True)
class Rule:
    """Exclude patterns one scrub option stands for."""

    option: str
    why: str
    patterns: tuple[str, ...]


#: Where each home-like directory's secrets are: root's, the users', and those of service
#: accounts whose homes are elsewhere (/var/lib/NAME, /srv/NAME, /opt/NAME).
_HOMES = ("root", "home/*", "var/lib/*", "srv/*", "opt/*", "var/*")
#: Per-user stores of credentials (only packed when system.scrub.home is off, or for the
#: service accounts).
USER_SECRETS = (
    ".ssh/id_*",
    ".aws",
    ".docker/config.json",
    ".kube",
    ".password-store",
    ".mozilla",
    ".thunderbird",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/gh/hosts.yml",
    ".local/share/keyrings",
    ".config/rclone/rclone.conf",
    ".s3cfg",
    ".config/gcloud",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "system.scrub.ssh_host_keys",
        "SSH host key (the live system makes its own)",
        ("etc/ssh/ssh_host_*",),
    ),
    Rule(
        "system.scrub.passwords",
        "password backup",
        ("etc/shadow-", "etc/gshadow-", "etc/security/opasswd", "var/backups/*shadow*"),
    ),
    Rule("system.scrub.histories", "history file", tuple("... " + n for n in HISTORY_FILES)),
    Rule("system.scrub.home", "home contents", ("root/*", "root/.*", "home/*/*", "home/*/.*")),
    Rule("system.scrub.logs", "log", ("var/log/*", "var/log/.*")),
    Rule("system.scrub.caches", "user cache", ("root/.cache", "home/*/.cache")),
    Rule("system.scrub.tmp", "temporary file", ("tmp/*", "tmp/.*", "var/tmp/*", "var/tmp/.*")),
    Rule(
        "system.scrub.secrets",
        "secret file",
        (
            "... .netrc",
            "... .gnupg",
            "... .pgpass",
            "... .git-credentials",
            "... *.keytab",
            *(f"{home}/{name}" for home in _HOMES for name in USER_SECRETS),
            "etc/ssl/private/*",
            "etc/ssl/private/.*",
            "etc/pki/tls/private/*",
            "etc/pki/tls/private/.*",
            "etc/letsencrypt/accounts",
            "etc/letsencrypt/keys",
            "etc/letsencrypt/archive/*/privkey*",
            "etc/letsencrypt/live/*/privkey*",
            "etc/apt/auth.conf",
            "etc/apt/auth.conf.d/*",
            "etc/mysql/debian.cnf",
            "etc/cryptsetup-keys.d/*",
            "etc/ppp/*-secrets",
            "etc/ipsec.secrets",
            "etc/ipsec.d/private/*",
            "etc/swanctl/private/*",
            "etc/openvpn/*.key",
            "etc/openvpn/*/*.key",
            "etc/wireguard/*.key",
            "etc/wireguard/*private*",
            "etc/NetworkManager/system-connections/*",
            "var/lib/iwd/*.psk",
            "var/lib/iwd/*.8021x",
            "var/lib/NetworkManager/secret_key",
            "var/lib/bluetooth/*/*",
            "var/lib/systemd/credential.secret",
            "etc/credstore/*",
            "etc/credstore.encrypted/*",
            "usr/lib/credstore/*",
            "usr/lib/credstore.encrypted/*",
            "var/lib/cloud/instances/*/user-data*",
            "var/lib/cloud/instances/*/vendor-data*",
            "var/lib/cloud/instances/*/cloud-config.txt",
            "var/lib/cloud/instances/*/obj.pkl",
            "var/lib/cloud/seed",
            "etc/kubernetes/*.conf",
            "etc/kubernetes/pki/*.key",
            "etc/kubernetes/pki/*/*.key",
            "etc/rancher/k3s/k3s.yaml",
            "var/lib/rancher/k3s/server/token",
            "var/lib/rancher/k3s/server/node-token",
            "var/lib/rancher/k3s/server/cred",
            "var/lib/rancher/k3s/server/tls",
            "var/lib/rancher/k3s/agent/*.key",
            "etc/docker/key.json",
            "var/cache/debconf/passwords.dat",
            "var/lib/systemd/random-seed",
            "var/lib/urandom/random-seed",
        ),
    ),
)

#: Where a systemd drop-in makes sshd's host keys at boot, and its file name.
SSH_UNITS = ("ssh.service", "sshd.service")
UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")
DROP_IN = "livecd-tui.conf"


class ScrubError(Exception):
    """The scrub cannot be done safely (an unreadable shadow, a bad login setting)."""

    def __init__(self, message: str, hint: str = "", option: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.option = option


@dataclass(frozen=True)
class Replacement:
    """A file of the packed copy whose content livecd-tui writes (the original, if any,
    stays out)."""

    path: str
    content: bytes
    mode: int
    uid: int
    gid: int
    option: str
    why: str
    #: Whether the root has the file (so the image must leave the original out).
    replaces: bool = True


@dataclass(frozen=True)
class NewDir:
    """A directory the packed copy gets, empty (recreated after its contents went)."""

    path: str
    mode: int
    uid: int
    gid: int
    option: str
    why: str


@dataclass
class ScrubPlan:
    patterns: list[excludes.Pattern] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)
    new_dirs: list[NewDir] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Whether packed files are scanned for secrets by content (system.scrub.secrets).
    scan: bool = False
    #: Paths (relative to the root) kept even when they hold a secret (system.scrub.allow).
    allow: frozenset[str] = frozenset()

    def all_patterns(self) -> list[excludes.Pattern]:
        """The scrub's patterns plus one per replaced file (mksquashfs ignores a pseudo file
        whose path exists in the source, so the original must be excluded)."""
        replaced = [
            excludes.parse(excludes.escape(r.path), f"replaced: {r.why}", r.option)
            for r in self.replacements
            if r.replaces
        ]
        return [*self.patterns, *replaced]


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    action: str  # removed, replaced, added, recreated
    path: str
    option: str
    why: str
    files: int = 1
    size: int = 0
    #: For a removed directory: the files it held (paths relative to the root).
    contents: tuple[str, ...] = ()

    def line(self) -> str:
        amount = (
            f" ({self.files} files, {human(self.size)})"
            if self.files > 1
            else (f" ({human(self.size)})" if self.size else "")
        )
        return f"{self.action:9} {self.path}{amount}: {self.why} [{self.option}]"


def human(size: float) -> str:
    """A byte count as people read it (1.5 MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# -- the plan ------------------------------------------------------------------------------
def enabled(build: Build, option: str) -> bool:
    return bool(build.profile[option])


def static_patterns(build: Build) -> list[excludes.Pattern]:
    """The patterns of the scrub options that are on (those that need no look at the root)."""
    return [
        excludes.parse(text, rule.why, rule.option)
        for rule in RULES
        if enabled(build, rule.option)
        for text in rule.patterns
    ]


def live_login(build: Build, system_root: Path) -> accounts.LiveLogin:
    """The profile's live login, checked."""
    p = build.profile
    user = p["system.login.user"] or "root"
    choice = p["system.login.password"]
    password: str | None
    if choice == "none":
        password = ""
    elif choice == "locked":
        password = accounts.LOCKED
    elif choice == "keep":
        password = None
    else:
        password = p["system.login.password_hash"]
        if not password:
            raise ScrubError(
                'system.login.password is "hash" but system.login.password_hash is empty',
                hint="make a hash with: openssl passwd -6",
                option="system.login.password_hash",
            )
    shell = (
        "/bin/bash"
        if any(_exists(system_root, d) for d in ("bin/bash", "usr/bin/bash"))
        else "/bin/sh"
    )
    return accounts.LiveLogin(
        user, password, tuple(p["system.login.groups"]), shell, build.epoch // 86400
    )


def make_plan(
    build: Build,
    root: Path,
    tops: Iterable[str],
    system_root: Path | None = None,
    all_root: bool = False,
) -> ScrubPlan:
    """What to leave out of, replace in and add to the copy of ``root`` that is packed.

    ``root`` holds the files to scrub (the system root, or the ``/etc`` archive's staging
    tree) and ``tops`` are its top-level directories that are packed; ``system_root`` is the
    whole system, where the init system, shells and units are looked up (the same as
    ``root`` for the squashfs). ``all_root``: the image makes every file root's
    (``-all-root``), so a live user's home is given to the user at boot.
    """
    system_root = system_root or root
    packed = set(tops)
    plan = ScrubPlan(
        patterns=static_patterns(build),
        scan=enabled(build, CONTENT_OPTION),
        allow=frozenset(secrets.normalise_allow(build.profile[ALLOW_OPTION])),
    )
    login = live_login(build, system_root)
    if "var" in packed:
        _var(build, plan, root)
    if "etc" not in packed:
        keep_allowed(plan, root, packed)
        return plan
    if enabled(build, "system.scrub.machine_id"):
        _machine_id(plan, root)
    _accounts(build, plan, root, login)
    init = init_system(system_root)
    if enabled(build, "system.scrub.ssh_host_keys"):
        _ssh_host_keys(plan, root, system_root, init)
    if build.profile["bootloader.serial"]:
        _serial_getty(build, plan, root, system_root, init)
    autologin = build.profile["system.login.autologin"]
    if autologin != "off":
        _autologin(plan, root, system_root, init, login.user, autologin)
    if login.user != "root":
        _live_home(build, plan, root, system_root, init, login.user, all_root)
    if login.password_field == "":
        _warn_empty_passwords(plan, root)
    keep_allowed(plan, root, packed)
    return plan


def keep_allowed(plan: ScrubPlan, root: Path, tops: Iterable[str]) -> None:
    """Files that system.scrub.allow lists and a scrub pattern leaves out: packed all the
    same, as they are (a pseudo file for mksquashfs, written back into a staging tree)."""
    matcher = excludes.Matcher(plan.patterns)
    packed = set(tops)
    for rel in sorted(plan.allow):
        pattern = matcher.excluded(rel)
        path = root / rel
        if rel.split("/")[0] in packed and not os.path.lexists(path):
            plan.notes.append(f"{ALLOW_OPTION} lists /{rel}, which {root} does not have")
            continue
        if (
            rel.split("/")[0] not in packed
            or pattern is None
            or realpath_in(root, rel) != path
            or not path.is_file()
        ):
            continue
        mode, uid, gid, _ = _stat_of(path, 0o600)
        plan.replacements.append(
            Replacement(
                rel,
                path.read_bytes(),
                mode,
                uid,
                gid,
                ALLOW_OPTION,
                f"left out by {pattern.option} ({pattern.reason}), kept: listed in {ALLOW_OPTION}",
                replaces=False,
            )
        )


def _var(build: Build, plan: ScrubPlan, root: Path) -> None:
    if enabled(build, "system.scrub.machine_id"):
        dbus = root / "var" / "lib" / "dbus" / "machine-id"
        if dbus.is_file() and not dbus.is_symlink():
            plan.patterns.append(
                excludes.parse(
                    "var/lib/dbus/machine-id",
                    "D-Bus copy of the machine id",
                    "system.scrub.machine_id",
                )
            )
    if enabled(build, "system.scrub.caches"):
        _var_cache(plan, root)
    if enabled(build, "system.scrub.logs"):
        for sub in _subdirs(root / "var" / "log"):
            st = os.lstat(root / "var" / "log" / sub)
            plan.new_dirs.append(
                NewDir(
                    f"var/log/{sub}",
                    stat.S_IMODE(st.st_mode),
                    st.st_uid,
                    st.st_gid,
                    "system.scrub.logs",
                    "log directory kept, empty",
                )
            )


def _exists(root: Path, rel: str) -> bool:
    return realpath_in(root, rel) is not None


def realpath_in(root: Path, rel: str) -> Path | None:
    """``rel`` resolved inside ``root`` as if ``root`` were ``/`` (absolute links stay
    inside); None when it does not exist or links loop."""
    parts = [p for p in PurePosixPath(rel).parts if p not in ("/", "")]
    current = PurePosixPath("/")
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        host = root / str(candidate).lstrip("/")
        if host.is_symlink():
            hops += 1
            if hops > 40:
                return None
            target = PurePosixPath(os.readlink(host))
            base = PurePosixPath("/") if target.is_absolute() else current
            parts = [p for p in target.parts if p != "/"] + parts
            current = base
            continue
        if not os.path.lexists(host):
            return None
        current = candidate
    return root / str(current).lstrip("/")


def init_system(root: Path) -> str:
    """Which init the system runs: "busybox", "systemd", "sysvinit" or "unknown"."""
    init = realpath_in(root, "sbin/init")
    if init is not None:
        name = init.name
        if name == "busybox":
            return "busybox"
        if name == "systemd":
            return "systemd"
        if (root / "etc" / "inittab").is_file():
            return "sysvinit"
    if _exists(root, "lib/systemd/systemd"):
        return "systemd"
    return "unknown"


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(
                e.name for e in it if e.is_dir(follow_symlinks=False) and "\n" not in e.name
            )
    except OSError:
        return []


def _stat_of(path: Path, mode: int, uid: int = 0, gid: int = 0) -> tuple[int, int, int, bool]:
    """(mode, uid, gid, exists) of a file to replace; the defaults when it is new."""
    try:
        st = os.lstat(path)
    except OSError:
        return mode, uid, gid, False
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, True


def _machine_id(plan: ScrubPlan, root: Path) -> None:
    path = root / "etc" / "machine-id"
    if path.is_file() and not path.is_symlink():
        mode, uid, gid, _ = _stat_of(path, 0o444)
        plan.replacements.append(
            Replacement(
                "etc/machine-id",
                b"",
                mode,
                uid,
                gid,
                "system.scrub.machine_id",
                "emptied: systemd makes a new machine id at boot",
            )
        )


def _var_cache(plan: ScrubPlan, root: Path) -> None:
    """Each /var/cache dir emptied but kept; debconf's databases are state, not cache."""
    cache = root / "var" / "cache"
    try:
        names = sorted(os.listdir(cache))
    except OSError:
        return
    for name in names:
        literal = excludes.escape(name)
        if (cache / name).is_dir() and not (cache / name).is_symlink():
            if name == "debconf":
                texts = [f"var/cache/{literal}/*-old"]
            else:
                texts = [f"var/cache/{literal}/*", f"var/cache/{literal}/.*"]
        else:
            texts = [f"var/cache/{literal}"]
        plan.patterns += [excludes.parse(t, "cache", "system.scrub.caches") for t in texts]


ACCOUNT_FILES = {"passwd": 0o644, "shadow": 0o640, "group": 0o644, "gshadow": 0o640}


def _accounts(build: Build, plan: ScrubPlan, root: Path, login: accounts.LiveLogin) -> None:
    lock = enabled(build, "system.scrub.passwords")
    texts: dict[str, str | None] = {}
    for name in ACCOUNT_FILES:
        path = root / "etc" / name
        if not path.is_file():
            texts[name] = None
            continue
        try:
            texts[name] = path.read_text(errors="surrogateescape")
        except PermissionError:
            raise ScrubError(
                f"cannot read {path}: scrubbing it needs root",
                hint="run livecd-tui as root (packing a system needs it anyway)",
            ) from None
    files = accounts.AccountFiles(
        texts["passwd"], texts["shadow"], texts["group"], texts["gshadow"]
    )
    result = accounts.apply_scrub_and_login(files, lock, login)
    for name, mode in ACCOUNT_FILES.items():
        new = getattr(result, name)
        if new is None or new == texts[name]:
            continue
        fmode, uid, gid, exists = _stat_of(root / "etc" / name, mode)
        changes = [c.partition(": ")[2] for c in result.changes if c.startswith(name + ":")]
        locked = any(c.endswith(f"locked ({accounts.LOCKED})") for c in changes)
        option = "system.scrub.passwords" if locked else "system.login.*"
        plan.replacements.append(
            Replacement(
                f"etc/{name}",
                new.encode(errors="surrogateescape"),
                fmode,
                uid,
                gid,
                option,
                "; ".join(changes) or "the live login",
                exists,
            )
        )


def _unit_file(root: Path, unit: str) -> Path | None:
    for d in UNIT_DIRS:
        path = realpath_in(root, f"{d}/{unit}")
        if path is not None and path.is_file():
            return path
    return None


def _ssh_host_keys(plan: ScrubPlan, root: Path, system_root: Path, init: str) -> None:
    """Without host keys sshd will not start: make each boot make its own."""
    if not any(_exists(system_root, p) for p in ("usr/sbin/sshd", "sbin/sshd")):
        return
    if init != "systemd":
        plan.notes.append(
            "sshd is installed but the image has no SSH host keys and no systemd to make "
            "them: run 'ssh-keygen -A' before sshd starts (e.g. in a boot script laid over "
            "/etc with writable.overrides)"
        )
        return
    keygen = next(
        (f"/{p}" for p in ("usr/bin/ssh-keygen", "bin/ssh-keygen") if _exists(system_root, p)),
        "/usr/bin/ssh-keygen",
    )
    for unit in SSH_UNITS:
        path = _unit_file(system_root, unit)
        if path is None:
            continue
        text = path.read_text(errors="replace")
        if "sshd-keygen" in text:
            continue  # Fedora's units make missing keys themselves
        pre = [
            line.strip() for line in text.splitlines() if line.strip().startswith("ExecStartPre=")
        ]
        body = (
            "# Written by livecd-tui: the image holds no SSH host keys\n"
            "# (system.scrub.ssh_host_keys), so each boot makes its own before sshd.\n"
            "[Service]\nExecStartPre=\n"
            f"ExecStartPre=-{keygen} -A\n"
            + "".join(line + "\n" for line in pre if line != "ExecStartPre=")
        )
        _add_drop_in(
            plan,
            root,
            unit,
            body,
            "system.scrub.ssh_host_keys",
            f"'ssh-keygen -A' before {unit} starts",
        )


def autologin_inittab(
    text: str, user: str, which: str, init: str, login_program: str
) -> tuple[str, list[str]]:
    """The inittab with its gettys logging ``user`` in (``which``: "tty1" or "all").

    busybox init opens the line's tty itself, so the getty is replaced by ``login -f USER``;
    agetty and mingetty get ``--autologin USER``. Returns the text and the ttys changed.
    """
    out = []
    changed = []
    for line in text.split("\n"):
        fields = line.split(":", 3)
        if line.lstrip().startswith("#") or len(fields) != 4:
            out.append(line)
            continue
        ident, levels, action, process = fields
        words = process.split()
        program = os.path.basename(words[0]) if words else ""
        if program not in ("getty", "agetty", "mingetty") or action != "respawn":
            out.append(line)
            continue
        tty = (
            ident
            if init == "busybox" and ident
            else next((w for w in reversed(words[1:]) if w.startswith("tty")), ident)
        )
        if which == "tty1" and tty != "tty1":
            out.append(line)
            continue
        if program == "getty" and init == "busybox":
            process = f"{login_program} -f {user}"
        elif program in ("agetty", "mingetty"):
            process = " ".join([words[0], "--autologin", user, *words[1:]])
        else:
            out.append(line)
            continue
        out.append(":".join([ident, levels, action, process]))
        changed.append(tty)
    return "\n".join(out), changed


AGETTY_LOGIN = "-o '-p -f -- \\\\u'"

#: The serial console the boot loader gives the kernel (bootconf.kernel_args).
SERIAL_TTY = "ttyS0"


def has_serial_getty(inittab: str) -> bool:
    """Whether an active inittab line runs a getty (or a login) on the serial console."""
    for line in inittab.splitlines():
        fields = line.split(":", 3)
        if line.lstrip().startswith("#") or len(fields) != 4 or fields[2] != "respawn":
            continue
        words = fields[3].split()
        if fields[0] == SERIAL_TTY or SERIAL_TTY in words or f"/dev/{SERIAL_TTY}" in words:
            return True
    return False


def _inittab_text(plan: ScrubPlan, root: Path) -> str | None:
    """The image's inittab as the plan has it so far (a replacement, else the root's)."""
    done = next((r for r in plan.replacements if r.path == "etc/inittab"), None)
    if done is not None:
        return done.content.decode(errors="surrogateescape")
    inittab = root / "etc" / "inittab"
    return inittab.read_text(errors="surrogateescape") if inittab.is_file() else None


def _set_inittab(plan: ScrubPlan, root: Path, text: str, option: str, why: str) -> None:
    """Make ``text`` the image's inittab (once replaced, later changes add their reason)."""
    index = next((i for i, r in enumerate(plan.replacements) if r.path == "etc/inittab"), None)
    if index is None:
        mode, uid, gid, _ = _stat_of(root / "etc" / "inittab", 0o644)
        plan.replacements.append(
            Replacement(
                "etc/inittab", text.encode(errors="surrogateescape"), mode, uid, gid, option, why
            )
        )
    else:
        old = plan.replacements[index]
        plan.replacements[index] = dataclasses.replace(
            old, content=text.encode(errors="surrogateescape"), why=f"{old.why}; {why}"
        )


def _serial_getty(build: Build, plan: ScrubPlan, root: Path, system_root: Path, init: str) -> None:
    """A login prompt on the serial console (bootloader.serial): an inittab line for SysV
    and busybox init when none is there and the /etc overrides bring no inittab; systemd
    starts serial-getty@ttyS0 itself for the kernel's serial console."""
    if init not in ("sysvinit", "busybox"):
        return
    overrides = build.profile.resolve_path("writable.overrides")
    if overrides is not None and (overrides / "inittab").exists():
        return
    text = _inittab_text(plan, root)
    if text is None or has_serial_getty(text):
        return
    speed = int(build.profile["bootloader.serial_speed"])
    if init == "busybox":
        busybox_getty = next(
            (
                f"/{p}"
                for p in ("sbin/getty", "bin/getty", "usr/sbin/getty")
                if _exists(system_root, p)
            ),
            "/sbin/getty",
        )
        line = f"{SERIAL_TTY}::respawn:{busybox_getty} -L {speed} {SERIAL_TTY} vt100"
    else:
        getty = next(
            (
                f"/{p}"
                for p in ("sbin/agetty", "usr/sbin/agetty", "sbin/getty", "usr/sbin/getty")
                if _exists(system_root, p)
            ),
            None,
        )
        if getty is None:
            plan.notes.append(
                "bootloader.serial: no agetty or getty in the system, so no "
                "login prompt on the serial console"
            )
            return
        line = f"S0:2345:respawn:{getty} -L {SERIAL_TTY} {speed} vt100"
    text += ("" if text.endswith("\n") or not text else "\n") + line + "\n"
    _set_inittab(
        plan, root, text, "bootloader.serial", f"a login prompt on the serial console ({line})"
    )


def _autologin(
    plan: ScrubPlan, root: Path, system_root: Path, init: str, user: str, which: str
) -> None:
    text = _inittab_text(plan, root)
    if init in ("busybox", "sysvinit") and text is not None:
        login_program = next(
            (
                f"/{p}"
                for p in ("bin/login", "usr/bin/login", "sbin/login")
                if _exists(system_root, p)
            ),
            "/bin/login",
        )
        new, ttys = autologin_inittab(text, user, which, init, login_program)
        if ttys:
            _set_inittab(
                plan,
                root,
                new,
                "system.login.autologin",
                f"{user} logs in without a prompt on {', '.join(ttys)}",
            )
        else:
            plan.notes.append(
                f"autologin: no getty line in /etc/inittab that can log {user} "
                "in (busybox getty, agetty or mingetty)"
            )
        return
    if init != "systemd":
        plan.notes.append(f"autologin: unknown init system in {system_root}: nothing changed")
        return
    agetty = next(
        (f"/{p}" for p in ("sbin/agetty", "usr/sbin/agetty") if _exists(system_root, p)),
        "/sbin/agetty",
    )
    units = {"getty@tty1.service": f"{agetty} {AGETTY_LOGIN} --noclear --autologin {user} %I $TERM"}
    if which == "all":
        units = {
            "getty@.service": units["getty@tty1.service"],
            "serial-getty@.service": f"{agetty} {AGETTY_LOGIN} --keep-baud "
            f"115200,57600,38400,9600 --autologin {user} "
            "%I $TERM",
        }
    for unit, command in units.items():
        body = (
            f"# Written by livecd-tui (system.login.autologin): {user} logs in without "
            f"a prompt.\n[Service]\nExecStart=\nExecStart=-{command}\n"
        )
        _add_drop_in(
            plan,
            root,
            unit,
            body,
            "system.login.autologin",
            f"{user} logs in on {unit.replace('.service', '')} without a prompt",
        )


def _add_drop_in(plan: ScrubPlan, root: Path, unit: str, body: str, option: str, what: str) -> None:
    """A systemd drop-in for ``unit`` the image gets (root's, 644), replacing the root's."""
    dest = f"etc/systemd/system/{unit}.d/{DROP_IN}"
    plan.replacements.append(
        Replacement(
            dest,
            body.encode(),
            0o644,
            0,
            0,
            option,
            f"systemd drop-in: {what}",
            os.path.lexists(root / dest),
        )
    )


def _live_home(
    build: Build,
    plan: ScrubPlan,
    root: Path,
    system_root: Path,
    init: str,
    user: str,
    all_root: bool,
) -> None:
    passwd = next((r for r in plan.replacements if r.path == "etc/passwd"), None)
    text = passwd.content.decode(errors="replace") if passwd else _read(root / "etc/passwd")
    record = next(
        (r for r in accounts.records(text) if isinstance(r, list) and r[0] == user and len(r) > 5),
        None,
    )
    if record is None:
        return
    home = record[5].strip("/")
    if not home.startswith("home/"):
        return
    uid = int(record[2]) if record[2].isdigit() else 0
    gid = int(record[3]) if record[3].isdigit() else 0
    if build.method.writable.linked_root:
        plan.notes.append(
            f"classic layout: /home is made empty at boot, so the live user "
            f"{user} has no /{home} (use the overlay strategy for a home)"
        )
        return
    plan.new_dirs.append(
        NewDir(home, 0o700, uid, gid, "system.login.user", f"home of the live user {user}")
    )
    if all_root:
        _own_home_at_boot(plan, root, system_root, init, user, home, uid, gid)


def _own_home_at_boot(
    plan: ScrubPlan,
    root: Path,
    system_root: Path,
    init: str,
    user: str,
    home: str,
    uid: int,
    gid: int,
) -> None:
    """With ``-all-root`` the image cannot hold the home as the user's: give it at boot."""
    why = f"/{home} given to {user} at boot (the image makes every file root's)"
    text = _inittab_text(plan, root)
    if init == "busybox" and text is not None:
        chown = next(
            (f"/{p}" for p in ("bin/chown", "usr/bin/chown") if _exists(system_root, p)),
            "/bin/chown",
        )
        line = f"::sysinit:{chown} {uid}:{gid} /{home}\n"
        text += "" if text.endswith("\n") or not text else "\n"
        _set_inittab(plan, root, text + line, "system.login.user", why)
    elif init == "systemd":
        plan.replacements.append(
            Replacement(
                "etc/tmpfiles.d/livecd-tui-home.conf",
                f"# Written by livecd-tui: {why}.\nd /{home} 0700 {uid} {gid} -\n".encode(),
                0o644,
                0,
                0,
                "system.login.user",
                why,
                os.path.lexists(root / "etc/tmpfiles.d/livecd-tui-home.conf"),
            )
        )
    else:
        plan.notes.append(
            f"the image makes every file root's (-all-root), so /{home} is not "
            f"{user}'s: chown it at boot, or turn system.keep_owners on"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _warn_empty_passwords(plan: ScrubPlan, root: Path) -> None:
    """A note when sshd_config or one of its drop-ins (sshd_config.d/*.conf, which Debian's
    and Fedora's sshd_config include) allows empty passwords."""
    ssh = root / "etc" / "ssh"
    try:
        drop_ins = sorted(n for n in os.listdir(ssh / "sshd_config.d") if n.endswith(".conf"))
    except OSError:
        drop_ins = []
    for name in ("sshd_config", *(f"sshd_config.d/{n}" for n in drop_ins)):
        for line in _read(ssh / name).splitlines():
            words = line.split()
            if (
                len(words) >= 2
                and words[0].lower() == "permitemptypasswords"
                and words[1].lower() == "yes"
            ):
                plan.notes.append(
                    f"{name} has 'PermitEmptyPasswords yes' and the live login "
                    "has no password: anyone on the network can log in; set "
                    "system.login.password"
                )
                return


# -- secrets found by content ----------------------------------------------------------------
CONTENT_OPTION = "system.scrub.secrets"
ALLOW_OPTION = "system.scrub.allow"


def packed_files(
    root: Path, sources: Sequence[str], other: Sequence[excludes.Pattern], plan: ScrubPlan
) -> list[str]:
    """The regular files the image packs from ``root`` (paths relative to it), less those
    the plan replaces."""
    replaced = {r.path for r in plan.replacements}
    return [
        e.relpath
        for e in excludes.walk(root, sources, [*other, *plan.all_patterns()])
        if e.excluded_by is None and stat.S_ISREG(e.st.st_mode) and e.relpath not in replaced
    ]


def scan_content(
    root: Path,
    files: Sequence[str],
    plan: ScrubPlan,
    remember: tuple[Path, Path] | None = None,
) -> list[Finding]:
    """Scan ``files`` (in ``root``) for secrets and add to the plan what that asks for: a file
    holding one is left out (an exclude pattern), or, for a config file in /etc whose every
    secret is a setting's value, replaced by a copy with the values replaced. Returns the
    findings of the files kept because system.scrub.allow lists them. With ``remember``
    (the previous build's stage dir, this one's), the files the previous scan found clean
    and that are unchanged since are not read again (:func:`scan_changed`)."""
    if not plan.scan:
        return []
    if remember is None:
        return _add_results(root, secrets.scan_files(root, files), plan)
    return _add_results(root, scan_changed(root, files, *remember), plan)


#: The files the system image's last content scan found clean, with what their stat said:
#: the next build reads only the others (the layers issue: a rebuild costs the change).
CLEAN_FILE = "scan-clean.json.gz"


def scan_changed(
    root: Path, files: Sequence[str], previous: Path, out: Path
) -> list[secrets.Result]:
    """secrets.scan_files of the files not found clean by the scan recorded in ``previous``
    with the same size, mtime, inode change time and inode (and the same rules); records
    this scan's clean files in ``out``."""
    rules = hashlib.sha256(Path(secrets.__file__).read_bytes()).hexdigest()
    before: dict[str, list[int]] = {}
    try:
        with gzip.open(
            previous / CLEAN_FILE, "rt", encoding="utf-8", errors="surrogateescape"
        ) as f:
            data = json.load(f)
        if data.get("rules") == rules:
            before = data["clean"]
    except (OSError, ValueError, TypeError, KeyError, EOFError):
        pass
    stats: dict[str, list[int]] = {}
    unread = []
    for rel in files:
        try:
            st = os.lstat(root / rel)
        except OSError:
            unread.append(rel)
            continue
        stats[rel] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        if before.get(rel) != stats[rel]:
            unread.append(rel)
    results = secrets.scan_files(root, unread)
    hit = {r.path for r in results}
    clean = {rel: key for rel, key in stats.items() if rel not in hit}
    tmp = out / (CLEAN_FILE + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 1, raw, mtime=0) as packed:
        text = json.dumps({"rules": rules, "clean": clean}, separators=(",", ":"))
        packed.write(text.encode("utf-8", "surrogateescape"))
    os.replace(tmp, out / CLEAN_FILE)
    return results


def _add_results(root: Path, results: Sequence[secrets.Result], plan: ScrubPlan) -> list[Finding]:
    kept = []
    for result in results:
        what = f"{result.why} [{result.rules}]"
        if result.path in plan.allow:
            kept.append(
                Finding(
                    "kept",
                    result.path,
                    ALLOW_OPTION,
                    f"holds a secret ({what}), kept: listed in {ALLOW_OPTION}",
                )
            )
        elif result.redacted is not None:
            mode, uid, gid, _ = _stat_of(root / result.path, 0o644)
            plan.replacements.append(
                Replacement(
                    result.path,
                    result.redacted,
                    mode,
                    uid,
                    gid,
                    CONTENT_OPTION,
                    f"secret values replaced: {what}",
                )
            )
        else:
            if "\n" in result.path:
                raise ScrubError(
                    f"{result.path!r} holds a secret ({what}) and its name has a "
                    "newline, which mksquashfs's exclude file cannot name",
                    hint="rename or remove it in the system, or add the "
                    "directory to system.excludes",
                    option="system.excludes",
                )
            plan.patterns.append(
                excludes.parse(
                    excludes.escape(result.path), f"holds a secret: {what}", CONTENT_OPTION
                )
            )
    return kept


def check_secrets(
    tree: Path, allow: Iterable[str], files: Sequence[str] | None = None
) -> list[str]:
    """The check after the build: each file below ``tree`` (an unpacked image or archive)
    that holds a secret and is not allowed, with the rules that found it."""
    allowed = set(allow)
    results = secrets.scan_files(tree, secrets.regular_files(tree) if files is None else files)
    return [f"{r.path} ({r.rules})" for r in results if r.path not in allowed]


# -- findings ------------------------------------------------------------------------------
def find_removed(
    root: Path, sources: Sequence[str], other: Sequence[excludes.Pattern], plan: ScrubPlan
) -> list[Finding]:
    """What the scrub's patterns leave out of ``sources``: each excluded file or directory
    (with what it holds), met by walking the root with every exclude applied."""
    scrub_patterns = set(map(id, plan.patterns))
    kept = {r.path for r in plan.replacements if r.option == ALLOW_OPTION}
    found = []
    for entry in excludes.walk(root, sources, [*other, *plan.all_patterns()]):
        pattern = entry.excluded_by
        if pattern is None or id(pattern) not in scrub_patterns or entry.relpath in kept:
            continue
        if entry.is_dir:
            inside = [
                (rel, size) for rel, size in _files_below(root, entry.relpath) if rel not in kept
            ]
            found.append(
                Finding(
                    "removed",
                    entry.relpath + "/",
                    pattern.option,
                    pattern.reason,
                    len(inside),
                    sum(size for _, size in inside),
                    tuple(rel for rel, _ in inside),
                )
            )
        else:
            found.append(
                Finding(
                    "removed", entry.relpath, pattern.option, pattern.reason, 1, entry.st.st_size
                )
            )
    return found


def _files_below(root: Path, rel: str) -> list[tuple[str, int]]:
    """Every non-directory below ``root/rel``: (path relative to root, size)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root / rel):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                size = os.lstat(path).st_size
            except OSError:
                continue
            out.append((os.path.relpath(path, root), size))
    return out


def changed_findings(plan: ScrubPlan, tops: Iterable[str], homes: bool = False) -> list[Finding]:
    """The replaced, added and recreated entries under the top-level dirs ``tops`` (and the
    live user's home, wherever it is, with ``homes``)."""
    inside = set(tops)
    out = []
    for r in plan.replacements:
        if r.path.split("/")[0] in inside:
            action = "kept" if r.option == ALLOW_OPTION else "replaced" if r.replaces else "added"
            out.append(Finding(action, r.path, r.option, r.why, 1, len(r.content)))
    for d in plan.new_dirs:
        if d.path.split("/")[0] in inside or (homes and d.option == "system.login.user"):
            out.append(
                Finding(
                    "recreated" if d.option != "system.login.user" else "added",
                    d.path + "/",
                    d.option,
                    d.why,
                    1,
                    0,
                )
            )
    return out


def report(
    title: str, findings: Sequence[Finding], notes: Sequence[str], every_file: bool = False
) -> list[str]:
    """The report's lines: a title, each finding (with ``every_file``, each file of a
    removed directory below it), the notes, a total."""
    lines = [f"== scrub: {title}"]
    for f in findings:
        lines.append(f.line())
        if every_file:
            lines += [f"            {path}" for path in f.contents]
    if not findings:
        lines.append("nothing to remove or replace")
    lines += [f"note: {n}" for n in notes]
    removed = [f for f in findings if f.action == "removed"]
    lines.append(
        f"-- {len(removed)} removed ({sum(f.files for f in removed)} files, "
        f"{human(sum(f.size for f in removed))}), "
        f"{sum(f.action == 'replaced' for f in findings)} replaced, "
        f"{sum(f.action in ('added', 'recreated') for f in findings)} added"
        + (
            f", {kept} kept by {ALLOW_OPTION}"
            if (kept := sum(f.action == "kept" for f in findings))
            else ""
        )
    )
    return lines


REPORT_NAME = "scrub.txt"


def publish_report(build: Build, stage: str, lines: Sequence[str], out: Path) -> Path:
    """Write this stage's part of the report (``lines``: the full report, every file of a
    removed directory) into its output dir; :func:`publish_combined` makes the whole report
    from it once the stage is done."""
    path = out / REPORT_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def report_path(build: Build) -> Path:
    """Where the whole report goes: ``out/PROFILE.scrub.txt``."""
    return build.work / "out" / f"{build.profile.name}.scrub.txt"


def publish_combined(build: Build) -> None:
    """The whole report (system image and /etc archive) to ``out/PROFILE.scrub.txt``, from
    the finished stages' parts: called when a stage that scrubs is done, so the report never
    describes an image that was not finished."""
    parts = [
        build.done_dir(name) / REPORT_NAME
        for name in ("system", "writable")
        if (build.done_dir(name) / REPORT_NAME).is_file()
    ]
    if not parts:
        return
    target = report_path(build)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# What livecd-tui left out of or replaced in the packed copy of "
        f"{build.system_root} (profile {build.profile.name}).\n"
        "# The system itself was not changed. Options: system.scrub.*, "
        "system.login.*\n"
    )
    text = header + "".join(p.read_text() for p in parts)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(target)


# -- the squashfs --------------------------------------------------------------------------
EXCLUDE_FILE = "scrub.exclude"
PSEUDO_FILE = "scrub.pseudo"
STAGED_DIR = "scrub"


def pseudo_name(path: str) -> str:
    """A path as a pseudo-file definition names it (quoted when it has blanks or quotes)."""
    if any(c.isspace() or c in '"\\' for c in path):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return path


def scrub_squashfs(
    build: Build,
    root: Path,
    sources: Sequence[str],
    other: Sequence[excludes.Pattern],
    out: Path,
    all_root: bool,
    log: fileops.Log = lambda _line: None,
) -> tuple[ScrubPlan, list[Finding]]:
    """The system image's scrub: its plan (scan included), mksquashfs's lists in ``out``,
    and the findings of the report."""
    plan = make_plan(build, root, sources, all_root=all_root)
    kept = []
    if plan.scan:
        files = packed_files(root, sources, other, plan)
        started = time.monotonic()
        kept = scan_content(root, files, plan, (build.done_dir("system"), out))
        log(
            f"scanned {len(files)} files for secrets in {time.monotonic() - started:.1f} s "
            "(those the last build found clean and unchanged since are not read again)"
        )
    write_squashfs_lists(plan, root, sources, other, out)
    findings = find_removed(root, sources, other, plan)
    return plan, findings + changed_findings(plan, sources, homes=True) + kept


def write_squashfs_lists(
    plan: ScrubPlan,
    root: Path,
    sources: Sequence[str],
    other: Sequence[excludes.Pattern],
    out: Path,
) -> None:
    """The exclude list and pseudo-file definitions mksquashfs reads (``-ef``, ``-pf``),
    and the staged replacement files they name."""
    tops = set(sources)
    patterns = [*other, *plan.all_patterns()]
    matcher = excludes.Matcher(patterns)
    excluded_lines = [p.text for p in plan.all_patterns()]
    pseudo: list[str] = []
    defined: set[str] = set()

    def present(rel: str) -> bool:
        """Whether the image has ``rel`` as a directory from the source."""
        if rel.split("/")[0] not in tops or matcher.excluded(rel) is not None:
            return False
        host = root / rel
        return host.is_dir() and not host.is_symlink()

    def parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in defined and not present(parent):
                pseudo.append(f"{pseudo_name(parent)} d 755 0 0")
                defined.add(parent)

    staged = out / STAGED_DIR
    for d in sorted(plan.new_dirs, key=lambda d: d.path.count("/")):
        if d.path.split("/")[0] not in tops and d.option != "system.login.user":
            continue
        if present(d.path) or d.path in defined:
            continue
        parents(d.path)
        pseudo.append(f"{pseudo_name(d.path)} d {d.mode:o} {d.uid} {d.gid}")
        defined.add(d.path)
    for r in plan.replacements:
        if r.path.split("/")[0] not in tops:
            continue
        target = staged / r.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(r.content)
        parents(r.path)
        pseudo.append(
            f"{pseudo_name(r.path)} f {r.mode:o} {r.uid} {r.gid} cat {shlex.quote(str(target))}"
        )
    (out / EXCLUDE_FILE).write_text("".join(line + "\n" for line in excluded_lines))
    (out / PSEUDO_FILE).write_text("".join(line + "\n" for line in pseudo))


def image_paths(image: Path) -> set[str]:
    """Every path in a squashfs image, relative to its root (``unsquashfs -l``)."""
    result = procs.run(["unsquashfs", "-l", str(image)])
    if result.returncode != 0:
        raise ScrubError(f"unsquashfs -l {image} failed: {result.stderr.strip()}")
    prefix = "squashfs-root/"
    return {
        line[len(prefix) :]
        for line in os.fsdecode(result.out).splitlines()
        if line.startswith(prefix)
    }


def image_file(image: Path, path: str) -> bytes | None:
    """One file's content from the image (``unsquashfs -cat``)."""
    result = procs.run(["unsquashfs", "-cat", str(image), path])
    return result.out if result.returncode == 0 else None


def verify_image(
    image: Path,
    findings: Sequence[Finding],
    plan: ScrubPlan,
    whiteouts: Iterable[str] | None = None,
) -> list[str]:
    """Problems with the image: a removed file that is in it, a replaced one whose content
    differs from livecd-tui's. Empty when the scrub held. With ``whiteouts`` the image is a
    layer: it holds what changed, so a replaced file need not be in it (when it is, it must
    be livecd-tui's), and the names it hides are whiteouts, not files."""
    layer = whiteouts is not None
    paths = image_paths(image) - set(whiteouts or ())
    kept_dirs = {d.path for d in plan.new_dirs}
    kept = {r.path for r in plan.replacements if r.option == ALLOW_OPTION}
    problems = []
    for f in findings:
        rel = f.path.rstrip("/")
        if f.action == "removed":
            if any(k.startswith(rel + "/") for k in kept):
                continue  # a directory that holds an allowed file: the image has the file
            if rel in kept_dirs:
                inside = sorted(p for p in paths if p.startswith(rel + "/"))
                if inside:
                    problems.append(f"{rel} should be empty but holds {inside[0]}")
            elif rel in paths:
                problems.append(f"{rel} is in the image")
        elif (f.action in ("replaced", "added") or rel in kept) and not f.path.endswith("/"):
            if layer and rel not in paths:
                continue
            wanted = next(r.content for r in plan.replacements if r.path == rel)
            if image_file(image, rel) != wanted:
                problems.append(f"{rel} in the image is not livecd-tui's replacement")
    return problems


def image_regular_files(image: Path) -> list[tuple[str, int]]:
    """(path, size) of every regular file in a squashfs image (``unsquashfs -lln``)."""
    result = procs.run(["unsquashfs", "-lln", str(image)])
    if result.returncode != 0:
        raise ScrubError(f"unsquashfs -lln {image} failed: {result.stderr.strip()}")
    out = []
    for line in os.fsdecode(result.out).splitlines():
        fields = line.split(None, 5)
        if (
            len(fields) == 6
            and fields[0].startswith("-")
            and fields[2].isdigit()
            and fields[5].startswith("squashfs-root/")
        ):
            out.append((fields[5][len("squashfs-root/") :], int(fields[2])))
    return out


def image_secrets(image: Path, into: Path, allow: Iterable[str]) -> list[str]:
    """The check after the build on what the squashfs really holds: its files unpacked into
    ``into`` (each one the scan reads whole: up to secrets.HEAD_LIMIT, key material by name
    up to secrets.KEY_LIMIT; bigger ones were only scanned at their head before packing)
    and scanned with the same rules. Returns each secret that ``allow`` does not list."""
    wanted = [
        p
        for p, size in image_regular_files(image)
        if size <= secrets.read_limit(p) and "\n" not in p
    ]
    shutil.rmtree(into, ignore_errors=True)
    if not wanted:
        return []
    into.parent.mkdir(parents=True, exist_ok=True)
    listing = into.parent / (into.name + ".list")
    listing.write_text("".join(fnmatch_literal(p) + "\n" for p in wanted), errors="surrogateescape")
    result = procs.run(
        [
            "unsquashfs",
            "-no-xattrs",
            "-quiet",
            "-no-progress",
            "-d",
            str(into),
            "-ef",
            str(listing),
            str(image),
        ]
    )
    try:
        if result.returncode != 0:
            raise ScrubError(f"unsquashfs -d {into} {image} failed: {result.stderr.strip()}")
        return check_secrets(into, allow, [p for p in wanted if os.path.lexists(into / p)])
    finally:
        shutil.rmtree(into, ignore_errors=True)
        listing.unlink(missing_ok=True)


def archive_secrets(archive: Path, allow: Iterable[str]) -> list[str]:
    """The check after the build on what the /etc archive really holds: each regular member
    read from the archive (its head, as the scan reads files) and scanned. Returns each
    secret that ``allow`` does not list."""
    allowed = set(allow)
    found = []
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.isreg():
                    continue
                stream = tar.extractfile(member)
                if stream is None:
                    continue
                rel = member.name.removeprefix("./")
                result = secrets.scan_data(rel, stream.read(secrets.read_limit(rel) + 1))
                if result is not None and rel not in allowed:
                    found.append(f"{rel} ({result.rules})")
    except (OSError, tarfile.TarError) as err:
        raise ScrubError(f"cannot read {archive}: {err}") from None
    return found


def fnmatch_literal(path: str) -> str:
    """A path as an fnmatch pattern (unsquashfs's extract file) matching only itself."""
    return "".join(c if c.isalnum() or c in "/_.-" else "\\" + c for c in path)


# -- the /etc archive's staging tree ---------------------------------------------------------
def scrub_tree(
    build: Build, tree: Path, add_new: bool, log: fileops.Log = lambda _line: None
) -> tuple[ScrubPlan, list[Finding]]:
    """Scrub the /etc archive's staging tree for ``build`` (its plan made from the tree's
    top-level dirs) and apply the live login; the plan (for its notes) and the findings."""
    tops = sorted(n.name for n in tree.iterdir() if n.is_dir() and not n.is_symlink())
    plan = make_plan(build, tree, tops, build.system_root)
    return plan, apply_to_tree(plan, tree, add_new, log)


def apply_to_tree(
    plan: ScrubPlan, tree: Path, add_new: bool = True, log: fileops.Log = lambda _line: None
) -> list[Finding]:
    """Scrub a staging tree in place (a copy made for packing, never the system)."""
    ops, findings = tree_ops(plan, tree, add_new)
    fileops.run(ops, log)
    return findings


def tree_ops(
    plan: ScrubPlan, tree: Path, add_new: bool = True
) -> tuple[list[fileops.Op], list[Finding]]:
    """What scrubbing a staging tree does, and the findings it reports: the plan's
    removals, then the content scan's, then the replaced and added files.

    The tree is a copy made with ``cp -a``, so it may hold symbolic links to directories,
    even absolute ones that would lead into the builder's own system: nothing is written
    through a link (a file whose directory is one is not written, and the report says so).

    ``add_new``: also write the files the system does not have (drop-ins); off for the
    overlay's /etc overrides, whose system image has them already.
    """
    tops = sorted(
        n for n in os.listdir(tree) if (tree / n).is_dir() and not (tree / n).is_symlink()
    )
    findings = find_removed(tree, tops, [], plan)
    replaced = {r.path for r in plan.replacements}
    state = _TreeState(tree)
    for f in findings:
        if f.path.rstrip("/") not in replaced:
            state.remove(f.path.rstrip("/"))
    before = len(plan.patterns)
    # What the patterns leave out is not scanned, so the scan may come before the removals.
    kept = scan_content(tree, packed_files(tree, tops, [], plan), plan)
    for pattern in plan.patterns[before:]:  # left out by content: each names one file
        rel = _literal_path(pattern)
        size = os.lstat(tree / rel).st_size
        state.remove(rel)
        findings.append(Finding("removed", rel, pattern.option, pattern.reason, 1, size))
    replaced = {r.path for r in plan.replacements}
    for d in plan.new_dirs:
        if d.path.split("/")[0] in tops:
            target = state.dir_inside(d.path, plan)
            if target is not None:
                state.ops += [fileops.Chmod(target, d.mode), fileops.Chown(target, d.uid, d.gid)]
    skipped = set()
    for r in plan.replacements:
        if r.path.split("/")[0] not in tops or not (
            add_new or state.exists(r.path) or r.option == ALLOW_OPTION
        ):
            continue
        parent = state.dir_inside(str(PurePosixPath(r.path).parent), plan)
        if parent is None:
            skipped.add(r.path)
            continue
        target = parent / PurePosixPath(r.path).name
        state.ops += [
            fileops.WriteFile(target, r.content, r.mode),
            fileops.Chown(target, r.uid, r.gid),
        ]
        state.made.add(r.path)
    findings = [f for f in findings if f.path.rstrip("/") not in replaced]
    written = [
        f
        for f in changed_findings(plan, tops)
        if (add_new or f.action != "added" or state.exists(f.path)) and f.path not in skipped
    ]
    return state.ops, findings + written + kept


class _TreeState:
    """The staging tree as the operations planned so far will leave it."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.ops: list[fileops.Op] = []
        self.gone: set[str] = set()
        self.made: set[str] = set()

    def remove(self, rel: str) -> None:
        self.ops.append(fileops.Remove(self.tree / rel))
        self.gone.add(rel)

    def exists(self, rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        if rel in self.made:
            return True
        if any("/".join(parts[:i]) in self.gone for i in range(1, len(parts) + 1)):
            return False
        return os.path.lexists(self.tree / rel)

    def dir_inside(self, rel: str, plan: ScrubPlan) -> Path | None:
        """``tree/rel`` as a directory, made where missing, never through a symbolic link
        (None, with a note, when a component is a link or not a directory)."""
        current = self.tree
        path = ""
        for name in PurePosixPath(rel).parts:
            current = current / name
            path = f"{path}/{name}" if path else name
            if path in self.made:
                continue
            if self.exists(path) and (current.is_symlink() or not current.is_dir()):
                plan.notes.append(
                    f"{path} is a symbolic link or not a directory: nothing was "
                    "written into it (the archive keeps it as it is in the "
                    "system)"
                )
                return None
            if not self.exists(path):
                self.ops.append(fileops.Mkdir(current))
                self.made.add(path)
        return current


def _literal_path(pattern: excludes.Pattern) -> str:
    """The one path a pattern made by ``excludes.escape`` names."""
    return "/".join(pattern.literals)


# -- in the exported script ---------------------------------------------------------------
#: The options every scrub reads (the stage's own others are added by each caller): only
#: these reach the script's command line, so another option changes no stage's plan.
SCRUB_READS = ("system.", "bootloader.serial", "bootloader.serial_speed")


def _at_run_time(
    build: Build, describe: str, command: str, *args: str, reads: tuple[str, ...] = ()
) -> fileops.Deferred:
    """A scrub the exported script runs when what it reads is there: this same code (python
    -m livecd_tui.scrub), given the values of the options it reads (:data:`SCRUB_READS` and
    *reads*, key prefixes) as the script was made."""
    profile = build.profile
    values = {k: v for k, v in profile.values.items() if k.startswith(SCRUB_READS + reads)}
    for key in ("system.root", "writable.overrides"):  # relative to the profile's dir
        values[key] = str(profile.resolve_path(key) or "")
    argv = [
        sys.executable,
        "-m",
        "livecd_tui.scrub",
        command,
        *args,
        f"--work-dir={build.work}",
        f"--values={json.dumps(values, sort_keys=True)}",
    ]
    return fileops.Deferred(
        f"{describe}: livecd-tui's own (python -m livecd_tui.scrub {command})",
        (" ".join(shell_quote(a) for a in argv),),
    )


def squashfs_at_run_time(
    build: Build,
    root: Path,
    out: Path,
    sources: Sequence[str],
    other: Sequence[str],
    all_root: bool,
) -> fileops.Deferred:
    """scrub_squashfs in the exported script (the root may be one it makes)."""
    return _at_run_time(
        build,
        "the scrub's lists for mksquashfs",
        "squashfs",
        str(root),
        str(out),
        *(f"--source={s}" for s in sources),
        *(f"--exclude={p}" for p in other),
        *(["--all-root"] * all_root),
        reads=("writable.strategy", "writable.overrides"),
    )


def tree_at_run_time(build: Build, tree: Path, add_new: bool) -> fileops.Deferred:
    """scrub_tree in the exported script: the tree exists once the script has copied it."""
    return _at_run_time(
        build,
        "the scrub and the live login",
        "tree",
        str(tree),
        *(["--add-new"] * add_new),
        reads=("writable.",),
    )


def _scan_lines(build: Build, command: str, *args: str | Path) -> list[str]:
    """The content scan in the script: livecd-tui's own (the same rules, one place), run
    by the Python that wrote the script."""
    if not enabled(build, CONTENT_OPTION):
        return []
    allow = [f"--allow={p}" for p in sorted(secrets.normalise_allow(build.profile[ALLOW_OPTION]))]
    return [
        "# secrets found by content: livecd-tui's scan (python -m livecd_tui.scrub)",
        " ".join(
            shell_quote(a)
            for a in (sys.executable, "-m", "livecd_tui.scrub", command, *args, *allow)
        ),
    ]


def check_image_script_lines(build: Build, image: Path, into: Path) -> list[str]:
    """The check after mksquashfs by hand: the image's files scanned for secrets."""
    return _scan_lines(build, "check-image", image, into)


def check_archive_script_lines(build: Build, archive: Path) -> list[str]:
    """The check after tar by hand: the archive's files scanned for secrets."""
    return _scan_lines(build, "check-archive", archive)


# -- the scan as a command, for the exported script -----------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m livecd_tui.scrub``: the scrub's steps of the exported build script.

    ``squashfs ROOT OUT --work-dir WORK --values JSON``: the system image's whole scrub,
    mksquashfs's lists written to OUT as livecd-tui writes them (without ``--values``: only
    the content scan of what mksquashfs will pack, added to OUT's lists);
    ``tree TREE --work-dir WORK --values JSON [--add-new]``: the whole scrub and live login
    of the /etc archive's tree, in place. The values are the options', as the script was
    made. ``check-image IMAGE DIR`` and ``check-archive ARCHIVE``: exit 1 when the image or
    the archive holds a secret that no ``--allow`` lists.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m livecd_tui.scrub", description=main.__doc__)
    parser.add_argument("command", choices=("squashfs", "tree", "check-image", "check-archive"))
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--source", action="append", default=[])
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--values", help="the options' values (JSON)")
    parser.add_argument("--add-new", action="store_true")
    parser.add_argument("--all-root", action="store_true")
    args = parser.parse_args(argv)
    allow = frozenset(secrets.normalise_allow(args.allow))
    try:
        build = None
        if args.values is not None:
            from livecd_tui.profile import new_profile

            profile = new_profile()
            profile.values.update(json.loads(args.values))
            build = Build.for_profile(profile, args.work_dir)
        if args.command == "squashfs" and build is not None:
            root, out = args.paths
            other = [excludes.parse(p) for p in args.exclude]
            plan, findings = scrub_squashfs(build, root, args.source, other, out, args.all_root)
            print(
                "\n".join(
                    report(
                        f"the system image ({', '.join(args.source)} of {root})",
                        findings,
                        plan.notes,
                    )
                )
            )
            return 0
        if args.command == "squashfs":
            root, out = args.paths
            patterns = [
                excludes.parse(line)
                for line in (out / EXCLUDE_FILE).read_text().splitlines()
                if line.strip()
            ]
            plan = ScrubPlan(patterns=patterns, scan=True, allow=allow)
            other = [excludes.parse(p) for p in args.exclude]
            before = len(plan.patterns)
            scan_content(root, packed_files(root, args.source, other, plan), plan)
            with open(out / EXCLUDE_FILE, "a") as f:
                f.writelines(p.text + "\n" for p in plan.patterns[before:])
                f.writelines(excludes.escape(r.path) + "\n" for r in plan.replacements)
            staged = out / STAGED_DIR
            with open(out / PSEUDO_FILE, "a") as f:
                for r in plan.replacements:
                    (staged / r.path).parent.mkdir(parents=True, exist_ok=True)
                    (staged / r.path).write_bytes(r.content)
                    f.write(
                        f"{pseudo_name(r.path)} f {r.mode:o} {r.uid} {r.gid} cat "
                        f"{shlex.quote(str(staged / r.path))}\n"
                    )
            for text in [p.text for p in plan.patterns[before:]] + [
                r.path for r in plan.replacements
            ]:
                print(f"livecd-build: scrub: {text}")
            return 0
        if args.command == "tree":
            if build is None:
                parser.error("tree needs --values")
            plan, findings = scrub_tree(build, args.paths[0], args.add_new)
            print("\n".join(report(f"the tree {args.paths[0]}", findings, plan.notes)))
            return 0
        if args.command == "check-image":
            found = image_secrets(args.paths[0], args.paths[1], allow)
        else:
            found = archive_secrets(args.paths[0], allow)
    except (ScrubError, OSError, ValueError) as err:
        print(f"livecd-build: {err}", file=sys.stderr)
        return 2
    for line in found:
        print(f"livecd-build: secret in {args.paths[0]}: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
