"""The attack run of issue 16, kept: hostile input given to the CLI as a new (or careless)
user would give it.

Every case runs ``livecd-tui`` (``python -m livecd_tui.cli``) in a sandbox whose HOME, XDG
dirs and current dir are inside the test's tmp dir, and asserts the exit code, the message
(the option key and file:line where a profile is at fault), that no traceback was printed,
and that nothing outside the work dir changed. Hostile strings go into every string option of
the option table; ``tests/test_bad_input_property.py`` fuzzes the same options in-process with
Hypothesis and checks the argv items, this file checks what the user sees of the commands.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from livecd_tui import cli, workdir
from livecd_tui.build import Build
from livecd_tui.engine import StageStarted, StageState, save_state
from livecd_tui.options import OPTIONS, Option
from livecd_tui.profile import MAX_EXTENDS_DEPTH, MAX_PROFILE_BYTES, new_profile

ROOT = Path(__file__).resolve().parent.parent
STRING_OPTIONS = [o for o in OPTIONS.values() if o.kind in ("str", "path", "list", "choice")]


@dataclass
class Sandbox:
    """A home, XDG dirs and a current dir of its own, and a canary the hostile strings try to
    create."""

    root: Path

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    @property
    def canary(self) -> Path:
        return self.root / "CANARY"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env.update(
            HOME=str(self.root / "home"),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_STATE_HOME=str(self.root / "state"),
            PYTHONPATH=str(ROOT),
        )
        return env

    def run(
        self, *args: str | Path, stdin: int | None = subprocess.DEVNULL, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI; no traceback, whatever the outcome."""
        result = subprocess.run(
            [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env,
            stdin=stdin,
            timeout=timeout,
        )
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        return result

    def tree(self, skip: Path | None = None) -> dict[str, tuple[int, float]]:
        """Every path in the sandbox with its size and mtime (the work dir ``skip`` aside)."""
        found: dict[str, tuple[int, float]] = {}
        for path in sorted(self.root.rglob("*")):
            if skip is not None and (path == skip or skip in path.parents):
                continue
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime)
        return found


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path)
    for name in ("cwd", "home", "cache", "config", "state"):
        (tmp_path / name).mkdir()
    # The boot test's accelerator, as plan would find it (probing KVM takes seconds).
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    write(tmp_path / "cache" / "livecd-tui" / f"accel-{boot_id}", "tcg\n")
    yield sandbox
    assert not sandbox.canary.exists(), "a hostile string ran a command"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Assert exit 2 and every expected piece in the message; return the message."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for piece in expected:
        assert piece in result.stderr, (piece, result.stderr)
    return result.stderr


# -- extends and the profile file --------------------------------------------------------
@pytest.mark.parametrize(
    "target, says",
    [
        ("/dev/zero", "/dev/zero is a character device, not a profile file"),
        ("/dev/stdin", "/dev/stdin is a pipe (FIFO), not a profile file"),
        ("fifo", "fifo is a pipe (FIFO), not a profile file"),
        ("/proc/self/environ", "/proc/self/environ is a file of the kernel's /proc, not a profile"),
        ("adir", "adir is a directory, not a profile file"),
        ("missing.toml", "missing.toml does not exist"),
        ("loop", "loop is a symbolic link loop"),
        ("dangling", "dangling is a symbolic link to nowhere.toml, which does not exist"),
        ("big.toml", f"big.toml is {MAX_PROFILE_BYTES + 1} bytes; a profile file is at most"),
        ("p.toml", "extends cycle:"),
    ],
)
def test_a_bad_extends_target_is_named_at_the_referencing_line(
    box: Sandbox, target: str, says: str
) -> None:
    d = box.cwd
    os.mkfifo(d / "fifo")
    (d / "adir").mkdir()
    (d / "loop").symlink_to("loop")
    (d / "dangling").symlink_to("nowhere.toml")
    write(d / "big.toml", "#" * MAX_PROFILE_BYTES + "\n")
    write(d / "p.toml", f'# a profile\n\nextends = "{target}"\n')
    before = box.tree()
    # stdin is a pipe nobody writes to: reading it (or the FIFO) would hang till the timeout
    reader, writer = os.pipe()
    try:
        for command in ("plan", "check"):
            result = box.run(command, "p.toml", stdin=reader, timeout=30)
            refused(result, f"p.toml:3: extends: {says}")
    finally:
        os.close(reader)
        os.close(writer)
    assert box.tree() == before


