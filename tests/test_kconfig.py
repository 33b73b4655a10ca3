"""Tests for livecd_tui.kernel.kconfig: parsing, requirement sets, the check, finding configs."""

from __future__ import annotations

import gzip
import itertools
import lzma
import re
import struct
import sys
from pathlib import Path

import pytest

from livecd_tui.kernel import kconfig
from livecd_tui.kernel.kconfig import Requirement, check, parse_config, requirements

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_tree

DEBIAN_CONFIGS = sorted(Path("/boot").glob("config-6.1.0-*-amd64"))
BOOT_IMAGES = sorted(Path("/boot").glob("vmlinuz-*"))


def _reqs(**kw: object) -> list[Requirement]:
    args: dict[str, object] = dict(
        initrd_format="initramfs",
        writable="overlay",
        squashfs_compressor="xz",
        initrd_compression="gzip",
        media=["cdrom"],
        uefi=False,
        initrd_size_mib=8,
    )
    args.update(kw)
    return requirements(**args)  # type: ignore[arg-type]


def _by_symbol(findings: list[kconfig.Finding]) -> dict[str, kconfig.Finding]:
    return {f.requirement.symbol: f for f in findings}


def _all_yes(reqs: list[Requirement]) -> dict[str, str]:
    """A config that satisfies every requirement."""
    config: dict[str, str] = {}
    for req in reqs:
        for symbol in req.alternatives()[0]:
            config[symbol] = str(req.min_value) if req.min_value is not None else "y"
    return config


# ----------------------------------------------------------------------------- parsing


def test_parse_config() -> None:
    text = """#
# Automatically generated file; DO NOT EDIT.
CONFIG_BLK_DEV_RAM=y
CONFIG_SQUASHFS=m
CONFIG_BLK_DEV_RAM_SIZE=16384
CONFIG_LOG_BUF_SHIFT=0x11
CONFIG_LOCALVERSION=""
CONFIG_DEFAULT_HOSTNAME="(none)"
# CONFIG_EXT2_FS is not set
# A comment that is not a symbol
NOT_A_CONFIG=y
"""
    assert parse_config(text) == {
        "BLK_DEV_RAM": "y",
        "SQUASHFS": "m",
        "BLK_DEV_RAM_SIZE": "16384",
        "LOG_BUF_SHIFT": "0x11",
        "LOCALVERSION": "",
        "DEFAULT_HOSTNAME": "(none)",
        "EXT2_FS": "n",
    }


@pytest.mark.parametrize(
    ("release", "version"),
    [("6.1.0-56-amd64", (6, 1)), ("7.0", (7, 0)), ("6.18.44-fc", (6, 18)), ("junk", None)],
)
def test_parse_release(release: str, version: tuple[int, int] | None) -> None:
    assert kconfig.parse_release(release) == version


# ----------------------------------------------------------------------------- requirements

MEDIA_SETS = [["cdrom"], ["cdrom", "usb"], ["virtio"], ["nvme", "sata"], list(kconfig.MEDIA)]


COMPRESSION_PAIRS = [
    ("gzip", "gzip"),
    ("xz", "xz"),
    ("zstd", "zstd"),
    ("lz4", "none"),
    ("lzo", "gzip"),
]


