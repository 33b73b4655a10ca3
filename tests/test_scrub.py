"""The scrub with the real tools: a root full of secrets goes through the system and writable
stages (the livecd-tui command itself), and neither the squashfs nor the /etc archive holds
them, the report lists each, and the root is byte for byte what it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from livecd_tui import accounts, fileops, scrub
from livecd_tui.build import Build, find_prebuilt_kernel
from livecd_tui.profile import Profile, load_profile
from livecd_tui.stages.writable import scrub_tree_step
from tests.secret_samples import _pem

ROOT = Path(__file__).resolve().parent.parent
KERNEL = find_prebuilt_kernel(Path("/"))
needs_tools = pytest.mark.skipif(
    KERNEL is None or not all(shutil.which(t) for t in ("mksquashfs", "unsquashfs", "busybox")),
    reason="needs a kernel in /boot, squashfs-tools and busybox",
)

HASH = "$6$saltsalt$" + "h" * 86
SECRETS = {
    "etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nHOSTKEY\n",
    "etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA host\n",
    "etc/shadow-": f"root:{HASH}:19000:0:99999:7:::\n",
    "etc/ssl/private/server.pem": "-----BEGIN PRIVATE KEY-----\nPEMKEY\n",
    "root/.bash_history": "mysql -p hunter2\n",
    "home/alice/.bash_history": "ssh prod\n",
    "home/alice/.ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nUSERKEY\n",
    "root/.netrc": "machine example.org login me password hunter2\n",
    "var/log/syslog": "Nov 25 login from 10.0.0.1\n",
    "var/log/apt/history.log": "Start-Date: 2026-11-25\n",
    "var/tmp/junk": "temp\n",
}


#: The shadow group's id on Debian: the live system's unix_chkpwd reads /etc/shadow by it.
SHADOW_GID = 42


def make_secret_root(root: Path) -> None:
    """A small system: busybox as init and getty, accounts with hashes, and secrets."""
    for d in (
        "bin",
        "sbin",
        "lib",
        "usr/bin",
        "etc/ssh",
        "etc/ssl/private",
        "home/alice/.ssh",
        "root",
        "var/log/apt",
        "var/tmp",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "login", "getty"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "sbin" / "init").symlink_to("../bin/busybox")
    (root / "sbin" / "getty").symlink_to("../bin/busybox")
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        "etc/shadow": f"root:{HASH}:19000:0:99999:7:::\nalice:{HASH}:19000:0:99999:7:::\n"
        "daemon:*:19000:0:99999:7:::\n",
        "etc/group": "root:x:0:\nsudo:x:27:\nalice:x:1000:\n",
        "etc/gshadow": f"root:*::\nsudo:{HASH}::\nalice:!::\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "etc/inittab": "::sysinit:/bin/true\ntty1::respawn:/sbin/getty 38400 tty1\n"
        "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n",
        "usr/bin/tool": "#!/bin/sh\necho tool\n",
        **SECRETS,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.chmod(root / "etc/shadow", 0o640)
    if os.geteuid() == 0:
        os.chown(root / "etc/shadow", 0, SHADOW_GID)  # group shadow, as on Debian


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry of a tree: type, mode, owner, size, mtime and content (or link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            what = f"{st.st_mode:o} {st.st_uid}:{st.st_gid} {st.st_size} {st.st_mtime_ns}"
            if path.is_symlink():
                what += " -> " + os.readlink(path)
            elif path.is_file():
                what += " " + hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = what
    return out


def write_profile(path: Path, root: Path, **sections: dict[str, object]) -> Path:
    assert KERNEL is not None
    image, release = KERNEL
    lines = [
        "[kernel]",
        f'image = "{image}"',
        f'modules_dir = "/lib/modules/{release}"',
        "[system]",
        'source = "root"',
        f'root = "{root}"',
        'dirs = ["bin", "lib", "sbin", "usr", "home", "root", "var"]',
        'modules = "none"',
    ]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(
                f"{key} = {value!r}".replace("'", '"')
                .replace("True", "true")
                .replace("False", "false")
            )
    path.write_text("\n".join(lines) + "\n")
    return path


def build(profile: Path, work: Path, stages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "livecd_tui.cli",
            "build",
            str(profile),
            "--work-dir",
            str(work),
            "--only",
            stages,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def squashfs_paths(image: Path) -> set[str]:
    listing = subprocess.run(
        ["unsquashfs", "-l", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return {
        line.removeprefix("squashfs-root/")
        for line in listing.splitlines()
        if line.startswith("squashfs-root/")
    }


def squashfs_cat(image: Path, path: str) -> str:
    return subprocess.run(
        ["unsquashfs", "-cat", str(image), path], capture_output=True, text=True, check=True
    ).stdout


@needs_tools
def test_overlay_image_holds_no_secret_and_the_root_is_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_secret_root(root)
    before = tree_digest(root)
    # Keep the homes (so the private key is caught by the secrets rule on its own).
    profile = write_profile(tmp_path / "secrets.toml", root, **{"system.scrub": {"home": False}})
    result = build(profile, tmp_path / "work", "preflight,kernel,system")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert tree_digest(root) == before

    image = tmp_path / "work" / "stages" / "system" / "system.squashfs"
    paths = squashfs_paths(image)
    for secret in SECRETS:
        assert secret not in paths, secret
    assert "var/log/apt" in paths  # the log dir stays, empty
    assert not [p for p in paths if p.startswith("var/log/apt/")]
    assert "usr/bin/tool" in paths and "home/alice" in paths
    shadow = squashfs_cat(image, "etc/shadow")
    assert "$6$" not in shadow and shadow.startswith("root::")  # root: no password (default)
    assert "alice:!:" in shadow and "daemon:*:" in shadow
    assert "$6$" not in squashfs_cat(image, "etc/gshadow")
    assert squashfs_cat(image, "etc/machine-id") == ""

    report = (tmp_path / "work" / "out" / "secrets.scrub.txt").read_text()
    for secret in SECRETS:
        assert secret in report, secret
    assert "replaced  etc/shadow" in report and "replaced  etc/machine-id" in report
    log = (tmp_path / "work" / "logs" / "system.log").read_text()
    assert "removed   etc/ssh/ssh_host_ed25519_key" in log
    assert "checked the image: none of the" in log


@needs_tools
def test_classic_archive_holds_no_secret(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_secret_root(root)
    before = tree_digest(root)
    profile = write_profile(
        tmp_path / "classic.toml",
        root,
        writable={"strategy": "classic"},
        **{"system.login": {"user": "live", "autologin": "tty1"}},
    )
    result = build(profile, tmp_path / "work", "preflight,kernel,system,writable")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert tree_digest(root) == before

    archive = tmp_path / "work" / "stages" / "writable" / "etc.tar.bz2"
    listing = subprocess.run(
        ["tar", "-tjf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()
    for secret in SECRETS:
        if secret.startswith("etc/"):
            assert secret not in listing, secret
    assert "etc/shadow" in listing and "etc/passwd" in listing
    with tarfile.open(archive) as tar:

        def read(name: str) -> str:
            member = tar.extractfile(name)
            assert member is not None
            return member.read().decode()

        shadow = read("etc/shadow")
        assert "$6$" not in shadow and "root:!:" in shadow and "\nlive::" in shadow
        assert "live:x:1001:1001:Live user:/home/live:/bin/sh" in read("etc/passwd")
        assert "sudo:x:27:live" in read("etc/group")
        assert "tty1::respawn:/bin/login -f live" in read("etc/inittab")
        assert "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100" in read("etc/inittab")
        assert read("etc/machine-id") == ""
        if os.geteuid() == 0:  # owners kept (system.keep_owners): shadow keeps its group
            assert tar.getmember("etc/shadow").gid == SHADOW_GID

    image = tmp_path / "work" / "stages" / "system" / "system.squashfs"
    paths = squashfs_paths(image)
    for secret in SECRETS:
        assert secret not in paths, secret
    assert not [p for p in paths if p.startswith(("root/", "home/alice/"))]  # homes emptied

    report = (tmp_path / "work" / "out" / "classic.scrub.txt").read_text()
    for secret in SECRETS:
        if secret.startswith("etc/") or secret.endswith("history"):
            assert secret in report, secret
    assert "home/alice/.ssh/" in report and "root/.netrc" in report
    assert "== scrub: the /etc archive" in report and "== scrub: the system image" in report


@needs_tools
def test_classic_archive_owners_follow_keep_owners(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("owners other than the builder's need root")
    root = tmp_path / "root"
    make_secret_root(root)
    profile = write_profile(tmp_path / "owners.toml", root, writable={"strategy": "classic"})
    profile.write_text(
        profile.read_text().replace('modules = "none"', 'modules = "none"\nkeep_owners = false')
    )
    result = build(profile, tmp_path / "work", "preflight,kernel,system,writable")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    archive = tmp_path / "work" / "stages" / "writable" / "etc.tar.bz2"
    with tarfile.open(archive) as tar:
        assert {(m.uid, m.gid) for m in tar.getmembers()} == {(0, 0)}
    image = tmp_path / "work" / "stages" / "system" / "system.squashfs"
    listing = subprocess.run(
        ["unsquashfs", "-lln", str(image), "etc/shadow"], capture_output=True, text=True, check=True
    ).stdout
    assert " 0/0 " in listing, listing


@needs_tools
def test_scrub_switched_off_packs_as_is(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_secret_root(root)
    off = {
        name: False
        for name in (
            "ssh_host_keys",
            "passwords",
            "machine_id",
            "histories",
            "home",
            "logs",
            "caches",
            "tmp",
            "secrets",
        )
    }
    profile = write_profile(
        tmp_path / "off.toml", root, **{"system.scrub": off, "system.login": {"password": "keep"}}
    )
    result = build(profile, tmp_path / "work", "preflight,kernel,system")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    image = tmp_path / "work" / "stages" / "system" / "system.squashfs"
    paths = squashfs_paths(image)
    assert all(secret in paths for secret in SECRETS)
    assert HASH in squashfs_cat(image, "etc/shadow")


# -- modules of another kernel ---------------------------------------------------------------
def fake_modules(base: Path, name: str, release_in_module: str | None = None) -> Path:
    """A modules dir called ``name`` holding one real module, its vermagic optionally
    rewritten to ``release_in_module`` (same length: the ELF stays valid)."""
    assert KERNEL is not None
    release = KERNEL[1]
    source = Path("/lib/modules") / release
    rel = next(
        line.partition(":")[0]
        for line in (source / "modules.dep").read_text().splitlines()
        if line.partition(":")[0].endswith(".ko")
    )
    modules = base / name
    (modules / rel).parent.mkdir(parents=True)
    data = (source / rel).read_bytes()
    if release_in_module is not None:
        assert len(release_in_module) == len(release)
        data = data.replace(
            f"vermagic={release}".encode(), f"vermagic={release_in_module}".encode()
        )
    (modules / rel).write_bytes(data)
    (modules / "modules.dep").write_text(f"{rel}:\n")
    return modules


def other_release(release: str) -> str:
    """A release of the same length that is not ``release``."""
    return release[:-1] + ("x" if release[-1] != "x" else "y")


@needs_tools
@pytest.mark.parametrize("how", ["dir name", "vermagic"])
def test_modules_of_another_kernel_are_refused(tmp_path: Path, how: str) -> None:
    assert KERNEL is not None
    release = KERNEL[1]
    other = other_release(release)
    if how == "dir name":
        modules = fake_modules(tmp_path / "mods", other)
    else:
        modules = fake_modules(tmp_path / "mods", release, release_in_module=other)
    profile = tmp_path / "mismatch.toml"
    profile.write_text(
        f'extends = "{ROOT / "profiles" / "demo.toml"}"\n'
        f'[kernel]\nimage = "{KERNEL[0]}"\nmodules_dir = "{modules}"\n'
    )
    result = build(profile, tmp_path / "work", "preflight,kernel,system")
    assert result.returncode == 1
    assert "check the modules for the live system belong to the kernel" in result.stderr
    assert release in result.stderr and other in result.stderr
    assert not (tmp_path / "work" / "stages" / "system" / "system.squashfs").exists()


@needs_tools
def test_matching_modules_pass(tmp_path: Path) -> None:
    assert KERNEL is not None
    from livecd_tui.kernel import modmatch

    found = modmatch.check_modules(KERNEL[1], Path("/lib/modules") / KERNEL[1], "the test")
    assert found.vermagic.split()[0] == KERNEL[1]
    assert modmatch.kernel_release(KERNEL[1], KERNEL[0]) == KERNEL[1]
    with pytest.raises(modmatch.ModulesMismatch) as err:
        modmatch.kernel_release(other_release(KERNEL[1]), KERNEL[0])
    assert KERNEL[1] in str(err.value) and other_release(KERNEL[1]) in str(err.value)


# -- the pieces ------------------------------------------------------------------------------
def test_lock_passwords_leaves_no_hash() -> None:
    text = (
        f"root:{HASH}:1::\nbin:*:1::\nnobody:!:1::\nlocked:!{HASH}:1::\nempty::1::\n"
        "# comment\n+nis\n"
    )
    new, changed = accounts.lock_passwords(text)
    assert "$6$" not in new
    assert changed == ["root", "locked", "empty"]
    assert "bin:*:1::" in new and "nobody:!:1::" in new and "# comment\n+nis" in new


def test_live_user_is_added_once_with_a_free_id() -> None:
    files = accounts.AccountFiles(
        passwd="root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        shadow=f"root:{HASH}:1::::::\nalice:{HASH}:1::::::\n",
        group="root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n",
        gshadow="sudo:!::alice\n",
    )
    login = accounts.LiveLogin(
        "live", HASH.replace("h", "k"), ("sudo", "wheel"), "/bin/bash", 20000
    )
    out = accounts.apply_scrub_and_login(files, True, login)
    assert "live:x:1001:1001:Live user:/home/live:/bin/bash" in (out.passwd or "")
    assert f"live:{login.password_field}:20000:0:99999:7:::" in (out.shadow or "")
    assert "root:!:" in (out.shadow or "") and "alice:!:" in (out.shadow or "")
    assert "sudo:x:27:alice,live" in (out.group or "") and "sudo:!::alice,live" in (
        out.gshadow or ""
    )
    again = accounts.apply_scrub_and_login(out, True, login)
    assert again.passwd == out.passwd and (again.shadow or "").count("live:") == 1


def test_keep_leaves_the_systems_password() -> None:
    files = accounts.AccountFiles(
        passwd="root:x:0:0::/root:/bin/sh\n", shadow=f"root:{HASH}:1::::::\n"
    )
    out = accounts.apply_scrub_and_login(files, False, accounts.LiveLogin("root", None))
    assert out.shadow == files.shadow and not out.changes


def test_autologin_inittab() -> None:
    text = (
        "::sysinit:/etc/init.d/rcS\nttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n"
        "tty1::respawn:/sbin/getty 38400 tty1\n"
    )
    new, ttys = scrub.autologin_inittab(text, "live", "tty1", "busybox", "/bin/login")
    assert ttys == ["tty1"] and "tty1::respawn:/bin/login -f live" in new
    assert "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100" in new
    new, ttys = scrub.autologin_inittab(text, "root", "all", "busybox", "/bin/login")
    assert sorted(ttys) == ["tty1", "ttyS0"]
    sysv = "1:2345:respawn:/sbin/agetty --noclear tty1 9600\n"
    new, ttys = scrub.autologin_inittab(sysv, "root", "tty1", "sysvinit", "/bin/login")
    assert new == "1:2345:respawn:/sbin/agetty --autologin root --noclear tty1 9600\n"


def test_realpath_in_keeps_absolute_links_inside(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "systemd" / "systemd").write_text("")
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "usr" / "sbin").mkdir()
    (tmp_path / "sbin").symlink_to("usr/sbin")
    (tmp_path / "usr" / "sbin" / "init").symlink_to("/lib/systemd/systemd")
    assert scrub.realpath_in(tmp_path, "sbin/init") == tmp_path / "usr/lib/systemd/systemd"
    assert scrub.init_system(tmp_path) == "systemd"
    (tmp_path / "loop").symlink_to("loop")
    assert scrub.realpath_in(tmp_path, "loop") is None


def test_systemd_root_gets_drop_ins(tmp_path: Path) -> None:
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile

    root = tmp_path / "root"
    for d in ("usr/lib/systemd/system", "usr/sbin", "usr/bin", "etc/ssh"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_text("")
    (root / "usr/sbin/init").symlink_to("/usr/lib/systemd/systemd")
    (root / "sbin").symlink_to("usr/sbin")
    (root / "usr/sbin/sshd").write_text("")
    (root / "usr/bin/ssh-keygen").write_text("")
    (root / "usr/lib/systemd/system/ssh.service").write_text(
        "[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n"
    )
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    profile = tmp_path / "p.toml"
    profile.write_text(f'[system]\nroot = "{root}"\n[system.login]\nautologin = "all"\n')
    plan = scrub.make_plan(
        Build.for_profile(load_profile(profile), tmp_path / "w"), root, ["etc", "usr"]
    )
    files = {r.path: r.content.decode() for r in plan.replacements}
    ssh = files["etc/systemd/system/ssh.service.d/livecd-tui.conf"]
    assert ssh.index("ssh-keygen -A") < ssh.index("ExecStartPre=/usr/sbin/sshd -t")
    getty = files["etc/systemd/system/getty@.service.d/livecd-tui.conf"]
    assert (
        "ExecStart=\nExecStart=-/sbin/agetty -o '-p -f -- \\\\u' --noclear --autologin "
        "root %I $TERM" in getty
    )
    assert "serial-getty@.service.d/livecd-tui.conf" in " ".join(files)


@pytest.mark.parametrize("password", ["none", "locked", "hash", "keep"])
def test_the_scripts_account_files_are_the_tools(tmp_path: Path, password: str) -> None:
    """export-script's bash writes the same locked account files as livecd-tui (root login)."""
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile

    root = tmp_path / "root"
    make_secret_root(root)
    (root / "etc" / "passwd").write_text(
        f"root::0:0:root:/root:/bin/sh\n# comment: x\nold:{HASH}:1:1::/:/bin/sh\n"
    )
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[system]\nroot = "{root}"\n[system.login]\npassword = "{password}"\n'
        f'password_hash = "{HASH.replace("h", "k")}"\n'
    )
    build = Build.for_profile(load_profile(profile), tmp_path / "work")
    sources = ["bin", "etc", "usr"]
    plan = scrub.make_plan(build, root, sources)
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "\n".join(
            fileops.render([scrub.squashfs_at_run_time(build, root, out, sources, [], False)])
        )
        + "\n"
    )
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
    pseudo = (out / scrub.PSEUDO_FILE).read_text()
    for name in ("passwd", "shadow", "group", "gshadow"):
        replaced = next((r for r in plan.replacements if r.path == f"etc/{name}"), None)
        if replaced is None:
            assert f"etc/{name} " not in pseudo, name
        else:
            assert f"etc/{name} f " in pseudo, name
            assert (out / "scrub" / "etc" / name).read_bytes() == replaced.content, name


