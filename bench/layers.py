#!/usr/bin/env python3
"""Big roots: a change in the root rebuilds in proportion to the change (issue "layers").

On this machine's `/` packed by profiles/modern.toml (its dirs and excludes; boot test off),
each comparison inside this one run:

  (a) a full build, the tool against its exported script (the raw commands), alternating,
      and the time of each stage of the tool's;
  (b) one file changed -> new ISO (a layer), RUNS times, each stage's time;
  (c) a package-sized change: ~50 MiB in ~500 files (copies of the root's own libraries,
      as a package would bring), RUNS times;
  (d) nothing changed -> the build, RUNS times;
  (e) boot to `login:` (QEMU, TCG) of a 3-layer image against a 1-layer image of the same
      tree (the full build's, and its tree again as three layers: a file added, changed,
      removed), alternating, RUNS times each.

The changes go into ROOT/usr/local/share/livecd-bench (removed at the end). The layers'
limits are raised in the bench's profile so that every round adds a layer.

    .venv/bin/python bench/layers.py [--root /] [--runs 3] [--pairs 1] [--no-boot]

Writes bench/results/layers.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from livecd_tui import qemu  # noqa: E402
from livecd_tui.build import find_prebuilt_kernel  # noqa: E402

CACHE = Path(os.environ.get("LIVECD_BENCH_CACHE", Path.home() / ".cache" / "livecd-tui-bench"))
STAGES = ("preflight", "kernel", "system", "writable", "initrd", "bootloader", "iso")
LINES: list[str] = []


def say(line: str) -> None:
    print(line, flush=True)
    LINES.append(line)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(argv: list[str | Path], log: Path) -> float:
    """Run argv, its output to log; the wall time. Stops the bench when it fails."""
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT)
    took = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench: failed ({done.returncode}): {argv}; see {log}")
    return took


def livecd(*args: str | Path) -> list[str | Path]:
    return [sys.executable, "-m", "livecd_tui.cli", *args]


def stage_times(work: Path) -> dict[str, float]:
    """Each stage's time in the last build of ``work`` (0 when it was up to date)."""
    found = {}
    for name in STAGES:
        try:
            state = json.loads((work / "state" / f"{name}.json").read_text())
        except (OSError, ValueError):
            continue
        ran = state.get("status") == "done" and state.get("started") and state.get("ended")
        found[name] = state["ended"] - state["started"] if ran else 0.0
    return found


def shown(times: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.1f}" for k, v in times.items() if v >= 0.05)


def profile(path: Path, root: Path, extra: str = "") -> Path:
    kernel = find_prebuilt_kernel(Path("/"))
    assert kernel is not None, "a /boot/vmlinuz-RELEASE with its modules is needed"
    image, release = kernel
    path.write_text(
        f'extends = "{REPO / "profiles" / "modern.toml"}"\n'
        f'[kernel]\nimage = "{image}"\nmodules_dir = "/lib/modules/{release}"\n'
        f'[system]\nroot = "{root}"\nmax_layers = 32\nrepack_percent = 100\n{extra}'
        "[boottest]\nenabled = false\n"
    )
    return path


def package(into: Path, source_dirs: list[Path], total: int = 50 << 20, count: int = 500) -> int:
    """~total bytes in ~count files copied from the root's own libraries (real content, as
    compressible as a package's)."""
    into.mkdir(parents=True)
    made = size = 0
    per_file = total // count
    for source_dir in source_dirs:
        for path in sorted(source_dir.rglob("*")):
            if made >= count or size >= total:
                return size
            if path.is_symlink() or not path.is_file() or path.stat().st_size < per_file // 4:
                continue
            data = path.read_bytes()[: per_file * 2]
            (into / f"file{made:03d}").write_bytes(data)
            made, size = made + 1, size + len(data)
    return size


def full_builds(prof: Path, pairs: int) -> tuple[list[float], list[float], dict[str, float]]:
    """(a): the tool and its exported script, alternating, each on a fresh work dir."""
    tool_work, script_work = CACHE / "layers-tool", CACHE / "layers-script"
    script = CACHE / "layers-build.sh"
    run(livecd("export-script", prof, "--work-dir", script_work, "-o", script), CACHE / "x.log")
    tools, scripts, stages = [], [], {}
    for i in range(pairs):
        shutil.rmtree(tool_work, ignore_errors=True)
        tools.append(run(livecd("build", prof, "--work-dir", tool_work), CACHE / "full-tool.log"))
        stages = stage_times(tool_work)
        say(f"(a) full build {i + 1}, tool: {tools[-1]:.1f} s ({shown(stages)}; load {load()})")
        shutil.rmtree(script_work, ignore_errors=True)
        scripts.append(run(["bash", script], CACHE / "full-script.log"))
        say(f"(a) full build {i + 1}, script: {scripts[-1]:.1f} s (load {load()})")
    shutil.rmtree(script_work, ignore_errors=True)
    return tools, scripts, stages


