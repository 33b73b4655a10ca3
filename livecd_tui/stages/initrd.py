"""Stage ``initrd``: the small first root that finds the CD and mounts the system.

Method steps 5, 6 and 8. The initrd holds a shell (busybox), the init script
(``/init`` for an initramfs, ``/linuxrc`` for the article's ext2 RAM disk), the kernel modules
it loads with their dependencies, every shared library its programs need (read from the ELF
files, not from ldd), ``/dev/console`` and ``/dev/null``, and ``/etc/livecd.conf``, the few
values of this build the script reads (docs/initrd-contract.md).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from livecd_tui import cpio, elf, fileops, layout, media, toolbox
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.kernel import kmod
from livecd_tui.stages import cdmodules
from livecd_tui.stages.kernel import kernel_info
from livecd_tui.steps import Action, Step, command, shell_quote, write_file_lines

#: Compressors: argv to compress stdin to stdout; each is reproducible (no names, no times).
COMPRESSORS = {
    "gzip": ["gzip", "-9", "-n", "-c"],
    "xz": ["xz", "-9", "--check=crc32", "-c"],  # the kernel's xz only knows crc32
    "zstd": ["zstd", "-19", "-q", "-c"],
}

DIRS = ("bin", "sbin", "dev", "etc", "lib", "proc", "sys", "run", "tmp", "mnt")
#: Top-level dirs that merged-/usr systems make links into /usr; the initrd mirrors them,
#: so the libraries of its dynamic programs (bash, udevd) land where the loader looks.
MERGED_USR_DIRS = ("bin", "sbin", "lib")


def tree_layout(build: Build) -> list[tuple[str, str | None]]:
    """Each top-level dir of the initrd with the link target it has in the system root
    (None: a plain directory)."""
    layout = []
    for d in DIRS:
        source = build.host_root / d
        target = (
            os.readlink(source).lstrip("/")
            if (d in MERGED_USR_DIRS and source.is_symlink())
            else None
        )
        layout.append((d, target))
    return layout


def tree_dirs(build: Build, tree: Path) -> Iterator[fileops.Op]:
    for d, target in tree_layout(build):
        if target is None:
            yield fileops.Mkdir(tree / d)
        else:
            yield fileops.Mkdir(tree / target)
            yield fileops.Symlink(tree / d, target)


#: Where an encrypted persistence store's cryptsetup is looked for in the system root.
CRYPTSETUP_PATHS = ("/sbin/cryptsetup", "/usr/sbin/cryptsetup", "/usr/bin/cryptsetup")


def extra_binaries(build: Build) -> list[str]:
    """initrd.extra_binaries, and cryptsetup for an encrypted persistence store (from the
    system root, where it is looked for first; its absence is said when the initrd is made)."""
    extra = list(build.profile["initrd.extra_binaries"])
    if (
        build.profile["writable.persistence"] != "off"
        and build.profile["writable.persistence_encrypted"]
    ):
        found = [c for c in CRYPTSETUP_PATHS if (build.host_root / c.lstrip("/")).is_file()]
        extra.append((found or CRYPTSETUP_PATHS[:1])[0])
    return extra


def livecd_conf(build: Build, modules: list[str]) -> str:
    """The ``/etc/livecd.conf`` the init script sources; values quoted with shlex. The media
    sums (``LIVECD_SUMS``) are appended once the images exist."""
    p = build.profile
    writable = build.method.writable
    from livecd_tui.stages.writable import link_dirs

    values = {
        "LIVECD_MARKER": p["iso.marker"],
        "LIVECD_MARKER_FILE": layout.MARKER,
        "LIVECD_VOLUME_LABEL": p["iso.volume_label"],
        "LIVECD_SQUASHFS": layout.SQUASHFS,
        "LIVECD_RELEASE": kernel_info(build).release,
        "LIVECD_MODULES": " ".join(modules),
        "LIVECD_DEVMGR": p["initrd.device_manager"],
        "LIVECD_WAIT": str(p["initrd.wait"]),
        "LIVECD_TMPFS_SIZE": p["writable.tmpfs_size"],
        "LIVECD_ETC_ARCHIVE": writable.archive_file(),
        "LIVECD_LINK_DIRS": " ".join(link_dirs(build)) if writable.linked_root else "",
        "LIVECD_EMPTY_DIRS": " ".join(writable.empty_dirs()),
        "LIVECD_ARCHIVE_DIRS": " ".join(writable.archive_dirs()),
        "LIVECD_INIT": "/sbin/init",
        "LIVECD_PERSISTENCE": p["writable.persistence"],
        "LIVECD_PERSISTENCE_LABEL": p["writable.persistence_label"],
        "LIVECD_PERSISTENCE_FILE": "/" + p["writable.persistence_file"],
        "LIVECD_PERSISTENCE_ENCRYPTED": "1" if p["writable.persistence_encrypted"] else "0",
    }
    lines = ["# Written by livecd-tui for this build; read by the initrd's init script."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def script_name(build: Build) -> str:
    """The initrd's init script: its name in livecd_tui/data and at the initrd's root."""
    return build.method.initrd.script


def initrd_ops(build: Build, log: fileops.Log) -> Iterator[fileops.Op]:
    """Fill the initrd tree: directories, shell, script, config, modules, libraries."""
    p = build.profile
    root = build.host_root
    tree = build.partial_dir("initrd") / "tree"
    yield fileops.Remove(tree)
    yield from tree_dirs(build, tree)

    choice = toolbox.choose(p)
    log(f"toolbox: {choice.kind} ({choice.why})")
    binaries: list[str] = []
    host_libraries: list[str] = []
    if choice.kind == "busybox":
        busybox = choice.busybox or toolbox.busybox_path(p)
        if not busybox.is_file():
            yield toolbox.busybox_missing(busybox, initrd=True)
            return
        yield fileops.Copy(busybox, tree / "bin" / "busybox")
        yield fileops.Chmod(tree / "bin" / "busybox", 0o755)
        # Relative links for every applet this busybox has: after pivot_root the initrd is
        # /initrd and the links must still resolve. Not "linuxrc": that name is the script's.
        for applet in sorted({Path(a).name for a in toolbox.busybox_applets(busybox)}):
            if applet not in ("busybox", "linuxrc"):
                yield fileops.Symlink(tree / "bin" / applet, "busybox")
        if _inside(build, busybox):
            binaries.append(str(busybox))
        else:  # the host's busybox: its libraries (if any) are the host's too
            host_libraries = elf.resolve_libraries([str(busybox)])
    if choice.kind == "system" or p["initrd.shell"] == "bash":
        bash = _find_program(build, "bash")
        binaries.append(str(bash))
        yield from fileops.install(root, "/" + str(bash.relative_to(root)), tree)
        # Relative to where the link really is: bin may itself be a link into usr.
        real_bin = tree / (dict(tree_layout(build))["bin"] or "bin")
        yield fileops.Remove(tree / "bin" / "sh")
        yield fileops.Symlink(
            tree / "bin" / "sh", os.path.relpath(tree / bash.relative_to(root), real_bin)
        )
    if choice.kind == "system":
        programs, missing = toolbox.system_programs(p)
        if missing:
            raise StepFailed(
                f"the system toolbox needs {', '.join(missing)}, which {root} lacks",
                hint="install them into the root (coreutils, util-linux, kmod), "
                'or use busybox: initrd.toolbox = "busybox"',
                option="initrd.toolbox",
            )
        for program in programs:
            yield from fileops.install(root, program, tree)
        binaries += [program for program in programs if program not in binaries]
    for extra in extra_binaries(build):
        path = "/" + extra.lstrip("/")
        if not (root / path.lstrip("/")).exists():
            raise StepFailed(
                f"extra binary {path} not found in {root}", hint="fix initrd.extra_binaries"
            )
        yield from fileops.install(root, path, tree)
        binaries.append(path)
    if p["initrd.device_manager"] == "udev":
        daemon, programs = find_udev(root)
        for program in programs:
            yield from fileops.install(root, program, tree)
        yield fileops.Symlink(
            tree / "sbin" / "udevd", os.path.relpath(tree / daemon, tree / "sbin")
        )
        for rules in ("lib/udev/rules.d", "usr/lib/udev/rules.d"):
            if (root / rules).is_dir():
                yield fileops.CopyTree(root / rules, tree / rules)
        binaries += programs

    try:
        libraries = elf.resolve_libraries([_in_root(build, b) for b in binaries], root)
    except elf.MissingLibrary as err:
        raise StepFailed(str(err), hint="install the library, or drop the program") from None
    for lib in libraries:
        yield from fileops.install(root, lib, tree)
    for lib in host_libraries:
        yield from fileops.install(Path("/"), lib, tree)
    log(
        f"programs: {', '.join(binaries) or 'busybox'}; libraries: "
        f"{len(libraries) + len(host_libraries)}"
    )

    modules = cdmodules.selected_modules(build, log)
    info = kernel_info(build)
    if modules and info.modules_dir is not None:
        yield cdmodules.check(build, info.modules_dir, "the initrd")
        log("modules, in load order: " + " ".join(Path(m).name for m in modules))
    yield from cdmodules.copy_ops(build, modules, tree)
    if modules and info.modules_dir is not None and p["initrd.firmware"]:
        yield from _firmware(build, info.modules_dir, modules, tree, log)
    elif modules is None and p["initrd.firmware"]:
        yield fileops.Deferred(
            "firmware",
            (
                "echo 'livecd-build: firmware is not copied when the kernel is built by this "
                "script; use livecd-tui for that' >&2",
            ),
        )

    script = script_name(build)
    yield fileops.Copy(Path(str(resources.files("livecd_tui") / "data" / script)), tree / script)
    yield fileops.Chmod(tree / script, 0o755)
    conf = tree / "etc" / "livecd.conf"
    yield fileops.WriteFile(conf, livecd_conf(build, modules or []).encode())
    if modules is None:
        yield fileops.Deferred(
            "the release and the modules found by this script",
            (
                "printf \"LIVECD_RELEASE='%s'\\nLIVECD_MODULES='%s'\\n\" "
                f'"$kernel_release" "$(echo $modules)" >> {shell_quote(conf)}',
            ),
        )
    yield fileops.Append(
        conf,
        "the system image's layers and the media check's sums (LIVECD_LAYERS, LIVECD_SUMS)",
        lambda: media.media_conf(build),
        tuple(media.media_conf_lines(build, conf)),
    )
    yield fileops.WriteFile(tree / "etc" / "fstab", b"")
    # mke2fs -d copies each file's times: pin them so the image is reproducible.
    yield fileops.PinTimes(tree, build.epoch)


def _firmware(
    build: Build, modules_dir: Path, modules: list[str], tree: Path, log: fileops.Log
) -> Iterator[fileops.Op]:
    """The firmware files the modules ask for that the root has."""
    try:
        firmware = kmod.firmware_for(modules_dir, modules)
    except ValueError as err:
        raise StepFailed(f"cannot read the modules' firmware: {err}") from None
    copied = 0
    for name in firmware:
        source = build.host_root / "lib" / "firmware" / name
        if source.is_file():
            yield fileops.Mkdir((tree / "lib" / "firmware" / name).parent)
            yield fileops.Copy(source, tree / "lib" / "firmware" / name)
            copied += 1
        else:
            log(f"firmware {name} asked for but not in /lib/firmware")
    log(f"firmware files: {copied}")


def write_debugfs_script(ctx: StepContext) -> None:
    """Commands for debugfs that finish the ext2 image without root or a mount: the device
    nodes, and every inode's ctime pinned (mke2fs -d copies the staging files' ctimes)."""
    tree = ctx.out / "tree"
    epoch = ctx.build.epoch
    lines = debugfs_node_lines(epoch)
    paths = sorted("/" + str(p.relative_to(tree)) for p in tree.rglob("*"))
    for path in paths:
        if '"' in path or "\n" in path:
            raise StepFailed(f"cannot name {path!r} in a debugfs script")
        lines.append(f'sif "{path}" ctime @{epoch}')
    (ctx.out / "debugfs.cmds").write_text("\n".join(lines) + "\n")


def debugfs_node_lines(epoch: int) -> list[str]:
    """The debugfs commands that add the device nodes, then ``cd /`` and the root's ctime."""
    lines = ["cd /dev"]
    for node in DEVICE_NODES:
        name = Path(node.path).name
        kind = 0o020000 if node.kind == "c" else 0o060000
        lines += [
            f"mknod {name} {node.kind} {node.major} {node.minor}",
            f"sif {name} mode 0{kind | node.mode:o}",
            f"sif {name} mtime @{epoch}",
            f"sif {name} ctime @{epoch}",
            f"sif {name} atime @{epoch}",
        ]
    return [*lines, "cd /", f'sif "/" ctime @{epoch}']


