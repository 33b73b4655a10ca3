"""`check` says what the build would refuse, with the option key, and the build refuses it
before its first stage runs (not after an hour of mksquashfs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from livecd_tui.checks import run_checks
from livecd_tui.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "demo.toml"

#: (profile body over the demo, the option check must name, the stage that refuses it)
REFUSED = [
    ('[iso]\ntool = "genisoimage"\n', "iso.tool", "iso"),
    ('[kernel]\nextra_modules = ["no_such_module_xyz"]\n', "kernel.extra_modules", "initrd"),
]


@pytest.mark.parametrize(("body", "key", "stage"), REFUSED)
def test_check_names_what_the_build_refuses_and_the_build_stops_first(
        tmp_path: Path, body: str, key: str, stage: str) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(f'extends = "{DEMO}"\n{body}')
    report = run_checks(load_profile(profile), with_kernel=False)
    assert key in {item.key for item in report.problems}, report.lines
    work = tmp_path / "work"
    result = subprocess.run([sys.executable, "-m", "livecd_tui.cli", "build", str(profile),
                             "--work-dir", str(work)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # A planner's refusal: nothing ran at all.
    assert result.returncode == 2, result.stdout + result.stderr
    assert not (work / "logs" / "preflight.log").exists()
    assert f"cannot plan stage {stage}" in result.stdout + result.stderr
    assert key in result.stdout + result.stderr


def test_shipped_profiles_plan_without_problems() -> None:
    for name in ("demo", "modern"):
        report = run_checks(load_profile(ROOT / "profiles" / f"{name}.toml"), with_kernel=False)
        assert not [i for i in report.problems if i.kind == "profile"], report.lines
