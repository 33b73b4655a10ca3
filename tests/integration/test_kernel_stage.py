"""The kernel stage on a real, already built kernel tree (the classic test kernel, Debian's
linux-source-6.1): the estimate it logs, up to date when nothing changed, and how long a
forced run takes when make has nothing to do. Nothing is compiled: the tree is built once
by the session's fixture (or by hand: python tests/kernel_tree.py --build)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.integration.helpers import PROFILES, livecd, write_profile

#: Generous bounds for a loaded 2-core machine (measured: 0.3 s skipped, 3 s forced).
SKIPPED_WITHIN = 10.0
FORCED_WITHIN = 90.0


@pytest.fixture(scope="module")
def built_tree(classic_tree: Path, classic_kernel: Path) -> Path:
    """The classic test kernel's tree, built (tests/conftest.py builds it once)."""
    return classic_tree


def test_unchanged_tree_is_up_to_date_and_a_forced_run_is_quick(
    tmp_path: Path, built_tree: Path
) -> None:
    profile = write_profile(
        tmp_path / "k.toml",
        PROFILES / "classic.toml",
        f'[kernel]\ntree = "{built_tree}"\n[kernel.drivers]\npreset = "minimal"\n',
    )
    work = tmp_path / "work"
    first = livecd("build", profile, "--work-dir", work, "--only", "kernel", timeout=1200)
    assert first.code == 0, first.output[-3000:]
    estimate = re.search(r"kbuild: about (\d+) objects to make", first.output)
    assert estimate and int(estimate.group(1)) > 1000

    started = time.monotonic()
    again = livecd("build", profile, "--work-dir", work, "--only", "kernel")
    skipped_in = time.monotonic() - started
    assert again.code == 0 and again.status("kernel") == "up to date", again.output
    assert skipped_in < SKIPPED_WITHIN

    started = time.monotonic()
    forced = livecd("build", profile, "--work-dir", work, "--only", "kernel", "--force", "kernel")
    forced_in = time.monotonic() - started
    assert forced.code == 0, forced.output[-3000:]
    assert "from the last build of this tree" in forced.output
    assert forced_in < FORCED_WITHIN
    print(
        f"kernel stage, unchanged tree: skipped in {skipped_in:.1f} s, "
        f"forced (make has nothing to do) in {forced_in:.1f} s"
    )
