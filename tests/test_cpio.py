"""livecd_tui.cpio read back by GNU cpio, bsdtar (libarchive), gzip and the kernel's writer.

Three independent readers agree on what we wrote; when the kernel's own ``gen_init_cpio`` is
at hand (a cached kernel source tree, or on PATH) the archive must even be byte-identical to
its output for the same list.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecd_tui.cpio import DeviceNode, write_newc

MTIME = 1_700_000_000  # 2023-11-14
UNICODE = "naïve-ünïcödé-日本.txt"
NODES = (
    DeviceNode("dev/console", "c", 5, 1),
    DeviceNode("/dev/null", "c", 1, 3, 0o666),
    DeviceNode("dev/sda", "b", 8, 0, 0o660),
)

needs = {
    tool: pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed")
    for tool in ("cpio", "bsdtar", "gzip")
}


# (relative path, kind, mode, content): kind "d" dir, "f" file, "l" symlink (content = target),
# "p" fifo.
TREE: list[tuple[str, str, int, bytes]] = [
    ("bin", "d", 0o755, b""),
    ("bin/busybox", "f", 0o755, b"\x7fELF fake busybox" * 100),
    ("bin/sh", "l", 0o777, b"busybox"),
    ("bin/mount", "l", 0o777, b"/bin/busybox"),
    ("dev", "d", 0o755, b""),
    ("etc", "d", 0o755, b""),
    ("etc/empty", "f", 0o644, b""),
    ("etc/secret", "f", 0o600, b"s3cret\n"),
    ("init", "f", 0o755, b"#!/bin/sh\nexec /bin/sh\n"),
    ("usr", "d", 0o755, b""),
    ("usr/share", "d", 0o755, b""),
    ("usr/share/deep", "d", 0o755, b""),
    ("usr/share/deep/nested", "d", 0o755, b""),
    ("usr/share/deep/nested/file.txt", "f", 0o644, b"deep\n" * 3),
    (UNICODE, "f", 0o644, b"unicode name\n"),
    ("odd", "f", 0o4755, b"123"),  # setuid kept; size not a multiple of 4
    ("sbin", "d", 0o750, b""),
    ("run", "d", 0o755, b""),
    ("run/fifo", "p", 0o644, b""),
]


def build_tree(root: Path, *, reverse: bool = False) -> Path:
    """Create TREE under ``root``; ``reverse`` creates it in another order (other inodes,
    other readdir order) to show the archive does not depend on either."""
    root.mkdir(parents=True)
    items = sorted(TREE, key=lambda item: item[0].count("/"))  # parents first
    dirs = [i for i in items if i[1] == "d"]
    others = [i for i in TREE if i[1] != "d"]
    if reverse:
        dirs.sort(key=lambda item: (item[0].count("/"), [-ord(c) for c in item[0]]))
        others.reverse()
    for rel, _, _, _ in dirs:
        (root / rel).mkdir()
    for rel, kind, mode, content in others:
        path = root / rel
        if kind == "f":
            path.write_bytes(content)
            path.chmod(mode)
        elif kind == "l":
            os.symlink(content, path)
        elif kind == "p":
            os.mkfifo(path)
            path.chmod(mode)
    for rel, _, mode, _ in reversed(dirs):
        (root / rel).chmod(mode)
    return root


def archive(root: Path, nodes: tuple[DeviceNode, ...] = NODES, mtime: int = MTIME) -> bytes:
    buf = io.BytesIO()
    write_newc(root, buf, mtime=mtime, nodes=nodes)
    return buf.getvalue()


def parse_newc(data: bytes) -> list[dict[str, object]]:
    """A strict little newc reader: checks magic, alignment and the trailer."""
    names = [
        "ino",
        "mode",
        "uid",
        "gid",
        "nlink",
        "mtime",
        "filesize",
        "devmajor",
        "devminor",
        "rdevmajor",
        "rdevminor",
        "namesize",
        "check",
    ]
    entries: list[dict[str, object]] = []
    pos = 0
    while True:
        assert pos % 4 == 0
        assert data[pos : pos + 6] == b"070701", data[pos : pos + 16]
        fields = {n: int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i, n in enumerate(names)}
        pos += 110
        name = data[pos : pos + fields["namesize"] - 1]
        assert data[pos + fields["namesize"] - 1] == 0
        pos += fields["namesize"]
        assert data[(pos - fields["namesize"] - 110) + 110 + fields["namesize"] : pos] == b""
        pad = -pos % 4
        assert data[pos : pos + pad] == b"\0" * pad
        pos += pad
        body = data[pos : pos + fields["filesize"]]
        pos += fields["filesize"]
        pad = -pos % 4
        assert data[pos : pos + pad] == b"\0" * pad
        pos += pad
        if name == b"TRAILER!!!":
            assert data[pos:] == b"\0" * (len(data) - pos)
            assert len(data) % 512 == 0
            return entries
        entries.append({"name": name.decode(), "body": body, **fields})


# -- structure --------------------------------------------------------------------------------


def test_headers(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    entries = parse_newc(archive(root))
    names = [e["name"] for e in entries]
    assert names == sorted(names, key=lambda n: os.fsencode(str(n)))
    assert "." not in names and not any(str(n).startswith("/") for n in names)
    expected = {
        os.path.relpath(os.path.join(d, f), root)
        for d, dirs, files in os.walk(root)
        for f in dirs + files
    } | {"dev/console", "dev/null", "dev/sda"}
    assert set(names) == expected
    for e in entries:
        assert e["uid"] == 0 and e["gid"] == 0 and e["mtime"] == MTIME
        assert e["check"] == 0
        name = str(e["name"])
        parent = os.path.dirname(name)
        if parent:
            assert names.index(parent) < names.index(name)  # directory before its contents
        mode = int(str(e["mode"]))
        if stat.S_ISDIR(mode):
            assert e["nlink"] == 2
        else:
            assert e["nlink"] == 1
    assert len({e["ino"] for e in entries}) == len(entries)
    by = {e["name"]: e for e in entries}
    assert by["bin/sh"]["body"] == b"busybox"
    assert by["bin/mount"]["body"] == b"/bin/busybox"
    assert by["bin/busybox"]["body"] == (root / "bin/busybox").read_bytes()
    assert by["etc/empty"]["filesize"] == 0
    for rel in ("bin/busybox", "etc/secret", "init", "sbin", UNICODE, "run/fifo", "bin/sh"):
        assert by[rel]["mode"] == os.lstat(root / rel).st_mode, rel
    assert by["dev/console"]["mode"] == stat.S_IFCHR | 0o600
    assert (by["dev/sda"]["rdevmajor"], by["dev/sda"]["rdevminor"]) == (8, 0)


def test_hard_links_are_full_copies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").write_bytes(b"same inode")
    os.link(root / "a", root / "b")
    entries = {e["name"]: e for e in parse_newc(archive(root, nodes=()))}
    assert entries["a"]["body"] == entries["b"]["body"] == b"same inode"
    assert entries["a"]["nlink"] == entries["b"]["nlink"] == 1
    assert entries["a"]["ino"] != entries["b"]["ino"]


def test_empty_tree_is_just_a_trailer(tmp_path: Path) -> None:
    data = archive(tmp_path, nodes=())
    assert parse_newc(data) == []
    assert len(data) == 512


# -- other readers ------------------------------------------------------------------------------


@needs["cpio"]
def test_cpio_lists_it(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    (tmp_path / "a.cpio").write_bytes(archive(root))
    out = subprocess.run(
        ["cpio", "-itv", "--numeric-uid-gid", "-F", str(tmp_path / "a.cpio")],
        capture_output=True,
        check=True,
    ).stdout.decode()
    lines = {line.split()[-1] if " -> " not in line else line.split()[-3]: line.split()
             for line in out.splitlines()}  # fmt: skip
    assert UNICODE in lines and "usr/share/deep/nested/file.txt" in lines
    for words in lines.values():
        assert words[2:4] == ["0", "0"], words  # uid gid
    console = lines["dev/console"]
    assert console[0] == "crw-------" and console[4:6] == ["5,", "1"]
    assert lines["dev/null"][0] == "crw-rw-rw-" and lines["dev/null"][4:6] == ["1,", "3"]
    assert lines["dev/sda"][0] == "brw-rw----" and lines["dev/sda"][4:6] == ["8,", "0"]
    assert lines["bin/sh"][0].startswith("l") and lines["bin/sh"][-1] == "busybox"
    assert lines["run/fifo"][0].startswith("p")
    assert lines["bin/busybox"][0] == "-rwxr-xr-x"
    assert lines["sbin"][0] == "drwxr-x---"


@needs["bsdtar"]
def test_bsdtar_lists_it(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    (tmp_path / "a.cpio").write_bytes(archive(root))
    names = subprocess.run(
        ["bsdtar", "-tf", str(tmp_path / "a.cpio")], capture_output=True, check=True, text=True
    ).stdout.splitlines()
    assert names == [e["name"] for e in parse_newc((tmp_path / "a.cpio").read_bytes())]
    verbose = subprocess.run(
        ["bsdtar", "-tvf", str(tmp_path / "a.cpio"), "--numeric-owner"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    console = next(line for line in verbose.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,1" in console.replace(" ", "")
    for line in verbose.splitlines():
        assert line.split()[2:4] == ["0", "0"], line


@needs["cpio"]
def test_extract_with_cpio_and_compare(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    (tmp_path / "a.cpio").write_bytes(archive(root, nodes=()))  # mknod may need privileges
    dest = tmp_path / "out"
    dest.mkdir()
    with open(tmp_path / "a.cpio", "rb") as f:
        subprocess.run(
            ["cpio", "-idm", "--no-absolute-filenames", "--quiet"], stdin=f, cwd=dest, check=True
        )
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            src = Path(dirpath) / name
            rel = src.relative_to(root)
            got = dest / rel
            s, g = os.lstat(src), os.lstat(got)
            assert stat.S_IFMT(s.st_mode) == stat.S_IFMT(g.st_mode), rel
            assert stat.S_IMODE(s.st_mode) == stat.S_IMODE(g.st_mode) or stat.S_ISLNK(s.st_mode), (
                rel
            )
            if stat.S_ISREG(s.st_mode):
                assert src.read_bytes() == got.read_bytes(), rel
                assert int(g.st_mtime) == MTIME, rel
            if stat.S_ISLNK(s.st_mode):
                assert os.readlink(src) == os.readlink(got), rel


@needs["gzip"]
def test_gzip_accepts_it(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    gz = tmp_path / "initrd.img"
    gz.write_bytes(gzip.compress(archive(root), mtime=0))
    subprocess.run(["gzip", "-t", str(gz)], check=True)
    assert gzip.decompress(gz.read_bytes()) == archive(root)


# -- reproducibility --------------------------------------------------------------------------


def test_deterministic(tmp_path: Path) -> None:
    one = build_tree(tmp_path / "one")
    first = archive(one)
    assert archive(one) == first
    for path in [one, *one.rglob("*")]:
        os.utime(path, (123456, 654321), follow_symlinks=False)
    assert archive(one) == first
    # The same tree made in another order (other inode numbers, other readdir order).
    two = build_tree(tmp_path / "two", reverse=True)
    assert [os.stat(one / "init").st_ino] != [os.stat(two / "init").st_ino]
    assert archive(two) == first
    # ...while the mtime argument does matter, as do the nodes.
    assert archive(one, mtime=MTIME + 1) != first
    assert archive(one, nodes=NODES[:1]) != first


# -- errors -------------------------------------------------------------------------------------


def test_node_errors(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "root")
    with pytest.raises(ValueError, match="not a directory"):
        archive(root, nodes=(DeviceNode("nodir/console", "c", 5, 1),))
    with pytest.raises(ValueError, match="clashes"):
        archive(root, nodes=(DeviceNode("init", "c", 5, 1),))
    with pytest.raises(ValueError, match="bad device node path"):
        archive(root, nodes=(DeviceNode("dev/../x", "c", 5, 1),))
    # A node at the top level needs no parent directory.
    names = [e["name"] for e in parse_newc(archive(root, nodes=(DeviceNode("tty", "c", 5, 0),)))]
    assert "tty" in names


# -- the kernel's own writer as oracle ------------------------------------------------------------


def find_gen_init_cpio(tmp_path: Path, tree: Path) -> str:
    """gen_init_cpio from PATH, or built from the classic test kernel's source tree."""
    tool = os.environ.get("GEN_INIT_CPIO") or shutil.which("gen_init_cpio")
    if tool:
        return tool
    binary = tmp_path / "gen_init_cpio"
    subprocess.run(
        ["gcc", "-O2", "-o", str(binary), str(tree / "usr" / "gen_init_cpio.c")], check=True
    )
    return str(binary)


