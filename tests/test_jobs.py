"""build.jobs reaches every tool that runs in parallel, unless the tool's own option is set."""

from __future__ import annotations

from pathlib import Path

from livecd_tui.build import Build
from livecd_tui.profile import new_profile
from livecd_tui.stages.system import mksquashfs_command


def processors(build: Build) -> str:
    argv = mksquashfs_command(build, Path("/nonexistent-root"))
    return argv[argv.index("-processors") + 1]


def test_build_jobs_reaches_mksquashfs_unless_system_cpus_is_set(tmp_path: Path) -> None:
    profile = new_profile()
    build = Build(profile=profile, work=tmp_path / "work")
    profile.set("build.jobs", 3)
    assert processors(build) == "3" and build.jobs == 3
    profile.set("system.cpus", 2)
    assert processors(build) == "2"