def test_a_deep_extends_chain_stops_at_the_limit_with_its_line(box: Sandbox) -> None:
    depth = 1500
    for n in range(depth):
        write(box.cwd / f"c{n}.toml", f'extends = "c{n + 1}.toml"\n')
    write(box.cwd / f"c{depth}.toml", "")
    result = box.run("plan", "c0.toml")
    last = MAX_EXTENDS_DEPTH - 1
    refused(
        result, f"c{last}.toml:1: extends: c{last + 1}.toml: more than {MAX_EXTENDS_DEPTH} profiles"
    )
    assert "RecursionError" not in result.stderr
    # Within the limit, a chain works.
    write(box.cwd / f"c{depth - MAX_EXTENDS_DEPTH + 1}.toml", "")
    assert box.run("plan", f"c{depth - MAX_EXTENDS_DEPTH * 2 + 2}.toml").returncode == 0


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda d: (d / "adir").mkdir(), "adir: is a directory, not a profile file"),
        (lambda d: (d / "adir").symlink_to("adir"), "adir: is a symbolic link loop"),
        (lambda d: os.mkfifo(d / "adir"), "adir: is a pipe (FIFO), not a profile file"),
    ],
)
def test_a_profile_that_is_not_a_file_says_what_it_is(box: Sandbox, make, says: str) -> None:
    make(box.cwd)
    refused(box.run("plan", "adir", timeout=30), says)
    refused(box.run("plan", "/dev/zero"), "/dev/zero: is a character device")
    refused(box.run("plan", "no-such-profile"), "no such profile; looked in")
    refused(box.run("adir", timeout=30), says)  # the TUI's profile: refused before it opens


def test_profile_file_encodings(box: Sandbox) -> None:
    # A byte order mark (Windows editors write one) is ignored.
    write(box.cwd / "bom.toml", b'\xef\xbb\xbf[system]\nsource = "busybox"\n')
    assert box.run("plan", "bom.toml").returncode == 0
    # A Latin-1 byte: the line and column, not a byte offset.
    write(box.cwd / "latin.toml", b'[bootloader]\n# caf\xe9\ntitle = "x"\n')
    refused(
        box.run("plan", "latin.toml"),
        "latin.toml:2:6: the file is not UTF-8 (byte 0xe9, 'é' in Latin-1); save it as UTF-8",
    )
    write(box.cwd / "utf16.toml", "[system]\n".encode("utf-16"))
    refused(box.run("plan", "utf16.toml"), "utf16.toml:1:1: the file is UTF-16")


def test_keys_in_inline_tables_have_their_line(box: Sandbox) -> None:
    write(
        box.cwd / "p.toml",
        '# x\n\nsystem = { source = "busybox", bogus = 1 }\nbootloader = { timeout = "soon" }\n',
    )
    refused(
        box.run("check", "p.toml"),
        "p.toml:3: system.bogus: unknown option",
        "p.toml:4: bootloader.timeout: expected an integer",
    )


def test_what_looks_like_a_key_inside_a_multi_line_string_is_not_one(box: Sandbox) -> None:
    write(
        box.cwd / "p.toml",
        '[bootloader]\ntitle = """\ntimeout = "x"\n[iso]\n"""\ntimeout = "soon"\n',
    )
    refused(box.run("plan", "p.toml"), "p.toml:6: bootloader.timeout: expected an integer")


def test_lines_that_made_the_key_finder_backtrack_are_read_at_once(box: Sandbox) -> None:
    # Lines of a multi-line string look like table headers and keys to the line finder.
    text = '[bootloader]\ntitle = """\n[' + " " * 20000 + "x\n" + "a" + " .a" * 20000 + ' b\n"""\n'
    write(box.cwd / "p.toml", text)
    started = time.monotonic()
    refused(box.run("plan", "p.toml", timeout=60), "p.toml:2: bootloader.title: too long")
    assert time.monotonic() - started < 30  # it took minutes


def test_empty_boot_menu_is_refused_at_its_line(box: Sandbox) -> None:
    write(box.cwd / "p.toml", '[bootloader]\ntitle = "x"\nentries = []\n')
    refused(box.run("plan", "p.toml"), "p.toml:3: bootloader.entries: needs at least 1")


