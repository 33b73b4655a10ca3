"""The live login at boot: the demo with a live user and autologin on every getty boots in
QEMU straight into that user's shell, in its own home."""

from __future__ import annotations

from pathlib import Path

from tests.integration.helpers import PROFILES, livecd, serial_log, write_profile


def test_live_user_is_logged_in_on_the_serial_console(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "live.toml",
        PROFILES / "demo.toml",
        '[system.login]\nuser = "live"\nautologin = "all"\n[boottest]\nmarker = "/home/live $"\n',
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output[-4000:]
    log = serial_log(work)
    assert "live system up, root is overlay" in log
    assert "can't change directory" not in log  # the home is the user's at boot
    assert "login:" not in log.split("live system up")[-1]  # no prompt: autologin
    report = (work / "out" / "live.scrub.txt").read_text()
    assert "live user live added" in report and "home/live/" in report
