"""TUI benchmarks: start to first frame, key latency and memory while a stage floods output.

    .venv/bin/python bench/tui.py [--runs N] [--lines N] [--smoke]

1. Start to first frame: the real ``livecd-tui PROFILE`` in a pseudo-terminal of 80x24;
   the clock runs from just before the fork to the moment the terminal has received a whole
   first frame of the editor (its last menu line, "Boot test --->"). Median of N runs.
2. While a stage prints LINES lines (default 500,000; ``seq``, through the real engine, in
   the app's own build worker), Pilot presses Down and Up on the stage list about twenty
   times a second; a key's latency is the time from sending the key event to the list's
   highlight having moved (the key was handled: the pane switch and the row repaint come
   with it). Reported: p50, p95 and max over every key pressed from the key that starts
   the build until the screen has shown the build's end (the engine may be done long before
   the screen has taken in every line), as many runs as asked, and the process's peak
   resident memory (VmHWM; the app and the engine are this process).

Prints the numbers and writes bench/results/tui.txt (not with --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textual import events  # noqa: E402
from textual.widgets import OptionList  # noqa: E402

from livecd_tui.build import Build  # noqa: E402
from livecd_tui.engine import Stage  # noqa: E402
from livecd_tui.profile import load_profile  # noqa: E402
from livecd_tui.steps import Step, command  # noqa: E402
from livecd_tui.tui.app import LiveCDApp  # noqa: E402
from livecd_tui.tui.build_screen import BuildScreen  # noqa: E402

LIVECD = REPO / ".venv" / "bin" / "livecd-tui"
ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[a-zA-Z~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>()78]")
FRAME_DONE = "Boot test  --->"
#: Keys a fast typist presses per second.
KEY_INTERVAL = 0.05


def first_frame(profile: Path, home: Path, timeout: float = 20.0) -> float:
    """Seconds from starting livecd-tui in a 80x24 pty to its first whole frame."""
    env = dict(
        os.environ,
        TERM="xterm-256color",
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of 80x24, then the real program
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execve(str(LIVECD), [str(LIVECD), str(profile)], env)
    seen = b""
    try:
        while time.monotonic() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.01)
            if not ready:
                continue
            try:
                seen += os.read(fd, 1 << 16)
            except OSError:
                break
            if FRAME_DONE in ANSI.sub(b"", seen).decode(errors="replace"):
                return time.monotonic() - started
        raise RuntimeError(f"no first frame within {timeout} s: {ANSI.sub(b'', seen)[-500:]!r}")
    finally:
        with contextlib.suppress(OSError):
            os.write(fd, b"q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        os.close(fd)


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def flood(profile_path: Path, work: Path, lines: int) -> tuple[list[float], float]:
    """Key latencies (s) while a stage prints ``lines`` lines, and the seconds from the key
    that starts the build until the screen has shown its end."""

    def plan_flood(build: Build) -> list[Step]:
        return [command(["seq", "1", str(lines)], f"print {lines} lines")]

    def plan_after(build: Build) -> list[Step]:
        return [command(["true"], "nothing")]

    stages = [
        Stage("flood", "Flood", "prints many lines", plan_flood),
        Stage("after", "After", "does nothing", plan_after),
    ]
    app = LiveCDApp(load_profile(profile_path), work_dir=work, stages=stages)
    latencies: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, BuildScreen), screen
        stage_list = screen.query_one("#stage-list", OptionList)
        driver = app._driver
        assert driver is not None
        # Sent, not pressed: Pilot.press waits until the app is idle, which it is not
        # until the flood has been shown; the keys below must go in meanwhile.
        started = time.monotonic()
        driver.send_message(events.Key("a", "a"))
        while not screen.running and time.monotonic() - started < 10:
            await asyncio.sleep(0.001)
        while screen.running:
            before = stage_list.highlighted
            key = "down" if before == 0 else "up"
            sent = time.perf_counter()
            driver.send_message(events.Key(key, None))
            while stage_list.highlighted == before:
                await asyncio.sleep(0.0005)
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(KEY_INTERVAL)
        ran = time.monotonic() - started
        await app.workers.wait_for_complete()
        status = screen.views["flood"].status
        if status != "done":
            raise RuntimeError(f"the flood stage ended {status}")
    return latencies, ran


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument(
        "--smoke", action="store_true", help="one run, 20,000 lines, no results file"
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.lines = 1, 20_000
    tmp = Path(tempfile.mkdtemp(prefix="livecd-bench-tui-"))
    try:
        profile = tmp / "demo.toml"
        shutil.copy(REPO / "profiles" / "demo.toml", profile)
        frames = [first_frame(profile, tmp) for _ in range(args.runs)]
        latencies: list[float] = []
        durations = []
        for run in range(args.runs):
            work = tmp / f"work-{run}"
            got, ran = asyncio.run(flood(profile, work, args.lines))
            latencies += got
            durations.append(ran)
            print(
                f"flood run {run + 1}: {len(got)} keys in {ran:.1f} s, p95 "
                f"{percentile(got, 95) * 1000:.1f} ms, RSS now {rss_mib():.0f} MiB",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"# TUI, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, textual "
        f"{__import__('textual').__version__}, load average at the end: "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        "# start to first frame, each run (s): " + " ".join(f"{f:.3f}" for f in frames),
        f"median first_frame_s {statistics.median(frames):.3f}",
        f"# flood: {args.lines} lines, {args.runs} run(s) of "
        + ", ".join(f"{d:.1f}" for d in durations)
        + " s; keys pressed: "
        f"{len(latencies)}",
        f"key_latency_p50_ms {percentile(latencies, 50) * 1000:.1f}",
        f"key_latency_p95_ms {percentile(latencies, 95) * 1000:.1f}",
        f"key_latency_max_ms {max(latencies) * 1000:.1f}",
        f"peak_rss_mib {rss_mib('VmHWM'):.0f}",
    ]
    print("\n".join(lines))
    if not args.smoke:
        out = REPO / "bench" / "results" / "tui.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
