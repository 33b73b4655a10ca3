"""Stage ``system``: pack the installed system into a squashfs image (method step 4).

``mksquashfs bin lib sbin usr SYSTEM`` as in the article, from the profile's root, with the
chosen compressor on all CPUs, fixed timestamps (SOURCE_DATE_EPOCH) so the image is
reproducible, and always without the work dir or the kernel's virtual filesystems.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from livecd_tui import elf, excludes, fileops, layers, scrub, toolbox
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.stages import cdmodules
from livecd_tui.stages.kernel import kernel_info
from livecd_tui.steps import Action, Step, command, shell_quote

#: Never packed, whatever the profile lists: the kernel fills them at boot.
ALWAYS_EXCLUDED = ("proc", "sys", "dev", "run", "tmp")
#: Links the dynamic loader path needs on merged-/usr systems (added when the root has them).
LOADER_DIRS = ("lib64", "lib32", "libx32")
#: Mount points the live system needs; made empty in the image.
MOUNT_POINTS = ("dev", "proc", "sys", "run", "tmp", "mnt", "media", "home", "root", "var")

INITTAB = """\
# /etc/inittab of the tiny busybox live system made by livecd-tui
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
tty1::respawn:/sbin/getty 38400 tty1
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""

RCS = """\
#!/bin/sh
# Bring up the tiny live system: kernel filesystems, hostname, a line the boot test can see.
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
hostname -F /etc/hostname
echo "livecd-tui: live system up, root is $(awk '$2 == "/" {print $3}' /proc/mounts | tail -n 1)"
# What the live system got from the boot: /etc overrides (motd), /var made at boot.
[ -f /etc/motd ] && cat /etc/motd
for d in /var/log /var/run /var/lock; do [ -d "$d" ] && echo "livecd-tui: $d is there"; done
"""


#: The files of the busybox live system, by path in its root.
BUSYBOX_FILES = {
    "etc/inittab": INITTAB,
    "etc/init.d/rcS": RCS,
    "etc/passwd": "root::0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\nutmp:x:43:\n",
    "etc/hostname": "livecd\n",
    "etc/fstab": "# the live system's root is set up by the initrd\n",
    "etc/shells": "/bin/sh\n",
    "etc/issue": "livecd-tui demo live system (busybox)\n\n",
}


def squashfs_sources(build: Build, root: Path) -> list[str]:
    """The top-level names packed: the profile's dirs, the loader links, /etc for overlay."""
    names = list(build.profile["system.dirs"])
    if not build.method.writable.linked_root and "etc" not in names:  # not in the archive
        names.append("etc")
    for extra in LOADER_DIRS:
        if extra not in names and os.path.lexists(root / extra):
            names.append(extra)
    return [n for n in names if n not in ALWAYS_EXCLUDED]


def busybox_root_ops(build: Build, root: Path, log: fileops.Log) -> Iterator[fileops.Op]:
    """A tiny but complete live system in ``root``: busybox, its applet links, an inittab
    and a getty."""
    busybox = toolbox.busybox_path(build.profile)
    if not busybox.is_file():
        yield toolbox.busybox_missing(busybox, initrd=False)
        return
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "lib", *MOUNT_POINTS):
        yield fileops.Mkdir(root / d)
    yield fileops.Chmod(root / "tmp", 0o1777)
    yield fileops.Chmod(root / "root", 0o700)
    yield fileops.Copy(busybox, root / "bin" / "busybox")
    yield fileops.Chmod(root / "bin" / "busybox", 0o755)
    for lib in elf.resolve_libraries([str(busybox)]):
        yield from fileops.install(Path("/"), lib, root)
    applets = toolbox.busybox_applets(busybox)
    made = {"bin", "sbin", "usr/bin", "usr/sbin"}
    for applet in [a for a in applets if Path(a).name != "busybox"]:
        link = root / applet.lstrip("/")
        if str(link.parent.relative_to(root)) not in made:
            made.add(str(link.parent.relative_to(root)))
            yield fileops.Mkdir(link.parent)
        yield fileops.Symlink(link, os.path.relpath(root / "bin" / "busybox", link.parent))
    for name, text in BUSYBOX_FILES.items():
        yield fileops.WriteFile(root / name, text.encode())
    yield fileops.Chmod(root / "etc/init.d/rcS", 0o755)
    log(f"made a busybox system with {len(applets)} applets in {root}")


