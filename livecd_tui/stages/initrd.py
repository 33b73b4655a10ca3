"""Stage ``initrd``: the small first root that finds the CD and mounts the system.

Method steps 5, 6 and 8. The initrd holds a shell (busybox), the init script
(``/init`` for an initramfs, ``/linuxrc`` for the article's ext2 RAM disk), the kernel modules
it loads with their dependencies, every shared library its programs need (read from the ELF
files, not from ldd), ``/dev/console`` and ``/dev/null``, and ``/etc/livecd.conf``, the few
values of this build the script reads (docs/initrd-contract.md).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from livecd_tui import cpio, elf, layout, media, toolbox
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.kernel import kmod
from livecd_tui.stages.kernel import driver_groups, kernel_info
from livecd_tui.stages.system import check_kernel_modules, find_busybox
from livecd_tui.steps import Action, Step, command, q, write_file_lines

#: Modules the method itself needs (each skipped when built into the kernel).
METHOD_MODULES = ("loop", "squashfs", "isofs")
#: Drivers that reach the CD: IDE/SATA CD drives, as QEMU and most PCs have them.
CDROM_MODULES = ("sr_mod", "ata_piix", "ata_generic", "ahci")
DISK_MODULES = ("sd_mod", "ahci", "nvme", "virtio_pci", "virtio_blk", "virtio_scsi")
USB_MODULES = ("xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "sd_mod")
#: The persistence store's filesystem (ext2/3 mount through ext4 too), and for a store that
#: is a file, the FAT it is on with the code pages a FAT mount asks for. Optional: the kernel
#: check says which must be there; the disk drivers come from the "disk" driver group.
PERSISTENCE_MODULES = ("ext4", "ext2", *DISK_MODULES)
PERSISTENCE_FILE_MODULES = ("vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1")
#: LUKS2's default cipher (aes-xts-plain64) and the kernel crypto API cryptsetup uses.
PERSISTENCE_CRYPT_MODULES = ("xts", "aes_generic", "aesni_intel", "sha256_generic",
                             "algif_skcipher", "algif_hash")

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
        target = os.readlink(source).lstrip("/") if (
            d in MERGED_USR_DIRS and source.is_symlink()) else None
        layout.append((d, target))
    return layout


def make_tree_dirs(build: Build, tree: Path) -> None:
    for d, target in tree_layout(build):
        if target is None:
            (tree / d).mkdir(parents=True, exist_ok=True)
        else:
            (tree / target).mkdir(parents=True, exist_ok=True)
            (tree / d).symlink_to(target)


def tree_dirs_lines(build: Build, tree: Path) -> list[str]:
    """make_tree_dirs as bash."""
    plain = [d for d, target in tree_layout(build) if target is None]
    lines = [f"mkdir -p {q(tree)}/{{{','.join(plain)}}}"]
    for d, target in tree_layout(build):
        if target is not None:
            lines += [f"mkdir -p {q(tree / target)}", f"ln -s {q(target)} {q(tree / d)}"]
    return lines


def wanted_modules(build: Build) -> tuple[list[str], list[str]]:
    """Module names the initrd loads: (required ones, optional driver ones)."""
    p = build.profile
    required = [*METHOD_MODULES, *build.method.writable.modules]
    required += p["kernel.extra_modules"]
    optional = list(CDROM_MODULES)
    groups = driver_groups(p)
    if "disk" in groups:
        optional += DISK_MODULES
    if "usb" in groups or p["boottest.medium"] == "usb":
        optional += USB_MODULES
    if p["writable.persistence"] != "off":
        optional += PERSISTENCE_MODULES
    if p["writable.persistence"] == "file":
        optional += PERSISTENCE_FILE_MODULES
    if p["writable.persistence"] != "off" and p["writable.persistence_encrypted"]:
        required += ("dm_crypt",)
        optional += PERSISTENCE_CRYPT_MODULES
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
        raise StepFailed(str(err), hint="check kernel.extra_modules and the kernel config",
                         option="kernel.extra_modules") from None


#: Where an encrypted persistence store's cryptsetup is looked for in the system root.
CRYPTSETUP_PATHS = ("/sbin/cryptsetup", "/usr/sbin/cryptsetup", "/usr/bin/cryptsetup")


def extra_binaries(build: Build) -> list[str]:
    """initrd.extra_binaries, and cryptsetup for an encrypted persistence store (from the
    system root, where it is looked for first; its absence is said when the initrd is made)."""
    extra = list(build.profile["initrd.extra_binaries"])
    if build.profile["writable.persistence"] != "off" and \
            build.profile["writable.persistence_encrypted"]:
        found = [c for c in CRYPTSETUP_PATHS if (build.host_root / c.lstrip("/")).is_file()]
        extra.append((found or CRYPTSETUP_PATHS[:1])[0])
    return extra


def livecd_conf(build: Build, modules: list[str], sums: str | None = None) -> str:
    """The ``/etc/livecd.conf`` the init script sources; values quoted with shlex.
    *sums* (media_sums) is the last line, when given."""
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
    if sums is not None:
        lines.append(f"LIVECD_SUMS={shlex.quote(sums)}")
    return "\n".join(lines) + "\n"


def script_name(build: Build) -> str:
    """The initrd's init script: its name in livecd_tui/data and at the initrd's root."""
    return build.method.initrd.script


def populate_initrd(ctx: StepContext) -> None:
    """Fill the initrd tree: directories, shell, script, config, modules, libraries."""
    build = ctx.build
    p = build.profile
    tree = ctx.out / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    make_tree_dirs(build, tree)

    choice = toolbox.choose(p)
    ctx.log(f"toolbox: {choice.kind} ({choice.why})")
    binaries: list[str] = []
    host_libraries: list[str] = []
    if choice.kind == "busybox":
        busybox = choice.busybox or find_busybox(build)
        if not busybox.is_file():
            raise StepFailed(f"busybox not found at {busybox}",
                             hint="Debian: apt-get install busybox-static; or set "
                                  "initrd.busybox, or initrd.toolbox = \"system\"",
                             option="initrd.toolbox")
        shutil.copy2(busybox, tree / "bin" / "busybox")
        os.chmod(tree / "bin" / "busybox", 0o755)
        # Relative links for every applet this busybox has: after pivot_root the initrd is
        # /initrd and the links must still resolve. Not "linuxrc": that name is the script's.
        for applet in _busybox_applet_names(tree / "bin" / "busybox"):
            link = tree / "bin" / applet
            if applet not in ("busybox", "linuxrc") and not os.path.lexists(link):
                link.symlink_to("busybox")
        if _inside(build, busybox):
            binaries.append(str(busybox))
        else:  # the host's busybox: its libraries (if any) are the host's too
            host_libraries = elf.resolve_libraries([str(busybox)])
    if choice.kind == "system" or p["initrd.shell"] == "bash":
        bash = _find_program(build, "bash")
        binaries.append(str(bash))
        elf.install_path(build.host_root, str(Path("/") / bash.relative_to(build.host_root)),
                         tree)
        with contextlib.suppress(FileNotFoundError):
            (tree / "bin" / "sh").unlink()
        # Relative to where the link really is: bin may itself be a link into usr.
        real_bin = os.path.realpath(tree / "bin")
        real_bash = os.path.join(os.path.realpath(tree), str(bash.relative_to(build.host_root)))
        (tree / "bin" / "sh").symlink_to(os.path.relpath(real_bash, real_bin))
    if choice.kind == "system":
        programs, missing = toolbox.system_programs(p)
        if missing:
            raise StepFailed(f"the system toolbox needs {', '.join(missing)}, which "
                             f"{build.host_root} lacks",
                             hint="install them into the root (coreutils, util-linux, kmod), "
                                  "or use busybox: initrd.toolbox = \"busybox\"",
                             option="initrd.toolbox")
        for program in programs:
            elf.install_path(build.host_root, program, tree)
        binaries += [program for program in programs if program not in binaries]
    for extra in extra_binaries(build):
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
    for lib in host_libraries:
        elf.install_path(Path("/"), lib, tree)
    ctx.log(f"programs: {', '.join(binaries) or 'busybox'}; libraries: "
            f"{len(libraries) + len(host_libraries)}")

    modules = initrd_modules(build, ctx.log)
    info = kernel_info(build)
    if modules and info.modules_dir is not None:
        check_kernel_modules(build, info.modules_dir, "the initrd", ctx.log)
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
    (tree / "etc" / "livecd.conf").write_text(livecd_conf(build, modules, media.media_sums(build)))
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
        lines += [f"mknod {name} {node.kind} {node.major} {node.minor}",
                  f"sif {name} mode 0{kind | node.mode:o}",
                  f"sif {name} mtime @{epoch}", f"sif {name} ctime @{epoch}",
                  f"sif {name} atime @{epoch}"]
    return [*lines, "cd /", f'sif "/" ctime @{epoch}']


def _busybox_applet_names(busybox: Path) -> list[str]:
    import subprocess

    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise StepFailed(f"{busybox} --list failed: {result.stderr.strip()}",
                         hint="initrd.busybox must be a busybox binary")
    return sorted({line.strip() for line in result.stdout.split() if "/" not in line})


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
    return daemon, programs


def _install_udev(build: Build, tree: Path) -> list[str]:
    """systemd-udevd or eudev's udevd, udevadm and the rules, for LIVECD_DEVMGR=udev."""
    root = build.host_root
    daemon, programs = find_udev(root)
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
        populate_initrd, tuple(populate_script(build, tree)))]
    compressed = out / "initrd.img"
    if not build.method.initrd.ram_disk:
        nodes = [f"mknod -m {node.mode:o} {q(tree / node.path)} {node.kind} {node.major} "
                 f"{node.minor}" for node in DEVICE_NODES]
        steps.append(Action(
            "pack the tree as a cpio newc archive (sorted, uid 0, fixed times, device nodes)",
            write_cpio,
            (*nodes,
             f"touch -h -d @{build.epoch} {q(tree / 'dev')} "
             + " ".join(q(tree / node.path) for node in DEVICE_NODES),
             f"(cd {q(tree)} && find . -mindepth 1 -printf '%P\\n' | LC_ALL=C sort | "
             f"cpio -o -H newc -R 0:0 --reproducible --quiet) > {q(out / 'initrd.cpio')}")))
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
        (*write_file_lines(out / "debugfs.cmds", "\n".join(debugfs_node_lines(build.epoch))
                           + "\n"),
         f"(cd {q(tree)} && find . -mindepth 1 -printf '/%P\\n' | LC_ALL=C sort | "
         f"sed 's/.*/sif \"&\" ctime @{build.epoch}/') >> {q(out / 'debugfs.cmds')}")))
    steps.append(command(["debugfs", "-w", "-f", out / "debugfs.cmds", image],
                         "add the device nodes to the image without root", env=fake_time))
    steps.append(command(["e2fsck", "-fn", image], "check the image"))
    steps.append(command(COMPRESSORS[p["initrd.compression"]], "compress the RAM-disk image",
                         stdin=out / "initrd.ext2", stdout=compressed))
    steps.append(command(["rm", "-f", out / "initrd.ext2"], "remove the uncompressed image"))
    return steps


