"""Stage ``preflight``: find every tool the profile needs and check the work dir has room.

Nothing is built here; a missing tool is reported with the Debian package and the LFS/BLFS
package that provide it, before an hour of building finds out.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from livecd_tui import capture, tools
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepContext, StepFailed
from livecd_tui.stages.system import squashfs_sources
from livecd_tui.steps import Action, Step, shell_quote

MIB = 1024 * 1024


def check_tools(ctx: StepContext) -> None:
    """Log each needed tool with its path and version; fail listing every missing one."""
    needed = tools.required_tools(ctx.build.profile)
    for tool in needed:
        found = tool.find()
        if found:
            ctx.log(f"  ok       {tool.name:24} {found}  {tool.version(found)}")
        else:
            ctx.log(f"  MISSING  {tool.name:24} {tool.why}")
    missing = tools.missing_report(needed)
    if missing:
        for line in missing:
            ctx.log(line)
        raise StepFailed(
            f"{len(missing)} tool(s) missing: "
            + ", ".join(t.name for t in needed if t.find() is None),
            hint="install the packages named above",
        )


def estimate_space(build: Build) -> int:
    """Bytes the build will need: the packed bytes (the profile's excludes applied) taken as
    compressing to about half, the ISO as big again, and headroom. The preview
    (``livecd-tui capture``) uses the same function with its sampled squashfs size."""
    return capture.space_needed(capture.packed_bytes(build))


def check_space(ctx: StepContext) -> None:
    build = ctx.build
    needed = estimate_space(build)
    free = shutil.disk_usage(build.work).free
    ctx.log(
        f"work dir {build.work}: {free // MIB} MiB free, the build needs about {needed // MIB} MiB"
    )
    if free < needed:
        raise StepFailed(
            f"not enough space in {build.work}: {free // MIB} MiB free, about "
            f"{needed // MIB} MiB needed",
            hint="free some space or set build.work_dir to a larger disk",
        )


#: Programs the exported script runs besides the profile's tools, where livecd-tui does
#: the step in Python (finding files; the initrd format's own: InitrdFormat.script_tools).
SCRIPT_TOOLS = ("find", "sort")


def _glob_word(pattern: str) -> str:
    """A glob for bash: unquoted when it is plain, so that it expands."""
    return pattern if re.fullmatch(r"[\w/.*?+@-]+", pattern) else shell_quote(pattern)


def tools_script(build: Build) -> list[str]:
    """check_tools as bash: every program on PATH, every file by its globs."""
    needed = tools.required_tools(build.profile)
    extra = SCRIPT_TOOLS + build.method.initrd.script_tools
    names = " ".join([*(t.name for t in needed if not t.paths), *extra])
    lines = [
        "PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin",
        f"for t in {names}; do",
        '    command -v "$t" || { echo "livecd-build: missing tool: $t" >&2; exit 1; }',
        "done",
    ]
    for tool in (t for t in needed if t.paths):
        globs = " ".join(_glob_word(p) for p in tool.paths)
        missing = shell_quote(
            f"livecd-build: missing {tool.name} ({tool.why}): Debian package {tool.debian}"
        )
        lines.append(
            f'for f in {globs}; do [ -e "$f" ] && break; done; '
            f'[ -e "$f" ] && echo "$f" || {{ echo {missing} >&2; exit 1; }}'
        )
    return lines


def space_script(build: Build) -> list[str]:
    """check_space as bash: the same estimate (du of the packed dirs), then df."""
    if build.profile["system.source"] == "root":
        root = build.system_root
        dirs = " ".join(shell_quote(root / n) for n in squashfs_sources(build, root))
        packed = (
            f"$(du -s -k --apparent-size --exclude={shell_quote(build.work)} {dirs} 2>/dev/null "
            "| awk '{s += $1} END {print s + 0}')"
        )
    else:
        packed = str(64 * MIB // 1024)
    return [
        f"need_kib=$(( {packed} + {128 * MIB // 1024} ))",
        f"free_kib=$(df -P -k {shell_quote(build.work)} | awk 'NR == 2 {{print $4}}')",
        f'echo "work dir "{shell_quote(build.work)}": $(( free_kib / 1024 )) MiB free, the build '
        'needs about $(( need_kib / 1024 )) MiB"',
        f'[ "$free_kib" -ge "$need_kib" ] || {{ echo "livecd-build: not enough space in "'
        f"{shell_quote(build.work)} >&2; exit 1; }}",
    ]


def tool_inputs(build: Build) -> list[Path]:
    """Each needed tool's file, and what its link points to: preflight runs again when a
    tool is removed, moved or upgraded (a missing one is named as missing)."""
    found: list[Path] = []
    for tool in tools.required_tools(build.profile):
        path = tool.find()
        if path is None:
            found.append(Path("/(missing)") / tool.name)
            continue
        found.append(Path(path))
        real = Path(os.path.realpath(path))
        if real != Path(path):
            found.append(real)
    return found


def plan_preflight(build: Build) -> list[Step]:
    return [
        Action(
            "find every tool the profile needs, with its version",
            check_tools,
            tuple(tools_script(build)),
        ),
        Action(
            "estimate the space the build needs and check the work dir has it",
            check_space,
            tuple(space_script(build)),
        ),
    ]


STAGE = Stage(
    name="preflight",
    title="Preflight",
    describe="Find every tool the profile needs (with versions and the packages that provide "
    "missing ones) and check the work dir has room for the build.",
    plan=plan_preflight,
    # The plan lists the tools by name, so it changes (and preflight re-runs) exactly when
    # the set of tools does; the space estimate reads the packed dirs.
    reads=("system.source", "system.root", "system.dirs", "build.work_dir"),
    inputs=tool_inputs,
)
