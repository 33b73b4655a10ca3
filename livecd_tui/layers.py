"""The system image in layers: a base squashfs, and each rebuild's difference on top of it.

The first build packs the whole root (the base, ``system.squashfs``) and keeps the manifest
of what it packed (:mod:`livecd_tui.manifest`). A rebuild walks the root again (stat only),
compares, and packs only the difference into ``layer-NN.squashfs``: new and changed entries,
changed metadata, and each removed entry as an overlayfs whiteout (a character device 0/0).
The live system stacks them with overlayfs, newest first, the base last.

Packing is one mksquashfs command either way, so that ``plan`` and the exported script show
the command that really runs: ``mksquashfs SOURCES pack.squashfs ... -ef pack.exclude -pf
pack.pseudo``. For the base, :func:`prepare` writes the scrub's lists there; for a layer, it
excludes every source and defines the difference as pseudo files (``cat`` of the root's
file, a link's target, a whiteout). :func:`finish` then names the image, links the earlier
images in, and records the layers, their sums and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from livecd_tui import excludes, manifest
from livecd_tui.manifest import file_sha256
from livecd_tui.scrub import EXCLUDE_FILE, human, pseudo_name

#: The stage's files: the images, what they hold, and mksquashfs's inputs for this build.
BASE = "system.squashfs"
STATE = "layers.json"
MANIFEST = "manifest.json.gz"
SUMS = "SHA256SUMS"
PACK_IMAGE = "pack.squashfs"
PACK_EXCLUDE = "pack.exclude"
PACK_PSEUDO = "pack.pseudo"
#: The names this build's layer hides (its whiteouts), one per line.
PACK_WHITEOUTS = "pack.whiteouts"
DECISION = "pack.json"
#: Bumped when the state's meaning changes: an older state means a full repack.
FORMAT = 1


def layer_name(number: int) -> str:
    """The file of the ``number``-th layer (1 is the first on top of the base)."""
    return f"layer-{number:02d}.squashfs"


@dataclass
class Image:
    """One image of the stack: its file in the stage dir, size, sha256, entries packed."""

    file: str
    size: int
    sha256: str
    entries: int
    removed: int = 0


@dataclass
class State:
    """What the system stage made: the base first, then the layers, oldest first."""

    key: str
    images: list[Image] = field(default_factory=list)

    @property
    def layers(self) -> list[Image]:
        return self.images[1:]

    def save(self, path: Path) -> None:
        data = {"format": FORMAT, "key": self.key, "images": [asdict(i) for i in self.images]}
        path.write_text(json.dumps(data, indent=1) + "\n")


def load_state(stage_dir: Path) -> State | None:
    """The layers a finished system stage made, or None (none, damaged, other format)."""
    try:
        data = json.loads((stage_dir / STATE).read_text())
        if data.get("format") != FORMAT:
            return None
        return State(data["key"], [Image(**i) for i in data["images"]])
    except (OSError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class Limits:
    """When layering stops and the next build packs one base again."""

    enabled: bool = True
    #: More layers than this: repack.
    max_layers: int = 4
    #: The layers' total size over this percentage of the base's: repack.
    repack_percent: int = 25


@dataclass
class Decision:
    """What this build packs: ``full`` (a new base) or ``layer``, and why."""

    kind: str
    why: str
    number: int = 0
    carried: int = 0
    removed: int = 0
    carried_bytes: int = 0


# --- pseudo-file definitions ------------------------------------------------------------


def split_pseudo(line: str) -> tuple[str, str]:
    """A definition's name (unquoted) and the rest of the line."""
    if not line.startswith('"'):
        name, _, rest = line.partition(" ")
        return name, rest
    chars, i = [], 1
    while i < len(line) and line[i] != '"':
        if line[i] == "\\" and i + 1 < len(line):
            i += 1
        chars.append(line[i])
        i += 1
    return "".join(chars), line[i + 1 :].lstrip(" ")


def pseudo_records(lines: Iterable[str], staged_under: Path) -> dict[str, manifest.Record]:
    """The entries pseudo-file definitions add to the image, as manifest records. A file
    made by ``cat`` of a file the stage wrote (a scrub replacement) is known by its sha256,
    one ``cat`` of a file elsewhere (a kernel module) by that file's size and mtime."""
    found: dict[str, manifest.Record] = {}
    for line in lines:
        if not line.strip():
            continue
        name, rest = split_pseudo(line)
        kind, mode, uid, gid, target = [*rest.split(" ", 4), ""][:5]
        size, mtime = 0, 0
        if kind == "f" and target.startswith("cat "):
            source = Path(shlex.split(target[4:])[0])
            st = source.stat()
            if source.is_relative_to(staged_under):
                target = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
            size, mtime = st.st_size, st.st_mtime_ns
        record_kind = {"s": "l", "i": "p"}.get(kind, kind)
        found[name] = manifest.Record(
            record_kind, int(mode, 8), int(uid), int(gid), size, mtime, 0, target
        )
    return found