def test_live_home_is_given_to_the_user_at_boot_when_the_image_is_all_root(tmp_path: Path) -> None:
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile

    root = tmp_path / "root"
    make_secret_root(root)
    (root / "bin" / "chown").symlink_to("busybox")
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[system]\nroot = "{root}"\n[system.login]\nuser = "live"\nautologin = "tty1"\n'
    )
    build = Build.for_profile(load_profile(profile), tmp_path / "work")
    plan = scrub.make_plan(build, root, ["etc", "home"], all_root=True)
    inittab = next(r for r in plan.replacements if r.path == "etc/inittab").content.decode()
    assert "tty1::respawn:/bin/login -f live" in inittab
    assert inittab.endswith("::sysinit:/bin/chown 1001:1001 /home/live\n")
    assert [d.path for d in plan.new_dirs if d.option == "system.login.user"] == ["home/live"]
    kept = scrub.make_plan(build, root, ["etc", "home"], all_root=False)
    assert (
        "chown"
        not in next(r for r in kept.replacements if r.path == "etc/inittab").content.decode()
    )


@pytest.mark.parametrize("password", ["none", "hash", "keep"])
def test_the_scripts_etc_archive_is_the_tools(tmp_path: Path, password: str) -> None:
    """export-script's bash scrubs the /etc archive's tree as livecd-tui does (root login)."""
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile

    root = tmp_path / "root"
    make_secret_root(root)
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[system]\nroot = "{root}"\n[writable]\nstrategy = "classic"\n'
        f'[system.login]\npassword = "{password}"\n'
        f'password_hash = "{HASH.replace("h", "k")}"\n'
    )
    build = Build.for_profile(load_profile(profile), tmp_path / "work")
    trees = {}
    for how in ("tool", "script"):
        tree = tmp_path / how
        shutil.copytree(root / "etc", tree / "etc", symlinks=True)
        trees[how] = tree
    plan = scrub.make_plan(build, trees["tool"], ["etc"], root)
    scrub.apply_to_tree(plan, trees["tool"])
    script = "\n".join(scrub_tree_step(build, trees["script"]).script_lines()) + "\n"
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
    assert tree_digest(trees["script"] / "etc").keys() == tree_digest(trees["tool"] / "etc").keys()
    for name in ("passwd", "shadow", "group", "gshadow", "machine-id", "inittab"):
        assert (trees["script"] / "etc" / name).read_bytes() == (
            trees["tool"] / "etc" / name
        ).read_bytes(), name
    assert not (trees["script"] / "etc" / "ssh" / "ssh_host_ed25519_key").exists()


