"""Tests for livecd_tui.kernel.kconfig_deps: Kconfig files, expressions, what blocks a symbol.

A small fake tree covers the language; the real 6.1 tree (tests/kernel_tree.py) checks
that every symbol livecd-tui asks for exists and that the hints name real dependencies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from livecd_tui.kernel import kconfig
from livecd_tui.kernel.kconfig_deps import (
    dependency_hint,
    evaluate_text,
    needs_for,
    parse_expr,
    read_kconfig,
    symbols_in,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_tree

TOP = """\
mainmenu "Test $(ARCH)"
source "arch/$(SRCARCH)/Kconfig"
config MODULES
\tbool "Modules"
source "drivers/Kconfig"
"""
ARCH = """\
config X86
\tdef_bool y
config PCI
\tbool "PCI" # a comment
\thelp
\t  depends on NOTHING: this is help text
\t  config NOT_A_SYMBOL

config EXPERT
\tbool "Expert"
"""
DRIVERS = """\
menuconfig BLK_DEV
\tbool "Block devices"
\tdepends on BLOCK_OK
if BLK_DEV
config BLK_DEV_RAM
\ttristate "RAM disk"
\tdepends on PCI && \\
\t    (X86 || ARM)
config BLK_DEV_RAM_SIZE
\tint "size"
\tdepends on BLK_DEV_RAM
endif # BLK_DEV
menu "Hidden"
\tvisible if EXPERT
config TUNABLE
\tbool "tunable"
\tdefault y
endmenu
comment "a comment with a condition"
\tdepends on !PCI
config CDROM
\ttristate
config BLK_DEV_SR
\ttristate "SCSI CD"
\tselect CDROM
config NEW_EXT
\tbool "new"
\tdepends on EXT2=n
config ARMONLY
\tbool "arm"
\tdepends on ARM
config BLOCK_OK
\tbool "block"
config EXT2
\ttristate "ext2"
config CC_THING
\tbool "compiler"
\tdepends on $(cc-option,-fthing) && PCI
"""


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    (tmp_path / "arch" / "x86").mkdir(parents=True)
    (tmp_path / "drivers").mkdir()
    (tmp_path / "Kconfig").write_text(TOP)
    (tmp_path / "arch" / "x86" / "Kconfig").write_text(ARCH)
    (tmp_path / "drivers" / "Kconfig").write_text(DRIVERS)
    return tmp_path


def test_reads_the_language(fake_tree: Path) -> None:
    index = read_kconfig(fake_tree, "x86")
    defs = index.definitions
    assert "NOT_A_SYMBOL" not in defs, "help text is skipped"
    assert defs["PCI"][0].kind == "bool" and defs["PCI"][0].prompt
    assert defs["X86"][0].kind == "bool" and not defs["X86"][0].prompt
    ram = defs["BLK_DEV_RAM"][0]
    assert ram.kind == "tristate"
    assert ram.depends == ["PCI && (X86 || ARM)"]
    assert ram.context == ["BLK_DEV"]
    assert ram.where == "drivers/Kconfig:5"
    assert defs["TUNABLE"][0].prompt_if == ["EXPERT"]
    assert defs["TUNABLE"][0].context == []
    # the comment's "depends on" belongs to the comment, not to the config before it
    assert defs["TUNABLE"][0].depends == []
    assert defs["CDROM"][0].prompt is False
    assert index.selected_by["CDROM"] == ["BLK_DEV_SR"]
    assert "ARMONLY" in defs and "ARM" not in defs


def test_expressions() -> None:
    config = {"A": "y", "B": "m", "C": "n", "N": "16", "S": "abc"}
    assert evaluate_text("A && B", config) == 1
    assert evaluate_text("A || C", config) == 2
    assert evaluate_text("!C && A", config) == 2
    assert evaluate_text("!(A || B)", config) == 0
    assert evaluate_text("B = m", config) == 2
    assert evaluate_text("C != n", config) == 0
    assert evaluate_text("N >= 8", config) == 2
    assert evaluate_text("N < 8", config) == 0
    assert evaluate_text('S = "abc"', config) == 2
    assert evaluate_text("UNKNOWN", config) == 0
    assert evaluate_text("$(cc-option,-x) && A", config) == 2
    assert symbols_in("A && (B || !C) && D=y") == ["A", "B", "C", "D"]
    assert parse_expr("A && B || C") == ("or", ("and", ("sym", "A"), ("sym", "B")), ("sym", "C"))


def test_needs_follow_depends_if_and_menus(fake_tree: Path) -> None:
    index = read_kconfig(fake_tree, "x86")
    base = {"X86": "y", "MODULES": "y"}
    needs = needs_for(index, "BLK_DEV_RAM", "y", base)
    assert needs.set == {"PCI": "y", "BLK_DEV": "y"}
    assert not needs.obstacles
    # one round at a time: BLK_DEV's own dependency comes when BLK_DEV does not stick
    assert needs_for(index, "BLK_DEV", "y", base).set == {"BLOCK_OK": "y"}
    # a satisfied dependency needs nothing
    assert (
        needs_for(
            index, "BLK_DEV_RAM", "y", {**base, "PCI": "y", "BLK_DEV": "y", "BLOCK_OK": "y"}
        ).set
        == {}
    )
    # a menu's "visible if" is a condition of the prompt
    assert needs_for(index, "TUNABLE", "y", base).set == {"EXPERT": "y"}
    # ARM is not declared here, but the other side of the || is enough
    assert not needs_for(index, "BLK_DEV_RAM", "y", {"PCI": "y", "BLK_DEV": "y"}).obstacles


def test_obstacles(fake_tree: Path) -> None:
    index = read_kconfig(fake_tree, "x86")
    assert "not in this kernel's Kconfig" in needs_for(index, "NOPE", "y", {}).obstacles[0]
    assert needs_for(index, "ARMONLY", "y", {}).obstacles == ["ARM is not declared for x86"]
    blocked = needs_for(index, "NEW_EXT", "y", {"EXT2": "y"})
    assert blocked.obstacles and "EXT2=n" in blocked.obstacles[0]
    cdrom = needs_for(index, "CDROM", "y", {})
    assert any("only a select sets it (BLK_DEV_SR)" in o for o in cdrom.obstacles)
    # compiler macros are not what blocks anyone
    assert needs_for(index, "CC_THING", "y", {"X86": "y"}).set == {"PCI": "y"}


def test_dependency_hint(fake_tree: Path) -> None:
    hint = dependency_hint(fake_tree, "BLK_DEV_RAM", {"PCI": "n"}, "x86")
    assert "depends on PCI &&" in hint and "PCI=n" in hint and "X86=n" in hint
    assert "inside BLK_DEV [BLK_DEV=n]" in hint
    assert hint.endswith("(drivers/Kconfig:5)")
    ok = dependency_hint(
        fake_tree, "BLK_DEV_RAM", {"PCI": "y", "X86": "y", "BLK_DEV": "y", "BLOCK_OK": "y"}, "x86"
    )
    assert ok.startswith("its dependencies are met")
    assert "set only by select from BLK_DEV_SR" in dependency_hint(fake_tree, "CDROM", {}, "x86")


# ----------------------------------------------------------------------------- real tree


def _tree() -> Path:
    if not kernel_tree.SOURCE_TARBALL.is_file():
        pytest.skip(f"{kernel_tree.SOURCE_TARBALL} not installed")
    return kernel_tree.prepare_classic_kernel_tree(kernel_tree.default_cache_dir())


def test_every_asked_symbol_exists_in_linux_6_1() -> None:
    """Typos in the requirement tables would make the fix ask for nothing."""
    index = read_kconfig(_tree(), "x86")
    reqs = kconfig.requirements("classic", "overlay", "xz", "gzip", list(kconfig.MEDIA), True, 8)
    reqs += kconfig.group_requirements(kconfig.GROUPS)
    for compressor, symbol in {**kconfig.SQUASHFS_SYMBOLS, **kconfig.RD_SYMBOLS}.items():
        assert symbol in index.definitions, compressor
    for req in reqs:
        for group in req.alternatives():
            for symbol in group:
                assert symbol in index.definitions, symbol
    assert len(index.definitions) > 10000


def test_real_hint_names_the_dependency() -> None:
    tree = _tree()
    hint = dependency_hint(tree, "BLK_DEV_RAM", {"BLOCK": "y"}, "x86")
    assert "BLK_DEV=n" in hint and "drivers/block/Kconfig" in hint
    index = read_kconfig(tree, "x86")
    assert index.definitions["TMPFS"][0].depends == ["SHMEM"]
    assert "BLK_DEV_SR" in index.selected_by["CDROM"]
