"""The article's classic method end to end, through the product: a kernel built from
Debian's linux-source-6.1 by the kernel stage (tree cached outside the repo), an ext2 initrd
with /linuxrc and pivot_root, /etc from an archive, GRUB legacy, genisoimage and xorriso."""

from __future__ import annotations

from pathlib import Path

from tests.integration.helpers import PROFILES, livecd, serial_log, write_profile


def test_classic_method_boots(tmp_path: Path, classic_tree: Path) -> None:
    overrides = tmp_path / "etc-overrides"
    overrides.mkdir()
    (overrides / "motd").write_text("LIVECD-ETC-FROM-ARCHIVE\n")
    profile = write_profile(
        tmp_path / "classic.toml", PROFILES / "classic.toml",
        f'[kernel]\ntree = "{classic_tree}"\n'
        '[system]\nsource = "busybox"\n'
        '[writable]\noverrides = "etc-overrides"\n'
        '[boottest]\nmemory_mib = 256\n')
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work, timeout=3000)
    assert result.code == 0, result.output[-5000:]
    log = serial_log(work)
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

    # The same CD written by xorriso instead of genisoimage (same El Torito options): it
    # boots, and writing it again gives the same bytes (genisoimage stamps the time).
    variant = write_profile(tmp_path / "xorriso.toml", profile, '[iso]\ntool = "xorriso"\n')
    result = livecd("build", variant, "--work-dir", work, timeout=1200)
    assert result.code == 0, result.output[-5000:]
    assert {"iso", "boottest"} <= set(result.ran()) and "kernel" not in result.ran()
    assert "live system up, root is tmpfs" in serial_log(work)
    iso = work / "out" / "xorriso.iso"
    first = iso.read_bytes()
    again = livecd("build", variant, "--work-dir", work, "--only", "iso", "--force", "iso")
    assert again.code == 0, again.output[-3000:]
    assert iso.read_bytes() == first

    # The check entry first (the default): /linuxrc reads the squashfs and the /etc archive
    # back and compares them with the sums the initrd stage recorded, then boots on.
    check = write_profile(tmp_path / "check.toml", variant,
                          '[bootloader]\nentries = ["check", "normal"]\n')
    result = livecd("build", check, "--work-dir", work, timeout=1200)
    assert result.code == 0, result.output[-5000:]
    assert "initrd" not in result.ran(), "the sums were recorded already"
    log = serial_log(work)
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert "livecd: media check: /live/etc.tar.bz2 OK" in log
    assert "livecd: media check: passed, the medium is intact" in log
    assert "live system up, root is tmpfs" in log and "login:" in log
