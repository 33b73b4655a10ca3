"""The content rules (livecd_tui/secrets.py): each finds its secret, none finds the
lookalikes, values in /etc settings are replaced, the scan reads each file once and only its
head, and the scrub's staging tree is never written through a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecd_tui import scrub, secrets
from tests.secret_samples import LOOKALIKES, Sample, samples

SAMPLES = samples("unit")


def test_every_rule_has_a_sample() -> None:
    assert {s.rule for s in SAMPLES} == {r.name for r in secrets.RULES}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.kind for s in SAMPLES])
def test_rule_finds_its_secret(sample: Sample) -> None:
    result = secrets.scan_data(f"srv/data/{sample.kind}", sample.content)
    assert result is not None, sample.kind
    assert sample.rule in result.rules.split(", ")
    assert result.redacted is None  # outside /etc the file is left out


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.value], ids=lambda s: s.kind)
def test_a_setting_in_etc_is_packed_with_its_value_replaced(sample: Sample) -> None:
    result = secrets.scan_data(f"etc/{sample.kind}.conf", sample.content)
    assert result is not None and result.redacted is not None
    assert sample.unique not in result.redacted
    assert secrets.REDACTED in result.redacted
    assert secrets.scan_data(f"etc/{sample.kind}.conf", result.redacted) is None
    # Only the value changed: every other line is as it was.
    before = [x for x in sample.content.splitlines() if sample.unique not in x]
    after = [x for x in result.redacted.splitlines() if secrets.REDACTED not in x]
    assert before == after


@pytest.mark.parametrize("sample", [s for s in SAMPLES if not s.value], ids=lambda s: s.kind)
def test_a_key_in_etc_is_left_out(sample: Sample) -> None:
    result = secrets.scan_data(f"etc/{sample.kind}", sample.content)
    assert result is not None and result.redacted is None


def test_a_quoted_value_keeps_its_quotes() -> None:
    result = secrets.scan_data(
        "etc/wpa_supplicant/wpa_supplicant.conf", b'network={\n ssid="x"\n psk="hunter22"\n}\n'
    )
    assert result is not None and result.redacted is not None
    assert b' psk="REMOVED-BY-LIVECD-TUI"\n' in result.redacted


@pytest.mark.parametrize(("rel", "content"), LOOKALIKES, ids=[r for r, _ in LOOKALIKES])
def test_lookalikes_are_not_secrets(rel: str, content: bytes) -> None:
    assert secrets.scan_data(rel, content) is None


def test_weak_formats_are_not_looked_for_in_usr() -> None:
    """Packages' files (usr/) are checked for key material only: a netrc-like line in a perl
    module's documentation is not this machine's secret."""
    netrc = next(s for s in SAMPLES if s.rule == "netrc")
    assert secrets.scan_data("usr/share/perl/Net/Netrc.pm", netrc.content) is None
    pem = next(s for s in SAMPLES if s.kind == "pem-rsa")
    assert secrets.scan_data("usr/share/app/test.key", pem.content) is not None


def test_account_files_are_the_accounts_own() -> None:
    shadow = next(s for s in SAMPLES if s.kind == "shadow-backup")
    assert secrets.scan_data("etc/shadow", shadow.content) is None
    assert secrets.scan_data("var/backups/shadow.bak", shadow.content) is not None


def test_binary_files_are_skipped_by_magic(tmp_path: Path) -> None:
    pem = next(s for s in SAMPLES if s.kind == "pem-rsa")
    (tmp_path / "prog").write_bytes(b"\x7fELF" + bytes(100) + pem.content)
    (tmp_path / "data.gz").write_bytes(b"\x1f\x8b" + pem.content)
    (tmp_path / "plain").write_bytes(pem.content)
    found = secrets.scan_files(tmp_path, ["prog", "data.gz", "plain"])
    assert [r.path for r in found] == ["plain"]


def test_only_the_head_of_a_big_file_is_read(tmp_path: Path) -> None:
    pem = next(s for s in SAMPLES if s.kind == "pem-rsa")
    filler = b"x" * (secrets.HEAD_LIMIT + 10)
    (tmp_path / "head.txt").write_bytes(pem.content + filler)
    (tmp_path / "tail.txt").write_bytes(filler + pem.content)
    (tmp_path / "tail.pem").write_bytes(filler + pem.content)  # key material: read whole
    found = secrets.scan_files(tmp_path, ["head.txt", "tail.txt", "tail.pem"])
    assert [r.path for r in found] == ["head.txt", "tail.pem"]


def test_links_are_never_followed(tmp_path: Path) -> None:
    pem = next(s for s in SAMPLES if s.kind == "pem-rsa")
    (tmp_path / "key").write_bytes(pem.content)
    (tmp_path / "link").symlink_to(tmp_path / "key")
    assert secrets.scan_file(str(tmp_path), "link") is None


def test_the_workers_find_what_one_process_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rels = []
    for i in range(secrets.POOL_MIN_FILES + 50):
        rel = f"d{i % 7}/f{i}"
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        content = SAMPLES[i % len(SAMPLES)].content if i % 97 == 0 else b"nothing %d\n" % i
        (tmp_path / rel).write_bytes(content)
        rels.append(rel)
    single = secrets.scan_files(tmp_path, rels, jobs=1)
    assert len(single) == len(range(0, len(rels), 97))
    # The workers do the scan: this process does not (it would only as a fallback).
    monkeypatch.setattr(secrets, "_scan_batch", lambda *a: pytest.fail("scanned here"))
    assert secrets.scan_files(tmp_path, rels, jobs=2) == single


def test_the_tree_scrub_never_writes_through_a_link(tmp_path: Path) -> None:
    """The /etc archive's staging copy keeps the system's links: an absolute link to a
    directory must not carry a drop-in or a removal into the builder's own system."""
    outside = tmp_path / "host"
    (outside / "ssh.service.d").mkdir(parents=True)
    pem = next(s for s in SAMPLES if s.kind == "pem-rsa")
    (outside / "key.pem").write_bytes(pem.content)
    before = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    tree = tmp_path / "tree"
    (tree / "etc" / "systemd").mkdir(parents=True)
    (tree / "etc" / "systemd" / "system").symlink_to(outside)  # absolute
    (tree / "etc" / "keys").symlink_to(outside)
    (tree / "etc" / "wg0.key").write_bytes(pem.content)
    plan = scrub.ScrubPlan(scan=True)
    plan.replacements.append(
        scrub.Replacement(
            "etc/systemd/system/ssh.service.d/livecd-tui.conf",
            b"[Service]\n",
            0o644,
            0,
            0,
            "system.scrub.ssh_host_keys",
            "drop-in",
            False,
        )
    )
    findings = scrub.apply_to_tree(plan, tree)
    assert sorted(str(p.relative_to(outside)) for p in outside.rglob("*")) == before
    assert (outside / "key.pem").read_bytes() == pem.content
    assert not (tree / "etc" / "wg0.key").exists()
    assert [f.path for f in findings] == ["etc/wg0.key"]
    assert any("etc/systemd/system is a symbolic link" in n for n in plan.notes)


