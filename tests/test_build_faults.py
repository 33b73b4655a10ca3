"""Faults around a build: killed outright (nothing it ran goes on), a full disk while its state
is saved (a clear failure, no traceback), a stage that cannot be planned (what was built
from it is no longer current), signals (128 + N) and ``attach``'s exit code.

Stages here run real commands; builds that are killed or signalled are real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from livecd_tui import cli, procs, runner, workdir
from livecd_tui.build import Build
from livecd_tui.engine import (
    Engine,
    PlanError,
    Stage,
    StageFinished,
    StepContext,
    StepFailed,
    load_result,
    load_state,
    result_code,
)
from livecd_tui.profile import new_profile
from livecd_tui.steps import Action, command

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "livecd_tui.cli"]

#: A build in its own process running one stage, ``slow``, whose command is argv[2:].
ENGINE_SCRIPT = """
import sys
from pathlib import Path
from livecd_tui.build import Build
from livecd_tui.engine import Engine, Stage
from livecd_tui.profile import new_profile
from livecd_tui.steps import Action, command
argv = sys.argv[2:]
stage = Stage("slow", "Slow", "runs a command", lambda b: [command(argv, "run it")])
build = Build(profile=new_profile(), work=Path(sys.argv[1]))
sys.exit(0 if Engine(build, [stage]).run([stage]) else 1)
"""


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    return procs.process_start(pid) is None


def start_engine(work: Path, *argv: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A build running ``argv`` in its own process; returns it and the command's processes
    once they run (found by the token the work dir records)."""
    build = subprocess.Popen(
        [sys.executable, "-c", ENGINE_SCRIPT, str(work), *argv], cwd=ROOT, start_new_session=True
    )
    found: list[int] = []

    def running() -> bool:
        record = procs.read_command(work)
        found[:] = procs.carriers(record.token) if record else []
        return len(found) >= (2 if argv[0] == "sh" else 1)

    wait_until(running, 30, "the command to start")
    return build, found


def test_a_killed_build_takes_its_command_with_it(tmp_path: Path) -> None:
    work = tmp_path / "work"
    build, found = start_engine(work, "sleep", "300")
    [sleeper] = found
    build.send_signal(signal.SIGKILL)
    build.wait()
    wait_until(lambda: gone(sleeper), 10, "the command to die with the build")


