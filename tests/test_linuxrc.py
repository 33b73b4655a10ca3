"""Tests for the classic /linuxrc (livecd_tui/data/linuxrc).

Static checks always run. The integration tests build the article's classic CD by hand with
the real tools (ext2 initrd via mke2fs -d + debugfs, squashfs, etc.tar.bz2, GRUB legacy
stage2_eltorito + menu.lst, genisoimage) around the cached 6.1 test kernel, and boot it in
QEMU (TCG, headless). The test kernel is the session's ``classic_kernel`` (tests/conftest.py),
built once if no earlier run built it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import disk_images
import kernel_tree

ROOT = Path(__file__).resolve().parents[1]
LINUXRC = ROOT / "livecd_tui" / "data" / "linuxrc"
CONTRACT = ROOT / "docs" / "initrd-contract.md"
EPOCH = 1700000000
MARKER = "livecd-tui classic test"
FIXED_UUID = "6c697665-6364-2d74-7569-000000000001"


# ----------------------------------------------------------------------------- static


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (Debian: apt-get install shellcheck)")
    proc = subprocess.run(
        [shellcheck, "-s", "sh", str(LINUXRC)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("shell", [["busybox", "sh"], ["dash"], ["bash", "--posix"]])
def test_syntax(shell: list[str]) -> None:
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} not installed")
    proc = subprocess.run([*shell, "-n", str(LINUXRC)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_shebang_and_mode() -> None:
    assert LINUXRC.read_text().startswith("#!/bin/sh\n")
    assert os.access(LINUXRC, os.X_OK)


def test_reads_every_contract_variable_and_word() -> None:
    script = LINUXRC.read_text()
    table = CONTRACT.read_text()
    names = sorted(set(re.findall(r"`(LIVECD_[A-Z_]+)`", table)))
    assert names, "no variables found in the contract"
    missing = [n for n in names if f"${n}" not in script and f"${{{n}" not in script]
    assert not missing, f"contract variables the script ignores: {missing}"
    for word in ("livecd.check", "livecd.debug", "livecd.toram", "livecd.verbose"):
        assert word in script


def test_messages_and_steps_present() -> None:
    script = LINUXRC.read_text()
    assert 'echo "livecd: $*"' in script  # say() prefixes every message
    for needle in (
        'say "rescue shell',
        'say "switching to the live system"',
        "echo 0x0100 > /proc/sys/kernel/real-root-dev",
        "pivot_root . initrd",
        'mount -n --move "/initrd/$_li_fs" "/$_li_fs"',
        "LIVECD_CONF=/etc/livecd.conf",
        '. "$LIVECD_CONF"',
    ):
        assert needle in script, needle


# ----------------------------------------------------------------------------- the functions
# linuxrc runs its main only when run as linuxrc: a shell that sources it (as these tests do,
# like test_init_script.py with /init) gets its functions and nothing else is done.

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
#: Sourced after the script: `have blkid` says no (the host has one).
HIDE_BLKID = 'have() { [ "$1" != blkid ] && command -v "$1" >/dev/null 2>&1; }\n'


def rc(script: str) -> str:
    """Run *script* in busybox sh after sourcing linuxrc's functions; return stdout."""
    proc = subprocess.run(
        [BUSYBOX, "sh", "-c", f'. "$1" && {script}', "sh", str(LINUXRC)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def find(devs: Path, setup: str) -> tuple[str, list[str]]:
    return disk_images.run_find_medium(BUSYBOX, LINUXRC, devs, setup)


def test_sourcing_defines_functions_and_stops() -> None:
    # Fakes defined before sourcing would catch any action (this runs as root in CI).
    acts = "mount() { echo ACTED; }; mkdir() { echo ACTED; }; insmod() { echo ACTED; }; "
    proc = subprocess.run(
        [
            BUSYBOX,
            "sh",
            "-c",
            acts + '. "$1" && for f in find_medium try_device fs_type '
            'medium_fs main; do command -v $f; done; echo "$MEDIUM_FS"',
            "sh",
            str(LINUXRC),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "find_medium",
        "try_device",
        "fs_type",
        "medium_fs",
        "main",
        "iso9660",
        "udf",
        "vfat",
    ]


def test_sourcing_runs_nothing() -> None:
    assert rc("echo sourced") == "sourced\n"


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("BOOT_IMAGE=/boot/vmlinuz quiet", "0 0 0 0"),
        ("quiet livecd.debug", "0 1 0 0"),
        ("livecd.toram", "0 0 1 0"),
        ("a livecd.verbose b", "0 0 0 1"),
        ("livecd.check ramdisk_size=65536", "1 0 0 0"),
        ("livecd.check livecd.debug livecd.toram livecd.verbose", "1 1 1 1"),
        ("livecd.debugx xlivecd.toram livecd.verbose=0 livecd.checkx", "0 0 0 0"),
    ],
)
def test_parse_cmdline(tmp_path: Path, cmdline: str, expected: str) -> None:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    out = rc(
        f"parse_cmdline {tmp_path / 'cmdline'}; "
        'echo "$CHECK $DEBUG $TORAM $VERBOSE"; echo "$CMDLINE"'
    )
    assert out.splitlines() == [expected, cmdline]


def test_load_config_defaults_and_quoting(tmp_path: Path) -> None:
    conf = tmp_path / "livecd.conf"
    conf.write_text(
        "LIVECD_MARKER='it'\\''s $(touch /tmp/pwned) ; x'\nLIVECD_WAIT='soon'\nLIVECD_TORAM='1'\n"
    )
    out = rc(
        f"LIVECD_CONF={conf}; load_config; "
        'printf "%s|%s|%s|%s|%s\\n" "$LIVECD_MARKER" "$LIVECD_WAIT" "$TORAM" '
        '"$LIVECD_SQUASHFS" "$LIVECD_ETC_ARCHIVE"'
    )
    marker, wait, toram, squashfs, archive = out.rstrip("\n").split("|")
    assert marker == "it's $(touch /tmp/pwned) ; x"
    assert wait == "30", "a non-number falls back to the default"
    assert toram == "1"
    assert (squashfs, archive) == ("/live/system.squashfs", "/live/etc.tar.bz2")
    # No config at all: the defaults stay.
    out = rc(f'LIVECD_CONF={tmp_path / "none"}; load_config; echo "$LIVECD_MARKER_FILE $TORAM"')
    assert out.strip() == "/LABEL 0"


def test_helpers_share_inits_names_and_bodies() -> None:
    """The helpers with one job have one name in both boot scripts, and the ones that need
    nothing of their script's own are the same text."""
    init = LINUXRC.with_name("init").read_text()
    script = LINUXRC.read_text()
    shared = (
        "say",
        "have",
        "candidate_devices",
        "labelled_devices",
        "read_bytes",
        "superblock_type",
        "fs_type",
        "medium_fs",
        "iso_label",
        "try_device",
        "find_medium",
        "check_medium",
        "show_devices",
        "show_what_i_saw",
        "rescue",
        "copy_to_ram",
        "mount_root",
        "parse_cmdline",
        "load_config",
        "start_devmgr",
        "stop_devmgr",
        "load_modules",
        "mount_base",
        "main",
    )
    for name in shared:
        assert f"\n{name}() {{\n" in script, f"linuxrc lacks {name}()"
        assert f"\n{name}() {{\n" in init, f"init lacks {name}()"
    for name in (
        "read_bytes",
        "superblock_type",
        "medium_fs",
        "iso_label",
        "check_medium",
        "quietly",
        "labelled_devices",
        "devices_labelled",
        "ext_label",
        "luks_label",
        "store_label",
        "open_store",
        "mount_store",
        "store_on_partition",
        "store_in_file",
        "mount_persistence",
        "mount_layers",
    ):
        body = re.search(rf"\n{name}\(\) {{\n.*?\n}}\n", script, re.S)
        assert body and body.group(0) in init, f"{name}() differs between the scripts"
    for old in ("candidates()", "try_medium()", "report()", "msg()", "setup_system()"):
        assert old not in script, old


def test_fs_type_from_the_superblock(tmp_path: Path) -> None:
    images = disk_images.make_images(tmp_path)
    out = rc(
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
    assert rc(f"iso_label {images['iso9660']}").strip() == "LIVE"


def test_only_medium_filesystems_are_mounted(tmp_path: Path) -> None:
    devs = disk_images.fake_devices(
        tmp_path / "devs",
        {
            "vda": ('LABEL="home" TYPE="ext4"', MARKER),
            "vdb": ('TYPE="xfs"', MARKER),
            "vdc": ('TYPE="swap"', None),
            "sda": ('PTTYPE="dos"', None),
            "sdb": ('LABEL="STICK" TYPE="vfat"', "another disc"),
            "sr0": ('LABEL="LIVE" TYPE="iso9660"', "another disc"),
        },
    )
    out, log = find(devs, f"LIVECD_MARKER='{MARKER}'")
    assert "NOT-FOUND" in out
    assert "BAD" not in log
    assert disk_images.mounted(log) == ["sr0", "sdb"], "never ext4, xfs, swap, a partition table"
    # What was tried, as the rescue report shows it.
    seen = rc(
        f"{disk_images.FAKES}\nLIVECD_MARKER='{MARKER}'; find_medium; printf %s \"$SEEN\"".replace(
            "DEVS=$1", f"DEVS={devs}"
        )
    )
    assert f"{devs}/vda: ext4, not a medium filesystem, not mounted" in seen
    assert f"{devs}/sda: no known filesystem, not a medium filesystem, not mounted" in seen
    assert f"{devs}/sdb: vfat, /LABEL holds 'another disc'" in seen


def test_the_label_is_tried_first(tmp_path: Path) -> None:
    devs = disk_images.fake_devices(
        tmp_path / "devs",
        {
            "sr0": ('LABEL="OTHER" TYPE="iso9660"', MARKER),
            "vda": ('LABEL="LIVECD" TYPE="ext4"', MARKER),
            "sdb": ('UUID="1234" LABEL="LIVECD" TYPE="vfat"', MARKER),
        },
    )
    out, log = find(devs, f"LIVECD_MARKER='{MARKER}'; LIVECD_VOLUME_LABEL=LIVECD")
    assert f"FOUND {MARKER}\nHOW vfat, label LIVECD\n" in out
    assert log[0] == "blkid", "the label lookup comes first"
    assert disk_images.mounted(log) == ["sdb"]
    out, log = find(devs, f"LIVECD_MARKER='{MARKER}'")
    assert out.endswith(f"FOUND {MARKER}\nHOW iso9660\n")
    assert "blkid" not in log and disk_images.mounted(log) == ["sr0"]


def test_without_blkid_findfs_and_the_superblock(tmp_path: Path) -> None:
    images = disk_images.make_images(tmp_path / "img")
    devs = tmp_path / "devs"
    devs.mkdir()
    for name, image in (("vda", "ext4"), ("vdb", "vfat16"), ("sr0", "iso9660")):
        (devs / name).symlink_to(images[image])
    (devs / "sr0.files").mkdir()
    (devs / "sr0.files" / "LABEL").write_text(MARKER + "\n")
    before = disk_images.sha256(images["ext4"])
    out, log = find(
        devs,
        HIDE_BLKID
        + r"""
    findfs() { echo "findfs $*" >>"$DEVS/log"; echo "$DEVS/vda"; }
    candidate_devices() { echo "$DEVS/vda"; echo "$DEVS/vdb"; echo "$DEVS/sr0"; }
    LIVECD_VOLUME_LABEL=LIVE
    """
        + f"LIVECD_MARKER='{MARKER}'",
    )
    assert f"FOUND {MARKER}" in out
    assert log[0] == "findfs LABEL=LIVE"
    assert [line for line in log if line.startswith("mount ")] == [
        f"mount -t vfat -o ro {devs}/vdb {devs}/system/cdrom",
        f"mount -t iso9660 -o ro {devs}/sr0 {devs}/system/cdrom",
    ]
    assert disk_images.sha256(images["ext4"]) == before


# ----------------------------------------------------------------------------- integration

TOOLS = [
    "mksquashfs",
    "mke2fs",
    "debugfs",
    "genisoimage",
    "qemu-system-x86_64",
    "busybox",
    "dpkg-deb",
    "apt-get",
    "tar",
    "bzip2",
    "gzip",
    "xorriso",
]


def _run(
    cmd: list[str] | str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        text=True,
        capture_output=True,
        shell=isinstance(cmd, str),
        check=False,
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"


def _stage2(cache: Path) -> Path:
    """GRUB legacy's stage2_eltorito from Debian's grub-legacy package, unpacked in cache."""
    found = sorted(cache.glob("grub-legacy/usr/lib/grub/*-pc/stage2_eltorito"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    _run("apt-get download grub-legacy", cwd=cache)
    debs = sorted(cache.glob("grub-legacy_*.deb"))
    assert debs, "apt-get download grub-legacy gave no .deb"
    _run(["dpkg-deb", "-x", str(debs[-1]), str(cache / "grub-legacy")])
    found = sorted(cache.glob("grub-legacy/usr/lib/grub/*-pc/stage2_eltorito"))
    assert found
    return found[0]


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a not in ("busybox", "linuxrc")]


def _busybox_dir(bindir: Path, busybox: str) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bindir / "busybox")
    for applet in _applets(busybox):
        (bindir / applet).symlink_to("busybox")


def _pin_times(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def build_classic_iso(work: Path, kernel: Path, marker: str, cmdline: str, stage2: Path) -> Path:
    """The article's steps 4-11 with today's tools; returns the ISO."""
    busybox = shutil.which("busybox")
    assert busybox
    iso = work / "iso"
    (iso / "boot" / "grub").mkdir(parents=True)
    (iso / "live").mkdir()

    # step 4: the system (a busybox root), squashed as bin lib sbin usr
    root = work / "root"
    _busybox_dir(root / "bin", busybox)
    for d in ("sbin", "lib", "usr/bin", "etc/init.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sbin" / "init").symlink_to("../bin/busybox")
    (root / "etc" / "inittab").write_text("::sysinit:/etc/init.d/rcS\nttyS0::respawn:-/bin/sh\n")
    (root / "etc" / "init.d" / "rcS").write_text(
        "#!/bin/sh\n"
        "echo LIVECD-BOOT-OK\n"
        "cat /etc/only-in-archive\n"
        "[ -d /var/log ] && [ -d /var/run ] && [ -d /var/lock ] && echo LIVECD-VAR-OK\n"
        "ls -ln /var/run/utmp /var/log/btmp /var/log/lastlog /var/log/wtmp\n"
        "grep -q livecd.test_exit /proc/cmdline && reboot -f\n"
    )
    (root / "etc" / "init.d" / "rcS").chmod(0o755)
    (root / "etc" / "only-in-archive").write_text("LIVECD-ETC-FROM-ARCHIVE\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nutmp:x:43:\n")
    _pin_times(root)
    env_no_sde = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    proc = subprocess.run(
        [
            "mksquashfs",
            "bin",
            "lib",
            "sbin",
            "usr",
            str(iso / "live" / "system.squashfs"),
            "-noappend",
            "-all-root",
            "-comp",
            "xz",
            "-mkfs-time",
            str(EPOCH),
            "-all-time",
            str(EPOCH),
            "-no-progress",
            "-quiet",
        ],
        cwd=root,
        env=env_no_sde,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

    # step 9: the /etc archive
    _run(
        [
            "tar",
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            f"--mtime=@{EPOCH}",
            "-cjf",
            str(iso / "live" / "etc.tar.bz2"),
            "etc",
        ],
        cwd=root,
    )

    # steps 5-8: the ext2 initrd, no loop mount, no root needed for the device nodes
    initrd = work / "initrd"
    _busybox_dir(initrd / "bin", busybox)
    for d in ("sbin", "etc", "dev", "proc", "sys", "lib/modules"):
        (initrd / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(LINUXRC, initrd / "linuxrc")
    (initrd / "linuxrc").chmod(0o755)
    (initrd / "etc" / "fstab").write_text("")
    conf = {
        "LIVECD_MARKER": marker,
        "LIVECD_MARKER_FILE": "/LABEL",
        "LIVECD_VOLUME_LABEL": "LIVECD_CLASSIC",
        "LIVECD_SQUASHFS": "/live/system.squashfs",
        "LIVECD_RELEASE": "",
        "LIVECD_MODULES": "",
        "LIVECD_DEVMGR": "devtmpfs",
        "LIVECD_WAIT": "2",
        "LIVECD_TMPFS_SIZE": "",
        "LIVECD_TORAM": "0",
        "LIVECD_ETC_ARCHIVE": "/live/etc.tar.bz2",
        "LIVECD_LINK_DIRS": "bin lib sbin usr",
        "LIVECD_EMPTY_DIRS": "home root var",
        "LIVECD_INIT": "/sbin/init",
        # read only with livecd.check on the command line
        "LIVECD_SUMS": "\n".join(
            f"{disk_images.sha256(iso / name)}  /{name}"
            for name in ("live/system.squashfs", "live/etc.tar.bz2")
        ),
    }
    (initrd / "etc" / "livecd.conf").write_text(
        "".join(f"{k}={shlex.quote(v)}\n" for k, v in conf.items())
    )
    _pin_times(initrd)
    image = work / "initrd.img"
    fake_time = {"E2FSPROGS_FAKE_TIME": str(EPOCH)}
    _run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext2",
            "-d",
            str(initrd),
            "-b",
            "1024",
            "-m",
            "0",
            "-N",
            "1024",
            "-L",
            "initrd",
            "-U",
            FIXED_UUID,
            "-E",
            f"root_owner=0:0,hash_seed={FIXED_UUID}",
            str(image),
            "8M",
        ],
        env=fake_time,
    )
    # debugfs: mknod takes a name in the current directory (a path with "/" makes a broken
    # entry), the mode comes separately; ctime is pinned because mke2fs -d copies it.
    script = [
        "cd /dev",
        "mknod console c 5 1",
        "sif console mode 020600",
        "mknod null c 1 3",
        "sif null mode 020666",
        "cd /",
        f"sif / ctime @{EPOCH}",
    ]
    for path in sorted(initrd.rglob("*")):
        script.append(f'sif "/{path.relative_to(initrd)}" ctime @{EPOCH}')
    _run(["debugfs", "-w", "-f", "-", str(image)], env=fake_time, stdin="\n".join(script) + "\n")
    _run(["e2fsck", "-fn", str(image)])
    with open(iso / "boot" / "initrd.img", "wb") as handle:
        subprocess.run(["gzip", "-9", "-n", "-c", str(image)], stdout=handle, check=True)

    # steps 7, 10, 11: marker, GRUB legacy, ISO
    shutil.copy2(kernel, iso / "boot" / "vmlinuz")
    (iso / "LABEL").write_text(MARKER + "\n")
    # a fresh copy every time: genisoimage -boot-info-table patches the file in place
    shutil.copyfile(stage2, iso / "boot" / "grub" / "stage2_eltorito")
    (iso / "boot" / "grub" / "menu.lst").write_text(
        "serial --unit=0 --speed=115200\n"
        "terminal --timeout=0 serial\n"
        "default 0\ntimeout 0\n"
        "title livecd-tui classic\n"
        f"kernel /boot/vmlinuz {cmdline}\n"
        "initrd /boot/initrd.img\n"
    )
    out = work / "classic.iso"
    _run(
        [
            "genisoimage",
            "-quiet",
            "-R",
            "-b",
            "boot/grub/stage2_eltorito",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-V",
            "LIVECD_CLASSIC",
            "-o",
            str(out),
            str(iso),
        ]
    )
    return out


def boot(iso: Path, log: Path, until: str, timeout: float, extra: Sequence[str] = ()) -> str:
    """Boot the ISO headless under TCG, with *extra* QEMU arguments, until ``until`` shows up
    in the serial log (or QEMU exits, or the timeout passes); return the log."""
    log.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            "timeout",
            str(int(timeout) + 5),
            "qemu-system-x86_64",
            "-cdrom",
            str(iso),
            "-m",
            "512",
            "-nographic",
            "-serial",
            f"file:{log}",
            "-monitor",
            "none",
            "-no-reboot",
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    text = ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace") if log.exists() else ""
            if until in text:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
    return (log.read_text(errors="replace") if log.exists() else "").replace("\r", "")


@pytest.fixture(scope="module")
def boot_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"tools missing: {missing}")


@pytest.fixture(scope="module")
def stage2() -> Path:
    try:
        return _stage2(kernel_tree.default_cache_dir())
    except AssertionError as err:
        pytest.skip(f"no stage2_eltorito: {err}")


@pytest.mark.integration
def test_classic_cd_boots(
    tmp_path: Path, boot_tools: None, classic_kernel: Path, stage2: Path
) -> None:
    iso = build_classic_iso(
        tmp_path, classic_kernel, MARKER, "console=ttyS0,115200 livecd.test_exit", stage2
    )
    log = boot(iso, tmp_path / "serial.log", "LIVECD-VAR-OK", 120)
    assert "using deprecated initrd support" in log
    assert "livecd: medium found on /dev/sr0 (iso9660, label LIVECD_CLASSIC)" in log
    assert "livecd: switching to the live system" in log
    assert "LIVECD-BOOT-OK" in log
    assert "LIVECD-ETC-FROM-ARCHIVE" in log
    assert "LIVECD-VAR-OK" in log
    assert re.search(r"-rw-rw-r-- +1 0 +43 .* /var/run/utmp", log), log[-2000:]
    assert re.search(r"-rw------- +1 0 +0 .* /var/log/btmp", log), log[-2000:]


@pytest.mark.integration
def test_classic_wrong_marker_opens_rescue_shell(
    tmp_path: Path, boot_tools: None, classic_kernel: Path, stage2: Path
) -> None:
    iso = build_classic_iso(
        tmp_path, classic_kernel, "some other CD", "console=ttyS0,115200", stage2
    )
    # A user's disk (IDE, /dev/sda) with a dirty ext4 and the CD's own volume label: found by
    # the label lookup, probed each second, never mounted. (This kernel has no ext4 driver,
    # so the image could not change anyway: what is checked is that linuxrc leaves it alone.)
    disk = tmp_path / "userdisk.img"
    disk_images.make_dirty_ext4(disk, "LIVECD_CLASSIC")
    before = disk_images.sha256(disk)
    log = boot(
        iso,
        tmp_path / "serial.log",
        "livecd: rescue shell",
        120,
        ["-drive", f"file={disk},format=raw,if=ide,index=0"],
    )
    assert "/dev/sda: no known filesystem, not a medium filesystem, not mounted" in log, log
    assert disk_images.sha256(disk) == before
    assert "livecd: ERROR: no medium found" in log
    assert "livecd: looked for a medium whose /LABEL holds: some other CD" in log
    assert f"/dev/sr0: iso9660, /LABEL holds '{MARKER}'" in log
    assert "iso9660 label 'LIVECD_CLASSIC'" in log
    assert "livecd: mounts:" in log and "livecd: modules:" in log
    assert "livecd: rescue shell" in log
    assert "Kernel panic" not in log


@pytest.mark.integration
def test_classic_media_check_passes_then_names_the_damaged_archive(
    tmp_path: Path, boot_tools: None, classic_kernel: Path, stage2: Path
) -> None:
    iso = build_classic_iso(
        tmp_path,
        classic_kernel,
        MARKER,
        "console=ttyS0,115200 livecd.check livecd.test_exit",
        stage2,
    )
    log = boot(iso, tmp_path / "serial.log", "LIVECD-VAR-OK", 120)
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert "livecd: media check: /live/etc.tar.bz2 OK" in log
    assert "livecd: media check: passed, the medium is intact" in log
    assert "LIVECD-BOOT-OK" in log and "LIVECD-ETC-FROM-ARCHIVE" in log
    # A copy with one byte of the /etc archive flipped: named, and the boot stops.
    damaged = tmp_path / "damaged.iso"
    shutil.copyfile(iso, damaged)
    disk_images.flip_a_byte_of(damaged, "/live/etc.tar.bz2")
    log = boot(damaged, tmp_path / "damaged.log", "livecd: rescue shell", 120)
    assert "livecd: media check: /live/system.squashfs OK" in log
    assert (
        "livecd: media check: /live/etc.tar.bz2 FAILED (damaged: its sha256 is not the "
        "one recorded at build time)"
    ) in log
    assert "livecd: ERROR: media check failed, damaged: /live/etc.tar.bz2" in log
    assert "livecd: rescue shell" in log
    assert "LIVECD-BOOT-OK" not in log and "Kernel panic" not in log