def plan_system(build: Build) -> list[Step]:
    """Make or find the root, add the kernel's modules if needed, run mksquashfs."""
    p = build.profile
    out = build.partial_dir("system")
    steps: list[Step] = []
    busybox_source = p["system.source"] == "busybox"
    root = out / "root" if busybox_source else build.system_root
    kernel = kernel_info(build)

    if busybox_source:
        steps.append(
            fileops.action(
                "make a tiny system from busybox",
                lambda build, log: busybox_root_ops(build, out / "root", log),
                build,
            )
        )

    modules_mode = p["system.modules"]
    target = root / "lib" / "modules" / kernel.release
    if busybox_source:
        if modules_mode != "none" and kernel.modules_dir is not None:
            steps.append(check_modules_step(build, kernel.modules_dir, "the live system"))
            steps += _copy_modules_steps(build, kernel.modules_dir, target, modules_mode)
    elif modules_from_outside(build, root):
        assert kernel.modules_dir is not None
        # The root lacks the CD kernel's modules (it runs another kernel): they go into
        # the image from where they are, as pseudo files; the root is not touched.
        steps.append(check_modules_step(build, kernel.modules_dir, "the live system"))
        source = kernel.modules_dir
        if modules_mode == "initrd":
            source = out / OUTSIDE_MODULES / "lib" / "modules" / kernel.release
            steps += _copy_modules_steps(build, kernel.modules_dir, source, modules_mode)
        steps.append(outside_modules_step(build, root, source))
    elif modules_mode != "none" or target.is_dir():
        steps.append(check_modules_step(build, target, "the live system"))

    scrub_step, verify_step = scrub_steps(build, root)
    steps.append(scrub_step)
    steps.append(layers_prepare_step(build, root))
    mksquashfs_argv = mksquashfs_command(build, root)
    # mksquashfs 4.5 refuses SOURCE_DATE_EPOCH together with the explicit time flags.
    steps.append(
        command(
            mksquashfs_argv,
            "pack the system (or what changed in it, as a layer) into a squashfs image",
            cwd=root,
            unset_env=("SOURCE_DATE_EPOCH",),
            hint="Debian: squashfs-tools; LFS: build squashfs-tools from source",
        )
    )
    steps.append(verify_step)
    steps.append(layers_finish_step(build, root))
    return steps


def packing_key(build: Build, root: Path) -> str:
    """What a layer and the images under it must share: the root, mksquashfs's command (how
    many CPUs pack it and where the work dir is aside) and the layers' format."""
    argv = mksquashfs_command(build, root)
    at = argv.index("-processors")
    del argv[at : at + 2]
    # The work dir's own paths (its files, and its exclude when it lies in the root) are no
    # content: a work dir moved or copied keeps its layers.
    work = str(build.work)
    own = {excludes.escape(w) for w in _work_dir_excludes(build, root)}
    argv = [
        "$WORK" + a[len(work) :] if a.startswith(work + "/") else a for a in argv if a not in own
    ]
    text = f"layers {layers.FORMAT}\n{root}\n" + "\0".join(argv)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def layer_limits(build: Build) -> tuple[layers.Limits, str]:
    """When this build may add a layer, and why not when it may not."""
    p = build.profile
    why = ""
    if not p["system.layers"]:
        why = "system.layers is off"
    elif p["system.source"] == "busybox":
        why = "the busybox system is made anew by every build"
    elif build.method.writable.linked_root and not kernel_has_overlay(build):
        why = (
            "the classic method stacks layers with overlayfs, and the kernel's config "
            "has no OVERLAY_FS"
        )
    limits = layers.Limits(not why, p["system.max_layers"], p["system.repack_percent"])
    return limits, why


