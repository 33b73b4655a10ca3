"""File operations as data: the interpreter and the bash renderer make the same tree."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from livecd_tui import fileops
from livecd_tui.engine import StepFailed


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``top``: kind, mode, content or link text, a file's mtime."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)))
            else:
                found[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), path.read_bytes(), st.st_mtime)
    return found


def both_ways(
    tmp_path: Path, make_ops: Callable[[Path], list[fileops.Op]]
) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]]]:
    """The ops run by the interpreter into one tree and as bash into another."""
    trees = []
    for how in ("python", "bash"):
        tree = tmp_path / how
        tree.mkdir()
        ops = make_ops(tree)
        if how == "python":
            fileops.run(ops, lambda _line: None)
        else:
            script = "set -euo pipefail\n" + "\n".join(fileops.render(ops)) + "\n"
            subprocess.run(["bash", "-c", script], check=True)
        trees.append(snapshot(tree))
    return trees[0], trees[1]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "rules.d" / "sub").mkdir(parents=True)
    (src / "rules.d" / "50-a.rules").write_text("a\n")
    (src / "rules.d" / "link").symlink_to("50-a.rules")
    (src / "prog").write_bytes(b"\x7fELF not really\n")
    os.chmod(src / "prog", 0o751)
    os.utime(src / "prog", (1_600_000_000, 1_600_000_000))
    return src


def test_the_interpreter_and_the_script_make_the_same_tree(tmp_path: Path, source: Path) -> None:
    def ops(tree: Path) -> list[fileops.Op]:
        (tree / "old").mkdir()
        (tree / "old" / "x").write_text("x")
        (tree / "bin").mkdir()
        (tree / "bin" / "sh").symlink_to("elsewhere")
        (tree / "bin" / "same").symlink_to("busybox")
        return [
            fileops.Remove(tree / "old"),
            fileops.Mkdir(tree / "a"),
            fileops.Mkdir(tree / "b" / "c"),
            fileops.Mkdir(tree / "private", 0o700),
            fileops.Mkdir(tree / "sticky", 0o1777),
            fileops.Copy(source / "prog", tree / "a" / "prog"),
            fileops.Chmod(tree / "a" / "prog", 0o755),
            fileops.CopyTree(source / "rules.d", tree / "lib" / "rules.d"),
            *(fileops.Symlink(tree / "bin" / name, "busybox") for name in ("ls", "[", "same")),
            fileops.Symlink(tree / "bin" / "sh", "bash"),
            fileops.WriteFile(tree / "a" / "conf", b"A='1'\nEOF\n"),
            fileops.WriteFile(tree / "a" / "empty", b""),
            fileops.WriteFile(tree / "a" / "secret", b"\x00\xff bytes", 0o640),
            fileops.Chown(tree / "a" / "secret", os.getuid(), os.getgid()),
            fileops.PinTimes(tree, 1_700_000_000),
        ]

    by_python, by_bash = both_ways(tmp_path, ops)
    assert by_python == by_bash
    assert "old" not in by_python
    assert by_python["bin/sh"] == ("link", "bash")
    assert by_python["bin/["] == ("link", "busybox")
    assert by_python["lib/rules.d/link"] == ("link", "50-a.rules")
    assert by_python["private"][1] == "0o700"
    assert by_python["a/secret"][1:3] == ("0o640", b"\x00\xff bytes")
    assert by_python["a/prog"][1:3] == ("0o755", b"\x7fELF not really\n")


def test_install_recreates_links_and_dir_modes(tmp_path: Path) -> None:
    """fileops.install as Python and as bash: the same tree, the links on the way and the
    source's dir modes included."""
    root = tmp_path / "root"
    (root / "usr" / "lib" / "x").mkdir(parents=True)
    os.chmod(root / "usr" / "lib", 0o750)
    (root / "lib").symlink_to("usr/lib")
    (root / "usr" / "lib" / "x" / "libz.so.1.2").write_bytes(b"z")
    (root / "usr" / "lib" / "x" / "libz.so.1").symlink_to("libz.so.1.2")
    by_python, by_bash = both_ways(
        tmp_path, lambda tree: list(fileops.install(root, "/lib/x/libz.so.1", tree))
    )
    assert by_python == by_bash
    assert {k: v[:3] for k, v in by_python.items()} == {
        "lib": ("link", "usr/lib"),
        "usr": ("dir", "0o755"),
        "usr/lib": ("dir", "0o750"),
        "usr/lib/x": ("dir", "0o755"),
        "usr/lib/x/libz.so.1": ("link", "libz.so.1.2"),
        "usr/lib/x/libz.so.1.2": ("file", "0o644", b"z"),
    }


def test_a_link_in_the_way_is_replaced_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    src = tmp_path / "src"
    src.write_text("new")

    def ops(tree: Path) -> list[fileops.Op]:
        (tree / "copied").symlink_to(outside)
        (tree / "written").symlink_to(outside)
        return [fileops.Copy(src, tree / "copied"), fileops.WriteFile(tree / "written", b"new\n")]

    by_python, by_bash = both_ways(tmp_path, ops)
    assert outside.read_text() == "keep"
    assert by_python["copied"][0] == by_python["written"][0] == "file"
    assert {k: v[:3] for k, v in by_python.items()} == {k: v[:3] for k, v in by_bash.items()}


def test_a_failure_stops_both_with_the_same_message(tmp_path: Path) -> None:
    ops: list[fileops.Op] = [
        fileops.Mkdir(tmp_path / "made"),
        fileops.Fail("busybox not found at /x", "install it", "opt.key"),
        fileops.Mkdir(tmp_path / "never"),
    ]
    with pytest.raises(StepFailed) as err:
        fileops.run(ops, lambda _line: None)
    assert (str(err.value), err.value.hint, err.value.option) == (
        "busybox not found at /x",
        "install it",
        "opt.key",
    )
    assert not (tmp_path / "never").exists()
    (tmp_path / "made").rmdir()
    run = subprocess.run(
        ["bash", "-c", "\n".join(fileops.render(ops))], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert run.stderr == "livecd-build: busybox not found at /x (hint: install it)\n"
    assert (tmp_path / "made").is_dir() and not (tmp_path / "never").exists()


def test_a_plan_stops_where_the_run_would_and_refuses_what_names_an_option(tmp_path: Path) -> None:
    def planner(fault: StepFailed) -> Callable[[object, fileops.Log], Iterator[fileops.Op]]:
        def plan(_build: object, _log: fileops.Log) -> Iterator[fileops.Op]:
            yield fileops.Mkdir(tmp_path / "a")
            raise fault

        return plan

    ops = fileops.planned(planner(StepFailed("no bash", hint="install bash")), None)  # type: ignore[arg-type]
    assert ops == [fileops.Mkdir(tmp_path / "a"), fileops.Fail("no bash", "install bash")]
    with pytest.raises(StepFailed, match="bad module"):
        fileops.planned(planner(StepFailed("bad module", option="kernel.extra_modules")), None)  # type: ignore[arg-type]


def test_a_deferred_step_is_the_scripts_alone(tmp_path: Path) -> None:
    op = fileops.Deferred("modules of the kernel the script builds", ("echo found",))
    assert fileops.render([op]) == ["# modules of the kernel the script builds", "echo found"]
    with pytest.raises(StepFailed, match="only the exported script"):
        fileops.run([op], lambda _line: None)
