"""The preview against the real build: what it says is packed and how big the squashfs gets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livecd_tui import capture
from livecd_tui.build import Build, find_prebuilt_kernel
from livecd_tui.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
KERNEL = find_prebuilt_kernel(Path("/"))
needs_tools = pytest.mark.skipif(
    KERNEL is None or not all(shutil.which(t) for t in ("mksquashfs", "unsquashfs")),
    reason="needs a kernel in /boot and squashfs-tools",
)
MIB = 1024 * 1024


def copy_some(source: Path, dest: Path, quota: int) -> int:
    """Copy regular files of ``source`` (walked in order) to ``dest`` until ``quota`` bytes."""
    copied = 0
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_symlink() or not path.is_file() or copied >= quota:
                continue
            size = path.stat().st_size
            if size > 8 * MIB:
                continue
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(path, target)
            except OSError:
                continue
            copied += size
        if copied >= quota:
            break
    return copied


@pytest.fixture(scope="module")
def usr_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Some tens of MB of this machine's /usr: documents, locales, libraries, Python."""
    root = tmp_path_factory.mktemp("usr-root")
    for part, quota in (
        ("share/locale", 12),
        ("share/doc", 6),
        ("lib/x86_64-linux-gnu", 16),
        ("lib/python3", 8),
    ):
        if Path("/usr", part).is_dir():
            copy_some(Path("/usr", part), root / "usr" / part, quota * MIB)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("copy\n")
    return root


def profile_for(tmp_path: Path, root: Path, compressor: str) -> Path:
    assert KERNEL is not None
    path = tmp_path / f"usr-{compressor}.toml"
    path.write_text(
        f'[kernel]\nimage = "{KERNEL[0]}"\nmodules_dir = "/lib/modules/{KERNEL[1]}"'
        f'\n[system]\nroot = "{root}"\ndirs = ["usr"]\nmodules = "none"\n'
        f'compressor = "{compressor}"\nexcludes = ["usr/share/doc/*/changelog*"]\n'
    )
    return path


@needs_tools
@pytest.mark.parametrize("compressor", ["zstd", "gzip"])
def test_estimate_is_within_15_percent_of_the_real_squashfs(
    tmp_path: Path, usr_root: Path, compressor: str
) -> None:
    profile = profile_for(tmp_path, usr_root, compressor)
    work = tmp_path / "work"
    build = Build.for_profile(load_profile(profile), work)
    shown = capture.preview(build, budget=8 * MIB)
    est = shown.estimate
    assert est is not None and est.sample_bytes < est.data_bytes / 2  # a real sample

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "livecd_tui.cli",
            "build",
            str(profile),
            "--work-dir",
            str(work),
            "--only",
            "preflight,kernel,system",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    real = (work / "stages" / "system" / "system.squashfs").stat().st_size
    assert abs(est.squashfs - real) / real < 0.15, (est.squashfs, real)

    # The walk says what the image holds: the same regular files under usr.
    listing = subprocess.run(
        ["unsquashfs", "-lls", str(work / "stages/system/system.squashfs"), "usr"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files_in_image = sum(1 for line in listing.splitlines() if line.startswith("-"))
    usr = next(t for t in shown.capture.sources if t.name == "usr")
    assert usr.files == files_in_image
    left = next(g for g in shown.capture.left_out if g.option == "system.excludes")
    assert left.paths and all("/changelog" in p for p in left.paths)
    assert not any(
        re.search(r"usr/share/doc/[^/]+/changelog", line) for line in listing.splitlines()
    )


def test_capture_command_prints_the_preview(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "livecd_tui.cli",
            "capture",
            "demo",
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("packed", "bin", "usr", "estimate: zstd", "ISO", "of a CD (700 MB) [iso.medium]"):
        assert text in out
    assert not (tmp_path / "work").exists()  # a preview builds nothing


def test_warnings_when_the_iso_does_not_fit_or_space_lacks(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[iso]\nmedium = "cd"\n')
    build = Build.for_profile(load_profile(profile), tmp_path / "work")
    scan = capture.Capture(tmp_path)
    big = capture.Estimate(
        "zstd", 128 * 1024, 800 * MIB, {"squashfs": 800 * MIB}, 0, 0, 0, 0, 0.0, 0.0
    )
    problems = capture.warnings(build, scan, big)
    assert len(problems) == 1 and "will not fit a CD" in problems[0]
    build.profile.set("iso.medium", "dvd")
    assert capture.warnings(build, scan, big) == []
    huge = capture.Estimate(
        "zstd", 128 * 1024, 1 << 50, {"squashfs": 1 << 50}, 0, 0, 0, 0, 0.0, 0.0
    )
    assert any("free" in p for p in capture.warnings(build, scan, huge))


def test_one_space_estimate_for_preflight_and_preview(tmp_path: Path, usr_root: Path) -> None:
    from livecd_tui.stages.preflight import estimate_space

    build = Build.for_profile(
        load_profile(profile_for(tmp_path, usr_root, "zstd")), tmp_path / "work"
    )
    scan = capture.scan(build, with_scrub=False)
    assert estimate_space(build) == capture.space_needed(scan.size)
    assert capture.space_needed(100 * MIB) == 100 * MIB + capture.HEADROOM
    assert capture.space_needed(100 * MIB, 30 * MIB) == 60 * MIB + capture.HEADROOM
