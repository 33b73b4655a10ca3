"""Preflight runs again when a tool it found is removed or replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from livecd_tui import tools
from livecd_tui.build import Build
from livecd_tui.engine import fingerprint
from livecd_tui.options import OPTIONS
from livecd_tui.profile import new_profile
from livecd_tui.stages import preflight


def preflight_print(build: Build) -> str:
    return fingerprint(build, preflight.STAGE, preflight.plan_preflight(build), {})


def test_a_removed_or_replaced_tool_changes_preflights_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = Build(profile=new_profile(), work=tmp_path / "work")
    fake = tmp_path / "bin" / "xorriso"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    real_find = tools.Tool.find

    def find(tool: tools.Tool) -> str | None:
        if tool.name == "xorriso":
            return str(fake) if fake.exists() else None
        return real_find(tool)

    monkeypatch.setattr(tools.Tool, "find", find)
    assert any(t.name == "xorriso" for t in tools.required_tools(build.profile))
    first = preflight_print(build)
    assert preflight_print(build) == first
    os.utime(fake, (1, 1))  # an upgrade: another file in its place
    upgraded = preflight_print(build)
    assert upgraded != first
    fake.unlink()
    assert preflight_print(build) not in (first, upgraded)


def test_plan_and_export_script_start_no_qemu_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """boottest.accel = "auto" with nothing kept: a dry run assumes TCG, it never probes."""
    from livecd_tui import cli, qemu

    def no_probe(*args: object, **kwargs: object) -> str:
        raise AssertionError("a dry run started a QEMU probe")

    monkeypatch.setattr(qemu, "detect_accel", no_probe)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo = str(Path(__file__).parent.parent / "profiles" / "demo.toml")
    work = str(tmp_path / "work")
    assert cli.main(["plan", demo, "--work-dir", work]) == 0
    assert "-accel tcg" in capsys.readouterr().out
    assert (
        cli.main(["export-script", demo, "--work-dir", work, "-o", str(tmp_path / "build.sh")]) == 0
    )
    assert "-accel tcg" in (tmp_path / "build.sh").read_text()


def test_every_tool_names_an_option_that_exists() -> None:
    """A missing tool points the user to the option that made the build need it."""
    for tool in tools.all_tools():
        assert tool.option in OPTIONS, (tool.name, tool.option)
    assert tools.XORRISO.option == "iso.tool" and tools.OVMF.option == "boottest.firmware"
