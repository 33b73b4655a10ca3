"""The live CD never writes to the disks it finds: the demo ISO booted in QEMU with an extra
virtio disk holding an ext4 filesystem with a dirty journal (and the ISO's own volume label,
so the label lookup finds it too) leaves that disk's image byte for byte as it was, on a
normal boot and through the rescue path that probes every device.

The control at the end mounts the same disk read-only by hand from the rescue shell: that
changes the image (the kernel replays the journal), so the disk was one the old "mount -o ro
every filesystem" search would have written to, and the guest could have done it."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from livecd_tui import qemu
from tests.disk_images import make_dirty_ext4, sha256
from tests.integration.helpers import PROFILES, livecd, write_profile

LABEL = "LIVECD_DEMO"  # the demo's iso.volume_label


class Guest:
    """QEMU booting *iso* as a BIOS CD plus *extra* arguments, console on a pipe."""

    def __init__(self, iso: Path, extra: Sequence[str], timeout: float) -> None:
        argv = qemu.qemu_argv(
            iso, "bios", "cdrom", 384, "tcg", timeout=int(timeout) + 30, extra_args=extra
        )
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.text = ""
        self.pos = 0
        self.deadline = time.monotonic() + timeout

    def wait_for(self, pattern: str) -> None:
        """Read the console until *pattern* (a regex) appears after the last match."""
        assert self.proc.stdout is not None
        while time.monotonic() < self.deadline:
            found = re.search(pattern, self.text[self.pos :])
            if found:
                self.pos += found.end()
                return
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.text += chunk.decode(errors="replace")
        pytest.fail(f"no {pattern!r} on the console:\n{self.text[-4000:]}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        qemu.stop_qemu(self.proc)
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("toolbox", ["busybox", "system"])
def test_dirty_ext4_disk_is_never_written(tmp_path: Path, toolbox: str) -> None:
    """With busybox (no blkid: findfs and the superblock's magic) and with the system's own
    programs (util-linux's blkid)."""
    # The demo, with the drivers that let the initramfs see a virtio disk and mount ext4 (so
    # a wrong mount would replay the journal, not fail for lack of a driver).
    profile = write_profile(
        tmp_path / "disks.toml",
        PROFILES / "demo.toml",
        '[kernel]\nextra_modules = ["virtio_pci", "virtio_blk", "ext4"]\n'
        f'[initrd]\nwait = 3\ntoolbox = "{toolbox}"\n'
        "[boottest]\nenabled = false\n",
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work)
    assert result.code == 0, result.output[-4000:]
    iso = work / "out" / "disks.iso"
    assert iso.is_file()

    disk = tmp_path / "userdisk.img"
    make_dirty_ext4(disk, LABEL)
    before = sha256(disk)
    drive = ["-drive", f"file={disk},format=raw,if=virtio"]

    # 1. A normal boot to the login prompt.
    guest = Guest(iso, drive, timeout=600)
    try:
        guest.wait_for(r"livecd: found the live medium on /dev/sr0")
        guest.wait_for(r"live system up, root is overlay")
        guest.wait_for(r"login:")
    finally:
        guest.stop()
    assert "[vda]" in guest.text, "the kernel saw the disk"
    assert sha256(disk) == before, "the boot wrote to the ext4 disk"

    # 2. The rescue path: an ISO whose marker the initrd does not know, so every device is
    # probed for 3 s and then listed; then the control, by hand.
    wrong = write_profile(tmp_path / "wrong.toml", profile, '[iso]\nmarker = "another disc"\n')
    result = livecd("build", wrong, "--work-dir", work, "--only", "iso")
    assert result.code == 0, result.output[-4000:]
    guest = Guest(work / "out" / "wrong.iso", drive, timeout=600)
    try:
        guest.wait_for(r"livecd: boot failed: no medium with the marker was found")
        guest.wait_for(r"livecd: rescue shell[\s\S]*?# ")
        report = guest.text
        assert sha256(disk) == before, "looking for the medium wrote to the ext4 disk"
        guest.type(
            "mount -o ro /dev/vda /mnt; echo CONTROL-$?; umount /mnt; echo UMOUNTED-$((6*7))\n"
        )
        guest.wait_for(r"UMOUNTED-42")
        control = guest.text
    finally:
        guest.stop()
    assert re.search(r"/dev/vda 16 MiB .*\(not iso9660, udf or vfat: never mounted\)", report), (
        report[-3000:]
    )
    assert "CONTROL-0" in control, control[-2000:]
    assert sha256(disk) != before, "the control mount replays the journal"