def rebuilds(prof: Path, work: Path, change: Path, runs: int) -> dict[str, list[float]]:
    """(d), (b), (c) on top of the tool's full build."""
    found: dict[str, list[float]] = {"d": [], "b": [], "c": []}
    for i in range(runs):
        took = run(livecd("build", prof, "--work-dir", work), CACHE / "d.log")
        found["d"].append(took)
        say(f"(d) nothing changed {i + 1}: {took:.2f} s (load {load()})")
    change.mkdir(parents=True, exist_ok=True)
    for i in range(runs):
        (change / "one.conf").write_text(f"setting = {i}\n")
        took = run(livecd("build", prof, "--work-dir", work), CACHE / "b.log")
        found["b"].append(took)
        said = layer_line(CACHE / "b.log")
        say(f"(b) one file {i + 1}: {took:.1f} s ({shown(stage_times(work))}) {said}")
    libraries = [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib/python3")]
    for i in range(runs):
        shutil.rmtree(change / f"pkg-{i - 1}", ignore_errors=True)  # an upgrade
        size = package(change / f"pkg-{i}", [p for p in libraries if p.is_dir()])
        took = run(livecd("build", prof, "--work-dir", work), CACHE / "c.log")
        found["c"].append(took)
        said = layer_line(CACHE / "c.log")
        say(
            f"(c) package {i + 1} ({size / 1048576:.0f} MiB): {took:.1f} s "
            f"({shown(stage_times(work))}) {said}"
        )
    return found


def layer_line(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if "packing layer" in line or "packing the whole" in line or "nothing changed" in line:
            return "[" + line.split("] ", 1)[-1] + "]"
    return ""


def boot_seconds(iso: Path) -> float:
    """QEMU (TCG, BIOS CD) from start to the serial `login:` prompt."""
    argv = qemu.qemu_argv(
        iso, firmware="bios", medium="cdrom", memory_mib=2048, accel="tcg", timeout=900
    )
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):  # type: ignore[attr-defined]
            seen = (seen + chunk)[-4096:]
            if b"login:" in seen:
                return time.monotonic() - started
        sys.exit(f"bench: {iso} ended without login:; last output {seen[-500:]!r}")
    finally:
        qemu.stop_qemu(proc)


def boots(prof: Path, change: Path, runs: int) -> tuple[list[float], list[float]]:
    """(e): the full build's tree as three layers on its base (a file added, changed, then
    removed with its dir) against the full build's own one-image ISO, booted alternately."""
    work = CACHE / "layers-boot"
    three_iso, one_iso = work / "out" / "layers.iso", CACHE / "layers-one-image.iso"
    for n, text in enumerate(("added\n", "changed\n", None)):
        if text is None:
            shutil.rmtree(change)
        else:
            change.mkdir(parents=True, exist_ok=True)
            (change / "x.conf").write_text(text)
        run(livecd("build", prof, "--work-dir", work), CACHE / "e.log")
        say(f"(e) layer {n + 1}: {layer_line(CACHE / 'e.log')}")
    state = json.loads((work / "stages" / "system" / "layers.json").read_text())
    assert len(state["images"]) == 4, state
    three, one = [], []
    for i in range(runs):
        three.append(boot_seconds(three_iso))
        one.append(boot_seconds(one_iso))
        say(f"(e) boot {i + 1}: 3 layers {three[-1]:.1f} s, 1 image {one[-1]:.1f} s")
    return three, one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--no-boot", action="store_true")
    parser.add_argument(
        "--no-full",
        action="store_true",
        help="reuse the last run's full build (its work dir, its copy for (e), its ISO)",
    )
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"bench/layers.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, root {args.root}")
    say(f"load at start {load()}; {os.cpu_count()} CPUs")
    prof = profile(CACHE / "layers.toml", args.root)
    change = args.root / "usr" / "local" / "share" / "livecd-bench"
    shutil.rmtree(change, ignore_errors=True)
    try:
        if not args.no_full:
            tools, scripts, stages = full_builds(prof, args.pairs)
        else:
            tools, scripts, stages = [], [], stage_times(CACHE / "layers-tool")
        if not args.no_full:
            # (e) starts from this build: its ISO, and a copy of its work dir (hard links).
            shutil.rmtree(CACHE / "layers-boot", ignore_errors=True)
            subprocess.run(["cp", "-al", CACHE / "layers-tool", CACHE / "layers-boot"], check=True)
            one_image = CACHE / "layers-one-image.iso"
            one_image.unlink(missing_ok=True)
            os.link(CACHE / "layers-tool" / "out" / "layers.iso", one_image)
        found = rebuilds(prof, CACHE / "layers-tool", change, args.runs)
        shutil.rmtree(change, ignore_errors=True)
        three: list[float] = []
        if not args.no_boot:
            three, one = boots(prof, change, args.runs)
    finally:
        shutil.rmtree(change, ignore_errors=True)
    say("")
    full = statistics.median(tools) if tools else 0.0
    if tools:
        script = statistics.median(scripts)
        say(f"(a) full build: tool {full:.1f} s, script {script:.1f} s, ratio {full / script:.3f}")
        say(f"    stages: {shown(stages)}")
    for case, what in (("b", "one file"), ("c", "50 MiB package"), ("d", "nothing changed")):
        median = statistics.median(found[case])
        share = f", {median / full * 100:.1f} % of (a)" if full else ""
        say(f"({case}) {what}: median {median:.2f} s{share}")
    if three:
        a, b = statistics.median(three), statistics.median(one)
        say(f"(e) boot to login: 3 layers {a:.1f} s, 1 image {b:.1f} s, ratio {a / b:.3f}")
    say(f"load at end {load()}")
    (HERE / "results" / "layers.txt").write_text("\n".join(LINES) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