def kernel_has_overlay(build: Build) -> bool:
    """Whether the CD's kernel has overlayfs (built in or a module), by its config."""
    from livecd_tui.kernel import kconfig

    config = kernel_info(build).config
    try:
        values = kconfig.parse_config(config.read_text()) if config else {}
    except OSError:
        return False
    return values.get("OVERLAY_FS") in ("y", "m")


def layers_prepare_step(build: Build, root: Path) -> Action:
    """Decide whether this build packs a new base or a layer, and write mksquashfs's lists."""
    out = build.partial_dir("system")
    previous = build.done_dir("system")
    limits, why_not = layer_limits(build)
    pseudo = [out / scrub.PSEUDO_FILE]
    if modules_from_outside(build, root):
        pseudo.append(out / MODULES_PSEUDO)
    key = packing_key(build, root)

    def prepare(ctx: StepContext) -> None:
        sources = squashfs_sources(ctx.build, root)
        if why_not:
            ctx.log(f"no layers: {why_not}")
        decision = layers.prepare(
            root, ctx.out, previous, sources, exclude_patterns(ctx.build, root), pseudo, key, limits
        )
        ctx.log(layers.summary(decision))

    argv = [
        sys.executable,
        "-m",
        "livecd_tui.layers",
        "prepare",
        str(root),
        str(out),
        str(previous),
        f"--key={key}",
        *(f"--source={s}" for s in squashfs_sources(build, root)),
        *(f"--exclude={p.text}" for p in exclude_patterns(build, root)),
        *(f"--pseudo={p}" for p in pseudo),
        *(["--off"] if not limits.enabled else []),
        f"--max-layers={limits.max_layers}",
        f"--repack-percent={limits.repack_percent}",
    ]
    what = "a layer of what changed since the last build, or the whole system when "
    what += "there is none" if limits.enabled else f"the whole system ({why_not})"
    return Action(
        f"decide what to pack: {what}",
        prepare,
        (" ".join(shell_quote(a) for a in argv),),
    )


def layers_finish_step(build: Build, root: Path) -> Action:
    """Name the packed image, link the earlier ones in, record the layers and their sums."""
    out = build.partial_dir("system")
    previous = build.done_dir("system")
    key = packing_key(build, root)

    def finish(ctx: StepContext) -> None:
        state = layers.finish(ctx.out, previous, key)
        for line in layers.describe(state):
            ctx.log(line)

    argv = [sys.executable, "-m", "livecd_tui.layers", "finish", str(out), str(previous)]
    return Action(
        "name the image (the base or the next layer) and record the layers and their sums",
        finish,
        (" ".join(shell_quote(a) for a in [*argv, f"--key={key}"]),),
    )


def check_modules_step(build: Build, modules_dir: Path, what: str) -> Action:
    check = cdmodules.check(build, modules_dir, what)
    return Action(check.describe, lambda ctx: check.run(ctx.log), check.script)


def exclude_patterns(build: Build, root: Path) -> list[excludes.Pattern]:
    """The profile's excludes and the work dir as mksquashfs gets them (``-e``), each with
    why it is there; the scrub's come on top of these."""
    found = [
        excludes.parse(e.strip("/"), "listed in system.excludes", "system.excludes")
        for e in build.profile["system.excludes"]
        if e.strip("/")
    ]
    found += [
        excludes.parse(excludes.escape(w), "the work dir and the ISO's dir", "build.work_dir")
        for w in _work_dir_excludes(build, root)
    ]
    return found


