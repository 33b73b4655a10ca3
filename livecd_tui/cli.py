"""The ``livecd-tui`` command: the TUI by default, and headless commands on the same core.

Exit codes: 0 success; 1 the build (or a check) failed; 2 a bad profile or bad usage.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from livecd_tui import __version__, layers
from livecd_tui.build import Build
from livecd_tui.engine import (
    BuildError,
    Engine,
    Event,
    OutputLine,
    PlanError,
    StageFinished,
    StageSkipped,
    StageStarted,
    StepStarted,
    load_result,
    load_state,
    plan_stage,
    render_script,
    result_code,
)
from livecd_tui.options import path_length_problem, reference_markdown, reference_text
from livecd_tui.profile import Profile, ProfileError, find_profile, load_profile
from livecd_tui.stages import STAGE_NAMES, STAGES
from livecd_tui.terminal import printable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_PROFILE = "demo"
COMMANDS = (
    "build",
    "plan",
    "export-script",
    "check",
    "status",
    "options",
    "attach",
    "stop",
    "clean",
    "kernel-fix",
    "capture",
    "persistence-image",
    "secure-boot-keys",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version")):
        return open_tui(args)
    parser = make_parser()
    options = parser.parse_args(args)
    try:
        result: int = options.func(options)
        return result
    except ProfileError as err:
        print_problems(err)
        return EXIT_USAGE
    except BuildError as err:
        from livecd_tui.workdir import report_refusal

        report_refusal(str(err))  # a detached build refused: its starter says why
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except OSError as err:  # the work dir's disk full, unreadable, ...: no traceback
        where = f": {err.filename}" if err.filename else ""
        print(f"livecd-tui: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_FAILED


def print_problems(err: ProfileError) -> None:
    print(f"livecd-tui: the profile has {len(err.problems)} problem(s):", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)


def name_arg(text: str) -> str:
    """A path or name given on the command line; argparse refuses one the system cannot
    use (a name longer than Linux allows raises OSError in every test of the path)."""
    problem = path_length_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def path_arg(text: str) -> Path:
    """A path given on the command line, checked as ``name_arg`` does."""
    return Path(name_arg(text))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livecd-tui",
        description="Turn an installed Linux system into a bootable live ISO. Without a "
        "command, opens the TUI on PROFILE (default: demo); --ascii or "
        "--no-ascii before it choose its drawing (default: ASCII on the Linux "
        "console and without a UTF-8 locale; LIVECD_TUI_ASCII=1/0).",
        epilog="Exit codes: 0 ok, 1 build or check failed, 2 bad profile or usage.",
    )
    parser.add_argument("--version", action="version", version=f"livecd-tui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    build = add("build", "Build the live ISO of a profile (stages up to date are skipped).")
    build.add_argument("profile", help="profile file or name")
    build.add_argument(
        "--work-dir",
        type=path_arg,
        help="work dir (default: from the profile, else $XDG_CACHE_HOME/livecd-tui/PROFILE)",
    )
    build.add_argument("--only", metavar="STAGE,...", help="run only these stages")
    build.add_argument(
        "--from",
        dest="start",
        metavar="STAGE",
        help="run from this stage on (--only, --from and --resume exclude one another)",
    )
    build.add_argument(
        "--force",
        nargs="?",
        const="*",
        metavar="STAGE",
        help="rebuild all stages, or only STAGE, even if up to date",
    )
    build.add_argument(
        "--resume",
        action="store_true",
        help="continue from the stage that failed or was interrupted",
    )
    build.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only stage results, not each command's output",
    )
    build.add_argument(
        "--detach",
        action="store_true",
        help="run the build in the background, in its own session, so it "
        "survives the terminal (SSH) going away; follow it with attach",
    )
    build.add_argument("--shown-as", metavar="PROFILE", help=argparse.SUPPRESS)
    build.set_defaults(func=cmd_build)

    for name, help_text, func in (
        ("attach", "Follow a running (or finished) build in a work dir.", cmd_attach),
        ("stop", "Stop the build running in a work dir.", cmd_stop),
        ("clean", "Delete a work dir (only one livecd-tui made, and not in use).", cmd_clean),
        ("status", "Show each stage's state in a work dir.", cmd_status),
    ):
        on_work_dir = add(name, help_text)
        on_work_dir.add_argument(
            "target", type=name_arg, help="work dir, or a profile (its default work dir)"
        )
        on_work_dir.set_defaults(func=func)

    plan = add("plan", "Print every step of every stage as it would run, running nothing.")
    plan.add_argument("profile")
    plan.add_argument("--work-dir", type=path_arg)
    plan.set_defaults(func=cmd_plan)

    export = add("export-script", "Write the build as a standalone, commented bash script.")
    export.add_argument("profile")
    export.add_argument("--work-dir", type=path_arg)
    export.add_argument("-o", "--output", type=path_arg, help="file to write (default: stdout)")
    export.set_defaults(func=cmd_export)

    check = add("check", "Check a profile, the tools it needs and the kernel's config.")
    check.add_argument("profile")
    check.set_defaults(func=cmd_check)

    add_kernel_fix(
        add(
            "kernel-fix",
            "Set what the kernel tree's .config lacks (scripts/config "
            "+ make olddefconfig), after showing every change.",
        )
    )

    persist = add(
        "persistence-image",
        "Make the persistence store a profile's live system "
        "looks for (writable.persistence): an ext4 image, "
        "labelled, optionally LUKS-encrypted, for a USB "
        "stick's partition, a FAT stick or a VM disk.",
    )
    persist.add_argument("profile")
    persist.add_argument("output", type=path_arg, help="the image file to make (never overwritten)")
    persist.add_argument("--size", default="1G", help="e.g. 512M, 4G (default 1G)")
    persist.add_argument(
        "--fs",
        choices=("ext4", "ext2"),
        default="ext4",
        help="ext2 for a kernel without ext4 (default ext4)",
    )
    persist.add_argument(
        "--passphrase-file",
        type=path_arg,
        metavar="FILE",
        help="with writable.persistence_encrypted: the LUKS passphrase "
        "(default: asked twice on the terminal)",
    )
    persist.add_argument(
        "--iter-time",
        type=int,
        default=2000,
        metavar="MS",
        help="with encryption: ms of key derivation on this machine "
        "(default 2000, cryptsetup's; a slower machine takes longer)",
    )
    persist.set_defaults(func=cmd_persistence_image)

    capture = add(
        "capture",
        "Preview what the system stage will pack (per top-level dir), "
        "what it leaves out and why, and the squashfs and ISO sizes "
        "estimated from a sample; warn when the ISO will not fit "
        "iso.medium or the work dir lacks space. Exit 1 on a warning.",
    )
    capture.add_argument("profile")
    capture.add_argument("--work-dir", type=path_arg)
    capture.add_argument(
        "--sample-mib",
        type=int,
        default=32,
        metavar="MIB",
        help="how much of the data the estimate packs (default 32)",
    )
    capture.add_argument(
        "--no-estimate", action="store_true", help="only walk the system, pack no sample"
    )
    capture.add_argument(
        "--all", action="store_true", help="list every path left out, not only examples"
    )
    capture.set_defaults(func=cmd_capture)

    keys = add(
        "secure-boot-keys",
        "Make your own Secure Boot key pair in DIR (db.key, db.crt "
        "and db.cer for the firmware or mokutil) for "
        'bootloader.secure_boot = "own-keys".',
    )
    keys.add_argument("directory", type=path_arg, metavar="DIR")
    keys.add_argument(
        "--name", default="livecd-tui Secure Boot key", help="the certificate's common name (CN)"
    )
    keys.set_defaults(func=cmd_secure_boot_keys)

    options = add("options", "List every option: key, type, default and help.")
    options.add_argument(
        "--markdown", action="store_true", help="print the reference as Markdown (docs/options.md)"
    )
    options.set_defaults(func=cmd_options)
    return parser


def open_profile(name: str) -> Profile:
    return load_profile(find_profile(name))


def open_tui(args: list[str]) -> int:
    """Open the TUI on a profile (the demo profile by default); ``--ascii``/``--no-ascii``
    choose ASCII drawing instead of the terminal's and locale's say."""
    ascii = {"--ascii": True, "--no-ascii": False}
    chosen = [ascii[arg] for arg in args if arg in ascii]
    args = [arg for arg in args if arg not in ascii]
    if len(args) > 1 or len(chosen) > 1 or any(arg.startswith("-") for arg in args):
        print(
            "usage: livecd-tui [--ascii|--no-ascii] [PROFILE] | livecd-tui COMMAND ... "
            "(see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        path = find_profile(args[0] if args else DEFAULT_PROFILE)
        profile = load_profile(path)
    except ProfileError as err:
        print_problems(err)
        return EXIT_USAGE
    try:
        from livecd_tui.tui.app import LiveCDApp
    except ImportError as err:
        print(
            f"livecd-tui: the TUI is not available ({err}); use the headless commands: "
            "livecd-tui --help",
            file=sys.stderr,
        )
        return EXIT_USAGE
    LiveCDApp(profile, ascii=chosen[0] if chosen else None).run()
    return EXIT_OK


# -- build -----------------------------------------------------------------------------
class ConsoleReporter:
    """Prints engine events for a terminal or a log file."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            # A followed build (attach) does not know the count: it says 0.
            steps = f"{event.steps} step(s)" if event.steps else "started"
            print(f"==> {event.stage}: {steps}", flush=True)
        elif isinstance(event, StageSkipped):
            print(f"==> {event.stage}: {event.reason}, skipped", flush=True)
        elif isinstance(event, StepStarted) and not self.quiet:
            print(f"[{event.stage}] ({event.index + 1}/{event.total}) {event.describe}", flush=True)
        elif isinstance(event, OutputLine) and not self.quiet:
            print(f"[{event.stage}] {printable(event.line)}", flush=True)
        elif isinstance(event, StageFinished):
            print(f"==> {event.stage}: {event.status} ({event.duration:.1f} s)", flush=True)
            if event.failure:
                print(event.failure.report(), file=sys.stderr, flush=True)


