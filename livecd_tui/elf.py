"""Shared-library closure of ELF programs, read from the files themselves.

The initrd needs the dynamic loader and every shared library of the few programs it ships
(busybox or bash, mount, losetup, ...). Running ``ldd`` would be wrong twice over: ``ldd``
*executes* the loader of the binary (unsafe and impossible for a foreign architecture or a
chroot with another libc), and it answers for the host's ``/``, not for the system root we
are packaging. So this module reads ``PT_INTERP``, ``DT_NEEDED``, ``DT_RPATH`` and
``DT_RUNPATH`` with pyelftools and replays the search glibc's ``ld.so`` does, with every file
access confined to the system root (absolute symlinks inside the root point into the root).

It also installs a file into a new tree while recreating the symlinks met on the way
(``/lib64 -> usr/lib64``, ``libfoo.so.1 -> libfoo.so.1.2``), because the loader finds things
through those names: a copy of the final file alone would not be found at runtime.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

__all__ = [
    "MissingLibrary",
    "install_links",
    "resolve_in_root",
    "resolve_libraries",
]

ELF_MAGIC = b"\x7fELF"

# e_machine values (elf.h) -> Debian multiarch triplets, for the default search dirs.
_EM_X86_64 = 62
_MULTIARCH: dict[tuple[int, int], tuple[str, ...]] = {
    # (ELF class, e_machine): triplets
    (2, _EM_X86_64): ("x86_64-linux-gnu",),
    (1, _EM_X86_64): ("x86_64-linux-gnux32",),
    (1, 3): ("i386-linux-gnu",),  # EM_386
    (2, 183): ("aarch64-linux-gnu",),  # EM_AARCH64
    (1, 40): ("arm-linux-gnueabihf", "arm-linux-gnueabi"),  # EM_ARM
    (2, 243): ("riscv64-linux-gnu",),  # EM_RISCV
    (2, 21): ("powerpc64le-linux-gnu", "powerpc64-linux-gnu"),  # EM_PPC64
    (1, 20): ("powerpc-linux-gnu",),  # EM_PPC
    (2, 22): ("s390x-linux-gnu",),  # EM_S390
    (2, 8): ("mips64el-linux-gnuabi64",),  # EM_MIPS
    (1, 8): ("mipsel-linux-gnu", "mips-linux-gnu"),
    (2, 258): ("loongarch64-linux-gnu",),  # EM_LOONGARCH
}

_MAX_SYMLINKS = 40  # the kernel's limit (MAXSYMLINKS); a loop in the root must not hang us


class MissingLibrary(Exception):
    """A needed shared library (or the program interpreter) is not in the system root.

    Raised rather than skipped: an initrd missing a library fails at boot with a cryptic
    "not found" from the loader, long after the build looked fine.
    """

    def __init__(self, binary: str, soname: str, needed_by: str | None = None) -> None:
        self.binary = binary
        self.soname = soname
        self.needed_by = needed_by or binary
        via = "" if self.needed_by == binary else f" (needed by {self.needed_by})"
        super().__init__(
            f"{binary}: shared library {soname!r}{via} not found in the system root "
            "(searched RPATH/RUNPATH, ld.so.conf and the default library dirs)"
        )


# ---------------------------------------------------------------------------------------------
# Paths inside a root


def _walk(root: Path, path: str, *, follow_final: bool = True) -> tuple[str, list[tuple[str, str]]]:
    """Resolve ``path`` inside ``root`` like the kernel would after a chroot.

    Returns the canonical in-root path and the symlinks met, in order, as
    ``(in-root path of the link, link text)``. Each link's parent is itself canonical, which
    is what lets ``fileops.install`` recreate them one by one. ``..`` never climbs above the
    root, and an absolute link target restarts at the root, not at the host's ``/``.
    Components that do not exist are kept as they are (the caller checks existence).
    """
    if not path.startswith("/"):
        raise ValueError(f"path must be absolute inside the root: {path!r}")
    todo: deque[str] = deque(path.split("/"))
    resolved: list[str] = []
    links: list[tuple[str, str]] = []
    hops = 0
    while todo:
        comp = todo.popleft()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/" + "/".join([*resolved, comp])
        host = root / candidate[1:]
        is_last = not any(c not in ("", ".") for c in todo)
        if (follow_final or not is_last) and host.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", str(root) + path)
            target = os.readlink(host)
            links.append((candidate, target))
            if target.startswith("/"):
                resolved = []
            todo.extendleft(reversed(target.split("/")))
            continue
        resolved.append(comp)
    return "/" + "/".join(resolved), links


def resolve_in_root(root: Path, path: str) -> str:
    """Canonical in-root form of the absolute in-root ``path`` (symlinks resolved in ``root``).

    ``os.path.realpath(root / path)`` is not the same thing: an absolute symlink such as
    ``/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...`` would escape to the host.
    """
    return _walk(root, path)[0]


def _host(root: Path, inroot: str) -> Path:
    """Host path of a canonical in-root path."""
    return root / inroot.lstrip("/")


# ---------------------------------------------------------------------------------------------
# ELF reading


@dataclass(frozen=True)
class _ElfIdent:
    """What glibc compares before accepting a candidate library: class, byte order, machine."""

    elf_class: int  # 1 = 32-bit, 2 = 64-bit
    data: int  # 1 = little endian, 2 = big endian
    machine: int


@dataclass(frozen=True)
class _ElfInfo:
    ident: _ElfIdent
    interp: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]  # already emptied when a RUNPATH exists, as glibc does
    runpath: tuple[str, ...] | None  # None: no DT_RUNPATH at all
    soname: str | None


def _read_ident(host: Path) -> _ElfIdent | None:
    """The ELF identity of ``host``, or None when it is not an ELF file (script, data)."""
    try:
        with open(host, "rb") as f:
            head = f.read(20)
    except (IsADirectoryError, PermissionError, FileNotFoundError):
        return None
    if len(head) < 20 or head[:4] != ELF_MAGIC or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    (machine,) = struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])
    return _ElfIdent(elf_class=head[4], data=head[5], machine=machine)


def _split_path_list(value: str) -> tuple[str, ...]:
    # Empty entries mean "current directory" to glibc: meaningless for a future boot, skip.
    return tuple(p for p in value.split(":") if p)


def _read_elf(host: Path, shown: str) -> _ElfInfo | None:
    """Parse the dynamic information of an ELF file; None when it is not ELF at all.

    Segments rather than sections are read: the loader only sees segments, and stripped or
    sstrip'ed binaries may have no section headers.
    """
    ident = _read_ident(host)
    if ident is None:
        return None
    interp: str | None = None
    needed: list[str] = []
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] | None = None
    soname: str | None = None
    try:
        with open(host, "rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if isinstance(seg, InterpSegment):
                    interp = seg.get_interp_name()
                elif isinstance(seg, DynamicSegment):
                    tag: Any  # pyelftools adds .needed/.rpath/... per tag type, untyped
                    for tag in seg.iter_tags():
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif kind == "DT_RPATH":
                            rpath = _split_path_list(tag.rpath)
                        elif kind == "DT_RUNPATH":
                            runpath = _split_path_list(tag.runpath)
                        elif kind == "DT_SONAME":
                            soname = tag.soname
    except ELFError as exc:
        raise ValueError(f"{shown}: malformed ELF file: {exc}") from exc
    if runpath is not None:
        rpath = ()  # "If DT_RUNPATH is present, DT_RPATH is ignored" (ld.so(8))
    return _ElfInfo(ident, interp, tuple(needed), rpath, runpath, soname)


# ---------------------------------------------------------------------------------------------
# The search


@dataclass
class _Loaded:
    """One object in the dependency graph of a program, as glibc's link_map would hold it."""

    path: str  # the in-root path the loader opened it by
    info: _ElfInfo
    origin: str  # what $ORIGIN expands to for this object
    loader: _Loaded | None = field(default=None, repr=False)


