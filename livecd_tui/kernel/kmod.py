"""Kernel module closure from depmod's text files, without modprobe.

The initrd loads its modules with plain ``insmod`` (busybox's modprobe may be absent, and the
build host's modprobe looks at the *host's* config): the builder must therefore hand the boot
script an explicit list of ``.ko`` paths, dependencies first. The data comes from the files
depmod wrote for the target kernel in ``/lib/modules/RELEASE``:

* ``modules.dep`` -- ``path: dep-path ...``, every hard (symbol) dependency, transitively;
* ``modules.softdep`` -- ``softdep MOD pre: A B post: C``, optional helpers (crc32c for ext4);
* ``modules.builtin`` -- paths of modules compiled into the kernel: nothing to load;
* ``modules.alias`` / ``modules.builtin.modinfo`` -- aliases, which softdeps mostly use
  (``crct10dif`` names two modules, ``crc32c`` too).

The rules follow kmod (the modprobe of every mainstream distribution), checked against
``modprobe --show-depends`` in the tests, including two quirks: only the *first*
``softdep`` line of a module counts, and words before ``pre:``/``post:`` are ignored.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import logging
import lzma
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from livecd_tui import procs

__all__ = [
    "UnknownModule",
    "firmware_for",
    "is_builtin",
    "module_name",
    "resolve_modules",
]

log = logging.getLogger(__name__)

_KO_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


class UnknownModule(Exception):
    """A requested module is neither a module file, built into the kernel, nor an alias.

    Raised rather than skipped: a live CD whose initrd silently lacks its CD-ROM driver only
    fails at boot, on another machine.
    """

    def __init__(self, name: str, modules_dir: Path) -> None:
        self.name = name
        self.modules_dir = Path(modules_dir)
        super().__init__(
            f"kernel module {name!r} not found for {self.modules_dir.name}: it is not in "
            f"{self.modules_dir}/modules.dep, modules.builtin nor modules.alias "
            "(not built for this kernel, or depmod was not run)"
        )


def _norm(name: str) -> str:
    """Module names treat ``-`` and ``_`` as the same character; kmod stores ``_``."""
    return name.replace("-", "_")


def _alias_norm(alias: str) -> str:
    """kmod's alias_normalize: ``-`` -> ``_`` except inside ``[...]`` character classes."""
    out: list[str] = []
    depth = 0
    for ch in alias:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append("_" if ch == "-" and not depth else ch)
    return "".join(out)


def module_name(relpath: str) -> str:
    """Module name of a path from modules.dep: ``kernel/drivers/usb/storage/usb-storage.ko.xz``
    -> ``usb_storage``."""
    base = relpath.rsplit("/", 1)[-1]
    for suffix in _KO_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return _norm(base)