def _inside(build: Build, path: Path) -> bool:
    """Whether ``path`` (a host path) lies in the system root."""
    try:
        path.relative_to(build.host_root)
    except ValueError:
        return False
    return True


def _in_root(build: Build, path: str) -> str:
    try:
        return "/" + str(Path(path).relative_to(build.host_root))
    except ValueError:
        return path


def _find_program(build: Build, name: str) -> Path:
    for d in ("usr/bin", "bin", "usr/sbin", "sbin"):
        candidate = build.host_root / d / name
        if candidate.is_file():
            return candidate
    raise StepFailed(f"{name} not found in {build.host_root}")


def find_udev(root: Path) -> tuple[str, list[str]]:
    """systemd-udevd or eudev's udevd in the root: (daemon, [daemon, udevadm])."""
    daemon = next(
        (
            c
            for c in (
                "lib/systemd/systemd-udevd",
                "usr/lib/systemd/systemd-udevd",
                "sbin/udevd",
                "usr/sbin/udevd",
            )
            if (root / c).is_file()
        ),
        None,
    )
    if daemon is None:
        raise StepFailed(
            "udevd not found in the system root",
            hint='set initrd.device_manager = "devtmpfs" or "mdev"',
        )
    programs = ["/" + daemon]
    for admin in ("bin/udevadm", "usr/bin/udevadm", "sbin/udevadm"):
        if (root / admin).is_file():
            programs.append("/" + admin)
            break
    return daemon, programs