@pytest.mark.parametrize("profile_name", ["demo", "modern", "classic"])
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bootloader.title", "Another title"),
        ("writable.tmpfs_size", "512m"),
        ("iso.volume_label", "OTHER"),
        ("boottest.timeout", 999),
    ],
)
def test_an_option_the_system_stage_does_not_read_leaves_its_plan_alone(
    tmp_path: Path, profile_name: str, key: str, value: object
) -> None:
    """The scrub's run-time command line carries only the options it reads: a new menu
    title once put every option into the system stage's plan, so it re-ran mksquashfs."""
    from livecd_tui.engine import plan_stage
    from livecd_tui.stages import STAGES

    system = next(s for s in STAGES if s.name == "system")

    def plan(profile: Profile) -> list[str]:
        build = Build.for_profile(profile, tmp_path / "work", dry_run=True)
        return [line for step in plan_stage(build, system) for line in step.script_lines()]

    path = ROOT / "profiles" / f"{profile_name}.toml"
    before = plan(load_profile(path))
    changed = load_profile(path)
    changed.set(key, value)
    assert plan(changed) == before


@needs_tools
def test_a_layer_is_scrubbed_as_the_base_is(tmp_path: Path) -> None:
    """Secrets planted after the base build, and a changed /etc/shadow: the layer holds
    none of them (the scrub and the content scan apply to every layer), the report names
    them, and the shadow file in the layer is livecd-tui's."""
    root = tmp_path / "root"
    make_secret_root(root)
    profile = write_profile(tmp_path / "secrets.toml", root, **{"system.scrub": {"home": False}})
    work = tmp_path / "work"
    assert build(profile, work, "preflight,kernel,system").returncode == 0
    planted = {
        "etc/ssh/ssh_host_rsa_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n"
        "-----END OPENSSH PRIVATE KEY-----\n",
        "usr/share/app/deploy.pem": _pem("RSA PRIVATE KEY", "layer")[0].decode(),
        "usr/bin/new-tool": "#!/bin/sh\necho new\n",
    }
    for rel, text in planted.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    with (root / "etc" / "shadow").open("a") as shadow:
        shadow.write(f"bob:{HASH}:19000:0:99999:7:::\n")
    result = build(profile, work, "preflight,kernel,system")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    layer = work / "stages" / "system" / "layer-01.squashfs"
    paths = squashfs_paths(layer)
    assert "usr/bin/new-tool" in paths
    assert "etc/ssh/ssh_host_rsa_key" not in paths
    assert "usr/share/app/deploy.pem" not in paths
    shadow = squashfs_cat(layer, "etc/shadow")
    assert "$6$" not in shadow and "bob:!:" in shadow
    report = (work / "out" / "secrets.scrub.txt").read_text()
    assert "etc/ssh/ssh_host_rsa_key" in report and "usr/share/app/deploy.pem" in report
    log = (work / "logs" / "system.log").read_text()
    assert "packing layer 1:" in log
    assert "checked the image's files: no secret in them but those allowed" in log


