"""livecd_tui.elf against the real loader: ``ldd`` on this machine is the oracle.

ldd runs the binaries' own loader, which is exactly what the module avoids doing on a target
root; on the host it is the authority on what the loader really maps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from livecd_tui.elf import MissingLibrary, resolve_in_root, resolve_libraries
from livecd_tui.fileops import install_path

HOST_BINARIES = [
    "/usr/bin/bash",
    "/usr/bin/ls",
    "/usr/bin/python3",
    "/usr/sbin/mke2fs",
    "/usr/bin/cpio",
    "/usr/bin/bsdtar",
    "/usr/bin/gzip",
]

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def ldd(path: str) -> set[str] | None:
    """Realpaths of what ldd maps for ``path``; None for 'not a dynamic executable'.

    A library ldd cannot find shows as ``name => not found`` and is returned as that text, so
    a comparison fails loudly instead of silently dropping it.
    """
    proc = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    if "not a dynamic executable" in proc.stdout + proc.stderr:
        return None
    assert proc.returncode == 0, proc.stderr
    found: set[str] = set()
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("linux-vdso") or line.startswith("statically linked"):
            continue
        if "=>" in line:
            name, rest = (part.strip() for part in line.split("=>", 1))
            if rest.startswith("not found"):
                found.add(f"{name} => not found")
                continue
            target = rest.split(" (", 1)[0]
        else:
            target = line.split(" (", 1)[0]
        found.add(os.path.realpath(target))
    return found


def real(paths: list[str], root: Path = Path("/")) -> set[str]:
    return {os.path.realpath(root / p.lstrip("/")) for p in paths}


@pytest.mark.parametrize("binary", [b for b in HOST_BINARIES if os.path.exists(b)])
def test_matches_ldd(binary: str) -> None:
    expected = ldd(binary)
    assert expected is not None
    ours = resolve_libraries([binary])
    assert real(ours) == expected
    assert ours == sorted(ours)
    assert all(p.startswith("/") for p in ours)


def test_several_binaries_are_a_union() -> None:
    binaries = [b for b in HOST_BINARIES if os.path.exists(b)]
    expected: set[str] = set()
    for b in binaries:
        expected |= ldd(b) or set()
    assert real(resolve_libraries(binaries)) == expected


def test_interpreter_is_reported_by_its_pt_interp_name() -> None:
    # The loader path is what the kernel opens; install_path must recreate that exact name.
    ours = resolve_libraries(["/usr/bin/bash"])
    interp = (
        subprocess.run(
            ["readelf", "-l", "/usr/bin/bash"], capture_output=True, text=True, check=True
        )
        .stdout.split("[Requesting program interpreter: ", 1)[1]
        .split("]", 1)[0]
    )
    assert interp in ours
    # ...and only once, even though libc.so.6 lists ld-linux-x86-64.so.2 in DT_NEEDED.
    assert sum(1 for p in ours if os.path.realpath(p) == os.path.realpath(interp)) == 1


@pytest.mark.skipif(not os.path.exists("/usr/bin/busybox"), reason="no busybox")
def test_static_binary_has_nothing() -> None:
    assert ldd("/usr/bin/busybox") is None  # the oracle agrees it is static
    assert resolve_libraries(["/usr/bin/busybox"]) == []


def test_shell_script_has_nothing(tmp_path: Path) -> None:
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert resolve_libraries([str(script), str(empty)]) == []
    # Mixed with a real program only the program contributes.
    assert resolve_libraries([str(script), "/usr/bin/bash"]) == resolve_libraries(["/usr/bin/bash"])


def test_missing_input_raises() -> None:
    with pytest.raises(FileNotFoundError):
        resolve_libraries(["/no/such/binary"])


# -- fake roots ---------------------------------------------------------------------------------


def make_root_with(tmp_path: Path, binary: str, *aliases: str) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for name in (binary, *aliases):
        install_path(Path("/"), name, root)
    for lib in resolve_libraries([binary]):
        install_path(Path("/"), lib, root)
    return root


def test_fake_root_install_and_resolve(tmp_path: Path) -> None:
    root = make_root_with(tmp_path, "/usr/bin/bash", "/bin/bash")
    host_libs = resolve_libraries(["/usr/bin/bash"])
    # Same in-root answer inside the copy (no ld.so.conf there: default dirs suffice).
    assert resolve_libraries(["/usr/bin/bash"], root=root) == host_libs
    # The merged-/usr links are kept as links, with the same text.
    for top in ("lib64", "lib", "bin"):
        assert os.path.islink(root / top) == os.path.islink(f"/{top}"), top
        if os.path.islink(f"/{top}"):
            assert os.readlink(root / top) == os.readlink(f"/{top}")
    # The interpreter link chain works in the new tree exactly as on the host.
    for lib in host_libs:
        assert os.path.exists(root / lib.lstrip("/")), lib
        assert resolve_in_root(root, lib) == os.path.realpath(lib)
    assert resolve_in_root(root, "/bin/bash") == os.path.realpath("/bin/bash")
    # Mode bits are preserved.
    assert (root / "usr/bin/bash").stat().st_mode == Path("/usr/bin/bash").stat().st_mode
    # The tree is really usable by the loader: run the copied bash in it.
    if os.geteuid() == 0 and shutil.which("chroot"):
        out = subprocess.run(
            ["chroot", str(root), "/usr/bin/bash", "-c", "echo ok $BASH_VERSION"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith("ok ")


def test_install_path_is_idempotent(tmp_path: Path) -> None:
    root = make_root_with(tmp_path, "/usr/bin/bash")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    for lib in resolve_libraries(["/usr/bin/bash", "/usr/bin/ls"]):
        install_path(Path("/"), lib, root)
        install_path(Path("/"), lib, root)
    after = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert set(before) <= set(after)
    assert resolve_libraries(["/usr/bin/bash"], root=root) == resolve_libraries(["/usr/bin/bash"])


def test_install_path_file_symlink_chain(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "usr/lib").mkdir(parents=True)
    (src / "usr/lib/libfoo.so.1.2.3").write_bytes(b"data")
    (src / "usr/lib/libfoo.so.1.2.3").chmod(0o640)
    os.symlink("libfoo.so.1.2.3", src / "usr/lib/libfoo.so.1")
    os.symlink("/usr/lib/libfoo.so.1", src / "usr/lib/libfoo.so")  # absolute: in the root
    os.symlink("usr/lib", src / "lib")
    dest = tmp_path / "dest"
    dest.mkdir()
    install_path(src, "/lib/libfoo.so", dest)
    assert os.readlink(dest / "lib") == "usr/lib"
    assert os.readlink(dest / "usr/lib/libfoo.so") == "/usr/lib/libfoo.so.1"
    assert os.readlink(dest / "usr/lib/libfoo.so.1") == "libfoo.so.1.2.3"
    assert (dest / "usr/lib/libfoo.so.1.2.3").read_bytes() == b"data"
    assert (dest / "usr/lib/libfoo.so.1.2.3").stat().st_mode & 0o777 == 0o640
    assert resolve_in_root(dest, "/lib/libfoo.so") == "/usr/lib/libfoo.so.1.2.3"
    install_path(src, "/lib/libfoo.so", dest)  # twice is fine


def test_resolve_in_root_stays_in_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/passwd", tmp_path / "etc/link")
    os.symlink("../../../../etc/passwd", tmp_path / "etc/up")
    assert resolve_in_root(tmp_path, "/etc/link") == "/etc/passwd"
    assert resolve_in_root(tmp_path, "/etc/up") == "/etc/passwd"
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(OSError):
        resolve_in_root(tmp_path, "/loop")


def test_missing_library(tmp_path: Path) -> None:
    root = make_root_with(tmp_path, "/usr/bin/bash")
    tinfo = next(p for p in resolve_libraries(["/usr/bin/bash"]) if "libtinfo" in p)
    (root / resolve_in_root(root, tinfo).lstrip("/")).unlink()
    with pytest.raises(MissingLibrary) as info:
        resolve_libraries(["/usr/bin/bash"], root=root)
    assert info.value.binary == "/usr/bin/bash"
    assert info.value.soname == os.path.basename(tinfo)
    assert "libtinfo" in str(info.value) and "/usr/bin/bash" in str(info.value)


def test_missing_interpreter(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    install_path(Path("/"), "/usr/bin/bash", root)
    with pytest.raises(MissingLibrary, match="ld-linux"):
        resolve_libraries(["/usr/bin/bash"], root=root)


def test_ld_so_conf_include_and_machine_check(tmp_path: Path) -> None:
    """ld.so.conf dirs come before the defaults; a wrong-machine copy there is skipped."""
    root = make_root_with(tmp_path, "/usr/bin/bash")
    tinfo = next(p for p in resolve_libraries(["/usr/bin/bash"]) if "libtinfo" in p)
    soname = os.path.basename(tinfo)
    data = Path(os.path.realpath(tinfo)).read_bytes()
    (root / "opt/bad").mkdir(parents=True)
    (root / "opt/good").mkdir(parents=True)
    bad = bytearray(data)
    bad[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64: glibc would refuse it
    (root / "opt/bad" / soname).write_bytes(bytes(bad))
    (root / "opt/good" / soname).write_bytes(data)
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("# comment\ninclude /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/a.conf").write_text("/opt/bad\n")
    (root / "etc/ld.so.conf.d/ignored.txt").write_text("/nonexistent\n")
    libs = resolve_libraries(["/usr/bin/bash"], root=root)
    assert tinfo in libs  # the bad copy was skipped, the default dir won
    (root / "etc/ld.so.conf.d/b.conf").write_text("/opt/good  # trailing comment\n")
    libs = resolve_libraries(["/usr/bin/bash"], root=root)
    assert f"/opt/good/{soname}" in libs and tinfo not in libs


# -- compiled test programs: $ORIGIN, RUNPATH vs RPATH ------------------------------------------


def compile_demo(tmp_path: Path, *, new_dtags: bool) -> Path:
    """bin/demo -> lib/libdemo.so -> lib/libdep.so, demo found through $ORIGIN/../lib."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "dep.c").write_text("int dep(void) { return 2; }\n")
    (tmp_path / "demo.c").write_text("int dep(void);\nint demo(void) { return dep() + 1; }\n")
    (tmp_path / "main.c").write_text("int demo(void);\nint main(void) { return demo() - 3; }\n")
    lib = tmp_path / "lib"

    def gcc(*args: str) -> None:
        subprocess.run(["gcc", *args], check=True, cwd=tmp_path, capture_output=True)

    gcc("-shared", "-fPIC", "-o", f"{lib}/libdep.so", "-Wl,-soname,libdep.so", "dep.c")
    gcc(
        "-shared", "-fPIC", "-o", f"{lib}/libdemo.so", "-Wl,-soname,libdemo.so", "demo.c",
        f"-L{lib}", "-ldep",
    )  # fmt: skip
    dtags = "-Wl,--enable-new-dtags" if new_dtags else "-Wl,--disable-new-dtags"
    gcc(
        "-o", "bin/demo", "main.c", f"-L{lib}", "-ldemo", "-Wl,-rpath,$ORIGIN/../lib", dtags,
        "-Wl,--no-as-needed",
    )  # fmt: skip
    return tmp_path / "bin/demo"


