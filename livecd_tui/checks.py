"""``check``: everything that can be known about a profile before building it.

The profile's own problems, the tools it needs, and the kernel's config against the
method's requirements. Each finding names the option that fixes it, so the TUI's check
panel can jump there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from livecd_tui import toolbox, tools
from livecd_tui.build import Build
from livecd_tui.engine import PlanError, plan_stage
from livecd_tui.kernel import kconfig
from livecd_tui.options import OPTIONS, format_value, is_active
from livecd_tui.profile import Profile
from livecd_tui.stages import STAGES

Kind = Literal["profile", "tool", "kernel"]

#: The first word of a kernel table row (``kernel_items``).
ROW_STATES = ("ok", "module", "missing", "wrong", "warning")


@dataclass(frozen=True)
class CheckItem:
    """One finding: what kind, whether it is a problem, the text, the option to change."""

    kind: Kind
    ok: bool
    message: str
    key: str | None = None
    #: Not a problem, but worth a look (an option set where it has no effect).
    note: bool = False


@dataclass
class CheckReport:
    items: list[CheckItem] = field(default_factory=list)

    @property
    def problems(self) -> list[CheckItem]:
        return [item for item in self.items if not item.ok]

    @property
    def lines(self) -> list[str]:
        out: list[str] = []
        current: str | None = None
        titles = {"profile": "Profile", "tool": "Tools", "kernel": "Kernel config"}
        for item in self.items:
            if item.kind != current:
                current = item.kind
                out.append(f"{'' if not out else chr(10)}{titles[item.kind]}:")
            mark = "note   " if item.note else "ok     " if item.ok else "PROBLEM"
            if item.kind == "kernel" and item.message.split(" ", 1)[0] in ROW_STATES:
                mark = "!" if not item.ok else " "  # the row starts with its own state
            fix = f"  (option {item.key})" if item.key and not item.ok else ""
            out.append(f"  {mark} {item.message}{fix}")
        return out


def run_checks(profile: Profile, with_kernel: bool = True) -> CheckReport:
    report = CheckReport()
    problems = profile.problems()
    for problem in problems:
        report.items.append(CheckItem("profile", False, str(problem), problem.key))
    if not problems:
        # Where the build would write and delete: the guards `build` applies before it runs.
        from livecd_tui.workdir import path_findings

        for finding in path_findings(Build.for_profile(profile), STAGES):
            number = profile.lines.get(finding.key)
            where = f"{profile.path}:{number}: " if number and profile.path else ""
            report.items.append(CheckItem("profile", False, where + finding.message, finding.key))
        if not report.items:
            report.items.append(CheckItem("profile", True, f"{profile.path}: no problems"))
    for line, key in unused_settings(profile):
        report.items.append(CheckItem("profile", True, line, key, note=True))
    for tool in tools.required_tools(profile):
        found = tool.find()
        if found:
            report.items.append(CheckItem("tool", True, f"{tool.name}: {found}"))
        else:
            report.items.append(
                CheckItem(
                    "tool",
                    False,
                    f"{tool.name} missing ({tool.why}): Debian {tool.debian}; LFS/BLFS {tool.lfs}",
                    tool.option,
                )
            )
    report.items += toolbox_items(profile)
    report.items += persistence_items(profile)
    if not problems:
        report.items += plan_items(profile)
        report.items += layers_items(profile)
    if with_kernel:
        report.items += kernel_items(profile)
    return report


def plan_items(profile: Profile) -> list[CheckItem]:
    """What the stages' planners refuse (the initrd's modules among them), found by
    planning every stage as ``plan`` does: the build plans them all the same way before its
    first stage runs."""
    build = Build.for_profile(profile, dry_run=True)
    items = []
    for stage in STAGES:
        try:
            plan_stage(build, stage)
        except PlanError as err:
            items.append(CheckItem("profile", False, str(err), err.option or None))
    return items


def layers_items(profile: Profile) -> list[CheckItem]:
    """Whether a rebuild packs the root's change as a layer, or always the whole system."""
    from livecd_tui.stages.system import layer_limits

    limits, why_not = layer_limits(Build.for_profile(profile, dry_run=True))
    if limits.enabled:
        how = "overlayfs stacks them at boot"
        if Build.for_profile(profile, dry_run=True).method.writable.linked_root:
            how = "the kernel has overlayfs: the classic method stacks them where the image is"
        text = (
            f"system image layers: on; a rebuild packs what changed in the root as a layer "
            f"({how}); a full repack after {limits.max_layers} layers or "
            f"{limits.repack_percent} % of the base"
        )
    else:
        text = f"system image layers: off, every build packs the whole system ({why_not})"
    return [CheckItem("tool", True, text, "system.layers", note=True)]