def test_allowed_file_is_kept_and_reported(tmp_path: Path) -> None:
    wg = next(s for s in SAMPLES if s.kind == "wireguard")
    (tmp_path / "etc" / "wireguard").mkdir(parents=True)
    (tmp_path / "etc" / "wireguard" / "wg0.conf").write_bytes(wg.content)
    (tmp_path / "etc" / "wireguard" / "wg1.conf").write_bytes(wg.content)
    plan = scrub.ScrubPlan(
        scan=True, allow=frozenset(secrets.normalise_allow(["/etc/wireguard/wg0.conf"]))
    )
    findings = scrub.apply_to_tree(plan, tmp_path)
    assert (tmp_path / "etc/wireguard/wg0.conf").read_bytes() == wg.content
    assert wg.unique not in (tmp_path / "etc/wireguard/wg1.conf").read_bytes()
    lines = scrub.report("t", findings, plan.notes)
    assert any(
        x.startswith("kept      etc/wireguard/wg0.conf") and "system.scrub.allow" in x
        for x in lines
    )
    assert any(x.startswith("replaced  etc/wireguard/wg1.conf") for x in lines)
    assert lines[-1].endswith("1 kept by system.scrub.allow")


def test_sshd_drop_in_allowing_empty_passwords_is_warned(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "ssh" / "sshd_config.d"
    conf.mkdir(parents=True)
    (tmp_path / "etc" / "ssh" / "sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    (conf / "50-lab.conf").write_text("PermitEmptyPasswords yes\n")
    plan = scrub.ScrubPlan()
    scrub._warn_empty_passwords(plan, tmp_path)
    assert plan.notes and plan.notes[0].startswith("sshd_config.d/50-lab.conf has")


def test_the_script_scan_is_the_tools(tmp_path: Path) -> None:
    """``python -m livecd_tui.scrub squashfs`` (the exported script's scan) adds the same
    exclude lines and pseudo files as the tool."""
    root = tmp_path / "root"
    for sample in SAMPLES[:6]:
        (root / "srv" / sample.kind).parent.mkdir(parents=True, exist_ok=True)
        (root / "srv" / sample.kind).write_bytes(sample.content)
    wg = next(s for s in SAMPLES if s.kind == "wireguard")
    (root / "etc" / "wireguard").mkdir(parents=True)
    (root / "etc" / "wireguard" / "wg0.conf").write_bytes(wg.content)
    out = tmp_path / "out"
    out.mkdir()
    (out / scrub.EXCLUDE_FILE).write_text("srv/openssh\n")
    (out / scrub.PSEUDO_FILE).write_text("")
    assert (
        scrub.main(
            ["squashfs", str(root), str(out), "--source=etc", "--source=srv", "--allow=/srv/pem-ec"]
        )
        == 0
    )
    lines = (out / scrub.EXCLUDE_FILE).read_text().splitlines()
    assert sorted(lines) == sorted(
        [
            "srv/openssh",
            "srv/pem-rsa",
            "srv/pem-pkcs8",
            "srv/pem-encrypted",
            "srv/pgp",
            "etc/wireguard/wg0.conf",
        ]
    )
    pseudo = (out / scrub.PSEUDO_FILE).read_text()
    assert pseudo.startswith("etc/wireguard/wg0.conf f 644 ")
    staged = out / scrub.STAGED_DIR / "etc/wireguard/wg0.conf"
    assert wg.unique not in staged.read_bytes() and b"[Peer]" in staged.read_bytes()


@pytest.mark.parametrize("fails", [False, True])
def test_the_report_is_published_only_when_the_stage_is_done(tmp_path: Path, fails: bool) -> None:
    """out/PROFILE.scrub.txt describes finished images only: a stage that writes its part
    of the report and then fails (or is stopped) publishes nothing."""
    from livecd_tui.build import Build
    from livecd_tui.engine import Engine, Stage
    from livecd_tui.profile import new_profile
    from livecd_tui.stages import system, writable
    from livecd_tui.steps import Action, command

    assert system.STAGE.on_done is writable.STAGE.on_done is scrub.publish_combined
    build = Build(profile=new_profile(), work=tmp_path / "work")

    def plan(b: Build) -> list:
        write = Action(
            "write the report",
            lambda ctx: scrub.publish_report(
                ctx.build, "system", ["== scrub: the system image", "removed   etc/x"], ctx.out
            ),
        )
        return [write, command(["false" if fails else "true"], "then fail or not")]

    engine = Engine(
        build, [Stage("system", "System", "scrubs", plan, on_done=scrub.publish_combined)]
    )
    assert engine.run(engine.select()) is not fails
    report = scrub.report_path(build)
    if fails:
        assert not report.exists()
    else:
        assert "removed   etc/x" in report.read_text()


def test_line_formats_do_not_backtrack_without_end() -> None:
    """A long pgpass-like file with trailing blanks and one odd line at its end is judged
    at once (one regular expression over the whole file took minutes)."""
    import time

    data = b"".join(b"h%d:5432:db:user:pw%d   \n" % (i, i) for i in range(2000)) + b"odd\n"
    started = time.monotonic()
    assert secrets.scan_data("srv/list", data) is None
    assert secrets.scan_data("srv/list", data[:-4]) is not None
    assert time.monotonic() - started < 5


def test_an_allowed_path_that_is_not_there_is_noted(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    plan = scrub.ScrubPlan(allow=frozenset({"etc/wireguard/wg0.conf", "srv/x"}))
    scrub.keep_allowed(plan, tmp_path, ["etc"])
    assert plan.notes == [
        f"system.scrub.allow lists /etc/wireguard/wg0.conf, which {tmp_path} does not have"
    ]
