"""Which kernel modules the CD carries, for the initrd and the live system alike.

The initrd loads the modules the method needs (loop, squashfs, isofs, overlay), the
profile's extra ones and the drivers that reach the CD, each with its dependencies; the
live system gets the same ones with ``system.modules = "initrd"``. Both stages take the
selection, the check that the modules belong to the CD's kernel and the copy from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from livecd_tui import fileops
from livecd_tui.build import Build
from livecd_tui.engine import StepFailed
from livecd_tui.kernel import kmod, modmatch
from livecd_tui.stages.kernel import driver_groups, kernel_info
from livecd_tui.steps import shell_quote

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
PERSISTENCE_CRYPT_MODULES = (
    "xts",
    "aes_generic",
    "aesni_intel",
    "sha256_generic",
    "algif_skcipher",
    "algif_hash",
)
#: The depmod files the initrd's modprobe reads, copied next to its modules.
INDEX_FILES = (
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.builtin",
    "modules.order",
)


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
        required.append("dm_crypt")
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
        raise StepFailed(
            str(err),
            hint="check kernel.extra_modules and the kernel config",
            option="kernel.extra_modules",
        ) from None


def selected_modules(build: Build, log: Callable[[str], None]) -> list[str] | None:
    """The initrd's modules, or None when only the script's run can tell (a kernel it
    builds from a tree, not installed yet when the plan is made)."""
    info = kernel_info(build)
    known = info.modules_dir is not None and (info.modules_dir / "modules.dep").is_file()
    if not known and build.profile["kernel.source"] == "tree":
        return None
    return initrd_modules(build, log)


def check_kernel_modules(
    build: Build, modules_dir: Path, what: str, log: Callable[[str], None]
) -> None:
    """Refuse modules that belong to another kernel than the one on the CD, naming both
    releases (the kernel's from its image's header, else from the kernel stage)."""
    info = kernel_info(build)
    image = build.done_dir("kernel") / "vmlinuz"
    try:
        release = modmatch.kernel_release(info.release, image if image.is_file() else None)
        found = modmatch.check_modules(release, modules_dir, what)
    except modmatch.ModulesMismatch as err:
        raise StepFailed(
            str(err),
            hint="put the modules of the CD's kernel there "
            "(make modules_install, or the distribution's package), or choose "
            "the kernel they belong to with kernel.image",
            option="kernel.modules_dir",
        ) from None
    log(f"kernel release {release}; modules for {what}: {found.describe()}")


def check(build: Build, modules_dir: Path, what: str) -> fileops.Check:
    """check_kernel_modules as an operation; the script compares the dir's name and the
    first module's vermagic with the release the kernel stage wrote."""
    release_file = build.done_dir("kernel") / "release"
    module = '"$m"'
    return fileops.Check(
        f"check the modules for {what} belong to the kernel on the CD",
        lambda log: check_kernel_modules(build, modules_dir, what, log),
        (
            f"release=$(cat {shell_quote(release_file)})",
            f'[ "$(basename {shell_quote(modules_dir)})" = "$release" ] || '
            '{ echo "livecd-build: the '
            f'modules in {modules_dir} are not for release $release" >&2; exit 1; }}',
            f"m=$(awk -F: 'NF > 1 {{print $1; exit}}' {shell_quote(modules_dir / 'modules.dep')} "
            "2>/dev/null || true)",
            f'[ -z "$m" ] || [ "$(modinfo -F vermagic {shell_quote(modules_dir)}/{module} | '
            'cut -d" " '
            f'-f1)" = "$release" ] || {{ echo "livecd-build: $m in {modules_dir} was not built '
            'for release $release" >&2; exit 1; }',
        ),
    )


def copy_ops(
    build: Build, modules: list[str] | None, target_root: Path, every_index: bool = False
) -> Iterator[fileops.Op]:
    """The selected modules copied under ``target_root/lib/modules/RELEASE`` with the
    depmod files (``every_index``: every ``modules.*`` file of the kernel's, as the live
    system's own modprobe may read any). ``modules`` None: found when the script runs."""
    if modules is None:
        yield _copy_at_run_time(build, target_root, every_index)
        return
    info = kernel_info(build)
    if info.modules_dir is None or not (modules or every_index):
        return
    source = info.modules_dir
    target = target_root / "lib" / "modules" / info.release
    made: set[Path] = set()
    for rel in modules:
        if (target / rel).parent not in made:
            made.add((target / rel).parent)
            yield fileops.Mkdir((target / rel).parent)
        yield fileops.Copy(source / rel, target / rel)
    if every_index:
        yield fileops.Mkdir(target)
        names = sorted(n for n in os.listdir(source) if n.startswith("modules."))
    else:
        names = list(INDEX_FILES)
    for name in names:
        if (source / name).is_file():
            yield fileops.Copy(source / name, target / name)


def _copy_at_run_time(build: Build, target_root: Path, every_index: bool) -> fileops.Deferred:
    """copy_ops for a kernel the script builds: its modules resolved then with modprobe
    (what kmod.resolve_modules follows); sets kernel_release, modules_dir and modules."""
    kernel = build.done_dir("kernel")
    required, optional = wanted_modules(build)
    probe = (
        'modprobe -C /dev/null -d "${modules_dir%/lib/modules/*}" -S "$kernel_release" '
        "--show-depends"
    )
    target = f'{shell_quote(target_root / "lib/modules")}/"$kernel_release"'
    if every_index:
        index = [
            f"mkdir -p {target}",
            f"find \"$modules_dir\"/ -maxdepth 1 -name 'modules.*' -xtype f "
            f"-exec cp -p {{}} {target}/ \\;",
        ]
    else:
        index = [
            'if [ -n "$modules" ]; then',
            f'    (cd "$modules_dir" && cp -p {" ".join(INDEX_FILES)} {target}/'
            " 2>/dev/null) || true",
            "fi",
        ]
    return fileops.Deferred(
        "the kernel is built by this script: its modules are resolved now, with modprobe",
        (
            f"kernel_release=$(cat {shell_quote(kernel / 'release')})",
            f"modules_dir=$(cat {shell_quote(kernel / 'modules_dir')})",
            'modules=""',
            'if [ -n "$modules_dir" ] && [ -f "$modules_dir/modules.dep" ]; then',
            "    modules=$(",
            f"        {{ {probe} -a {' '.join(map(shell_quote, required))} || exit 1",
            f"          for m in {' '.join(map(shell_quote, optional))}; do",
            f'              {probe} "$m" 2>/dev/null || echo "driver $m is neither a module nor '
            'built in: skipped" >&2',
            "          done",
            '        } | awk -v dir="/lib/modules/$kernel_release/" \'$1 == "insmod" '
            "{ p = $2; i = index(p, dir); if (i) p = substr(p, i + length(dir)); "
            "if (!seen[p]++) print p }')",
            "fi",
            'if [ -n "$modules" ]; then',
            f"    mkdir -p {target}",
            f'    (cd "$modules_dir" && cp -p --parents $modules {target}/)',
            "fi",
            *index,
        ),
    )
