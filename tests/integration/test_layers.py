"""The layered system image end to end: a root changes between builds (content, new files,
deletions, chmod, chown, a file replaced by a directory and the reverse), each rebuild packs
only the change as a layer, and the booted live system (QEMU, serial console) shows exactly
the root's new tree: a listing with checksums taken inside the guest equals one taken of the
root. A full repack gives the same tree; the same inputs give the same ISO bytes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import PROFILES, livecd, write_profile
from tests.integration.serial import booted, log_in

#: What the listing compares: the packed system dirs, and the /etc files the test changes
#: (the rest of /etc is the scrub's and the live login's, changed on purpose).
TOPS = ("bin", "sbin", "usr", "lib")
ETC = ("etc/issue", "etc/shells", "etc/hostname", "etc/fstab", "etc/layer-note")


def guest_listing_command(where: str, names: tuple[str, ...]) -> str:
    """The listing in the live system (busybox), of ``names`` under ``where``: a line per
    entry, marked "L2" by the shell so that the echoed command line does not count."""
    return (
        f"cd {where} && m=L$((1+1)) && for t in " + " ".join(names) + "; do "
        '[ -e "$t" ] || [ -L "$t" ] && find "$t"; done | LC_ALL=C sort | '
        "while read -r p; do "
        'if [ -L "$p" ]; then echo "$m $p l $(readlink "$p")"; '
        'elif [ -d "$p" ]; then echo "$m $p d $(stat -c %a:%u:%g "$p")"; '
        'else echo "$m $p f $(stat -c %a:%u:%g "$p") $(sha256sum < "$p" | cut -c 1-16)"; fi; '
        "done; echo END-$((6*7))"
    )


def listing(root: Path, tops: tuple[str, ...] = (*TOPS, *ETC)) -> list[str]:
    """The guest's listing, of the root on the host."""
    names = []
    for top in tops:
        path = root / top
        if not os.path.lexists(path):
            continue
        names.append(top)
        if path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                rel = os.path.relpath(dirpath, root)
                names += [f"{rel}/{n}" for n in (*dirnames, *filenames)]
    lines = []
    for name in sorted(names, key=os.fsencode):
        path = root / name
        st = os.lstat(path)
        owner = f"{stat.S_IMODE(st.st_mode):o}:{st.st_uid}:{st.st_gid}"
        if stat.S_ISLNK(st.st_mode):
            lines.append(f"{name} l {os.readlink(path)}")
        elif stat.S_ISDIR(st.st_mode):
            lines.append(f"{name} d {owner}")
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            lines.append(f"{name} f {owner} {digest}")
    return lines