@pytest.mark.parametrize(
    ("fmt", "writable", "comp", "rd", "media", "uefi"),
    [
        (fmt, writable, comp, rd, media, uefi)
        for fmt, writable, (comp, rd), media, uefi in itertools.product(
            ("initramfs", "classic"),
            ("overlay", "classic"),
            COMPRESSION_PAIRS,
            [tuple(m) for m in MEDIA_SETS],
            (False, True),
        )
    ],
)
def test_requirement_sets(
    fmt: str, writable: str, comp: str, rd: str, media: tuple[str, ...], uefi: bool
) -> None:
    reqs = _reqs(
        initrd_format=fmt,
        writable=writable,
        squashfs_compressor=comp,
        initrd_compression=rd,
        media=list(media),
        uefi=uefi,
        initrd_size_mib=12,
    )
    symbols = [r.symbol for r in reqs]
    assert len(symbols) == len(set(symbols)), "one requirement per symbol"
    by = {r.symbol: r for r in reqs}
    for r in reqs:
        assert r.need in ("y", "ym")
        assert r.reason and "\n" not in r.reason
    # always built in
    for sym in (
        "BLK_DEV_INITRD",
        "BINFMT_ELF",
        "BINFMT_SCRIPT",
        "DEVTMPFS",
        "TMPFS",
        "PROC_FS",
        "SYSFS",
        "MODULES",
    ):
        assert by[sym].need == "y", sym
    # the initrd's decompressor
    rd_syms = {s for s in symbols if s.startswith("RD_")}
    assert rd_syms == (set() if rd == "none" else {kconfig.RD_SYMBOLS[rd]})
    # system image
    assert by["BLK_DEV_LOOP"].need == "ym"
    assert by["SQUASHFS"].need == "ym"
    assert by["ISO9660_FS"].need == "ym"
    assert by[kconfig.SQUASHFS_SYMBOLS[comp]].need == "y"
    other_comps = {s for s in symbols if s.startswith("SQUASHFS_")} - {
        kconfig.SQUASHFS_SYMBOLS[comp]
    }
    assert not other_comps
    # writable strategy
    assert ("OVERLAY_FS" in by) == (writable == "overlay")
    # classic initrd
    classic = fmt == "classic"
    for sym in ("BLK_DEV_RAM", "BLK_DEV_RAM_SIZE", "EXT2_FS", "PROC_SYSCTL"):
        assert (sym in by) == classic, sym
    if classic:
        assert by["BLK_DEV_RAM"].need == "y"
        assert by["BLK_DEV_RAM_SIZE"].min_value == 12 * 1024
        assert by["EXT2_FS"].any_of == (("EXT2_FS",), ("EXT4_FS", "EXT4_USE_FOR_EXT2"))
        assert by["BLK_DEV_INITRD"].before == (7, 0)
    else:
        assert all(r.before is None for r in reqs)
    # media
    assert ("BLK_DEV_SR" in by) == ("cdrom" in media)
    assert ("ATA_PIIX" in by) == ("cdrom" in media)
    assert ("USB_STORAGE" in by) == ("usb" in media)
    assert ("USB_XHCI_HCD" in by) == ("usb" in media)
    assert ("VIRTIO_BLK" in by) == ("virtio" in media)
    assert ("SCSI_VIRTIO" in by) == ("virtio" in media)
    assert ("BLK_DEV_NVME" in by) == ("nvme" in media)
    assert ("BLK_DEV_SD" in by) == bool({"usb", "sata"} & set(media))
    assert ("VFAT_FS" in by) == (uefi or "usb" in media)
    # a config with everything passes
    findings = check(_all_yes(reqs), reqs, "6.1.0")
    assert [f.state for f in findings] == ["ok"] * len(reqs)


