"""Disk images for the tests that check the live CD never writes to the disks it finds."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path


def _e2fsprogs(tool: str) -> str:
    found = shutil.which(tool, path=os.environ.get("PATH", "") + ":/sbin:/usr/sbin")
    assert found, f"{tool} is required (Debian: e2fsprogs)"
    return found


def make_dirty_ext4(image: Path, label: str, size_mib: int = 16) -> None:
    """An ext4 image whose journal holds a transaction not yet replayed (needs_recovery), as
    a disk after a crash: a kernel that mounts it, even read-only (without ``noload``),
    replays the journal and so writes to the disk."""
    with image.open("wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    subprocess.run(
        [_e2fsprogs("mke2fs"), "-q", "-F", "-t", "ext4", "-L", label, str(image)],
        check=True,
        capture_output=True,
    )
    block = image.with_name(image.name + ".block")
    block.write_bytes(b"journalled, never replayed\n" * 100)
    # debugfs's journal commands: open the journal, log two blocks, close (no checkpoint).
    subprocess.run(
        [_e2fsprogs("debugfs"), "-w", "-f", "-", str(image)],
        check=True,
        capture_output=True,
        input=f"jo\njw -b 300,301 {block}\njc\n",
        text=True,
    )
    block.unlink()
    header = dumpe2fs_header(image)
    assert "needs_recovery" in header, header
    assert re.search(r"^Journal start:\s+[1-9]", header, re.M), "a transaction is logged"


def make_images(where: Path) -> dict[str, Path]:
    """Real filesystem images made with the real tools, and two fakes (a UDF volume
    recognition sequence, zeros); ext4's journal is dirty, as after a crash."""
    where.mkdir(parents=True, exist_ok=True)
    tree = where / "tree"
    tree.mkdir()
    (tree / "LABEL").write_text("x\n")
    images = {
        name: where / f"{name}.img"
        for name in ("iso9660", "vfat16", "vfat32", "ext4", "udf", "zeros")
    }
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-o", str(images["iso9660"]), "-V", "LIVE", str(tree)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["mformat", "-C", "-i", str(images["vfat16"]), "-T", "16384", "-h", "2", "-s", "32", "::"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "mformat",
            "-C",
            "-F",
            "-i",
            str(images["vfat32"]),
            "-T",
            "131072",
            "-h",
            "2",
            "-s",
            "32",
            "::",
        ],
        check=True,
        capture_output=True,
    )
    make_dirty_ext4(images["ext4"], "LIVE")
    udf = bytearray(64 * 1024)
    for sector, ident in ((16, b"BEA01"), (17, b"NSR03"), (18, b"TEA01")):
        udf[sector * 2048 + 1 : sector * 2048 + 6] = ident
    images["udf"].write_bytes(bytes(udf))
    images["zeros"].write_bytes(bytes(64 * 1024))
    return images


def dumpe2fs_header(image: Path) -> str:
    """``dumpe2fs -h`` of *image*: its features, state and journal."""
    return subprocess.run(
        [_e2fsprogs("dumpe2fs"), "-h", str(image)], capture_output=True, text=True, check=True
    ).stdout


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: Fakes for the boot scripts' find_medium over a directory of fake devices: DIR/NAME is a
#: device, blkid reads DIR/NAME.blkid (its fields) and mount "mounts" DIR/NAME.files by
#: copying it. Every blkid, mount and umount is logged to DIR/log; a mount that is not
#: read-only with a named medium type logs BAD. Both scripts' mount points are set: /init's
#: LIVE_DIR and /linuxrc's SYSTEM; both call the devices' lister candidate_devices.
FAKES = r"""
DEVS=$1
LIVE_DIR=$DEVS/live
SYSTEM=$DEVS/system
mkdir -p "$SYSTEM/cdrom"
LIVECD_WAIT=0
candidate_devices() {
    for d in "$DEVS"/sr0 "$DEVS"/vda "$DEVS"/vdb "$DEVS"/vdc "$DEVS"/sda "$DEVS"/sdb; do
        [ -e "$d" ] && echo "$d"
    done
    return 0
}
blkid() {
    echo "blkid${1:+ $*}" >>"$DEVS/log"
    if [ $# = 0 ]; then
        for f in "$DEVS"/*.blkid; do d=${f%.blkid}; echo "$d: $(cat "$f")"; done
    elif [ -f "$1.blkid" ]; then
        echo "$1: $(cat "$1.blkid")"
    else
        return 2
    fi
}
mount() {
    echo "mount $*" >>"$DEVS/log"
    case "$1 $2 $3 $4" in
    "-t iso9660 -o ro" | "-t udf -o ro" | "-t vfat -o ro") ;;
    *) echo BAD >>"$DEVS/log" ;;
    esac
    [ -d "$5.files" ] || return 32
    cp -R "$5.files/." "$6/"
    echo "$6" >"$DEVS/mnt"
}
umount() { echo "umount $*" >>"$DEVS/log"; rm -rf "$1"; mkdir -p "$1"; }
sleep() { :; }
rescan_devices() { :; }
"""


def fake_devices(where: Path, devices: dict[str, tuple[str, str | None]]) -> Path:
    """Fake devices for FAKES in *where*: name -> (blkid's fields for it, the marker text on
    it, or None for a device with nothing mountable)."""
    where.mkdir()
    (where / "log").write_text("")
    for name, (fields, marker) in devices.items():
        (where / name).write_text("")
        if fields:
            (where / f"{name}.blkid").write_text(fields)
        if marker is not None:
            (where / f"{name}.files" / "live").mkdir(parents=True)
            (where / f"{name}.files" / "LABEL").write_text(marker + "\n")
            (where / f"{name}.files" / "live" / "system.squashfs").write_text("")
    return where


def run_find_medium(
    busybox: str, script: Path, devs: Path, setup: str = "", env: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """Source *script* with FAKES over *devs*, then *setup*, and run its find_medium:
    (the output, ending in FOUND and the marker it mounted, then HOW and linuxrc's
    MEDIUM_HOW, or NOT-FOUND; the log's lines)."""
    (devs / "log").write_text("")
    proc = subprocess.run(
        [
            busybox,
            "sh",
            "-c",
            f'. "$2" && {FAKES}\n{setup}\n'
            'if find_medium; then echo "FOUND $(cat "$(cat "$DEVS/mnt")/LABEL")"; '
            'echo "HOW $MEDIUM_HOW"; '
            "else echo NOT-FOUND; fi",
            "sh",
            str(devs),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, (devs / "log").read_text().splitlines()


def mounted(log: list[str]) -> list[str]:
    """The names of the fake devices mounted, in order."""
    return [line.split()[-2].rsplit("/", 1)[-1] for line in log if line.startswith("mount ")]


def flip_a_byte_of(iso: Path, path: str) -> None:
    """Flip one bit of the byte in the middle of *path* inside *iso* (found with xorriso)."""
    report = subprocess.run(
        ["xorriso", "-indev", str(iso), "-find", path, "-exec", "report_lba", "--"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(
        r"File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*,\s*(\d+)\s*,", report.stdout + report.stderr
    )
    assert found, report.stdout + report.stderr
    offset = int(found.group(1)) * 2048 + int(found.group(2)) // 2
    with open(iso, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
