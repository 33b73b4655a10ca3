"""The layer planner: when a rebuild may add a layer, and what the layer holds, packed by the
real mksquashfs from a small root (hostile names included) and read back with unsquashfs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from livecd_tui import layers, manifest

SOURCES = ("etc", "usr")
KEY = "k1"
DEFAULT = layers.Limits()


def make_root(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hello\n")
    (root / "etc" / "gone").write_text("to be removed\n")
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")


def pack(root: Path, out: Path, previous: Path, limits: layers.Limits = DEFAULT) -> str:
    """One system stage's packing, as the stage runs it: prepare, mksquashfs, finish."""
    out.mkdir(parents=True, exist_ok=True)
    decision = layers.prepare(root, out, previous, SOURCES, [], [], KEY, limits)
    subprocess.run(
        [
            "mksquashfs",
            *SOURCES,
            str(out / layers.PACK_IMAGE),
            "-noappend",
            "-no-progress",
            "-quiet",
            "-wildcards",
            "-ef",
            str(out / layers.PACK_EXCLUDE),
            "-pf",
            str(out / layers.PACK_PSEUDO),
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )
    layers.finish(out, previous, KEY)
    return layers.summary(decision)


def build(root: Path, work: Path, limits: layers.Limits = DEFAULT) -> str:
    """pack() into a fresh stage dir, then publish it as the engine does."""
    done, partial = work / "system", work / "system.partial"
    said = pack(root, partial, done, limits)
    subprocess.run(["rm", "-rf", str(done)], check=True)
    partial.rename(done)
    return said


def image_listing(image: Path) -> dict[str, str]:
    """name -> the first column of ``unsquashfs -lls`` (type and mode)."""
    out = subprocess.run(
        ["unsquashfs", "-lls", str(image)], capture_output=True, check=True
    ).stdout.decode()
    found = {}
    for line in out.splitlines():
        if "squashfs-root/" not in line:
            continue
        name = line.split("squashfs-root/", 1)[1].split(" -> ")[0]
        found[name] = line.split()[0]
    return found


def test_the_first_build_is_a_base_and_a_change_a_layer(tmp_path: Path) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    assert build(root, work).startswith("packing the whole system as the base image: no earlier")
    (root / "etc" / "motd").write_text("changed\n")
    (root / "etc" / "gone").unlink()
    (root / "usr" / "bin" / "tool").chmod(0o700)
    said = build(root, work)
    assert said.startswith("packing layer 1: ") and "and 1 removed" in said, said
    state = layers.load_state(work / "system")
    assert state is not None
    assert [i.file for i in state.images] == ["system.squashfs", "layer-01.squashfs"]
    inside = image_listing(work / "system" / "layer-01.squashfs")
    assert inside == {
        "etc": "drwxr-xr-x",
        "etc/gone": "c---------",  # the whiteout
        "etc/motd": "-rw-r--r--",
        "usr": "drwxr-xr-x",
        "usr/bin": "drwxr-xr-x",
        "usr/bin/tool": "-rwx------",
    }
    sums = (work / "system" / layers.SUMS).read_text().splitlines()
    assert [line.split("  ")[1] for line in sums] == ["system.squashfs", "layer-01.squashfs"]
    # Nothing changed: the earlier images are hard links into the new stage dir, no copies.
    everything = layers.Limits(repack_percent=100)
    said = pack(root, work / "system.partial", work / "system", everything)
    assert said == "nothing changed in the root: the earlier images are kept as they are"
    assert (work / "system.partial" / "system.squashfs").stat().st_nlink == 2
    state = layers.load_state(work / "system.partial")
    assert state is not None and len(state.images) == 2


@pytest.mark.parametrize(
    ("limits", "why"),
    [
        (layers.Limits(enabled=False), "layers are off (system.layers)"),
        (layers.Limits(max_layers=1), "1 layers already (system.max_layers = 1)"),
        (layers.Limits(repack_percent=1), "% of the base's size (system.repack_percent = 1)"),
    ],
)
def test_the_limits_make_the_next_build_a_new_base(
    tmp_path: Path, limits: layers.Limits, why: str
) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    build(root, work)
    (root / "etc" / "big").write_bytes(os.urandom(200_000))
    build(root, work)
    (root / "etc" / "motd").write_text("once more\n")
    said = build(root, work, limits)
    assert said.startswith("packing the whole system as the base image") and why in said, said
    state = layers.load_state(work / "system")
    assert state is not None and [i.file for i in state.images] == ["system.squashfs"]


def test_other_packing_options_make_a_new_base(tmp_path: Path) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    build(root, work)
    state = layers.load_state(work / "system")
    assert state is not None
    state.key = "another"
    state.save(work / "system" / layers.STATE)
    (root / "etc" / "motd").write_text("changed\n")
    assert "the packing options or the packed dirs changed" in build(root, work)


def test_hostile_names_reach_the_layer_as_names(tmp_path: Path) -> None:
    """Blanks, quotes, backslashes, globs and $(...) are names in the pseudo file, and
    the cat that reads them is given them quoted: nothing runs."""
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    build(root, work)
    names = ["a b", 'q"uote', "back\\slash", "star*[x]", "$(touch ran)", "`touch ran`", "t\tab"]
    for name in names:
        (root / "etc" / name).write_text(f"content of {name}\n")
    (root / "usr" / "bin" / "link to").symlink_to("tool")
    said = build(root, work)
    assert said.startswith("packing layer 1:"), said
    assert not (root / "ran").exists() and not (root / "etc" / "ran").exists()
    inside = image_listing(work / "system" / "layer-01.squashfs")
    for name in names:
        assert f"etc/{name}" in inside, (name, inside)
    assert inside["usr/bin/link to"].startswith("l")
    out = subprocess.run(
        ["unsquashfs", "-cat", str(work / "system" / "layer-01.squashfs"), 'etc/q"uote'],
        capture_output=True,
        check=True,
    ).stdout
    assert out == b'content of q"uote\n'


def test_what_a_layer_cannot_hold_makes_a_new_base(tmp_path: Path) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    build(root, work)
    (root / "etc" / "new\nline").write_text("x\n")
    said = build(root, work)
    assert "has a newline, which a pseudo file cannot name" in said, said
    (root / "etc" / "new\nline").unlink()
    said = build(root, work)
    assert "has a newline" in said, "its whiteout could not be named either"
    capable = root / "usr" / "bin" / "tool"
    capable.write_text("#!/bin/sh\necho new\n")
    try:
        os.setxattr(capable, "user.livecd", b"1")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    said = build(root, work)
    assert "has extended attributes (capabilities)" in said, said


def test_a_damaged_state_means_a_full_repack(tmp_path: Path) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    make_root(root)
    build(root, work)
    (work / "system" / layers.STATE).write_text("{not json")
    assert layers.load_state(work / "system") is None
    assert "no earlier image" in build(root, work)
    (work / "system" / layers.MANIFEST).write_bytes(b"garbage")
    assert manifest.load(work / "system" / layers.MANIFEST) is None
    assert "no earlier image" in build(root, work)


def test_the_packing_key_does_not_follow_the_work_dir(tmp_path: Path) -> None:
    """A work dir moved or copied (inside the root, where it is an exclude) keeps its
    layers; another compressor does not."""
    from livecd_tui.build import Build
    from livecd_tui.profile import new_profile
    from livecd_tui.stages.system import packing_key

    root = tmp_path / "root"
    make_root(root)
    profile = new_profile()
    profile.set("system.root", str(root))
    keys = {
        packing_key(Build(profile=profile, work=root / "var" / name), root)
        for name in ("one", "two")
    }
    assert len(keys) == 1
    profile.set("system.compressor", "xz")
    assert packing_key(Build(profile=profile, work=root / "var" / "one"), root) not in keys
