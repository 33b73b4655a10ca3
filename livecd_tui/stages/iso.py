"""Stage ``iso``: lay out the CD and write the ISO image (method steps 7 and 11).

The CD tree is assembled from the earlier stages' outputs with hard links (no copies of the
big squashfs), with the ``LABEL`` marker file at its root, then written by xorriso,
genisoimage or mkisofs with the boot loader's El Torito (and, for hybrid images, MBR and
EFI) boot records. The ISO is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from livecd_tui import layers, layout, media, secureboot
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.steps import Action, Step, command, shell_quote


def iso_argv(build: Build, tree: Path, output: Path) -> list[str]:
    """The image writer's argv for the profile's tool and boot loader."""
    return build.method.loader.iso_argv(tree, output, build.epoch)


def publish(ctx: StepContext, built: Path, target: Path, checksum: bool) -> None:
    """Move the finished ISO to its final name (atomically) and write its checksum."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = media.file_sha256(built)
    temporary = target.with_name(f".{target.name}.partial")
    try:
        os.replace(built, temporary)
    except OSError:  # another filesystem: copy under the temporary name
        import shutil

        temporary.unlink(missing_ok=True)  # copyfile would write through a symlink there
        shutil.copyfile(built, temporary)
        built.unlink()
    os.replace(temporary, target)
    line = f"{digest}  {target.name}\n"
    if checksum:
        sums = target.with_name(target.name + ".sha256")
        sums.write_text(line)
        ctx.log(f"wrote {sums}")
    (ctx.out / "sha256").write_text(line)
    ctx.log(f"ISO {target} ({target.stat().st_size // 1024} KiB), sha256 {digest}")


def plan_iso(build: Build) -> list[Step]:
    p = build.profile
    out = build.partial_dir("iso")
    tree = out / "tree"
    built = out / "image.iso"
    marker = p["iso.marker"]

    def write_marker(ctx: StepContext) -> None:
        layout.in_tree(tree, layout.MARKER).write_text(marker + "\n")

    # With own-keys the boot loader stage signed the kernel: its boot/vmlinuz is copied in.
    own_keys = secureboot.mode_of(p) == "own-keys"
    links = [] if own_keys else [(build.done_dir("kernel") / "vmlinuz", layout.KERNEL)]
    links.append((build.done_dir("initrd") / "initrd.img", layout.INITRD))
    archive = build.method.writable.archive_name()
    if archive:
        links.append((build.done_dir("writable") / archive, layout.live_file(archive)))
    dirs = dict.fromkeys(layout.in_tree(tree, dest).parent for _source, dest in links)
    dirs[layout.in_tree(tree, layout.LIVE_DIR)] = None
    steps: list[Step] = [
        command(["mkdir", "-p", *dirs], "make the CD tree"),
        # Copied, not linked: -boot-info-table patches the boot image in place.
        command(
            ["cp", "-a", f"{build.done_dir('bootloader')}/.", tree],
            "copy the boot loader's files into the CD tree",
        ),
    ]
    steps += [
        command(
            ["ln", source, layout.in_tree(tree, dest)],
            f"link {layout.relative(dest)} into the CD tree",
        )
        for source, dest in links
    ]
    steps.append(link_system_images(build, tree))
    steps.append(
        Action(
            f"write the marker file {layout.MARKER} the init script looks for",
            write_marker,
            (
                f"printf '%s\\n' {shell_quote(marker)} > "
                f"{shell_quote(layout.in_tree(tree, layout.MARKER))}",
            ),
        )
    )
    steps.append(
        command(
            iso_argv(build, tree, built),
            "write the ISO image",
            hint="Debian: xorriso or genisoimage; the option is iso.tool",
        )
    )
    target = build.iso_path

    def finish(ctx: StepContext) -> None:
        if not built.is_file():
            raise StepFailed(f"the image writer made no {built}")
        publish(ctx, built, target, bool(p["iso.checksum"]))

    temporary = target.with_name(f".{target.name}.partial")
    steps.append(
        Action(
            f"move the ISO to {target}" + (" and write its sha256" if p["iso.checksum"] else ""),
            finish,
            (
                f"mkdir -p {shell_quote(target.parent)}",
                f"printf '%s  %s\\n' \"$(sha256sum < {shell_quote(built)} | cut -d ' ' -f 1)\" "
                f"{shell_quote(target.name)} > {shell_quote(out / 'sha256')}",
                f"mv {shell_quote(built)} {shell_quote(temporary)}",
                f"mv {shell_quote(temporary)} {shell_quote(target)}",
                *(
                    (
                        f"cp {shell_quote(out / 'sha256')} "
                        f"{shell_quote(target.with_name(target.name + '.sha256'))}",
                    )
                    if p["iso.checksum"]
                    else ()
                ),
            ),
        )
    )
    steps.append(command(["rm", "-rf", tree], "remove the CD tree (only links)"))
    return steps


def link_system_images(build: Build, tree: Path) -> Action:
    """Link the system image and its layers (as the system stage recorded them) into the
    CD's live dir."""
    system = build.done_dir("system")
    live = layout.in_tree(tree, layout.LIVE_DIR)

    def link(ctx: StepContext) -> None:
        for name in media.system_images(ctx.build):
            os.link(system / name, live / name)
        ctx.log(f"linked {', '.join(media.system_images(ctx.build))} into {layout.LIVE_DIR}")

    return Action(
        f"link the system image and its layers into {layout.relative(layout.LIVE_DIR)}",
        link,
        (
            "while read -r _sum name; do "
            f'ln {shell_quote(system)}/"$name" {shell_quote(live)}/"$name"; '
            f"done < {shell_quote(system / layers.SUMS)}",
        ),
    )


STAGE = Stage(
    name="iso",
    title="ISO image",
    describe="Lay out the CD (kernel, initrd, system image, archive, boot loader, LABEL "
    "marker) and write the bootable ISO image.",
    plan=plan_iso,
    reads=("iso.", "bootloader.type", "bootloader.secure_boot"),
    uses=("kernel", "system", "initrd", "writable", "bootloader"),
)