# -- the same in bash, for plan and export-script ----------------------------------------
# Everything populate_initrd decides (programs, libraries, modules, firmware) is decided
# here at plan time, so the script holds explicit cp lines: the method by hand.


def fail_lines(message: str, hint: str = "") -> list[str]:
    """Bash that stops the script with the message a failing Action would give."""
    text = message + (f" (hint: {hint})" if hint else "")
    return [f"echo {q('livecd-build: ' + text)} >&2", "exit 1"]


def install_path_lines(src_root: Path, path: str, dest_root: Path) -> list[str]:
    """Bash for ``elf.install_path``: each link on the way recreated, then the file copied."""
    canonical, links = elf.install_links(src_root, path)
    lines = []
    for link, target in links:
        parent = os.path.dirname(link)
        if parent != "/":
            lines.append(f"mkdir -p {q(dest_root / parent.lstrip('/'))}")
        lines.append(f"ln -sfT {q(target)} {q(dest_root / link.lstrip('/'))}")
    dest = dest_root / canonical.lstrip("/")
    if (src_root / canonical.lstrip("/")).is_dir():
        return [*lines, f"mkdir -p {q(dest)}"]
    return [*lines, f"mkdir -p {q(dest.parent)}",
            f"cp -p {q(src_root / canonical.lstrip('/'))} {q(dest)}"]