def test_the_content_scan_reads_only_what_changed_since_a_clean_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild's scan skips the files the last scan found clean and whose size, mtime,
    inode change time and inode are the same; a secret written since is found."""
    root, first, second, third = (tmp_path / n for n in ("root", "one", "two", "three"))
    for d in (root / "etc", first, second, third):
        d.mkdir(parents=True)
    for n in range(5):
        (root / "etc" / f"f{n}").write_text(f"plain {n}\n")
    files = [f"etc/f{n}" for n in range(5)]
    asked: list[list[str]] = []
    real = scrub.secrets.scan_files

    def counting(where: Path, rels: list[str]) -> list[scrub.secrets.Result]:
        asked.append(sorted(rels))
        return real(where, rels)

    monkeypatch.setattr(scrub.secrets, "scan_files", counting)
    assert scrub.scan_changed(root, files, tmp_path / "none", first) == []
    (root / "etc" / "f2").write_bytes(_pem("OPENSSH PRIVATE KEY", "later")[0])
    found = scrub.scan_changed(root, files, first, second)
    assert asked == [files, ["etc/f2"]]
    assert [r.path for r in found] == ["etc/f2"]
    # The file with the secret is read again next time (only clean files are remembered).
    scrub.scan_changed(root, files, second, third)
    assert asked[-1] == ["etc/f2"]
