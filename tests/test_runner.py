"""Work dir ownership, detached builds, and the paths a root-run tool must never touch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livecd_tui import workdir
from livecd_tui.build import WORK_MARKER, Build
from livecd_tui.engine import BuildError, Engine, Stage, load_state, save_state
from livecd_tui.profile import new_profile
from livecd_tui.stages import STAGES
from livecd_tui.steps import command

ROOT = Path(__file__).resolve().parent.parent


def profile_at(tmp_path: Path, **values: object):
    profile = new_profile()
    profile.path = tmp_path / "p.toml"
    for key, value in values.items():
        profile.set(key.replace("__", "."), value)
    return profile


def hold_lock(work: Path) -> subprocess.Popen[str]:
    """Another process that holds the work dir, as a running build would."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from livecd_tui.build import Build\n"
        "from livecd_tui.profile import new_profile\n"
        "from livecd_tui.workdir import work_lock\n"
        f"b = Build(profile=new_profile(), work=Path({str(work)!r}))\n"
        "with work_lock(b):\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_build_is_refused_naming_the_first(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / WORK_MARKER).touch()
    holder = hold_lock(work)
    try:
        state_dir = work / "state"
        state_dir.mkdir()
        build = Build(profile=new_profile(), work=work)
        running = load_state(build, "system")
        running.status = "running"
        save_state(build, running)
        info = workdir.read_lock(work)
        assert info is not None and info.pid == holder.pid
        with pytest.raises(BuildError) as caught:
            Engine(build, []).run([])
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and "stage system" in message
        assert "running since" in message
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_build_is_taken_over(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / WORK_MARKER).touch()
    holder = hold_lock(work)
    build = Build(profile=new_profile(), work=work)
    state = load_state(build, "echo")
    state.status = "running"
    save_state(build, state)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert workdir.read_lock(work) is None, "the kernel dropped the dead build's lock"
    stage = Stage("echo", "Echo", "says hi", lambda b: [command(["echo", "hi"], "say hi")])
    assert Engine(build, [stage]).run([stage])
    assert load_state(build, "echo").status == "done"


@pytest.mark.parametrize(
    "case",
    ["root", "system_root", "home", "inside_packed", "foreign_dir", "iso_is_dir", "contains_home"],
)
def test_dangerous_paths_are_refused(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "sysroot"
    for d in ("bin", "lib", "sbin", "usr"):
        (system / d).mkdir(parents=True)
    home = tmp_path / "home" / "user"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    profile = profile_at(tmp_path, system__root=str(system))
    work = {
        "root": Path("/"),
        "system_root": system,
        "home": home,
        "inside_packed": system / "usr" / "work",
        "foreign_dir": tmp_path / "thesis",
        "iso_is_dir": tmp_path / "w",
        "contains_home": tmp_path / "home",
    }[case]
    if case == "foreign_dir":
        work.mkdir()
        (work / "chapter1.tex").write_text("precious")
    if case == "iso_is_dir":
        (tmp_path / "isodir").mkdir()
        profile.set("iso.output", str(tmp_path / "isodir"))
    build = Build(profile=profile, work=work)
    problems = workdir.path_problems(build, STAGES)
    assert problems, case
    with pytest.raises(BuildError):
        Engine(build, STAGES).run([])
    if case == "foreign_dir":
        assert (work / "chapter1.tex").read_text() == "precious"


def test_work_dir_inside_packed_tree_is_fine_when_excluded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "sysroot"
    (system / "usr").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    profile = profile_at(tmp_path, system__root=str(system), system__excludes=["usr/work"])
    build = Build(profile=profile, work=system / "usr" / "work")
    assert workdir.path_problems(build, STAGES) == []


def test_clean_removes_only_marked_idle_dirs(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data").write_text("x")
    with pytest.raises(BuildError, match="did not make it"):
        workdir.clean(foreign)
    assert (foreign / "data").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / WORK_MARKER).touch()
    holder = hold_lock(busy)
    try:
        with pytest.raises(BuildError, match="a build is running"):
            workdir.clean(busy)
    finally:
        holder.kill()
        holder.wait()
    workdir.clean(busy)
    assert not busy.exists()
    result = subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", "clean", str(foreign)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "refusing" in result.stderr


def test_detached_build_survives_its_parent_and_can_be_stopped(tmp_path: Path) -> None:
    """A detached build runs in its own session; attach follows it; stop interrupts it."""
    profile = tmp_path / "slow.toml"
    profile.write_text(
        '[boottest]\nenabled = false\n[system]\nsource = "busybox"\nmodules = "initrd"\n'
    )
    work = tmp_path / "work"
    cli = [sys.executable, "-m", "livecd_tui.cli"]
    started = subprocess.run(
        [*cli, "build", str(profile), "--work-dir", str(work), "--detach"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    info = workdir.read_lock(work)
    assert info is not None
    assert os.getsid(info.pid) == info.pid, "the build leads its own session"
    deadline = time.monotonic() + 60
    while workdir.running_stage(work) not in ("system", "initrd", "writable", "bootloader", "iso"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stopped = subprocess.run(
        [*cli, "stop", str(work)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert stopped.returncode == 0 and "stopped the build" in stopped.stdout
    status = subprocess.run([*cli, "status", str(work)], capture_output=True, text=True, cwd=ROOT)
    assert "interrupted" in status.stdout and "no build running" in status.stdout
    resumed = subprocess.run(
        [*cli, "build", str(profile), "--work-dir", str(work), "--resume"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (work / "out" / "slow.iso").is_file()
