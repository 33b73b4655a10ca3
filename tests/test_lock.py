"""The work dir lock: readers never take it, the holder is named by pid and start time from a
file written by rename, and builds racing for one work dir (the real CLI) get exactly one
winner, the others refused with the winner named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from livecd_tui import procs, runner, workdir
from livecd_tui.build import WORK_MARKER, Build
from livecd_tui.engine import BuildError
from livecd_tui.profile import new_profile

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "livecd_tui.cli"]
ENV = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")


def marked_work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / WORK_MARKER).touch()
    return work


def test_reading_the_lock_takes_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = marked_work(tmp_path)
    build = Build(profile=new_profile(), work=work)
    calls: list[object] = []
    real_flock = workdir.fcntl.flock
    with workdir.work_lock(build):
        monkeypatch.setattr(workdir.fcntl, "flock", lambda *a: calls.append(a))
        info = workdir.read_lock(work)
        monkeypatch.setattr(workdir.fcntl, "flock", real_flock)
    assert calls == [], "a reader took the lock"
    assert info is not None and info.pid == os.getpid()
    assert info.start == procs.process_start(os.getpid())
    assert workdir.read_lock(work) is None, "the holder's file goes with the lock"
    assert not (work / workdir.HOLDER_FILE).exists()


def test_a_holder_is_a_live_process_with_its_start_time(tmp_path: Path) -> None:
    work = marked_work(tmp_path)
    holder = work / workdir.HOLDER_FILE
    me, start = os.getpid(), procs.process_start(os.getpid())
    assert start is not None
    cases = {
        "ok": ({"pid": me, "start": start, "since": 1.0, "profile": "p"}, True),
        # The pid now belongs to another process (this one), which started at another time.
        "pid reused": ({"pid": me, "start": start + 1, "since": 1.0, "profile": "p"}, False),
        "dead": ({"pid": 2**22 + 7, "start": start, "since": 1.0, "profile": "p"}, False),
        "zero pid": ({"pid": 0, "start": 0, "since": 1.0, "profile": "p"}, False),
        "no start": ({"pid": me, "since": 1.0, "profile": "p"}, False),
    }
    for name, (data, live) in cases.items():
        holder.write_text(json.dumps(data))
        assert (workdir.read_lock(work) is not None) == live, name
    for text in ("", "{", "[]", '{"pid": "x"}'):  # half-written or foreign: nobody
        holder.write_text(text)
        assert workdir.read_lock(work) is None, text
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while procs.process_start(zombie.pid) is not None:  # exited, not yet reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert Path(f"/proc/{zombie.pid}").exists(), "still a zombie"
    zombie.wait()


def test_a_refused_build_names_the_holder_even_before_it_wrote_its_name(tmp_path: Path) -> None:
    """The holder takes the lock first and names itself a moment later: a build refused in
    that moment waits for the name instead of saying "another process"."""
    work = marked_work(tmp_path)
    code = (
        "import fcntl, json, os, sys, time\n"
        "from livecd_tui import procs\n"
        f"work = {str(work)!r}\n"
        "lock = open(work + '/lock', 'a'); fcntl.flock(lock, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(0.5)\n"
        "me = os.getpid()\n"
        "procs.replace_file(__import__('pathlib').Path(work) / 'lock.json', json.dumps(\n"
        "    {'pid': me, 'start': procs.process_start(me), 'since': time.time(),\n"
        "     'profile': 'slow.toml'}).encode())\n"
        "time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(BuildError) as refused,
            workdir.work_lock(Build(profile=new_profile(), work=work)),
        ):
            pass
        assert f"pid {holder.pid}, profile slow.toml" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()


def test_twenty_builds_race_for_one_work_dir(tmp_path: Path) -> None:
    """Twenty `build`s (detached and not) start at once on one work dir while `status` is
    polled: exactly one runs, every other is refused naming it, no status ever names a
    pid 0 or another process, and no one says the build "exited at once"."""
    profile = tmp_path / "race.toml"
    # The winner must still hold the work dir when the last racer tries: a boot test that
    # waits for a marker that never comes keeps it until it is stopped.
    profile.write_text(
        f'extends = "{ROOT / "profiles" / "demo.toml"}"\n'
        '[boottest]\nmarker = "this never appears"\ntimeout = 900\n'
    )
    work = tmp_path / "work"
    racers = []
    for number in range(20):
        detach = ["--detach"] if number % 4 else []
        racers.append(
            subprocess.Popen(
                [*CLI, "build", str(profile), "--work-dir", str(work), "-q", *detach],
                cwd=ROOT,
                env=ENV,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        )
    seen: list[str] = []
    holders: set[int] = set()
    done = threading.Event()

    def poll_status() -> None:
        while not done.is_set():
            result = subprocess.run(
                [*CLI, "status", str(work)], cwd=ROOT, env=ENV, capture_output=True, text=True
            )
            seen.append(result.stdout + result.stderr)

    def poll_lock() -> None:
        while not done.is_set():
            info = workdir.read_lock(work)
            if info is not None:
                holders.add(info.pid)
            time.sleep(0.005)

    pollers = [threading.Thread(target=poll_status) for _ in range(2)]
    pollers.append(threading.Thread(target=poll_lock))
    for thread in pollers:
        thread.start()
    winner: int | None = None
    outcomes: dict[int, tuple[int | None, str]] = {}
    try:
        deadline = time.monotonic() + 240
        while True:
            for index, proc in enumerate(racers):
                if index not in outcomes and proc.poll() is not None:
                    out, err = proc.communicate()
                    outcomes[index] = (proc.returncode, out + err)
            info = workdir.read_lock(work)
            if info is not None and winner is None:
                winner = info.pid
            running = [p.pid for i, p in enumerate(racers) if i not in outcomes]
            if running in ([], [winner]):  # all answered, but a foreground winner
                break
            assert time.monotonic() < deadline, outcomes
            time.sleep(0.05)
        info = workdir.read_lock(work)
        assert info is not None and info.pid == winner, "the winner still runs"
    finally:
        done.set()
        for thread in pollers:
            thread.join()
        runner.stop(work, timeout=60)
        for proc in racers:
            if proc.poll() is None:
                proc.wait(timeout=60)
    for output in seen:
        assert "exited at once" not in output
        assert "pid 0" not in output, output
        running = re.findall(r"build running: pid (\d+)", output)
        assert running in ([], [str(winner)]), output
    assert holders == {winner}
    started = [i for i, (code, out) in outcomes.items() if code == 0]
    foreground_winner = [p for p in racers if p.pid == winner]
    assert len(started) + len(foreground_winner) == 1, outcomes
    if started:
        assert f"(pid {winner})" in outcomes[started[0]][1]
    for index, (code, output) in outcomes.items():
        if index in started:
            continue
        assert code == 2, output
        assert "exited at once" not in output
        assert f"is in use by a running build (pid {winner}," in output, output
    log = (work / workdir.DETACHED_LOG).read_text() if started else ""
    assert not started or "==> preflight" in log, "a refused build emptied the winner's log"
    assert not list((work / "logs").glob(".build.out.*")), "a refused build left its output"