@pytest.mark.parametrize(
    "text, says",
    [
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "p.toml: TOML arrays or tables nested hundreds"),
        ("a = " + "{b=" * 3000 + "1" + "}" * 3000 + "\n", "p.toml: TOML arrays or tables nested"),
        (
            "# x\n" + ".".join(["k"] * 5000) + " = 1\n",
            "p.toml:2: k.k.k.k.k.k.k.k.k: unknown option",
        ),
        ("[" + ".".join(["k"] * 5000) + "]\n", "p.toml:1: k.k.k.k.k.k.k.k.k: unknown option"),
    ],
    ids=["arrays", "inline-tables", "dotted-key", "table"],
)
def test_deeply_nested_toml_is_refused_not_a_recursion_error(
    box: Sandbox, text: str, says: str
) -> None:
    write(box.cwd / "p.toml", text)
    result = box.run("plan", "p.toml")
    refused(result, says)
    assert "RecursionError" not in result.stderr


# -- guards (these held in the attack run: keep them) -------------------------------------
@pytest.mark.parametrize("where", ["home", "unmarked", "iso-dir"])
def test_dangerous_work_dirs_and_outputs_are_refused(box: Sandbox, where: str) -> None:
    stuff = box.cwd / "stuff"
    write(stuff / "precious.txt", "keep me")
    output = '[iso]\noutput = "stuff"\n' if where == "iso-dir" else ""
    profile = write(box.cwd / "p.toml", f'extends = "{ROOT / "profiles" / "demo.toml"}"\n{output}')
    work = {"home": box.root / "home", "unmarked": stuff, "iso-dir": box.root / "work"}[where]
    before = box.tree()
    result = box.run("build", profile, "--work-dir", work, "--only", "preflight")
    refused(
        result,
        {
            "home": "home directory",
            "unmarked": "not made by livecd-tui",
            "iso-dir": "is a directory",
        }[where],
    )
    assert box.tree() == before


# -- usage -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, says",
    [
        (["--from", "iso", "--only", "iso"], "--only and --from cannot be used together"),
        (["--resume", "--only", "iso"], "--only and --resume cannot be used together"),
        (["--resume", "--from", "iso"], "--from and --resume cannot be used together"),
        (["--only", ",,,"], "--only needs at least one stage"),
        (["--only", ""], "--only needs at least one stage"),
        (["--only", "preflight,nonsense"], "unknown stage 'nonsense'"),
        (["--from", "nonsense"], "unknown stage 'nonsense'"),
        (["--force", "nonsense"], "unknown stage 'nonsense'"),
        (["--only", "iso", "--from", "iso", "--detach"], "cannot be used together"),
        (["--only", "kernel", "--force", "iso"], "--force iso: the stage is not among those"),
        (["--from", "iso", "--force", "kernel"], "--force kernel: the stage is not among those"),
    ],
)
def test_conflicting_or_empty_stage_options_are_refused(
    box: Sandbox, options: list[str], says: str
) -> None:
    work = box.root / "work"
    refused(box.run("build", "demo", "--work-dir", work, *options), says)
    assert not work.exists()  # refused before anything ran


def test_names_longer_than_the_system_allows(box: Sandbox) -> None:
    name, path = "a" * 300, "a/" * 2100
    says = "is 300 bytes long; Linux allows 255"
    for command in ("plan", "status", "attach", "stop", "clean"):
        refused(box.run(command, name), says)
    refused(box.run("build", "demo", "--work-dir", name), "--work-dir: a name in the path", says)
    refused(box.run("plan", "demo", "--work-dir", path), "the path is 4200 bytes long")
    refused(box.run("export-script", "demo", "-o", name), "-o/--output: a name", says)


def test_export_script_to_a_directory_or_a_missing_dir(box: Sandbox) -> None:
    (box.cwd / "adir").mkdir()
    before = box.tree()
    refused(box.run("export-script", "demo", "-o", "adir"), "-o adir is a directory")
    refused(
        box.run("export-script", "demo", "-o", "missing/dir/x"),
        "the directory missing/dir does not exist",
    )
    assert box.tree() == before
    result = box.run("export-script", "demo", "-o", "build.sh")
    assert result.returncode == 0 and os.access(box.cwd / "build.sh", os.X_OK)


# -- what status and attach say ----------------------------------------------------------
def test_status_says_failed_only_under_a_stage_that_failed(box: Sandbox) -> None:
    work = box.root / "work"
    build = Build(profile=new_profile(), work=work)
    now = time.time()
    save_state(build, StageState("preflight", "done", now - 9, now - 8))
    save_state(
        build,
        StageState(
            "kernel",
            "interrupted",
            now - 8,
            now - 5,
            failure={"kind": "command", "command": "cp vmlinuz kernel/"},
        ),
    )
    save_state(
        build,
        StageState(
            "system",
            "failed",
            now - 4,
            now - 1,
            failure={"kind": "command", "command": "mksquashfs root system.sfs"},
        ),
    )
    result = box.run("status", work)
    assert result.returncode == 0
    assert re.search(r"^kernel +interrupted ", result.stdout, re.M), result.stdout
    assert "failed: mksquashfs root system.sfs" in result.stdout
    assert "failed: cp vmlinuz" not in result.stdout