@pytest.mark.parametrize(
    "kw",
    [
        {"initrd_format": "cpio"},
        {"writable": "unionfs"},
        {"squashfs_compressor": "brotli"},
        {"initrd_compression": "rar"},
        {"media": ["floppy"]},
    ],
)
def test_requirements_reject_unknown_choices(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _reqs(**kw)


# ----------------------------------------------------------------------------- check


def test_check_states() -> None:
    reqs = _reqs(initrd_format="classic", initrd_size_mib=16)
    config = _all_yes(reqs)
    config.update(
        BLK_DEV_RAM="m",  # y needed: wrong
        SQUASHFS="m",  # ym: fine, a module
        BLK_DEV_RAM_SIZE="8192",  # too small
        BLK_DEV_LOOP="n",
    )
    del config["ISO9660_FS"]
    by = _by_symbol(check(config, reqs, "6.1.0"))
    assert by["BLK_DEV_RAM"].state == "wrong"
    assert "built in" in by["BLK_DEV_RAM"].message
    assert by["SQUASHFS"].state == "module"
    assert by["BLK_DEV_RAM_SIZE"].state == "wrong"
    assert "16384" in by["BLK_DEV_RAM_SIZE"].message
    assert by["BLK_DEV_LOOP"].state == "missing"
    assert by["ISO9660_FS"].state == "missing"
    assert by["ISO9660_FS"].value is None
    assert by["TMPFS"].state == "ok"


def test_check_ext2_alternatives() -> None:
    reqs = _reqs(initrd_format="classic")
    base = _all_yes(reqs)
    base.pop("EXT2_FS")

    def state(**extra: str) -> kconfig.Finding:
        return _by_symbol(check({**base, **extra}, reqs, "6.1.0"))["EXT2_FS"]

    assert state(EXT2_FS="y").state == "ok"
    assert state(EXT4_FS="y", EXT4_USE_FOR_EXT2="y").state == "ok"
    wrong = state(EXT4_FS="m", EXT4_USE_FOR_EXT2="y")
    assert wrong.state == "wrong"
    assert "EXT4_FS+EXT4_USE_FOR_EXT2" in wrong.message
    assert state(EXT4_FS="y").state == "missing"
    assert state().state == "missing"


def test_classic_refused_on_linux_7() -> None:
    classic = _reqs(initrd_format="classic", writable="classic")
    config = _all_yes(classic)
    findings = check(config, classic, "7.0.1")
    bad = [f for f in findings if f.state != "ok"]
    assert len(bad) == 1
    assert bad[0].requirement.symbol == "BLK_DEV_INITRD"
    assert bad[0].state == "wrong"
    assert "7.0" in bad[0].message and "/linuxrc" in bad[0].message
    assert 'initrd.format = "initramfs"' in bad[0].message
    # the same kernel is fine for the modern method
    modern = _reqs()
    assert all(f.state == "ok" for f in check(_all_yes(modern), modern, "7.0.1"))
    # and 6.x is fine for classic
    assert all(f.state == "ok" for f in check(config, classic, "6.19.3"))


def test_classic_unknown_release_says_so() -> None:
    reqs = _reqs(initrd_format="classic")
    by = _by_symbol(check(_all_yes(reqs), reqs, None))
    assert by["BLK_DEV_INITRD"].state == "ok"
    assert "older than 7.0" in by["BLK_DEV_INITRD"].message


@pytest.mark.skipif(not DEBIAN_CONFIGS, reason="no Debian 6.1 config in /boot")
def test_debian_config_classic() -> None:
    path = DEBIAN_CONFIGS[-1]
    release = path.name.removeprefix("config-")
    reqs = _reqs(initrd_format="classic", writable="classic")
    by = _by_symbol(check(parse_config(path.read_text()), reqs, release))
    assert by["BLK_DEV_LOOP"].state == "module"
    assert by["SQUASHFS"].state == "module"
    assert by["ISO9660_FS"].state == "module"
    assert by["BLK_DEV_RAM"].state == "wrong"
    assert by["EXT2_FS"].state == "wrong"  # EXT4_FS=m + EXT4_USE_FOR_EXT2=y
    assert by["DEVTMPFS"].state == "ok"
    assert by["BLK_DEV_INITRD"].state == "ok"


@pytest.mark.skipif(not DEBIAN_CONFIGS, reason="no Debian 6.1 config in /boot")
def test_debian_config_modern_is_fine() -> None:
    path = DEBIAN_CONFIGS[-1]
    release = path.name.removeprefix("config-")
    reqs = _reqs(media=list(kconfig.MEDIA), uefi=True, squashfs_compressor="zstd")
    findings = check(parse_config(path.read_text()), reqs, release)
    assert all(f.state in ("ok", "module") for f in findings), [
        (f.requirement.symbol, f.message) for f in findings if f.state not in ("ok", "module")
    ]


# ----------------------------------------------------------------------------- modules


def test_check_from_modules_fake(tmp_path: Path) -> None:
    mods = tmp_path / "lib" / "modules" / "6.1.5-test"
    mods.mkdir(parents=True)
    (mods / "modules.builtin").write_text(
        "kernel/fs/isofs/isofs.ko\nkernel/drivers/block/brd.ko\nkernel/fs/ext2/ext2.ko\n"
    )
    (mods / "modules.dep").write_text(
        "kernel/drivers/block/loop.ko.xz:\n"
        "kernel/fs/squashfs/squashfs.ko.zst: kernel/lib/foo.ko\n"
        "kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko\n"
        "kernel/drivers/cdrom/cdrom.ko:\n"
    )
    reqs = _reqs(initrd_format="classic", writable="classic")
    findings = kconfig.check_from_modules(mods, reqs)
    by = _by_symbol(findings)
    assert by["ISO9660_FS"].state == "ok"
    assert by["BLK_DEV_RAM"].state == "ok"
    assert by["EXT2_FS"].state == "ok"
    assert by["BLK_DEV_LOOP"].state == "module"
    assert by["SQUASHFS"].state == "module"
    assert by["BLK_DEV_SR"].state == "module"
    assert by["ATA_PIIX"].state == "missing"
    # plain bools and values cannot be judged from module lists
    assert "DEVTMPFS" not in by and "BLK_DEV_RAM_SIZE" not in by
    assert "partial" in findings[0].message
    assert "DEVTMPFS" in findings[0].message
    assert all("modules.builtin" in f.message for f in findings)


def test_check_from_modules_linux_7(tmp_path: Path) -> None:
    mods = tmp_path / "7.0.2"
    mods.mkdir()
    (mods / "modules.builtin").write_text("kernel/drivers/block/brd.ko\n")
    (mods / "modules.dep").write_text("")
    by = _by_symbol(kconfig.check_from_modules(mods, _reqs(initrd_format="classic")))
    assert by["BLK_DEV_INITRD"].state == "wrong"
    assert "initramfs" in by["BLK_DEV_INITRD"].message


@pytest.mark.skipif(not DEBIAN_CONFIGS, reason="no Debian 6.1 kernel")
def test_check_from_modules_debian() -> None:
    release = DEBIAN_CONFIGS[-1].name.removeprefix("config-")
    mods = Path("/lib/modules") / release
    if not (mods / "modules.dep").is_file():
        pytest.skip(f"no {mods}/modules.dep")
    by = _by_symbol(kconfig.check_from_modules(mods, _reqs(initrd_format="classic")))
    assert by["BLK_DEV_LOOP"].state == "module"
    assert by["SQUASHFS"].state == "module"
    assert by["BLK_DEV_RAM"].state == "wrong"


# ----------------------------------------------------------------------------- finding configs


@pytest.mark.skipif(not BOOT_IMAGES, reason="no /boot/vmlinuz-*")
@pytest.mark.parametrize("image", BOOT_IMAGES, ids=lambda p: p.name)
def test_kernel_release_from_image(image: Path) -> None:
    assert kconfig.kernel_release_from_image(image) == image.name.removeprefix("vmlinuz-")


def test_kernel_release_from_non_image(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 4096)
    assert kconfig.kernel_release_from_image(junk) is None
    assert kconfig.kernel_release_from_image(tmp_path / "absent") is None


@pytest.mark.skipif(not BOOT_IMAGES, reason="no /boot/vmlinuz-*")
def test_find_config_from_boot() -> None:
    for image in BOOT_IMAGES:
        release = image.name.removeprefix("vmlinuz-")
        if (image.parent / f"config-{release}").is_file():
            break
    else:
        pytest.skip("no /boot/config-RELEASE next to a /boot/vmlinuz-RELEASE")
    found = kconfig.find_config(image, release)
    assert found is not None
    assert found[0] == f"/boot/config-{release}"
    assert parse_config(found[1])["BLK_DEV_INITRD"] == "y"
    # the release is read from the image when not given
    found2 = kconfig.find_config(image, None)
    assert found2 is not None and found2[0] == found[0]


def test_find_config_order(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / ".config").write_text("CONFIG_FROM_TREE=y\n")
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "config-9.9.9-x").write_text("CONFIG_FROM_ROOT_BOOT=y\n")
    mods = root / "lib" / "modules" / "9.9.9-x"
    (mods / "build").mkdir(parents=True)
    (mods / "build" / ".config").write_text("CONFIG_FROM_BUILD=y\n")
    image = tmp_path / "vmlinuz"
    found = kconfig.find_config(image, "9.9.9-x", tree, mods)
    assert found is not None and "FROM_TREE" in found[1]
    found = kconfig.find_config(image, "9.9.9-x", None, mods)
    assert found is not None and "FROM_ROOT_BOOT" in found[1]
    (root / "boot" / "config-9.9.9-x").unlink()
    found = kconfig.find_config(image, "9.9.9-x", None, mods)
    assert found is not None and found[0] == str(mods / "build" / ".config")
    assert kconfig.find_config(image, "9.9.8-nothing", None, None) is None


