"""Integration tests build real ISOs with the real tools and boot them in QEMU; they fail,
not skip, when a tool is missing (`bash setup.sh test` installs them all)."""

from __future__ import annotations

import os
import shutil

import pytest

NEEDED = [
    "mksquashfs",
    "xorriso",
    "genisoimage",
    "grub-mkimage",
    "qemu-system-x86_64",
    "busybox",
    "mke2fs",
    "debugfs",
    "sbsign",
    "sbattach",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _tools_present() -> None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [tool for tool in NEEDED if shutil.which(tool, path=path) is None]
    if missing:
        pytest.fail(f"integration tools missing: {missing}; run `bash setup.sh test`")