def gen_init_cpio(tool: str, root: Path, nodes: tuple[DeviceNode, ...], work: Path) -> bytes:
    """Archive ``root`` + ``nodes`` with the kernel's tool, listing entries in our order."""
    spec: list[tuple[str, str]] = []  # (name, line)
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        st_ = path.lstat()
        perm = f"{stat.S_IMODE(st_.st_mode):o}"
        if stat.S_ISLNK(st_.st_mode):
            spec.append((rel, f"slink /{rel} {os.readlink(path)} 777 0 0"))
        elif stat.S_ISDIR(st_.st_mode):
            spec.append((rel, f"dir /{rel} {perm} 0 0"))
        elif stat.S_ISFIFO(st_.st_mode):
            spec.append((rel, f"pipe /{rel} {perm} 0 0"))
        else:
            os.utime(path, (MTIME, MTIME))  # gen_init_cpio takes files' own mtimes
            spec.append((rel, f"file /{rel} {path} {perm} 0 0"))
    for node in nodes:
        rel = node.path.strip("/")
        spec.append((rel, f"nod /{rel} {node.mode:o} 0 0 {node.kind} {node.major} {node.minor}"))
    spec.sort(key=lambda item: os.fsencode(item[0]))
    (work / "list").write_text("".join(line + "\n" for _, line in spec))
    return subprocess.run(
        [tool, "-t", str(MTIME), str(work / "list")], capture_output=True, check=True
    ).stdout