def toolbox_items(profile: Profile) -> list[CheckItem]:
    """Which toolbox the initrd gets and why; with the system's, every program it needs."""
    choice = toolbox.choose(profile)
    items = [
        CheckItem(
            "tool",
            True,
            f"initrd toolbox: {choice.kind} ({choice.why})",
            "initrd.toolbox",
            note=True,
        )
    ]
    if choice.kind == "system":
        programs, missing = toolbox.system_programs(profile)
        if missing:
            items.append(
                CheckItem(
                    "tool",
                    False,
                    f"the system toolbox needs {', '.join(missing)} in the system "
                    "root (coreutils, util-linux, kmod)",
                    "initrd.toolbox",
                )
            )
        if profile["initrd.device_manager"] == "mdev":
            items.append(
                CheckItem(
                    "tool",
                    False,
                    'initrd.device_manager = "mdev" is busybox\'s: the system '
                    "toolbox has none (use devtmpfs or udev)",
                    "initrd.device_manager",
                )
            )
        else:
            items.append(
                CheckItem(
                    "tool",
                    True,
                    f"system toolbox: {len(programs)} programs found in the system root",
                )
            )
    return items


def persistence_items(profile: Profile) -> list[CheckItem]:
    """With persistence: what the live system looks for, and for an encrypted store the
    cryptsetup the initrd takes from the system root."""
    from livecd_tui.build import host_root_of
    from livecd_tui.stages.initrd import CRYPTSETUP_PATHS

    mode = profile["writable.persistence"]
    if mode == "off":
        return []
    where = (
        f"an image file {profile['writable.persistence_file']} on a FAT filesystem"
        if mode == "file"
        else "a partition"
    )
    encrypted = profile["writable.persistence_encrypted"]
    items = [
        CheckItem(
            "tool",
            True,
            f"persistence: {where}, label "
            f"{profile['writable.persistence_label']}"
            f"{', LUKS' if encrypted else ''} (make it with livecd-tui "
            "persistence-image)",
            "writable.persistence",
            note=True,
        )
    ]
    if encrypted:
        root = host_root_of(profile)
        found = [c for c in CRYPTSETUP_PATHS if (root / c.lstrip("/")).is_file()]
        items.append(
            CheckItem("tool", True, f"cryptsetup: {root / found[0].lstrip('/')}")
            if found
            else CheckItem(
                "tool",
                False,
                f"cryptsetup missing in the system root {root} (an "
                "encrypted persistence store needs it in the initrd): Debian "
                "cryptsetup-bin; BLFS cryptsetup",
                "writable.persistence_encrypted",
            )
        )
    return items


def unused_settings(profile: Profile) -> list[tuple[str, str]]:
    """Options the profile sets that its other choices leave unused (a path set for a
    prebuilt kernel while building a tree): not wrong, but not what the user may think."""
    notes = []
    for key, option in OPTIONS.items():
        if profile.values[key] == option.default or is_active(option, profile.values):
            continue
        when = " and ".join(
            f"{other} is " + " or ".join(format_value(v) for v in allowed)
            for other, allowed in option.depends_on
        )
        notes.append(
            (
                f"{key} = {format_value(profile.values[key])} is not used: it "
                f"applies only when {when}",
                key,
            )
        )
    return notes


@dataclass
class KernelReport:
    """The kernel's config against the profile's requirements: the table the ``check``
    command prints and the TUI's kernel screen shows, and what the fix works on."""

    #: The kernel image (or where a tree puts it) and its release.
    image: Path
    release: str
    #: Where the config came from ("/boot/config-6.1.0-..."); None without one.
    source: str | None
    #: What booting the CD needs, and what the driver groups add (warnings only).
    findings: list[kconfig.Finding] = field(default_factory=list)
    advised: list[kconfig.Finding] = field(default_factory=list)
    groups: tuple[str, ...] = ()
    #: Judged from modules.builtin/modules.dep: only module symbols could be checked.
    partial: bool = False
    #: A kernel source tree the fix and menuconfig can change (kernel.source = "tree").
    tree: Path | None = None
    #: Why nothing could be checked.
    error: str | None = None

    @property
    def problems(self) -> list[kconfig.Finding]:
        return [f for f in self.findings if f.state in ("missing", "wrong")]

    @property
    def warnings(self) -> list[kconfig.Finding]:
        return [f for f in self.advised if f.state in ("missing", "wrong")]

    def fixable(self) -> list[kconfig.Finding]:
        """Problems and warnings a change of the config can cure."""
        return [f for f in self.problems + self.warnings if kconfig.fixable(f, self.release)]

    def headline(self) -> str:
        if self.error:
            return self.error
        where = f"config {self.source}" if self.source else "no config"
        head = f"{where} (release {self.release})"
        if self.partial:
            head += "; partial check from modules.builtin and modules.dep"
        return head