def planned_modules(build: Build) -> list[str] | None:
    """The initrd's modules (relative paths, load order) as the plan can know them, or None
    when only the kernel stage will tell (a kernel from a tree not installed yet).
    Raises StepFailed like the stage would."""
    info = kernel_info(build)
    known = info.modules_dir is not None and (info.modules_dir / "modules.dep").is_file()
    if not known and build.profile["kernel.source"] == "tree":
        return None
    return initrd_modules(build, lambda _line: None)


def runtime_modules_lines(build: Build) -> list[str]:
    """Bash that finds the initrd's modules once the kernel stage has run, with modprobe
    (what kmod.resolve_modules follows): sets kernel_release, modules_dir and modules."""
    kernel = build.done_dir("kernel")
    required, optional = wanted_modules(build)
    probe = ('modprobe -C /dev/null -d "${modules_dir%/lib/modules/*}" -S "$kernel_release" '
             "--show-depends")
    return [
        "# the kernel is built by this script: its modules are resolved now, with modprobe",
        f"kernel_release=$(cat {q(kernel / 'release')})",
        f"modules_dir=$(cat {q(kernel / 'modules_dir')})",
        'modules=""',
        'if [ -n "$modules_dir" ] && [ -f "$modules_dir/modules.dep" ]; then',
        "    modules=$(",
        f"        {{ {probe} -a {' '.join(map(q, required))} || exit 1",
        f"          for m in {' '.join(map(q, optional))}; do",
        f'              {probe} "$m" 2>/dev/null || echo "driver $m is neither a module nor '
        'built in: skipped" >&2',
        "          done",
        "        } | awk -v dir=\"/lib/modules/$kernel_release/\" '$1 == \"insmod\" "
        "{ p = $2; i = index(p, dir); if (i) p = substr(p, i + length(dir)); "
        "if (!seen[p]++) print p }')",
        "fi",
    ]


