"""The real program in a real terminal: tmux at 80x24, keys sent, screen read back.

Opens a copy of the demo profile, changes an option through search and the value editor,
saves, builds, and waits until every stage is done or up to date. Then the SSH case: a
build started in the app, the terminal killed mid-stage (SIGHUP), the build going on and
booting, and a new terminal showing it again. Slow (real builds and QEMU boots), so these
are integration tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livecd_tui.profile import load_profile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SESSION = f"livecd-tui-test-{os.getpid()}"
BUILD_TIMEOUT = 600


#: The tests' own tmux server: a user's tmux is not touched, and no other client's server
#: can be the one exiting when a test opens a session.
TMUX = ("tmux", "-L", f"livecd-tui-test-{os.getpid()}")


def tmux(*args: str) -> str:
    return subprocess.run([*TMUX, *args], check=True, capture_output=True, text=True).stdout


def screen(session: str = SESSION) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def keys(*names: str, session: str = SESSION) -> None:
    for name in names:
        tmux("send-keys", "-t", session, name)
        time.sleep(0.2)  # a human's pace; the app reads keys as they come


def wait_for(text: str, timeout: float = 15, session: str = SESSION) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the screen:\n{screen(session)}")


def open_app(session: str, where: Path, terminal: str = "TERM=screen") -> None:
    """The TUI on ``where``/demo.toml in a new detached tmux session at 80x24, with the
    ``terminal`` variables (TERM, locale)."""
    command = (
        f"cd {where} && XDG_CACHE_HOME={where / 'cache'} "
        f"XDG_STATE_HOME={where / 'state'} {terminal} "
        f"{sys.executable} -m livecd_tui.cli demo.toml"
    )
    argv = ["new-session", "-d", "-s", session, "-x", "80", "-y", "24"]
    argv.append(f"env PYTHONPATH={ROOT} sh -c '{command}'")
    for attempt in range(5):
        try:
            tmux(*argv)
            return
        except subprocess.CalledProcessError as err:
            # The server exits with its last session; a new session asked of it meanwhile
            # gets "server exited unexpectedly": ask again, a new server then starts.
            if "server exited unexpectedly" not in (err.stderr or "") or attempt == 4:
                raise
            time.sleep(0.5)


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for this test")
    profile = tmp_path / "demo.toml"
    shutil.copy(ROOT / "profiles" / "demo.toml", profile)
    open_app(SESSION, tmp_path)
    try:
        yield profile
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", SESSION], check=False)


def test_change_save_build_in_tmux(session: Path) -> None:
    wait_for("Kernel  --->")
    keys("/", *"menu title", "Enter")
    wait_for("Menu title")
    keys("Enter", "C-u", *"tmux test", "Enter")
    wait_for("(tmux test) Menu title")
    assert "unsaved" in screen()
    keys("s")
    wait_for("Saved")
    assert load_profile(session).values["bootloader.title"] == "tmux test"

    keys("b")
    wait_for("preflight")
    keys("a")
    deadline = time.monotonic() + BUILD_TIMEOUT
    while time.monotonic() < deadline:
        shown = screen()
        rows = [line for line in shown.splitlines()[1:9]]
        if "FAILED" in shown or "stopped" in shown:
            raise AssertionError("a stage failed:\n" + shown)
        if all("done" in row or "up to date" in row for row in rows):
            break
        time.sleep(1)
    else:
        raise AssertionError("the build did not finish in time:\n" + screen())
    keys("Escape", "q")


def stage_rows(shown: str) -> list[str]:
    """The build screen's stage list: the eight rows under the header."""
    return [line.split("│")[0] for line in shown.splitlines()[1:9]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_build_survives_a_lost_terminal_and_is_shown_again(session: Path) -> None:
    from livecd_tui import runner, workdir

    where = session.parent
    work = where / "cache" / "livecd-tui" / "demo"
    wait_for("Kernel  --->")
    # An edit left unsaved: the build uses it, and it outlives the terminal.
    keys("/", *"menu title", "Enter")
    wait_for("Menu title")
    keys("Enter", "C-u", *"lost edit", "Enter")
    wait_for("(lost edit) Menu title")
    keys("b")
    wait_for("preflight")
    keys("a")
    deadline = time.monotonic() + 120
    while workdir.running_stage(work) in (None, "preflight", "kernel"):
        assert time.monotonic() < deadline, "no stage started:\n" + screen()
        time.sleep(0.1)
    wait_for("running")
    holder = workdir.read_lock(work)
    assert holder is not None
    shell = int(tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip())
    app_pids = [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(shell)], text=True, capture_output=True
        ).stdout.split()
    ]
    assert app_pids and holder.pid not in app_pids

    # The terminal goes away mid-stage, as when an SSH connection drops.
    stage = workdir.running_stage(work)
    tmux("kill-session", "-t", SESSION)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in app_pids):
        assert time.monotonic() < deadline, "the app did not end with its terminal"
        time.sleep(0.1)
    assert workdir.read_lock(work) == holder and alive(holder.pid), (
        f"the build died with the terminal during {stage}"
    )

    # A new terminal: the app opens on the running build (or on the editor if it ended).
    again = SESSION + "-again"
    open_app(again, where)
    try:
        wait_for("Restore them?", session=again)
        assert 'bootloader.title: "livecd-tui demo" -> "lost edit"' in screen(again)
        keys("r", session=again)
        wait_for("Edits restored", session=again)
        if workdir.read_lock(work) is not None:
            wait_for("Following the build", session=again)
            # The notice comes before the first poll of the build's files, and the build may
            # be between two stages or just ending: within a few polls a row says "running"
            # or the build is over.
            deadline = time.monotonic() + 15
            while True:
                rows = stage_rows(screen(again))
                if any("running" in row for row in rows) or workdir.read_lock(work) is None:
                    break
                assert time.monotonic() < deadline, rows
                time.sleep(0.2)
        deadline = time.monotonic() + BUILD_TIMEOUT
        while workdir.read_lock(work) is not None:
            assert time.monotonic() < deadline, "the build did not finish:\n" + screen(again)
            time.sleep(0.5)
        status = subprocess.run(
            [sys.executable, "-m", "livecd_tui.cli", "status", str(work)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "no build running" in status
        for line in status.split("\n\n")[0].splitlines()[3:]:  # the stage rows
            assert " done " in line, status  # boottest done: the ISO booted
        assert (work / "out" / "demo.iso").is_file()
        assert "lost edit" in (work / "stages/bootloader/boot/grub/grub.cfg").read_text()
        if "preflight" not in screen(again):
            keys("b", session=again)
        deadline = time.monotonic() + 15
        while not all("done" in row for row in stage_rows(screen(again))):
            assert time.monotonic() < deadline, "the screen:\n" + screen(again)
            time.sleep(0.2)
        assert "livecd-tui" in screen(again).splitlines()[0], "a scrambled screen"
        assert "unsaved" in screen(again)
        keys("q", session=again)
        wait_for("unsaved changes", session=again)
        keys("d", session=again)
        deadline = time.monotonic() + 15
        while (
            subprocess.run([*TMUX, "has-session", "-t", again], capture_output=True).returncode == 0
        ):
            assert time.monotonic() < deadline, "q did not quit:\n" + screen(again)
            time.sleep(0.2)
        assert not list((where / "state").glob("livecd-tui/recovery/*.toml")), (
            "a clean quit leaves no recovery file"
        )
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", again], check=False)
        runner.stop(work)


# -- a Linux console without a UTF-8 locale --------------------------------------------------
#: An LFS box's console: no UTF-8 locale, the kernel's terminal.
CONSOLE = "LANG=C LC_ALL=C TERM=linux"


def raw_screen(session: str) -> bytes:
    """The pane as bytes, as tmux holds it (UTF-8 where the program wrote UTF-8)."""
    return subprocess.run(
        [*TMUX, "capture-pane", "-p", "-t", session], check=True, capture_output=True
    ).stdout


def assert_ascii(session: str, where: str) -> None:
    shown = raw_screen(session)
    wrong = sorted({ch for ch in shown.decode(errors="replace") if not ch.isascii()})
    assert all(byte < 0x80 for byte in shown), (
        f"not ASCII on the {where}: {wrong}\n{shown.decode(errors='replace')}"
    )


def test_on_a_console_without_utf8_the_screen_holds_ascii_only(tmp_path: Path) -> None:
    """Under LANG=C LC_ALL=C TERM=linux the editor, the help, the build screen while the
    demo builds and after (with where the ISO is) are ASCII, byte for byte, as the
    terminal gets them. The same terminal with LIVECD_TUI_ASCII=0 shows what the check
    would catch: Textual's UTF-8."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for this test")
    shutil.copy(ROOT / "profiles" / "demo.toml", tmp_path / "demo.toml")
    control = SESSION + "-utf8"
    open_app(control, tmp_path, CONSOLE + " LIVECD_TUI_ASCII=0")
    try:
        wait_for("Kernel  --->", session=control)
        assert any(byte >= 0x80 for byte in raw_screen(control)), (
            "the control shows no UTF-8: the check below could not fail"
        )
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", control], check=False)

    work = tmp_path / "cache" / "livecd-tui" / "demo"
    open_app(SESSION, tmp_path, CONSOLE)
    try:
        wait_for("Kernel  --->")
        assert_ascii(SESSION, "editor")
        keys("Down", "Down", "Enter")  # the System menu open: tree guides
        keys("?")
        wait_for("Esc: close")
        assert_ascii(SESSION, "help")
        keys("Escape", "b")
        wait_for("preflight")
        assert_ascii(SESSION, "build screen")
        keys("a")
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            assert_ascii(SESSION, "build screen while building")
            shown = screen()
            if "ISO: " in shown:
                break
            assert "FAILED" not in shown, "a stage failed:\n" + shown
            assert time.monotonic() < deadline, "the build did not finish:\n" + shown
            time.sleep(0.5)
        assert_ascii(SESSION, "build screen after the build")
        assert "dd if=" in shown and (work / "out" / "demo.iso").is_file()
        keys("z")
        time.sleep(0.5)
        assert_ascii(SESSION, "zoomed log")
        keys("z", "Escape", "q")
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", SESSION], check=False)
        from livecd_tui import runner

        runner.stop(work)