def test_a_followed_stage_says_started_not_zero_steps() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.ConsoleReporter(quiet=False)(StageStarted("boottest", 0))
        cli.ConsoleReporter(quiet=False)(StageStarted("iso", 3))
    assert out.getvalue() == "==> boottest: started\n==> iso: 3 step(s)\n"


def test_the_lock_names_the_users_profile_not_the_snapshot(tmp_path: Path) -> None:
    profile = new_profile()
    profile.path = tmp_path / "work" / ".snapshot" / "demo.toml"
    build = Build(profile=profile, work=tmp_path / "work", shown_as="/home/me/demo.toml")
    build.work.mkdir()
    with workdir.work_lock(build):
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; "
                "from livecd_tui.workdir import read_lock; "
                "print(read_lock(Path(sys.argv[1])).profile)",
                str(build.work),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
    assert holder == "/home/me/demo.toml"


# -- hostile strings in every string option ----------------------------------------------
def hostile_strings(canary: Path) -> dict[str, str]:
    return {
        "subst": f"$(touch {canary})",
        "backquote": f"`touch {canary}`",
        "semicolon": f"x; touch {canary}; #",
        "newline": f"x\ntouch {canary}",
        "long": "a" * 5000,
        "long-name": "a" * 300,
        "deep-path": "a/" * 1500,
        "nul": "a\x00b",
        "dotdot": "../" * 20 + "tmp",
        "dash": "--help",
        "escape": "\x1b[2J\x1b]0;pwned\x07x",
        "quotes": "'\"\\ *?~root {a,b} é日本",
    }


def nested(key: str, value: object) -> dict[str, object]:
    *parents, name = key.split(".")
    data: dict[str, object] = {name: value}
    for part in reversed(parents):
        data = {part: data}
    return data


def in_process(argv: list[str]) -> tuple[int, str]:
    """The CLI's entry point in this process (fast enough for every option x string); an
    exception escaping it is the traceback a user would see."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, err.getvalue()


def assert_clear(option: Option, path: Path, command: str, code: int, err: str) -> None:
    if code == 2:  # refused: at the option's line, naming it
        assert f"{path}:" in err and f" {option.key}:" in err, err
    else:
        assert code in (0, 1), (code, err)  # check: 1 when a tool or the kernel is lacking


@pytest.mark.parametrize("option", STRING_OPTIONS, ids=lambda o: o.key)
def test_hostile_strings_in_every_string_option(
    option: Option, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(box.cwd)
    for name, value in box.env.items():
        monkeypatch.setenv(name, value)
    cases = hostile_strings(box.canary)
    before = box.tree(skip=box.cwd)
    for label, text in cases.items():
        value: object = [text] if option.kind == "list" else text
        path = write(
            box.cwd / "profiles" / f"{label}.toml",
            "# hostile\n" + tomli_w.dumps(nested(option.key, value)),
        )
        for command in ("plan", "check"):
            code, err = in_process([command, str(path)])
            assert_clear(option, path, command, code, err)
        assert not box.canary.exists(), (label, option.key)
    # Bytes that are not UTF-8 in the value: the line, in the real CLI.
    raw = write(
        box.cwd / "raw.toml",
        "# hostile\n"
        + tomli_w.dumps(nested(option.key, ["RAW"] if option.kind == "list" else "RAW")),
    )
    line = next(n for n, text in enumerate(raw.read_text().splitlines(), 1) if "RAW" in text)
    raw.write_bytes(raw.read_bytes().replace(b"RAW", b"caf\xe9 \xff"))
    code, err = in_process(["plan", str(raw)])
    assert code == 2 and f"raw.toml:{line}:" in err and "is not UTF-8" in err, err
    # The worst of the strings through the real CLI, as a user would run it.
    worst = write(
        box.cwd / "worst.toml",
        tomli_w.dumps(
            nested(
                option.key,
                (
                    [cases["subst"] + cases["semicolon"]]
                    if option.kind == "list"
                    else cases["subst"] + cases["semicolon"]
                ),
            )
        ),
    )
    result = box.run("check", worst)
    assert_clear(option, worst, "check", result.returncode, result.stderr)
    assert box.tree(skip=box.cwd) == before  # the profiles written in cwd aside
