"""Where a root-run build may write and delete, checked through the real command: an
iso.output that is not the tool's own, a system directory, the packed tree, system.dirs that
climb out of the root, clean and export-script at dangerous places, ``~`` and the hints a
user pastes. Each refusal: its exit code, a message naming the key or path, no traceback,
and the file untouched."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from livecd_tui import cli, workdir
from livecd_tui.bootconf import ISO_APPLICATION_ID
from livecd_tui.build import WORK_MARKER, Build
from livecd_tui.engine import Stage
from livecd_tui.profile import load_profile
from livecd_tui.stages import STAGES
from livecd_tui.steps import command

ROOT = Path(__file__).resolve().parent.parent
BUSYBOX = '[system]\nsource = "busybox"\nmodules = "initrd"\n[boottest]\nenabled = false\n'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return home


def livecd(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command, with the test's HOME (the fixture set it in os.environ)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert "Traceback" not in text, text
    for word in words:
        assert word in text, (word, text)
    return text


def fake_iso(path: Path, application: str = ISO_APPLICATION_ID) -> bytes:
    """An ISO 9660 primary volume descriptor with this application id, as xorriso -A writes."""
    descriptor = bytearray(b" " * 2048)
    descriptor[:7] = b"\x01CD001\x01"
    descriptor[574 : 574 + len(application)] = application.encode()
    data = bytes(16 * 2048) + bytes(descriptor) + b"\xff" * 2048
    path.write_bytes(data)
    return data


def profile(tmp_path: Path, body: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(BUSYBOX + body)
    return path


# -- iso.output ---------------------------------------------------------------------------
def test_build_refuses_an_output_that_is_another_file(tmp_path: Path, home: Path) -> None:
    victim = home / ".bashrc"
    victim.write_text("alias ll='ls -l'\n")
    prof = profile(tmp_path, f'[iso]\noutput = "{victim}"\n')
    result = livecd(tmp_path, "build", prof, "--work-dir", tmp_path / "w")
    refused(result, 2, "iso.output", str(victim), "not an ISO livecd-tui wrote")
    assert victim.read_text() == "alias ll='ls -l'\n"
    assert not (tmp_path / "w").exists(), "refused before the work dir was made"


def test_build_refuses_an_output_that_is_a_symlink(tmp_path: Path, home: Path) -> None:
    target = tmp_path / "precious.iso"
    data = fake_iso(target)  # even a link to the tool's own ISO
    link = tmp_path / "link.iso"
    link.symlink_to(target)
    prof = profile(tmp_path, '[iso]\noutput = "link.iso"\n')
    result = livecd(tmp_path, "build", prof, "--work-dir", tmp_path / "w")
    refused(result, 2, "iso.output", str(link), "symbolic link")
    assert link.is_symlink() and target.read_bytes() == data


@pytest.mark.parametrize(
    "output",
    ["/etc/passwd", "/etc/livecd.iso", "/usr/local/x.iso", "/boot/live.iso", "/var/lib/x.iso"],
)
def test_build_refuses_an_output_in_a_system_directory(
    output: str, tmp_path: Path, home: Path
) -> None:
    before = Path(output).read_bytes() if Path(output).exists() else None
    prof = profile(tmp_path, f'[iso]\noutput = "{output}"\n')
    result = livecd(tmp_path, "build", prof, "--work-dir", tmp_path / "w")
    refused(result, 2, "system directory", output)
    after = Path(output).read_bytes() if Path(output).exists() else None
    assert before == after


def test_build_refuses_an_output_inside_the_packed_tree(tmp_path: Path, home: Path) -> None:
    system = tmp_path / "sysroot"
    for name in ("bin", "lib", "sbin", "usr", "etc"):
        (system / name).mkdir(parents=True)
    prof = tmp_path / "p.toml"
    prof.write_text(f'[system]\nroot = "{system}"\n[iso]\noutput = "{system}/usr/x.iso"\n')
    result = livecd(tmp_path, "build", prof, "--work-dir", tmp_path / "w")
    refused(result, 2, f"{system}/usr/x.iso", "which is packed")
    assert not (system / "usr" / "x.iso").exists()


def test_own_iso_is_replaced_a_foreign_one_and_a_foreign_checksum_are_not(
    tmp_path: Path, home: Path
) -> None:
    prof = load_profile(profile(tmp_path, '[iso]\noutput = "live.iso"\n'))
    build = Build.for_profile(prof, tmp_path / "w")
    assert workdir.path_findings(build, STAGES) == []  # nothing there yet
    fake_iso(tmp_path / "live.iso")
    assert workdir.path_findings(build, STAGES) == []  # its own, from an earlier build
    fake_iso(tmp_path / "live.iso", application="SOME DISTRIBUTION")
    [finding] = workdir.path_findings(build, STAGES)
    assert finding.key == "iso.output" and "not an ISO livecd-tui wrote" in finding.message
    fake_iso(tmp_path / "live.iso")
    (tmp_path / "live.iso.sha256").write_text("my notes\n")
    [finding] = workdir.path_findings(build, STAGES)
    assert "live.iso.sha256" in finding.message and "iso.checksum" in finding.message
    (tmp_path / "live.iso.sha256").write_text(f"{'0' * 64}  live.iso\n")
    assert workdir.path_findings(build, STAGES) == []


def test_fifo_at_the_output_is_refused_without_blocking(tmp_path: Path, home: Path) -> None:
    os.mkfifo(tmp_path / "pipe.iso")
    assert not workdir.written_by_livecd_tui(tmp_path / "pipe.iso")


def test_check_reports_the_output_with_its_key_and_line(tmp_path: Path, home: Path) -> None:
    prof = profile(tmp_path, '[iso]\noutput = "/etc/shadow"\n')
    result = livecd(tmp_path, "check", prof)
    text = refused(result, 1, "PROBLEM", "(option iso.output)", "/etc/shadow")
    line = BUSYBOX.count("\n") + 2
    assert f"p.toml:{line}: " in text


# -- system.dirs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "item", ["../etc", "/etc", "usr/../../etc", ".", "..", "", "a b", "$(touch x)"]
)
def test_system_dirs_are_plain_top_level_names(item: str, tmp_path: Path, home: Path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(f'[system]\nsource = "root"\ndirs = ["usr", {item!r}]\n'.replace("'", '"'))
    for args in (("build", prof, "--work-dir", tmp_path / "w"), ("check", prof)):
        refused(livecd(tmp_path, *args), 2, "p.toml:3: system.dirs: item 2")
    assert not (tmp_path / "w").exists() and not (tmp_path / "x").exists()


# -- clean and export-script -------------------------------------------------------------
def test_clean_refuses_home_even_with_the_marker(tmp_path: Path, home: Path) -> None:
    (home / WORK_MARKER).touch()
    (home / "thesis.tex").write_text("precious")
    for target in (home, "~", "/"):
        refused(livecd(tmp_path, "clean", target), 2, "refusing to delete")
    assert (home / "thesis.tex").read_text() == "precious"


def test_clean_refuses_a_system_directory_with_the_marker(tmp_path: Path, home: Path) -> None:
    with pytest.raises(cli.BuildError, match="system directory"):
        workdir.clean(Path("/var/lib/livecd-tui-test-nonexistent"))


@pytest.mark.parametrize("work", ["/", "~", "/etc", "/var"])
def test_export_script_refuses_what_build_refuses(work: str, tmp_path: Path, home: Path) -> None:
    prof = profile(tmp_path, "")
    script = tmp_path / "build.sh"
    result = livecd(tmp_path, "export-script", prof, "--work-dir", work, "-o", script)
    refused(result, 2, "work dir")
    assert not script.exists()


def test_export_script_refuses_a_foreign_dir(tmp_path: Path, home: Path) -> None:
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("precious")
    result = livecd(tmp_path, "export-script", profile(tmp_path, ""), "--work-dir", thesis)
    refused(result, 2, "not empty and was not made by livecd-tui")


# -- ~ -----------------------------------------------------------------------------------
def test_tilde_is_expanded_on_the_command_line_and_in_profiles(tmp_path: Path, home: Path) -> None:
    prof = profile(tmp_path, "")
    result = livecd(tmp_path, "plan", prof, "--work-dir", "~/x")
    assert result.returncode == 0, result.stderr
    assert f"work dir {home}/x\n" in result.stdout
    result = livecd(tmp_path, "export-script", prof, "--work-dir", "~/x")
    assert f"WORK={home}/x\n" in result.stdout
    in_profile = profile(tmp_path, '[build]\nwork_dir = "~/y"\n', name="q.toml")
    result = livecd(tmp_path, "plan", in_profile)
    assert f"work dir {home}/y\n" in result.stdout
    assert not (tmp_path / "~").exists()


# -- hints a user pastes -----------------------------------------------------------------
def test_resume_hint_names_the_work_dir_quoted(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = Stage("fails", "Fails", "fails", lambda b: [command(["false"], "fail")])
    monkeypatch.setattr(cli, "STAGES", [failing])
    prof = profile(tmp_path, "", name="my profile.toml")
    work = tmp_path / "w $(touch x) `y`; z"
    assert cli.main(["build", str(prof), "--work-dir", str(work), "--quiet"]) == 1
    hint = capsys.readouterr().err.rpartition("fix and run: ")[2].strip()
    assert shlex.split(hint) == [
        "livecd-tui",
        "build",
        str(prof),
        "--work-dir",
        str(work),
        "--resume",
    ]
    # The profile's own work dir needs no --work-dir.
    assert cli.main(["build", str(prof), "--quiet"]) == 1
    hint = capsys.readouterr().err.rpartition("fix and run: ")[2].strip()
    assert shlex.split(hint) == ["livecd-tui", "build", str(prof), "--resume"]
    # A build the TUI started runs from a snapshot: the hint names the user's profile.
    assert (
        cli.main(
            [
                "build",
                str(prof),
                "--work-dir",
                str(work),
                "--quiet",
                "--shown-as",
                "/home/u/mine.toml",
            ]
        )
        == 1
    )
    hint = capsys.readouterr().err.rpartition("fix and run: ")[2].strip()
    assert shlex.split(hint)[:3] == ["livecd-tui", "build", "/home/u/mine.toml"]


def test_exported_script_refuses_a_foreign_dir_when_it_runs(tmp_path: Path, home: Path) -> None:
    """The script may run later than it was written: it checks the marker itself."""
    work = tmp_path / "work"
    script = tmp_path / "build.sh"
    result = livecd(
        tmp_path, "export-script", profile(tmp_path, ""), "--work-dir", work, "-o", script
    )
    assert result.returncode == 0, result.stderr
    work.mkdir()
    (work / "thesis.tex").write_text("precious")
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "refusing" in run.stderr
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]


def test_clean_of_a_profile_refuses_its_work_dir_inside_the_packed_tree(
    tmp_path: Path, home: Path
) -> None:
    system = tmp_path / "sysroot"
    work = system / "usr" / "work"
    work.mkdir(parents=True)
    (work / WORK_MARKER).touch()
    prof = tmp_path / "p.toml"
    prof.write_text(f'[system]\nroot = "{system}"\n[build]\nwork_dir = "{work}"\n')
    refused(livecd(tmp_path, "clean", prof), 2, "refusing to delete", "which is packed")
    assert (work / WORK_MARKER).exists()


def test_a_kernel_tree_build_needs_paths_make_takes_literally(tmp_path: Path, home: Path) -> None:
    """The kernel's make passes its paths to sh unquoted (INSTALL_MOD_PATH, the tree)."""
    tree = tmp_path / "linux `touch x`"
    tree.mkdir()
    prof = tmp_path / "p.toml"
    prof.write_text(f'[kernel]\nsource = "tree"\ntree = "{tree}"\n')
    build = Build.for_profile(load_profile(prof), tmp_path / "w $(touch x)")
    found = {f.key: f.message for f in workdir.path_findings(build, STAGES)}
    assert set(found) == {"kernel.tree", "build.work_dir"}
    assert "make hands to a shell" in found["kernel.tree"] and str(tree) in found["kernel.tree"]
    safe = Build.for_profile(load_profile(prof), tmp_path / "w-1.0_x")
    assert [f.key for f in workdir.path_findings(safe, STAGES)] == ["kernel.tree"]


