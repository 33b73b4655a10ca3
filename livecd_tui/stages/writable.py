"""Stage ``writable``: what makes the read-only system writable at boot (method step 9).

Classic strategy (the article): the directories in ``writable.archive_dirs`` (``/etc``) are
copied, the profile's ``/etc`` overrides laid over them, and packed into ``etc.tar.bz2``,
which ``/linuxrc`` unpacks into the tmpfs root. Overlay strategy: the whole system is already
writable through overlayfs, so only the overrides (if any) are packed; ``/init`` unpacks them
into the overlay before switching root.
"""

from __future__ import annotations

from pathlib import Path

from livecd_tui import fileops, scrub, secrets
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.stages.system import all_root, squashfs_sources
from livecd_tui.steps import Action, Step, command

TAR_FLAGS = {"bzip2": "-j", "gzip": "-z", "xz": "-J"}


def packed_dirs(build: Build) -> list[str]:
    """The system root's dirs the classic archive packs (their copies on the CD)."""
    return build.method.writable.archive_dirs()


def link_dirs(build: Build) -> list[str]:
    """Classic: the squashfs's top-level dirs linked from the tmpfs root (bin lib sbin usr)."""
    writable = build.method.writable
    skip = set(writable.archive_dirs()) | set(writable.empty_dirs())
    return [d for d in squashfs_sources(build, build.system_root) if d not in skip]


def plan_writable(build: Build) -> list[Step]:
    """Copy the archived dirs, lay the overrides over /etc, pack them with tar."""
    p = build.profile
    writable = build.method.writable
    out = build.partial_dir("writable")
    name = writable.archive_name()
    if not name:
        return [
            command(
                ["touch", out / "nothing-to-pack"],
                "overlay without /etc overrides: nothing to pack",
            )
        ]
    tree = out / "tree"
    steps: list[Step] = [command(["mkdir", "-p", tree], "make the archive's tree")]
    members: list[str] = []
    root = build.system_root
    for d in writable.archive_dirs():
        d = d.strip("/")
        steps.append(command(["cp", "-a", root / d, tree / d], f"copy /{d} of the system"))
        members.append(d)
    overrides = p.resolve_path("writable.overrides")
    if overrides:
        steps.append(command(["mkdir", "-p", tree / "etc"], "make etc in the archive's tree"))
        # Not their owner: an override made in a user's home becomes root's, as a file
        # put in /etc by hand would be.
        steps.append(
            command(
                ["cp", "-R", "--preserve=mode,timestamps,links", f"{overrides}/.", tree / "etc"],
                "lay the /etc overrides over it",
            )
        )
        if "etc" not in members:
            members.append("etc")
    steps.append(scrub_tree_step(build, tree))
    # Owners as in the system (shadow keeps its group) unless the image makes every file
    # root's: then the archive does too, so both halves of the live system agree.
    owners = ["--owner=0", "--group=0"] if all_root(build) else []
    steps.append(
        command(
            [
                "tar",
                "--sort=name",
                *owners,
                "--numeric-owner",
                f"--mtime=@{build.epoch}",
                "--clamp-mtime",
                "-C",
                tree,
                TAR_FLAGS[writable.archive_compression()],
                "-cf",
                out / name,
                "--",
                *members,
            ],
            f"pack {', '.join('/' + m for m in members)} into {name}",
        )
    )
    if p["system.scrub.secrets"]:
        steps.append(check_archive_step(build, out / name))
    steps.append(command(["rm", "-rf", tree], "remove the archive's tree"))
    return steps


def scrub_tree_step(build: Build, tree: Path) -> Action:
    """The scrub and the live login, done on the archive's staging tree (a copy)."""
    classic = build.method.writable.linked_root

    def run(ctx: StepContext) -> None:
        tops = sorted(n.name for n in tree.iterdir() if n.is_dir() and not n.is_symlink())
        try:
            plan, findings = scrub.scrub_tree(ctx.build, tree, classic, ctx.log)
        except scrub.ScrubError as err:
            raise StepFailed(str(err), hint=err.hint, option=err.option) from None
        what = "the /etc archive" if classic else "the /etc overrides"
        title = f"{what} ({', '.join('/' + t for t in tops)})"
        lines = scrub.report(title, findings, plan.notes)
        for line in lines:
            ctx.log(line)
        full = scrub.report(title, findings, plan.notes, every_file=True)
        scrub.publish_report(ctx.build, "writable", full, ctx.out)
        ctx.log(f"report, every file: {scrub.report_path(ctx.build)} once the stage is done")

    return Action(
        "scrub the archive's copy and apply the live login",
        run,
        tuple(fileops.render([scrub.tree_at_run_time(build, tree, classic)])),
    )


def check_archive_step(build: Build, archive: Path) -> Action:
    """The check after packing: the archive's files (read from the archive itself) hold no
    secret that system.scrub.allow does not list."""

    def run(ctx: StepContext) -> None:
        allow = secrets.normalise_allow(ctx.build.profile["system.scrub.allow"])
        try:
            found = scrub.archive_secrets(archive, allow)
        except scrub.ScrubError as err:
            raise StepFailed(str(err)) from None
        if found:
            raise StepFailed(
                f"{archive.name} holds secrets the scrub report does not allow: "
                + "; ".join(found),
                hint="list a file in system.scrub.allow to pack it, or report "
                "this as a bug in livecd-tui's scrub",
                option="system.scrub.allow",
            )
        ctx.log(f"checked {archive.name}: no secret in it but those allowed")

    return Action(
        f"check {archive.name} holds no secret",
        run,
        tuple(scrub.check_archive_script_lines(build, archive)),
    )


def writable_inputs(build: Build) -> list[Path]:
    paths = [build.system_root / d.strip("/") for d in build.method.writable.archive_dirs()]
    overrides = build.profile.resolve_path("writable.overrides")
    if overrides:
        paths.append(overrides)
    return paths


STAGE = Stage(
    name="writable",
    title="Writable dirs",
    describe="Pack what the live system needs writable at boot: the /etc archive of the "
    "classic method, or the /etc overrides for the overlay method.",
    plan=plan_writable,
    reads=(
        "writable.",
        "system.source",
        "system.root",
        "system.scrub.",
        "system.login.",
        "system.keep_owners",
        "bootloader.serial",
        "bootloader.serial_speed",
    ),
    inputs=writable_inputs,
    on_done=scrub.publish_combined,
    packs=packed_dirs,
)