def test_same_as_gen_init_cpio(tmp_path: Path, classic_tree: Path) -> None:
    tool = find_gen_init_cpio(tmp_path, classic_tree)
    root = build_tree(tmp_path / "root")
    # Two deliberate differences. gen_init_cpio stores a symlink's target with its C string's
    # NUL (filesize = len + 1); GNU cpio and libarchive store the bare target, which we follow
    # (the kernel accepts both). And it gives fifos/sockets nlink 2 (they share its "dir"
    # code); we say 1, which keeps the kernel from even considering them as hard links.
    # Everything else, header fields included, is identical.
    ours = parse_newc(archive(root))
    theirs = parse_newc(gen_init_cpio(tool, root, NODES, tmp_path))
    for entry in theirs:
        mode = int(str(entry["mode"]))
        if stat.S_ISLNK(mode):
            body = entry["body"]
            assert isinstance(body, bytes) and body.endswith(b"\0")
            entry["body"] = body[:-1]
            entry["filesize"] = len(body) - 1
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            assert entry["nlink"] == 2
            entry["nlink"] = 1
    assert ours == theirs
    # Without symlinks and fifos the archives are byte-identical, padding and trailer included.
    for rel, kind, _, _ in TREE:
        if kind in ("l", "p"):
            (root / rel).unlink()
    assert archive(root) == gen_init_cpio(tool, root, NODES, tmp_path)


# -- property: any tree of names round-trips -----------------------------------------------------

name_text = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="/\0", exclude_categories=("Cs", "Cc")
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(
        st.lists(name_text, min_size=1, max_size=3).map(tuple), st.binary(max_size=64), max_size=8
    )
)
def test_roundtrip_property(tmp_path_factory: pytest.TempPathFactory, files: dict) -> None:
    root = tmp_path_factory.mktemp("prop")
    expected: dict[str, bytes] = {}
    for parts, body in files.items():
        *dirs, leaf = parts
        parent = root.joinpath(*dirs)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            (parent / leaf).write_bytes(body)
        except (FileExistsError, NotADirectoryError, IsADirectoryError, OSError):
            continue  # a name used both as a dir and a file: skip that one
        expected["/".join(parts)] = body
    data = archive(root, nodes=())
    entries = parse_newc(data)
    names = [str(e["name"]) for e in entries]
    assert names == sorted(names, key=os.fsencode)
    got = {str(e["name"]): e["body"] for e in entries if stat.S_ISREG(int(str(e["mode"])))}
    assert got == {k: v for k, v in expected.items() if (root / k).is_file()}
    assert archive(root, nodes=()) == data
