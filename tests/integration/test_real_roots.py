"""Real roots the demo does not look like, packed and booted through the tool:

- an LFS-like root (SysV init, no busybox anywhere, its kernel and modules installed in
  it) with the article's initrd made of the root's own programs, by the modern method;
- a systemd root without the kernel's modules, booted with the host's kernel: the modules
  go into the image from outside the root, and in the live system ``modprobe`` loads one
  the initrd did not (logged in over the serial console).

The roots are made once with debootstrap and cached outside the repository
(tests/real_roots.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livecd_tui.build import find_prebuilt_kernel
from tests import real_roots
from tests.integration.helpers import PROFILES, livecd, serial_log, write_profile
from tests.integration.serial import booted, log_in
from tests.test_scrub import tree_digest


@pytest.fixture(scope="module")
def lfs_root() -> Path:
    return real_roots.real_root("lfs")


@pytest.fixture(scope="module")
def systemd_root() -> Path:
    return real_roots.real_root("systemd")


def test_an_lfs_like_root_boots_with_the_articles_toolbox(tmp_path: Path, lfs_root: Path) -> None:
    profile = write_profile(
        tmp_path / "lfs.toml",
        PROFILES / "modern.toml",
        f'[system]\nroot = "{lfs_root}"\ncompressor = "gzip"\n'
        '[initrd]\ntoolbox = "system"\n'
        "[boottest]\ntimeout = 900\nmemory_mib = 768\n",
    )
    check = livecd("check", profile)
    assert check.code == 0, check.output
    assert "initrd toolbox: system" in check.output
    before = tree_digest(lfs_root / "etc")
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work, timeout=3000)
    assert result.code == 0, result.output[-5000:]
    assert tree_digest(lfs_root / "etc") == before, "the root's /etc was changed"
    tree = work / "stages" / "initrd" / "tree"
    assert not list(tree.rglob("busybox")) and (tree / "bin" / "sh").resolve().name == "bash"
    log = serial_log(work)
    assert "livecd: switching to the live system" in log
    assert "INIT: version" in log, "SysV init ran"
    assert "login:" in log.split("INIT: version")[-1], "a getty on the serial console"


def test_a_systemd_root_without_modules_gets_them_and_modprobe_works(
    tmp_path: Path, systemd_root: Path
) -> None:
    kernel = find_prebuilt_kernel(Path("/"))
    assert kernel is not None, "the host kernel (linux-image-amd64) is needed"
    image, release = kernel
    assert not (systemd_root / "lib" / "modules" / release).exists()
    profile = write_profile(
        tmp_path / "sd.toml",
        PROFILES / "modern.toml",
        f'[kernel]\nimage = "{image}"\nmodules_dir = "/lib/modules/{release}"\n'
        f'[system]\nroot = "{systemd_root}"\nmodules = "all"\ncompressor = "gzip"\n'
        "[boottest]\nenabled = false\n",
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work, timeout=3000)
    assert result.code == 0, result.output[-5000:]
    assert (
        not (systemd_root / "lib" / "modules").exists()
        or not (systemd_root / "lib" / "modules" / release).exists()
    ), "the root is untouched"
    iso = next((work / "out").glob("*.iso"))
    with booted(iso) as guest:
        log_in(guest)
        out = guest.run("lsmod | grep -c '^af_key' ; echo BEFORE-$((6*7))", "BEFORE-42")
        assert "0" in out.splitlines(), out
        out = guest.run(
            "modprobe af_key && lsmod | grep -c '^af_key' ; echo AFTER-$((6*7))", "AFTER-42"
        )
        assert "1" in out.splitlines(), out
        out = guest.run(f"ls /lib/modules/{release}/kernel/net/key; echo LS-$((6*7))", "LS-42")
        assert "af_key.ko" in out, out


def test_an_lfs_like_root_boots_by_the_articles_method(
    tmp_path: Path, lfs_root: Path, classic_tree: Path
) -> None:
    """The classic method on the same root: the kernel built from the test tree, an ext2
    initrd of the root's own bash and tools, /linuxrc and pivot_root, /etc from a gzip
    archive (the root has no bzip2), GRUB legacy."""
    profile = write_profile(
        tmp_path / "lfs-classic.toml",
        PROFILES / "classic.toml",
        f'[kernel]\ntree = "{classic_tree}"\n[kernel.drivers]\npreset = "minimal"\n'
        f'[system]\nroot = "{lfs_root}"\ncompressor = "gzip"\n'
        '[initrd]\ntoolbox = "system"\nsize_mib = 32\n'
        '[writable]\narchive_compression = "gzip"\n'
        "[boottest]\ntimeout = 1200\nmemory_mib = 768\n",
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work, timeout=3600)
    assert result.code == 0, result.output[-5000:]
    log = serial_log(work)
    assert "using deprecated initrd support" in log, "the kernel ran the classic initrd"
    assert "livecd: switching to the live system" in log
    assert "INIT: version" in log and "login:" in log.split("INIT: version")[-1]