def kernel_report(profile: Profile) -> KernelReport:
    """Find the profile's kernel and its config, and check both requirement sets."""
    from livecd_tui.kernel.kernelfix import tree_version
    from livecd_tui.stages.kernel import (
        advised_requirements,
        driver_groups,
        planned_kernel,
        requirements_for,
    )

    build = Build.for_profile(profile)
    info = planned_kernel(build)
    tree = None
    release = info.release
    if profile["kernel.source"] == "tree":
        tree = profile.resolve_path("kernel.tree") or Path("/usr/src/linux")
        if kconfig.parse_release(release) is None:
            release = tree_version(tree) or release
    report = KernelReport(info.image, release, None, groups=driver_groups(profile), tree=tree)
    configured = info.config if tree else profile.resolve_path("kernel.config")
    found: tuple[str, str] | None
    if configured is not None:
        try:
            found = (str(configured), configured.read_text(errors="replace"))
        except OSError:
            found = None
    else:
        found = kconfig.find_config(info.image, info.release, None, info.modules_dir)
    reqs, advised = requirements_for(build), advised_requirements(build)
    if found is not None:
        report.source = found[0]
        config = kconfig.parse_config(found[1])
        report.findings = kconfig.check(config, reqs, release)
        report.advised = kconfig.check(config, advised, release)
    elif info.modules_dir and any(
        (info.modules_dir / name).is_file() for name in ("modules.builtin", "modules.dep")
    ):
        report.partial = True
        report.findings = kconfig.check_from_modules(info.modules_dir, reqs)
        report.advised = kconfig.check_from_modules(info.modules_dir, advised)
    else:
        where = (
            f"{tree}/.config"
            if tree
            else (
                f"{info.image} (release {info.release}), and no modules.builtin or modules.dep "
                f"in {info.modules_dir} to check instead"
            )
        )
        report.error = f"no kernel config found for {where}"
    return report


def kernel_items(profile: Profile) -> list[CheckItem]:
    """The kernel-config requirements of the profile's method, each ok or not."""
    report = kernel_report(profile)
    if report.error:
        return [
            CheckItem(
                "kernel", False, report.error, "kernel.tree" if report.tree else "kernel.config"
            )
        ]
    key = "kernel.tree" if report.tree else "kernel.image"
    items = [CheckItem("kernel", True, report.headline())]
    for finding in report.findings:
        ok = finding.state in ("ok", "module")
        items.append(CheckItem("kernel", ok, finding_line(finding), None if ok else key))
    for finding in report.warnings:
        items.append(
            CheckItem(
                "kernel",
                True,
                finding_line(finding, "warning") + " (driver groups; not needed to boot)",
            )
        )
    if report.tree and report.fixable():
        items.append(
            CheckItem(
                "kernel",
                True,
                f"livecd-tui kernel-fix {profile.path or ''} "
                "sets what is missing in the tree's .config",
            )
        )
    return items


def finding_line(finding: kconfig.Finding, state: str | None = None) -> str:
    """One row of the kernel table: state, symbol, what was found and why it matters."""
    return f"{state or finding.state:7} {finding.requirement.symbol:22} {finding.message}"


def fix_inputs(
    profile: Profile, groups: bool = True
) -> tuple[Path, list[kconfig.Requirement], str | None]:
    """What the fix works on: the profile's kernel tree, the requirements (those of the
    method, plus the driver groups' unless ``groups`` is False) and the kernel version."""
    from livecd_tui.kernel.kernelfix import FixError

    if profile["kernel.source"] != "tree":
        raise FixError(
            'the fix changes a kernel source tree: set kernel.source = "tree" '
            "and kernel.tree (a prebuilt kernel's config cannot be changed)"
        )
    from livecd_tui.stages.kernel import advised_requirements, requirements_for

    report = kernel_report(profile)
    assert report.tree is not None
    from livecd_tui.kernel.kbuild import make_path_problem

    problem = make_path_problem("kernel tree", report.tree)
    if problem:
        raise FixError(problem + " (kernel.tree)")
    build = Build.for_profile(profile)
    reqs = requirements_for(build) + (advised_requirements(build) if groups else [])
    return report.tree, reqs, report.release