def scrub_steps(build: Build, root: Path) -> tuple[Action, Action]:
    """Decide what the image leaves out and replaces (mksquashfs's -ef and -pf files), and,
    once mksquashfs ran, check the image: none of it is there."""
    out = build.partial_dir("system")
    image = out / layers.PACK_IMAGE
    scrubbed: list[tuple[scrub.ScrubPlan, list[scrub.Finding]]] = []

    def prepare(ctx: StepContext) -> None:
        sources = squashfs_sources(ctx.build, root)
        other = exclude_patterns(ctx.build, root)
        for pattern in other:
            if pattern.warning:
                ctx.log(f"warning: {pattern.warning}")
        try:
            plan, findings = scrub.scrub_squashfs(
                ctx.build, root, sources, other, ctx.out, all_root(ctx.build), ctx.log
            )
        except scrub.ScrubError as err:
            raise StepFailed(str(err), hint=err.hint, option=err.option) from None
        title = f"the system image ({', '.join(sources)} of {root})"
        lines = scrub.report(title, findings, plan.notes)
        for line in lines:
            ctx.log(line)
        full = scrub.report(title, findings, plan.notes, every_file=True)
        scrub.publish_report(ctx.build, "system", full, ctx.out)
        ctx.log(f"report, every file: {scrub.report_path(ctx.build)} once the stage is done")
        scrubbed[:] = [(plan, findings)]

    def verify(ctx: StepContext) -> None:
        if not scrubbed:
            raise StepFailed("the scrub step did not run before this check")
        plan, findings = scrubbed.pop()
        try:
            hidden = None
            if layers.packed_a_layer(ctx.out):
                hidden = (ctx.out / layers.PACK_WHITEOUTS).read_text().splitlines()
            problems = scrub.verify_image(image, findings, plan, hidden)
        except scrub.ScrubError as err:
            raise StepFailed(str(err), hint="Debian: squashfs-tools") from None
        if problems:
            raise StepFailed(
                "the image holds what the scrub left out: " + "; ".join(problems),
                hint="this is a bug in livecd-tui's exclude patterns; please "
                "report it with the scrub report",
            )
        removed = sum(f.action == "removed" for f in findings)
        ctx.log(
            f"checked the image: none of the {removed} removed entries is in it, and "
            "every replaced file holds livecd-tui's content"
        )
        if plan.scan:
            try:
                found = scrub.image_secrets(image, ctx.out / "check", plan.allow)
            except scrub.ScrubError as err:
                raise StepFailed(str(err), hint="Debian: squashfs-tools") from None
            if found:
                raise StepFailed(
                    "the image holds secrets the scrub report does not allow: " + "; ".join(found),
                    hint="list a file in system.scrub.allow to pack it, or "
                    "report this as a bug in livecd-tui's scrub",
                    option="system.scrub.allow",
                )
            ctx.log("checked the image's files: no secret in them but those allowed")

    return (
        Action(
            "scrub: choose what the image leaves out and replaces",
            prepare,
            tuple(
                fileops.render(
                    [
                        scrub.squashfs_at_run_time(
                            build,
                            root,
                            out,
                            squashfs_sources(build, root),
                            [p.text for p in exclude_patterns(build, root)],
                            all_root(build),
                        )
                    ]
                )
            ),
        ),
        Action(
            "check the image holds nothing the scrub left out",
            verify,
            # The exact paths left out, less those replaced by a pseudo file.
            (
                f"grep -v -e '^\\.\\.\\. ' -e '[][*?]' {shell_quote(out / scrub.EXCLUDE_FILE)} | "
                f"grep -v -x -F -f <(cut -d ' ' -f 1 {shell_quote(out / scrub.PSEUDO_FILE)}) | "
                f"grep -v -x -F -f {shell_quote(out / layers.PACK_WHITEOUTS)} "
                f"> {shell_quote(out / 'scrub.check')} || true",
                f"unsquashfs -l {shell_quote(image)} | sed 's|^squashfs-root/||' | "
                f"grep -x -F -f {shell_quote(out / 'scrub.check')} "
                "&& { echo 'livecd-build: the image holds scrubbed files' >&2; exit 1; } "
                "|| true",
                *scrub.check_image_script_lines(build, image, out / "check"),
            ),
        ),
    )


#: Where the system stage keeps the kernel's modules it adds from outside the root, and the
#: pseudo-file definitions that put them into the image.
OUTSIDE_MODULES = "modules"
MODULES_PSEUDO = "modules.pseudo"


