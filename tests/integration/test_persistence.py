"""Persistence, proven by booting: a file written in the live system is there after a
power-off and a new boot from the same store, and not with the menu's entry without
persistence. The store is made by `livecd-tui persistence-image`; the ISO by the tool;
the guest is driven over its serial console (QEMU, TCG).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import PROFILES, livecd, write_profile
from tests.integration.serial import Guest, booted, log_in

pytestmark = pytest.mark.integration

NOTE = "/kept-across-boots"


def build(tmp_path: Path, name: str, body: str) -> tuple[Path, Path]:
    """(profile, ISO) of the demo with ``body`` added, built through the tool."""
    profile = write_profile(
        tmp_path / f"{name}.toml", PROFILES / "demo.toml", body + "\n[boottest]\nenabled = false\n"
    )
    work = tmp_path / f"work-{name}"
    result = livecd("build", profile, "--work-dir", work, timeout=1200)
    assert result.code == 0, result.output[-4000:]
    return profile, next((work / "out").glob("*.iso"))


def write_note(guest: Guest, text: str, note: str = NOTE) -> None:
    """Write ``TEXT-42`` (computed by the guest's shell, so the echoed command line does
    not match) into the note, sync, and see it read back."""
    out = guest.run(
        f"echo {text}-$((40+2)) > {note}; sync; cat {note}; echo WROTE-$((6*7))", "WROTE-42"
    )
    assert f"{text}-42" in out.splitlines(), out


def read_note(guest: Guest, note: str = NOTE) -> str:
    return guest.run(f"cat {note} 2>&1; echo READ-$((6*7))", "READ-42")


def power_off(guest: Guest) -> None:
    """Sync and reset the machine at once (QEMU runs with -no-reboot, so it ends: the
    classic test kernel has no ACPI to power off with)."""
    guest.send("sync; reboot -f")
    guest.proc.wait(timeout=120)


def store_file(image: Path, path: str) -> str:
    """A file inside the ext4 store, read on the host from a copy whose journal e2fsck
    replayed (the guest powered off with the store mounted, as a live system does: the
    next mount replays it the same way)."""
    copy = image.with_name(image.name + ".copy")
    copy.write_bytes(image.read_bytes())
    fsck = subprocess.run(["e2fsck", "-fy", str(copy)], capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: fixed (the replay)
    try:
        return subprocess.run(
            ["debugfs", "-R", f"cat {path}", str(copy)], capture_output=True, text=True, check=True
        ).stdout
    finally:
        copy.unlink()


def test_a_partition_store_keeps_changes_and_the_nopersist_entry_does_not(tmp_path: Path) -> None:
    profile, iso = build(tmp_path, "part", '[writable]\npersistence = "partition"\n')
    store = tmp_path / "store.img"
    made = livecd("persistence-image", profile, store, "--size", "64M")
    assert made.code == 0, made.output
    assert "label LIVECD-DATA" in made.output

    with booted(iso, disks=[store]) as guest:
        log_in(guest)
        assert "livecd: persistence: /dev/vda, label LIVECD-DATA" in guest.output
        assert "No such file" in read_note(guest), "a new store is empty"
        write_note(guest, "first-boot")
        power_off(guest)
    assert store_file(store, f"/upper{NOTE}") == "first-boot-42\n"

    with booted(iso, disks=[store]) as guest:
        log_in(guest)
        assert "first-boot-42" in read_note(guest).splitlines()
        write_note(guest, "second-boot")
        power_off(guest)

    # The entry without persistence (made the default here) boots from the tmpfs; the
    # store is there but untouched.
    _, iso = build(
        tmp_path,
        "nopersist",
        '[writable]\npersistence = "partition"\n[bootloader]\nentries = ["nopersist", "normal"]\n',
    )
    before = store.read_bytes()
    with booted(iso, disks=[store]) as guest:
        log_in(guest)
        assert "livecd.nopersist: changes are kept in RAM only" in guest.output
        assert "No such file" in read_note(guest)
        power_off(guest)
    assert store.read_bytes() == before, "the nopersist entry wrote to the store"
    assert store_file(store, f"/upper{NOTE}") == "second-boot-42\n"


def test_a_store_file_on_a_fat_disk_keeps_changes(tmp_path: Path) -> None:
    profile, iso = build(
        tmp_path,
        "file",
        '[writable]\npersistence = "file"\npersistence_file = "live/changes.img"\n',
    )
    store = tmp_path / "changes.img"
    made = livecd("persistence-image", profile, store, "--size", "32M")
    assert made.code == 0, made.output
    fat = tmp_path / "stick.img"
    with fat.open("wb") as out:
        out.truncate(64 << 20)
    subprocess.run(["mkfs.vfat", "-n", "STICK", str(fat)], check=True, capture_output=True)
    subprocess.run(["mmd", "-i", str(fat), "::live"], check=True)
    subprocess.run(["mcopy", "-i", str(fat), str(store), "::live/changes.img"], check=True)

    for boot, text in enumerate(("boot-one", "boot-two")):
        with booted(iso, disks=[fat]) as guest:
            log_in(guest)
            said = "persistence: /run/livecd/persist-fat/live/changes.img, label LIVECD-DATA"
            assert f"livecd: {said}" in guest.output, guest.output[-3000:]
            if boot:
                assert "boot-one-42" in read_note(guest).splitlines()
            write_note(guest, text)
            power_off(guest)
    inside = tmp_path / "back.img"
    subprocess.run(["mcopy", "-i", str(fat), "::live/changes.img", str(inside)], check=True)
    assert store_file(inside, f"/upper{NOTE}") == "boot-two-42\n"


def test_an_encrypted_store_asks_for_its_passphrase_on_the_console(tmp_path: Path) -> None:
    profile, iso = build(
        tmp_path, "luks", '[writable]\npersistence = "partition"\npersistence_encrypted = true\n'
    )
    tree = tmp_path / "work-luks" / "stages" / "initrd" / "tree"
    assert list(tree.rglob("cryptsetup")), "cryptsetup is in the initrd"
    key = tmp_path / "passphrase"
    key.write_text("correct horse battery")
    store = tmp_path / "secret.img"
    made = livecd(
        "persistence-image",
        profile,
        store,
        "--size",
        "48M",
        "--passphrase-file",
        key,
        "--iter-time",
        "50",
    )  # TCG is slow
    assert made.code == 0, made.output
    assert b"first-boot" not in store.read_bytes()

    for boot, text in enumerate(("first-boot", "second-boot")):
        with booted(iso, disks=[store]) as guest:
            at = guest.expect("Enter passphrase for /dev/vda", 900)
            if boot == 0:
                guest.send("wrong guess")
                at = guest.expect("Enter passphrase for /dev/vda", 120, after=at)
            guest.send("correct horse battery")
            guest.expect("livecd: persistence: /dev/vda, label LIVECD-DATA", 300, after=at)
            log_in(guest)
            if boot:
                assert "first-boot-42" in read_note(guest).splitlines()
            write_note(guest, text)
            power_off(guest)
    data = store.read_bytes()
    assert b"first-boot-42" not in data and b"second-boot-42" not in data, (
        "the note is stored encrypted"
    )


def test_the_articles_method_keeps_its_writable_dirs_in_the_store(
    tmp_path: Path, classic_tree: Path
) -> None:
    """Classic: /etc (from the archive on a new store only) and the empty dirs (/root,
    /home, /var) are the store's, bound over the tmpfs root's; / itself stays a tmpfs.
    The test kernel has ext2 and IDE built in, no modules: the store is ext2 on an IDE disk."""
    profile = write_profile(
        tmp_path / "classic.toml",
        PROFILES / "classic.toml",
        f'[kernel]\ntree = "{classic_tree}"\n[system]\nsource = "busybox"\n'
        '[writable]\npersistence = "partition"\n[boottest]\nenabled = false\n',
    )
    work = tmp_path / "work"
    result = livecd("build", profile, "--work-dir", work, timeout=3000)
    assert result.code == 0, result.output[-5000:]
    iso = next((work / "out").glob("*.iso"))
    store = tmp_path / "store.img"
    made = livecd("persistence-image", profile, store, "--size", "32M", "--fs", "ext2")
    assert made.code == 0, made.output
    root_note, etc_note, tmp_note = "/root/kept", "/etc/kept", "/kept-in-ram"
    with booted(iso, memory_mib=256, disks=[store], interface="ide") as guest:
        log_in(guest)
        said = guest.output
        assert "livecd: persistence: /dev/sda, label LIVECD-DATA" in said, said[-3000:]
        assert "/etc unpacked from" in said, "a new store gets the archive's /etc"
        for note in (root_note, etc_note, tmp_note):
            write_note(guest, "classic", note)
        power_off(guest)
    with booted(iso, memory_mib=256, disks=[store], interface="ide") as guest:
        log_in(guest)
        assert "kept the persistence store's etc" in guest.output
        for note in (root_note, etc_note):
            assert "classic-42" in read_note(guest, note).splitlines()
        assert "No such file" in read_note(guest, tmp_note), "/ itself is a tmpfs"
        assert "root:" in read_note(guest, "/etc/passwd"), "the store's /etc is a whole /etc"
        power_off(guest)
