"""The headless commands on every shipped profile, and their answers to bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "profiles").glob("*.toml"))
BAD = Path(__file__).parent / "fixtures" / "bad"


def livecd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize("profile", SHIPPED, ids=lambda p: p.stem)
def test_plan_export_check_work_on_shipped_profiles(profile: Path, tmp_path: Path) -> None:
    plan = livecd("plan", profile)
    assert plan.returncode == 0, plan.stderr
    for stage in (
        "preflight",
        "kernel",
        "system",
        "initrd",
        "writable",
        "bootloader",
        "iso",
        "boottest",
    ):
        assert f"== {stage}:" in plan.stdout
    script = tmp_path / "build.sh"
    export = livecd("export-script", profile, "-o", script)
    assert export.returncode == 0, export.stderr
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    check = livecd("check", profile)
    assert check.returncode in (0, 1), check.stderr
    assert "Tools:" in check.stdout and "Traceback" not in check.stderr


def test_demo_plan_lists_real_commands_for_every_stage() -> None:
    plan = livecd("plan", "demo").stdout
    for command in (
        "cp --preserve=timestamps /boot/vmlinuz-",
        "mksquashfs bin lib sbin usr",
        "gzip -9 -n",
        "grub-mkimage",
        "xorriso -as mkisofs",
        "qemu-system-x86_64",
    ):
        assert command in plan


def test_options_lists_every_option() -> None:
    from livecd_tui.options import OPTIONS

    out = livecd("options").stdout
    assert all(f"{key} = " in out for key in OPTIONS)


@pytest.mark.parametrize("fixture", sorted(BAD.glob("*.toml")), ids=lambda p: p.stem)
def test_bad_profiles_exit_2_without_traceback(fixture: Path) -> None:
    for command in ("plan", "check", "build"):
        result = livecd(command, fixture)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"{fixture.name}" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert livecd("build").returncode == 2
    result = livecd("build", "demo", "--only", "nonsense", "--work-dir", "/nonexistent/x")
    assert result.returncode == 2 and "unknown stage" in result.stderr
    result = livecd("status", "/nonexistent/dir")
    assert result.returncode == 2


def test_status_shows_each_stage(tmp_path: Path) -> None:
    work = tmp_path / "work"
    result = livecd("build", "demo", "--work-dir", work, "--only", "preflight")
    assert result.returncode == 0, result.stderr
    status = livecd("status", work)
    assert status.returncode == 0
    assert "preflight   done" in status.stdout and "kernel      pending" in status.stdout


def test_check_says_a_set_option_is_unused_and_a_tree_is_checked_by_its_own_config(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "linux"
    (tree / "include" / "config").mkdir(parents=True)
    (tree / ".config").write_text("CONFIG_BLK_DEV_INITRD=y\n")
    other = tmp_path / "other.config"
    other.write_text("CONFIG_SQUASHFS=y\n")
    profile = tmp_path / "tree.toml"
    profile.write_text(f'[kernel]\nsource = "tree"\ntree = "{tree}"\nconfig = "{other}"\n')
    check = livecd("check", profile)
    assert "Traceback" not in check.stderr
    assert (
        f'note    kernel.config = "{other}" is not used: it applies only when '
        'kernel.source is "prebuilt"'
    ) in check.stdout
    assert f"config {tree}/.config" in check.stdout
    assert "BLK_DEV_INITRD=y" in check.stdout and "SQUASHFS=y" not in check.stdout
