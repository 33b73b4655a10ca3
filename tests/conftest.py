"""Fixtures shared by the whole suite: the classic test kernel, built once per machine.

The tests that need it ask for it, so none of them skips for want of a kernel that some
other test happened to build before (the order pytest runs them in must not matter).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kernel_tree


@pytest.fixture(scope="session")
def classic_tree() -> Path:
    """Debian's 6.1 source, configured from tinyconfig to meet the classic requirements
    (unpacked once into the cache outside the repository)."""
    if not kernel_tree.SOURCE_TARBALL.is_file():
        pytest.fail(f"{kernel_tree.SOURCE_TARBALL} is missing: run `bash setup.sh test`")
    return kernel_tree.prepare_classic_kernel_tree(kernel_tree.default_cache_dir())


@pytest.fixture(scope="session")
def classic_kernel(classic_tree: Path) -> Path:
    """The classic test kernel's bzImage, built from ``classic_tree`` if it is not yet."""
    return kernel_tree.built_classic_kernel(kernel_tree.default_cache_dir())
