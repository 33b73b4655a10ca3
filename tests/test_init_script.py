"""The initramfs /init (livecd_tui/data/init): shellcheck, its helpers under busybox sh, and
(integration) real boots in QEMU of Debian's kernel with an initramfs made around it.

The script only runs its main part as PID 1, so a normal shell can source it and call its
functions. The QEMU tests boot the kernel directly (-kernel/-initrd, no boot loader) with a
data-only ISO as the CD: they check the contract of docs/initrd-contract.md, not a loader.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from livecd_tui import qemu
from tests import disk_images
from tests.disk_images import fake_devices, make_images, mounted, sha256
from tests.integration.serial import direct_kernel_args

INIT = Path(__file__).resolve().parents[1] / "livecd_tui" / "data" / "init"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


# ------------------------------------------------------------------------------------------
# static checks
# ------------------------------------------------------------------------------------------


def test_shellcheck_clean() -> None:
    tool = shutil.which("shellcheck")
    assert tool, "shellcheck is required (Debian: apt-get install shellcheck)"
    proc = subprocess.run([tool, "-s", "sh", str(INIT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_script_shape() -> None:
    text = INIT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert os.access(INIT, os.X_OK), "the init must be executable"
    for message in ("switching to the live system", "rescue shell", "debug shell"):
        assert message in text
    assert 'exec switch_root "$NEWROOT" "$LIVECD_INIT"' in text
    assert "mount --move" in text
    for word in ("livecd.check", "livecd.debug", "livecd.toram", "livecd.verbose"):
        assert f'" {word} "' in text
    for var in (
        "LIVECD_MARKER",
        "LIVECD_MARKER_FILE",
        "LIVECD_SQUASHFS",
        "LIVECD_RELEASE",
        "LIVECD_MODULES",
        "LIVECD_DEVMGR",
        "LIVECD_WAIT",
        "LIVECD_TMPFS_SIZE",
        "LIVECD_TORAM",
        "LIVECD_INIT",
        "LIVECD_SUMS",
    ):
        assert f"${var}" in text or f"${{{var}" in text or f"{var}=" in text, var


# ------------------------------------------------------------------------------------------
# helpers, sourced by busybox sh (not PID 1: main does not run)
# ------------------------------------------------------------------------------------------


def bb(script: str, env: dict[str, str] | None = None) -> str:
    """Run *script* in busybox sh after sourcing the init; return stdout."""
    assert Path(BUSYBOX).is_file(), "busybox is required (Debian: busybox-static)"
    proc = subprocess.run(
        [BUSYBOX, "sh", "-c", f'. "$1" && {script}', "sh", str(INIT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_sourcing_runs_nothing() -> None:
    assert bb("echo sourced") == "sourced\n"


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("BOOT_IMAGE=/boot/vmlinuz quiet", "0 0 0"),
        ("quiet livecd.debug", "1 0 0"),
        ("livecd.toram", "0 1 0"),
        ("a livecd.verbose b", "0 0 1"),
        ("livecd.debug livecd.toram livecd.verbose", "1 1 1"),
        ("livecd.debugx xlivecd.toram livecd.verbose=0", "0 0 0"),
    ],
)
def test_parse_cmdline(tmp_path: Path, cmdline: str, expected: str) -> None:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    out = bb(f'parse_cmdline {tmp_path / "cmdline"}; echo "$DEBUG $TORAM $VERBOSE"')
    assert out.strip() == expected


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("kernel/drivers/block/loop.ko", "loop"),
        ("kernel/drivers/usb/storage/usb-storage.ko", "usb_storage"),
        ("kernel/arch/x86/crypto/crct10dif-pclmul.ko", "crct10dif_pclmul"),
        ("kernel/fs/isofs/isofs.ko.xz", "isofs"),
    ],
)
def test_module_name(path: str, name: str) -> None:
    assert bb(f"module_name {path}").strip() == name


def test_module_loaded(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.write_text("loop 32768 0 - Live 0x0\nusb_storage 81920 1 uas, Live 0x0\n")
    out = bb(
        f"for m in loop usb_storage usb sr_mod; do "
        f"module_loaded $m {modules} && echo yes || echo no; done"
    )
    assert out.split() == ["yes", "yes", "no", "no"]


def test_marker_matches(tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    (medium / "live").mkdir(parents=True)
    (medium / "LABEL").write_text("My Live CD 1.0\n")
    script = (
        f"LIVECD_MARKER='My Live CD 1.0'; marker_matches {medium} && echo a; "
        f"LIVECD_MARKER='My Live CD'; marker_matches {medium} || echo b; "
        f"LIVECD_MARKER_FILE=/NOPE; LIVECD_MARKER='My Live CD 1.0'; "
        f"marker_matches {medium} || echo c; "
        f"LIVECD_MARKER=; marker_matches {medium} || echo d; "
        f"touch {medium}/live/system.squashfs; marker_matches {medium} && echo e"
    )
    assert bb(script).split() == ["a", "b", "c", "d", "e"]


def test_load_config_defaults_and_quoting(tmp_path: Path) -> None:
    conf = tmp_path / "livecd.conf"
    conf.write_text(
        "LIVECD_MARKER='it'\\''s $(touch /tmp/pwned) ; x'\n"
        "LIVECD_WAIT='soon'\nLIVECD_TORAM='1'\nLIVECD_RELEASE=''\n"
    )
    out = bb(
        f"LIVECD_CONF={conf}; load_config; "
        f'printf "%s|%s|%s|%s|%s\\n" "$LIVECD_MARKER" "$LIVECD_WAIT" "$TORAM" '
        f'"$LIVECD_RELEASE" "$LIVECD_SQUASHFS"'
    )
    marker, wait, toram, release, squashfs = out.rstrip("\n").split("|")
    assert marker == "it's $(touch /tmp/pwned) ; x"
    assert wait == "30", "a non-number falls back to the default"
    assert toram == "1"
    assert release == os.uname().release, "empty release: the running kernel's"
    assert squashfs == "/live/system.squashfs"


def test_load_config_missing_file_says_so(tmp_path: Path) -> None:
    out = bb(f'LIVECD_CONF={tmp_path / "none"}; load_config; echo "$LIVECD_MARKER_FILE"')
    assert "livecd: " in out and "missing" in out
    assert out.strip().endswith("/LABEL")


def test_iso_label_reads_the_volume_id(tmp_path: Path) -> None:
    xorriso = shutil.which("xorriso")
    assert xorriso, "xorriso is required"
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "LABEL").write_text("x\n")
    iso = tmp_path / "x.iso"
    subprocess.run(
        [xorriso, "-as", "mkisofs", "-o", str(iso), "-V", "MY_LIVE", str(tmp_path / "tree")],
        check=True,
        capture_output=True,
    )
    assert bb(f"iso_label {iso}").strip() == "MY_LIVE"
    assert bb(f"iso_label {tmp_path / 'tree' / 'LABEL'} || echo none").strip() == "none"


def test_nopersist_is_read_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "cmdline").write_text("quiet livecd.nopersist\n")
    (tmp_path / "other").write_text("quiet livecd.nopersistx\n")
    out = bb(
        f'parse_cmdline {tmp_path / "cmdline"}; echo "$NOPERSIST"; NOPERSIST=0; '
        f'parse_cmdline {tmp_path / "other"}; echo "$NOPERSIST"'
    )
    assert out.split() == ["1", "0"]


def test_ext_label_reads_the_superblock_of_ext_filesystems_only(tmp_path: Path) -> None:
    stores = {}
    for fs, label in (("ext4", "LIVECD-DATA"), ("ext2", "OLD-KERNEL"), ("ext4", "")):
        image = tmp_path / f"{fs}-{label or 'nolabel'}.img"
        with image.open("wb") as out:
            out.truncate(16 << 20)
        subprocess.run(
            [f"mkfs.{fs}", "-q", "-F", *(["-L", label] if label else []), str(image)], check=True
        )
        stores[image.name] = image
    images = make_images(tmp_path / "others")
    out = bb(
        "; ".join(
            f"echo {name}=$(ext_label {path} || echo none)"
            for name, path in {**stores, **images}.items()
        )
    )
    assert out.split() == [
        "ext4-LIVECD-DATA.img=LIVECD-DATA",
        "ext2-OLD-KERNEL.img=OLD-KERNEL",
        "ext4-nolabel.img=",
        "iso9660=none",
        "vfat16=none",
        "vfat32=none",
        "ext4=LIVE",
        "udf=none",
        "zeros=none",
    ]


# ------------------------------------------------------------------------------------------
# finding the medium: only iso9660, udf and vfat are ever mounted, read-only
# ------------------------------------------------------------------------------------------

#: Sourced after the init: `have blkid` says no (the host has one), every other tool stays.
HIDE_BLKID = r"""have() { [ "$1" != blkid ] && command -v "$1" >/dev/null 2>&1; }
"""


def test_superblock_type_reads_the_magic(tmp_path: Path) -> None:
    images = make_images(tmp_path)
    # Without blkid the types come from the bytes alone.
    out = bb(
        HIDE_BLKID + "; ".join(f"echo {name}=$(fs_type {path})" for name, path in images.items())
    )
    assert out.split() == [
        "iso9660=iso9660",
        "vfat16=vfat",
        "vfat32=vfat",
        "ext4=",
        "udf=udf",
        "zeros=",
    ]


def test_fs_type_takes_blkids_type(tmp_path: Path) -> None:
    images = make_images(tmp_path)
    fake = r"""blkid() {
        case $1 in
        *vfat16*) echo "$1: SEC_TYPE=\"msdos\" LABEL=\"A TYPE\" TYPE=\"vfat\"" ;;
        *ext4*) echo "$1: PTTYPE=\"dos\" TYPE=\"ext4\" PARTLABEL=\"x\"" ;;
        *) return 2 ;;
        esac
    }
    """
    out = bb(
        fake + f"fs_type {images['vfat16']}; fs_type {images['ext4']}; fs_type {images['iso9660']}"
    )
    # blkid's TYPE (not SEC_TYPE, PTTYPE); when blkid knows nothing, the superblock.
    assert out.split() == ["vfat", "ext4", "iso9660"]


def test_medium_fs_is_only_cd_and_fat() -> None:
    out = bb(
        "for t in iso9660 udf vfat ext4 ext2 xfs btrfs swap LVM2_member ntfs ''; do "
        'medium_fs "$t" && echo "$t"; done; :'
    )
    assert out.split() == ["iso9660", "udf", "vfat"]


def run_find_medium(devs: Path, setup: str = "") -> tuple[str, list[str]]:
    return disk_images.run_find_medium(BUSYBOX, INIT, devs, setup)


def test_find_medium_mounts_only_medium_filesystems(tmp_path: Path) -> None:
    devs = fake_devices(
        tmp_path / "devs",
        {
            # A user's disks, one of them even holding a copy of the medium's files.
            "vda": ('LABEL="home" TYPE="ext4"', "the marker"),
            "vdb": ('TYPE="xfs"', "the marker"),
            "vdc": ('TYPE="swap"', None),
            "sda": ('PTTYPE="dos"', None),
            # A FAT stick without the marker, then the CD.
            "sdb": ('LABEL="STICK" TYPE="vfat"', "another disc"),
            "sr0": ('LABEL="LIVE" TYPE="iso9660"', "the marker"),
        },
    )
    out, log = run_find_medium(devs, "LIVECD_MARKER='the marker'")
    assert "FOUND the marker" in out
    assert f"found the live medium on {devs}/sr0 (iso9660)" in out
    assert "BAD" not in log
    assert mounted(log) == ["sr0"], "only the CD, it comes first"
    out, log = run_find_medium(devs, "LIVECD_MARKER='another disc'")
    assert "FOUND another disc" in out
    assert "BAD" not in log
    assert set(mounted(log)) == {"sr0", "sdb"}, "ext4, xfs, swap and a partition table never"


def test_find_medium_tries_the_label_first(tmp_path: Path) -> None:
    devs = fake_devices(
        tmp_path / "devs",
        {
            "sr0": ('LABEL="OTHER" TYPE="iso9660"', "the marker"),
            # The same volume label on an ext4 disk: found by label, but never mounted.
            "vda": ('LABEL="LIVECD_DEMO" TYPE="ext4"', "the marker"),
            "sdb": ('UUID="1234" LABEL="LIVECD_DEMO" TYPE="vfat"', "the marker"),
        },
    )
    out, log = run_find_medium(devs, "LIVECD_MARKER='the marker'; LIVECD_VOLUME_LABEL=LIVECD_DEMO")
    assert f"found the live medium on {devs}/sdb (vfat, label LIVECD_DEMO)" in out
    assert log[0] == "blkid", "the label lookup comes first"
    assert mounted(log) == ["sdb"]
    assert "BAD" not in log
    # Without a label to look for, the devices are probed in order.
    _, log = run_find_medium(devs, "LIVECD_MARKER='the marker'")
    assert "blkid" not in log and mounted(log) == ["sr0"]


def test_udf_falls_back_to_iso9660(tmp_path: Path) -> None:
    """A UDF/iso9660 bridge ISO that blkid calls udf, on a kernel without udf."""
    devs = fake_devices(tmp_path / "devs", {"sr0": ('LABEL="LIVE" TYPE="udf"', "the marker")})
    out, log = run_find_medium(
        devs,
        r"""
    mount() {
        echo "mount $*" >>"$DEVS/log"
        [ "$2" = iso9660 ] || return 32
        cp -R "$5.files/." "$6/"
        echo "$6" >"$DEVS/mnt"
    }
    LIVECD_MARKER='the marker'
    """,
    )
    assert "FOUND the marker" in out
    assert [line.split()[2] for line in log if line.startswith("mount ")] == ["udf", "iso9660"]


def test_find_medium_without_blkid_on_real_images(tmp_path: Path) -> None:
    """No blkid: findfs finds the label, and the superblock's magic says what a device is.
    The dirty ext4 image carries the medium's label and is first in line: never mounted."""
    images = make_images(tmp_path / "img")
    devs = tmp_path / "devs"
    devs.mkdir()
    (devs / "log").write_text("")
    for name, image in (("vda", "ext4"), ("vdb", "vfat16"), ("sr0", "iso9660")):
        (devs / name).symlink_to(images[image])
    (devs / "sr0.files").mkdir()
    (devs / "sr0.files" / "LABEL").write_text("the marker\n")
    before = sha256(images["ext4"])
    setup = (
        HIDE_BLKID
        + r"""
    findfs() { echo "findfs $*" >>"$DEVS/log"; echo "$DEVS/vda"; }
    candidate_devices() { echo "$DEVS/vda"; echo "$DEVS/vdb"; echo "$DEVS/sr0"; }
    LIVECD_MARKER='the marker'
    LIVECD_VOLUME_LABEL=LIVE
    """
    )
    out, log = run_find_medium(devs, setup)
    assert f"found the live medium on {devs}/sr0 (iso9660)" in out
    assert log[0] == "findfs LABEL=LIVE"
    assert [line for line in log if line.startswith("mount ")] == [
        f"mount -t vfat -o ro {devs}/vdb {devs}/live/medium",
        f"mount -t iso9660 -o ro {devs}/sr0 {devs}/live/medium",
    ]
    assert sha256(images["ext4"]) == before


