"""The article's classic method end to end, through the product: a kernel built from
Debian's linux-source-6.1 by the kernel stage (tree cached outside the repo), an ext2 initrd
with /linuxrc and pivot_root, /etc from an archive, GRUB legacy, genisoimage and xorriso;
and its rescue shell when the CD's marker is not the initrd's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.helpers import (
    PROFILES,
    Booted,
    Result,
    booted_with,
    livecd,
    serial_log,
    write_profile,
)


@pytest.fixture(scope="module")
def classic(
    tmp_path_factory: pytest.TempPathFactory, classic_tree: Path
) -> tuple[Path, Path, Result]:
    """The classic profile built once (boot test included: BIOS CD); the other tests share
    its work dir, so they re-run only the stages they change."""
    tmp = tmp_path_factory.mktemp("classic")
    overrides = tmp / "etc-overrides"
    overrides.mkdir()
    (overrides / "motd").write_text("LIVECD-ETC-FROM-ARCHIVE\n")
    profile = write_profile(
        tmp / "classic.toml",
        PROFILES / "classic.toml",
        f'[kernel]\ntree = "{classic_tree}"\n'
        '[system]\nsource = "busybox"\n'
        '[writable]\noverrides = "etc-overrides"\n'
        "[boottest]\nmemory_mib = 256\n",
    )
    work = tmp / "work"
    return profile, work, livecd("build", profile, "--work-dir", work, timeout=3000)


def test_classic_method_boots(classic: tuple[Path, Path, Result]) -> None:
    _, work, result = classic
    assert result.code == 0, result.output[-5000:]
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub-legacy", "cd")
    assert "using deprecated initrd support" in log, "the kernel ran the classic initrd"
    assert "livecd: medium found on /dev/sr0 (iso9660, label LIVECD_CLASSIC)" in log
    assert "livecd: switching to the live system" in log
    assert "live system up, root is tmpfs" in log
    assert "LIVECD-ETC-FROM-ARCHIVE" in log, "/etc came from the archive with the overrides"
    assert "livecd-tui: /var/log is there" in log, "/var was made at boot"
    assert "login:" in log
    # The kernel stage checked the config and recorded what it built.
    kernel_log = (work / "logs" / "kernel.log").read_text()
    assert "ok       BLK_DEV_RAM" in kernel_log
    assert (work / "stages" / "kernel" / "release").read_text().startswith("6.1")


def test_the_same_cd_written_by_xorriso(classic: tuple[Path, Path, Result]) -> None:
    """The same CD written by xorriso instead of genisoimage (same El Torito options): it
    boots, and writing it again gives the same bytes (genisoimage stamps the time)."""
    profile, work, first_build = classic
    assert first_build.code == 0, first_build.output[-5000:]
    variant = write_profile(profile.with_name("xorriso.toml"), profile, '[iso]\ntool = "xorriso"\n')
    result = livecd("build", variant, "--work-dir", work, timeout=1200)
    assert result.code == 0, result.output[-5000:]
    assert {"iso", "boottest"} <= set(result.ran()) and "kernel" not in result.ran()
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub-legacy", "cd")
    assert "live system up, root is tmpfs" in log
    iso = work / "out" / "xorriso.iso"
    first = iso.read_bytes()
    again = livecd("build", variant, "--work-dir", work, "--only", "iso", "--force", "iso")
    assert again.code == 0, again.output[-3000:]
    assert iso.read_bytes() == first


def test_wrong_marker_reaches_the_rescue_shell(classic: tuple[Path, Path, Result]) -> None:
    """A CD whose LABEL does not hold the initrd's marker: /linuxrc says what it saw and
    opens its rescue shell, booted through the tool."""
    profile, work, first_build = classic
    assert first_build.code == 0, first_build.output[-5000:]
    variant = write_profile(
        profile.with_name("wrong.toml"),
        profile,
        '[iso]\nmarker = "some other disc"\n[boottest]\nmarker = "rescue shell"\ntimeout = 300\n',
    )
    # Only the ISO is rebuilt: its LABEL changes, the initrd keeps the old marker.
    result = livecd("build", variant, "--work-dir", work, "--only", "iso,boottest")
    assert result.code == 0, result.output[-5000:]
    assert result.ran() == ["iso", "boottest"]
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub-legacy", "cd")
    assert "rescue shell" in log
    assert "some other disc" in log, "it says what the CD's marker file holds"
    assert re.search(r"^ +/dev/sr0 .*LIVECD_CLASSIC", log, re.M), (
        "the rescue report lists the block devices it saw"
    )
    assert "switching to the live system" not in log


def test_the_check_entry_reads_the_medium_back(classic: tuple[Path, Path, Result]) -> None:
    """The check entry first (the default): /linuxrc reads the squashfs and the /etc archive
    back and compares them with the sums the initrd stage recorded, then boots on."""
    profile, work, first_build = classic
    assert first_build.code == 0, first_build.output[-5000:]
    check = write_profile(
        profile.with_name("check.toml"), profile, '[bootloader]\nentries = ["check", "normal"]\n'
    )
    result = livecd("build", check, "--work-dir", work, timeout=1200)
    assert result.code == 0, result.output[-5000:]
    assert "initrd" not in result.ran(), "the sums were recorded already"
    log = serial_log(work)
    assert booted_with(log) == Booted("seabios", "grub-legacy", "cd")
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert "livecd: media check: /live/etc.tar.bz2 OK" in log
    assert "livecd: media check: passed, the medium is intact" in log
    assert "live system up, root is tmpfs" in log and "login:" in log
