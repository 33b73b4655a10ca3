"""livecd_tui.kernel.kmod against this machine's kernel, with ``modprobe --show-depends`` as oracle.

modprobe (kmod) is what a normal boot uses to load modules; our insmod list must contain
exactly what it would load, in an order insmod accepts.
"""

from __future__ import annotations

import glob
import gzip
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from livecd_tui.kernel.kmod import (
    UnknownModule,
    firmware_for,
    is_builtin,
    module_name,
    resolve_modules,
)

CANDIDATES = sorted(
    d for d in glob.glob("/lib/modules/6.1.0-*-amd64") if os.path.isfile(f"{d}/modules.dep")
)
MODULES_DIR = Path(CANDIDATES[-1]) if CANDIDATES else None
RELEASE = MODULES_DIR.name if MODULES_DIR else ""

needs_kernel = pytest.mark.skipif(
    MODULES_DIR is None or shutil.which("modprobe") is None,
    reason="no Debian 6.1 kernel modules or no modprobe on this machine",
)

LIVE_MODULES = [
    "squashfs", "loop", "isofs", "overlay", "sr_mod", "ata_piix", "ahci", "sd_mod",
    "virtio_blk", "virtio_scsi", "uas", "usb_storage", "xhci_pci", "nvme", "vfat",
]  # fmt: skip