def image_manifest(
    root: Path,
    sources: Sequence[str],
    patterns: Sequence[excludes.Pattern],
    pseudo: dict[str, manifest.Record],
) -> manifest.Manifest:
    """What the image holds: the walk mksquashfs makes, with the pseudo files on top."""
    found = manifest.take(root, sources, patterns)
    found.update(pseudo)
    return dict(sorted(found.items(), key=lambda item: item[0].split("/")))


# --- deciding and packing ---------------------------------------------------------------


def decide(
    previous_dir: Path,
    key: str,
    limits: Limits,
    new: manifest.Manifest,
) -> tuple[Decision, manifest.Diff | None]:
    """Whether this build packs a layer on the previous build's images, or a new base."""
    if not limits.enabled:
        return Decision("full", "layers are off (system.layers)"), None
    state = load_state(previous_dir)
    old = manifest.load(previous_dir / MANIFEST)
    if state is None or old is None or not state.images:
        return Decision("full", "no earlier image to add a layer to"), None
    if state.key != key:
        return Decision(
            "full", "the packing options or the packed dirs changed since the base"
        ), None
    missing = [i.file for i in state.images if not (previous_dir / i.file).is_file()]
    if missing:
        return Decision("full", f"the earlier image {missing[0]} is gone"), None
    layers = state.layers
    if len(layers) >= limits.max_layers:
        return Decision(
            "full", f"{len(layers)} layers already (system.max_layers = {limits.max_layers})"
        ), None
    base, total = state.images[0].size, sum(i.size for i in layers)
    if total * 100 > base * limits.repack_percent:
        return Decision(
            "full",
            f"the layers hold {total * 100 // max(base, 1)} % of the base's size "
            f"(system.repack_percent = {limits.repack_percent})",
        ), None
    change = manifest.diff(old, new)
    carried = change.carried()
    size = sum(new[n].size for n in carried if new[n].kind == "f")
    return Decision(
        "layer",
        "the root changed since the last build" if change else "nothing changed in the root",
        number=len(layers) + 1,
        carried=len(carried),
        removed=len(change.removed),
        carried_bytes=size,
    ), change


def layer_definitions(
    root: Path,
    new: manifest.Manifest,
    change: manifest.Diff,
    pseudo_lines: dict[str, str],
) -> tuple[list[str], str]:
    """The pseudo-file definitions of a layer holding ``change``, or ([], why not) when a
    layer cannot hold it (the image then gets a new base)."""
    carried = change.carried()
    carried_set = set(carried)
    needed: dict[str, None] = {}
    for name in [*carried, *change.removed]:
        parts = name.split("/")
        for cut in range(1, len(parts)):
            needed.setdefault("/".join(parts[:cut]))
    for name in carried:
        needed.setdefault(name)
    newline = [name for name in (*needed, *change.removed) if "\n" in name]
    if newline:
        return [], f"{newline[0]!r} has a newline, which a pseudo file cannot name"
    lines = []
    for name in sorted(needed, key=lambda n: n.split("/")):
        if name in pseudo_lines:
            lines.append(pseudo_lines[name])
            continue
        rec = new[name]
        head = f"{pseudo_name(name)} {{}} {rec.mode:o} {rec.uid} {rec.gid}"
        if rec.kind == "d":
            lines.append(head.format("d"))
            continue
        if name not in carried_set:
            continue  # only directories are defined for what they hold
        path = root / name
        if rec.kind == "f":
            if _has_xattrs(path):
                return [], (
                    f"/{name} has extended attributes (capabilities), which a layer made "
                    "by mksquashfs 4.5's pseudo files cannot hold"
                )
            lines.append(head.format("f") + f" cat {shlex.quote(str(path))}")
        elif rec.kind == "l":
            if "\n" in rec.target:
                return [], f"the link /{name} points at a name with a newline"
            lines.append(head.format("s") + f" {rec.target}")
        elif rec.kind in "cb":
            major, minor = rec.target.split(",")
            lines.append(head.format(rec.kind) + f" {major} {minor}")
        elif rec.kind in "ps":
            lines.append(head.format("i") + (" f" if rec.kind == "p" else " s"))
    lines += [f"{pseudo_name(name)} c 0 0 0 0 0" for name in change.removed]
    return lines, ""


