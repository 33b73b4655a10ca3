"""procs.run and procs.run_in_terminal: the one way the project runs a program."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from livecd_tui import procs


def test_run_returns_the_exit_code_and_each_stream() -> None:
    result = procs.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.out, result.err) == (3, b"out\n", b"err\n")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_run_hands_input_as_a_real_stdin_and_keeps_bytes_as_they_are() -> None:
    data = bytes(range(256)) * 64
    result = procs.run(["sh", "-c", "test -f /dev/stdin || test -p /dev/stdin; cat"], input=data)
    assert result.returncode == 0 and result.out == data


def test_run_without_input_reads_dev_null_not_the_terminal() -> None:
    assert procs.run(["cat"], timeout=10).out == b""


def test_run_takes_env_and_cwd(tmp_path: Path) -> None:
    result = procs.run(
        ["sh", "-c", 'echo "$ONLY:$PWD"'],
        cwd=tmp_path,
        env={"ONLY": "this", "PATH": os.environ["PATH"]},
    )
    assert result.stdout == f"this:{tmp_path}\n"


def test_a_signal_is_its_negative_number() -> None:
    assert procs.run(["sh", "-c", "kill -TERM $$"]).returncode == -15


def test_a_missing_program_is_the_oserror_subprocess_raised() -> None:
    with pytest.raises(procs.ProgramNotFound) as caught:
        procs.run(["livecd-tui-no-such-tool"])
    with pytest.raises(FileNotFoundError) as expected:
        subprocess.run(["livecd-tui-no-such-tool"], check=False)
    assert str(caught.value) == str(expected.value)
    assert isinstance(caught.value, OSError)


def test_a_timeout_stops_the_whole_group(tmp_path: Path) -> None:
    """The program's own children go too: it runs in a session of its own."""
    pidfile = tmp_path / "child"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timed out after 0\.5 s"):
        procs.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while procs.process_start(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs.process_start(child) is None, "the program's child outlived the timeout"


def test_run_in_terminal_returns_the_exit_code(tmp_path: Path) -> None:
    assert procs.run_in_terminal(["sh", "-c", "exit 4"]) == 4
    assert procs.run_in_terminal(["sh", "-c", "touch here"], tmp_path) == 0
    assert (tmp_path / "here").exists()
    with pytest.raises(procs.ProgramNotFound):
        procs.run_in_terminal(["livecd-tui-no-such-tool"])
