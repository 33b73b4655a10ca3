"""Boot loader config text and ISO tool argv (livecd_tui.bootconf).

``grub-script-check`` (grub-common) is the oracle for grub.cfg syntax; shlex (POSIX rules,
which GRUB's quoting follows) checks that quoted words come back unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecd_tui import bootconf as b

ALL = ["normal", "toram", "debug"]
GENERATORS = [b.grub_cfg, b.isolinux_cfg, b.menu_lst]


Generator = Callable[..., str]


def cfg(
    gen: Generator,
    title: str = "Live CD",
    timeout: int = 5,
    entries: Any = ALL,
    cmdline: str = "quiet",
    serial: bool = True,
    speed: int = 115200,
    **kw: str,
) -> str:
    return gen(b.Menu(title, timeout, entries, cmdline, serial, speed, **kw))


def script_check(text: str, tmp_path: Path) -> None:
    """Fail unless grub-script-check accepts *text*."""
    tool = shutil.which("grub-script-check")
    assert tool, "grub-script-check (grub-common) is needed for the grub.cfg oracle"
    path = tmp_path / "grub.cfg"
    path.write_text(text)
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr + text


def menuentries(text: str) -> list[tuple[list[str], list[str]]]:
    """(menuentry words, linux words) of each entry, unquoted with POSIX rules."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("menuentry "):
            linux = next(x for x in lines[i + 1 :] if x.strip().startswith("linux "))
            found.append((shlex.split(line), shlex.split(linux)))
    return found


# ------------------------------------------------------------------------------------------
# grub.cfg
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entries", [["normal"], ["normal", "debug"], ALL, ["debug", "normal"]])
@pytest.mark.parametrize("serial", [True, False])
def test_grub_cfg_entries_and_syntax(entries: list[str], serial: bool, tmp_path: Path) -> None:
    text = cfg(b.grub_cfg, entries=entries, serial=serial)
    script_check(text, tmp_path)
    found = menuentries(text)
    assert [words[1] for words, _ in found] == [
        "Live CD" + b.ENTRY_SUFFIX[kind] for kind in entries
    ]
    for kind, (words, linux) in zip(entries, found, strict=True):
        assert f"--hotkey={b.GRUB_HOTKEY[kind]}" in words
        assert linux[:3] == ["linux", "/boot/vmlinuz", "quiet"]
        for arg in b.ENTRY_ARGS[kind]:
            assert arg in linux
        if serial:
            assert linux[-2:] == ["console=tty0", "console=ttyS0,115200"]
        else:
            assert not any(w.startswith("console=") for w in linux)
    assert "set default=0" in text and "set timeout=5" in text
    assert 'echo "livecd-tui: GRUB 2 for $grub_platform"' in text  # the boot tests read it
    assert text.count("initrd /boot/initrd.img") == len(entries)
    assert "search --no-floppy --set=root --file /LABEL" in text
    has_serial = "serial --unit=0 --speed=115200" in text
    assert has_serial is serial
    assert ("terminal_input serial console" in text) is serial
    assert ("terminal_output serial console" in text) is serial


def test_grub_cfg_entry_words() -> None:
    text = cfg(b.grub_cfg, cmdline="", serial=False)
    linux = {words[1]: lx for words, lx in menuentries(text)}
    assert linux["Live CD"] == ["linux", "/boot/vmlinuz"]
    assert linux["Live CD (copy to RAM)"] == ["linux", "/boot/vmlinuz", "livecd.toram"]
    assert linux["Live CD (debug shell)"] == [
        "linux",
        "/boot/vmlinuz",
        "livecd.debug",
        "livecd.verbose",
    ]


def test_grub_cfg_serial_speed_and_paths(tmp_path: Path) -> None:
    text = cfg(
        b.grub_cfg,
        speed=9600,
        kernel="/k/bz Image".replace(" ", ""),
        initrd="/k/i.gz",
        marker_file="/MARK",
    )
    script_check(text, tmp_path)
    assert "serial --unit=0 --speed=9600" in text
    assert "console=ttyS0,9600" in text
    assert "linux /k/bzImage" in text and "initrd /k/i.gz" in text
    assert "--file /MARK" in text