DEVICE_NODES = (
    cpio.DeviceNode("dev/console", "c", 5, 1, 0o600),
    cpio.DeviceNode("dev/null", "c", 1, 3, 0o666),
)


def write_cpio(ctx: StepContext) -> None:
    with open(ctx.out / "initrd.cpio", "wb") as handle:
        cpio.write_newc(ctx.out / "tree", handle, mtime=ctx.build.epoch, nodes=DEVICE_NODES)


def plan_initrd(build: Build) -> list[Step]:
    """Populate the tree, then pack it as cpio (initramfs) or ext2 (classic) and compress."""
    p = build.profile
    out = build.partial_dir("initrd")
    tree = out / "tree"
    steps: list[Step] = [
        fileops.action(
            f"gather busybox, /{script_name(build)}, modules and libraries into the initrd tree",
            initrd_ops,
            build,
        )
    ]
    compressed = out / "initrd.img"
    if not build.method.initrd.ram_disk:
        nodes = [
            f"mknod -m {node.mode:o} {shell_quote(tree / node.path)} {node.kind} {node.major} "
            f"{node.minor}"
            for node in DEVICE_NODES
        ]
        steps.append(
            Action(
                "pack the tree as a cpio newc archive (sorted, uid 0, fixed times, device nodes)",
                write_cpio,
                (
                    *nodes,
                    f"touch -h -d @{build.epoch} {shell_quote(tree / 'dev')} "
                    + " ".join(shell_quote(tree / node.path) for node in DEVICE_NODES),
                    f"(cd {shell_quote(tree)} && find . -mindepth 1 -printf '%P\\n' | "
                    "LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) > "
                    f"{shell_quote(out / 'initrd.cpio')}",
                ),
            )
        )
        steps.append(
            command(
                COMPRESSORS[p["initrd.compression"]],
                "compress the initramfs",
                stdin=out / "initrd.cpio",
                stdout=compressed,
            )
        )
        steps.append(command(["rm", "-f", out / "initrd.cpio"], "remove the uncompressed archive"))
        return steps
    size_kib = int(p["initrd.size_mib"]) * 1024
    image = out / "initrd.ext2"
    fake_time = (("E2FSPROGS_FAKE_TIME", str(build.epoch)),)
    steps.append(
        command(
            [
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext2",
                "-b",
                "1024",
                "-m",
                "0",
                "-N",
                "1024",
                "-L",
                "initrd",
                "-U",
                FIXED_UUID,
                "-E",
                f"root_owner=0:0,hash_seed={FIXED_UUID}",
                "-d",
                tree,
                image,
                f"{size_kib}k",
            ],
            "make the ext2 RAM-disk image from the tree (no mount needed)",
            env=fake_time,
            hint="raise initrd.size_mib if the tree does not fit",
        )
    )
    steps.append(
        Action(
            "write the debugfs commands: /dev/console, /dev/null, fixed ctimes",
            write_debugfs_script,
            (
                *write_file_lines(
                    out / "debugfs.cmds", "\n".join(debugfs_node_lines(build.epoch)) + "\n"
                ),
                f"(cd {shell_quote(tree)} && find . -mindepth 1 -printf '/%P\\n' | LC_ALL=C sort | "
                f"sed 's/.*/sif \"&\" ctime @{build.epoch}/') >> "
                f"{shell_quote(out / 'debugfs.cmds')}",
            ),
        )
    )
    steps.append(
        command(
            ["debugfs", "-w", "-f", out / "debugfs.cmds", image],
            "add the device nodes to the image without root",
            env=fake_time,
        )
    )
    steps.append(command(["e2fsck", "-fn", image], "check the image"))
    steps.append(
        command(
            COMPRESSORS[p["initrd.compression"]],
            "compress the RAM-disk image",
            stdin=out / "initrd.ext2",
            stdout=compressed,
        )
    )
    steps.append(command(["rm", "-f", out / "initrd.ext2"], "remove the uncompressed image"))
    return steps


