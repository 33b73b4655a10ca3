"""How fast the engine takes in a command's output: a stage printing LINES lines.

    .venv/bin/python bench/output.py [--runs N] [--lines N] [--smoke]

The stage runs ``seq 1 LINES`` through the real engine (headless, as ``livecd-tui build``
runs it: every line split, written to the stage's log and handed to the listeners); the
same ``seq`` alone, its output to /dev/null, is the floor. Median of N runs each, taking
turns. A kernel built from a tree prints tens of thousands of lines: the engine must not be
what a build waits for.

Prints the numbers and writes bench/results/output.txt (not with --smoke).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from livecd_tui.build import Build  # noqa: E402
from livecd_tui.engine import Engine, OutputLine, Stage  # noqa: E402
from livecd_tui.profile import new_profile  # noqa: E402
from livecd_tui.steps import Step, command  # noqa: E402
from livecd_tui.workdir import prepare_work_dir  # noqa: E402


def through_engine(work: Path, lines: int) -> float:
    """Seconds the engine takes to run a stage printing ``lines`` lines."""

    def plan(build: Build) -> list[Step]:
        return [command(["seq", "1", str(lines)], f"print {lines} lines")]

    prepare_work_dir(work)
    seen = [0]

    def count(event: object) -> None:
        if isinstance(event, OutputLine):
            seen[0] += 1

    stage = Stage("flood", "Flood", "prints many lines", plan)
    engine = Engine(Build(profile=new_profile(), work=work), [stage], [count])
    started = time.monotonic()
    if not engine.run([stage], force_all=True):
        raise RuntimeError("the flood stage failed")
    took = time.monotonic() - started
    if seen[0] != lines + 2:  # the command line and the "done" line come with them
        raise RuntimeError(f"{seen[0]} lines seen, expected {lines + 2}")
    return took


def alone(lines: int) -> float:
    started = time.monotonic()
    subprocess.run(["seq", "1", str(lines)], stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--smoke", action="store_true", help="one run, 20,000 lines")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.lines = 1, 20_000
    tmp = Path(tempfile.mkdtemp(prefix="livecd-bench-output-"))
    engine_s, alone_s = [], []
    try:
        for run in range(args.runs):
            engine_s.append(through_engine(tmp / f"work-{run}", args.lines))
            alone_s.append(alone(args.lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    median = statistics.median(engine_s)
    result = [
        f"# output, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {args.lines} lines, "
        f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        "# through the engine, each run (s): " + " ".join(f"{s:.2f}" for s in engine_s),
        "# seq alone, each run (s): " + " ".join(f"{s:.3f}" for s in alone_s),
        f"median engine_s {median:.2f}",
        f"median seq_alone_s {statistics.median(alone_s):.3f}",
        f"lines_per_s {args.lines / median:.0f}",
    ]
    print("\n".join(result))
    if not args.smoke:
        out = REPO / "bench" / "results" / "output.txt"
        out.write_text("\n".join(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