def test_grub_cfg_quotes_dangerous_title_and_cmdline(tmp_path: Path) -> None:
    title = 'Bob\'s $HOME; echo {x} | "live" # not a comment'
    text = cfg(b.grub_cfg, title=title, cmdline='quiet a$b c;d e{f} name="two words"')
    script_check(text, tmp_path)
    (words, linux), *_ = menuentries(text)
    assert words[1] == title
    # GRUB re-quotes an argument with a blank as "name=two words" for the kernel.
    assert linux[2:7] == ["quiet", "a$b", "c;d", "e{f}", "name=two words"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_grub_cfg_any_title_survives(title: str, tmp_path: Path) -> None:
    text = cfg(b.grub_cfg, title=title, entries=["normal"])
    script_check(text, tmp_path)
    assert menuentries(text)[0][0][1] == title


@pytest.mark.parametrize("gen", GENERATORS)
@pytest.mark.parametrize("field", ["title", "cmdline"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
def test_newlines_are_rejected(gen: Generator, field: str, bad: str) -> None:
    with pytest.raises(ValueError):
        if field == "title":
            cfg(gen, title=bad)
        else:
            cfg(gen, cmdline=bad)


@pytest.mark.parametrize("cmdline", ["it's", "back\\slash", 'unbalanced "quote'])
def test_grub_cfg_rejects_what_grub_would_mangle(cmdline: str) -> None:
    with pytest.raises(ValueError):
        cfg(b.grub_cfg, cmdline=cmdline)


@pytest.mark.parametrize("gen", GENERATORS)
@pytest.mark.parametrize("entries", [[], ["normal", "normal"], ["rescue"], "normal"])
def test_bad_entry_lists(gen: Generator, entries: Any) -> None:
    with pytest.raises(ValueError):
        cfg(gen, entries=entries)


@pytest.mark.parametrize("gen", GENERATORS)
def test_bad_numbers_and_paths(gen: Generator) -> None:
    with pytest.raises(ValueError):
        cfg(gen, timeout=-1)
    with pytest.raises(ValueError):
        cfg(gen, speed=0)
    with pytest.raises(ValueError):
        cfg(gen, kernel="boot/vmlinuz")
    with pytest.raises(ValueError):
        cfg(gen, initrd="/boot/init rd")


def test_grub_quote() -> None:
    assert b.grub_quote("plain/word-1.2") == "plain/word-1.2"
    assert b.grub_quote("") == "''"
    assert b.grub_quote("a b") == "'a b'"
    assert b.grub_quote("it's") == "'it'\\''s'"
    assert shlex.split(b.grub_quote("$x;'y'")) == ["$x;'y'"]


def test_split_kernel_cmdline() -> None:
    assert b.split_kernel_cmdline("  a  b=c d ") == ["a", "b=c", "d"]
    assert b.split_kernel_cmdline('x="1 2" y') == ['x="1 2"', "y"]
    assert b.split_kernel_cmdline("") == []
    with pytest.raises(ValueError):
        b.split_kernel_cmdline('x="1')
    with pytest.raises(ValueError):
        b.split_kernel_cmdline("a\tb")


def test_kernel_args_serial_console_is_last() -> None:
    assert b.kernel_args("quiet", "debug", True, 38400) == [
        "quiet",
        "livecd.debug",
        "livecd.verbose",
        "console=tty0",
        "console=ttyS0,38400",
    ]
    assert b.kernel_args("", "normal", False, 115200) == []


def test_grub_early_cfg(tmp_path: Path) -> None:
    text = b.grub_early_cfg()
    script_check(text, tmp_path)
    assert text == "search --no-floppy --set=root --file /LABEL\nset prefix=($root)/boot/grub\n"
    with pytest.raises(ValueError):
        b.grub_early_cfg("LABEL")


# ------------------------------------------------------------------------------------------
# isolinux.cfg and menu.lst
# ------------------------------------------------------------------------------------------


def test_isolinux_cfg() -> None:
    text = cfg(b.isolinux_cfg, title="My $Live 'CD'")
    lines = text.splitlines()
    assert lines[0] == "SERIAL 0 115200", "SERIAL must be the first directive"
    assert "DEFAULT live" in lines and "PROMPT 1" in lines and "TIMEOUT 50" in lines
    assert "SAY My $Live 'CD'" in lines
    for kind in ALL:
        assert f"LABEL {b.ENTRY_LABEL[kind]}" in lines
    appends = [x.strip() for x in lines if x.strip().startswith("APPEND ")]
    assert appends == [
        "APPEND quiet console=tty0 console=ttyS0,115200",
        "APPEND quiet livecd.toram console=tty0 console=ttyS0,115200",
        "APPEND quiet livecd.debug livecd.verbose console=tty0 console=ttyS0,115200",
    ]
    assert text.count("  LINUX /boot/vmlinuz") == 3
    assert text.count("  INITRD /boot/initrd.img") == 3


def test_isolinux_cfg_no_serial_no_timeout_default_first() -> None:
    text = cfg(b.isolinux_cfg, entries=["debug", "normal"], cmdline="", serial=False, timeout=0)
    lines = text.splitlines()
    assert not any(x.startswith("SERIAL") for x in lines)
    assert "DEFAULT debug" in lines
    assert "PROMPT 0" in lines, "ISOLINUX's TIMEOUT 0 would wait forever"
    assert "APPEND livecd.debug livecd.verbose" in [x.strip() for x in lines]
    # The normal entry has no APPEND at all.
    normal = text.split("LABEL live\n", 1)[1]
    assert "APPEND" not in normal


def test_menu_lst() -> None:
    text = cfg(b.menu_lst, entries=["normal", "toram"], cmdline="ramdisk_size=16384")
    lines = text.splitlines()
    assert lines[1:3] == ["serial --unit=0 --speed=115200", "terminal --timeout=0 serial"]
    assert "default 0" in lines and "timeout 5" in lines
    assert lines.count("root (cd)") == 2
    assert "title Live CD" in lines and "title Live CD (copy to RAM)" in lines
    assert (
        "kernel /boot/vmlinuz ramdisk_size=16384 livecd.toram console=tty0 console=ttyS0,115200"
    ) in lines
    assert lines.count("initrd /boot/initrd.img") == 2


def test_menu_lst_without_serial() -> None:
    text = cfg(b.menu_lst, entries=["normal"], cmdline="", serial=False)
    assert "serial" not in text and "terminal" not in text
    assert "kernel /boot/vmlinuz\n" in text


# ------------------------------------------------------------------------------------------
# argv builders
# ------------------------------------------------------------------------------------------


def test_grub_mkimage_argv() -> None:
    bios = b.grub_mkimage_bios_argv("/o/eltorito.img", early_config="/o/early.cfg")
    assert bios[:3] == ["grub-mkimage", "-d", "/usr/lib/grub/i386-pc"]
    assert bios[bios.index("-O") + 1] == "i386-pc-eltorito"
    assert bios[bios.index("-o") + 1] == "/o/eltorito.img"
    assert bios[bios.index("-p") + 1] == "/boot/grub"
    assert bios[bios.index("-c") + 1] == "/o/early.cfg"
    assert {"biosdisk", "iso9660", "linux", "normal", "serial", "search_fs_file"} <= set(bios)
    efi = b.grub_mkimage_efi_argv(Path("/o/BOOTX64.EFI"))
    assert efi[efi.index("-O") + 1] == "x86_64-efi"
    assert "-c" not in efi and "biosdisk" not in efi
    assert {"fat", "part_gpt", "iso9660", "efi_gop", "all_video"} <= set(efi)


@pytest.mark.parametrize(
    ("modules", "platform"),
    [(b.GRUB_BIOS_MODULES, b.GRUB_I386_PC_DIR), (b.GRUB_EFI_MODULES, b.GRUB_X86_64_EFI_DIR)],
)
def test_grub_modules_exist(modules: tuple[str, ...], platform: Path) -> None:
    assert platform.is_dir(), f"{platform} (grub-pc-bin / grub-efi-amd64-bin) is needed"
    missing = [m for m in modules if not (platform / f"{m}.mod").is_file()]
    assert not missing


def test_isolinux_files_exist() -> None:
    for src, dest in b.ISOLINUX_FILES:
        assert src.is_file(), src
        assert dest.startswith("isolinux/")
    assert b.ISOHYBRID_MBR.is_file()
    assert b.GRUB_HYBRID_MBR.is_file()


def test_efi_fat_image_steps() -> None:
    steps = b.efi_fat_image_steps("boot/efi.img", "tree", 8192)
    assert steps == [
        [
            "mformat",
            "-i",
            "boot/efi.img",
            "-C",
            "-T",
            "8192",
            "-h",
            "2",
            "-s",
            "32",
            "-N",
            "4c495645",
            "::",
        ],
        ["mcopy", "-i", "boot/efi.img", "-s", "-m", "tree/EFI", "::/"],
    ]
    assert "-v" not in steps[0], "a volume label would carry the current time"
    with pytest.raises(ValueError):
        b.efi_fat_image_steps("efi.img", "tree", 8192, serial="xyz")
    with pytest.raises(ValueError):
        b.efi_fat_image_steps("efi.img", "tree", 1000)
    # mtools runs a name holding a shell character through sh -c: such names are refused.
    for bad in ("/o/efi.img", "w$(touch x)/efi.img", "a`b`", "~/efi.img", "x*.img"):
        with pytest.raises(ValueError, match="mtools"):
            b.efi_fat_image_steps(bad, "tree", 8192)


def test_mtools_names_that_pass_are_not_run_by_a_shell(tmp_path: Path) -> None:
    """The characters mtools expands through sh -c are exactly those refused: a name made
    of every other printable character creates no canary (and one with $(...) would)."""
    if not shutil.which("mformat"):
        pytest.skip("mtools is not installed")
    canary = tmp_path / "canary"
    others = "".join(c for c in map(chr, range(33, 127)) if c not in b.MTOOLS_EXPANDED and c != "/")
    env = {**os.environ, "CANARY": str(canary)}

    def mformat(name: str) -> None:
        subprocess.run(
            ["mformat", "-i", name, "-C", "-T", "2880", "-h", "2", "-s", "32", "::"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            check=False,
        )

    mformat(b.mtools_safe_name(f"x {others};touch canary;.img"))
    assert not canary.exists() and not (tmp_path / "canary").exists()
    mformat("$(touch $CANARY)")  # the control: the attack works on a name not checked
    assert canary.exists(), "mtools no longer expands names: the check is moot"


def test_xorriso_grub2_hybrid_efi() -> None:
    argv = b.xorriso_grub2_argv(
        "/t", "/o.iso", "LIVE", hybrid=True, efi=True, efi_image="/w/efi.img", epoch=1700000000
    )
    assert argv[:3] == ["xorriso", "-as", "mkisofs"]
    assert argv[-1] == "/t"
    assert argv[argv.index("-o") + 1] == "/o.iso"
    assert argv[argv.index("-V") + 1] == "LIVE"
    assert argv[argv.index("-b") + 1] == "boot/grub/i386-pc/eltorito.img"
    i = argv.index("-b")
    assert argv[i + 2 : i + 7] == [
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
        "--grub2-boot-info",
    ]
    assert argv[argv.index("--grub2-mbr") + 1] == "/usr/lib/grub/i386-pc/boot_hybrid.img"
    j = argv.index("-append_partition")
    assert argv[j : j + 5] == [
        "-append_partition",
        "2",
        "0xef",
        "/w/efi.img",
        "-appended_part_as_gpt",
    ]
    k = argv.index("-eltorito-alt-boot")
    assert argv[k : k + 4] == [
        "-eltorito-alt-boot",
        "-e",
        "--interval:appended_partition_2:all::",
        "-no-emul-boot",
    ]
    assert "--modification-date=2023111422132000" in argv
    assert argv[argv.index("--set_all_file_dates") + 1] == "=1700000000"


def test_xorriso_grub2_defaults_efi_image_in_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    argv = b.xorriso_grub2_argv(Path("/t"), Path("/o.iso"), "LIVE", hybrid=True)
    assert argv[argv.index("-append_partition") + 3] == "/t/boot/grub/efi.img"
    assert "--modification-date=1970010200000000" in argv, "epoch from the environment"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert "--set_all_file_dates" not in b.xorriso_grub2_argv("/t", "/o.iso", "L", hybrid=True)


def test_xorriso_grub2_not_hybrid() -> None:
    argv = b.xorriso_grub2_argv("/t", "/o.iso", "LIVE", hybrid=False, efi=True)
    assert "--grub2-mbr" not in argv and "-append_partition" not in argv
    k = argv.index("-eltorito-alt-boot")
    assert argv[k : k + 4] == ["-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot"]
    bios_only = b.xorriso_grub2_argv("/t", "/o.iso", "LIVE", hybrid=False, efi=False)
    assert "-eltorito-alt-boot" not in bios_only


def test_grub2_with_genisoimage() -> None:
    argv = b.xorriso_grub2_argv("/t", "/o.iso", "LIVE", hybrid=False, tool="genisoimage", epoch=5)
    assert argv[0] == "genisoimage"
    assert "--grub2-boot-info" not in argv and "--set_all_file_dates" not in argv
    with pytest.raises(ValueError):
        b.xorriso_grub2_argv("/t", "/o.iso", "LIVE", hybrid=True, tool="genisoimage")
    with pytest.raises(ValueError):
        b.xorriso_grub2_argv("/t", "/o.iso", "LIVE", hybrid=False, tool="cdrecord")


def test_xorriso_isolinux_argv() -> None:
    argv = b.xorriso_isolinux_argv("/t", "/o.iso", "LIVE", hybrid=True, efi=True, epoch=0)
    assert argv[:3] == ["xorriso", "-as", "mkisofs"]
    assert argv[argv.index("-isohybrid-mbr") + 1] == "/usr/lib/ISOLINUX/isohdpfx.bin"
    assert argv[argv.index("-c") + 1] == "isolinux/boot.cat"
    i = argv.index("-b")
    assert argv[i : i + 6] == [
        "-b",
        "isolinux/isolinux.bin",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
    ]
    assert argv[argv.index("-e") + 1] == "boot/grub/efi.img"
    assert "-isohybrid-gpt-basdat" in argv
    plain = b.xorriso_isolinux_argv("/t", "/o.iso", "LIVE", hybrid=False)
    assert "-isohybrid-mbr" not in plain and "-e" not in plain
    assert b.xorriso_isolinux_argv("/t", "/o.iso", "L", hybrid=False, tool="mkisofs")[0] == (
        "mkisofs"
    )
    with pytest.raises(ValueError):
        b.xorriso_isolinux_argv("/t", "/o.iso", "L", hybrid=True, tool="mkisofs")


@pytest.mark.parametrize(
    ("tool", "head"),
    [
        ("genisoimage", ["genisoimage"]),
        ("mkisofs", ["mkisofs"]),
        ("xorriso", ["xorriso", "-as", "mkisofs"]),
    ],
)
def test_mkisofs_grub_legacy_argv(
    tool: str, head: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    argv = b.mkisofs_grub_legacy_argv(tool, Path("/t"), Path("/o.iso"), "LIVECD")
    assert argv == [
        *head,
        "-R",
        "-b",
        "boot/grub/stage2_eltorito",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
        "-V",
        "LIVECD",
        "-A",
        "LIVECD-TUI",
        "-o",
        "/o.iso",
        "/t",
    ]
    dated = b.mkisofs_grub_legacy_argv(tool, Path("/t"), Path("/o.iso"), "LIVECD", epoch=1000)
    extra = b.xorriso_date_args(1000) if tool == "xorriso" else []
    assert dated == [*argv[:-1], *extra, "/t"]


@pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso")
def test_grub_legacy_iso_by_xorriso_is_the_same_bytes_twice(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "stage2_eltorito").write_bytes(bytes(4096))  # patched in place
    (tree / "boot" / "grub" / "menu.lst").write_text("title Live\n")
    images = []
    for run in range(2):
        os.utime(tree / "boot" / "grub" / "menu.lst", (1e9 + run, 1e9 + run))
        out = tmp_path / f"{run}.iso"
        argv = b.mkisofs_grub_legacy_argv("xorriso", tree, out, "LIVECD", epoch=1700000000)
        subprocess.run(argv, check=True, capture_output=True)
        images.append(out.read_bytes())
        time.sleep(1.1)  # a second later: the volume dates would differ
    assert images[0] == images[1]


def test_bad_tool_and_label() -> None:
    with pytest.raises(ValueError):
        b.mkisofs_grub_legacy_argv("cdrkit", "/t", "/o.iso", "L")
    with pytest.raises(ValueError):
        b.mkisofs_grub_legacy_argv("xorriso", "/t", "/o.iso", "X" * 33)
    with pytest.raises(ValueError):
        b.xorriso_grub2_argv("/t", "/o.iso", "a\nb", hybrid=False)
    with pytest.raises(ValueError):
        b.xorriso_isolinux_argv("/t", "/o.iso", "", hybrid=False)


def test_grub2_image_steps_shape(tmp_path: Path) -> None:
    steps = b.grub2_image_steps(tmp_path, epoch=1700000000)
    argvs = [argv for argv, _, _ in steps]
    assert all(isinstance(d, str) and d for _, d, _ in steps)
    assert [a[0] for a in argvs] == [
        "mkdir",
        "sh",
        "grub-mkimage",
        "grub-mkimage",
        "touch",
        "rm",
        "mformat",
        "mcopy",
    ]
    assert argvs[1][-2] == b.grub_early_cfg()
    assert argvs[2][argvs[2].index("-o") + 1] == str(tmp_path / b.GRUB_ELTORITO_IMG)
    assert argvs[3][argvs[3].index("-o") + 1] == str(tmp_path / b.EFI_BOOT_BINARY)
    assert "@1700000000" in argvs[4]
    # mtools gets names relative to the tree it runs in, never the (user-named) work dir.
    assert [cwd for _, _, cwd in steps[-2:]] == [tmp_path, tmp_path]
    assert not any(str(tmp_path) in arg for argv in argvs[-2:] for arg in argv)
    no_efi = [a[0] for a, _, _ in b.grub2_image_steps(tmp_path, efi=False)]
    assert no_efi == ["mkdir", "sh", "grub-mkimage"]


def _run_steps(out: Path, epoch: int) -> None:
    for argv, describe, cwd in b.grub2_image_steps(out, epoch=epoch):
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, f"{describe}: {argv}\n{proc.stderr}"


def test_grub2_image_steps_run_and_are_reproducible(tmp_path: Path) -> None:
    """The real tools: both images are made, and the FAT image is byte-identical twice."""
    for tool in ("grub-mkimage", "mformat", "mcopy", "mdir"):
        assert shutil.which(tool), f"{tool} is needed (grub-common, mtools)"
    # One tree where the work dir's name holds what a shell would run: mtools must not.
    one, two = tmp_path / "one $(touch canary) `touch canary`", tmp_path / "two"
    _run_steps(one, 1700000000)
    _run_steps(two, 1700000000)
    for rel in (b.GRUB_ELTORITO_IMG, b.EFI_BOOT_BINARY, b.EFI_IMAGE_IN_ISO):
        first, second = (one / rel).read_bytes(), (two / rel).read_bytes()
        assert first, rel
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest(), rel
    assert (one / "boot/grub/early.cfg").read_text() == b.grub_early_cfg()
    listing = subprocess.run(
        ["mdir", "-i", b.EFI_IMAGE_IN_ISO, "-b", "::/EFI/BOOT"],
        cwd=one,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BOOTX64.EFI" in listing.upper()
    assert not list(tmp_path.rglob("canary")) and not (Path.cwd() / "canary").exists()


@pytest.mark.parametrize(
    ("entries", "wanted"),
    [
        (["normal", "toram", "debug"], ["toram", "normal", "debug"]),
        (["normal", "debug"], ["toram", "normal", "debug"]),
        (["toram"], ["toram"]),
    ],
)
def test_copy_to_ram_makes_the_toram_entry_the_default_and_only_it_copies(
    entries: list[str], wanted: list[str]
) -> None:
    from livecd_tui.build import Build
    from livecd_tui.profile import new_profile
    from livecd_tui.stages import bootloader

    profile = new_profile()
    profile.set("bootloader.entries", entries)
    profile.set("writable.copy_to_ram", True)
    build = Build(profile=profile, work=Path("/nonexistent"))
    assert bootloader.menu_entries(build) == wanted
    _path, text = bootloader.config_text(build)
    words = [lx for _title, lx in menuentries(text)]
    assert ["livecd.toram" in w for w in words] == [e == "toram" for e in wanted]
    profile.set("writable.copy_to_ram", False)
    assert bootloader.menu_entries(build) == entries


def test_livecd_conf_records_the_layers_and_media_sums_the_same_way_as_its_bash(
    tmp_path: Path,
) -> None:
    """livecd.conf's last lines name the system image's layers and hold the sha256 of each
    image the check entry verifies; the exported script's lines write the same bytes."""
    from livecd_tui import layers, media
    from livecd_tui.build import Build
    from livecd_tui.profile import new_profile

    profile = new_profile()
    profile.set("writable.strategy", "classic")
    build = Build(profile=profile, work=tmp_path / "work")
    assert [on_cd for on_cd, _ in media.media_files(build)] == [
        "/live/system.squashfs",
        "/live/etc.tar.bz2",
    ], "no system stage yet: the base alone"
    system = build.done_dir("system")
    system.mkdir(parents=True)
    state = layers.State("key")
    for n, name in enumerate((layers.BASE, layers.layer_name(1), layers.layer_name(2))):
        (system / name).write_bytes(f"image {n}\n".encode() * 1000)
        digest = hashlib.sha256((system / name).read_bytes()).hexdigest()
        state.images.append(layers.Image(name, 7000, digest, n))
    state.save(system / layers.STATE)
    (system / layers.SUMS).write_text("".join(f"{i.sha256}  {i.file}\n" for i in state.images))
    files = media.media_files(build)
    assert [on_cd for on_cd, _ in files] == [
        "/live/system.squashfs",
        "/live/layer-01.squashfs",
        "/live/layer-02.squashfs",
        "/live/etc.tar.bz2",
    ]
    files[-1][1].parent.mkdir(parents=True)
    files[-1][1].write_bytes(b"archive\n")
    text = media.media_conf(build)
    sums = "\n".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {on_cd}" for on_cd, path in files
    )
    assert text == (
        f"LIVECD_LAYERS='/live/layer-01.squashfs /live/layer-02.squashfs'\nLIVECD_SUMS='{sums}'\n"
    )
    conf = tmp_path / "livecd.conf"
    conf.write_text("")
    subprocess.run(["bash", "-euc", "\n".join(media.media_conf_lines(build, conf))], check=True)
    assert conf.read_text() == text
    # The overlay method without /etc overrides and one image: no layers, no archive.
    profile.set("writable.strategy", "overlay")
    (system / layers.STATE).unlink()
    (system / layers.SUMS).write_text(f"{state.images[0].sha256}  {layers.BASE}\n")
    assert [on_cd for on_cd, _ in media.media_files(build)] == ["/live/system.squashfs"]
    text = media.media_conf(build)
    assert text.startswith("LIVECD_LAYERS=''\nLIVECD_SUMS='")
    conf.write_text("")
    subprocess.run(["bash", "-euc", "\n".join(media.media_conf_lines(build, conf))], check=True)
    assert conf.read_text() == text


def test_check_entry_passes_livecd_check() -> None:
    text = cfg(b.grub_cfg, timeout=0, entries=["check", "normal"], cmdline="", serial=False)
    words, linux = menuentries(text)[0]
    assert words[1:4] == ["Live CD (check the medium)", "--hotkey=m", "--id=livecd-check"]
    assert linux == ["linux", "/boot/vmlinuz", "livecd.check"]
    assert "LABEL check" in cfg(
        b.isolinux_cfg, timeout=0, entries=["check"], cmdline="", serial=False
    )
