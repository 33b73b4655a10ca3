"""`check` says what the build would refuse, with the option key, and the build refuses it
before its first stage runs (not after an hour of mksquashfs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecd_tui.checks import run_checks
from livecd_tui.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "demo.toml"

#: (profile body over the demo, the option check must name, the stage that refuses it)
REFUSED = [
    ('[iso]\ntool = "genisoimage"\n', "iso.tool", "iso"),
    ('[kernel]\nextra_modules = ["no_such_module_xyz"]\n', "kernel.extra_modules", "initrd"),
    ('[bootloader]\nsecure_boot = "own-keys"\n', "bootloader.secure_boot_key", "bootloader"),
]


@pytest.mark.parametrize(("body", "key", "stage"), REFUSED)
def test_check_names_what_the_build_refuses_and_the_build_stops_first(
    tmp_path: Path, body: str, key: str, stage: str
) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(f'extends = "{DEMO}"\n{body}')
    report = run_checks(load_profile(profile), with_kernel=False)
    assert key in {item.key for item in report.problems}, report.lines
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", "build", str(profile), "--work-dir", str(work)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
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


#: Choices that change what the stages plan (a tree kernel would need a tree: left out).
PLANNED_CHOICES = (
    "initrd.format",
    "initrd.toolbox",
    "initrd.device_manager",
    "initrd.compression",
    "system.modules",
    "writable.strategy",
    "writable.archive_compression",
    "bootloader.type",
    "iso.tool",
    "boottest.firmware",
    "boottest.medium",
    "bootloader.secure_boot",
)
PLANNED_BOOLS = ("iso.hybrid", "bootloader.serial", "writable.copy_to_ram", "iso.checksum")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_whatever_a_planner_refuses_check_reports_with_its_key(
    tmp_path: Path, data: st.DataObject
) -> None:
    """Random combinations of the choices that shape the plan: when any stage cannot be
    planned (what the build refuses before it starts), `check` names the option at fault."""
    from livecd_tui.build import Build
    from livecd_tui.engine import PlanError, plan_stage
    from livecd_tui.options import OPTIONS
    from livecd_tui.stages import STAGES

    profile = load_profile(DEMO)
    for key in PLANNED_CHOICES:
        profile.set(key, data.draw(st.sampled_from(OPTIONS[key].choices), label=key))
    for key in PLANNED_BOOLS:
        profile.set(key, data.draw(st.booleans(), label=key))
    build = Build.for_profile(profile, tmp_path / "work", dry_run=True)
    refused = {}
    for stage in STAGES:
        try:
            plan_stage(build, stage)
        except PlanError as err:
            refused[stage.name] = err
    keys = {item.key for item in run_checks(profile, with_kernel=False).problems}
    for name, err in refused.items():
        assert err.option, f"stage {name} refused without naming an option: {err}"
        assert err.option in keys, (name, str(err), keys)