def copy_modules_lines(build: Build, modules: list[str] | None, target_root: Path) -> list[str]:
    """Bash that copies the initrd's modules under ``target_root/lib/modules/RELEASE``."""
    if modules is None:
        target = f'{q(target_root / "lib/modules")}/"$kernel_release"'
        return [*runtime_modules_lines(build),
                'if [ -n "$modules" ]; then',
                f"    mkdir -p {target}",
                f'    (cd "$modules_dir" && cp -p --parents $modules {target}/)',
                "fi"]
    info = kernel_info(build)
    if not modules or info.modules_dir is None:
        return []
    target_dir = target_root / "lib" / "modules" / info.release
    return [f"mkdir -p {q(target_dir)}",
            f"(cd {q(info.modules_dir)} && cp -p --parents \\\n"
            + "".join(f"    {q(m)} \\\n" for m in modules) + f"    {q(target_dir)}/)"]


def populate_script(build: Build, tree: Path) -> list[str]:
    """What populate_initrd does, as bash."""
    p = build.profile
    root = build.host_root
    lines = tree_dirs_lines(build, tree)
    choice = toolbox.choose(p)
    lines.append(f"# toolbox: {choice.kind} ({choice.why})")
    bin_dir = q(tree / "bin")
    binaries: list[str] = []
    host_libraries: list[str] = []
    if choice.kind == "busybox":
        busybox = choice.busybox or find_busybox(build)
        if not busybox.is_file():
            return [*lines, *fail_lines(f"busybox not found at {busybox}",
                                        "Debian: apt-get install busybox-static; or set "
                                        "initrd.busybox, or initrd.toolbox = \"system\"")]
        lines += [f"cp -p {q(busybox)} {bin_dir}/busybox", f"chmod 755 {bin_dir}/busybox",
                  f"for applet in $({bin_dir}/busybox --list); do",
                  "    case $applet in busybox | linuxrc | */*) continue ;; esac",
                  f'    [ -e {bin_dir}/"$applet" ] || [ -L {bin_dir}/"$applet" ] || '
                  f'ln -s busybox {bin_dir}/"$applet"',
                  "done"]
        if _inside(build, busybox):
            binaries.append(str(busybox))
        else:
            host_libraries = elf.resolve_libraries([str(busybox)])
    try:
        if choice.kind == "system" or p["initrd.shell"] == "bash":
            bash = _find_program(build, "bash")
            binaries.append(str(bash))
            lines += install_path_lines(root, "/" + str(bash.relative_to(root)), tree)
            real_bin = tree / (dict(tree_layout(build))["bin"] or "bin")
            link = os.path.relpath(tree / str(bash.relative_to(root)), real_bin)
            lines += [f"rm -f {bin_dir}/sh", f"ln -s {q(link)} {bin_dir}/sh"]
        if choice.kind == "system":
            programs, missing = toolbox.system_programs(p)
            if missing:
                raise StepFailed(f"the system toolbox needs {', '.join(missing)}, which "
                                 f"{root} lacks", hint="initrd.toolbox = \"busybox\"",
                                 option="initrd.toolbox")
            for program in programs:
                lines += install_path_lines(root, program, tree)
            binaries += [program for program in programs if program not in binaries]
        for extra in extra_binaries(build):
            path = "/" + extra.lstrip("/")
            if not (root / path.lstrip("/")).exists():
                raise StepFailed(f"extra binary {path} not found in {root}",
                                 hint="fix initrd.extra_binaries")
            lines += install_path_lines(root, path, tree)
            binaries.append(path)
        if p["initrd.device_manager"] == "udev":
            programs, udev_lines = _udev_script(build, tree)
            binaries += programs
            lines += udev_lines
        try:
            libraries = elf.resolve_libraries([_in_root(build, b) for b in binaries], root)
        except elf.MissingLibrary as err:
            raise StepFailed(str(err), hint="install the library, or drop the program") \
                from None
        for lib in libraries:
            lines += install_path_lines(root, lib, tree)
        for lib in host_libraries:
            lines += install_path_lines(Path("/"), lib, tree)
        modules = planned_modules(build)
    except (StepFailed, OSError) as err:
        if isinstance(err, StepFailed) and err.option:
            raise  # a profile value the stage cannot use: refused when planned
        return [*lines, *fail_lines(str(err), getattr(err, "hint", ""))]

    info = kernel_info(build)
    lines += copy_modules_lines(build, modules, tree)
    if modules and info.modules_dir is not None:
        depmod = [n for n in ("modules.dep", "modules.alias", "modules.softdep",
                              "modules.builtin", "modules.order")
                  if (info.modules_dir / n).is_file()]
        if depmod:
            target = tree / "lib" / "modules" / info.release
            lines.append(f"(cd {q(info.modules_dir)} && cp -p {' '.join(depmod)} "
                         f"{q(target)}/)")
        if p["initrd.firmware"]:
            try:
                firmware = kmod.firmware_for(info.modules_dir, modules)
            except (ValueError, OSError) as err:
                return [*lines, *fail_lines(f"cannot read the modules' firmware: {err}")]
            for name in firmware:
                source = root / "lib" / "firmware" / name
                if source.is_file():
                    dest = tree / "lib" / "firmware" / name
                    lines += [f"mkdir -p {q(dest.parent)}", f"cp -p {q(source)} {q(dest)}"]
    elif modules is None:
        lines += ['if [ -n "$modules" ]; then',
                  f'    (cd "$modules_dir" && cp -p modules.dep modules.alias modules.softdep '
                  f'modules.builtin modules.order {q(tree / "lib/modules")}/"$kernel_release"/'
                  " 2>/dev/null) || true",
                  "fi"]
        if p["initrd.firmware"]:
            lines.append("echo 'livecd-build: firmware is not copied when the kernel is "
                         "built by this script; use livecd-tui for that' >&2")

    script = script_name(build)
    data = Path(str(resources.files("livecd_tui") / "data" / script))
    lines.append(f"install -m 755 {q(data)} {q(tree / script)}")
    lines += write_file_lines(tree / "etc" / "livecd.conf", livecd_conf(build, modules or []))
    if modules is None:
        lines.append("printf \"LIVECD_RELEASE='%s'\\nLIVECD_MODULES='%s'\\n\" "
                     '"$kernel_release" "$(echo $modules)" >> '
                     f"{q(tree / 'etc/livecd.conf')}")
    lines += media.media_sums_lines(build, tree / "etc" / "livecd.conf")
    lines += [f": > {q(tree / 'etc/fstab')}",
              f"find {q(tree)} -exec touch -h -d @{build.epoch} {{}} +"]
    return lines