def show_depends(*names: str) -> list[str]:
    """modprobe's insmod list (relative paths, repeats kept) for ``names``."""
    out: list[str] = []
    for name in names:
        proc = subprocess.run(
            ["modprobe", "--show-depends", "--set-version", RELEASE, name],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in proc.stdout.splitlines():
            words = line.split()
            if words and words[0] == "insmod":
                out.append(os.path.relpath(words[1], MODULES_DIR))
    return out


def modinfo(field: str, relpath: str) -> list[str]:
    assert MODULES_DIR is not None
    proc = subprocess.run(
        ["modinfo", "-F", field, str(MODULES_DIR / relpath)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [w for line in proc.stdout.splitlines() for w in line.replace(",", " ").split()]


def assert_loadable_order(order: list[str]) -> None:
    """Each module once, after everything its .modinfo ``depends=`` names (insmod's need)."""
    assert len(order) == len(set(order)), order
    seen: set[str] = set()
    names = {module_name(p) for p in order}
    for rel in order:
        for dep in modinfo("depends", rel):
            dep = dep.replace("-", "_")
            assert dep in names, f"{rel} needs {dep}, missing from {order}"
            assert dep in seen, f"{rel} comes before its dependency {dep}: {order}"
        seen.add(module_name(rel))


@needs_kernel
@pytest.mark.parametrize("name", LIVE_MODULES)
def test_matches_modprobe(name: str) -> None:
    assert MODULES_DIR is not None
    ours = resolve_modules(MODULES_DIR, [name])
    expected = show_depends(name)
    assert set(ours) == set(expected)
    assert_loadable_order(ours)
    assert module_name(ours[-1]) == name.replace("-", "_")  # the module itself comes last


@needs_kernel
def test_all_live_modules_at_once() -> None:
    assert MODULES_DIR is not None
    ours = resolve_modules(MODULES_DIR, LIVE_MODULES)
    assert set(ours) == set(show_depends(*LIVE_MODULES))
    assert_loadable_order(ours)
    # Dashes and underscores are the same name, and a repeated name changes nothing.
    again = resolve_modules(MODULES_DIR, [n.replace("_", "-") for n in LIVE_MODULES] + ["loop"])
    assert again == ours


@needs_kernel
def test_builtin_gives_nothing() -> None:
    assert MODULES_DIR is not None
    builtin = (MODULES_DIR / "modules.builtin").read_text().split()
    assert "kernel/net/unix/unix.ko" in builtin
    proc = subprocess.run(
        ["modprobe", "--show-depends", "--set-version", RELEASE, "unix"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "builtin unix"
    assert is_builtin(MODULES_DIR, "unix")
    assert not is_builtin(MODULES_DIR, "squashfs")
    assert resolve_modules(MODULES_DIR, ["unix"]) == []
    assert resolve_modules(MODULES_DIR, ["unix", "loop"]) == ["kernel/drivers/block/loop.ko"]


@needs_kernel
def test_unknown_module() -> None:
    assert MODULES_DIR is not None
    with pytest.raises(UnknownModule) as info:
        resolve_modules(MODULES_DIR, ["loop", "no_such_module_xyz"])
    assert info.value.name == "no_such_module_xyz"
    assert "no_such_module_xyz" in str(info.value) and str(MODULES_DIR) in str(info.value)
    assert (
        subprocess.run(
            ["modprobe", "--show-depends", "--set-version", RELEASE, "no_such_module_xyz"],
            capture_output=True,
            check=False,
        ).returncode
        != 0
    )


@needs_kernel
@pytest.mark.parametrize("name", ["libcrc32c", "ext4", "ksmbd", "btrfs", "crc_t10dif", "crc32"])
def test_softdeps_pre(name: str) -> None:
    """``pre:`` softdeps (mostly aliases naming several modules) load before the module.

    ksmbd and btrfs have many softdep lines: kmod only honours the first one of each module,
    so e.g. btrfs gets blake2b but not xxhash64 -- the oracle agrees.
    """
    assert MODULES_DIR is not None
    softdep = (MODULES_DIR / "modules.softdep").read_text()
    ours = resolve_modules(MODULES_DIR, [name])
    assert set(ours) == set(show_depends(name))
    assert_loadable_order(ours)
    if f"softdep {name} pre:" in softdep:
        assert module_name(ours[-1]) == name


@needs_kernel
def test_softdep_post() -> None:
    assert MODULES_DIR is not None
    assert (
        "softdep ipmi_msghandler post: ipmi_devintf"
        in (MODULES_DIR / "modules.softdep").read_text()
    )
    ours = resolve_modules(MODULES_DIR, ["ipmi_msghandler"])
    assert set(ours) == set(show_depends("ipmi_msghandler"))
    assert [module_name(p) for p in ours] == ["ipmi_msghandler", "ipmi_devintf"]


@needs_kernel
def test_firmware_matches_modinfo(tmp_path: Path) -> None:
    assert MODULES_DIR is not None
    rel = resolve_modules(MODULES_DIR, ["r8169"])[-1]
    expected = modinfo("firmware", rel)
    assert expected  # the realtek driver names its rtl_nic/*.fw files
    assert firmware_for(MODULES_DIR, [rel]) == expected
    # Modules without firmware give nothing; several modules are merged, each name once.
    assert firmware_for(MODULES_DIR, resolve_modules(MODULES_DIR, ["loop"])) == []
    assert firmware_for(MODULES_DIR, [rel, rel]) == expected

    # Compressed copies, as other distributions ship them.
    data = (MODULES_DIR / rel).read_bytes()
    (tmp_path / "r8169.ko.xz").write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ))
    (tmp_path / "r8169.ko.gz").write_bytes(gzip.compress(data))
    assert firmware_for(tmp_path, ["r8169.ko.xz"]) == expected
    assert firmware_for(tmp_path, ["r8169.ko.gz"]) == expected
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-o", str(tmp_path / "r8169.ko.zst"), str(MODULES_DIR / rel)],
                       check=True)  # fmt: skip
        assert firmware_for(tmp_path, ["r8169.ko.zst"]) == expected


# -- a small fake kernel ------------------------------------------------------------------------


def fake_modules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "lib/modules/9.9.9-test"
    d.mkdir(parents=True)
    (d / "modules.dep").write_text(
        "kernel/fs/top.ko.xz: kernel/lib/mid-dep.ko.zst kernel/lib/base.ko\n"
        "kernel/lib/mid-dep.ko.zst: kernel/lib/base.ko\n"
        "kernel/lib/base.ko:\n"
        "kernel/crypto/fast_crc.ko.gz:\n"
        "kernel/crypto/slow-crc.ko:\n"
        "kernel/lib/helper.ko: kernel/fs/top.ko.xz kernel/lib/mid-dep.ko.zst kernel/lib/base.ko\n"
        "kernel/lib/loner.ko:\n"
    )
    (d / "modules.builtin").write_text(
        "kernel/fs/ext4/ext4.ko\nkernel/lib/lib-foo.ko\nkernel/lib/crc-ccitt.ko\n"
    )
    (d / "modules.softdep").write_text(
        "# Soft dependencies extracted from modules themselves.\n"
        "softdep top pre: crcalias post: helper\n"
        "softdep top pre: loner\n"  # second line for top: ignored, like kmod
        "softdep base junk pre: nosuchthing\n"  # unresolvable softdep: skipped
    )
    (d / "modules.alias").write_text(
        "# Aliases extracted from modules themselves.\n"
        "alias crcalias fast_crc\n"
        "alias crc* slow_crc\n"
        "alias pci:v00001234d*sv*sd*bc01sc*i* loner\n"
    )
    return d


def test_fake_dir_order_and_softdeps(tmp_path: Path) -> None:
    d = fake_modules_dir(tmp_path)
    assert resolve_modules(d, ["top"]) == [
        "kernel/lib/base.ko",
        "kernel/lib/mid-dep.ko.zst",
        "kernel/crypto/fast_crc.ko.gz",  # pre: crcalias -> exact alias and the crc* wildcard
        "kernel/crypto/slow-crc.ko",
        "kernel/fs/top.ko.xz",
        "kernel/lib/helper.ko",  # post:, which itself depends on top
    ]
    # Compressed names, dash/underscore and aliases as input.
    assert resolve_modules(d, ["mid_dep"]) == ["kernel/lib/base.ko", "kernel/lib/mid-dep.ko.zst"]
    assert resolve_modules(d, ["pci:v00001234d00005678sv00000000sd00000000bc01sc06i00"]) == [
        "kernel/lib/loner.ko"
    ]
    # Builtins (by name, with either separator) give nothing.
    assert resolve_modules(d, ["ext4", "lib_foo", "lib-foo"]) == []
    assert is_builtin(d, "lib_foo") and not is_builtin(d, "top")
    # ...but an alias beats a built-in name, as in kmod (Debian's crc32 is built in, yet
    # "crc32" loads crc32-pclmul and crc32_generic).
    assert is_builtin(d, "crc-ccitt")
    assert resolve_modules(d, ["crc_ccitt"]) == ["kernel/crypto/slow-crc.ko"]
    with pytest.raises(UnknownModule, match=r"9\.9\.9-test"):
        resolve_modules(d, ["nothing_like_this"])


def test_fake_dir_softdep_cycle_keeps_hard_order(tmp_path: Path) -> None:
    d = fake_modules_dir(tmp_path)
    # base says "load helper first", but helper hard-depends on base: hard deps must win.
    (d / "modules.softdep").write_text("softdep base pre: helper\n")
    order = resolve_modules(d, ["helper"])
    assert order == [
        "kernel/lib/base.ko",
        "kernel/lib/mid-dep.ko.zst",
        "kernel/fs/top.ko.xz",
        "kernel/lib/helper.ko",
    ]


def test_module_name() -> None:
    assert module_name("kernel/drivers/usb/storage/usb-storage.ko") == "usb_storage"
    assert module_name("kernel/fs/squashfs/squashfs.ko.xz") == "squashfs"
    assert module_name("extra/foo-bar.ko.zst") == "foo_bar"
    assert module_name("kernel/lib/x.ko.gz") == "x"


def test_missing_modules_dep(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="depmod"):
        resolve_modules(tmp_path, ["loop"])
