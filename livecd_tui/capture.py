"""The preview: what the system stage will pack, what it leaves out and why, and how big
the squashfs and the ISO will be, before anything is built.

The walk applies exactly the excludes mksquashfs gets (``livecd_tui.excludes`` models its
matching): the profile's ``system.excludes``, the work dir, and the scrub's patterns. The
size comes from a sample: about ``SAMPLE_BYTES`` of the data, taken evenly along the files
in the order mksquashfs reads them (small files whole, big ones in block-aligned pieces), is
packed by the real mksquashfs with the profile's compressor and block size; its data part
is scaled by the share of the bytes it holds, its metadata (inode and directory tables) by
the number of entries. ``space_needed`` is the one estimate of the work dir's needs, used by
the preflight stage as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from livecd_tui import excludes, layers, procs, scrub
from livecd_tui.build import Build
from livecd_tui.scrub import human

MIB = 1024 * 1024
#: How much of the data the estimate packs for real.
SAMPLE_BYTES = 32 * MIB
#: Headroom of the work dir for the kernel, the initrd and the boot loader's files.
HEADROOM = 128 * MIB
#: Capacity of each target medium (iso.medium), in bytes; None: no limit.
MEDIA: dict[str, tuple[str, int | None]] = {
    "cd": ("a CD (700 MB)", 360_000 * 2048),
    "dvd": ("a DVD (4.7 GB)", 2_295_104 * 2048),
    "dvd-dl": ("a dual-layer DVD (8.5 GB)", 4_171_712 * 2048),
    "usb": ("a USB stick", None),
}


@dataclass
class TopLevel:
    """One top-level entry the image holds, with what is packed below it."""

    name: str
    link: str = ""
    files: int = 0
    dirs: int = 0
    links: int = 0
    other: int = 0
    size: int = 0


@dataclass
class LeftOut:
    """Everything one exclude pattern leaves out."""

    pattern: str
    reason: str
    option: str
    paths: list[str] = field(default_factory=list)
    files: int = 0
    size: int = 0


@dataclass
class Capture:
    """What the system stage would pack, found by walking the root with its excludes."""

    root: Path
    sources: list[TopLevel] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    #: Top-level entries of the root the image does not hold, and why.
    not_packed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[scrub.Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    #: Regular files in the order mksquashfs reads them: (image path, host path, size);
    #: a hard link's second name has size 0 (its data is stored once).
    files: list[tuple[str, Path, int]] = field(default_factory=list)
    #: A temporary root made for the preview (the busybox system); removed by ``close``.
    scratch: Path | None = None
    #: Files whose content another packed file has (mksquashfs stores it once), and bytes.
    duplicates: int = 0
    duplicate_bytes: int = 0

    @property
    def size(self) -> int:
        return sum(t.size for t in self.sources)

    @property
    def entries(self) -> int:
        return sum(1 + t.files + t.dirs + t.links + t.other for t in self.sources)

    def close(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


@dataclass
class Estimate:
    """The sizes a build will have, from a sample."""

    compressor: str
    block_size: int
    squashfs: int
    #: The ISO's parts: squashfs, kernel, initrd, /etc archive, boot loader.
    parts: dict[str, int]
    sample_bytes: int
    sample_files: int
    data_bytes: int
    sample_image: int
    seconds: float
    #: How long mksquashfs will take for the whole system, scaled from the sample.
    pack_seconds: float

    @property
    def iso(self) -> int:
        return sum(self.parts.values())


# -- the walk ----------------------------------------------------------------------------
Log = Callable[[str], None]


def scan(
    build: Build, log: Log | None = None, with_scrub: bool = True, details: bool = True
) -> Capture:
    """Walk what the system stage would pack (without packing it).

    For ``system.source = "busybox"`` a scratch busybox system is made (as the stage makes
    it), unless the stage's own is there already. Without ``details`` only the packed
    entries are counted (no sizes of what is left out, no duplicates): the preflight's need.
    """
    from livecd_tui.stages.system import (
        ALWAYS_EXCLUDED,
        all_root,
        exclude_patterns,
        squashfs_sources,
    )

    p = build.profile
    capture = Capture(build.system_root)
    if p["system.source"] == "busybox":
        capture.root = _busybox_root(build, capture, log)
    root = capture.root
    sources = squashfs_sources(build, root)
    other = exclude_patterns(build, root)
    plan = scrub.ScrubPlan()
    if with_scrub:
        try:
            plan = scrub.make_plan(build, root, sources, all_root=all_root(build))
        except scrub.ScrubError as err:
            capture.notes.append(f"{err} ({err.hint})" if err.hint else str(err))
            plan = scrub.ScrubPlan(patterns=scrub.static_patterns(build))
        capture.changed = scrub.changed_findings(plan, sources, homes=True)
        capture.notes += plan.notes
    capture.notes += [f"warning: {p.warning}" for p in other if p.warning]
    scrub_patterns = plan.all_patterns()
    replaced = {id(x) for x in scrub_patterns} - {id(x) for x in plan.patterns}
    patterns = [*other, *scrub_patterns]
    groups: dict[int, LeftOut] = {}
    tops: dict[str, TopLevel] = {}
    seen: set[tuple[int, int]] = set()
    for entry in excludes.walk(root, sources, patterns, capture.unreadable):
        top_name = entry.relpath.split("/")[0]
        pattern = entry.excluded_by
        if pattern is not None:
            if id(pattern) in replaced:
                continue
            group = groups.setdefault(
                id(pattern), LeftOut(pattern.text, pattern.reason, pattern.option)
            )
            files, size = (
                (excludes.tree_totals(root / entry.relpath) if details else (0, 0))
                if entry.is_dir
                else (1, entry.st.st_size)
            )
            group.paths.append(entry.relpath + ("/" if entry.is_dir else ""))
            group.files += files
            group.size += size
            continue
        top = tops.setdefault(top_name, TopLevel(top_name))
        mode = entry.st.st_mode
        if entry.relpath == top_name:
            if stat.S_ISLNK(mode):
                top.link = os.readlink(root / top_name)
            if not stat.S_ISDIR(mode):
                _count(top, entry, capture, seen, root)
            continue
        _count(top, entry, capture, seen, root)
    _add_modules(build, capture, tops, log)
    if details:
        _find_duplicates(capture)
    capture.sources = [tops[name] for name in sources if name in tops]
    capture.left_out = sorted(groups.values(), key=lambda g: (-g.size, g.pattern))
    capture.not_packed = _not_packed(build, root, sources, ALWAYS_EXCLUDED)
    return capture


def _count(
    top: TopLevel, entry: excludes.Entry, capture: Capture, seen: set[tuple[int, int]], root: Path
) -> None:
    mode = entry.st.st_mode
    if stat.S_ISDIR(mode):
        top.dirs += 1
    elif stat.S_ISLNK(mode):
        top.links += 1
    elif stat.S_ISREG(mode):
        top.files += 1
        size = entry.st.st_size
        if entry.st.st_nlink > 1:
            key = (entry.st.st_dev, entry.st.st_ino)
            if key in seen:
                size = 0
            seen.add(key)
        top.size += size
        capture.files.append((entry.relpath, root / entry.relpath, size))
    else:
        top.other += 1


#: Files up to this size are compared whole; bigger ones by their first and last part.
WHOLE = 16 * 1024
ENDS = 8 * 1024


def _find_duplicates(capture: Capture) -> None:
    """Mark files whose content an earlier packed file has (size 0 in ``files``), as
    mksquashfs stores such a file once. Only files of equal size are read: whole when small,
    their first and last 8 KiB otherwise."""
    by_size: dict[int, list[int]] = {}
    for index, (_, _, size) in enumerate(capture.files):
        if size:
            by_size.setdefault(size, []).append(index)
    for size, indexes in by_size.items():
        if len(indexes) < 2:
            continue
        seen: set[bytes] = set()
        for index in indexes:
            rel, path, _ = capture.files[index]
            try:
                with open(path, "rb") as handle:
                    if size <= WHOLE:
                        key = handle.read()
                    else:
                        key = handle.read(ENDS)
                        handle.seek(size - ENDS)
                        key += handle.read(ENDS)
            except OSError:
                continue
            digest = hashlib.blake2b(key, digest_size=16).digest()
            if digest in seen:
                capture.files[index] = (rel, path, 0)
                capture.duplicates += 1
                capture.duplicate_bytes += size
            else:
                seen.add(digest)


def _busybox_root(build: Build, capture: Capture, log: Log | None) -> Path:
    """The busybox system the stage made, or a scratch one made the same way."""
    made = build.done_dir("system") / "root"
    if made.is_dir():
        return made
    from livecd_tui import fileops
    from livecd_tui.stages.system import busybox_root_ops

    scratch = Path(tempfile.mkdtemp(prefix="livecd-capture-"))
    capture.scratch = scratch
    log = log or (lambda line: None)
    fileops.run(list(busybox_root_ops(build, scratch / "root", log)), log)
    return scratch / "root"


def _add_modules(
    build: Build, capture: Capture, tops: dict[str, TopLevel], log: Log | None
) -> None:
    """The kernel's modules the image gets (system.modules) from outside its root: into the
    busybox system, or into a real root that lacks the CD kernel's modules."""
    from livecd_tui.stages.kernel import kernel_info
    from livecd_tui.stages.system import image_dir, modules_from_outside

    if build.profile["system.modules"] == "none":
        return
    info = kernel_info(build)
    where = "lib/modules"
    if build.profile["system.source"] == "busybox":
        if (capture.root / "lib" / "modules").is_dir() and any(
            (capture.root / "lib" / "modules").iterdir()
        ):
            return  # the stage's own root has them already
    elif modules_from_outside(build, capture.root):
        where, _missing = image_dir(capture.root, "lib/modules", list(tops))
        capture.notes.append(
            f"the kernel's modules come from {info.modules_dir} (the root "
            f"has none for {info.release}): /{where}/{info.release}"
        )
    else:
        return
    if info.modules_dir is None or not info.modules_dir.is_dir():
        return
    if build.profile["system.modules"] == "all":
        relpaths = [
            str(Path(d, f).relative_to(info.modules_dir))
            for d, _, names in os.walk(info.modules_dir)
            for f in sorted(names)
        ]
    else:
        from livecd_tui.stages.cdmodules import initrd_modules

        try:
            relpaths = initrd_modules(build, log or (lambda line: None))
        except Exception as err:  # an unresolvable module is the stage's error to report
            capture.notes.append(f"the initrd's modules cannot be listed: {err}")
            return
        relpaths += [n for n in os.listdir(info.modules_dir) if n.startswith("modules.")]
    name = where.split("/")[0]
    top = tops.setdefault(name, TopLevel(name))
    for rel in relpaths:
        path = info.modules_dir / rel
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            top.files += 1
            top.size += size
            capture.files.append((f"{where}/{info.release}/{rel}", path, size))


