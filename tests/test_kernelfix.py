"""The kernel-config fix against Debian's real linux-source-6.1 (tests/kernel_tree.py).

Every test works on copies of configs (``make tinyconfig`` into a temporary dir, or a
scratch tree of symlinks for the command line): the shared cached tree's ``.config`` is
checked unchanged afterwards. Nothing is built; config operations take seconds.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from livecd_tui.kernel import kconfig, kernelfix
from livecd_tui.kernel.kconfig import Requirement, parse_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_tree

ROOT = Path(__file__).resolve().parent.parent
#: The tree's files a careless fix would change.
WATCHED = (".config", ".config.old", "scripts/kconfig/conf", "include/config/auto.conf")


def _state(tree: Path) -> dict[str, tuple[str, int] | None]:
    out: dict[str, tuple[str, int] | None] = {}
    for name in WATCHED:
        path = tree / name
        out[name] = (
            (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            if path.is_file()
            else None
        )
    return out


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    if not kernel_tree.SOURCE_TARBALL.is_file():
        pytest.skip(f"{kernel_tree.SOURCE_TARBALL} not installed")
    prepared = kernel_tree.prepare_classic_kernel_tree(kernel_tree.default_cache_dir())
    before = _state(prepared)
    yield prepared
    assert _state(prepared) == before, "the shared kernel tree was changed"


@pytest.fixture(scope="module")
def tiny_text(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return kernel_tree.tinyconfig(tree, tmp_path_factory.mktemp("tiny") / ".config").read_text()


@pytest.fixture
def tiny(tiny_text: str, tmp_path: Path) -> Path:
    config = tmp_path / "config" / ".config"
    config.parent.mkdir()
    config.write_text(tiny_text)
    return config


CLASSIC = kconfig.requirements("classic", "classic", "xz", "gzip", ["cdrom", "sata"], False, 16)
MODERN = kconfig.requirements("initramfs", "overlay", "zstd", "zstd", ["cdrom"], False, 8)


def _bad(findings: list[kconfig.Finding]) -> list[tuple[str, str]]:
    return [(f.requirement.symbol, f.message) for f in findings if f.state not in ("ok", "module")]


def test_tinyconfig_fixed_until_the_classic_requirements_hold(tree: Path, tiny: Path) -> None:
    original = tiny.read_text()
    before = kconfig.check(parse_config(original), CLASSIC, "6.1.0")
    assert len(_bad(before)) > 20, "tinyconfig lacks almost everything"

    plan = kernelfix.plan_fix(tree, CLASSIC, config=tiny)
    assert tiny.read_text() == original, "planning writes nothing"
    asked = {a.symbol: a for a in plan.asks}
    assert asked["BLK_DEV_RAM"].value == "y" and not asked["BLK_DEV_RAM"].dependency
    assert asked["BLK_DEV_RAM_SIZE"].value == "16384"
    # dependencies found in the Kconfig files, each saying who needs it
    for dependency, needed_by in (
        ("BLOCK", None),
        ("BLK_DEV", "BLK_DEV_RAM"),
        ("MISC_FILESYSTEMS", None),
        ("SHMEM", "TMPFS"),
        ("PCI", "ATA_PIIX"),
    ):
        assert asked[dependency].dependency, dependency
        if needed_by:
            assert asked[dependency].why == f"{needed_by} depends on it"
    assert plan.rounds >= 2
    assert not plan.not_stuck and not plan.unfixable
    changed = {c.symbol: c for c in plan.changes}
    assert changed["BLK_DEV_RAM"].old == "n" and changed["BLK_DEV_RAM"].new == "y"
    assert changed["BLK_DEV_RAM"].asked is not None
    assert plan.other_changes, "olddefconfig's own consequences are listed too"
    summary = "\n".join(plan.summary())
    assert "BLK_DEV_RAM" in summary and "the classic initrd is a RAM disk" in summary
    assert "BLK_DEV_RAM depends on it" in summary

    result = kernelfix.apply_fix(plan, CLASSIC)
    assert result.ok, (result.not_stuck, _bad(result.findings))
    assert result.backup == tiny.with_name(".config.old")
    assert result.backup.read_text() == original, ".config.old is the config before the fix"
    fixed = parse_config(tiny.read_text())
    assert tiny.read_text() == plan.result, "apply does exactly what the plan showed"
    assert not _bad(kconfig.check(fixed, CLASSIC, "6.1.0"))
    # and a second plan has nothing left to do
    again = kernelfix.plan_fix(tree, CLASSIC, config=tiny)
    assert not again.asks and not again.changes


def test_modules_where_a_module_is_enough(tree: Path, tiny: Path) -> None:
    plan = kernelfix.plan_fix(tree, MODERN, config=tiny, modules=True)
    asked = {a.symbol: a.value for a in plan.asks}
    assert asked["SQUASHFS"] == "m" and asked["ISO9660_FS"] == "m"
    assert asked["SQUASHFS_ZSTD"] == "y", "a bool inside squashfs"
    assert asked["DEVTMPFS"] == "y" and asked["MODULES"] == "y"
    result = kernelfix.apply_fix(plan, MODERN)
    assert result.ok, (result.not_stuck, _bad(result.findings))
    by = {f.requirement.symbol: f.state for f in result.findings}
    assert by["SQUASHFS"] == "module" and by["DEVTMPFS"] == "ok"


def test_says_what_did_not_stick_and_why(tree: Path, tiny: Path) -> None:
    reqs = [
        Requirement("EXT2_FS", "y", "the initrd is ext2"),
        Requirement("EXT4_FS", "y", "disks"),
        Requirement("EXT4_USE_FOR_EXT2", "y", "asked on purpose against EXT2_FS"),
        Requirement("LIVECD_NO_SUCH_OPTION", "y", "a symbol no kernel has"),
    ]
    plan = kernelfix.plan_fix(tree, reqs, config=tiny)
    stuck = {n.symbol: n for n in plan.not_stuck}
    assert set(stuck) == {"EXT4_USE_FOR_EXT2", "LIVECD_NO_SUCH_OPTION"}
    assert "depends on EXT2_FS=n [EXT2_FS=y]" in stuck["EXT4_USE_FOR_EXT2"].hint
    assert "fs/ext4/Kconfig" in stuck["EXT4_USE_FOR_EXT2"].hint
    assert "not in this kernel's Kconfig" in stuck["LIVECD_NO_SUCH_OPTION"].hint
    result = kernelfix.apply_fix(plan, reqs)
    assert not result.ok
    assert {n.symbol for n in result.not_stuck} == set(stuck)
    assert parse_config(tiny.read_text())["EXT2_FS"] == "y"


def test_a_linux_7_kernel_is_refused_for_classic_not_fixed(tree: Path, tiny: Path) -> None:
    plan = kernelfix.plan_fix(tree, CLASSIC, release="7.0.0", config=tiny)
    gone = [f for f in plan.unfixable if f.requirement.symbol == "BLK_DEV_INITRD"]
    assert gone and "7.0 removed the classic /linuxrc" in gone[0].message
    # not asked for itself (RD_GZIP may still pull it in: initramfs needs it on 7.0 too)
    asked = {a.symbol: a for a in plan.asks}
    assert "BLK_DEV_INITRD" not in asked or asked["BLK_DEV_INITRD"].dependency


def test_apply_refuses_a_config_changed_since_the_plan(tree: Path, tiny: Path) -> None:
    plan = kernelfix.plan_fix(tree, MODERN, config=tiny)
    tiny.write_text(tiny.read_text() + "# edited meanwhile\n")
    with pytest.raises(kernelfix.FixError, match="changed since"):
        kernelfix.apply_fix(plan, MODERN)


def test_errors_name_the_command(tmp_path: Path) -> None:
    with pytest.raises(kernelfix.FixError, match="configure the tree first"):
        kernelfix.plan_fix(tmp_path, MODERN)
    (tmp_path / ".config").write_text("")
    with pytest.raises(kernelfix.FixError, match="not a kernel source tree"):
        kernelfix.configure(tmp_path, tmp_path / ".config", {"A": "y"})
    with pytest.raises(kernelfix.FixError, match=r"false .*exit code 1"):
        kernelfix.run_command(["false"], {})


def test_config_args_and_argv(tmp_path: Path) -> None:
    assert kernelfix.config_args({"A": "y", "B": "m", "C": "n", "D": "16", "E": "x y"}) == [
        "--enable",
        "A",
        "--module",
        "B",
        "--disable",
        "C",
        "--set-val",
        "D",
        "16",
        "--set-str",
        "E",
        "x y",
    ]
    assert kernelfix.menuconfig_argv(tmp_path) == ["make", "-C", str(tmp_path), "menuconfig"]
    assert kernelfix.menuconfig_argv(tmp_path, "nconfig")[-1] == "nconfig"
    with pytest.raises(ValueError):
        kernelfix.menuconfig_argv(tmp_path, "xconfig")


def test_tree_version(tree: Path) -> None:
    assert kernelfix.tree_version(tree) is not None
    assert kernelfix.tree_version(tree).startswith("6.1.")  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def scratch_tree(tree: Path, tiny_text: str, tmp_path: Path) -> Path:
    """A tree of symlinks to the real one with its own (tinyconfig) .config: what the
    command line changes is ``TREE/.config``, so the real tree must not be TREE."""
    scratch = tmp_path / "linux"
    scratch.mkdir()
    for entry in tree.iterdir():
        if not entry.name.startswith((".config", ".livecd-tui")):
            (scratch / entry.name).symlink_to(entry)
    (scratch / ".config").write_text(tiny_text)
    return scratch


def _livecd(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        timeout=600,
    )


def test_kernel_fix_command(scratch_tree: Path, tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[kernel]\nsource = "tree"\ntree = "{scratch_tree}"\n'
        '[kernel.drivers]\npreset = "minimal"\n'
    )
    original = (scratch_tree / ".config").read_text()

    dry = _livecd("kernel-fix", profile, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "BLK_DEV_INITRD" in dry.stdout and "SHMEM" in dry.stdout
    assert "TMPFS depends on it" in dry.stdout
    assert (scratch_tree / ".config").read_text() == original

    refused = _livecd("kernel-fix", profile)  # stdin is not a terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert (scratch_tree / ".config").read_text() == original

    done = _livecd("kernel-fix", profile, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "meets every requirement" in done.stdout
    assert (scratch_tree / ".config.old").read_text() == original
    assert not (scratch_tree / ".config").is_symlink()

    again = _livecd("kernel-fix", profile, "--yes")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    check = _livecd("check", profile)
    assert "missing" not in check.stdout.split("Kernel config:")[1]


def test_kernel_fix_needs_a_tree() -> None:
    result = _livecd("kernel-fix", "demo", "--dry-run")
    assert result.returncode == 1 and 'kernel.source = "tree"' in result.stderr
