"""Preflight runs again when a tool it found is removed or replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from livecd_tui import tools
from livecd_tui.build import Build
from livecd_tui.engine import fingerprint
from livecd_tui.profile import new_profile
from livecd_tui.stages import preflight


def preflight_print(build: Build) -> str:
    return fingerprint(build, preflight.STAGE, preflight.plan_preflight(build), {})


def test_a_removed_or_replaced_tool_changes_preflights_fingerprint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
