"""Stage ``bootloader``: the boot loader's files and menu (method step 10).

GRUB 2 gets a BIOS El Torito image, a UEFI image inside a FAT boot image and a grub.cfg;
isolinux gets isolinux.bin, ldlinux.c32 and isolinux.cfg; GRUB legacy, as in the article,
gets stage2_eltorito and a menu.lst. The menu has the entries the profile asks for (normal,
copy to RAM, debug shell) and, with a serial console, works over a serial line too.
"""

from __future__ import annotations

from pathlib import Path

from livecd_tui import bootconf, layout, secureboot, tools
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.method import Grub2, GrubLegacy, Isolinux
from livecd_tui.steps import Action, Step, command, shell_quote


def kernel_cmdline(build: Build) -> str:
    """The command line shared by every entry: the profile's words plus what the method
    needs (a RAM disk as big as the classic initrd)."""
    words = build.method.initrd.kernel_words()
    if build.profile["bootloader.cmdline"]:
        words.append(build.profile["bootloader.cmdline"])
    return " ".join(words)


def menu_entries(build: Build) -> list[str]:
    """The menu's entries in order, the default first: with writable.copy_to_ram the
    toram entry leads (added when the list lacks it); the other entries stay as they are,
    so a boot without the copy is always one choice away. With persistence, an entry
    without it is always there (added last when the list lacks it)."""
    entries = list(build.profile["bootloader.entries"]) or ["normal"]
    if build.profile["writable.copy_to_ram"]:
        entries = ["toram", *(e for e in entries if e != "toram")]
    if build.profile["writable.persistence"] != "off" and "nopersist" not in entries:
        entries.append("nopersist")
    return entries


def boot_menu(build: Build) -> bootconf.Menu:
    """The boot menu the profile asks for, as every loader's config writes it."""
    p = build.profile
    return bootconf.Menu(
        title=p["bootloader.title"],
        timeout=int(p["bootloader.timeout"]),
        entries=menu_entries(build),
        cmdline=kernel_cmdline(build),
        serial=bool(p["bootloader.serial"]),
        serial_speed=int(p["bootloader.serial_speed"]),
    )


def config_text(build: Build) -> tuple[str, str]:
    """(path in the CD tree, text) of the boot menu."""
    loader = build.method.loader
    return layout.relative(loader.config_file), loader.config_text(boot_menu(build))


def find_stage2(build: Build) -> Path | None:
    configured = build.profile.resolve_path("bootloader.stage2_eltorito")
    if configured:
        return configured
    found = tools.STAGE2.find()
    return Path(found) if found else None


def secure_boot_steps(build: Build, out: Path, mode: str) -> list[bootconf.ToolStep]:
    """The EFI side for Secure Boot (see :mod:`livecd_tui.secureboot`); refuses a profile
    that cannot boot with it, naming the option (plan_stage adds where it is set)."""
    from livecd_tui.stages.kernel import kernel_info

    p = build.profile
    kernel = kernel_info(build).image
    if mode == "shim":
        if p["kernel.source"] == "tree":
            raise StepFailed(
                "shim boots only a kernel the distribution signed, and "
                'kernel.source = "tree" builds one nobody signed: use '
                '"own-keys"',
                option="bootloader.secure_boot",
            )
        if kernel.is_file() and not secureboot.has_signature(kernel):
            raise StepFailed(
                f"shim boots only a signed kernel, and {kernel} carries no "
                "signature: take the distribution's signed kernel "
                '(kernel.image) or use "own-keys"',
                option="bootloader.secure_boot",
            )
        return secureboot.esp_steps(out, mode, epoch=build.epoch)
    paths = {}
    for key in ("bootloader.secure_boot_key", "bootloader.secure_boot_cert"):
        paths[key] = p.resolve_path(key)
        if paths[key] is None:
            raise StepFailed(
                'bootloader.secure_boot = "own-keys" needs your key and '
                "certificate: make them with `livecd-tui secure-boot-keys DIR` "
                'and set bootloader.secure_boot_key = "DIR/db.key", '
                'bootloader.secure_boot_cert = "DIR/db.crt"',
                option=key,
            )
    return secureboot.esp_steps(
        out,
        mode,
        key=paths["bootloader.secure_boot_key"],
        cert=paths["bootloader.secure_boot_cert"],
        kernel=build.done_dir("kernel") / "vmlinuz",
        epoch=build.epoch,
    )