def _expand_origin(entry: str, origin: str) -> str | None:
    """Expand $ORIGIN / ${ORIGIN}; None for the other tokens ($LIB, $PLATFORM) we do not model."""
    out = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
    if "$" in out:
        return None
    return out


def _has_dot_components(path: str) -> bool:
    return any(c in ("", ".", "..") for c in path.split("/")[1:])


class _Resolver:
    """Caches shared by all the programs resolved against one root in one call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._info: dict[str, _ElfInfo | None] = {}
        self._conf_dirs: list[str] | None = None

    def info(self, canonical: str) -> _ElfInfo | None:
        if canonical not in self._info:
            self._info[canonical] = _read_elf(_host(self.root, canonical), canonical)
        return self._info[canonical]

    # -- ld.so.conf ---------------------------------------------------------------------------

    def conf_dirs(self) -> list[str]:
        """Directories listed by ``root/etc/ld.so.conf`` (and its includes), in order.

        glibc really reads ``/etc/ld.so.cache``, which ldconfig builds from these very files;
        the cache of the target may be stale or absent (LFS before ldconfig), the config not.
        """
        if self._conf_dirs is None:
            dirs: list[str] = []
            self._parse_conf("/etc/ld.so.conf", dirs, set())
            self._conf_dirs = list(dict.fromkeys(dirs))
        return self._conf_dirs

    def _parse_conf(self, conf: str, dirs: list[str], seen: set[str]) -> None:
        canonical = resolve_in_root(self.root, conf)
        if canonical in seen:
            return
        seen.add(canonical)
        try:
            text = _host(self.root, canonical).read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] == "include":
                for pattern in words[1:]:
                    if not pattern.startswith("/"):
                        pattern = os.path.join(os.path.dirname(conf), pattern)
                    for inc in self._glob(pattern):
                        self._parse_conf(inc, dirs, seen)
            elif words[0] == "hwcap":
                continue
            else:
                # Old syntax allowed "dir=libtype" and several dirs per line separated by
                # blanks, commas or colons.
                for item in line.replace(",", " ").replace(":", " ").split():
                    item = item.split("=", 1)[0]
                    if item.startswith("/"):
                        dirs.append(item.rstrip("/") or "/")

    def _glob(self, pattern: str) -> list[str]:
        """Expand an include pattern inside the root (wildcards in the last component only)."""
        directory, base = os.path.split(pattern)
        if any(ch in directory for ch in "*?["):
            # Rare; match relative to the root but through the host's view of its dirs.
            return sorted(
                "/" + str(p.relative_to(self.root)) for p in self.root.glob(pattern.lstrip("/"))
            )
        canonical_dir = resolve_in_root(self.root, directory or "/")
        try:
            names = os.listdir(_host(self.root, canonical_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [
            f"{directory.rstrip('/')}/{name}"
            for name in sorted(names)
            if fnmatch.fnmatchcase(name, base)
        ]

    # -- candidates ---------------------------------------------------------------------------

    @staticmethod
    def default_dirs(ident: _ElfIdent) -> list[str]:
        """The loader's built-in dirs, Debian multiarch ones first, then lib64 and lib."""
        dirs: list[str] = []
        for triplet in _MULTIARCH.get((ident.elf_class, ident.machine), ()):
            dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
        if ident.elf_class == 2:
            dirs += ["/lib64", "/usr/lib64"]
        else:
            dirs += ["/lib32", "/usr/lib32"]
        return [*dirs, "/lib", "/usr/lib"]

    def try_candidate(self, candidate: str, ident: _ElfIdent) -> str | None:
        """Return the path to report for ``candidate`` if it is a usable library, else None."""
        canonical = resolve_in_root(self.root, candidate)
        if not _host(self.root, canonical).is_file():
            return None
        if _read_ident(_host(self.root, canonical)) != ident:
            return None  # wrong class or machine: the loader skips it and keeps searching
        if _has_dot_components(candidate):
            # "$ORIGIN/../lib/libx.so" -> resolve the directory, keep the file name, so the
            # result can be fed to fileops.install and compared/deduplicated sanely.
            parent, name = candidate.rsplit("/", 1)
            return resolve_in_root(self.root, parent or "/").rstrip("/") + "/" + name
        return candidate

    def search(self, name: str, requester: _Loaded, main: _Loaded) -> str | None:
        """Find DT_NEEDED ``name`` for ``requester`` in glibc's order; None if not found."""
        ident = main.info.ident
        if "/" in name:
            expanded = _expand_origin(name, requester.origin)
            if expanded is None:
                return None
            if not expanded.startswith("/"):
                expanded = "/" + expanded  # relative to the cwd at runtime; take the root
            return self.try_candidate(expanded, ident)

        dirs: list[str] = []
        if requester.info.runpath is None:
            # DT_RPATH of the requester, then of the object that loaded it, up to the program.
            obj: _Loaded | None = requester
            while obj is not None:
                dirs += [d for d in (_expand_origin(e, obj.origin) for e in obj.info.rpath) if d]
                obj = obj.loader
        # (LD_LIBRARY_PATH would come here: deliberately ignored, it is the builder's env.)
        if requester.info.runpath:
            dirs += [
                d
                for d in (_expand_origin(e, requester.origin) for e in requester.info.runpath)
                if d
            ]
        dirs += self.conf_dirs()
        dirs += self.default_dirs(ident)
        for directory in dict.fromkeys(dirs):
            found = self.try_candidate(directory.rstrip("/") + "/" + name, ident)
            if found is not None:
                return found
        return None

    def closure(self, path: str) -> set[str]:
        """Interpreter + all libraries of one program, breadth first like ``ld.so`` maps them."""
        canonical = resolve_in_root(self.root, path)
        if not _host(self.root, canonical).exists():
            raise FileNotFoundError(errno.ENOENT, "no such file in the system root", path)
        info = self.info(canonical)
        if info is None:
            return set()  # a script or data: no libraries of its own
        # The kernel hands ld.so the resolved executable (/proc/self/exe): $ORIGIN of the
        # program is the directory of its canonical path.
        main = _Loaded(canonical, info, os.path.dirname(canonical) or "/")
        result: set[str] = set()
        by_name: dict[str, str] = {}  # DT_NEEDED/SONAME already satisfied -> path

        if info.interp:
            interp_canonical = resolve_in_root(self.root, info.interp)
            interp_info = (
                self.info(interp_canonical)
                if _host(self.root, interp_canonical).is_file()
                else None
            )
            if interp_info is None:
                raise MissingLibrary(path, info.interp)
            result.add(info.interp)
            # libc's DT_NEEDED "ld-linux-x86-64.so.2" is matched by SONAME to the already
            # loaded interpreter instead of being searched again.
            for key in (info.interp, interp_info.soname):
                if key:
                    by_name[key] = info.interp

        queue: deque[_Loaded] = deque([main])
        while queue:
            obj = queue.popleft()
            for name in obj.info.needed:
                if name in by_name:
                    continue
                found = self.search(name, obj, main)
                if found is None:
                    raise MissingLibrary(path, name, needed_by=obj.path)
                found_canonical = resolve_in_root(self.root, found)
                lib_info = self.info(found_canonical)
                assert lib_info is not None  # try_candidate checked the ELF ident
                by_name[name] = found
                if lib_info.soname:
                    by_name.setdefault(lib_info.soname, found)
                result.add(found)
                origin = os.path.dirname(found) or "/"
                queue.append(_Loaded(found, lib_info, origin, loader=obj))
        return result


