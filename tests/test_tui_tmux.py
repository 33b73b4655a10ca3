"""The real program in a real terminal: tmux at 80x24, keys sent, screen read back.

Opens a copy of the demo profile, changes an option through search and the value editor,
saves, builds, and waits until every stage is done or up to date. Slow (a real build and a
QEMU boot), so it is an integration test.
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


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def keys(*names: str) -> None:
    for name in names:
        tmux("send-keys", "-t", SESSION, name)
        time.sleep(0.2)  # a human's pace; the app reads keys as they come


def wait_for(text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen()
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the screen:\n{screen()}")


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for this test")
    profile = tmp_path / "demo.toml"
    shutil.copy(ROOT / "profiles" / "demo.toml", profile)
    command = (f"cd {tmp_path} && XDG_CACHE_HOME={tmp_path / 'cache'} TERM=screen "
               f"{sys.executable} -m livecd_tui.cli demo.toml")
    tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24",
         f"env PYTHONPATH={ROOT} sh -c '{command}'")
    try:
        yield profile
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], check=False)


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
