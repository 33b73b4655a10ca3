"""Paths a shell would read as commands: a real build of the demo profile whose work dir,
profile file name and iso.output hold ``$(...)``, backquotes, ``;``, spaces and a line
break runs none of them (mtools used to hand the work dir to ``sh -c``), and a work dir
with a line break is refused before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from livecd_tui.workdir import written_by_livecd_tui
from tests.integration.helpers import EPOCH, PROFILES, ROOT, write_profile

#: Every way a shell, sh -c "echo NAME" (mtools) or make's recipes would run a command.
HOSTILE = "a $(touch $CANARY) `touch $CANARY`; touch $CANARY ;b"


def run(canary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, CANARY=str(canary))
    return subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        cwd=ROOT,
    )


def test_hostile_names_run_nothing_and_build(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    # The control: these names do run a command when a shell reads them.
    subprocess.run(
        ["sh", "-c", f"echo {HOSTILE}"],
        env=dict(os.environ, CANARY=str(canary)),
        capture_output=True,
        check=False,
    )
    assert canary.exists(), "the hostile name would not run anything: the test is moot"
    canary.unlink()

    place = tmp_path / HOSTILE
    place.mkdir()
    output = place / f"out {HOSTILE}.iso"
    profile = write_profile(
        place / f"p {HOSTILE}\nline two.toml",
        PROFILES / "demo.toml",
        f'[iso]\noutput = "{output}"\n[boottest]\nenabled = false\n',
    )
    work = place / f"work {HOSTILE}"
    result = run(canary, "build", profile, "--work-dir", work)
    assert not canary.exists(), "a name was run as a command:\n" + result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert written_by_livecd_tui(output)
    assert (work / "stages" / "bootloader" / "boot" / "grub" / "efi.img").is_file()
    # A second build replaces its own ISO (it carries livecd-tui's id).
    again = run(canary, "build", profile, "--work-dir", work, "--force", "iso")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not canary.exists()


def test_work_dir_with_a_line_break_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    profile = write_profile(
        tmp_path / "p.toml", PROFILES / "demo.toml", "[boottest]\nenabled = false\n"
    )
    work = tmp_path / f"w {HOSTILE}\netc/x f 644 0 0 touch $CANARY"
    result = run(canary, "build", profile, "--work-dir", work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "line break" in result.stderr and "Traceback" not in result.stderr
    assert not canary.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]