def _not_packed(
    build: Build, root: Path, sources: Sequence[str], always: Sequence[str]
) -> list[tuple[str, str]]:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    writable = build.method.writable
    out = []
    for name in names:
        if name in sources:
            continue
        if name in always:
            why = "never packed (filled at boot)"
        elif name in writable.archive_dirs():
            why = "in the /etc archive (writable stage), not the squashfs"
        elif name in writable.empty_dirs():
            why = "made empty at boot (writable.empty_dirs)"
        else:
            why = "not in system.dirs"
        out.append((name, why))
    return out


# -- the estimate --------------------------------------------------------------------------
def estimate(
    build: Build, capture: Capture, budget: int = SAMPLE_BYTES, log: Log | None = None
) -> Estimate:
    """The squashfs's and the ISO's sizes, from packing a sample with the real mksquashfs."""
    p = build.profile
    block = int(p["system.block_size"]) * 1024
    compressor = p["system.compressor"]
    unit = max(128 * 1024, block)
    pieces = _sample(capture.files, budget, unit)
    sample_bytes = sum(length for _, _, _, length in pieces)
    cpus = build.squashfs_cpus
    with tempfile.TemporaryDirectory(prefix="livecd-sample-") as tmp:
        tree = Path(tmp) / "sample"
        tree.mkdir()
        entries = _write_sample(tree, pieces)
        image = Path(tmp) / "sample.squashfs"
        argv = [
            "mksquashfs",
            str(tree),
            str(image),
            "-noappend",
            "-no-progress",
            "-all-root",
            "-comp",
            compressor,
            "-b",
            f"{block // 1024}K",
            "-processors",
            str(cpus),
        ]
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        result = procs.run(argv, env=env)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
        sample_image = image.stat().st_size
    tables = sum(
        int(x) for x in re.findall(r"(?:Inode|Directory) table size (\d+) bytes", result.stdout)
    )
    data = max(sample_image - tables, 0)
    total = sum(size for _, _, size in capture.files)
    scale = total / sample_bytes if sample_bytes else 0.0
    per_entry = tables / max(entries, 1)
    squashfs = int(data * scale + per_entry * capture.entries) + 4096
    if log:
        log(
            f"sample: {human(sample_bytes)} of {human(total)} in {len(pieces)} pieces, packed "
            f"to {human(sample_image)} in {seconds:.1f} s"
        )
    return Estimate(
        compressor,
        block,
        squashfs,
        iso_parts(build, squashfs),
        sample_bytes,
        len(pieces),
        total,
        sample_image,
        seconds,
        seconds * max(scale, 1.0),
    )