def _has_xattrs(path: Path) -> bool:
    try:
        return bool(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return False


def prepare(
    root: Path,
    out: Path,
    previous_dir: Path,
    sources: Sequence[str],
    patterns: Sequence[excludes.Pattern],
    pseudo_files: Sequence[Path],
    key: str,
    limits: Limits,
) -> Decision:
    """Write mksquashfs's lists for this build (``pack.exclude``, ``pack.pseudo``) in
    ``out``: the whole root for a new base, only the difference for a layer."""
    scrub_excludes = _lines(out / EXCLUDE_FILE)
    walk_patterns = [*patterns, *(excludes.parse(p) for p in scrub_excludes)]
    definitions = [line for f in pseudo_files for line in _lines(f)]
    pseudo = pseudo_records(definitions, out)
    new = image_manifest(root, sources, walk_patterns, pseudo)
    manifest.save(new, out / MANIFEST)
    decision, change = decide(previous_dir, key, limits, new)
    whiteouts: list[str] = []
    if change is not None:
        by_name = {split_pseudo(line)[0]: line for line in definitions if line.strip()}
        lines, why_not = layer_definitions(root, new, change, by_name)
        if why_not:
            decision, change = Decision("full", why_not), None
        else:
            exclude = [excludes.escape(s) for s in sources]
            whiteouts = list(change.removed)
    if change is None:
        exclude, lines = scrub_excludes, definitions
    (out / PACK_EXCLUDE).write_text("".join(line + "\n" for line in exclude))
    (out / PACK_PSEUDO).write_text("".join(line + "\n" for line in lines))
    (out / PACK_WHITEOUTS).write_text("".join(name + "\n" for name in whiteouts))
    (out / DECISION).write_text(json.dumps(asdict(decision)) + "\n")
    return decision


def packed_a_layer(out: Path) -> bool:
    """Whether this build's ``pack.squashfs`` is a layer (not a new base)."""
    return bool(json.loads((out / DECISION).read_text())["kind"] == "layer")


def finish(out: Path, previous_dir: Path, key: str) -> State:
    """Name the packed image (the base, or the next layer), link the earlier images in from
    the previous build, and record the layers, their sums (``SHA256SUMS``) and the manifest."""
    decision = Decision(**json.loads((out / DECISION).read_text()))
    packed = out / PACK_IMAGE
    if decision.kind == "full":
        state = State(key)
    else:
        previous = load_state(previous_dir)
        assert previous is not None, "prepare decided on a layer without an earlier state"
        state = State(key, list(previous.images))
        for image in state.images:
            target = out / image.file
            target.unlink(missing_ok=True)
            os.link(previous_dir / image.file, target)
    if decision.kind == "full" or decision.carried or decision.removed:
        name = BASE if decision.kind == "full" else layer_name(decision.number)
        os.replace(packed, out / name)
        state.images.append(
            Image(
                name,
                (out / name).stat().st_size,
                file_sha256(out / name),
                decision.carried,
                decision.removed,
            )
        )
    else:
        packed.unlink()  # nothing changed: the earlier images are the image
    state.save(out / STATE)
    (out / SUMS).write_text("".join(f"{i.sha256}  {i.file}\n" for i in state.images))
    return state


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def describe(state: State) -> list[str]:
    """The images of a finished system stage, a line each (status, capture)."""
    lines = []
    for image in state.images:
        what = "base" if image.file == BASE else f"{image.entries} entries"
        if image.removed:
            what += f", {image.removed} removed"
        lines.append(f"{image.file}: {human(image.size)} ({what})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m livecd_tui.layers``: the layer steps of the exported build script.

    ``prepare ROOT OUT PREVIOUS --key K --source S... --exclude P... --pseudo F...`` writes
    mksquashfs's lists as livecd-tui does; ``finish OUT PREVIOUS --key K`` names the image and
    records the layers."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m livecd_tui.layers", description=main.__doc__)
    parser.add_argument("command", choices=("prepare", "finish"))
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--source", action="append", default=[])
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--pseudo", action="append", default=[], type=Path)
    parser.add_argument("--off", action="store_true")
    parser.add_argument("--max-layers", type=int, default=Limits.max_layers)
    parser.add_argument("--repack-percent", type=int, default=Limits.repack_percent)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            root, out, previous = args.paths
            limits = Limits(not args.off, args.max_layers, args.repack_percent)
            patterns = [excludes.parse(p) for p in args.exclude]
            decision = prepare(
                root, out, previous, args.source, patterns, args.pseudo, args.key, limits
            )
            print(summary(decision))
        else:
            out, previous = args.paths
            for line in describe(finish(out, previous, args.key)):
                print(line)
    except (OSError, ValueError) as err:
        print(f"livecd-tui layers: {err}", file=sys.stderr)
        return 1
    return 0


def summary(decision: Decision) -> str:
    """One line on what this build packs."""
    if decision.kind == "full":
        return f"packing the whole system as the base image: {decision.why}"
    if not decision.carried and not decision.removed:
        return "nothing changed in the root: the earlier images are kept as they are"
    return (
        f"packing layer {decision.number}: {decision.carried} entries "
        f"({human(decision.carried_bytes)} of files) and {decision.removed} "
        f"removed ({decision.why})"
    )


if __name__ == "__main__":
    sys.exit(main())
