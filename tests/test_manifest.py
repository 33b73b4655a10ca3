"""The manifest: what a build packed, and what a stat walk says changed since."""

from __future__ import annotations

import os
from pathlib import Path

from livecd_tui import excludes, manifest


def make_root(root: Path) -> None:
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hello\n")
    (root / "etc" / "conf.d" / "a").write_text("a\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    (root / "usr" / "lib").mkdir()
    (root / "usr" / "lib" / "x").write_text("x")
    (root / "usr" / "bin" / "link").symlink_to("tool")
    (root / "usr" / "cache").mkdir()
    (root / "usr" / "cache" / "big").write_text("left out")


PATTERNS = [excludes.parse("usr/cache")]


def take(root: Path) -> manifest.Manifest:
    return manifest.take(root, ["etc", "usr"], PATTERNS)


def test_the_manifest_holds_what_is_packed_and_not_what_is_left_out(tmp_path: Path) -> None:
    make_root(tmp_path)
    found = take(tmp_path)
    assert "usr/bin/tool" in found and "usr/cache" not in found
    assert "usr/cache/big" not in found
    assert found["usr/bin/link"].kind == "l" and found["usr/bin/link"].target == "tool"
    assert found["usr/bin/tool"].mode == 0o755 and found["etc/motd"].size == 6
    assert found["etc"].kind == "d"


def test_nothing_changed_is_an_empty_diff(tmp_path: Path) -> None:
    make_root(tmp_path)
    assert not manifest.diff(take(tmp_path), take(tmp_path))


def test_each_kind_of_change_is_seen(tmp_path: Path) -> None:
    make_root(tmp_path)
    before = take(tmp_path)
    (tmp_path / "etc" / "motd").write_text("hello, again\n")  # content
    (tmp_path / "usr" / "bin" / "tool").chmod(0o700)  # mode
    os.chown(tmp_path / "usr" / "lib" / "x", 12345, 54321)  # owner
    (tmp_path / "etc" / "new").write_text("new\n")  # added
    (tmp_path / "etc" / "conf.d" / "a").unlink()  # removed dir, whole
    (tmp_path / "etc" / "conf.d").rmdir()
    (tmp_path / "usr" / "bin" / "link").unlink()  # link retargeted
    (tmp_path / "usr" / "bin" / "link").symlink_to("other")
    (tmp_path / "usr" / "lib" / "x").rename(tmp_path / "usr" / "lib" / "y")
    (tmp_path / "usr" / "lib" / "y").rename(tmp_path / "usr" / "lib" / "x-")
    (tmp_path / "usr" / "cache" / "more").write_text("still left out")
    after = take(tmp_path)
    change = manifest.diff(before, after)
    assert change.added == ["etc/new", "usr/lib/x-"]
    assert "etc/motd" in change.changed and "usr/bin/link" in change.changed
    # Directories whose entries changed may show a new mtime too (the clock may tick).
    assert [n for n in change.metadata if after[n].kind != "d"] == ["usr/bin/tool"]
    assert change.removed == ["etc/conf.d", "usr/lib/x"]
    assert change.replaced == []


def test_a_file_replaced_by_a_directory_and_the_reverse(tmp_path: Path) -> None:
    make_root(tmp_path)
    before = take(tmp_path)
    (tmp_path / "etc" / "motd").unlink()
    (tmp_path / "etc" / "motd").mkdir()
    (tmp_path / "etc" / "motd" / "inside").write_text("i")
    for child in (tmp_path / "etc" / "conf.d").iterdir():
        child.unlink()
    (tmp_path / "etc" / "conf.d").rmdir()
    (tmp_path / "etc" / "conf.d").write_text("now a file")
    change = manifest.diff(before, take(tmp_path))
    assert change.replaced == ["etc/conf.d", "etc/motd"]
    assert change.added == ["etc/motd/inside"]
    # conf.d is a file now: it hides the old tree whole, nothing below needs a whiteout.
    assert change.removed == []
    assert change.carried() == ["etc/conf.d", "etc/motd", "etc/motd/inside"]


def test_a_restored_mtime_is_caught_by_the_change_time(tmp_path: Path) -> None:
    make_root(tmp_path)
    motd = tmp_path / "etc" / "motd"
    st = motd.stat()
    before = take(tmp_path)
    motd.write_text("HELLO\n")  # same size
    os.utime(motd, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = take(tmp_path)
    assert manifest.diff(before, after).changed == ["etc/motd"]
    # Only the bytes can tell; a caller that can compare them decides.
    assert manifest.diff(before, after, same_content=lambda name: True).changed == []
    assert manifest.diff(before, after, same_content=lambda name: False).changed == ["etc/motd"]


def test_a_directory_with_a_new_mtime_is_carried_as_metadata(tmp_path: Path) -> None:
    make_root(tmp_path)
    before = take(tmp_path)
    os.utime(tmp_path / "etc", (1, 1))
    change = manifest.diff(before, take(tmp_path))
    assert change.metadata == ["etc"] and change.carried() == ["etc"]


def test_a_tree_sorts_together_so_one_whiteout_hides_it(tmp_path: Path) -> None:
    rec = manifest.Record("f", 0o644, 0, 0, 1, 0, 0)
    old = {"a": rec._replace(kind="d"), "a/b": rec, "a-c": rec, "a/b/c": rec}
    assert manifest.diff(old, {}).removed == ["a", "a-c"]


def test_saved_and_loaded_unchanged_even_with_names_that_are_not_utf8(tmp_path: Path) -> None:
    make_root(tmp_path)
    odd = os.fsdecode(b"etc/caf\xe9")
    (tmp_path / odd).write_text("latin-1 name")
    (tmp_path / "etc" / "tab\tand\nnewline").write_text("x")
    found = take(tmp_path)
    assert odd in found
    saved = tmp_path / "m.json.gz"
    manifest.save(found, saved)
    assert manifest.load(saved) == found
    assert not (tmp_path / "m.json.gz.tmp").exists()


def test_a_damaged_or_foreign_manifest_is_not_used(tmp_path: Path) -> None:
    bad = tmp_path / "m.json.gz"
    assert manifest.load(bad) is None
    bad.write_bytes(b"not gzip at all")
    assert manifest.load(bad) is None
    import gzip
    import json

    with gzip.open(bad, "wt") as out:
        json.dump({"format": manifest.FORMAT + 1, "entries": []}, out)
    assert manifest.load(bad) is None
    with gzip.open(bad, "wt") as out:
        json.dump({"format": manifest.FORMAT, "entries": [["x", "f"]]}, out)
    assert manifest.load(bad) is None
