"""The exclude matcher against the real mksquashfs: same trees, same patterns, same result."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecd_tui import excludes

pytestmark = pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="no mksquashfs")

NAMES = ["a", "b", ".a", "ab", "a b", "x*y", ".ssh", "id_rsa", "log", "#c", "[k]"]
GLOBS = [
    "*",
    "?",
    ".*",
    "a*",
    "*b",
    "[ab]",
    "[!a]*",
    "x\\*y",
    "\\#c",
    "\\[k]",
    "a\\ b",
    "id_*",
    ".s*",
    "[.]a",
]


def packed(root: Path, sources: list[str], patterns: list[str]) -> set[str]:
    """What the real mksquashfs packs: paths relative to the image root."""
    with tempfile.TemporaryDirectory() as tmp:
        exclude_file = Path(tmp) / "excludes"
        exclude_file.write_text("".join(p + "\n" for p in patterns))
        image = Path(tmp) / "image.sqfs"
        subprocess.run(
            [
                "mksquashfs",
                *sources,
                str(image),
                "-noappend",
                "-no-progress",
                "-quiet",
                "-keep-as-directory",
                "-wildcards",
                "-ef",
                str(exclude_file),
            ],
            cwd=root,
            check=True,
            capture_output=True,
        )
        listing = subprocess.run(
            ["unsquashfs", "-l", str(image)], check=True, capture_output=True, text=True
        ).stdout
    return {
        line.removeprefix("squashfs-root/")
        for line in listing.splitlines()
        if line.startswith("squashfs-root/")
    }


def predicted(root: Path, sources: list[str], patterns: list[str]) -> set[str]:
    parsed = [excludes.parse(p) for p in patterns]
    return {e.relpath for e in excludes.walk(root, sources, parsed) if e.excluded_by is None}


def make_tree(root: Path, paths: list[tuple[str, ...]]) -> None:
    for parts in paths:
        *dirs, leaf = parts
        directory = root.joinpath(*dirs)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue  # a file of that name came first
        target = directory / leaf
        if not target.exists():
            target.write_text("x")


tree_paths = st.lists(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map(tuple), min_size=1, max_size=12
)
pattern_text = st.one_of(
    st.lists(st.sampled_from(NAMES + GLOBS), min_size=1, max_size=3).map("/".join),
    st.sampled_from(NAMES + GLOBS).map(lambda p: "... " + p),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=tree_paths, patterns=st.lists(pattern_text, min_size=1, max_size=4))
def test_matcher_agrees_with_mksquashfs(paths: list[tuple[str, ...]], patterns: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for top in ("d", "e"):
            make_tree(root / top, paths)
        sources = ["d", "e"]
        full = [
            f"{top}/{p}" if not p.startswith("... ") else p for p in patterns for top in ("d", "*")
        ]
        assert predicted(root, sources, full) == packed(root, sources, full)


def test_escape_matches_only_the_literal_name(tmp_path: Path) -> None:
    names = ["x*y", "xzy", "a b", "#c", "[k]", "k", "back\\slash", " lead", "trail "]
    for name in names:
        (tmp_path / "d").mkdir(exist_ok=True)
        (tmp_path / "d" / name).write_text("x")
    for name in names:
        pattern = "d/" + excludes.escape(name)
        left = predicted(tmp_path, ["d"], [pattern])
        assert f"d/{name}" not in left and len(left) == len(names)
        assert left == packed(tmp_path, ["d"], [pattern])


def test_non_anchored_pattern_with_a_path_warns() -> None:
    assert excludes.parse("... .ssh/id_*").warning
    assert not excludes.parse("... .bash_history").warning
    assert not excludes.parse("home/*/.ssh/id_*").warning
