"""Profiles: round trips, extends, every kind of bad input, atomic saving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from livecd_tui.options import OPTIONS, defaults
from livecd_tui.profile import (
    ProfileError,
    find_profile,
    load_profile,
    new_profile,
    write_atomically,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "profiles").glob("*.toml"))
BAD = Path(__file__).parent / "fixtures" / "bad"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profile_round_trips(path: Path, tmp_path: Path) -> None:
    profile = load_profile(path)
    saved = profile.save(tmp_path / path.name)
    again = load_profile(saved)
    assert again.values == profile.values
    # Only what differs from the defaults is stored, in schema order.
    stored = tomllib.loads(saved.read_text())
    flat = {
        f"{table}.{k}" if not isinstance(v, dict) else None: v
        for table, entries in stored.items()
        for k, v in entries.items()
    }
    assert all(profile.values[k] != defaults()[k] for k in flat if k in OPTIONS)
    assert saved.read_text().startswith("# livecd-tui ")


def test_shipped_profiles_exist() -> None:
    assert {p.stem for p in SHIPPED} >= {"demo", "classic", "modern"}


def test_saved_keys_follow_schema_order(tmp_path: Path) -> None:
    profile = new_profile()
    profile.set("iso.marker", "zzz")
    profile.set("kernel.source", "tree")
    text = profile.save(tmp_path / "p.toml").read_text()
    assert text.index("[kernel]") < text.index("[iso]")


def _problems(name: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile(BAD / name)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("syntax.toml", ["syntax.toml:1:", "TOML syntax"]),
        (
            "unknown_key.toml",
            ["unknown_key.toml:3: kernel.sorce: unknown option", "did you mean kernel.source?"],
        ),
        ("wrong_type.toml", ["wrong_type.toml:3: bootloader.timeout: expected an integer"]),
        (
            "out_of_range.toml",
            ["out_of_range.toml:2: initrd.size_mib: 100000 is above the maximum 1024 MiB"],
        ),
        (
            "bad_choice.toml",
            ['bad_choice.toml:2: initrd.format: "zip" is not one of: initramfs, classic'],
        ),
        (
            "missing_file.toml",
            ["missing_file.toml:2: writable.overrides: no/such/dir does not exist"],
        ),
        ("cycle_a.toml", ["extends cycle", "cycle_a.toml"]),
        ("newline.toml", ["newline.toml:2: bootloader.title: must be a single line"]),
        ("list_item.toml", ["list_item.toml:2: system.dirs: item 2 should be a string"]),
        ("table_expected.toml", ["table_expected.toml:1: system: [system] is a table"]),
        ("empty_marker.toml", ["empty_marker.toml:3: boottest.marker: must not be empty"]),
        (
            "tmpfs_size.toml",
            ["tmpfs_size.toml:3: writable.tmpfs_size: must be a size as mount's size= takes it"],
        ),
    ],
)
def test_bad_input_is_reported_with_place(name: str, expected: list[str]) -> None:
    text = "\n".join(_problems(name))
    for fragment in expected:
        assert fragment in text


def test_all_problems_reported_at_once() -> None:
    problems = _problems("many.toml")
    keys = {p.split(": ")[1] if ": " in p else p for p in problems}
    assert len(problems) == 4, problems
    assert any("iso.volume_label: too long" in p for p in problems)
    assert any("many.toml:4: iso.hybrid: expected true or false" in p for p in problems)
    assert any("many.toml:7: boottest.timeout" in p for p in problems)
    assert any("boottest.firmware" in p and "bios, uefi" in p for p in problems)
    assert keys


def test_extends_layers_defaults_base_profile(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[iso]\nmarker = "base"\nvolume_label = "BASE"\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n[iso]\nmarker = "child"\n')
    child = load_profile(tmp_path / "child.toml")
    assert child["iso.marker"] == "child"
    assert child["iso.volume_label"] == "BASE"
    assert child["bootloader.type"] == defaults()["bootloader.type"]
    # Saving keeps extends and stores only what differs from the base.
    text = child.save().read_text()
    assert 'extends = "base.toml"' in text
    assert "BASE" not in text and '"child"' in text


def test_problem_in_base_names_the_base(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[initrd]\nformat = "zip"\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n')
    with pytest.raises(ProfileError) as caught:
        load_profile(tmp_path / "child.toml")
    assert "base.toml:2: initrd.format" in str(caught.value)


def test_set_refuses_bad_value_and_changes_nothing() -> None:
    profile = new_profile()
    before = dict(profile.values)
    with pytest.raises(ProfileError, match="below the minimum"):
        profile.set("boottest.memory_mib", 1)
    with pytest.raises(ProfileError, match="did you mean"):
        profile.set("iso.markr", "x")
    assert profile.values == before


def test_relative_paths_resolve_against_the_profile(tmp_path: Path) -> None:
    (tmp_path / "etc-over").mkdir()
    (tmp_path / "p.toml").write_text('[writable]\noverrides = "etc-over"\n')
    profile = load_profile(tmp_path / "p.toml")
    assert profile.resolve_path("writable.overrides") == tmp_path / "etc-over"


def test_find_profile_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert find_profile("demo").name == "demo.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    user = tmp_path / "livecd-tui" / "profiles"
    user.mkdir(parents=True)
    (user / "mine.toml").write_text("")
    assert find_profile("mine") == user / "mine.toml"
    with pytest.raises(ProfileError, match="no such profile"):
        find_profile("nope")


def test_atomic_save_survives_a_kill(tmp_path: Path) -> None:
    """A writer killed in the middle of a save leaves the old file whole."""
    target = tmp_path / "p.toml"
    target.write_text("old = 1\n")
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "import livecd_tui.profile as p\n"
        "real = os.fsync\n"
        "def slow(fd):\n"
        "    print('writing', flush=True); time.sleep(30)\n"
        "os.fsync = slow\n"
        f"p.write_atomically(Path({str(target)!r}), b'new = 2\\n' * 100000)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "old = 1\n"
    write_atomically(target, b"new = 2\n")
    assert target.read_text() == "new = 2\n"
    assert os.stat(target).st_mode & 0o777 == 0o644