def guest_listing(
    iso: Path, memory_mib: int = 768, where: str = "/", names: tuple[str, ...] = (*TOPS, *ETC)
) -> list[str]:
    """Boot ``iso``, log in on the serial console, list the tree there."""
    with booted(iso, memory_mib=memory_mib) as guest:
        log_in(guest)
        out = guest.run(guest_listing_command(where, names), "END-42", timeout=600)
        guest.send("sync; reboot -f")
        guest.proc.wait(timeout=120)
    return [line[3:] for line in out.splitlines() if line.startswith("L2 ")]


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real root to change between builds: the demo's busybox system, as the tool
    makes it, copied out (with the CD kernel's modules in it)."""
    tmp = tmp_path_factory.mktemp("bbroot")
    profile = write_profile(tmp / "bb.toml", PROFILES / "demo.toml", "")
    made = livecd("build", profile, "--work-dir", tmp / "work", "--only", "kernel,system")
    assert made.code == 0, made.output[-3000:]
    root = tmp / "root"
    subprocess.run(["cp", "-a", str(tmp / "work" / "stages" / "system" / "root"), str(root)])
    return root


def change_one(root: Path) -> None:
    """Content, new files, a deletion, chmod, chown, a file -> dir and a dir -> file."""
    with (root / "etc" / "issue").open("a") as issue:
        issue.write("a line added for layer one\n")
    (root / "etc" / "layer-note").write_text("new in layer one\n")
    package = root / "usr" / "share" / "newpkg"
    package.mkdir(parents=True)
    for n in range(20):
        (package / f"file{n}").write_bytes(os.urandom(4096 + n))
    (package / "link").symlink_to("file1")
    (root / "sbin" / "reboot").unlink()  # busybox's link: gone in the live system
    (root / "etc" / "shells").chmod(0o600)
    os.chown(root / "etc" / "hostname", 5, 5)
    (root / "etc" / "fstab").unlink()
    (root / "etc" / "fstab").mkdir()
    (root / "etc" / "fstab" / "inside").write_text("a file where a file was\n")
    shutil.rmtree(root / "usr" / "sbin")
    (root / "usr" / "sbin").write_text("a file where a directory was\n")


def change_two(root: Path) -> None:
    """The reverse replacements, a removed tree, a changed file, a chmod back."""
    shutil.rmtree(root / "etc" / "fstab")
    (root / "etc" / "fstab").write_text("# a file again\n")
    (root / "usr" / "sbin").unlink()
    (root / "usr" / "sbin").mkdir()
    (root / "usr" / "sbin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (root / "usr" / "sbin" / "tool").chmod(0o755)
    shutil.rmtree(root / "usr" / "share" / "newpkg")
    (root / "etc" / "layer-note").write_text("changed in layer two\n")
    (root / "etc" / "shells").chmod(0o644)


def layers_of(work: Path) -> list[str]:
    state = json.loads((work / "stages" / "system" / "layers.json").read_text())
    return [image["file"] for image in state["images"]]


def test_rebuilds_pack_layers_and_the_live_system_is_the_roots_tree(
    tmp_path: Path, busybox_root: Path
) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(busybox_root), str(root)], check=True)
    kernel = busybox_root.parent / "work" / "stages" / "kernel"
    release = (kernel / "release").read_text().strip()
    system = f'[system]\nsource = "root"\nroot = "{root}"\n'
    body = (
        f'[kernel]\nimage = "{kernel / "vmlinuz"}"\nmodules_dir = "{root}/lib/modules/{release}"\n'
        "[boottest]\nenabled = false\n"
    )
    profile = write_profile(tmp_path / "layers.toml", PROFILES / "demo.toml", system + body)
    work = tmp_path / "work"
    iso = work / "out" / "layers.iso"

    first = livecd("build", profile, "--work-dir", work)
    assert first.code == 0, first.output[-3000:]
    assert "packing the whole system as the base image" in first.output
    assert layers_of(work) == ["system.squashfs"]

    change_one(root)
    second = livecd("build", profile, "--work-dir", work)
    assert second.code == 0, second.output[-3000:]
    assert "packing layer 1:" in second.output, second.output[-3000:]
    assert layers_of(work) == ["system.squashfs", "layer-01.squashfs"]
    seen = guest_listing(iso)
    assert len(seen) > 300, seen
    assert "usr/sbin f 644:0:0" in "\n".join(seen), "a directory replaced by a file"
    assert "etc/hostname f 644:5:5" in "\n".join(seen), "a chown"
    assert not [line for line in seen if line.startswith("sbin/reboot ")], "a deletion"
    assert seen == listing(root)

    # The same inputs, the same ISO bytes: the next build twice, from copies of this state.
    twin = tmp_path / "twin"
    subprocess.run(["cp", "-a", str(work), str(twin)], check=True)
    change_two(root)
    third = livecd("build", profile, "--work-dir", work)
    assert third.code == 0, third.output[-3000:]
    assert "packing layer 2:" in third.output
    assert layers_of(work) == ["system.squashfs", "layer-01.squashfs", "layer-02.squashfs"]
    again = livecd("build", profile, "--work-dir", twin)
    assert again.code == 0, again.output[-3000:]
    assert (twin / "out" / "layers.iso").read_bytes() == iso.read_bytes()
    layered = guest_listing(iso)
    assert layered == listing(root)

    # A full repack of the same root: one image, the same tree.
    full = write_profile(
        tmp_path / "full.toml", PROFILES / "demo.toml", system + "layers = false\n" + body
    )
    repack = livecd("build", full, "--work-dir", tmp_path / "full-work")
    assert repack.code == 0, repack.output[-3000:]
    assert "layers are off (system.layers)" in repack.output
    assert guest_listing(tmp_path / "full-work" / "out" / "full.iso") == layered

    # Copied to RAM (the toram entry), the layers too: the same tree, the medium released.
    toram = write_profile(
        tmp_path / "toram.toml",
        PROFILES / "demo.toml",
        system + body + "[writable]\ncopy_to_ram = true\n",
    )
    in_ram = livecd("build", toram, "--work-dir", work)
    assert in_ram.code == 0, in_ram.output[-3000:]
    assert in_ram.status("system") == "up to date", in_ram.output[-3000:]
    with booted(work / "out" / "toram.iso") as guest:
        log_in(guest)
        seen = guest.run(
            "cat /sys/block/loop*/loop/backing_file; grep -c iso9660 /proc/mounts; "
            "echo toram-$((6*7))",
            "toram-42",
        )
    for image in ("system.squashfs", "layer-01.squashfs", "layer-02.squashfs"):
        assert f"/run/livecd/toram/live/{image}" in seen, seen
    assert re.search(r"^0$", seen, re.M), "no iso9660 filesystem (the CD) is mounted"

    # Nothing changed, the stage forced: no new layer, the ISO is the same.
    before = iso.read_bytes()
    same = livecd("build", profile, "--work-dir", work, "--force", "system")
    assert same.code == 0, same.output[-3000:]
    assert "nothing changed in the root: the earlier images are kept" in same.output
    assert len(layers_of(work)) == 3
    assert iso.read_bytes() == before


def test_the_classic_method_stacks_the_layers_where_the_image_is(
    tmp_path: Path, busybox_root: Path, classic_tree: Path
) -> None:
    """The tmpfs root's bin, lib, sbin and usr link into /system: with layers that is a
    read-only overlayfs of the base and the layers (the test kernel has OVERLAY_FS)."""
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(busybox_root), str(root)], check=True)
    profile = write_profile(
        tmp_path / "classic-layers.toml",
        PROFILES / "classic.toml",
        f'[kernel]\ntree = "{classic_tree}"\n'
        f'[system]\nroot = "{root}"\nmodules = "none"\n'
        "[boottest]\nenabled = false\n",
    )
    check = livecd("check", profile)
    assert "the classic method stacks them where the image is" in check.output, check.output
    work = tmp_path / "work"
    first = livecd("build", profile, "--work-dir", work, timeout=3000)
    assert first.code == 0, first.output[-3000:]
    change_one(root)
    second = livecd("build", profile, "--work-dir", work)
    assert second.code == 0, second.output[-3000:]
    assert "packing layer 1:" in second.output
    assert layers_of(work) == ["system.squashfs", "layer-01.squashfs"]
    seen = guest_listing(
        work / "out" / "classic-layers.iso", memory_mib=256, where="/system", names=TOPS
    )
    assert len(seen) > 300, seen
    assert "usr/sbin f 644:0:0" in "\n".join(seen), "a directory replaced by a file"
    assert seen == listing(root, TOPS)