def resolve_libraries(paths: Iterable[str], root: Path = Path("/")) -> list[str]:
    """Sorted in-root paths of the interpreter and all shared libraries the programs need.

    ``paths`` are absolute paths inside ``root``. The search order is glibc's: DT_RPATH of the
    object and of its loaders (only when the object has no DT_RUNPATH), DT_RUNPATH, the dirs
    of ``root/etc/ld.so.conf``, then the default dirs; ``$ORIGIN`` is expanded, candidates of
    the wrong ELF class or machine are skipped. Each program is resolved on its own, like
    separate processes. Paths are reported as the loader finds them (e.g.
    ``/lib/x86_64-linux-gnu/libc.so.6``, not the ``/usr/lib/...`` file behind the link), so that
    ``fileops.install`` recreates the names the loader will look for.

    Raises :class:`MissingLibrary` when something cannot be found, and
    :class:`FileNotFoundError` when a given path does not exist in the root. Non-ELF inputs
    (shell scripts) and static programs contribute nothing.
    """
    resolver = _Resolver(Path(root))
    result: set[str] = set()
    for path in paths:
        result |= resolver.closure(path)
    return sorted(result)


# ---------------------------------------------------------------------------------------------
# Installing into a new tree


def install_links(src_root: Path, path: str) -> tuple[str, list[tuple[str, str]]]:
    """What installing ``path`` into a new tree recreates (``fileops.install``): its
    canonical in-root path, and the symlinks met on the way as ``(in-root link, link
    text)``, in the order they are made."""
    return _walk(Path(src_root), path)