@dataclass
class _Index:
    """The parsed depmod files of one kernel."""

    modules_dir: Path
    paths: dict[str, str] = field(default_factory=dict)  # name -> relpath
    deps: dict[str, list[str]] = field(default_factory=dict)  # name -> dep names (as listed)
    builtin: set[str] = field(default_factory=set)
    softdeps: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    exact_aliases: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    wild_aliases: list[tuple[int, str, str]] = field(default_factory=list)
    #: Wildcard aliases by the first character of their literal prefix ("" for none):
    #: a pattern can only match names that start with its literal prefix.
    wild_by_first: dict[str, list[tuple[int, str, str, str]]] = field(default_factory=dict)
    builtin_aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, modules_dir: Path) -> _Index:
        modules_dir = Path(modules_dir)
        index = cls(modules_dir)
        dep_file = modules_dir / "modules.dep"
        if not dep_file.is_file():
            raise FileNotFoundError(f"{dep_file} is missing: run depmod for this kernel first")
        for line in dep_file.read_text().splitlines():
            if ":" not in line:
                continue
            path, _, rest = line.partition(":")
            name = module_name(path.strip())
            index.paths[name] = path.strip()
            index.deps[name] = [module_name(p) for p in rest.split()]
        index.builtin = {module_name(p) for p in _lines(modules_dir / "modules.builtin")}
        for line in _lines(modules_dir / "modules.softdep"):
            words = line.split()
            if len(words) < 3 or words[0] != "softdep":
                continue
            name = _norm(words[1])
            if name in index.softdeps:
                continue  # kmod: "find only the first command, as modprobe from m-i-t does"
            pre: list[str] = []
            post: list[str] = []
            mode: list[str] | None = None  # words before pre:/post: are ignored, like kmod
            for word in words[2:]:
                if word == "pre:":
                    mode = pre
                elif word == "post:":
                    mode = post
                elif mode is not None:
                    mode.append(word)
            index.softdeps[name] = (pre, post)
        for n, line in enumerate(_lines(modules_dir / "modules.alias")):
            words = line.split()
            if len(words) != 3 or words[0] != "alias":
                continue
            pattern, target = _alias_norm(words[1]), _norm(words[2])
            if any(ch in pattern for ch in "*?["):
                index.wild_aliases.append((n, pattern, target))
                literal = _literal_prefix(pattern)
                index.wild_by_first.setdefault(literal[:1], []).append(
                    (n, pattern, target, literal)
                )
            else:
                index.exact_aliases.setdefault(pattern, []).append((n, target))
        modinfo = modules_dir / "modules.builtin.modinfo"
        if modinfo.is_file():
            for entry in modinfo.read_bytes().split(b"\0"):
                key, _, value = entry.decode(errors="replace").partition("=")
                mod, _, attr = key.partition(".")
                if attr == "alias" and value:
                    index.builtin_aliases.setdefault(_alias_norm(value), _norm(mod))
        return index

    def lookup(self, name: str) -> list[str] | None:
        """Module names to load for ``name``: [] when built in, None when unknown.

        kmod's order: a module name, then modules.alias (every match, in file order: an
        alias may name several modules and modprobe loads them all), then built-in names and
        aliases. Aliases win over built-in names: ``crc32`` is built into Debian's kernel, yet
        ksmbd's ``softdep pre: crc32`` makes modprobe load crc32-pclmul and crc32_generic.
        """
        mod = _norm(name)
        if mod in self.paths:
            return [mod]
        alias = _alias_norm(name)
        hits = list(self.exact_aliases.get(alias, []))
        candidates = [*self.wild_by_first.get(alias[:1], []), *self.wild_by_first.get("", [])]
        hits += [
            (n, t)
            for n, p, t, literal in candidates
            if alias.startswith(literal) and fnmatch.fnmatchcase(alias, p)
        ]
        if hits:
            found = dict.fromkeys(t for _, t in sorted(hits))
            return [t for t in found if t in self.paths]
        if mod in self.builtin or alias in self.builtin_aliases:
            return []
        return None


def _literal_prefix(pattern: str) -> str:
    """The characters of a glob before its first ``*``, ``?`` or ``[``."""
    cut = min((i for i in (pattern.find(c) for c in "*?[") if i >= 0), default=len(pattern))
    return pattern[:cut]


#: Parsed indexes by modules dir, kept while their depmod files are unchanged: planning
#: resolves the initrd's modules every time a plan is made, so the parse must happen once.
_INDEX_CACHE: dict[str, tuple[tuple[object, ...], _Index]] = {}
_DEPMOD_FILES = (
    "modules.dep",
    "modules.builtin",
    "modules.softdep",
    "modules.alias",
    "modules.builtin.modinfo",
)


def _load_index(modules_dir: Path) -> _Index:
    key: list[tuple[object, ...]] = []
    for name in _DEPMOD_FILES:
        try:
            st = (Path(modules_dir) / name).stat()
            key.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            key.append((name, None))
    cached = _INDEX_CACHE.get(str(modules_dir))
    if cached is not None and cached[0] == tuple(key):
        return cached[1]
    index = _Index.load(Path(modules_dir))
    _INDEX_CACHE[str(modules_dir)] = (tuple(key), index)
    return index


def _lines(path: Path) -> list[str]:
    """Non-comment lines of an optional depmod file (a missing one is simply empty)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#")]


def is_builtin(modules_dir: Path, name: str) -> bool:
    """True when module ``name`` (``-``/``_`` alike) is compiled into the kernel."""
    return _norm(name) in {module_name(p) for p in _lines(Path(modules_dir) / "modules.builtin")}


def resolve_modules(modules_dir: Path, names: Iterable[str]) -> list[str]:
    """Relative paths (as in modules.dep) of all modules to ``insmod`` for ``names``, in order.

    Every module comes once and after all its hard dependencies; ``pre:`` softdeps come
    before the module, ``post:`` softdeps after it (softdeps of dependencies included, as
    modprobe does). Names may be aliases. Built-in modules give nothing. An unknown name
    raises :class:`UnknownModule`; an unresolvable *softdep* is skipped, as modprobe does,
    since softdeps are optional by definition.
    """
    index = _load_index(Path(modules_dir))
    order: list[str] = []
    done: set[str] = set()
    active: set[str] = set()

    def visit(mod: str) -> None:
        if mod in done or mod in active:
            return  # already placed, or a softdep cycle: the hard-dep pass below fixes order
        active.add(mod)
        # modules.dep lists a module's deps users-first; reversed is a load order.
        for dep in reversed(index.deps.get(mod, [])):
            visit(dep)
        pre, post = index.softdeps.get(mod, ([], []))
        for soft in pre:
            for m in index.lookup(soft) or []:
                visit(m)
        order.append(mod)
        done.add(mod)
        active.discard(mod)
        for soft in post:
            for m in index.lookup(soft) or []:
                visit(m)

    for name in names:
        found = index.lookup(name)
        if found is None:
            raise UnknownModule(name, Path(modules_dir))
        for mod in found:
            visit(mod)
    return [index.paths[m] for m in _hard_deps_first(order, index.deps)]


def _hard_deps_first(order: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Stable reorder so each module follows its hard deps even if softdeps made a cycle.

    With sane data this returns ``order`` unchanged; it exists so that a softdep loop in some
    odd kernel can never produce a list that ``insmod`` fails on.
    """
    placed: set[str] = set()
    out: list[str] = []
    pending = list(order)
    while pending:
        rest: list[str] = []
        for mod in pending:
            if all(d in placed or d not in deps for d in deps.get(mod, [])):
                out.append(mod)
                placed.add(mod)
            else:
                rest.append(mod)
        if len(rest) == len(pending):  # a hard-dependency cycle: depmod refuses those
            out += rest
            break
        pending = rest
    return out