def modules_from_outside(build: Build, root: Path) -> bool:
    """Whether the image gets the CD kernel's modules from outside a real root: the root
    has no modules of that release, and system.modules wants some."""
    if build.profile["system.source"] == "busybox" or build.profile["system.modules"] == "none":
        return False
    kernel = kernel_info(build)
    if kernel.modules_dir is None:
        return False
    target = root / "lib" / "modules" / kernel.release
    return not _same_dir(kernel.modules_dir, target) and not target.is_dir()


def image_dir(root: Path, rel: str, sources: Sequence[str]) -> tuple[str, list[str]]:
    """``rel`` as the image holds it: its links inside the root followed (``lib`` may be
    ``usr/lib``), and the directories on the way the image lacks (to make as pseudo dirs)."""
    parts = [p for p in rel.split("/") if p]
    for cut in range(len(parts), 0, -1):
        found = scrub.realpath_in(root, "/".join(parts[:cut]))
        if found is None or not found.is_dir():
            continue
        base = found.relative_to(root).as_posix() if found != root else ""
        if base and base.split("/")[0] not in sources:
            continue
        missing, path = [], base
        for name in parts[cut:]:
            path = f"{path}/{name}" if path else name
            missing.append(path)
        return path, missing
    missing, path = [], ""
    for name in parts:
        path = f"{path}/{name}" if path else name
        missing.append(path)
    return path, missing


def outside_modules_step(build: Build, root: Path, source: Path) -> Action:
    """Write the pseudo-file definitions that put the modules in ``source`` (the kernel's
    modules dir, or the initrd's modules staged) into the image under /lib/modules."""
    out = build.partial_dir("system")
    base, missing = image_dir(root, "lib/modules", squashfs_sources(build, root))

    def write(ctx: StepContext) -> None:
        release = kernel_info(ctx.build).release
        modules = source if source.is_dir() else source.parent / release
        lines = [f"{scrub.pseudo_name(d)} d 755 0 0" for d in [*missing, f"{base}/{release}"]]
        count = 0
        for dirpath, dirnames, filenames in os.walk(modules):
            dirnames.sort()
            inside = os.path.normpath(f"{base}/{release}/{os.path.relpath(dirpath, modules)}")
            lines += [f"{scrub.pseudo_name(inside + '/' + name)} d 755 0 0" for name in dirnames]
            for name in sorted(filenames):
                host = os.path.join(dirpath, name)
                if os.path.islink(host) or "\n" in host:
                    continue  # build/source links point at headers the CD does not have
                mode = stat.S_IMODE(os.stat(host).st_mode)
                lines.append(
                    f"{scrub.pseudo_name(inside + '/' + name)} f {mode:o} 0 0 "
                    f"cat {shell_quote(host)}"
                )
                count += 1
        (ctx.out / MODULES_PSEUDO).write_text("".join(line + "\n" for line in lines))
        ctx.log(
            f"the image gets {count} module files of {release} from {modules} at "
            f"/{base}/{release} (the root {root} has none of that release and is not "
            "changed)"
        )

    dirs = " ".join(shell_quote(d) for d in missing)
    return Action(
        "add the CD kernel's modules from outside the root (as pseudo files)",
        write,
        (
            f"release=$(cat {shell_quote(build.done_dir('kernel') / 'release')})",
            f'modules={shell_quote(source)}; [ -d "$modules" ] || '
            f'modules={shell_quote(source.parent)}/"$release"',
            f'base={shell_quote(base)}/"$release"',
            f'{{ for d in {dirs} "$base"; do echo "$d d 755 0 0"; done',
            '  (cd "$modules" && find . -mindepth 1 -type d | sort | while IFS= read -r d; do '
            'echo "$base/${d#./} d 755 0 0"; done',
            "   find . -type f | sort | while IFS= read -r f; do "
            'printf \'%s f %s 0 0 cat %q\\n\' "$base/${f#./}" "$(stat -c %a "$f")" '
            '"$modules/${f#./}"; done); } > ' + shell_quote(out / MODULES_PSEUDO),
        ),
    )


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _copy_modules_steps(build: Build, modules: Path, target: Path, mode: str) -> list[Step]:
    if mode == "all":
        return [
            command(["mkdir", "-p", target.parent], "make /lib/modules in the root"),
            command(["cp", "-a", modules, target], "give the live system all the kernel's modules"),
        ]

    def copy_selected(build: Build, log: fileops.Log) -> Iterator[fileops.Op]:
        try:
            selected = cdmodules.selected_modules(build, log)
        except StepFailed as err:  # the check before says what is wrong with the modules
            yield fileops.Fail(str(err), err.hint, err.option)
            return
        yield from cdmodules.copy_ops(build, selected, target.parents[2], every_index=True)
        if selected is not None:
            log(f"copied {len(selected)} modules the initrd loads into {target}")

    return [
        fileops.action("give the live system the modules the initrd loads", copy_selected, build)
    ]