def _sample(
    files: Sequence[tuple[str, Path, int]], budget: int, unit: int
) -> list[tuple[str, Path, int, int]]:
    """Pieces (image path, host path, offset, length) taken evenly along the data: the
    files in order are cut into units of ``unit`` bytes (small files grouped whole, big
    ones in pieces), and every k-th unit is taken."""
    units: list[list[tuple[str, Path, int, int]]] = [[]]
    filled = 0
    for rel, path, size in files:
        if size == 0:
            continue
        offset = 0
        while size - offset >= unit:
            units.append([(f"{rel}.{offset}", path, offset, unit)])
            offset += unit
        rest = size - offset
        if rest:
            name = rel if offset == 0 else f"{rel}.{offset}"
            units[0].append((name, path, offset, rest))
            filled += rest
            if filled >= unit:
                units.append(units[0])
                units[0] = []
                filled = 0
    if units[0]:
        units.append(units[0])
    units = units[1:]
    wanted = max(1, budget // unit)
    if len(units) <= wanted:
        return [piece for u in units for piece in u]
    step = len(units) / wanted
    return [piece for i in range(wanted) for piece in units[int((i + 0.5) * step)]]


def _write_sample(tree: Path, pieces: Sequence[tuple[str, Path, int, int]]) -> int:
    """Copy the pieces into ``tree`` under their image paths; the number of entries made."""
    made_dirs: set[Path] = set()
    entries = 0
    for rel, path, offset, length in pieces:
        target = tree / rel
        if target.parent not in made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(target.parent)
        try:
            with open(path, "rb") as src, open(target, "wb") as dst:
                src.seek(offset)
                dst.write(src.read(length))
            entries += 1
        except OSError:
            continue
    dirs = {d for m in made_dirs for d in [m, *m.parents] if tree in [d, *d.parents]}
    return entries + len(dirs)


def iso_parts(build: Build, squashfs: int) -> dict[str, int]:
    """The ISO's parts: the squashfs estimate and the others, measured when built already."""
    from livecd_tui.stages.kernel import kernel_info

    p = build.profile
    method = build.method
    parts = {"squashfs": squashfs}
    kernel = build.done_dir("kernel") / "vmlinuz"
    if not kernel.is_file():
        kernel = kernel_info(build).image
    parts["kernel"] = _size(kernel) or 10 * MIB
    parts["initrd"] = _size(build.done_dir("initrd") / "initrd.img") or _initrd_guess(build)
    name = method.writable.archive_name()
    if name:
        built = _size(build.done_dir("writable") / name)
        if built:
            parts["/etc archive"] = built
        elif method.writable.linked_root:
            parts["/etc archive"] = (
                sum(_du(build.system_root / d.strip("/")) for d in method.writable.archive_dirs())
                // 4
            )
        else:
            overrides = p.resolve_path("writable.overrides")
            parts["/etc archive"] = _du(overrides) // 4 if overrides else 0
    parts["boot loader"] = method.loader.size_estimate
    return parts


def _initrd_guess(build: Build) -> int:
    """An initrd not built yet: busybox and the modules it loads, compressed to about
    half (modules already compressed stay as they are), plus its libraries and script."""
    from livecd_tui.stages.cdmodules import initrd_modules
    from livecd_tui.stages.kernel import kernel_info
    from livecd_tui.toolbox import busybox_path

    total = _size(busybox_path(build.profile)) // 2 + 512 * 1024
    info = kernel_info(build)
    try:
        modules = initrd_modules(build, lambda line: None) if info.modules_dir else []
    except Exception:
        return 6 * MIB
    for rel in modules:
        size = _size(info.modules_dir / rel) if info.modules_dir else 0
        total += size if rel.endswith((".xz", ".zst", ".gz")) else size * 2 // 5
    return total


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _du(path: Path) -> int:
    return excludes.tree_totals(path)[1]


# -- space and fit ---------------------------------------------------------------------------
def space_needed(packed_bytes: int, squashfs_bytes: int | None = None) -> int:
    """Bytes a build needs in its work dir: the squashfs (half the packed bytes, unless a
    better estimate is given), the ISO as big again, and headroom for the other files."""
    squashfs = packed_bytes // 2 if squashfs_bytes is None else squashfs_bytes
    return 2 * squashfs + HEADROOM


def packed_bytes(build: Build) -> int:
    """The bytes the system stage packs (excludes applied), for the space estimate."""
    if build.profile["system.source"] != "root":
        return 64 * MIB
    return scan(build, with_scrub=False, details=False).size


def free_space(path: Path) -> int:
    """Free bytes on the filesystem of ``path`` (or of its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return 0


def warnings(build: Build, capture: Capture, est: Estimate | None) -> list[str]:
    """What would make the build fail or the ISO useless: it does not fit the medium, the
    work dir is too small."""
    out = []
    medium = build.profile["iso.medium"]
    label, capacity = MEDIA[medium]
    if est is not None and capacity is not None and est.iso > capacity:
        out.append(
            f"the ISO (about {human(est.iso)}) will not fit {label}, "
            f"{human(capacity)}: leave more out (system.excludes, system.dirs), use a "
            'stronger compressor (system.compressor = "xz"), or choose a bigger '
            "iso.medium"
        )
    needed = space_needed(capture.size, est.squashfs if est else None)
    free = free_space(build.work)
    if free < needed:
        out.append(
            f"the work dir {build.work} has {human(free)} free, the build needs about "
            f"{human(needed)}: free some space or set build.work_dir"
        )
    return out


# -- the report ----------------------------------------------------------------------------
def render(
    build: Build,
    capture: Capture,
    est: Estimate | None,
    problems: Sequence[str],
    every_path: bool = False,
    examples: int = 3,
) -> list[str]:
    """The preview as text lines of at most about 78 columns (the CLI prints them, the TUI
    shows them), long notes and warnings wrapped."""
    p = build.profile
    where = (
        "a busybox system, made as the system stage makes it"
        if p["system.source"] == "busybox"
        else str(capture.root)
    )
    lines = [
        f"Preview of profile {p.name}: what the system image will hold",
        f"packed from {where}",
        "",
    ]
    lines.append(f"{'packed':28} {'files':>9} {'dirs':>7} {'links':>7} {'size':>11}")
    for top in capture.sources:
        name = f"{top.name} -> {top.link}" if top.link else top.name
        lines.append(
            f"  {name:26} {top.files:>9,} {top.dirs:>7,} {top.links:>7,} {human(top.size):>11}"
        )
    lines.append(
        f"  {'total':26} {sum(t.files for t in capture.sources):>9,} "
        f"{sum(t.dirs for t in capture.sources):>7,} "
        f"{sum(t.links for t in capture.sources):>7,} {human(capture.size):>11}"
    )
    lines += ["", "left out, by pattern: why [option]"]
    if not capture.left_out:
        lines.append("  nothing")
    for group in capture.left_out:
        entries = len(group.paths)
        lines.append(
            f"  {group.pattern}  ({entries:,} entr{'y' if entries == 1 else 'ies'}, "
            f"{group.files:,} files, {human(group.size)})"
        )
        lines += _wrap(f"{group.reason} [{group.option}]", "      ")
        shown = group.paths if every_path else group.paths[:examples]
        lines += [f"      {path}" for path in shown]
        if len(group.paths) > len(shown):
            lines.append(
                f"      ... and {len(group.paths) - len(shown):,} more (--all, or a: every path)"
            )
    if capture.not_packed:
        lines += ["", "not in the image: top-level entries of the root"]
        by_reason: dict[str, list[str]] = {}
        for name, why in capture.not_packed:
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            lines += _wrap(f"{' '.join(names)}: {why}", "  ")
    if capture.changed:
        lines += ["", "replaced or added in the image"]
        for f in capture.changed:
            lines.append(f"  {f.path}")
            lines += _wrap(f"{f.why} [{f.option}]", "      ")
    if capture.duplicates:
        lines += [
            "",
            *_wrap(
                f"{capture.duplicates:,} files ({human(capture.duplicate_bytes)}) "
                "have the same content as another packed file: mksquashfs "
                "stores it once",
                "",
            ),
        ]
    if capture.unreadable:
        lines += ["", f"unreadable: {len(capture.unreadable)} (reading them needs root)"]
        lines += [f"  {u}" for u in capture.unreadable[:examples]]
    if est is not None:
        share = est.sample_bytes / est.data_bytes * 100 if est.data_bytes else 100.0
        lines += [
            "",
            f"estimate: {est.compressor}, {est.block_size // 1024} KiB blocks",
            f"  from a sample of {human(est.sample_bytes)} ({share:.1f} % of the data) "
            "packed by mksquashfs",
        ]
        ratio = est.squashfs / capture.size if capture.size else 0.0
        for part, size in est.parts.items():
            extra = (
                (
                    f"  {ratio:.0%} of the packed bytes; mksquashfs: about "
                    f"{_duration(est.pack_seconds)}"
                )
                if part == "squashfs"
                else ""
            )
            lines.append(f"  {part:14} {human(size):>11}{extra}")
        label, capacity = MEDIA[p["iso.medium"]]
        use = (
            f"  {est.iso / capacity:.0%} of {label} [iso.medium]"
            if capacity
            else f"  for {label} [iso.medium]"
        )
        lines.append(f"  {'ISO':14} {human(est.iso):>11}{use}")
    lines += ["", *layers_lines(build)]
    needed = space_needed(capture.size, est.squashfs if est else None)
    lines += [
        "",
        f"work dir {build.work}",
        f"  {human(free_space(build.work))} free, the build needs about {human(needed)}",
    ]
    if capture.notes:
        lines += ["", "notes"]
        for note in capture.notes:
            lines += _wrap(note, "  ")
    if problems:
        lines += ["", "WARNINGS"]
        for problem in problems:
            lines += _wrap(f"! {problem}", "  ", "    ")
    return lines


def layers_lines(build: Build) -> list[str]:
    """The system image's layers in the work dir, and what the next build does with them."""
    from livecd_tui.stages.system import layer_limits

    limits, why_not = layer_limits(build)
    state = layers.load_state(build.done_dir("system"))
    if not limits.enabled:
        return ["layers: off, every build packs the whole system", *_wrap(why_not, "  ")]
    if state is None:
        return [
            "layers: the next build packs the base image; later builds pack what changed",
            f"  (a full repack after {limits.max_layers} layers or {limits.repack_percent} % "
            "of the base)",
        ]
    lines = [f"layers: {len(state.layers)} on the base, in {build.done_dir('system')}"]
    lines += [f"  {line}" for line in layers.describe(state)]
    total = sum(i.size for i in state.layers)
    base = state.images[0].size or 1
    lines.append(
        f"  the layers are {total * 100 // base} % of the base; a full repack after "
        f"{limits.max_layers} layers or {limits.repack_percent} %"
    )
    return lines


def _wrap(text: str, indent: str, rest: str | None = None) -> list[str]:
    import textwrap

    return textwrap.wrap(
        text,
        78,
        initial_indent=indent,
        subsequent_indent=indent if rest is None else rest,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [indent]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class CaptureError(Exception):
    """The preview cannot be made (no busybox for the demo system, no mksquashfs)."""


@dataclass
class Preview:
    """Everything the preview shows, for the CLI and the TUI."""

    capture: Capture
    estimate: Estimate | None
    warnings: list[str]
    lines: list[str]


def preview(
    build: Build,
    sample: bool = True,
    budget: int = SAMPLE_BYTES,
    every_path: bool = False,
    log: Log | None = None,
) -> Preview:
    """Scan, estimate and render: what ``livecd-tui capture`` and the TUI's view show."""
    from livecd_tui.engine import StepFailed

    try:
        capture = scan(build, log)
    except StepFailed as err:
        raise CaptureError(f"{err} ({err.hint})" if err.hint else str(err)) from None
    try:
        est = estimate(build, capture, budget, log) if sample else None
    except FileNotFoundError:
        raise CaptureError(
            "mksquashfs is not installed (Debian: squashfs-tools); "
            "use --no-estimate to only walk the system"
        ) from None
    except RuntimeError as err:
        raise CaptureError(str(err)) from None
    finally:
        capture.close()
    problems = warnings(build, capture, est)
    lines = render(build, capture, est, problems, every_path)
    return Preview(capture, est, problems, lines)
