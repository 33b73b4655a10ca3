"""Stage ``kernel``: get the kernel image, its release and modules, and check its config.

A prebuilt kernel is copied; a source tree is built with ``make``. Either way the config is
checked against what the chosen method needs before anything else is built, because a
missing option is the most common reason a home-made live CD does not boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livecd_tui.build import Build, find_prebuilt_kernel
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.kernel import kbuild, kconfig
from livecd_tui.profile import Profile
from livecd_tui.stages import kconfig_script
from livecd_tui.steps import Action, Step, command, shell_quote

#: Placeholder for values only known once a kernel has been built from a tree.
UNKNOWN_RELEASE = "$(make -s kernelrelease)"


@dataclass(frozen=True)
class KernelInfo:
    """The kernel a build uses: its image, release, modules dir and config."""

    image: Path
    release: str
    modules_dir: Path | None
    config: Path | None


def kernel_info(build: Build) -> KernelInfo:
    """What the kernel stage produced, or (before it ran) what it will produce."""
    done = build.done_dir("kernel")
    if (done / "release").is_file():
        release = (done / "release").read_text().strip()
        modules = (
            (done / "modules_dir").read_text().strip() if (done / "modules_dir").is_file() else ""
        )
        return KernelInfo(
            done / "vmlinuz",
            release,
            Path(modules) if modules else None,
            done / "config" if (done / "config").is_file() else None,
        )
    return planned_kernel(build)


def planned_kernel(build: Build) -> KernelInfo:
    """The kernel as the profile describes it, found without building anything."""
    profile = build.profile
    if profile["kernel.source"] == "tree":
        tree = profile.resolve_path("kernel.tree") or Path("/usr/src/linux")
        release = _tree_release(tree) or UNKNOWN_RELEASE
        modules = build.done_dir("kernel") / "modules" / "lib" / "modules" / release
        # The config the tree is built with, whatever kernel.config says (prebuilt only).
        config = tree / ".config"
        return KernelInfo(tree / "arch" / "x86" / "boot" / "bzImage", release, modules, config)
    image: Path | None = profile.resolve_path("kernel.image")
    release = ""
    if image is None:
        found = find_prebuilt_kernel(build.host_root)
        if found:
            image, release = found
        else:
            image = build.host_root / "boot" / "vmlinuz"
    if not release:
        from_image = kconfig.kernel_release_from_image(image) if image.is_file() else None
        release = from_image or "unknown"
    modules_dir: Path | None = profile.resolve_path("kernel.modules_dir") or (
        build.host_root / "lib" / "modules" / release
    )
    return KernelInfo(image, release, modules_dir, profile.resolve_path("kernel.config"))


def _tree_release(tree: Path) -> str | None:
    """The release of an already built tree (include/config/kernel.release), if any."""
    path = tree / "include" / "config" / "kernel.release"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def requirements_for(build: Build, media: list[str] | None = None) -> list[kconfig.Requirement]:
    """The kernel symbols the profile's method needs to boot from its medium (a CD, and a
    USB disk when the boot test uses one)."""
    p = build.profile
    if media is None:
        media = ["cdrom", *(["usb"] if p["boottest.medium"] == "usb" else [])]
    return kconfig.requirements(
        initrd_format=build.method.initrd.name,
        writable=build.method.writable.name,
        squashfs_compressor=p["system.compressor"],
        initrd_compression=p["initrd.compression"],
        media=media,
        uefi=build.method.loader.uefi,
        initrd_size_mib=p["initrd.size_mib"],
        persistence=p["writable.persistence"],
        encrypted_persistence=p["writable.persistence_encrypted"],
    )


def driver_groups(profile: Profile) -> tuple[str, ...]:
    """The driver groups (kconfig.GROUPS) the profile wants: its purpose preset's, or with
    the ``custom`` preset those whose ``kernel.drivers.GROUP`` switch is on."""
    preset = profile["kernel.drivers.preset"]
    if preset != "custom":
        return kconfig.preset_groups(preset)
    return tuple(g for g in kconfig.GROUPS if profile[f"kernel.drivers.{g}"])


def advised_requirements(build: Build) -> list[kconfig.Requirement]:
    """Drivers the profile's driver groups ask for, beyond what booting needs: a kernel
    without them still boots the CD, so they are warnings, not errors."""
    needed = {r.symbol for r in requirements_for(build)}
    groups = kconfig.group_requirements(driver_groups(build.profile))
    return [r for r in groups if r.symbol not in needed]


def check_lines(build: Build) -> list[str]:
    """The config check as bash (``kconfig_script``): of ``$kernel_config``, release
    ``$kernel_release``."""
    return kconfig_script.requirement_lines(requirements_for(build), advised_requirements(build))


def check_kernel_config(
    ctx: StepContext, info: KernelInfo, config_text: tuple[str, str] | None, out: Path
) -> None:
    """Check the config against the method's requirements; fail early with the symbols."""
    reqs = requirements_for(ctx.build)
    advised = advised_requirements(ctx.build)
    if config_text is None:
        ctx.log(
            "no kernel config found (.config, /boot/config-RELEASE, build/.config, "
            "/proc/config.gz, IKCONFIG in the image): checking modules.builtin and "
            "modules.dep instead, so this result is partial"
        )
        if info.modules_dir is None or not info.modules_dir.is_dir():
            raise StepFailed(
                "cannot check the kernel: no config and no modules dir",
                hint="set kernel.config to the kernel's .config",
            )
        findings = kconfig.check_from_modules(info.modules_dir, reqs)
        warnings = kconfig.check_from_modules(info.modules_dir, advised)
    else:
        source, text = config_text
        ctx.log(f"kernel config: {source}")
        (out / "config").write_text(text)
        config = kconfig.parse_config(text)
        findings = kconfig.check(config, reqs, info.release)
        warnings = kconfig.check(config, advised, info.release)
    bad = []
    for finding in findings:
        ctx.log(f"  {finding.state:8} {finding.requirement.symbol:24} {finding.message}")
        if finding.state in ("missing", "wrong"):
            bad.append(finding)
    for finding in warnings:
        if finding.state in ("missing", "wrong"):
            ctx.log(
                f"  warning  {finding.requirement.symbol:24} {finding.message} "
                "(asked for by kernel.drivers; not needed to boot the CD)"
            )
    if bad:
        raise StepFailed(
            "the kernel cannot boot this CD: "
            + "; ".join(f"{f.requirement.symbol} ({f.message})" for f in bad),
            hint='build a kernel with these options (kernel.source = "tree"), or choose '
            'initrd.format = "initramfs" and writable.strategy = "overlay"',
        )