@needs_gcc
def test_origin_rpath_is_inherited(tmp_path: Path) -> None:
    """DT_RPATH of the program also serves libdemo.so's own DT_NEEDED (libdep.so)."""
    demo = compile_demo(tmp_path, new_dtags=False)
    assert subprocess.run([demo], check=False).returncode == 0
    expected = ldd(str(demo))
    assert expected is not None and not any("not found" in p for p in expected)
    ours = resolve_libraries([str(demo)])
    assert real(ours) == expected
    # Reported without "..": the directory is resolved, the file name kept.
    assert f"{tmp_path}/lib/libdemo.so" in ours
    assert f"{tmp_path}/lib/libdep.so" in ours


@needs_gcc
def test_origin_runpath_is_not_inherited(tmp_path: Path) -> None:
    """DT_RUNPATH only applies to the object's own needs: libdep.so is then not found."""
    demo = compile_demo(tmp_path, new_dtags=True)
    expected = ldd(str(demo))
    assert expected is not None and "libdep.so => not found" in expected
    with pytest.raises(MissingLibrary) as info:
        resolve_libraries([str(demo)])
    assert info.value.soname == "libdep.so"
    assert info.value.needed_by == f"{tmp_path}/lib/libdemo.so"


@needs_gcc
def test_origin_runpath(tmp_path: Path) -> None:
    """A RUNPATH with $ORIGIN on each object, the usual layout of bundled software."""
    demo = compile_demo(tmp_path, new_dtags=True)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", "lib/libdemo.so", "-Wl,-soname,libdemo.so", "demo.c",
         "-Llib", "-ldep", "-Wl,-rpath,${ORIGIN}", "-Wl,--enable-new-dtags"],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    assert subprocess.run([demo], check=False).returncode == 0
    expected = ldd(str(demo))
    assert expected is not None and not any("not found" in p for p in expected)
    assert real(resolve_libraries([str(demo)])) == expected


