"""The initrd's toolbox: busybox, or the system's own programs as in the article.

The article builds its initrd from the system's bash and tools (bash, mount, cp, grep,
pivot_root, udevd, modprobe...), each with the libraries it needs; most live CDs today use
one static busybox instead. ``initrd.toolbox`` chooses; "auto" takes busybox when there is
one (named by initrd.busybox, in the system root, or on this host's PATH) and the system's
programs otherwise, so an LFS box without busybox gets the article's initrd.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from livecd_tui import fileops
from livecd_tui.build import host_root_of
from livecd_tui.engine import StepFailed
from livecd_tui.method import Method
from livecd_tui.profile import Profile

#: Where a busybox is looked for in the system root.
BUSYBOX_IN_ROOT = ("bin/busybox", "usr/bin/busybox", "sbin/busybox")
#: Where the system's programs are looked for, in the order a shell's PATH has them.
PROGRAM_DIRS = ("usr/sbin", "usr/bin", "sbin", "bin")

#: The programs /init and /linuxrc call, with the system toolbox: (name, required). The
#: optional ones are used when present (the scripts test with `command -v` first).
SYSTEM_PROGRAMS: tuple[tuple[str, bool], ...] = (
    ("bash", True),
    ("mount", True),
    ("umount", True),
    ("mkdir", True),
    ("cat", True),
    ("cp", True),
    ("rm", True),
    ("ln", True),
    ("chmod", True),
    ("sleep", True),
    ("sed", True),
    ("grep", True),
    ("tr", True),
    ("dd", True),
    ("stat", True),
    ("uname", True),
    ("insmod", True),
    ("setsid", True),
    ("wc", True),
    ("head", True),
    ("tar", False),
    ("gzip", False),
    ("bzip2", False),
    ("xz", False),
    ("zstd", False),
    ("blkid", False),
    ("losetup", False),
    ("modprobe", False),
    ("killall", False),
    ("touch", False),
    ("chgrp", False),
    ("ls", False),
    ("dmesg", False),
    ("find", False),
    ("sort", False),
    ("date", False),
    ("sha256sum", False),
)


@dataclass(frozen=True)
class Choice:
    """The toolbox a profile gets and why; ``busybox`` is the binary for "busybox"."""

    kind: str  # "busybox" or "system"
    why: str
    busybox: Path | None = None


def find_busybox(profile: Profile) -> Path | None:
    """The busybox the profile names, or one in the system root, or on this host's PATH
    (a host's busybox is used from the host: nothing of it is looked up in the root)."""
    configured = profile.resolve_path("initrd.busybox")
    if configured:
        return configured
    root = host_root_of(profile)
    for candidate in BUSYBOX_IN_ROOT:
        if (root / candidate).is_file():
            return root / candidate
    found = shutil.which("busybox")
    return Path(found) if found else None


def busybox_path(profile: Profile) -> Path:
    """The busybox a stage uses: :func:`find_busybox`'s, else where a missing one would be
    (for the messages)."""
    return find_busybox(profile) or Path("/bin/busybox")


def busybox_missing(busybox: Path, initrd: bool) -> fileops.Fail:
    """The failure of a stage whose busybox is not there (``initrd``: the initrd's, which
    can do without, with the system toolbox)."""
    hint = "Debian: apt-get install busybox-static; or set initrd.busybox"
    if initrd:
        return fileops.Fail(
            f"busybox not found at {busybox}",
            hint + ', or initrd.toolbox = "system"',
            "initrd.toolbox",
        )
    return fileops.Fail(f"busybox not found at {busybox}", hint)


def busybox_applets(busybox: Path) -> list[str]:
    """Where this busybox installs each of its applets (``bin/ls``, ``linuxrc``), sorted."""
    result = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StepFailed(
            f"{busybox} --list-full failed: {result.stderr.strip()}",
            hint="initrd.busybox must be a busybox binary",
        )
    return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})


def choose(profile: Profile) -> Choice:
    """The toolbox for ``initrd.toolbox`` ("auto" decides by what exists)."""
    wanted = profile["initrd.toolbox"]
    busybox = find_busybox(profile)
    if wanted == "system":
        return Choice("system", 'initrd.toolbox = "system": the root\'s own programs')
    if wanted == "busybox":
        return Choice("busybox", f'initrd.toolbox = "busybox": {busybox or "not found"}', busybox)
    if busybox is not None:
        return Choice("busybox", f"a busybox exists ({busybox})", busybox)
    return Choice(
        "system",
        "no busybox in the system root or on this host: the root's own programs, as in the article",
    )


def find_program(root: Path, name: str) -> str | None:
    """``name``'s path inside ``root`` (e.g. "/usr/bin/mount"), or None."""
    for directory in PROGRAM_DIRS:
        candidate = root / directory / name
        if candidate.is_file() or (candidate.is_symlink() and candidate.exists()):
            return f"/{directory}/{name}"
    return None


def archive_programs(profile: Profile) -> list[str]:
    """What unpacks the /etc archive at boot (tar and its decompressor), when there is one:
    the classic layout always, the overlay with /etc overrides (a gzip archive)."""
    compression = Method.of(profile).writable.archive_compression()
    return ["tar", ARCHIVE_DECOMPRESSOR[compression]] if compression else []


#: The program tar runs for each writable.archive_compression.
ARCHIVE_DECOMPRESSOR = {"bzip2": "bzip2", "gzip": "gzip", "xz": "xz"}


def system_programs(profile: Profile) -> tuple[list[str], list[str]]:
    """(in-root paths of the programs the system toolbox copies, names of required ones
    the root lacks)."""
    root = host_root_of(profile)
    wanted = dict(SYSTEM_PROGRAMS)
    for name in [Method.of(profile).initrd.switch_program, *archive_programs(profile)]:
        wanted[name] = True
    found: list[str] = []
    missing: list[str] = []
    for name, required in wanted.items():
        path = find_program(root, name)
        if path is not None:
            found.append(path)
        elif required:
            missing.append(name)
    return found, missing
