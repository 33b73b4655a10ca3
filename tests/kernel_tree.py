"""A configured Linux 6.1 tree for the classic-method tests, cached outside the repository.

``prepare_classic_kernel_tree(cache_dir)`` unpacks Debian's ``linux-source-6.1`` tarball into
``cache_dir`` (once), runs ``make tinyconfig``, applies ``livecd_tui/data/classic-kernel.config``
with the kernel's own ``scripts/config``, runs ``make olddefconfig`` and checks that every
asked symbol stuck. It does not build the kernel: the product's kernel stage runs
``make -jN bzImage modules`` on the tree (incremental, so a tree built once costs seconds).

A stamp file in the tree holds the fragment's hash; when it matches and ``.config`` still
carries every asked symbol, nothing is done.

Run by hand: ``python tests/kernel_tree.py [--build] [CACHE_DIR]``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from livecd_tui.kernel.kconfig_deps import dependency_hint
from livecd_tui.kernel.kernelfix import config_args

SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
TREE_NAME = "linux-source-6.1"
FRAGMENT = Path(__file__).resolve().parent.parent / "livecd_tui" / "data" / "classic-kernel.config"
STAMP_NAME = ".livecd-tui-fragment.sha256"

_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


class KernelTreeError(RuntimeError):
    """The tree could not be prepared (missing tarball, make failed, symbols did not stick)."""


def default_cache_dir() -> Path:
    """``$LIVECD_TUI_TEST_CACHE`` or ``~/.cache/livecd-tui-tests``."""
    env = os.environ.get("LIVECD_TUI_TEST_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "livecd-tui-tests"


def read_fragment(path: Path = FRAGMENT) -> dict[str, str]:
    """The fragment's symbols (without the CONFIG_ prefix) and their asked values, in order."""
    wanted: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if m := _LINE.match(line):
            wanted[m.group(1)] = m.group(2).strip().strip('"')
        elif m := _UNSET.match(line):
            wanted[m.group(1)] = "n"
    return wanted


def _read_config(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(errors="replace").splitlines():
        if m := _LINE.match(line):
            values[m.group(1)] = m.group(2).strip('"')
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def missing_symbols(config: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    """Asked symbols whose value in ``config`` differs: name -> value found ("n" if absent)."""
    bad: dict[str, str] = {}
    for name, value in wanted.items():
        got = config.get(name, "n")
        if got != value:
            bad[name] = got
    return bad


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KernelTreeError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout[-2000:]}"
            f"\n{proc.stderr[-2000:]}"
        )


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _unpack(cache_dir: Path, tarball: Path) -> Path:
    tree = cache_dir / TREE_NAME
    if (tree / "Makefile").is_file():
        return tree
    if not tarball.is_file():
        raise KernelTreeError(f"{tarball} not found: apt-get install linux-source-6.1")
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir))
    try:
        _run(["tar", "-xf", str(tarball), "-C", str(tmp)], cwd=cache_dir)
        if tree.exists():
            shutil.rmtree(tree)
        (tmp / TREE_NAME).rename(tree)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def prepare_classic_kernel_tree(
    cache_dir: Path | None = None,
    fragment: Path = FRAGMENT,
    tarball: Path = SOURCE_TARBALL,
) -> Path:
    """Unpack, configure and check the classic test kernel tree; return the tree's path.

    Raises :class:`KernelTreeError` listing the symbols that did not stick, each with a hint
    at its direct dependencies.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    wanted = read_fragment(fragment)
    digest = hashlib.sha256(fragment.read_bytes()).hexdigest()
    with _locked(cache_dir):
        tree = _unpack(cache_dir, tarball)
        stamp = tree / STAMP_NAME
        config_path = tree / ".config"
        if (
            stamp.is_file()
            and stamp.read_text().strip() == digest
            and not missing_symbols(_read_config(config_path), wanted)
        ):
            return tree
        stamp.unlink(missing_ok=True)
        _run(["make", "-s", "tinyconfig"], cwd=tree)
        _run(["scripts/config", "--file", ".config", *config_args(wanted)], cwd=tree)
        _run(["make", "-s", "olddefconfig"], cwd=tree)
        config = _read_config(config_path)
        bad = missing_symbols(config, wanted)
        if bad:
            lines = [
                f"  {name}: asked {wanted[name]}, got {got}; {dependency_hint(tree, name, config)}"
                for name, got in bad.items()
            ]
            raise KernelTreeError(
                f"{len(bad)} symbol(s) of {fragment.name} did not stick after olddefconfig:\n"
                + "\n".join(lines)
            )
        stamp.write_text(digest + "\n")
        return tree


def tinyconfig(tree: Path, dest: Path) -> Path:
    """Write what ``make tinyconfig`` makes into ``dest`` (a ``.config`` outside the tree),
    leaving the tree's own ``.config`` alone.

    6.1's ``tinyconfig`` merges its fragments into the tree's ``.config`` whatever
    ``KCONFIG_CONFIG`` says, so this does the same in one step: ``allnoconfig`` with the
    fragments as ``KCONFIG_ALLCONFIG``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fragment = dest.parent / "tiny.fragment"
    fragment.write_text(
        "".join(
            (tree / part).read_text()
            for part in (
                "kernel/configs/tiny-base.config",
                "kernel/configs/tiny.config",
                "arch/x86/configs/tiny.config",
            )
        )
    )
    env = {
        **os.environ,
        "KCONFIG_CONFIG": str(dest.resolve()),
        "KCONFIG_ALLCONFIG": str(fragment.resolve()),
    }
    proc = subprocess.run(
        ["make", "-s", "-C", str(tree), "allnoconfig"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise KernelTreeError(f"allnoconfig failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    fragment.unlink()
    return dest


def built_kernel(tree: Path) -> Path | None:
    """The tree's ``bzImage`` if it was built after the current ``.config``, else None."""
    image = tree / "arch" / "x86" / "boot" / "bzImage"
    config = tree / ".config"
    if image.is_file() and config.is_file() and image.stat().st_mtime >= config.stat().st_mtime:
        return image
    return None


def build_kernel(tree: Path, jobs: int | None = None) -> Path:
    """``make -jN bzImage`` in the tree (what the product's kernel stage does); the image."""
    _run(["make", f"-j{jobs or os.cpu_count() or 1}", "bzImage"], cwd=tree)
    image = built_kernel(tree)
    if image is None:
        raise KernelTreeError(f"make bzImage ran but no fresh bzImage in {tree}")
    return image


def built_classic_kernel(cache_dir: Path | None = None) -> Path:
    """The classic test kernel's ``bzImage``: the tree prepared and built once (about 3
    minutes on 2 cores), under the cache's lock so that parallel runs build it once."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tree = prepare_classic_kernel_tree(cache_dir)
    with _locked(cache_dir):
        return built_kernel(tree) or build_kernel(tree)


if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--build"]
    where = Path(argv[0]) if argv else None
    prepared = prepare_classic_kernel_tree(where)
    print(prepared)
    if "--build" in sys.argv[1:]:
        print(build_kernel(prepared))
