"""Tests for livecd_tui.kernel.kbuild: kbuild's output lines, the build estimate, and the tree
stamp that keeps the kernel stage up to date until a file in the tree changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from livecd_tui.build import Build
from livecd_tui.engine import fingerprint
from livecd_tui.kernel import kbuild
from livecd_tui.profile import load_profile
from livecd_tui.stages.kernel import STAGE as KERNEL


@pytest.mark.parametrize(
    "line",
    [
        "  CC      init/main.o",
        "  CC [M]  fs/squashfs/super.o",
        "  LD [M]  fs/x.ko",
        "  AR      built-in.a",
        "  HOSTCC  scripts/basic/fixdep",
        "  GEN     Makefile",
        "  OBJCOPY arch/x86/boot/setup.bin",
        "  LDS     arch/x86/kernel/vmlinux.lds",
    ],
)
def test_object_lines(line: str) -> None:
    assert kbuild.is_object_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "make: Entering directory '/usr/src/linux'",
        "Kernel: arch/x86/boot/bzImage is ready",
        "CC init/main.o",
        "   CC      indented too far",
        "  cc      lower case",
        "",
        "kbuild: about 12 objects to make (from the last build of this tree)",
    ],
)
def test_other_lines(line: str) -> None:
    assert not kbuild.is_object_line(line)


def test_estimate_line_round_trip() -> None:
    line = kbuild.estimate_line(1279, "from the last build of this tree")
    assert kbuild.parse_estimate(line) == 1279
    assert kbuild.parse_estimate("  CC      init/main.o") is None


def _fake_tree(root: Path) -> Path:
    tree = root / "linux"
    (tree / "init").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    (tree / "init" / "main.c").write_text("int main;\n")
    (tree / ".config").write_text(
        "CONFIG_MODULES=y\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\n"
    )
    return tree


def _age(tree: Path, seconds: float = 60) -> None:
    """Make the fake tree's sources look older than the build that follows (as they are
    when a person edits them, seconds at least before a build ends)."""
    past = time.time() - seconds
    for path in (tree / "Makefile", tree / "init" / "main.c"):
        os.utime(path, (past, past))


def _edit(path: Path, text: str) -> None:
    """Edit a file after the build (clearly after: file times tick coarser than ns)."""
    path.write_text(text)
    later = time.time() + 60
    os.utime(path, (later, later))


def test_estimate_from_config_then_objects_then_record(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path)
    objects, source = kbuild.estimate(tree)
    assert (objects, source) == (7, "estimated from the config: 3 options set")
    for name in ("main.o", "version.o", "built-in.a"):
        (tree / "init" / f".{name}.cmd").write_text("cmd\n")
    (tree / "init" / ".modules.order.cmd").write_text("cmd\n")
    assert kbuild.estimate(tree) == (3, "from the objects already in the tree")
    record = kbuild.write_record(tree)
    assert record.objects == 3
    assert kbuild.read_record(tree) == record
    assert kbuild.estimate(tree) == (3, "from the last build of this tree")


def test_changed_since_the_record(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path)
    assert kbuild.changed_since_record(tree) is None, "no record: nothing to compare"
    _age(tree)
    kbuild.write_record(tree)
    assert kbuild.changed_since_record(tree) is None
    (tree / ".config").write_text("CONFIG_A=y\n")  # fingerprinted on its own
    assert kbuild.changed_since_record(tree) is None
    _edit(tree / "init" / "main.c", "int main(void);\n")
    assert kbuild.changed_since_record(tree) == tree / "init" / "main.c"


def test_the_kernel_stage_is_skipped_until_the_tree_changes(tmp_path: Path) -> None:
    """The fingerprint the engine compares, run by run: first build, unchanged tree,
    an edited source file, the build after it, unchanged again."""
    tree = _fake_tree(tmp_path)
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(f'[kernel]\nsource = "tree"\ntree = "{tree}"\n')
    build = Build.for_profile(load_profile(profile_path), tmp_path / "work")

    def print_now() -> str:
        return fingerprint(build, KERNEL, KERNEL.plan(build), upstream={})

    def built() -> None:  # what the stage's last step does after make
        # the edit (dated ahead, see _edit) happened before this build, as it would
        for path in (tree / "init" / "main.c",):
            if path.stat().st_mtime > time.time():
                os.utime(path, (time.time() - 1, time.time() - 1))
        kbuild.write_record(tree)

    first = print_now()
    built()
    assert print_now() == first, "a build changes nothing the next run compares"
    assert print_now() == first
    _edit(tree / "init" / "main.c", "int main(void);\n")
    edited = print_now()
    assert edited != first, "an edited source runs the stage again"
    assert (tree / kbuild.CHANGED_NAME).read_text() == "init/main.c\n"
    built()
    assert print_now() == edited, "after that build, up to date again"
    (tree / ".config").write_text("CONFIG_MODULES=y\nCONFIG_A=y\n")
    assert print_now() not in (first, edited), "the config is fingerprinted too"


def test_plan_estimates_before_make(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path)
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(f'[kernel]\nsource = "tree"\ntree = "{tree}"\n')
    steps = KERNEL.plan(Build.for_profile(load_profile(profile_path), tmp_path / "work"))
    assert steps[0].describe.startswith("estimate the build")
    assert "-name '.*.cmd'" in steps[0].script_lines()[0]
    assert "bzImage" in steps[1].shell_line()


def test_kernel_core_modules_do_not_import_textual() -> None:
    import subprocess
    import sys

    code = (
        "import sys, livecd_tui.kernel.kbuild, livecd_tui.kernel.kernelfix, "
        "livecd_tui.kernel.kconfig_deps, "
        "livecd_tui.checks, livecd_tui.stages.kernel\n"
        "assert 'textual' not in sys.modules, 'the core imports textual'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