def test_a_home_under_var_lib_is_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service account's home may lie in a system directory: its files are its own."""
    monkeypatch.setenv("HOME", "/var/lib/livecd-svc")
    prof = load_profile(profile(tmp_path, '[iso]\noutput = "~/live.iso"\n'))
    build = Build.for_profile(prof, Path("~/.cache/livecd-tui/p"))
    assert build.work == Path("/var/lib/livecd-svc/.cache/livecd-tui/p")
    assert workdir.path_findings(build, STAGES) == []
    elsewhere = Build.for_profile(prof, Path("/var/lib/other"))
    assert "system directory /var/lib" in workdir.path_problems(elsewhere, STAGES)[0]


#: Runs an exported script with every program stubbed out (bash calls the handler for a
#: command it cannot find) and without set -e or exit: only bash itself reads each line,
#: so a path that bash would run as a command shows in the canary.
STUBBED = """script=$(grep -v '^set -euo pipefail$' "$1")
command_not_found_handle() { return 0; }
exit() { :; }
PATH=/nonexistent-livecd-tui
set +e
eval "$script"
"""


CLASSIC = (
    '[initrd]\nformat = "classic"\n[writable]\nstrategy = "classic"\n'
    '[bootloader]\ntype = "grub-legacy"\n'
)


@pytest.mark.parametrize(
    ("shipped", "body"), [("demo", ""), ("modern", ""), ("demo", CLASSIC), ("modern", CLASSIC)]
)
def test_exported_script_runs_no_path(shipped: str, body: str, tmp_path: Path, home: Path) -> None:
    canary = tmp_path / "canary"
    hostile = "$(echo 1 >> $CANARY) `echo 2 >> $CANARY`; echo 3 >> $CANARY ;x"
    prof = tmp_path / f"p {hostile}.toml"
    prof.write_text(
        f'extends = "{ROOT / "profiles" / f"{shipped}.toml"}"\n{body}'
        f'[iso]\noutput = "{tmp_path}/out {hostile}.iso"\n'
    )
    script = tmp_path / "build.sh"
    result = livecd(
        tmp_path, "export-script", prof, "--work-dir", tmp_path / f"w {hostile}", "-o", script
    )
    assert result.returncode == 0, result.stderr
    (tmp_path / "run.sh").write_text(STUBBED)
    run = subprocess.run(
        ["bash", str(tmp_path / "run.sh"), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CANARY=str(canary)),
    )
    assert "missing tool" in run.stdout + run.stderr, "the script did not run"
    assert not canary.exists(), canary.read_text()