# ------------------------------------------------------------------------------------------
# integration: boot Debian's kernel with this init in QEMU (TCG)
# ------------------------------------------------------------------------------------------

#: Modules the CD boot needs on Debian's kernel (everything is a module there).
CD_MODULES = ["loop", "squashfs", "isofs", "overlay", "sr_mod", "ata_piix"]
#: Applets the init uses (plus sh); test the script with no more than that.
APPLETS = [
    "sh",
    "mount",
    "umount",
    "mkdir",
    "cat",
    "sed",
    "tr",
    "dd",
    "grep",
    "uname",
    "sleep",
    "cp",
    "stat",
    "insmod",
    "switch_root",
    "setsid",
    "cttyhack",
    "chmod",
    "ls",
    "poweroff",
    "findfs",
    "sha256sum",
]
MARKER = "LIVECD-INIT-TEST 'quoted' $x"


def host_kernel() -> tuple[Path, str]:
    """A kernel image in /boot whose modules are installed, and its release."""
    for image in sorted(Path("/boot").glob("vmlinuz-*"), reverse=True):
        release = image.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / release / "modules.dep").is_file():
            return image, release
    pytest.fail("a kernel with modules is needed (Debian: linux-image-amd64)")


def resolve_modules(release: str, names: list[str]) -> list[str]:
    """Module files (relative to /lib/modules/RELEASE) in load order, via modprobe."""
    base = f"/lib/modules/{release}/"
    ordered: list[str] = []
    for name in names:
        out = subprocess.run(
            ["modprobe", "--show-depends", "--set-version", release, name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            words = line.split()
            if words and words[0] == "insmod" and words[1].startswith(base):
                rel = words[1].removeprefix(base)
                if rel not in ordered:
                    ordered.append(rel)
    return ordered


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def make_cpio(tree: Path, out: Path) -> None:
    subprocess.run(
        "find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet "
        f"| gzip -n -1 > {shell_quote(str(out))}",
        shell=True,
        cwd=tree,
        check=True,
    )


@dataclass
class Kit:
    kernel: Path
    iso: Path
    initrd_ok: Path
    initrd_wrong_marker: Path
    work: Path


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    for tool in ("mksquashfs", "xorriso", "cpio", "modprobe", "qemu-system-x86_64"):
        assert shutil.which(tool, path=os.environ.get("PATH", "") + ":/sbin:/usr/sbin"), tool
    work = tmp_path_factory.mktemp("init")
    kernel, release = host_kernel()
    # The live system: busybox, an inittab whose sysinit reports and powers off.
    root = work / "root"
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp"):
        (root / d).mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "mount", "grep", "cat", "echo", "poweroff", "ls", "sync"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "sbin" / "init").symlink_to("../bin/busybox")
    (root / "etc" / "inittab").write_text("::sysinit:/etc/rc\n")
    (root / "etc" / "rc").write_text(
        "#!/bin/sh\n"
        "echo \"LIVE-UP root=$(grep ' / ' /proc/mounts | cut -d' ' -f3)\"\n"
        "grep /run/livecd /proc/mounts | sed 's/^/LIVE-MOUNT /'\n"
        "[ -d /tmp ] && echo LIVE-TMP-OK\n"
        "echo LIVE-DONE\npoweroff -f\n"
    )
    (root / "etc" / "rc").chmod(0o755)
    for applet in ("cut", "sed"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "tmp").rmdir()  # the init makes the mount points it needs
    iso_tree = work / "iso"
    (iso_tree / "live").mkdir(parents=True)
    (iso_tree / "LABEL").write_text(MARKER + "\n")
    subprocess.run(
        [
            "mksquashfs",
            str(root),
            str(iso_tree / "live" / "system.squashfs"),
            "-noappend",
            "-all-root",
            "-comp",
            "gzip",
            "-no-progress",
            "-quiet",
        ],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"},
    )
    iso = work / "data.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-o", str(iso), "-r", "-V", "LIVETEST", str(iso_tree)],
        check=True,
        capture_output=True,
    )
    modules = resolve_modules(release, CD_MODULES)

    def initramfs(name: str, marker: str, wait: int, extra_modules: list[str]) -> Path:
        tree = work / name
        for d in ("bin", "etc", "dev", "proc", "sys", "run", "newroot"):
            (tree / d).mkdir(parents=True)
        shutil.copy(BUSYBOX, tree / "bin" / "busybox")
        for applet in APPLETS:
            (tree / "bin" / applet).symlink_to("busybox")
        shutil.copy(INIT, tree / "init")
        (tree / "init").chmod(0o755)
        for rel in modules:
            target = tree / "lib" / "modules" / release / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f"/lib/modules/{release}/{rel}", target)
        conf = {
            "LIVECD_MARKER": marker,
            "LIVECD_MARKER_FILE": "/LABEL",
            "LIVECD_VOLUME_LABEL": "LIVETEST",
            "LIVECD_SQUASHFS": "/live/system.squashfs",
            "LIVECD_RELEASE": release,
            "LIVECD_MODULES": " ".join(modules + extra_modules),
            "LIVECD_DEVMGR": "devtmpfs",
            "LIVECD_WAIT": str(wait),
            "LIVECD_TMPFS_SIZE": "64m",
            "LIVECD_TORAM": "0",
            "LIVECD_INIT": "/sbin/init",
        }
        (tree / "etc" / "livecd.conf").write_text(
            "".join(f"{k}={shell_quote(v)}\n" for k, v in conf.items())
        )
        out = work / f"{name}.img"
        make_cpio(tree, out)
        return out

    # The good initrd also lists a module twice and one that does not exist: both are
    # reported and the boot goes on.
    ok = initramfs("initrd-ok", MARKER, 15, [modules[0], "kernel/does/not/exist.ko"])
    wrong = initramfs("initrd-wrong", "another disc", 2, [])
    return Kit(kernel, iso, ok, wrong, work)


