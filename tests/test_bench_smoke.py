"""The benchmarks in bench/ are not tests: these only check that the scripts are sound
(shellcheck) and that one of them, in its --smoke mode on the demo profile, runs and prints
numbers. Nothing here passes or fails on a time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "bench").glob("*.sh"))


def test_bench_shell_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck missing; run `bash setup.sh test`")
    assert SCRIPTS
    subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], cwd=ROOT, check=True)


def test_overhead_smoke_measures_the_tool_and_the_script(tmp_path: Path) -> None:
    env = dict(os.environ, LIVECD_BENCH_CACHE=str(tmp_path))
    run = subprocess.run(
        ["bash", "bench/overhead.sh", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    numbers = dict(re.findall(r"^median (\w+) ([0-9.]+)$", run.stdout, re.M))
    assert set(numbers) == {
        "tool_wall_s",
        "script_wall_s",
        "ratio",
        "tool_cpu_s",
        "script_cpu_s",
        "cpu_ratio",
    }, run.stdout
    assert all(float(value) > 0 for value in numbers.values())
    assert (tmp_path / "overhead" / "script-work" / "out" / "profile.iso").is_file()


def test_output_smoke_counts_every_line() -> None:
    """bench/output.py --smoke: the engine takes in 20,000 lines and says so (it raises when
    a line goes missing)."""
    import sys

    run = subprocess.run(
        [sys.executable, "bench/output.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    numbers = dict(re.findall(r"^median (\w+) ([0-9.]+)$", run.stdout, re.M))
    assert set(numbers) == {"engine_s", "seq_alone_s"} and float(numbers["engine_s"]) > 0


def test_manifest_smoke_walks_saves_and_compares() -> None:
    """bench/manifest.py --smoke: the walk of the repo's sources, saved, loaded, compared:
    nothing changed in between, so nothing is carried."""
    run = subprocess.run(
        [sys.executable, "bench/manifest.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    entries = re.search(r"^entries (\d+) files (\d+)", run.stdout, re.M)
    assert entries and int(entries[2]) > 50, run.stdout
    assert "0 carried, 0 removed" in run.stdout, run.stdout


def test_secrets_smoke_scans_files() -> None:
    """bench/secrets.py --smoke: the walk and the scan of the repo's sources run and count."""
    run = subprocess.run(
        [sys.executable, "bench/secrets.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    row = re.search(r"^([0-9.]+) ([0-9.]+) ([0-9.]+) (\d+) (\d+) ", run.stdout, re.M)
    assert row is not None, run.stdout
    assert int(row.group(4)) > 50