# ---------------------------------------------------------------------------------------------
# Firmware


def _read_module(path: Path) -> bytes | None:
    """The ELF bytes of a possibly compressed module; None if it cannot be decompressed."""
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".ko.zst"):
        # No zstd in the Python 3.11 standard library: use the optional binding, then the
        # command-line tool; without either the firmware of that module cannot be listed.
        try:
            import zstandard
        except ImportError:
            zstandard = None
        if zstandard is not None:
            reader = zstandard.ZstdDecompressor().stream_reader(path.read_bytes())
            data: bytes = reader.read()
            return data
        if shutil.which("zstd"):
            result = procs.run(["zstd", "-dc", "--", str(path)])
            if result.returncode == 0:
                return result.out
            log.warning("cannot read %s: zstd -dc failed: %s", path, result.stderr.strip())
            return None
        log.warning("cannot read %s: no zstandard module nor zstd tool; firmware unknown", path)
        return None
    return path.read_bytes()


def _modinfo(data: bytes, shown: str) -> list[tuple[str, str]]:
    """``key=value`` pairs of a module's ``.modinfo`` section."""
    try:
        elf = ELFFile(io.BytesIO(data))
        section = elf.get_section_by_name(".modinfo")
    except ELFError as exc:
        raise ValueError(f"{shown}: not a kernel module: {exc}") from exc
    if section is None:
        return []
    pairs: list[tuple[str, str]] = []
    for entry in section.data().split(b"\0"):
        key, sep, value = entry.decode(errors="replace").partition("=")
        if sep:
            pairs.append((key, value))
    return pairs


def firmware_for(modules_dir: Path, relpaths: Iterable[str]) -> list[str]:
    """Firmware file names (relative to /lib/firmware) the given modules may request.

    Read from each module's ``.modinfo`` ``firmware=`` entries, as ``modinfo -F firmware``
    does; the caller decides which of them exist under the target's /lib/firmware (drivers
    list every firmware they *might* load, often many more than are installed). Order of
    first appearance, each name once. A ``.ko.zst`` without any zstd decoder is skipped with
    a logged warning.
    """
    names: dict[str, None] = {}
    for rel in relpaths:
        path = Path(modules_dir) / rel
        data = _read_module(path)
        if data is None:
            continue
        for key, value in _modinfo(data, str(path)):
            if key == "firmware" and value:
                names.setdefault(value, None)
    return list(names)


# ---------------------------------------------------------------------------------------------
# Which kernel a module was built for


def vermagic(path: Path) -> str | None:
    """A module's ``vermagic`` (``6.1.0-56-amd64 SMP preempt mod_unload modversions``), read
    from its ``.modinfo`` as ``modinfo -F vermagic`` does; None when it has none or cannot be
    decompressed. Its first word is the release of the kernel the module was built for."""
    data = _read_module(Path(path))
    if data is None:
        return None
    for key, value in _modinfo(data, str(path)):
        if key == "vermagic":
            return value
    return None


def modules_vermagic(modules_dir: Path) -> tuple[str, str] | None:
    """(a module's path relative to ``modules_dir``, its vermagic) for the first module of
    ``modules.dep`` that has one; None when the dir holds no module (all built in)."""
    modules_dir = Path(modules_dir)
    for line in _lines(modules_dir / "modules.dep"):
        rel = line.partition(":")[0].strip()
        if not rel or not (modules_dir / rel).is_file():
            continue
        try:
            found = vermagic(modules_dir / rel)
        except (OSError, ValueError, lzma.LZMAError, EOFError):
            continue
        if found:
            return rel, found
    return None
