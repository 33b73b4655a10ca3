"""The engine with small, real stages: skipping, resume, --only/--from, stop, failures.

These stages run real commands (echo, sh, sleep, printf); only the stage list is made up.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from livecd_tui.build import WORK_MARKER, Build
from livecd_tui.engine import (
    BuildError,
    Engine,
    Event,
    Stage,
    StageFinished,
    StageSkipped,
    StageStarted,
    load_state,
    render_script,
)
from livecd_tui.profile import new_profile
from livecd_tui.steps import Action, command

SHELL_NASTY = "a b;$(touch pwned) `id` 'q' \"dq\" | & > < * ? ~ \\ $HOME é 日本"


def make_stages(flag: Path) -> list[Stage]:
    def first(build: Build) -> list:
        out = build.partial_dir("first")
        return [
            command(
                ["printf", "%s", build.profile["iso.marker"]],
                "print the marker",
                stdout=out / "marker",
            )
        ]

    def second(build: Build) -> list:
        return [
            command(["test", "-e", flag], "fail unless the flag exists"),
            command(
                ["cp", build.done_dir("first") / "marker", build.partial_dir("second") / "copy"],
                "copy",
            ),
        ]

    def third(build: Build) -> list:
        return [command(["echo", build.profile["bootloader.title"]], "say the title")]

    return [
        Stage("first", "First", "writes the marker", first, reads=("iso.marker",)),
        Stage("second", "Second", "needs a flag", second, uses=("first",)),
        Stage(
            "third", "Third", "says the title", third, reads=("bootloader.title",), uses=("second",)
        ),
    ]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def ran(self) -> list[str]:
        return [e.stage for e in self.events if isinstance(e, StageStarted)]

    def skipped(self) -> list[str]:
        return [e.stage for e in self.events if isinstance(e, StageSkipped)]


@pytest.fixture
def setup(tmp_path: Path):
    profile = new_profile()
    build = Build(profile=profile, work=tmp_path / "work")
    flag = tmp_path / "flag"
    flag.touch()
    return build, flag


def run(build: Build, stages: list[Stage], **kwargs) -> tuple[bool, Recorder]:
    recorder = Recorder()
    engine = Engine(build, stages, [recorder])
    select = {k: kwargs.pop(k) for k in ("only", "start", "resume") if k in kwargs}
    ok = engine.run(engine.select(**select), **kwargs)
    return ok, recorder


def test_second_run_skips_everything_and_changes_rerun_only_dependents(setup) -> None:
    build, flag = setup
    stages = make_stages(flag)
    ok, rec = run(build, stages)
    assert ok and rec.ran() == ["first", "second", "third"]
    assert (build.work / WORK_MARKER).exists()
    ok, rec = run(build, stages)
    assert ok and rec.ran() == [] and rec.skipped() == ["first", "second", "third"]
    build.profile.set("bootloader.title", "new title")
    ok, rec = run(build, stages)
    assert rec.ran() == ["third"]
    build.profile.set("iso.marker", "other")
    ok, rec = run(build, stages)
    assert rec.ran() == ["first", "second", "third"]
    assert (build.done_dir("second") / "copy").read_text() == "other"


def test_unchanged_output_does_not_cascade(setup) -> None:
    build, flag = setup
    stages = make_stages(flag)
    run(build, stages)
    _ok, rec = run(build, stages, force=["first"])
    assert rec.ran() == ["first"], "same output: later stages stay up to date"


def test_failure_report_and_resume(setup) -> None:
    build, flag = setup
    flag.unlink()
    stages = make_stages(flag)
    ok, rec = run(build, stages)
    assert not ok and rec.ran() == ["first", "second"]
    finished = [e for e in rec.events if isinstance(e, StageFinished)]
    failure = finished[-1].failure
    assert failure is not None and failure.exit_code == 1
    assert failure.command == f"test -e {flag}"
    assert "exit code 1" in failure.report()
    state = load_state(build, "second")
    assert state.status == "failed" and state.failure["step"] == 0
    assert not build.done_dir("second").exists(), "a failed stage publishes nothing"
    flag.touch()
    ok, rec = run(build, stages, resume=True)
    assert ok and rec.ran() == ["second", "third"]
    with pytest.raises(BuildError, match="nothing to resume"):
        run(build, stages, resume=True)


def test_only_and_from(setup) -> None:
    build, flag = setup
    stages = make_stages(flag)
    with pytest.raises(BuildError, match="needs the output of first"):
        run(build, stages, only=["second"])
    run(build, stages, only=["first"])
    ok, rec = run(build, stages, only=["second"])
    assert ok and rec.ran() == ["second"]
    ok, rec = run(build, stages, start="second", force_all=True)
    assert rec.ran() == ["second", "third"]
    with pytest.raises(BuildError, match="unknown stage"):
        run(build, stages, only=["nope"])


def test_argv_values_arrive_unchanged(setup, tmp_path: Path) -> None:
    build, flag = setup
    build.profile.set("iso.marker", SHELL_NASTY)
    os.chdir(tmp_path)
    ok, _ = run(build, make_stages(flag))
    assert ok
    assert (build.done_dir("first") / "marker").read_text() == SHELL_NASTY
    assert not (tmp_path / "pwned").exists()
    # The exported script quotes it so bash passes it through unchanged too.
    script = tmp_path / "build.sh"
    script.write_text(render_script(build, make_stages(flag)))
    import subprocess

    subprocess.run(["bash", str(script)], check=True, cwd=tmp_path, capture_output=True)
    assert (build.done_dir("first") / "marker").read_text() == SHELL_NASTY
    assert not (tmp_path / "pwned").exists()


def test_stop_kills_the_whole_process_group(setup, tmp_path: Path) -> None:
    build, _ = setup
    pidfile = tmp_path / "child.pid"

    def slow(b: Build) -> list:
        return [command(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], "sleep")]

    engine = Engine(build, [Stage("slow", "Slow", "sleeps", slow)])
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(engine.run(engine.stages)))
    thread.start()
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    engine.stop()
    thread.join(15)
    assert result == [False]
    assert load_state(build, "slow").status == "interrupted"
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_until_and_timeout(setup) -> None:
    build, _ = setup

    def watch(b: Build) -> list:
        return [
            command(
                ["sh", "-c", "echo booting; printf 'box login: '; sleep 60"],
                "wait for a prompt",
                until="login:",
                timeout=30,
            )
        ]

    def never(b: Build) -> list:
        return [
            command(
                ["sh", "-c", "echo booting; sleep 60"], "wait in vain", until="login:", timeout=1
            )
        ]

    started = time.monotonic()
    ok, _ = run(build, [Stage("watch", "Watch", "prompt", watch)])
    assert ok and time.monotonic() - started < 20
    ok, rec = run(build, [Stage("never", "Never", "no prompt", never)])
    assert not ok
    failure = next(e for e in rec.events if isinstance(e, StageFinished)).failure
    assert failure is not None and "timed out after 1 s" in failure.tail[-1]
    assert "booting" in failure.tail


@pytest.mark.parametrize(
    "script",
    [
        # The marker followed by more lines in the same write (a fast console under load).
        r"printf 'booting\nbox login: \nmore\nand more\n'; sleep 60",
        # The marker split over two writes.
        r"printf 'box log'; sleep 0.5; printf 'in: \n'; sleep 60",
        # The marker in the middle of a long line, then a newline-less tail.
        r"printf 'x%.0s' $(seq 5000); printf 'login: then on\nmore'; sleep 60",
    ],
)
def test_until_sees_the_marker_anywhere_in_the_output(setup, script: str) -> None:
    """The engine succeeds wherever the marker is, as the exported script's grep does."""
    build, _ = setup

    def watch(b: Build) -> list:
        return [command(["sh", "-c", script], "wait for a prompt", until="login:", timeout=30)]

    started = time.monotonic()
    ok, _ = run(build, [Stage("watch", "Watch", "prompt", watch)])
    assert ok and time.monotonic() - started < 20
    log = build.log_path("watch").read_text()
    assert "== found 'login:': success" in log
    # The exported script's version of the same step agrees.
    step = watch(build)[0]
    result = subprocess.run(
        ["bash", "-c", "set -e\n" + "\n".join(step.script_lines())],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert result.returncode == 0 and "success" in result.stdout, result


def test_a_timeout_says_what_the_diagnosis_found(setup) -> None:
    """A step's diagnosis sees every line and may name another option than the step's."""
    build, _ = setup
    seen: list[list[str]] = []

    def diagnose(lines):
        seen.append(list(lines))
        return "the boot reached the live system phase", "boottest.marker"

    def never(b: Build) -> list:
        return [
            command(
                ["sh", "-c", "seq 100; printf 'box login: '; sleep 60"],
                "wait",
                until="ok>",
                timeout=2,
                option="boottest.timeout",
                diagnose=diagnose,
            )
        ]

    ok, rec = run(build, [Stage("never", "Never", "no prompt", never)])
    failure = next(e for e in rec.events if isinstance(e, StageFinished)).failure
    assert not ok and failure is not None
    assert failure.option == "boottest.marker"
    assert failure.tail[-1] == "the boot reached the live system phase"
    assert seen and seen[0][:3] == ["1", "2", "3"] and seen[0][-1] == "box login: "


def test_missing_program_and_failing_action(setup) -> None:
    build, _ = setup

    def missing(b: Build) -> list:
        return [command(["no-such-tool-xyz", "--x"], "run a tool", hint="apt install xyz")]

    ok, rec = run(build, [Stage("m", "M", "missing", missing)])
    failure = next(e for e in rec.events if isinstance(e, StageFinished)).failure
    assert not ok and failure is not None and failure.exit_code == 127
    assert "command not found" in failure.report() and "apt install xyz" in failure.report()

    def boom(ctx) -> None:
        from livecd_tui.engine import StepFailed

        raise StepFailed("it broke", hint="fix it")

    ok, rec = run(build, [Stage("a", "A", "action", lambda b: [Action("break", boom)])])
    failure = next(e for e in rec.events if isinstance(e, StageFinished)).failure
    assert not ok and failure is not None and "it broke" in failure.tail[-1]


def test_refuses_foreign_non_empty_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "precious"
    work.mkdir()
    (work / "thesis.tex").write_text("do not delete")
    build = Build(profile=new_profile(), work=work)
    with pytest.raises(BuildError, match="not made by livecd-tui"):
        Engine(build, []).run([])
    assert (work / "thesis.tex").exists()


# -- reading a command's output ----------------------------------------------------------
def test_a_line_without_newline_arrives_while_the_command_runs(setup) -> None:
    """A progress bar redrawn with a carriage return, and a prompt, are seen at once."""
    build, _ = setup
    seen: list[tuple[float, str]] = []

    def progress(b: Build) -> list:
        return [
            command(
                ["sh", "-c", r"printf ' 10%%\r'; sleep 2; printf ' 20%%\r'; sleep 2"],
                "report progress",
            )
        ]

    engine = Engine(
        build,
        [Stage("p", "P", "progress", progress)],
        [lambda e: seen.append((time.monotonic(), getattr(e, "line", "")))],
    )
    assert engine.run(engine.stages)
    ended = time.monotonic()
    at = {line: when for when, line in seen}
    # Each arrived while the command still slept (4 s, then 2 s, before it ended).
    assert ended - at[" 10%"] > 2.5 and ended - at[" 20%"] > 1.0, at


def test_a_process_left_behind_does_not_hold_the_step(setup) -> None:
    build, _ = setup

    def leave(b: Build) -> list:
        return [command(["sh", "-c", "sleep 30 & echo left a sleeper"], "leave a child")]

    started = time.monotonic()
    ok, _ = run(build, [Stage("l", "L", "leaves", leave)])
    assert ok and time.monotonic() - started < 10
    assert "left a sleeper" in (build.work / "logs" / "l.log").read_text()


def test_output_pipe_keeps_characters_split_across_reads() -> None:
    from livecd_tui.engine import OutputPipe

    chunks: list[str] = []
    pipe = OutputPipe(chunks.append)
    text = "é 日本\n".encode()
    pipe.writer.write(text[:1])
    pipe.writer.flush()
    time.sleep(0.3)
    pipe.writer.write(text[1:4])
    pipe.writer.flush()
    time.sleep(0.3)
    pipe.writer.write(text[4:])
    pipe.finish()
    assert "".join(chunks) == "é 日本\n" and len(chunks) >= 2


def test_stderr_of_a_redirected_command_reaches_the_log(setup, tmp_path: Path) -> None:
    build, _ = setup
    target = tmp_path / "out.txt"

    def both(b: Build) -> list:
        return [command(["sh", "-c", "echo to-file; echo to-log >&2"], "split", stdout=target)]

    ok, _ = run(build, [Stage("s", "S", "split", both)])
    assert ok and target.read_text() == "to-file\n"
    log = (build.work / "logs" / "s.log").read_text().splitlines()
    assert "to-log" in log and "to-file" not in log


def test_a_failure_quotes_output_a_terminal_can_show(setup) -> None:
    """A booting GRUB's serial console: the failure's tail carries no control sequences
    (they would clear the user's screen), while the log keeps the raw bytes."""
    build, _ = setup

    def grub(b: Build) -> list:
        return [
            command(
                [
                    "printf",
                    r"\033c\033[?7l\033[2J\033[0mSeaBIOS\n\033[H\033[J\n"
                    r"\033[0;30;47mWelcome to GRUB!\n",
                ],
                "draw a menu",
            ),
            command(["false"], "fail"),
        ]

    ok, rec = run(build, [Stage("g", "G", "grub", grub)])
    failure = next(e for e in rec.events if isinstance(e, StageFinished)).failure
    assert not ok and failure is not None
    assert "SeaBIOS" in failure.tail and "Welcome to GRUB!" in failure.tail
    assert not any("\x1b" in line or not line.strip() for line in failure.tail)
    assert "\x1b[?7l" in (build.work / "logs" / "g.log").read_text()


def test_the_console_shows_output_without_control_sequences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from livecd_tui.cli import ConsoleReporter
    from livecd_tui.engine import OutputLine

    ConsoleReporter(quiet=False)(OutputLine("boottest", "\x1b[2J\x1b[1;1HGNU GRUB\x1b[?25l"))
    assert capsys.readouterr().out == "[boottest] GNU GRUB\n"


def test_each_stage_uses_only_earlier_stages() -> None:
    """A stage's fingerprint takes the outputs of the stages it uses, so they must have run
    before it: the initrd (whose config records the images' sha256) after system and
    writable."""
    from livecd_tui.stages import STAGES

    names = [stage.name for stage in STAGES]
    for index, stage in enumerate(STAGES):
        for used in stage.uses:
            assert used in names[:index], f"{stage.name} uses {used}, which runs later"
    initrd = STAGES[names.index("initrd")]
    assert {"system", "writable"} <= set(initrd.uses)


def test_a_broken_listener_or_diagnosis_is_noted_and_the_build_goes_on(setup) -> None:
    """Faults the build survives are written to logs/engine.log with their traceback, each
    kind once, instead of vanishing."""
    build, flag = setup
    calls = []

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("listener bug")

    def bad_diagnosis(lines):
        raise KeyError("diagnosis bug")

    def fails(b: Build) -> list:
        return [command(["sh", "-c", "echo one; echo two; exit 3"], "fail", diagnose=bad_diagnosis)]

    recorder = Recorder()
    engine = Engine(
        build, [*make_stages(flag), Stage("fails", "Fails", "exits 3", fails)], [broken, recorder]
    )
    assert not engine.run(engine.select())
    assert len(calls) > 3 and recorder.ran() == ["first", "second", "third", "fails"]
    failure = next(
        e for e in recorder.events if isinstance(e, StageFinished) and e.stage == "fails"
    ).failure
    assert failure is not None and failure.exit_code == 3 and "two" in failure.tail
    log = (build.work / "logs" / "engine.log").read_text()
    assert log.count("RuntimeError: listener bug") == 2  # the note's line and the traceback's
    assert "failed, the build went on" in log and "Traceback" in log
    assert "diagnosing 'fail' failed" in log and "KeyError: 'diagnosis bug'" in log
