#!/usr/bin/env python3
"""Change detection at the speed of a stat walk (issue "layers", item 3): the manifest of
what profiles/modern.toml packs of this machine's `/` (its dirs and excludes), taken cold
once (caches dropped, when allowed) and warm several times, then saved, loaded and compared
with a fresh walk (nothing changed: the diff a rebuild would start from).

    .venv/bin/python bench/manifest.py [--root /] [--runs 5] [--smoke]

The goal: a warm walk of the >= 5 GiB root in <= 3 s. Writes bench/results/manifest.txt
(--smoke: the repo's own sources, one run, no result file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from livecd_tui import excludes, manifest  # noqa: E402
from livecd_tui.build import Build  # noqa: E402
from livecd_tui.profile import load_profile  # noqa: E402
from livecd_tui.stages.system import exclude_patterns, squashfs_sources  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(what, *args):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = what(*args)
    return time.monotonic() - started, result


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="/")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="livecd-bench-manifest-"))
    build = Build.for_profile(load_profile(HERE.parent / "profiles" / "modern.toml"), work)
    if args.smoke:
        # The repo's sources; not the bytecode a running test suite may be writing.
        root, sources, args.runs = HERE.parent, ["livecd_tui", "tests"], 1
        patterns = [excludes.parse("... __pycache__")]
    else:
        root = Path(args.root)
        sources, patterns = squashfs_sources(build, root), exclude_patterns(build, root)
    lines = [
        f"# manifest walk, {datetime.now(UTC):%Y-%m-%dT%H:%MZ}, {os.cpu_count()} CPUs, "
        f"load average before: {load()}",
        f"# root {root}: {', '.join(sources)}; excludes {', '.join(p.text for p in patterns)}",
    ]
    if not args.smoke and drop_caches():
        cold, found = timed(manifest.take, root, sources, patterns)
        lines.append(f"cold_walk_s {cold:.2f} (caches dropped; load {load()})")
    warm = []
    for _ in range(args.runs):
        seconds, found = timed(manifest.take, root, sources, patterns)
        warm.append(seconds)
        lines.append(f"warm_walk_s {seconds:.2f} (load {load()})")
        print(lines[-1], flush=True)
    files = sum(1 for r in found.values() if r.kind == "f")
    size = sum(r.size for r in found.values())
    saved = work / "manifest.json.gz"
    save_s, _ = timed(manifest.save, found, saved)
    load_s, loaded = timed(manifest.load, saved)
    again_s, again = timed(manifest.take, root, sources, patterns)
    diff_s, change = timed(manifest.diff, loaded or {}, again)
    lines += [
        f"entries {len(found)} files {files} bytes {size} ({size / 2**30:.2f} GiB)",
        f"median warm_walk_s {statistics.median(warm):.2f}",
        f"save_s {save_s:.2f} load_s {load_s:.2f} (manifest {saved.stat().st_size} B)",
        f"nothing-changed: walk {again_s:.2f} s + diff {diff_s:.2f} s; "
        f"{len(change.carried())} carried, {len(change.removed)} removed "
        f"(a live / changes under the walk: logs, caches)",
        f"# load average after: {load()}",
    ]
    print("\n".join(lines[-6:]))
    if not args.smoke:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "manifest.txt").write_text("\n".join(lines) + "\n")
    saved.unlink()
    os.rmdir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