def boot(
    kit: Kit,
    initrd: Path,
    append: str,
    replies: Sequence[tuple[str, str]] = (),
    until: str | None = "LIVE-DONE",
    timeout: float = 180,
) -> str:
    """Boot under TCG, answer each (pattern, text) in turn, return the console text once
    *until* appears after the last answer, or QEMU ends (the guest powers off)."""
    argv = qemu.qemu_argv(
        kit.iso,
        "bios",
        "cdrom",
        512,
        "tcg",
        timeout=int(timeout) + 10,
        extra_args=direct_kernel_args(kit.kernel, initrd, f"console=ttyS0 panic=-1 {append}"),
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    text, pos = "", 0
    pending = list(replies)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
            while pending:
                found = re.search(pending[0][0], text[pos:])
                if not found:
                    break
                pos += found.end()
                proc.stdin.write(pending.pop(0)[1].encode())
                proc.stdin.flush()
            if not pending and until is not None and until in text[pos:]:
                break
        else:
            pytest.fail(f"no {until!r} within {timeout} s:\n{text[-4000:]}")
        return text
    finally:
        qemu.stop_qemu(proc)
        proc.stdout.close()
        proc.stdin.close()


@pytest.mark.integration
def test_boots_into_overlay(kit: Kit) -> None:
    log = boot(kit, kit.initrd_ok, "")
    assert "livecd: found the live medium on /dev/sr0 (iso9660, label LIVETEST)" in log
    assert "livecd: switching to the live system" in log
    assert "LIVE-UP root=overlay" in log
    assert "LIVE-MOUNT /dev/sr0 /run/livecd/medium iso9660" in log
    assert re.search(r"LIVE-MOUNT tmpfs /run/livecd/rw tmpfs \S*size=65536k", log)
    assert "LIVE-TMP-OK" in log, "the init makes /tmp in the new root"
    assert "module loop is already loaded" in log
    assert re.search(r"module exist: \S+ is missing \(continuing\)", log)
    assert "livecd: rescue shell" not in log


@pytest.mark.integration
def test_toram_releases_the_medium(kit: Kit) -> None:
    log = boot(kit, kit.initrd_ok, "livecd.toram")
    assert "livecd: copying the system image to RAM" in log
    assert "LIVE-MOUNT tmpfs /run/livecd/toram tmpfs" in log
    assert "/run/livecd/medium" not in log.split("livecd: switching")[1]
    assert "LIVE-UP root=overlay" in log


@pytest.mark.integration
def test_debug_shell_then_continue(kit: Kit) -> None:
    log = boot(
        kit,
        kit.initrd_ok,
        "livecd.debug livecd.verbose",
        replies=[
            (r"livecd: exit the shell[^\n]*\n", "ls /newroot/etc/inittab; echo DBG-$((6*7))\n"),
            (r"DBG-42", "exit\n"),
        ],
    )
    assert "livecd: debug shell" in log
    assert "/newroot/etc/inittab" in log
    assert "\n+ " in log, "livecd.verbose traces the script"
    assert log.index("DBG-42") < log.index("livecd: switching to the live system")
    assert "LIVE-UP root=overlay" in log


@pytest.mark.integration
def test_wrong_marker_rescue_shell_and_retry(kit: Kit) -> None:
    log = boot(
        kit,
        kit.initrd_wrong_marker,
        "",
        replies=[
            (r"livecd: rescue shell[\s\S]*?# ", "echo RESCUE-$((6*7))\n"),
            (r"RESCUE-42", "exit\n"),
            (r"livecd: rescue shell[\s\S]*?# ", "poweroff -f\n"),
        ],
        until=None,
        timeout=240,
    )
    assert "livecd: boot failed: no medium with the marker was found" in log
    assert "looked for a medium with /LABEL holding 'another disc'" in log
    assert re.search(r'/dev/sr0 \d+ MiB TYPE="iso9660" LABEL="LIVETEST"', log), log[-3000:]
    assert "livecd: loaded modules:" in log and " isofs" in log
    assert "mounts (/proc/mounts):" in log and "devtmpfs /dev devtmpfs" in log
    assert "Kernel panic" not in log
    # The report and the shell come back after the shell exits (the search is retried).
    assert log.count("livecd: rescue shell") == 2


# ------------------------------------------------------------------------------------------
# the media check (livecd.check): the same check_medium in /init and /linuxrc
# ------------------------------------------------------------------------------------------

LINUXRC = INIT.with_name("linuxrc")


@pytest.mark.parametrize("script", [INIT, LINUXRC], ids=["init", "linuxrc"])
def test_check_medium_names_the_damaged_file(tmp_path: Path, script: Path) -> None:
    medium = tmp_path / "medium"
    (medium / "live").mkdir(parents=True)
    image = medium / "live" / "system.squashfs"
    image.write_bytes(bytes(range(256)) * 4096)
    (medium / "live" / "etc.tar.bz2").write_bytes(b"the /etc archive\n")
    sums = "\n".join(
        f"{sha256(medium / name)}  /{name}" for name in ("live/system.squashfs", "live/etc.tar.bz2")
    )

    def check(setup: str = "") -> str:
        proc = subprocess.run(
            [
                BUSYBOX,
                "sh",
                "-c",
                f'. "$1" && LIVECD_SUMS="$2"; {setup}\n'
                f'check_medium "$3"; rc=$?; echo "rc=$rc reason=$FAIL_REASON"',
                "sh",
                str(script),
                sums,
                str(medium),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = check()
    assert "livecd: media check: /live/system.squashfs OK" in out
    assert "livecd: media check: /live/etc.tar.bz2 OK" in out
    assert "livecd: media check: passed" in out
    assert out.strip().endswith("rc=0 reason=")
    # One byte flipped in the middle of the image: that file, and only it, is named.
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    out = check()
    assert (
        "livecd: media check: /live/system.squashfs FAILED (damaged: its sha256 is not "
        "the one recorded at build time)"
    ) in out
    assert "livecd: media check: /live/etc.tar.bz2 OK" in out
    assert "passed" not in out
    assert out.strip().endswith("rc=1 reason=media check failed, damaged: /live/system.squashfs")
    # A file missing from the medium fails too.
    (medium / "live" / "etc.tar.bz2").unlink()
    out = check()
    assert out.strip().endswith(
        "rc=1 reason=media check failed, damaged: /live/system.squashfs /live/etc.tar.bz2"
    )
    # Without sha256sum it cannot pass; without sums it has nothing to say against the medium.
    out = check('have() { [ "$1" != sha256sum ] && command -v "$1" >/dev/null 2>&1; }')
    assert out.strip().endswith("rc=1 reason=media check: no sha256sum in the initrd")
    out = check("LIVECD_SUMS=")
    assert "no checksums to compare" in out and out.strip().endswith("rc=0 reason=")


@pytest.mark.parametrize("script", [INIT, LINUXRC], ids=["init", "linuxrc"])
def test_livecd_check_word(tmp_path: Path, script: Path) -> None:
    for cmdline, expected in (("quiet livecd.check", "1"), ("livecd.checkx quiet", "0")):
        (tmp_path / "cmdline").write_text(cmdline + "\n")
        proc = subprocess.run(
            [
                BUSYBOX,
                "sh",
                "-c",
                '. "$1"; parse_cmdline "$2"; echo "$CHECK"',
                "sh",
                str(script),
                str(tmp_path / "cmdline"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.stdout.strip() == expected, cmdline
