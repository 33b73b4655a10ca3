"""``check``: everything that can be known about a profile before building it.

The profile's own problems, the tools it needs, and the kernel's config against the
method's requirements. Each finding names the option that fixes it, so the TUI's check
panel can jump there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from livecd_tui import kconfig, tools
from livecd_tui.build import Build
from livecd_tui.profile import Profile

Kind = Literal["profile", "tool", "kernel"]


@dataclass(frozen=True)
class CheckItem:
    """One finding: what kind, whether it is a problem, the text, the option to change."""

    kind: Kind
    ok: bool
    message: str
    key: str | None = None


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
            mark = "ok     " if item.ok else "PROBLEM"
            fix = f"  (option {item.key})" if item.key and not item.ok else ""
            out.append(f"  {mark} {item.message}{fix}")
        return out


#: Which option to change for each tool that is missing.
TOOL_OPTIONS = {
    "stage2_eltorito": "bootloader.stage2_eltorito",
    "xorriso": "iso.tool", "genisoimage": "iso.tool", "mkisofs": "iso.tool",
    "qemu-system-x86_64": "boottest.enabled", "OVMF": "boottest.firmware",
    "mke2fs": "initrd.format", "busybox": "initrd.busybox",
}


def run_checks(profile: Profile, with_kernel: bool = True) -> CheckReport:
    report = CheckReport()
    problems = profile.problems()
    for problem in problems:
        report.items.append(CheckItem("profile", False, str(problem), problem.key))
    if not problems:
        report.items.append(CheckItem("profile", True, f"{profile.path}: no problems"))
    for tool in tools.required_tools(profile):
        found = tool.find()
        if found:
            report.items.append(CheckItem("tool", True, f"{tool.name}: {found}"))
        else:
            report.items.append(CheckItem(
                "tool", False, f"{tool.name} missing ({tool.why}): Debian {tool.debian}; "
                f"LFS/BLFS {tool.lfs}", TOOL_OPTIONS.get(tool.name, "bootloader.type")))
    if with_kernel:
        report.items += kernel_items(profile)
    return report


def kernel_items(profile: Profile) -> list[CheckItem]:
    """The kernel-config requirements of the profile's method, each ok or not."""
    from livecd_tui.stages.kernel import advised_requirements, planned_kernel, requirements_for

    build = Build.for_profile(profile)
    info = planned_kernel(build)
    configured = profile.resolve_path("kernel.config") or (
        info.config if profile["kernel.source"] == "tree" else None)
    found: tuple[str, str] | None
    if configured is not None:
        try:
            found = (str(configured), configured.read_text(errors="replace"))
        except OSError:
            found = None
    else:
        found = kconfig.find_config(info.image, info.release, None, info.modules_dir)
    reqs = requirements_for(build)
    key = "kernel.tree" if profile["kernel.source"] == "tree" else "kernel.image"
    if found is None:
        if info.modules_dir and info.modules_dir.is_dir():
            findings = kconfig.check_from_modules(info.modules_dir, reqs)
            head = [CheckItem("kernel", True, f"no config for {info.image}; partial check "
                                              "from modules.builtin and modules.dep")]
        else:
            return [CheckItem("kernel", False, f"no kernel config found for {info.image} "
                                               f"(release {info.release})", "kernel.config")]
    else:
        findings = kconfig.check(kconfig.parse_config(found[1]), reqs, info.release)
        head = [CheckItem("kernel", True, f"config {found[0]} (release {info.release})")]
    items = head
    for finding in findings:
        ok = finding.state in ("ok", "module")
        items.append(CheckItem("kernel", ok, f"{finding.state:7} {finding.requirement.symbol}: "
                                             f"{finding.message}", None if ok else key))
    advised = advised_requirements(build)
    config = kconfig.parse_config(found[1]) if found else None
    for finding in (kconfig.check(config, advised, info.release) if config is not None
                    else kconfig.check_from_modules(info.modules_dir, advised)
                    if info.modules_dir else []):
        if finding.state in ("missing", "wrong"):
            items.append(CheckItem("kernel", True, f"warning {finding.requirement.symbol}: "
                                   f"{finding.message} (driver groups; not needed to boot)"))
    return items
