"""Property test: any string in any string option gives a clear error or safe use.

For every string, path and list option, Hypothesis tries values full of shell
metacharacters, quotes, spaces, unicode and control characters. A profile holding the value
either loads with a located problem, or plans every stage without a traceback; and where
the value reaches a command, it arrives there as one argv item, unchanged.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecd_tui.build import Build
from livecd_tui.engine import BuildError, plan_stage
from livecd_tui.options import OPTIONS
from livecd_tui.profile import ProfileError, load_profile
from livecd_tui.stages import STAGES
from livecd_tui.steps import Command

STRING_OPTIONS = [o for o in OPTIONS.values() if o.kind in ("str", "path", "list")]
NASTY = st.text(
    alphabet=st.sampled_from(list(" ;|&$`'\"\\()<>*?~#!{}[]\n\t\x00é日本-_./a1")), max_size=40
)


def nested(key: str, value: object) -> dict:
    *parents, name = key.split(".")
    data: dict = {name: value}
    for part in reversed(parents):
        data = {part: data}
    return data


@pytest.mark.parametrize("option", STRING_OPTIONS, ids=lambda o: o.key)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=NASTY)
def test_any_string_is_refused_clearly_or_reaches_commands_unchanged(
    option, text: str, tmp_path: Path
) -> None:
    value: object = [text] if option.kind == "list" else text
    path = tmp_path / "p.toml"
    path.write_text(tomli_w.dumps(nested(option.key, value)))
    assert tomllib.loads(path.read_text())  # the file itself is valid TOML
    try:
        profile = load_profile(path)
    except ProfileError as err:
        assert err.problems and all(p.key == option.key for p in err.problems)
        assert all(str(p).startswith(str(path)) for p in err.problems)
        return
    build = Build.for_profile(profile, tmp_path / "work")
    argv_items: list[str] = []
    refused: set[str] = set()
    for stage in STAGES:
        try:
            steps = plan_stage(build, stage)
        except BuildError as err:
            assert f"stage {stage.name}" in str(err)
            refused.add(stage.name)
            continue
        for step in steps:
            if isinstance(step, Command):
                argv_items += step.argv
    # Values that are arguments of a command are exactly one argv item each (excludes are
    # relative to the root, so their leading and trailing slashes go).
    expected = text.strip("/") if option.key == "system.excludes" else text
    user = {"iso.volume_label": "iso", "system.excludes": "system"}.get(option.key)
    if user and user not in refused and expected:
        assert expected in argv_items