def plan_kernel(build: Build) -> list[Step]:
    """Copy or build the kernel, record its release and modules dir, check its config."""
    out = build.partial_dir("kernel")
    profile = build.profile
    steps: list[Step] = []
    info = planned_kernel(build)

    if profile["kernel.source"] == "tree":
        tree = profile.resolve_path("kernel.tree") or Path("/usr/src/linux")
        jobs = int(profile["kernel.jobs"]) or build.jobs
        modular = _tree_is_modular(tree)
        targets = ["bzImage", "modules"] if modular else ["bzImage"]

        def estimate_build(ctx: StepContext) -> None:
            objects, source = kbuild.estimate(tree)
            ctx.log(kbuild.estimate_line(objects, source))
            changed = kbuild.changed_since_record(tree)
            if changed is not None:
                ctx.log(
                    f"changed since the last build: {changed} (make rebuilds what depends on it)"
                )

        steps.append(
            Action(
                "estimate the build from the last one of this tree",
                estimate_build,
                (
                    f"echo \"kbuild: about $(find {shell_quote(tree)} -name '.*.cmd' | wc -l) "
                    "objects to "
                    'make (from the objects already in the tree)"',
                ),
            )
        )
        steps.append(
            command(
                ["make", "-C", tree, f"-j{jobs}", *targets],
                "build the kernel image" + (" and modules" if modular else ""),
                hint="the tree must be configured (make menuconfig) first",
            )
        )
        steps.append(
            command(
                ["make", "-s", "-C", tree, "kernelrelease"],
                "record the kernel release",
                stdout=out / "release",
            )
        )
        if modular:
            steps.append(
                command(
                    ["make", "-C", tree, f"INSTALL_MOD_PATH={out / 'modules'}", "modules_install"],
                    "install the modules into the work dir",
                )
            )
        steps.append(
            command(
                ["cp", "--preserve=timestamps", info.image, out / "vmlinuz"],
                "copy the kernel image",
            )
        )

        def record_tree(ctx: StepContext) -> None:
            release = (ctx.out / "release").read_text().strip()
            modules = build.done_dir("kernel") / "modules" / "lib" / "modules" / release
            (ctx.out / "modules_dir").write_text(str(modules) if modular else "")
            staged = ctx.out / "modules" / "lib" / "modules" / release
            config = _read_config(tree / ".config")
            info_now = KernelInfo(
                ctx.out / "vmlinuz", release, staged if modular else None, tree / ".config"
            )
            check_kernel_config(ctx, info_now, config, ctx.out)
            record = kbuild.write_record(tree)
            ctx.log(f"{record.objects} kbuild targets in {tree}: the next build's estimate")

        steps.append(
            Action(
                "check the kernel config against the method",
                record_tree,
                tuple(kconfig_script.tree_lines(build, tree, modular, out, check_lines(build))),
            )
        )
        return steps

    steps.append(
        command(
            ["cp", "--preserve=timestamps", info.image, out / "vmlinuz"],
            "copy the kernel image",
            hint="set kernel.image to the kernel to put on the CD",
        )
    )

    def record_prebuilt(ctx: StepContext) -> None:
        if info.release == "unknown":
            raise StepFailed(
                f"cannot tell the release of {info.image}",
                hint="set kernel.modules_dir to its /lib/modules/RELEASE",
            )
        if info.modules_dir is None or not info.modules_dir.is_dir():
            raise StepFailed(
                f"the kernel's modules dir {info.modules_dir} does not exist",
                hint="set kernel.modules_dir",
            )
        (ctx.out / "release").write_text(info.release + "\n")
        (ctx.out / "modules_dir").write_text(str(info.modules_dir))
        ctx.log(f"kernel {info.image}, release {info.release}, modules {info.modules_dir}")
        configured = profile.resolve_path("kernel.config")
        found = (
            _read_config(configured)
            if configured
            else kconfig.find_config(info.image, info.release, None, info.modules_dir)
        )
        check_kernel_config(ctx, info, found, ctx.out)

    steps.append(
        Action(
            "record the release and modules dir, check the kernel config",
            record_prebuilt,
            tuple(
                kconfig_script.prebuilt_lines(
                    build, info.image, info.release, info.modules_dir, out, check_lines(build)
                )
            ),
        )
    )
    return steps


