#!/usr/bin/env python3
"""The content scan for secrets against mksquashfs, on the same root: this machine's `/` as
profiles/modern.toml packs it (its dirs and excludes, the work dir left out).

    .venv/bin/python bench/secrets.py [--root /] [--runs 3] [--no-mksquashfs] [--smoke]

Each run times, alternately: the walk (the files the image packs, as the system stage finds
them), the scan on all CPUs, and the scan in one process; once, mksquashfs of the same
sources with the same excludes (the profile's compressor, all CPUs) into a scratch image,
and the check after packing on that image (unpack the files the scan reads whole, scan).
The target: walk + scan <= 15 % of mksquashfs. Writes bench/results/secrets.txt (--smoke:
the demo's busybox root, one run, no result file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from livecd_tui import scrub, secrets  # noqa: E402
from livecd_tui.build import Build  # noqa: E402
from livecd_tui.profile import load_profile  # noqa: E402
from livecd_tui.stages.system import exclude_patterns, squashfs_sources  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="/")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-mksquashfs", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="livecd-bench-secrets-"))
    profile_path = HERE.parent / "profiles" / "modern.toml"
    if args.smoke:
        args.runs = 1
        args.no_mksquashfs = True
        root = HERE.parent  # small and always there: the repo's own sources
    else:
        root = Path(args.root)
    profile = load_profile(profile_path)
    build = Build.for_profile(profile, work)
    sources = squashfs_sources(build, root) if not args.smoke else ["livecd_tui", "tests"]
    other = exclude_patterns(build, root) if not args.smoke else []
    plan = scrub.make_plan(build, root, sources) if not args.smoke else scrub.ScrubPlan()
    lines = [
        f"# secrets scan vs mksquashfs, {datetime.now(UTC):%Y-%m-%dT%H:%MZ}, "
        f"load average before: {load()}",
        f"# root {root}: {', '.join(sources)}; excludes "
        f"{', '.join(p.text for p in other)}; {os.cpu_count()} CPUs",
        "# per run: walk_s scan_all_cpus_s scan_one_process_s files hits load",
    ]
    walks, scans, singles = [], [], []
    for _ in range(args.runs):
        started = time.monotonic()
        files = scrub.packed_files(root, sources, other, plan)
        walk = time.monotonic() - started
        started = time.monotonic()
        found = secrets.scan_files(root, files)
        scan = time.monotonic() - started
        started = time.monotonic()
        secrets.scan_files(root, files, jobs=1)
        single = time.monotonic() - started
        walks.append(walk)
        scans.append(scan)
        singles.append(single)
        lines.append(f"{walk:.1f} {scan:.1f} {single:.1f} {len(files)} {len(found)} {load()}")
        print(lines[-1], flush=True)
    lines.append(f"# files with secrets: {', '.join(f'{r.path} ({r.rules})' for r in found)}")
    walk, scan, single = (statistics.median(x) for x in (walks, scans, singles))
    lines += [
        f"median walk_s {walk:.1f}",
        f"median scan_all_cpus_s {scan:.1f}",
        f"median scan_one_process_s {single:.1f}",
    ]
    if not args.no_mksquashfs:
        image = work / "bench.squashfs"
        argv = [
            "mksquashfs",
            *sources,
            str(image),
            "-noappend",
            "-comp",
            profile["system.compressor"],
            "-processors",
            str(os.cpu_count() or 1),
            "-no-progress",
            "-quiet",
            "-wildcards",
            "-e",
            *[p.text for p in other],
        ]
        before = load()
        started = time.monotonic()
        subprocess.run(argv, cwd=root, check=True, stdout=subprocess.DEVNULL)
        squash = time.monotonic() - started
        size = image.stat().st_size
        # The check after packing, on that image (unscrubbed: it finds what the scan found).
        started = time.monotonic()
        in_image = scrub.image_secrets(image, work / "check", ())
        check = time.monotonic() - started
        image.unlink()
        lines += [
            f"mksquashfs_s {squash:.1f} (image {size / 2**30:.2f} GiB; load before "
            f"{before}, after {load()})",
            f"walk+scan / mksquashfs {100 * (walk + scan) / squash:.1f} %",
            f"check_after_packing_s {check:.1f} ({len(in_image)} secrets found in the "
            f"image; load after {load()})",
        ]
    print("\n".join(lines[-7:]))
    if not args.smoke:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "secrets.txt").write_text("\n".join(lines) + "\n")
    os.rmdir(work) if not any(work.iterdir()) else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
