"""Faults: a build interrupted by signals at random points in its stages resumes and
boots; a full disk in the middle of a stage gives a clear error and resumes once there is
room. Real builds of the demo profile, real signals, a real small filesystem."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livecd_tui import procs, workdir
from livecd_tui.build import Build
from livecd_tui.engine import load_state
from livecd_tui.profile import new_profile
from tests.integration.helpers import EPOCH, PROFILES, ROOT, livecd, serial_log, write_profile

INTERRUPTIBLE = ["system", "initrd", "iso", "boottest"]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTERM]


def detach(profile: Path, work: Path) -> int:
    result = livecd("build", profile, "--work-dir", work, "--detach")
    assert result.code == 0, result.output
    info = workdir.read_lock(work)
    assert info is not None
    return info.pid


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_interrupt_each_stage_at_random_points_then_resume_and_boot(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "faults.toml", PROFILES / "demo.toml", "")
    work = tmp_path / "work"
    view = Build(profile=new_profile(), work=work)
    rng = random.Random(int(EPOCH))
    for stage, sig in zip(INTERRUPTIBLE, SIGNALS, strict=True):
        pid = detach(profile, work)
        wait_until(
            lambda s=stage: workdir.running_stage(work) == s or workdir.read_lock(work) is None,
            180,
            f"stage {stage} to start",
        )
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(pid, sig)
        wait_until(lambda: workdir.read_lock(work) is None, 60, "the build to stop")
        state = load_state(view, stage)
        assert state.status in ("interrupted", "done"), (stage, state.status)
        if state.status == "interrupted":
            # Nothing half-written stays under a final name.
            assert not view.done_dir(stage).exists() or stage == "boottest"
            if stage in ("iso", "boottest") and not (work / "out" / "faults.iso").exists():
                assert load_state(view, "iso").status != "done"
    result = livecd("build", profile, "--work-dir", work, "--resume")
    if result.code != 0 and "nothing to resume" in result.output:
        result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output[-4000:]
    assert load_state(view, "boottest").status in ("done", "skipped")
    assert "login:" in serial_log(work)


@pytest.fixture
def small_fs(tmp_path: Path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_mid_stage_then_resume(tmp_path: Path, small_fs: Path) -> None:
    profile = write_profile(tmp_path / "full.toml", PROFILES / "demo.toml", "")
    work = small_fs / "work"
    # --from kernel skips preflight's space check, so the disk fills inside a stage.
    result = livecd("build", profile, "--work-dir", work, "--from", "kernel")
    assert result.code == 1, result.output[-3000:]
    assert "No space left on device" in result.output
    view = Build(profile=new_profile(), work=work)
    failed = [
        s
        for s in ("kernel", "system", "initrd", "writable", "bootloader", "iso")
        if load_state(view, s).status == "failed"
    ]
    assert len(failed) == 1, result.output[-3000:]
    stage = failed[0]
    assert f"stage {stage} failed" in result.output
    assert not view.done_dir(stage).exists(), "a failed stage publishes nothing"
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_fs)], check=True)
    resumed = livecd("build", profile, "--work-dir", work, "--resume")
    assert resumed.code == 0, resumed.output[-4000:]
    assert "login:" in serial_log(work)


def test_signals_reach_a_foreground_build_too(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) on a build in the terminal: its command's whole group is killed and
    the state says interrupted."""
    profile = write_profile(tmp_path / "fg.toml", PROFILES / "demo.toml", "")
    work = tmp_path / "work"
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecd_tui.cli", "build", str(profile), "--work-dir", str(work)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: workdir.running_stage(work) == "boottest", 180, "the boot test")
    time.sleep(2)
    qemu = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    view = Build(profile=new_profile(), work=work)
    assert load_state(view, "boottest").status == "interrupted"
    for pid in qemu.stdout.split():
        if int(pid) != proc.pid:
            wait_until(
                lambda p=int(pid): not Path(f"/proc/{p}").exists(),
                15,
                f"process {pid} of the stage to be killed",
            )


CLI_ARGV = [sys.executable, "-m", "livecd_tui.cli"]


