"""The kernel stage's config check as bash, for ``plan`` and ``export-script``.

The same requirements the kernel stage checks in Python (``kernel.requirements_for``, handed
in by the kernel stage: this module imports no stage), each
one bash line over the config file: built in (``y``), or a module the initrd loads (``m``),
at least a number, one of several alternatives; and the kernel version rules. A missing
requirement is reported and the script stops after checking them all, as the stage does.
"""

from __future__ import annotations

from pathlib import Path

from livecd_tui.build import Build
from livecd_tui.kernel import kconfig
from livecd_tui.steps import shell_quote

#: Shell functions the check lines use; ``kernel_config`` and ``kernel_release`` are set
#: before them.
FUNCTIONS = r"""kernel_bad=0
kconfig_value() { sed -n "s/^CONFIG_$1=//p" "$kernel_config" | tail -n 1; }
kconfig_has() {  # kconfig_has y|ym SYMBOL...: each is set, and built in unless ym
    local need=$1 symbol value
    shift
    for symbol in "$@"; do
        value=$(kconfig_value "$symbol")
        case $value in "" | n) return 1 ;; m) [ "$need" = ym ] || return 1 ;; esac
    done
}
kconfig_at_least() {  # kconfig_at_least SYMBOL NUMBER
    local value
    value=$(kconfig_value "$1")
    [[ $value =~ ^(0x[0-9a-fA-F]+|[0-9]+)$ ]] && (( value >= $2 ))
}
kconfig_absent() { case $(kconfig_value "$1") in "" | n) return 0 ;; esac; return 1; }
kconfig_older() {  # kconfig_older MAJOR MINOR: the kernel is older (unknown: status 2)
    local major minor
    IFS=.- read -r major minor _ <<<"$kernel_release"
    [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 2
    (( major < $1 || (major == $1 && minor < $2) ))
}
kconfig_before() {  # kconfig_before MAJOR MINOR: the kernel is older (or its version unknown)
    kconfig_older "$1" "$2"
    [ $? != 1 ]
}
kconfig_lacks() {  # kconfig_lacks WHAT WHY: report it, fail after every check
    echo "livecd-build: the kernel cannot boot this CD: $1: $2" >&2
    kernel_bad=1
}"""


def _test(req: kconfig.Requirement) -> str:
    """A bash condition that holds when the config meets the requirement."""
    tests = []
    for group in req.alternatives():
        if req.min_value is not None:
            tests.append(" && ".join(f"kconfig_at_least {s} {req.min_value}" for s in group))
        else:
            tests.append(f"kconfig_has {req.need} {' '.join(group)}")
    return " || ".join(tests)


def requirement_lines(
    needed: list[kconfig.Requirement], advised: list[kconfig.Requirement]
) -> list[str]:
    """The bash check of requirements, as ``kconfig.check`` judges them: of
    ``$kernel_config`` (release ``$kernel_release``)."""
    lines = FUNCTIONS.splitlines()
    for req in needed:
        lacks = f"kconfig_lacks {shell_quote(req.describe())} {shell_quote(req.reason)}"
        if req.since is not None:
            # As kconfig._too_old: a kernel older than the symbol cannot be fixed by a config.
            major, minor = req.since
            too_old = (
                f"exists only since Linux {major}.{minor} and this kernel is older: "
                f"{req.reason}; choose another option or a newer kernel"
            )
            lacks = (
                f"{{ if kconfig_absent {req.symbol} && kconfig_older {major} {minor}; "
                f"then kconfig_lacks {req.symbol} "
                f"{shell_quote(too_old)}; else {lacks}; fi; }}"
            )
        line = f"{_test(req)} || {lacks}"
        if req.before is not None:
            major, minor = req.before
            gone = (
                f"Linux {major}.{minor} removed it: use a kernel older than that, or "
                'initrd.format = "initramfs"'
            )
            line = (
                f"if kconfig_before {major} {minor}; then {line}; "
                f"else kconfig_lacks {req.symbol} {shell_quote(gone)}; fi"
            )
        lines.append(line)
    for req in advised:
        warning = (
            f"warning: {req.describe()} is not set: {req.reason} (asked for by "
            "kernel.drivers; not needed to boot the CD)"
        )
        lines.append(f"{_test(req)} || echo {shell_quote(warning)}")
    lines.append('[ "$kernel_bad" = 0 ] || exit 1')
    return lines


def _fail(message: str, hint: str) -> list[str]:
    return [f"echo {shell_quote(f'livecd-build: {message} (hint: {hint})')} >&2", "exit 1"]


def _config_lines(source: str | None, out: Path) -> list[str]:
    """Copy the config found at plan time into the stage's output, then check it."""
    if source is None:
        return [
            "echo 'livecd-build: no kernel config found (.config, /boot/config-RELEASE, "
            "build/.config, /proc/config.gz): not checked' >&2"
        ]
    if source.endswith("(IKCONFIG)"):
        return [
            "echo 'livecd-build: the kernel config is only inside the image (IKCONFIG); "
            "livecd-tui reads it, this script does not check it' >&2"
        ]
    config = out / "config"
    copy = (
        f"zcat /proc/config.gz > {shell_quote(config)}"
        if source == "/proc/config.gz"
        else f"cp {shell_quote(source)} {shell_quote(config)}"
    )
    return [copy, f"kernel_config={shell_quote(config)}"]


def prebuilt_lines(
    build: Build, image: Path, release: str, modules_dir: Path | None, out: Path, check: list[str]
) -> list[str]:
    """record_prebuilt as bash: the release and modules dir, the config and its *check*
    (``requirement_lines``)."""
    if release == "unknown":
        return _fail(
            f"cannot tell the release of {image}",
            "set kernel.modules_dir to its /lib/modules/RELEASE",
        )
    modules = str(modules_dir or "")
    missing = _fail(f"the kernel's modules dir {modules} does not exist", "set kernel.modules_dir")
    lines = [
        f"[ -d {shell_quote(modules)} ] || {{ {missing[0]}; {missing[1]}; }}",
        f"echo {shell_quote(release)} > {shell_quote(out / 'release')}",
        f"printf '%s' {shell_quote(modules)} > {shell_quote(out / 'modules_dir')}",
    ]
    configured = build.profile.resolve_path("kernel.config")
    if configured:
        source = str(configured) if configured.is_file() else None
    else:
        found = kconfig.find_config(image, release, None, modules_dir)
        source = found[0] if found else None
    config = _config_lines(source, out)
    if len(config) == 1:
        return lines + config
    return [*lines, *config, f"kernel_release={shell_quote(release)}", *check]


def tree_lines(build: Build, tree: Path, modular: bool, out: Path, check: list[str]) -> list[str]:
    """record_tree as bash: the modules dir from the release make printed, then the
    *check* (``requirement_lines``)."""
    modules = build.done_dir("kernel") / "modules" / "lib" / "modules"
    lines = [
        f"kernel_release=$(cat {shell_quote(out / 'release')})",
        (
            f"printf '%s' {shell_quote(modules)}/\"$kernel_release\" > "
            f"{shell_quote(out / 'modules_dir')}"
            if modular
            else f": > {shell_quote(out / 'modules_dir')}"
        ),
    ]
    # make has just built the tree from its .config: it is there.
    return [*lines, *_config_lines(str(tree / ".config"), out), *check]
