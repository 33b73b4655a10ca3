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
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from livecd_tui import cpio, elf, kmod
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.stages.kernel import kernel_info
from livecd_tui.stages.system import find_busybox
from livecd_tui.steps import Action, Step, command, q

#: Where things live on the CD; the init script gets them from livecd.conf.
MARKER_FILE = "/LABEL"
SQUASHFS_ON_CD = "/live/system.squashfs"

#: Modules the method itself needs (each skipped when built into the kernel).
METHOD_MODULES = ("loop", "squashfs", "isofs")
OVERLAY_MODULES = ("overlay",)
#: Drivers that reach the CD: IDE/SATA CD drives, as QEMU and most PCs have them.
CDROM_MODULES = ("sr_mod", "ata_piix", "ata_generic", "ahci")
DISK_MODULES = ("sd_mod", "ahci", "nvme", "virtio_pci", "virtio_blk", "virtio_scsi")
USB_MODULES = ("xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "sd_mod")

#: Compressors: argv to compress stdin to stdout; each is reproducible (no names, no times).
COMPRESSORS = {
    "gzip": ["gzip", "-9", "-n", "-c"],
    "xz": ["xz", "-9", "--check=crc32", "-c"],  # the kernel's xz only knows crc32
    "zstd": ["zstd", "-19", "-q", "-c"],
}

DIRS = ("bin", "sbin", "dev", "etc", "lib", "proc", "sys", "run", "tmp", "mnt")


def wanted_modules(build: Build) -> tuple[list[str], list[str]]:
    """Module names the initrd loads: (required ones, optional driver ones)."""
    p = build.profile
    required = list(METHOD_MODULES)
    if p["writable.strategy"] == "overlay":
        required += OVERLAY_MODULES
    required += p["kernel.extra_modules"]
    optional = list(CDROM_MODULES)
    if p["kernel.drivers.disk"]:
        optional += DISK_MODULES
    if p["kernel.drivers.usb"] or p["boottest.medium"] == "usb":
        optional += USB_MODULES
    return required, [m for m in dict.fromkeys(optional) if m not in required]


def initrd_modules(build: Build, log: Callable[[str], None]) -> list[str]:
    """The module files (relative to the modules dir) the initrd loads, in load order.

    Required modules must exist or be built in; a driver the kernel lacks is only noted,
    because the kernel config check already said which drivers matter.
    """
    info = kernel_info(build)
    if info.modules_dir is None or not (info.modules_dir / "modules.dep").is_file():
        log("the kernel has no modules dir: everything must be built in")
        return []
    required, optional = wanted_modules(build)
    names = list(required)
    for name in optional:
        try:
            kmod.resolve_modules(info.modules_dir, [name])
            names.append(name)
        except kmod.UnknownModule:
            log(f"driver {name} is neither a module nor built in: skipped")
    try:
        return kmod.resolve_modules(info.modules_dir, names)
    except kmod.UnknownModule as err:
        raise StepFailed(str(err), hint="check kernel.extra_modules and the kernel config") \
            from None


def livecd_conf(build: Build, modules: list[str]) -> str:
    """The ``/etc/livecd.conf`` the init script sources; values quoted with shlex."""
    p = build.profile
    classic = p["writable.strategy"] == "classic"
    from livecd_tui.stages.writable import archive_name, link_dirs

    values = {
        "LIVECD_MARKER": p["iso.marker"],
        "LIVECD_MARKER_FILE": MARKER_FILE,
        "LIVECD_SQUASHFS": SQUASHFS_ON_CD,
        "LIVECD_RELEASE": kernel_info(build).release,
        "LIVECD_MODULES": " ".join(modules),
        "LIVECD_DEVMGR": p["initrd.device_manager"],
        "LIVECD_WAIT": str(p["initrd.wait"]),
        "LIVECD_TMPFS_SIZE": p["writable.tmpfs_size"],
        "LIVECD_TORAM": "1" if p["writable.copy_to_ram"] else "0",
        "LIVECD_ETC_ARCHIVE": f"/live/{archive_name(build)}" if archive_name(build) else "",
        "LIVECD_LINK_DIRS": " ".join(link_dirs(build)) if classic else "",
        "LIVECD_EMPTY_DIRS": " ".join(p["writable.empty_dirs"]) if classic else "",
        "LIVECD_INIT": "/sbin/init",
    }
    lines = ["# Written by livecd-tui for this build; read by the initrd's init script."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def script_name(build: Build) -> str:
    return "linuxrc" if build.profile["initrd.format"] == "classic" else "init"


def populate_initrd(ctx: StepContext) -> None:
    """Fill the initrd tree: directories, shell, script, config, modules, libraries."""
    build = ctx.build
    p = build.profile
    tree = ctx.out / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    for d in DIRS:
        (tree / d).mkdir(parents=True, exist_ok=True)

    busybox = find_busybox(build)
    if not busybox.is_file():
        raise StepFailed(f"busybox not found at {busybox}",
                         hint="Debian: apt-get install busybox-static; or set initrd.busybox")
    shutil.copy2(busybox, tree / "bin" / "busybox")
    os.chmod(tree / "bin" / "busybox", 0o755)
    # Relative links for every applet this busybox has: after pivot_root the initrd is
    # /initrd and the links must still resolve. Not "linuxrc": that name is the script's.
    for applet in _busybox_applet_names(tree / "bin" / "busybox"):
        link = tree / "bin" / applet
        if applet not in ("busybox", "linuxrc") and not os.path.lexists(link):
            link.symlink_to("busybox")
    binaries = [str(busybox)]
    if p["initrd.shell"] == "bash":
        bash = _find_program(build, "bash")
        binaries.append(str(bash))
        elf.install_path(build.host_root, str(Path("/") / bash.relative_to(build.host_root)),
                         tree)
        (tree / "bin" / "sh").unlink()
        (tree / "bin" / "sh").symlink_to(os.path.relpath(tree / str(bash).lstrip("/"),
                                                         tree / "bin"))
    for extra in p["initrd.extra_binaries"]:
        path = "/" + extra.lstrip("/")
        if not (build.host_root / path.lstrip("/")).exists():
            raise StepFailed(f"extra binary {path} not found in {build.host_root}",
                             hint="fix initrd.extra_binaries")
        elf.install_path(build.host_root, path, tree)
        binaries.append(path)
    if p["initrd.device_manager"] == "udev":
        binaries += _install_udev(build, tree)

    try:
        libraries = elf.resolve_libraries([_in_root(build, b) for b in binaries],
                                          build.host_root)
    except elf.MissingLibrary as err:
        raise StepFailed(str(err), hint="install the library, or drop the program") from None
    for lib in libraries:
        elf.install_path(build.host_root, lib, tree)
    ctx.log(f"programs: {', '.join(binaries)}; libraries: {len(libraries)}")

    modules = initrd_modules(build, ctx.log)
    info = kernel_info(build)
    if modules and info.modules_dir is not None:
        target = tree / "lib" / "modules" / info.release
        for rel in modules:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(info.modules_dir / rel, target / rel)
        for name in ("modules.dep", "modules.alias", "modules.softdep", "modules.builtin",
                     "modules.order"):
            if (info.modules_dir / name).is_file():
                shutil.copy2(info.modules_dir / name, target / name)
        ctx.log("modules, in load order: " + " ".join(Path(m).name for m in modules))
        if p["initrd.firmware"]:
            firmware = kmod.firmware_for(info.modules_dir, modules)
            copied = 0
            for name in firmware:
                source = build.host_root / "lib" / "firmware" / name
                if source.is_file():
                    (tree / "lib" / "firmware" / name).parent.mkdir(parents=True,
                                                                     exist_ok=True)
                    shutil.copy2(source, tree / "lib" / "firmware" / name)
                    copied += 1
                else:
                    ctx.log(f"firmware {name} asked for but not in /lib/firmware")
            ctx.log(f"firmware files: {copied}")

    script = script_name(build)
    data = resources.files("livecd_tui") / "data" / script
    (tree / script).write_text(data.read_text())
    os.chmod(tree / script, 0o755)
    (tree / "etc" / "livecd.conf").write_text(livecd_conf(build, modules))
    (tree / "etc" / "fstab").write_text("")
    # mke2fs -d copies each file's times: pin them so the image is reproducible.
    epoch = build.epoch
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(tree, (epoch, epoch))


def write_debugfs_script(ctx: StepContext) -> None:
    """Commands for debugfs that finish the ext2 image without root or a mount: the device
    nodes, and every inode's ctime pinned (mke2fs -d copies the staging files' ctimes)."""
    tree = ctx.out / "tree"
    epoch = ctx.build.epoch
    lines = ["cd /dev"]
    for node in DEVICE_NODES:
        name = Path(node.path).name
        kind = 0o020000 if node.kind == "c" else 0o060000
        lines += [f"mknod {name} {node.kind} {node.major} {node.minor}",
                  f"sif {name} mode 0{kind | node.mode:o}",
                  f"sif {name} mtime @{epoch}", f"sif {name} ctime @{epoch}",
                  f"sif {name} atime @{epoch}"]
    lines.append("cd /")
    paths = ["/", *sorted("/" + str(p.relative_to(tree)) for p in tree.rglob("*"))]
    for path in paths:
        if '"' in path or "\n" in path:
            raise StepFailed(f"cannot name {path!r} in a debugfs script")
        lines.append(f'sif "{path}" ctime @{epoch}')
    (ctx.out / "debugfs.cmds").write_text("\n".join(lines) + "\n")


def _busybox_applet_names(busybox: Path) -> list[str]:
    import subprocess

    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise StepFailed(f"{busybox} --list failed: {result.stderr.strip()}",
                         hint="initrd.busybox must be a busybox binary")
    return sorted({line.strip() for line in result.stdout.split() if "/" not in line})


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


def _install_udev(build: Build, tree: Path) -> list[str]:
    """systemd-udevd or eudev's udevd, udevadm and the rules, for LIVECD_DEVMGR=udev."""
    root = build.host_root
    daemon = next((c for c in ("lib/systemd/systemd-udevd", "usr/lib/systemd/systemd-udevd",
                               "sbin/udevd", "usr/sbin/udevd") if (root / c).is_file()), None)
    if daemon is None:
        raise StepFailed("udevd not found in the system root",
                         hint="set initrd.device_manager = \"devtmpfs\" or \"mdev\"")
    programs = ["/" + daemon]
    for admin in ("bin/udevadm", "usr/bin/udevadm", "sbin/udevadm"):
        if (root / admin).is_file():
            programs.append("/" + admin)
            break
    for prog in programs:
        elf.install_path(root, prog, tree)
    (tree / "sbin" / "udevd").symlink_to(os.path.relpath(tree / daemon, tree / "sbin"))
    for rules in ("lib/udev/rules.d", "usr/lib/udev/rules.d"):
        if (root / rules).is_dir() and not (tree / rules).exists():
            shutil.copytree(root / rules, tree / rules, symlinks=True)
    return programs


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
    steps: list[Step] = [Action(
        f"gather busybox, /{script_name(build)}, modules and libraries into the initrd tree",
        populate_initrd,
        (f"mkdir -p {q(tree)}/{{{','.join(DIRS)}}}",
         f"cp {q(find_busybox(build))} {q(tree / 'bin/busybox')}",
         f"for a in sh mount insmod switch_root pivot_root; do ln -s busybox {q(tree)}/bin/$a; "
         "done",
         f"cp livecd_tui/data/{script_name(build)} {q(tree)}/  # from the livecd-tui package",
         "# write etc/livecd.conf (see docs/initrd-contract.md), copy each module of "
         "'modprobe --show-depends' and each library of 'ldd' for the programs"))]
    compressed = out / "initrd.img"
    if p["initrd.format"] == "initramfs":
        steps.append(Action(
            "pack the tree as a cpio newc archive (sorted, uid 0, fixed times, device nodes)",
            write_cpio,
            (f"(cd {q(tree)} && find . -mindepth 1 | LC_ALL=C sort | "
             f"cpio -o -H newc -R 0:0 --reproducible) > {q(out / 'initrd.cpio')}",
             "# plus dev/console (c 5 1) and dev/null (c 1 3): livecd-tui writes them "
             "into the archive directly, so no root is needed")))
        steps.append(command(COMPRESSORS[p["initrd.compression"]], "compress the initramfs",
                             stdin=out / "initrd.cpio", stdout=compressed))
        steps.append(command(["rm", "-f", out / "initrd.cpio"], "remove the uncompressed archive"))
        return steps
    size_kib = int(p["initrd.size_mib"]) * 1024
    image = out / "initrd.ext2"
    fake_time = (("E2FSPROGS_FAKE_TIME", str(build.epoch)),)
    steps.append(command(
        ["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-m", "0", "-N", "1024",
         "-L", "initrd", "-U", FIXED_UUID, "-E", f"root_owner=0:0,hash_seed={FIXED_UUID}",
         "-d", tree, image, f"{size_kib}k"],
        "make the ext2 RAM-disk image from the tree (no mount needed)",
        env=fake_time, hint="raise initrd.size_mib if the tree does not fit"))
    steps.append(Action(
        "write the debugfs commands: /dev/console, /dev/null, fixed ctimes",
        write_debugfs_script,
        (f"cat > {q(out / 'debugfs.cmds')} <<'EOF'\ncd /dev\nmknod console c 5 1\n"
         "sif console mode 020600\nmknod null c 1 3\nsif null mode 020666\nEOF",
         "# plus 'sif PATH ctime @$SOURCE_DATE_EPOCH' for every file, for a reproducible image")))
    steps.append(command(["debugfs", "-w", "-f", out / "debugfs.cmds", image],
                         "add the device nodes to the image without root", env=fake_time))
    steps.append(command(["e2fsck", "-fn", image], "check the image"))
    steps.append(command(COMPRESSORS[p["initrd.compression"]], "compress the RAM-disk image",
                         stdin=out / "initrd.ext2", stdout=compressed))
    steps.append(command(["rm", "-f", out / "initrd.ext2"], "remove the uncompressed image"))
    return steps


#: A fixed hash seed keeps ext2 directory hashing, and so the image, reproducible.
FIXED_UUID = "6c697665-6364-2d74-7569-000000000001"


def initrd_inputs(build: Build) -> list[Path]:
    data = Path(str(resources.files("livecd_tui") / "data"))
    paths = [find_busybox(build), data / script_name(build)]
    paths += [build.host_root / e.lstrip("/") for e in build.profile["initrd.extra_binaries"]]
    return paths


STAGE = Stage(
    name="initrd",
    title="Initrd",
    describe="Build the initrd: busybox, the init script, its config, the kernel modules it "
             "loads and the libraries its programs need, packed as a cpio initramfs or an "
             "ext2 RAM disk and compressed.",
    plan=plan_initrd,
    reads=("initrd.", "iso.marker", "writable.", "kernel.", "boottest.medium",
           "system.dirs"),
    uses=("kernel",),
    inputs=initrd_inputs,
)