@needs_gcc
def test_origin_in_a_fake_root(tmp_path: Path) -> None:
    """$ORIGIN is the program's dir *inside* the root; the result installs and runs there."""
    build = tmp_path / "build"
    build.mkdir()
    compile_demo(build, new_dtags=False)
    root = tmp_path / "root"
    (root / "opt/demo").mkdir(parents=True)
    shutil.copytree(build / "bin", root / "opt/demo/bin")
    shutil.copytree(build / "lib", root / "opt/demo/lib")
    for lib in resolve_libraries(["/usr/bin/bash"]):
        install_path(Path("/"), lib, root)
    os.symlink("/opt/demo/bin/demo", root / "demo")  # $ORIGIN follows the link, in the root
    libs = resolve_libraries(["/demo"], root=root)
    assert "/opt/demo/lib/libdemo.so" in libs and "/opt/demo/lib/libdep.so" in libs
    # glibc finds the program's $ORIGIN through /proc/self/exe, so the chroot needs /proc;
    # a private mount namespace makes the bind mount vanish with the process.
    (root / "proc").mkdir()
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("chroot"):
        run = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"mount --bind /proc '{root}/proc' && chroot '{root}' /demo"],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if "mount" in run.stderr and "permission" in run.stderr.lower():
            pytest.skip("cannot bind-mount /proc here")
        assert run.returncode == 0, run.stderr