def _udev_script(build: Build, tree: Path) -> tuple[list[str], list[str]]:
    """_install_udev as bash: (programs installed, lines)."""
    root = build.host_root
    daemon, programs = find_udev(root)
    lines = [line for prog in programs for line in install_path_lines(root, prog, tree)]
    link = os.path.relpath(tree / daemon, tree / "sbin")
    lines.append(f"ln -s {q(link)} {q(tree / 'sbin/udevd')}")
    for rules in ("lib/udev/rules.d", "usr/lib/udev/rules.d"):
        if (root / rules).is_dir():
            lines.append(f"[ -e {q(tree / rules)} ] || {{ mkdir -p {q((tree / rules).parent)} "
                         f"&& cp -a {q(root / rules)} {q(tree / rules)}; }}")
    return programs, lines


#: A fixed hash seed keeps ext2 directory hashing, and so the image, reproducible.
FIXED_UUID = "6c697665-6364-2d74-7569-000000000001"


def initrd_inputs(build: Build) -> list[Path]:
    data = Path(str(resources.files("livecd_tui") / "data"))
    choice = toolbox.choose(build.profile)
    if choice.kind == "busybox":
        paths = [choice.busybox or find_busybox(build)]
    else:
        paths = [build.host_root / program.lstrip("/")
                 for program in toolbox.system_programs(build.profile)[0]]
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
    reads=("initrd.", "iso.marker", "iso.volume_label", "writable.", "kernel.",
           "boottest.medium", "system.dirs"),
    # system and writable: livecd.conf records the sha256 of their images (the media check).
    uses=("kernel", "system", "writable"),
    inputs=initrd_inputs,
)
