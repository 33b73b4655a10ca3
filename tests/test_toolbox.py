"""The initrd's toolbox: busybox when there is one, else the system's own programs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from livecd_tui import checks, toolbox, tools
from livecd_tui.profile import new_profile


def root_profile(root: Path, **values: object):  # type: ignore[no-untyped-def]
    profile = new_profile()
    profile.set("system.source", "root")
    profile.set("system.root", str(root))
    for key, value in values.items():
        profile.set(key, value)
    return profile


def lfs_root(root: Path, programs: tuple[str, ...] = ()) -> Path:
    """A root with the named programs (empty files) in /usr/bin, no busybox."""
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "sbin").mkdir(parents=True)
    for name in programs:
        (root / "usr" / "bin" / name).write_text("")
    return root


def test_auto_takes_the_roots_busybox_then_the_hosts_then_the_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = lfs_root(tmp_path / "root", ("busybox",))
    choice = toolbox.choose(root_profile(root))
    assert choice.kind == "busybox" and choice.busybox == root / "usr/bin/busybox"

    bare = lfs_root(tmp_path / "bare")
    monkeypatch.setattr(shutil, "which", lambda name, **kw: "/opt/host/busybox")
    choice = toolbox.choose(root_profile(bare))
    assert choice.kind == "busybox" and choice.busybox == Path("/opt/host/busybox")

    monkeypatch.setattr(shutil, "which", lambda name, **kw: None)
    choice = toolbox.choose(root_profile(bare))
    assert choice.kind == "system" and "as in the article" in choice.why
    assert tools.BUSYBOX not in tools.required_tools(root_profile(bare))
    assert toolbox.choose(root_profile(root, **{"initrd.toolbox": "system"})).kind == "system"


def test_the_system_toolbox_names_what_the_root_lacks(tmp_path: Path) -> None:
    have = tuple(name for name, required in toolbox.SYSTEM_PROGRAMS if required)
    root = lfs_root(tmp_path / "root", tuple(n for n in have if n != "insmod"))
    profile = root_profile(root, **{"initrd.toolbox": "system"})
    found, missing = toolbox.system_programs(profile)
    assert missing == ["insmod", "switch_root"]
    assert "/usr/bin/bash" in found
    report = checks.run_checks(profile, with_kernel=False)
    problem = next(i for i in report.problems if "system toolbox needs" in i.message)
    assert "insmod, switch_root" in problem.message and problem.key == "initrd.toolbox"
    profile.set("initrd.format", "classic")
    assert toolbox.system_programs(profile)[1] == ["insmod", "pivot_root"]
    # The classic layout unpacks /etc from an archive at boot: tar and its decompressor.
    profile.set("writable.strategy", "classic")
    assert toolbox.system_programs(profile)[1] == ["insmod", "tar", "bzip2", "pivot_root"]
    profile.set("writable.archive_compression", "gzip")
    assert "gzip" in toolbox.system_programs(profile)[1]


def test_check_refuses_mdev_without_busybox(tmp_path: Path) -> None:
    root = lfs_root(tmp_path / "root")
    profile = root_profile(root, **{"initrd.toolbox": "system", "initrd.device_manager": "mdev"})
    keys = {i.key for i in checks.run_checks(profile, with_kernel=False).problems}
    assert "initrd.device_manager" in keys