CONFIG_TEXT = "# test\nCONFIG_IKCONFIG=y\nCONFIG_BLK_DEV_RAM=y\n# CONFIG_EXT2_FS is not set\n"


def _fake_bzimage(payload: bytes, release: str = "6.1.99-fake") -> bytes:
    """A minimal bzImage: boot sector + setup header + version string, then the payload."""
    setup_sects = 4
    data = bytearray(512 * (setup_sects + 1))
    data[0x1F1] = setup_sects
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, 0x020F)
    version = f"{release} (test@host) #1 SMP\0".encode()
    struct.pack_into("<H", data, 0x20E, 0x400 - 0x200)
    data[0x400 : 0x400 + len(version)] = version
    struct.pack_into("<II", data, 0x248, 0x10, len(payload))
    return bytes(data) + b"\0" * 0x10 + payload + b"\0" * 64


def _vmlinux_with_config(text: str) -> bytes:
    return (
        b"\x7fELF junk" * 50 + b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED" + b"x" * 99
    )


@pytest.mark.parametrize("compression", ["gzip", "xz", "plain"])
def test_extract_ikconfig_fake(tmp_path: Path, compression: str) -> None:
    vmlinux = _vmlinux_with_config(CONFIG_TEXT)
    if compression == "gzip":
        blob = _fake_bzimage(gzip.compress(vmlinux))
    elif compression == "xz":
        blob = _fake_bzimage(lzma.compress(vmlinux, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    else:
        blob = vmlinux
    image = tmp_path / "bzImage"
    image.write_bytes(blob)
    assert kconfig.extract_ikconfig(image) == CONFIG_TEXT
    found = kconfig.find_config(image, None)
    assert found is not None
    assert found[0].endswith("(IKCONFIG)")
    assert parse_config(found[1])["BLK_DEV_RAM"] == "y"
    if compression != "plain":
        assert kconfig.kernel_release_from_image(image) == "6.1.99-fake"


def test_extract_ikconfig_absent(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(_fake_bzimage(gzip.compress(b"no config in here" * 100)))
    assert kconfig.extract_ikconfig(image) is None


# ----------------------------------------------------------------------------- test kernel


def _classic_tree() -> Path:
    if not kernel_tree.SOURCE_TARBALL.is_file():
        pytest.skip(f"{kernel_tree.SOURCE_TARBALL} not installed")
    return kernel_tree.prepare_classic_kernel_tree(kernel_tree.default_cache_dir())


def test_classic_fragment_meets_classic_requirements() -> None:
    """The test kernel's config (tinyconfig + fragment) passes the classic check."""
    tree = _classic_tree()
    config = parse_config((tree / ".config").read_text())
    release = (tree / "Makefile").read_text()
    m = re.search(r"^VERSION = (\d+)\nPATCHLEVEL = (\d+)", release, re.M)
    assert m is not None
    reqs = _reqs(
        initrd_format="classic",
        writable="classic",
        squashfs_compressor="xz",
        initrd_compression="gzip",
        media=["cdrom", "sata"],
        initrd_size_mib=16,
    )
    findings = check(config, reqs, f"{m.group(1)}.{m.group(2)}.0")
    assert all(f.state == "ok" for f in findings), [
        (f.requirement.symbol, f.message) for f in findings if f.state != "ok"
    ]


def test_extract_ikconfig_from_test_kernel(classic_tree: Path, classic_kernel: Path) -> None:
    tree, image = classic_tree, classic_kernel
    release = kconfig.kernel_release_from_image(image)
    built = tree / "include" / "config" / "kernel.release"
    assert release == built.read_text().strip()
    text = kconfig.extract_ikconfig(image)
    assert text is not None
    assert parse_config(text) == parse_config((tree / ".config").read_text())
    found = kconfig.find_config(image, release)
    assert found is not None and found[0].endswith("(IKCONFIG)")


# ----------------------------------------------------------------------------- by purpose


def test_groups_and_presets() -> None:
    assert set(kconfig.PRESETS) == {"minimal", "rescue", "desktop"}
    assert kconfig.preset_groups("minimal") == ()
    assert set(kconfig.preset_groups("rescue")) >= {"disk", "filesystems"}
    assert set(kconfig.preset_groups("desktop")) >= {"sound", "network"}
    for preset, groups in kconfig.PRESETS.items():
        assert all(g in kconfig.GROUPS for g in groups), preset
    by = {r.symbol: r for r in kconfig.group_requirements(["disk", "filesystems"])}
    assert {"SATA_AHCI", "BLK_DEV_NVME", "VIRTIO_BLK", "EXT4_FS", "BTRFS_FS"} <= set(by)
    sound = {r.symbol for r in kconfig.group_requirements(["sound"])}
    assert {"SND", "SND_HDA_INTEL"} <= sound
    network = {r.symbol for r in kconfig.group_requirements(["network"])}
    assert {"NET", "INET", "E1000", "VIRTIO_NET"} <= network
    for group in kconfig.GROUPS:
        reqs = kconfig.group_requirements([group])
        assert reqs and len({r.symbol for r in reqs}) == len(reqs)
        assert all(r.reason and "\n" not in r.reason for r in reqs)
    with pytest.raises(ValueError):
        kconfig.preset_groups("gaming")
    with pytest.raises(ValueError):
        kconfig.group_requirements(["printers"])


@pytest.mark.skipif(not DEBIAN_CONFIGS, reason="no Debian 6.1 config in /boot")
@pytest.mark.parametrize("group", list(kconfig.GROUPS))
def test_debian_kernel_has_every_group(group: str) -> None:
    """A distribution kernel has every driver group (as modules): the symbols are real."""
    path = DEBIAN_CONFIGS[-1]
    reqs = kconfig.group_requirements([group])
    findings = check(parse_config(path.read_text()), reqs, path.name[len("config-") :])
    assert all(f.state in ("ok", "module") for f in findings), [
        (f.requirement.symbol, f.message) for f in findings if f.state not in ("ok", "module")
    ]


def test_too_old_kernel_says_choose_another_compressor() -> None:
    reqs = _reqs(initrd_compression="zstd", squashfs_compressor="zstd")
    config = _all_yes(reqs)
    del config["RD_ZSTD"], config["SQUASHFS_ZSTD"]
    by = _by_symbol(check(config, reqs, "5.4.0"))
    assert by["RD_ZSTD"].state == "missing"
    assert "only since Linux 5.9" in by["RD_ZSTD"].message
    assert not kconfig.fixable(by["RD_ZSTD"], "5.4.0")
    # 5.4 has zstd squashfs (4.14): enabling it is the fix
    assert by["SQUASHFS_ZSTD"].state == "missing"
    assert "since" not in by["SQUASHFS_ZSTD"].message
    assert kconfig.fixable(by["SQUASHFS_ZSTD"], "5.4.0")
    old = _by_symbol(check(config, reqs, "4.9.0"))
    assert "since Linux 4.14" in old["SQUASHFS_ZSTD"].message
    # on a new enough kernel the same finding is simply missing, and fixable
    newer = _by_symbol(check(config, reqs, "6.1.0"))
    assert "since" not in newer["RD_ZSTD"].message
    assert kconfig.fixable(newer["RD_ZSTD"], "6.1.0")


def test_classic_on_linux_7_is_not_fixable() -> None:
    reqs = _reqs(initrd_format="classic", writable="classic")
    by = _by_symbol(check(_all_yes(reqs), reqs, "7.0.0"))
    assert by["BLK_DEV_INITRD"].state == "wrong"
    assert not kconfig.fixable(by["BLK_DEV_INITRD"], "7.0.0")
    assert not kconfig.fixable(by["TMPFS"], "7.0.0")  # ok: nothing to fix


@pytest.mark.parametrize(
    ("kw", "symbols"),
    [
        ({"initrd_format": "classic"}, {"BLK_DEV_RAM", "BLK_DEV_RAM_SIZE", "EXT2_FS"}),
        ({"writable": "overlay"}, {"OVERLAY_FS"}),
        ({"squashfs_compressor": "lz4"}, {"SQUASHFS_LZ4"}),
        ({"initrd_compression": "xz"}, {"RD_XZ"}),
        ({"media": ["usb"]}, {"USB_STORAGE", "BLK_DEV_SD", "VFAT_FS"}),
        ({"media": ["virtio"]}, {"VIRTIO_BLK", "SCSI_VIRTIO"}),
        ({"media": ["nvme"]}, {"BLK_DEV_NVME"}),
        ({"uefi": True}, {"VFAT_FS"}),
    ],
)
def test_each_choice_adds_its_symbols_and_each_is_checked(
    kw: dict[str, object], symbols: set[str]
) -> None:
    """Every requirement set: its symbols appear, and removing any one is caught."""
    reqs = _reqs(**kw)
    by = {r.symbol: r for r in reqs}
    assert symbols <= set(by)
    for symbol in symbols:
        config = _all_yes(reqs)
        config.pop(symbol, None)
        finding = _by_symbol(check(config, reqs, "6.1.0"))[symbol]
        assert finding.state == "missing", symbol
        assert by[symbol].reason in finding.message


# ------------------------------------------------------------- the same check in bash


def _bash_check(
    reqs: list[Requirement], config: dict[str, str], release: str, tmp_path: Path
) -> tuple[set[str], set[str]]:
    """Run export-script's bash check: (symbols it refuses, those it calls too new)."""
    import subprocess

    from livecd_tui.stages.kconfig_script import requirement_lines

    path = tmp_path / "config"
    path.write_text("".join(f"CONFIG_{k}={v}\n" for k, v in config.items()))
    script = "\n".join(
        [f"kernel_config='{path}'", f"kernel_release='{release}'", *requirement_lines(reqs, [])]
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == (1 if result.stderr else 0), result.stderr
    names = {name: r.symbol for r in reqs for name in (r.symbol, r.describe())}
    refused, too_new = set(), set()
    for line in result.stderr.splitlines():
        what, _, why = line.removeprefix(
            "livecd-build: the kernel cannot boot this CD: "
        ).partition(": ")
        refused.add(names[what])
        if why.startswith("exists only since"):
            too_new.add(names[what])
    return refused, too_new


@pytest.mark.parametrize("release", ["4.9.0", "5.4.0", "6.1.0-56-amd64", "7.0.1", "custom"])
@pytest.mark.parametrize(
    "kw",
    [
        {"initrd_format": "classic", "writable": "classic", "initrd_compression": "gzip"},
        {"initrd_compression": "zstd", "squashfs_compressor": "zstd", "media": ["cdrom", "usb"]},
        {"initrd_compression": "lz4", "squashfs_compressor": "lz4", "uefi": True},
    ],
)
def test_the_bash_check_judges_as_the_python_one(
    kw: dict[str, object], release: str, tmp_path: Path
) -> None:
    import random

    reqs = _reqs(**kw)
    chance = random.Random(f"{kw}{release}")
    for _ in range(12):
        config = _all_yes(reqs)
        for symbol in list(config):
            roll = chance.random()
            if roll < 0.15:
                del config[symbol]
            elif roll < 0.3:
                config[symbol] = "m" if config[symbol] == "y" else "1024"
        findings = check(config, reqs, release)
        expected = {f.requirement.symbol for f in findings if f.state in ("missing", "wrong")}
        too_new = {f.requirement.symbol for f in findings if "only since" in f.message}
        assert _bash_check(reqs, config, release, tmp_path) == (expected, too_new), config


def test_the_bash_check_says_a_symbol_is_newer_than_the_kernel(tmp_path: Path) -> None:
    reqs = _reqs(initrd_compression="zstd", squashfs_compressor="zstd")
    config = _all_yes(reqs)
    del config["RD_ZSTD"], config["SQUASHFS_ZSTD"]
    assert _bash_check(reqs, config, "5.4.0", tmp_path) == (
        {"RD_ZSTD", "SQUASHFS_ZSTD"},
        {"RD_ZSTD"},
    )