def _read_config(path: Path) -> tuple[str, str] | None:
    try:
        return str(path), path.read_text(errors="replace")
    except OSError:
        return None


def _tree_is_modular(tree: Path) -> bool:
    config = _read_config(tree / ".config")
    return config is None or kconfig.parse_config(config[1]).get("MODULES") == "y"


def kernel_inputs(build: Build) -> list[Path]:
    info = planned_kernel(build)
    # A tree's bzImage is what the stage makes, not what it reads: were it an input, every
    # build would run the stage once more.
    paths = [] if build.profile["kernel.source"] == "tree" else [info.image]
    if build.profile["kernel.source"] == "tree":
        tree = build.profile.resolve_path("kernel.tree") or Path("/usr/src/linux")
        # The stamp changes only when files changed after the last build of the tree, so
        # an untouched tree keeps the stage up to date and an edited one builds again.
        paths += [tree / ".config", kbuild.sources_changed_stamp(tree)]
    elif info.config:
        paths.append(info.config)
    if info.modules_dir and build.profile["kernel.source"] == "prebuilt":
        paths.append(info.modules_dir / "modules.dep")
    return paths


STAGE = Stage(
    name="kernel",
    title="Kernel",
    describe="Copy the kernel image (or build it from a source tree), find its release, "
    "modules and config, and check the config has what the live CD needs.",
    plan=plan_kernel,
    reads=(
        "kernel.",
        "initrd.format",
        "initrd.compression",
        "initrd.size_mib",
        "writable.strategy",
        "writable.persistence",
        "writable.persistence_encrypted",
        "system.compressor",
        "bootloader.type",
        "boottest.medium",
    ),
    inputs=kernel_inputs,
)