def test_what_a_killed_build_left_running_is_ended_by_status_stop_and_the_next_build(
    tmp_path: Path,
) -> None:
    """The command's own child does not die with the build: found by its token, it is
    ended by the next ``status`` (then ``stop``, then the next build, in later rounds)."""
    for how in ("status", "stop", "build", "clean"):
        work = tmp_path / how
        # One child keeps the command's token, one clears its environment (env -i): it is
        # still found, in the command's process group.
        build, found = start_engine(work, "sh", "-c", "sleep 300 & env -i sleep 301 & wait")
        shell = next(pid for pid in found if os.getsid(pid) == pid)  # the command itself
        record = procs.read_command(work)
        assert record is not None
        # Both children exec'd: until `env -i` has run, its forked shell still has the token.
        wait_until(
            lambda r=record: (
                len(procs.leftovers(r.token)) == 3 and len(procs.carriers(r.token)) == 2
            ),
            30,
            "the shell's two children",
        )
        everything = procs.leftovers(record.token)
        assert len(procs.carriers(record.token)) == 2, "env -i cleared one's token"
        build.send_signal(signal.SIGKILL)
        build.wait()
        wait_until(lambda s=shell: gone(s), 30, "the shell to die with the build")
        left = [pid for pid in everything if not gone(pid)]
        assert len(left) == 2, "the shell's children outlive it (what the record is for)"
        if how == "build":
            stage = Stage("echo", "Echo", "says hi", lambda b: [command(["echo", "hi"], "hi")])
            engine = Engine(Build(profile=new_profile(), work=work), [stage])
            assert engine.run([stage])
            said = "\n".join(engine.notes)
        else:
            result = subprocess.run(
                [*CLI, how, str(work)], cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr
            said = result.stdout
        assert "ended 2 process(es) of `sh -c" in said and "stage slow" in said, said
        for pid in left:
            wait_until(lambda p=pid: gone(p), 30, f"leftover {pid} to be ended ({how})")
        if how == "clean":
            assert not work.exists()
            continue
        assert procs.read_command(work) is None
        again = subprocess.run(
            [*CLI, "status", str(work)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert "ended" not in again.stdout, "nothing is left the second time"


def test_a_live_builds_command_is_never_taken_for_a_leftover(tmp_path: Path) -> None:
    work = tmp_path / "work"
    build, found = start_engine(work, "sleep", "300")
    try:
        assert procs.end_leftovers(work) is None
        assert runner.end_leftovers(work) is None
        assert all(not gone(pid) for pid in found)
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root is needed to mount it)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root, as the build does")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("step_ok", [False, True], ids=["step-fails", "step-succeeds"])
def test_a_full_disk_while_saving_the_state_fails_the_stage_cleanly(
    tiny_fs: Path, step_ok: bool
) -> None:
    """The stage's last step fills the disk (and fails, or succeeds anyway): saving the
    stage's state then fails too. The stage is recorded as failed, with the reason, and the
    build says so; no traceback, nothing left saying running."""
    work = tiny_fs / "work"

    def fill(ctx: StepContext) -> None:
        with contextlib.suppress(OSError), open(ctx.out / "fill", "wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
        if not step_ok:
            raise StepFailed("the disk is full")

    stage = Stage(
        "fill",
        "Fill",
        "fills the disk",
        lambda b: [command(["true"], "a command first"), Action("fill the disk", fill)],
    )
    events: list[object] = []
    build = Build(profile=new_profile(), work=work)
    assert Engine(build, [stage], [events.append]).run([stage]) is False
    state = load_state(build, "fill")
    assert state.status == "failed"
    assert state.failure is not None
    assert "No space left on device" in "\n".join(state.failure["tail"])
    finished = [e for e in events if isinstance(e, StageFinished)]
    assert [e.status for e in finished] == ["failed"]
    failure = finished[0].failure
    assert failure is not None and "make room" in failure.hint
    assert failure.describe == "cannot save the stage's state", "the case under test"
    assert step_ok or "the disk is full" in failure.tail, "the step's own error is kept"
    assert not build.done_dir("fill").exists(), "nothing unrecorded is published"
    assert load_result(work) is None or load_result(work)["outcome"] in ("failed", "running")


def test_a_full_disk_before_the_build_starts_is_a_message(tiny_fs: Path) -> None:
    """The real CLI on a work dir whose disk is already full: exit 1, no traceback."""
    subprocess.run(
        ["sh", "-c", f"head -c 4000000 /dev/zero > {tiny_fs / 'filler'}"],
        check=False,
        capture_output=True,
    )
    result = subprocess.run(
        [*CLI, "build", str(ROOT / "profiles" / "demo.toml"), "--work-dir", str(tiny_fs / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr


def test_a_stage_that_cannot_be_planned_makes_what_follows_not_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stages named as the real ones, so ``status`` shows them: once all are built, a profile
    the bootloader stage cannot plan marks it failed and the ISO and boot test pending."""
    names = ["kernel", "bootloader", "iso", "boottest"]
    broken = {"now": False}

    def plan(name: str):
        def planner(build: Build) -> list:
            if name == "bootloader" and broken["now"]:
                raise ValueError("unbalanced double quote in kernel command line")
            return [command(["touch", build.partial_dir(name) / "made"], f"make {name}")]

        return planner

    stages = [
        Stage(n, n, n, plan(n), uses=(names[i - 1],) if i else ()) for i, n in enumerate(names)
    ]
    build = Build(profile=new_profile(), work=tmp_path / "work")
    assert Engine(build, stages).run(stages)
    iso = build.work / "out" / "old.iso"
    iso.write_bytes(b"an ISO the iso stage made")
    broken["now"] = True
    with pytest.raises(PlanError):
        Engine(build, stages).run(stages)
    states = {n: load_state(build, n) for n in names}
    assert states["kernel"].status in ("done", "skipped")
    assert states["bootloader"].status == "failed"
    assert states["bootloader"].failure["kind"] == "plan"
    assert states["iso"].status == "pending" and states["boottest"].status == "pending"
    assert build.done_dir("iso").exists(), "what was built is kept, only not current"
    result = load_result(build.work)
    assert result is not None and result["outcome"] == "plan failed"
    assert result_code(result) == 2
    assert cli.main(["status", str(build.work)]) == 0
    shown = capsys.readouterr().out
    assert "last build: plan failed: cannot plan stage bootloader" in shown
    rows = {
        line.split()[0]: line.split()[1]
        for line in shown.splitlines()
        if line.split() and line.split()[0] in names
    }
    assert rows == {
        "kernel": rows["kernel"],
        "bootloader": "failed",
        "iso": "pending",
        "boottest": "pending",
    }
    assert "unbalanced double quote" in shown
    assert f"{iso} is from an earlier build, not current" in shown
    assert cli.followed_code(build.work, None) == 2


def test_a_stop_before_the_build_began_still_stops_it(tmp_path: Path) -> None:
    """A signal right after the handler is installed calls stop() before run(): not lost."""
    ran: list[str] = []
    stage = Stage("echo", "Echo", "says hi", lambda b: [command(["echo", "hi"], "hi")])
    build = Build(profile=new_profile(), work=tmp_path / "work")
    engine = Engine(build, [stage], [lambda e: ran.append(type(e).__name__)])
    engine.stop("SIGTERM")
    assert engine.run([stage]) is False
    assert "StageStarted" not in ran
    result = load_result(build.work)
    assert result is not None and result["outcome"] == "interrupted"
    assert result["signal"] == "SIGTERM" and result_code(result) == 143
    assert engine.run([stage]) is True, "the next run is not stopped by the old stop"


def test_the_tui_reads_a_signalled_detached_build_as_stopped_not_as_an_error(
    tmp_path: Path,
) -> None:
    """The build's last word is now "build stopped by SIGTERM" (it was "build failed"): the
    build screen says the build stopped, not that it could not run."""
    from livecd_tui.stages import STAGES
    from livecd_tui.tui.detached import FollowFeed, Outcome

    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    feed = FollowFeed(work, STAGES, new_profile(), since=time.time() - 1)
    (work / workdir.DETACHED_LOG).write_text(
        "livecd-tui: SIGTERM: stopping the build\n"
        "livecd-tui: build stopped by SIGTERM after 3.1 s; logs in x; continue with: y\n"
    )
    assert feed.outcome() == Outcome(False)