def stage_choice(args: argparse.Namespace) -> list[str]:
    """The ``--only`` stage names; refuses (BuildError, exit 2) an empty list, an unknown
    name, and options that would silently override one another."""
    given = [
        f"--{name}"
        for name, value in (
            ("only", args.only is not None),
            ("from", args.start is not None),
            ("resume", args.resume),
        )
        if value
    ]
    if len(given) > 1:
        raise BuildError(
            f"{' and '.join(given)} cannot be used together: each chooses the stages to run"
        )
    names = [s.strip() for s in args.only.split(",") if s.strip()] if args.only is not None else []
    if args.only is not None and not names:
        raise BuildError("--only needs at least one stage; stages are: " + ", ".join(STAGE_NAMES))
    force = args.force if args.force != "*" else None
    for name in [*names, *(n for n in (args.start, force) if n)]:
        if name not in STAGE_NAMES:
            raise BuildError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
    chosen = names or (STAGE_NAMES[STAGE_NAMES.index(args.start) :] if args.start else [])
    if force and chosen and force not in chosen:
        raise BuildError(
            f"--force {force}: the stage is not among those chosen to run ({', '.join(chosen)})"
        )
    return names


def cmd_build(args: argparse.Namespace) -> int:
    only = stage_choice(args)
    profile = open_profile(args.profile)
    build = Build.for_profile(profile, args.work_dir)
    build.shown_as = args.shown_as  # the TUI's detached build reads a copy of the profile
    if args.detach:
        return detach_build(args, build)
    engine = Engine(build, STAGES, [ConsoleReporter(args.quiet)])
    selected = engine.select(only=only, start=args.start, resume=args.resume)
    force_all = args.force == "*"
    force = [] if force_all or not args.force else [engine.stage(args.force).name]

    received: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        # Stop from a thread: the handler runs on the main thread, which may be inside the
        # engine holding its lock, and killing waits for the command to go.
        name = signal.Signals(signum).name
        print(f"\nlivecd-tui: {name}: stopping the build", file=sys.stderr)
        received.append(signum)
        threading.Thread(target=engine.stop, args=(name,), name="stop-build", daemon=True).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    try:
        ok = engine.run(selected, force=force, force_all=force_all)
    except PlanError as err:
        stale = (
            f"; the ISO {build.iso_path} is from an earlier build"
            if build.iso_path.exists()
            else ""
        )
        raise BuildError(f"{err}{stale}") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for note in engine.notes:
            print(f"livecd-tui: {note}", file=sys.stderr)
    elapsed = time.monotonic() - started
    if not ok and received:
        name = signal.Signals(received[0]).name
        print(
            f"livecd-tui: build stopped by {name} after {elapsed:.1f} s; logs in "
            f"{build.work / 'logs'}; continue with: "
            f"{resume_command(build.shown_as or args.profile, build, always_work=True)}",
            file=sys.stderr,
        )
        return 128 + received[0]
    if not ok:
        print(
            f"livecd-tui: build failed after {elapsed:.1f} s; logs in {build.work / 'logs'}; "
            f"fix and run: {resume_command(build.shown_as or args.profile, build)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"livecd-tui: build finished in {elapsed:.1f} s")
    if build.iso_path.exists():
        print(f"ISO: {build.iso_path}")
    return EXIT_OK


def resume_command(profile: str, build: Build, always_work: bool = False) -> str:
    """The command that resumes *build*, quoted to paste into a shell: ``--work-dir`` is
    named when the build does not use the profile's own work dir (or ``always_work``);
    *profile* is the user's (a TUI build runs from a snapshot of it)."""
    argv = ["livecd-tui", "build", profile]
    if always_work or build.work != Build.for_profile(build.profile).work:
        argv += ["--work-dir", str(build.work)]
    return shlex.join([*argv, "--resume"])


def detach_build(args: argparse.Namespace, build: Build) -> int:
    from livecd_tui import runner, workdir

    problems = workdir.path_problems(build, STAGES)
    if problems:
        raise BuildError("; ".join(problems))
    holder = workdir.read_lock(build.work)
    if holder:
        raise BuildError(workdir.in_use_message(build.work, holder.describe(build.work)))
    workdir.prepare_work_dir(build.work, build.epoch)
    assert build.profile.path is not None
    pid = runner.start_detached(build.profile.path.resolve(), build.work, _rebuild_args(args))
    print(
        f"livecd-tui: build running in the background (pid {pid}), output in "
        f"{build.work / workdir.DETACHED_LOG}"
    )
    work = shlex.quote(str(build.work))
    print(f"  follow it: livecd-tui attach {work}")
    print(f"  state:     livecd-tui status {work}")
    print(f"  stop it:   livecd-tui stop {work}")
    return EXIT_OK


def _rebuild_args(args: argparse.Namespace) -> list[str]:
    """The build options to pass on to the detached build."""
    extra = []
    if args.only:
        extra += ["--only", args.only]
    if args.start:
        extra += ["--from", args.start]
    if args.force:
        extra += ["--force"] if args.force == "*" else ["--force", args.force]
    if args.resume:
        extra.append("--resume")
    return extra


def work_dir_of(target: str) -> Path:
    """A work dir given directly, or a profile's work dir."""
    path = Path(os.path.expanduser(target))
    if path.is_dir():
        return path.resolve()
    return Build.for_profile(open_profile(target)).work


def cmd_attach(args: argparse.Namespace) -> int:
    from livecd_tui.runner import Follower
    from livecd_tui.workdir import read_lock

    work = work_dir_of(args.target)
    follower = Follower(work, list(STAGE_NAMES))
    report = ConsoleReporter(quiet=False)
    print(f"livecd-tui: following the build in {work} (Ctrl-C leaves it running)")
    followed = read_lock(work)
    try:
        while True:
            building = follower.building()
            follower.poll(report)
            if not building:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nlivecd-tui: detached; the build goes on", file=sys.stderr)
        return EXIT_OK
    cmd_status(argparse.Namespace(target=str(work)))
    return followed_code(work, followed.pid if followed else None)


def followed_code(work: Path, pid: int | None) -> int:
    """The exit code of the build ``attach`` followed (the last one, if none was running):
    what that build returned, so ``build --detach && attach`` sees a failure."""
    result = load_result(work)
    if result is not None and (pid is None or result.get("pid") == pid):
        if result.get("outcome") != "running":
            return result_code(result)
        return EXIT_FAILED  # it died without saying how it ended
    if pid is not None:
        return EXIT_FAILED
    build = Build(profile=_placeholder_profile(), work=work)
    failed = any(
        load_state(build, name).status in ("failed", "interrupted", "running")
        for name in STAGE_NAMES
    )
    return EXIT_FAILED if failed else EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from livecd_tui import runner

    work = work_dir_of(args.target)
    holder = runner.stop(work)
    if holder is None:
        leftover = runner.end_leftovers(work)
        print(
            f"livecd-tui: no build is running in {work}"
            + (f"; ended {leftover}" if leftover else "")
        )
        return EXIT_OK
    resume = shlex.join(
        ["livecd-tui", "build", holder.profile, "--work-dir", str(work), "--resume"]
    )
    print(f"livecd-tui: stopped the build (pid {holder.pid}); resume it with `{resume}`")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from livecd_tui import workdir

    # A profile's work dir is also checked against what that profile packs.
    target = Path(os.path.expanduser(args.target))
    build = None if target.is_dir() else Build.for_profile(open_profile(args.target))
    work = target.resolve() if build is None else build.work
    ended = workdir.clean(work, build, STAGES)
    if ended:
        print(f"ended {ended}")
    print(f"livecd-tui: deleted {work}")
    return EXIT_OK


# -- plan, export-script ---------------------------------------------------------------
def cmd_plan(args: argparse.Namespace) -> int:
    profile = open_profile(args.profile)
    build = Build.for_profile(profile, args.work_dir, dry_run=True)
    print(f"# profile {profile.path}, work dir {build.work}")
    for stage in STAGES:
        print(f"\n== {stage.name}: {stage.title}")
        for number, step in enumerate(plan_stage(build, stage), start=1):
            print(f"  {number}. {step.describe}")
            for line in step.script_lines():
                print(f"       {line}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    profile = open_profile(args.profile)
    build = Build.for_profile(profile, args.work_dir, dry_run=True)
    from livecd_tui import workdir

    # The script deletes and writes where build would.
    problems = workdir.path_problems(build, STAGES)
    if problems:
        raise BuildError("; ".join(problems))
    script = render_script(build, STAGES)
    if args.output:
        if args.output.is_dir():
            raise BuildError(f"-o {args.output} is a directory; give the script's file name")
        if not args.output.parent.is_dir():
            raise BuildError(f"-o {args.output}: the directory {args.output.parent} does not exist")
        try:
            args.output.write_text(script)
            if args.output.is_file():  # not /dev/stdout
                args.output.chmod(0o755)
        except OSError as err:
            raise BuildError(f"cannot write {args.output}: {err.strerror}") from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(script)
    return EXIT_OK


# -- check -----------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from livecd_tui.checks import run_checks

    profile = open_profile(args.profile)
    report = run_checks(profile)
    for line in report.lines:
        print(line)
    print(f"\n{len(report.problems)} problem(s)" if report.problems else "\nall checks passed")
    return EXIT_FAILED if report.problems else EXIT_OK


# -- kernel-fix ------------------------------------------------------------------------
def add_kernel_fix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile")
    parser.add_argument("-y", "--yes", action="store_true", help="write the changes without asking")
    parser.add_argument("-n", "--dry-run", action="store_true", help="only show what would change")
    parser.add_argument(
        "--modules", action="store_true", help="ask for m instead of y where a module is enough"
    )
    parser.add_argument(
        "--needed-only",
        action="store_true",
        help="only what booting the CD needs, not the driver groups",
    )
    parser.set_defaults(func=cmd_kernel_fix)


def cmd_kernel_fix(args: argparse.Namespace) -> int:
    from livecd_tui.checks import fix_inputs
    from livecd_tui.kernel.kernelfix import FixError, apply_fix, plan_fix

    profile = open_profile(args.profile)
    try:
        tree, reqs, release = fix_inputs(profile, groups=not args.needed_only)
        print(f"planning on a copy of {tree / '.config'} (scripts/config + make olddefconfig)")
        plan = plan_fix(tree, reqs, release, modules=args.modules)
    except FixError as err:
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_FAILED
    for finding in plan.unfixable:
        print(f"no config change can fix {finding.requirement.symbol}: {finding.message}")
    for stuck in plan.not_stuck:
        print(f"will not stick: {stuck.line()}")
    if not plan.changes:
        print(f"nothing to change in {plan.config}")
        return EXIT_FAILED if plan.unfixable or plan.not_stuck else EXIT_OK
    print(f"{len(plan.changes)} symbol(s) of {plan.config} change:")
    for line in plan.summary():
        print(f"  {line}")
    if args.dry_run:
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            print("livecd-tui: not a terminal: pass --yes to write the changes", file=sys.stderr)
            return EXIT_USAGE
        answer = input(
            f"Write them to {plan.config} (the current one is kept as "
            f"{plan.config.name}.old)? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing written")
            return EXIT_FAILED
    try:
        result = apply_fix(plan, reqs, release)
    except FixError as err:
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {plan.config}; the previous one is {result.backup}")
    for stuck in result.not_stuck:
        print(f"did not stick: {stuck.line()}")
    bad = [f for f in result.findings if f.state in ("missing", "wrong")]
    for finding in bad:
        print(f"still {finding.state}: {finding.requirement.symbol}: {finding.message}")
    print(
        "the kernel config now meets every requirement"
        if result.ok
        else f"{len(bad) + len(result.not_stuck)} problem(s) left"
    )
    return EXIT_OK if result.ok else EXIT_FAILED


# -- persistence-image -----------------------------------------------------------------
def cmd_persistence_image(args: argparse.Namespace) -> int:
    import getpass
    import tempfile

    from livecd_tui.persistence import ImageSpec, PersistenceError, make_image, parse_size

    profile = open_profile(args.profile)
    mode = profile["writable.persistence"]
    if mode == "off":
        off = profile.problem(
            "writable.persistence",
            "is off: the live system would not look for a store (set partition or file)",
        )
        print(f"livecd-tui: {off}", file=sys.stderr)
        return EXIT_USAGE
    label = profile["writable.persistence_label"]
    try:
        size = parse_size(args.size)
        key_file = args.passphrase_file
        with tempfile.TemporaryDirectory(prefix="livecd-tui-key-") as scratch:
            if profile["writable.persistence_encrypted"] and key_file is None:
                if not sys.stdin.isatty():
                    print("livecd-tui: not a terminal: pass --passphrase-file", file=sys.stderr)
                    return EXIT_USAGE
                phrase = getpass.getpass("LUKS passphrase for the store: ")
                if not phrase or phrase != getpass.getpass("The same again: "):
                    print("livecd-tui: the passphrases are empty or differ", file=sys.stderr)
                    return EXIT_USAGE
                key_file = Path(scratch) / "key"
                key_file.write_text(phrase)  # no newline: the init reads a typed line
            if not profile["writable.persistence_encrypted"]:
                key_file = None
            if args.iter_time < 1:
                raise PersistenceError(f"--iter-time {args.iter_time}: at least 1 ms")
            make_image(ImageSpec(args.output, size, label, args.fs, key_file, args.iter_time))
    except PersistenceError as err:
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_FAILED
    kind = "LUKS2 + " if key_file else ""
    print(f"made {args.output}: {kind}{args.fs}, {size >> 20} MiB, label {label}")
    if mode == "partition":
        print(
            f"write it to a partition (dd if={shlex.quote(str(args.output))} of=/dev/sdX2 "
            "bs=4M), or give it to a VM as a disk (qemu -drive file=...,format=raw)"
        )
    else:
        where = profile["writable.persistence_file"]
        print(
            f"copy it to {where} on a FAT filesystem (a USB stick, or the stick the CD's "
            "files are on)"
        )
    return EXIT_OK


# -- status ----------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    build = Build(profile=_placeholder_profile(), work=work_dir_of(args.target))
    if not (build.work / "state").is_dir():
        print(f"livecd-tui: {build.work} holds no build", file=sys.stderr)
        return EXIT_USAGE
    from livecd_tui.runner import end_leftovers
    from livecd_tui.workdir import read_lock

    holder = read_lock(build.work)
    print(f"work dir {build.work}")
    print(f"build running: {holder.describe(build.work)}" if holder else "no build running")
    leftover = None if holder else end_leftovers(build.work)
    if leftover:
        print(f"ended {leftover}")
    result = load_result(build.work)
    if result and not holder and result.get("outcome") in ("plan failed", "refused"):
        print(f"last build: {result['outcome']}: {result.get('message', '')}")
    print(f"{'stage':11} {'state':12} {'duration':>9}  log")
    for name in STAGE_NAMES:
        state = load_state(build, name)
        status = state.status
        if status == "running" and holder is None:
            status = "interrupted"  # its build died without saying so
        duration = f"{state.duration:.1f} s" if state.duration is not None else "-"
        if status == "running" and state.started:
            duration = f"{time.time() - state.started:.0f} s…"
        print(f"{name:11} {status:12} {duration:>9}  {state.log or '-'}")
        if name == "iso" and status not in ("done", "skipped", "running"):
            for iso in sorted((build.work / "out").glob("*.iso")):
                print(f"{'':11} {iso} is from an earlier build, not current")
        if state.failure and status == "failed":
            failure = state.failure
            if failure.get("kind") == "command":
                print(f"{'':11} failed: {failure.get('command', '')}")
            else:
                print(f"{'':11} {(failure.get('tail') or [failure.get('describe', '')])[-1]}")
    stack = layers.load_state(build.done_dir("system"))
    if stack and stack.layers:
        count = len(stack.layers)
        print(f"\nsystem image: the base and {count} layer{'s' * (count != 1)} (system.layers)")
        for line in layers.describe(stack):
            print(f"  {line}")
    return EXIT_OK


def _placeholder_profile() -> Profile:
    from livecd_tui.profile import new_profile

    return new_profile()


# -- capture ---------------------------------------------------------------------------
def cmd_capture(args: argparse.Namespace) -> int:
    from livecd_tui.capture import CaptureError, preview

    build = Build.for_profile(open_profile(args.profile), args.work_dir)
    try:
        shown = preview(
            build,
            sample=not args.no_estimate,
            budget=max(args.sample_mib, 1) << 20,
            every_path=args.all,
        )
    except CaptureError as err:
        print(f"livecd-tui: cannot preview {args.profile}: {err}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(shown.lines))
    return EXIT_FAILED if shown.warnings else EXIT_OK


# -- secure-boot-keys ------------------------------------------------------------------
def cmd_secure_boot_keys(args: argparse.Namespace) -> int:
    from livecd_tui import secureboot

    try:
        made = secureboot.make_keys(args.directory, args.name)
    except ValueError as err:
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"livecd-tui: {err}", file=sys.stderr)
        return EXIT_FAILED
    key, cert, der = (printable(str(path.resolve())) for path in made)
    print(f"wrote {key} (private: keep it off the CD), {cert}, {der}")
    print(
        'In the profile:\n  [bootloader]\n  secure_boot = "own-keys"\n'
        f'  secure_boot_key = "{key}"\n  secure_boot_cert = "{cert}"'
    )
    print(
        f"Enroll {der} in the firmware's db (its Secure Boot setup menu), or as a MOK: "
        f"mokutil --import {der}, reboot, and confirm it in MokManager."
    )
    return EXIT_OK


# -- options ---------------------------------------------------------------------------
def cmd_options(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown() if args.markdown else reference_text())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
