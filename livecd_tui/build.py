"""One build of one profile: where its files go and the facts its stages share.

A ``Build`` is what every stage planner receives. It knows the work dir layout:

    WORK/.livecd-tui-work      marker: this dir was made by livecd-tui and may be cleaned
    WORK/stages/NAME/          a finished stage's outputs (trusted by later stages)
    WORK/stages/NAME.partial/  a running stage's outputs (renamed to NAME/ on success)
    WORK/logs/NAME.log         each stage's full log
    WORK/state/NAME.json       each stage's state (status, times, fingerprint, failure)
    WORK/state/build.json      how the last build went or ended (``attach``'s exit code)
    WORK/lock, lock.json       the running build's flock, and who holds it (workdir)
    WORK/lock.command          the command it runs, to end what a killed build left (procs)
    WORK/out/PROFILE.iso       the finished image (unless the profile names another path)
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from livecd_tui.method import Method
from livecd_tui.profile import Profile

WORK_MARKER = ".livecd-tui-work"
#: Where a work dir keeps the time its first build used for every timestamp.
EPOCH_FILE = "state/epoch"


class BuildError(Exception):
    """The build cannot start: bad selection, missing earlier outputs, busy work dir."""


def default_work_dir(profile: Profile) -> Path:
    """``$XDG_CACHE_HOME/livecd-tui/PROFILE`` (``~/.cache`` when the variable is unset)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "livecd-tui" / profile.name


@dataclass
class Build:
    """A profile, its work dir, and the facts found while planning or running."""

    profile: Profile
    work: Path
    #: Facts a stage records for later ones (e.g. the kernel release built from a tree).
    facts: dict[str, str] = field(default_factory=dict)
    #: Planned only to be shown or exported (plan, export-script): planners start no
    #: probes (a QEMU guest testing KVM) and use what earlier runs found instead.
    dry_run: bool = False
    #: The profile as the user knows it, when ``profile`` was read from a copy (the TUI's
    #: snapshot for a detached build): what ``status`` and ``attach`` show.
    shown_as: str | None = None

    @property
    def profile_shown(self) -> str:
        """The profile's path (or name) to show the user."""
        return self.shown_as or str(self.profile.path or self.profile.name)

    @classmethod
    def for_profile(
        cls, profile: Profile, work_dir: Path | None = None, dry_run: bool = False
    ) -> Build:
        """The build of *profile* in *work_dir* (``~`` expanded, as in a profile), else in
        the profile's build.work_dir, else in the default work dir."""
        work = work_dir or profile.resolve_path("build.work_dir") or default_work_dir(profile)
        return cls(
            profile=profile, work=Path(os.path.abspath(os.path.expanduser(work))), dry_run=dry_run
        )

    # -- layout ------------------------------------------------------------------------
    def done_dir(self, stage: str) -> Path:
        """Outputs of a stage that finished: what later stages read."""
        return self.work / "stages" / stage

    def partial_dir(self, stage: str) -> Path:
        """Where a running stage writes; renamed to ``done_dir`` when it succeeds."""
        return self.work / "stages" / f"{stage}.partial"

    def log_path(self, stage: str) -> Path:
        return self.work / "logs" / f"{stage}.log"

    def state_path(self, stage: str) -> Path:
        return self.work / "state" / f"{stage}.json"

    @property
    def iso_path(self) -> Path:
        """Where the finished ISO goes."""
        return self.profile.resolve_path("iso.output") or (
            self.work / "out" / f"{self.profile.name}.iso"
        )

    # -- shared facts ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """SOURCE_DATE_EPOCH for every timestamp: the profile's, the environment's, or now.

        "Now" is taken once per build and kept in the facts, so all stages agree.
        """
        configured = int(self.profile["build.source_date_epoch"])
        if configured:
            return configured
        from_env = os.environ.get("SOURCE_DATE_EPOCH", "")
        if from_env.isdigit():
            return int(from_env)
        if "epoch" not in self.facts:
            # The first build's time, kept in the work dir: a rebuild with nothing changed
            # must plan exactly the same commands, or nothing would ever be up to date.
            try:
                self.facts["epoch"] = (self.work / EPOCH_FILE).read_text().strip()
            except OSError:
                self.facts["epoch"] = str(int(time.time()))
        return int(self.facts["epoch"])

    @property
    def method(self) -> Method:
        """What the profile's initrd format, writable strategy and boot loader mean."""
        return Method.of(self.profile)

    @property
    def jobs(self) -> int:
        """Parallel jobs for the build's tools (build.jobs; 0: every CPU)."""
        return int(self.profile["build.jobs"]) or os.cpu_count() or 1

    @property
    def squashfs_cpus(self) -> int:
        """Processors mksquashfs uses (system.cpus; 0: build.jobs)."""
        return int(self.profile["system.cpus"]) or self.jobs

    @property
    def system_root(self) -> Path:
        """The root the system stage packs (for 'busybox', the tiny root it makes)."""
        if self.profile["system.source"] == "busybox":
            return self.done_dir("system") / "root"
        return self.profile.resolve_path("system.root") or Path("/")

    @property
    def host_root(self) -> Path:
        """Where tools and kernel files are looked up: the system root for 'root' profiles,
        the running system for 'busybox' ones."""
        return host_root_of(self.profile)


@dataclass
class StepContext:
    """What an Action gets: the build, its stage's output dir, and a way to log."""

    build: Build
    stage: str
    out: Path
    log: Callable[[str], None]


def host_root_of(profile: Profile) -> Path:
    """Build.host_root for a profile alone."""
    if profile["system.source"] == "busybox":
        return Path("/")
    return profile.resolve_path("system.root") or Path("/")


_VMLINUZ = re.compile(r"vmlinuz-(.+)$")


def _release_key(release: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", release)]


def find_prebuilt_kernel(root: Path) -> tuple[Path, str] | None:
    """The newest ``/boot/vmlinuz-RELEASE`` under ``root`` that has its modules dir."""
    found = []
    for image in glob.glob(str(root / "boot" / "vmlinuz-*")):
        match = _VMLINUZ.search(image)
        if match:
            found.append((Path(image), match.group(1)))
    if not found:
        return None
    with_modules = [f for f in found if (root / "lib" / "modules" / f[1]).is_dir()] or found
    return max(with_modules, key=lambda f: _release_key(f[1]))