#: A fixed hash seed keeps ext2 directory hashing, and so the image, reproducible.
FIXED_UUID = "6c697665-6364-2d74-7569-000000000001"


def initrd_inputs(build: Build) -> list[Path]:
    data = Path(str(resources.files("livecd_tui") / "data"))
    choice = toolbox.choose(build.profile)
    if choice.kind == "busybox":
        paths = [choice.busybox or toolbox.busybox_path(build.profile)]
    else:
        paths = [
            build.host_root / program.lstrip("/")
            for program in toolbox.system_programs(build.profile)[0]
        ]
    paths.append(data / script_name(build))
    paths += [build.host_root / e.lstrip("/") for e in extra_binaries(build)]
    return paths


STAGE = Stage(
    name="initrd",
    title="Initrd",
    describe="Build the initrd: busybox, the init script, its config, the kernel modules it "
    "loads and the libraries its programs need, packed as a cpio initramfs or an "
    "ext2 RAM disk and compressed.",
    plan=plan_initrd,
    reads=(
        "initrd.",
        "iso.marker",
        "iso.volume_label",
        "writable.",
        "kernel.",
        "boottest.medium",
        "system.dirs",
    ),
    # system and writable: livecd.conf records the sha256 of their images (the media check).
    uses=("kernel", "system", "writable"),
    inputs=initrd_inputs,
)