def secure_boot_inputs(build: Build) -> list[Path]:
    """Files the Secure Boot layout reads: the key pair, shim and GRUB, and with own-keys
    the kernel stage's image it signs, so a new signed package, key or kernel makes the
    stage run again."""
    mode = secureboot.mode_of(build.profile)
    if mode == "off":
        return []
    found = [secureboot.SHIM_SIGNED, secureboot.MOKMANAGER_SIGNED]
    if mode == "shim":
        found.append(secureboot.GRUB_CD_SIGNED)
    else:
        found.append(build.done_dir("kernel") / "vmlinuz")
    for key in ("bootloader.secure_boot_key", "bootloader.secure_boot_cert"):
        path = build.profile.resolve_path(key)
        if path is not None:
            found.append(path)
    return [path for path in found if path.exists()]


def plan_bootloader(build: Build) -> list[Step]:
    """Write the menu, then gather or make the loader's images."""
    out = build.partial_dir("bootloader")
    cfg_path, text = config_text(build)

    def write_config(ctx: StepContext) -> None:
        target = ctx.out / cfg_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        ctx.log(f"{cfg_path}:")
        for line in text.splitlines():
            ctx.log(f"  {line}")

    steps: list[Step] = [
        Action(
            f"write the boot menu {cfg_path}",
            write_config,
            (
                f"mkdir -p {shell_quote((out / cfg_path).parent)}",
                f"cat > {shell_quote(out / cfg_path)} <<'EOF'\n{text.rstrip()}\nEOF",
            ),
        )
    ]
    loader = build.method.loader
    if isinstance(loader, Grub2):
        mode = secureboot.mode_of(build.profile)
        image_steps = bootconf.grub2_image_steps(out, epoch=build.epoch, efi=mode == "off")
        if mode != "off":
            image_steps += secure_boot_steps(build, out, mode)
        steps += [command(argv, describe, cwd=cwd) for argv, describe, cwd in image_steps]
    elif isinstance(loader, Isolinux):
        for tool in (tools.ISOLINUX_BIN, tools.LDLINUX):
            found = tool.find() or f"/usr/lib/ISOLINUX/{tool.name}"
            dest = layout.in_tree(out, layout.ISOLINUX_DIR) / tool.name
            steps.append(
                command(["cp", found, dest], f"copy {tool.name}", hint=f"Debian: {tool.debian}")
            )
    elif isinstance(loader, GrubLegacy):
        stage2 = find_stage2(build)

        def need_stage2(ctx: StepContext) -> None:
            raise StepFailed(
                "GRUB legacy's stage2_eltorito was not found",
                hint="Debian: apt-get download grub-legacy && dpkg-deb -x "
                "grub-legacy_*.deb DIR; then set bootloader.stage2_eltorito",
            )

        if stage2 is None:
            steps.append(Action("find stage2_eltorito", need_stage2))
        else:
            steps.append(
                command(
                    ["cp", stage2, layout.in_tree(out, layout.STAGE2_ELTORITO)],
                    "copy GRUB legacy's stage2_eltorito",
                )
            )
    else:  # a new BootLoader class: its images are made here
        raise ValueError(f"no boot images known for the boot loader {loader.name!r}")
    return steps


STAGE = Stage(
    name="bootloader",
    title="Boot loader",
    describe="Write the boot menu (grub.cfg, isolinux.cfg or menu.lst) and gather or make "
    "the boot loader's images.",
    plan=plan_bootloader,
    reads=(
        "bootloader.",
        "initrd.format",
        "initrd.size_mib",
        "writable.copy_to_ram",
        "writable.persistence",
    ),
    inputs=lambda build: (
        (
            [p for p in [find_stage2(build)] if p is not None]
            if isinstance(build.method.loader, GrubLegacy)
            else []
        )
        + secure_boot_inputs(build)
    ),
)