def all_root(build: Build) -> bool:
    """Whether the image makes every file root's (the busybox system is made by whoever
    builds, and system.keep_owners can ask for it)."""
    return not build.profile["system.keep_owners"] or build.profile["system.source"] == "busybox"


def mksquashfs_command(build: Build, root: Path) -> list[str]:
    """The mksquashfs argv: sources relative to the root, reproducible, all CPUs."""
    p = build.profile
    out = build.partial_dir("system") / layers.PACK_IMAGE
    sources = squashfs_sources(build, root)
    cpus = build.squashfs_cpus
    argv = [
        "mksquashfs",
        *sources,
        str(out),
        "-noappend",
        "-comp",
        p["system.compressor"],
        "-b",
        f"{int(p['system.block_size'])}K",
        "-processors",
        str(cpus),
        "-mkfs-time",
        str(build.epoch),
        "-all-time",
        str(build.epoch),
        "-root-mode",
        "755",
        "-no-progress",
    ]
    if all_root(build):
        argv.append("-all-root")
    if len(sources) == 1:
        # One source would otherwise become the image's root, and the excludes relative to
        # it; keep it a directory, as with several.
        argv.append("-keep-as-directory")
    partial = build.partial_dir("system")
    argv += [
        "-wildcards",
        "-ef",
        str(partial / layers.PACK_EXCLUDE),
        "-pf",
        str(partial / layers.PACK_PSEUDO),
    ]
    patterns = [pattern.text for pattern in exclude_patterns(build, root)]
    if patterns:
        argv += ["-e", *patterns]
    return argv


def _work_dir_excludes(build: Build, root: Path) -> list[str]:
    """The work dir and the ISO's directory, relative to the root, when they lie inside it."""
    found = []
    for path in (build.work, build.iso_path.parent):
        try:
            rel = path.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        if str(rel) != ".":
            found.append(str(rel))
    return found


def system_inputs(build: Build) -> list[Path]:
    if build.profile["system.source"] == "busybox":
        return [toolbox.busybox_path(build.profile)]
    root = build.system_root
    found = [root / name for name in squashfs_sources(build, root)]
    modules = kernel_info(build).modules_dir
    if (
        modules_from_outside(build, root)
        and modules is not None
        and build.profile["kernel.source"] != "tree"
    ):  # a tree's: the kernel stage's
        found.append(modules)
    return found


STAGE = Stage(
    name="system",
    title="System image",
    describe="Pack the system's directories into a compressed squashfs image, the "
    "read-only root of the live system.",
    plan=plan_system,
    reads=(
        "system.",
        "writable.strategy",
        "writable.overrides",
        "initrd.busybox",
        "kernel.",
        "bootloader.serial",
        "bootloader.serial_speed",
    ),
    uses=("kernel",),
    inputs=system_inputs,
    on_done=scrub.publish_combined,
    packs=lambda build: squashfs_sources(build, build.system_root),
)