def gone(pid: int) -> bool:
    return procs.process_start(pid) is None


def slow_profile(tmp_path: Path, timeout: int = 900) -> Path:
    """The demo, with a boot test that waits for a marker that never comes: a long command
    (QEMU) to signal."""
    profile = tmp_path / "slow.toml"
    profile.write_text(
        f'extends = "{PROFILES / "demo.toml"}"\n'
        f'[boottest]\nmarker = "this never appears"\ntimeout = {timeout}\n'
    )
    return profile


def test_signals_exit_128_plus_n_and_attach_exits_as_the_build_did(tmp_path: Path) -> None:
    """Real builds: SIGINT gives 130, SIGTERM 143 (not 1, "build failed"); `build --detach`
    then `attach`: attach exits 143 when the build is stopped, 1 when it fails."""
    work = tmp_path / "work"
    profile = slow_profile(tmp_path)
    build = [*CLI_ARGV, "build", str(profile), "--work-dir", str(work), "-q"]

    def at_boottest(proc: subprocess.Popen[str] | None = None) -> None:
        def qemu_runs() -> bool:
            record = procs.read_command(work)
            return (
                workdir.running_stage(work) == "boottest"
                and record is not None
                and bool(procs.carriers(record.token))
            )

        wait_until(
            lambda: qemu_runs() or (proc is not None and proc.poll() is not None),
            300,
            "the boot test",
        )

    for sig, extra in ((signal.SIGINT, []), (signal.SIGTERM, ["--resume"])):
        proc = subprocess.Popen(
            [*build, *extra], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        at_boottest(proc)
        record = procs.read_command(work)
        assert record is not None and "qemu" in record.command
        qemu = procs.carriers(record.token)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, out[-2000:] + err
        assert f"build stopped by {signal.Signals(sig).name}" in err
        assert "build failed" not in err and "Traceback" not in err
        assert (
            load_state(Build(profile=new_profile(), work=work), "boottest").status == "interrupted"
        )
        assert qemu and all(gone(pid) for pid in qemu)

    def detach_and_attach(then: str) -> int:
        started = subprocess.run(
            [*build, "--resume", "--detach"], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr
        attach = subprocess.Popen(
            [*CLI_ARGV, "attach", str(work)],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if then == "stop":
            at_boottest()
            stopped = subprocess.run(
                [*CLI_ARGV, "stop", str(work)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert "stopped the build" in stopped.stdout, stopped.stdout + stopped.stderr
        _, err = attach.communicate(timeout=300)
        assert "Traceback" not in err
        return attach.returncode

    assert detach_and_attach("stop") == 143
    slow_profile(tmp_path, timeout=5)  # the boot test now fails: the marker never comes
    assert detach_and_attach("wait") == 1
    assert load_state(Build(profile=new_profile(), work=work), "boottest").status == "failed"


def test_a_build_killed_outright_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGKILL of `livecd-tui build` while QEMU runs: QEMU dies with it (it does not boot on
    for ever, unseen by `stop` and `status`), and the next build starts cleanly."""
    work = tmp_path / "work"
    profile = slow_profile(tmp_path)
    proc = subprocess.Popen(
        [*CLI_ARGV, "build", str(profile), "--work-dir", str(work), "-q"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def qemu_runs() -> list[int]:
        record = procs.read_command(work)
        if workdir.running_stage(work) != "boottest" or record is None:
            return []
        return procs.carriers(record.token)

    wait_until(lambda: bool(qemu_runs()) or proc.poll() is not None, 300, "QEMU to run")
    qemu = qemu_runs()
    assert qemu, "the boot test runs QEMU"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pid in qemu:
        wait_until(lambda p=pid: gone(p), 10, f"QEMU ({pid}) to die with the build")
    status = livecd("status", work)
    assert "no build running" in status.output and "interrupted" in status.output
    assert "ended" not in status.output, "nothing was left to end"
    slow_profile(tmp_path, timeout=5)
    again = livecd("build", profile, "--work-dir", work, "--resume", "-q")
    assert again.code == 1 and "timed out" in again.output, again.output[-3000:]
