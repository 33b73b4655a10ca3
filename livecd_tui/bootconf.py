"""Boot loader configuration text and ISO tool command lines.

Everything here is a pure function of plain parameters: config file text for GRUB 2
(``grub.cfg``), ISOLINUX (``isolinux.cfg``) and GRUB legacy (``menu.lst``), and argv lists
(never shell strings) for ``grub-mkimage``, ``mformat``/``mcopy`` and ``xorriso``/``mkisofs``.
The build stages write the text to files and run the argv lists; nothing here touches the disk.

The commands were checked by hand on Debian 12 (GRUB 2.06, xorriso 1.5.4, mtools 4.0.32,
ISOLINUX 6.04): the GRUB hybrid ISO boots from BIOS and UEFI, as a CD and as a USB disk, and
two builds with the same ``SOURCE_DATE_EPOCH`` are byte-identical.

The ISO's layout (kernel, initrd, marker, system image, the loaders' directories) is
:mod:`livecd_tui.layout`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from livecd_tui import layout

# --------------------------------------------------------------------------------------------
# Boot menu entries
# --------------------------------------------------------------------------------------------

#: The menu entries a live ISO can offer, in menu order.
ENTRY_KINDS: tuple[str, ...] = ("normal", "toram", "check", "debug", "nopersist")

#: Kernel command line words each entry adds (read by the initramfs /init, see the contract).
ENTRY_ARGS: dict[str, tuple[str, ...]] = {
    "normal": (),
    "toram": ("livecd.toram",),
    "check": ("livecd.check",),
    "debug": ("livecd.debug", "livecd.verbose"),
    "nopersist": ("livecd.nopersist",),
}

#: Text appended to the title for each entry.
ENTRY_SUFFIX: dict[str, str] = {
    "normal": "",
    "toram": " (copy to RAM)",
    "check": " (check the medium)",
    "debug": " (debug shell)",
    "nopersist": " (without persistence)",
}

#: ISOLINUX labels (typed at the ``boot:`` prompt) and GRUB 2 hotkeys of the entries.
ENTRY_LABEL: dict[str, str] = {
    "normal": "live",
    "toram": "toram",
    "check": "check",
    "debug": "debug",
    "nopersist": "nopersist",
}
#: ("c" is GRUB's command line: the check entry's key is "m", for media.)
GRUB_HOTKEY: dict[str, str] = {
    "normal": "l",
    "toram": "t",
    "check": "m",
    "debug": "d",
    "nopersist": "n",
}

# --------------------------------------------------------------------------------------------
# Paths on the ISO and on a Debian build host
# --------------------------------------------------------------------------------------------

# The kernel, initrd, marker and loader directories are livecd_tui.layout's; these are the
# loaders' own files in those directories, named as xorriso takes them (inside the tree).
_GRUB_DIR = layout.relative(layout.GRUB_DIR)
_ISOLINUX_DIR = layout.relative(layout.ISOLINUX_DIR)
#: BIOS El Torito boot image (GRUB core made with ``-O i386-pc-eltorito``), inside the ISO.
GRUB_ELTORITO_IMG = f"{_GRUB_DIR}/i386-pc/eltorito.img"
GRUB_BOOT_CATALOG = f"{_GRUB_DIR}/boot.cat"
#: Where the EFI FAT image goes inside the ISO when it is not an appended partition.
EFI_IMAGE_IN_ISO = f"{_GRUB_DIR}/efi.img"
#: Name UEFI firmware looks for on removable media (x86-64).
EFI_BOOT_BINARY = "EFI/BOOT/BOOTX64.EFI"
ISOLINUX_BIN_IN_ISO = f"{_ISOLINUX_DIR}/isolinux.bin"
ISOLINUX_BOOT_CATALOG = f"{_ISOLINUX_DIR}/boot.cat"
STAGE2_ELTORITO_IN_ISO = layout.relative(layout.STAGE2_ELTORITO)

#: GRUB 2 platform directories (grub-pc-bin, grub-efi-amd64-bin).
GRUB_I386_PC_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_X86_64_EFI_DIR = Path("/usr/lib/grub/x86_64-efi")
#: MBR of a GRUB hybrid ISO: loads the El Torito core from the ISO when booted as a disk.
GRUB_HYBRID_MBR = GRUB_I386_PC_DIR / "boot_hybrid.img"
#: isohybrid MBR of ISOLINUX (Debian: package isolinux).
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")

#: Files an ISOLINUX ISO needs: (path on a Debian host, path inside the ISO).
#: isolinux.bin is the El Torito boot image; ldlinux.c32 is its core module, which it loads
#: from its own directory before it can read isolinux.cfg. Nothing else is needed for a
#: ``boot:`` prompt (a graphical menu would add menu.c32, libutil.c32, libcom32.c32).
ISOLINUX_FILES: tuple[tuple[Path, str], ...] = (
    (Path("/usr/lib/ISOLINUX/isolinux.bin"), ISOLINUX_BIN_IN_ISO),
    (Path("/usr/lib/syslinux/modules/bios/ldlinux.c32"), f"{_ISOLINUX_DIR}/ldlinux.c32"),
)

# GRUB modules linked into the core images. The images are self-contained: no module
# directory is copied to the ISO, so every command grub.cfg uses must be in this list.
GRUB_COMMON_MODULES: tuple[str, ...] = (
    "normal",  # menu and grub.cfg interpreter (menuentry, set, if)
    "configfile",  # configfile/source, for a user who wants to load another config by hand
    "search",  # search command: the early config finds the ISO by its marker file
    "search_fs_file",  # search --file
    "search_label",  # search --label
    "search_fs_uuid",  # search --fs-uuid
    "linux",  # linux and initrd commands (bzImage boot protocol)
    "echo",  # messages
    "test",  # [ ... ] in the early config and grub.cfg
    "serial",  # serial --unit --speed
    "terminal",  # terminal_input / terminal_output
    "ls",  # rescue: list devices and files at the grub> prompt
    "cat",  # rescue: look at files
    "halt",  # rescue: power off
    "reboot",  # rescue: restart
    "iso9660",  # the ISO filesystem (grub.cfg, kernel and initrd live on it)
    "part_msdos",  # MBR partition table of the hybrid image on a USB disk
    "part_gpt",  # GPT of the hybrid image (EFI system partition appended as GPT)
    "fat",  # the EFI system partition / El Torito EFI image
)
#: BIOS core: adds the BIOS disk driver (CD and USB disk through INT 13h).
GRUB_BIOS_MODULES: tuple[str, ...] = ("biosdisk", *GRUB_COMMON_MODULES)
#: UEFI core: firmware disks need no driver; add video so Linux gets a framebuffer (efifb).
GRUB_EFI_MODULES: tuple[str, ...] = (
    *GRUB_COMMON_MODULES,
    "all_video",  # efi_gop, efi_uga and the rest: sets a mode Linux can use for efifb
    "efi_gop",  # explicit: UEFI Graphics Output Protocol
)

#: Size of the EFI FAT image in 512-byte sectors (4 MiB): GRUB's BOOTX64.EFI with the
#: modules above is about 0.7 MB; the rest leaves room for more modules or a shim.
EFI_FAT_SECTORS = 8192
#: Fixed FAT volume serial of the EFI image (mformat -N), so the image is reproducible.
FAT_SERIAL = "4c495645"
#: FAT image geometry used by mformat: heads and sectors per track (sectors of 512 bytes).
FAT_HEADS = 2
FAT_SECTORS_PER_TRACK = 32

# --------------------------------------------------------------------------------------------
# Validation and quoting
# --------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GRUB_SAFE = re.compile(r"[A-Za-z0-9_./,:=+@%^-]+")


def _check_text(what: str, value: str) -> str:
    """Return *value*, or raise ValueError if it holds a newline or another control char."""
    if _CONTROL.search(value):
        raise ValueError(f"{what} must be one line without control characters: {value!r}")
    return value


def _check_path(what: str, value: str) -> str:
    """Check a path used on a loader line: one line, absolute, no blanks."""
    _check_text(what, value)
    if not value.startswith("/") or re.search(r"\s", value):
        raise ValueError(f"{what} must be an absolute path without blanks: {value!r}")
    return value


def _check_entries(entries: Sequence[str]) -> list[str]:
    """Validate an entry list: known kinds, no duplicates, at least one."""
    if isinstance(entries, str):
        raise ValueError("entries must be a sequence of entry kinds, not a string")
    result = list(entries)
    if not result:
        raise ValueError("at least one boot menu entry is needed")
    for kind in result:
        if kind not in ENTRY_ARGS:
            raise ValueError(f"unknown entry {kind!r}; choose from {', '.join(ENTRY_KINDS)}")
    if len(set(result)) != len(result):
        raise ValueError(f"duplicate entries in {result!r}")
    return result


def _check_common(timeout: int, serial_speed: int) -> None:
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
    if serial_speed <= 0:
        raise ValueError(f"serial speed must be positive, not {serial_speed}")


def grub_quote(word: str) -> str:
    """Quote *word* as one word of GRUB 2 script.

    Plain words stay bare; anything else is single-quoted, where GRUB (like sh) expands
    nothing. A single quote becomes ``'\\''``. Newlines are rejected.
    """
    _check_text("GRUB word", word)
    if _GRUB_SAFE.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def split_kernel_cmdline(cmdline: str) -> list[str]:
    """Split a kernel command line into words the way the kernel does.

    Blanks separate words except inside double quotes (``name="a b"`` is one word).
    Raises ValueError on control characters or an unbalanced double quote.
    """
    _check_text("kernel command line", cmdline)
    words: list[str] = []
    current: list[str] = []
    in_quote = False
    for char in cmdline:
        if char == '"':
            in_quote = not in_quote
            current.append(char)
        elif char.isspace() and not in_quote:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if in_quote:
        raise ValueError(f"unbalanced double quote in kernel command line: {cmdline!r}")
    if current:
        words.append("".join(current))
    return words


def kernel_args(cmdline: str, entry: str, serial: bool, serial_speed: int) -> list[str]:
    """Kernel command line words for one menu entry.

    The build's *cmdline*, then the entry's words (``livecd.toram``...), then, with *serial*,
    ``console=tty0 console=ttyS0,SPEED``: the last console= is /dev/console, so the init
    scripts and the rescue shell talk on the serial port.
    """
    if entry not in ENTRY_ARGS:
        raise ValueError(f"unknown entry {entry!r}")
    words = split_kernel_cmdline(cmdline)
    words += ENTRY_ARGS[entry]
    if serial:
        words += ["console=tty0", f"console=ttyS0,{serial_speed}"]
    return words


def _grub_kernel_word(word: str) -> str:
    """Render one kernel word for a GRUB 2 ``linux`` line.

    GRUB 2.06 rebuilds the command line from its arguments: it wraps an argument holding a
    blank in double quotes and puts a backslash before every ``"``, ``'`` and ``\\``, which
    the kernel does not remove (checked in QEMU). So a kernel-quoted word ``name="a b"`` is
    given to GRUB unquoted (``name=a b``), which GRUB passes as ``"name=a b"``, the same for
    the kernel; single quotes and backslashes cannot be passed and raise ValueError.
    """
    if "'" in word or "\\" in word:
        raise ValueError(
            f"GRUB 2 cannot pass {word!r} to the kernel unchanged (it adds backslashes "
            "before quotes and backslashes)"
        )
    return grub_quote(word.replace('"', ""))


def _validate_label(volume_label: str) -> str:
    _check_text("volume label", volume_label)
    if not 1 <= len(volume_label) <= 32 or not volume_label.isascii():
        raise ValueError(f"volume label must be 1 to 32 ASCII characters: {volume_label!r}")
    return volume_label


# --------------------------------------------------------------------------------------------
# Config text
# --------------------------------------------------------------------------------------------


def grub_early_cfg(marker_file: str = layout.MARKER, prefix: str = layout.GRUB_DIR) -> str:
    """Config embedded in the GRUB core images (``grub-mkimage -c``).

    Booted from the EFI system partition of a USB disk, GRUB's root is that FAT partition,
    where there is no grub.cfg: without this it stops at ``grub>`` (checked in QEMU). The
    search finds the ISO filesystem by its marker file and points the prefix at it.
    """
    _check_path("marker file", marker_file)
    _check_path("GRUB prefix", prefix)
    return (
        f"search --no-floppy --set=root --file {grub_quote(marker_file)}\n"
        f"set prefix=($root){grub_quote(prefix)}\n"
    )


@dataclass(frozen=True)
class Menu:
    """What a boot menu says, whichever loader writes it: built once by the bootloader stage
    from the profile, written by :func:`grub_cfg`, :func:`isolinux_cfg` or :func:`menu_lst`.

    *entries* are kinds from :data:`ENTRY_KINDS`; the first is the default. *timeout* is in
    seconds (0 boots the default at once). *cmdline* is the build's kernel command line; each
    entry adds its words (:func:`kernel_args`). With *serial* the menu is on the serial port
    too and the kernel gets a serial console at *serial_speed*. *kernel* and *initrd* are
    paths on the CD; *marker_file* is the file GRUB 2 finds the CD by (ISOLINUX and GRUB
    legacy boot from the medium they were loaded from).
    """

    title: str
    timeout: int
    entries: Sequence[str]
    cmdline: str
    serial: bool
    serial_speed: int
    kernel: str = layout.KERNEL
    initrd: str = layout.INITRD
    marker_file: str = layout.MARKER

    def kinds(self) -> list[str]:
        """The checks every menu generator makes; the entry kinds, in order."""
        _check_text("title", self.title)
        _check_common(self.timeout, self.serial_speed)
        kinds = _check_entries(self.entries)
        _check_path("kernel", self.kernel)
        _check_path("initrd", self.initrd)
        return kinds

    def kernel_args(self, entry: str) -> list[str]:
        """Kernel command line words for one entry (:func:`kernel_args`)."""
        return kernel_args(self.cmdline, entry, self.serial, self.serial_speed)


def grub_cfg(menu: Menu) -> str:
    """Text of a GRUB 2 ``grub.cfg`` for the live ISO.

    With *serial* the menu is shown on the serial port and the screen. Titles and command
    line words are single-quoted where needed, so ``'``, ``$``, ``;`` cannot break the
    script; the CD is found by the menu's *marker_file*.
    """
    kinds = menu.kinds()
    _check_path("marker file", menu.marker_file)
    lines = ["# grub.cfg written by livecd-tui", ""]
    if menu.serial:
        lines += [
            f"serial --unit=0 --speed={menu.serial_speed}",
            "terminal_input serial console",
            "terminal_output serial console",
        ]
    lines += [
        # Which GRUB image runs ("pc" or "efi"): the boot tests read it on the console.
        'echo "livecd-tui: GRUB 2 for $grub_platform"',
        "set default=0",
        f"set timeout={menu.timeout}",
        f"search --no-floppy --set=root --file {grub_quote(menu.marker_file)}",
        "",
    ]
    for kind in kinds:
        words = [_grub_kernel_word(w) for w in menu.kernel_args(kind)]
        lines += [
            f"menuentry {grub_quote(menu.title + ENTRY_SUFFIX[kind])} "
            f"--hotkey={GRUB_HOTKEY[kind]} --id=livecd-{kind} {{",
            "\t" + " ".join(["linux", grub_quote(menu.kernel), *words]),
            f"\tinitrd {grub_quote(menu.initrd)}",
            "}",
            "",
        ]
    return "\n".join(lines)


def isolinux_cfg(menu: Menu) -> str:
    """Text of an ISOLINUX ``isolinux.cfg``: a ``boot:`` prompt, no menu module needed.

    Labels are ``live``, ``toram``, ``check``, ``debug`` (:data:`ENTRY_LABEL`); the first entry is
    the default. ``SERIAL`` must be the first directive. ISOLINUX counts the timeout in tenths
    of a second and takes 0 as "wait forever", so a 0 s timeout is written as ``PROMPT 0``
    (boot the default unless Shift/Alt is held). APPEND is passed to the kernel as written.
    """
    kinds = menu.kinds()
    lines = []
    if menu.serial:
        lines.append(f"SERIAL 0 {menu.serial_speed}")
    labels = ", ".join(ENTRY_LABEL[k] for k in kinds)
    lines += [
        "# isolinux.cfg written by livecd-tui",
        f"DEFAULT {ENTRY_LABEL[kinds[0]]}",
        f"PROMPT {1 if menu.timeout > 0 else 0}",
        f"TIMEOUT {menu.timeout * 10}",
        f"SAY {menu.title}",
        f"SAY Type one of: {labels} (then Enter). Default: {ENTRY_LABEL[kinds[0]]}.",
        "",
    ]
    for kind in kinds:
        args = " ".join(menu.kernel_args(kind))
        lines += [
            f"LABEL {ENTRY_LABEL[kind]}",
            f"  MENU LABEL {menu.title}{ENTRY_SUFFIX[kind]}",
            f"  LINUX {menu.kernel}",
            f"  INITRD {menu.initrd}",
        ]
        if args:
            lines.append(f"  APPEND {args}")
        lines.append("")
    return "\n".join(lines)


def menu_lst(menu: Menu) -> str:
    """Text of a GRUB legacy (0.97) ``menu.lst`` for an El Torito CD (``stage2_eltorito``).

    The CD is the device ``(cd)``. With *serial*, ``serial --unit=0 --speed=N`` and
    ``terminal --timeout=0 serial`` put the menu on the serial port. GRUB legacy passes the
    rest of a ``title`` or ``kernel`` line as written, so only newlines are rejected.
    """
    kinds = menu.kinds()
    lines = ["# menu.lst written by livecd-tui"]
    if menu.serial:
        lines += [f"serial --unit=0 --speed={menu.serial_speed}", "terminal --timeout=0 serial"]
    lines += ["default 0", f"timeout {menu.timeout}", ""]
    for kind in kinds:
        args = " ".join(menu.kernel_args(kind))
        lines += [
            f"title {menu.title}{ENTRY_SUFFIX[kind]}",
            "root (cd)",
            f"kernel {menu.kernel}" + (f" {args}" if args else ""),
            f"initrd {menu.initrd}",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command lines (argv lists)
# --------------------------------------------------------------------------------------------


def grub_mkimage_bios_argv(
    out: Path | str,
    prefix: str = layout.GRUB_DIR,
    early_config: Path | str | None = None,
    modules: Sequence[str] = GRUB_BIOS_MODULES,
    grub_dir: Path | str = GRUB_I386_PC_DIR,
) -> list[str]:
    """argv of ``grub-mkimage`` for the BIOS El Torito core (``i386-pc-eltorito``).

    The same image also boots the hybrid ISO from a USB disk: ``boot_hybrid.img`` in the MBR
    loads it (xorriso ``--grub2-boot-info`` patches its location). *early_config* is the
    file written from :func:`grub_early_cfg`.
    """
    argv = ["grub-mkimage", "-d", str(grub_dir), "-O", "i386-pc-eltorito", "-o", str(out)]
    argv += ["-p", prefix]
    if early_config is not None:
        argv += ["-c", str(early_config)]
    return argv + list(modules)


def grub_mkimage_efi_argv(
    out: Path | str,
    prefix: str = layout.GRUB_DIR,
    early_config: Path | str | None = None,
    modules: Sequence[str] = GRUB_EFI_MODULES,
    grub_dir: Path | str = GRUB_X86_64_EFI_DIR,
) -> list[str]:
    """argv of ``grub-mkimage`` for the UEFI image (``x86_64-efi``), to become BOOTX64.EFI.

    Give it *early_config* (:func:`grub_early_cfg`): from a USB disk the image starts on the
    EFI system partition and must search for the ISO filesystem.
    """
    argv = ["grub-mkimage", "-d", str(grub_dir), "-O", "x86_64-efi", "-o", str(out)]
    argv += ["-p", prefix]
    if early_config is not None:
        argv += ["-c", str(early_config)]
    return argv + list(modules)


#: Characters that make mtools pass a drive's file name to ``sh -c "echo NAME"`` to expand
#: it (mtools 4.0.32, expand.c): a path holding one would run as a command.
MTOOLS_EXPANDED = frozenset("$*(){}[]\\?`~")


def mtools_safe_name(name: str) -> str:
    """*name* if mtools takes it literally as an image file name, else ValueError.

    mtools expands an image path that holds a shell character by running it through
    ``sh -c``, so its commands get a fixed relative name and run in the image's directory.
    """
    if not name or name.startswith("/") or MTOOLS_EXPANDED.intersection(name):
        raise ValueError(f"not a plain relative file name mtools reads literally: {name!r}")
    return name


def efi_fat_image_steps(
    image: str,
    efi_tree: str,
    sectors: int,
    serial: str = FAT_SERIAL,
) -> list[list[str]]:
    """argv lists that make the EFI FAT image with mtools, reproducibly.

    *image* and *efi_tree* are relative to the directory the commands run in, never
    absolute paths: mtools hands an image name holding ``$``, a backquote, ``(`` or ``~`` to
    ``sh -c`` (see :data:`MTOOLS_EXPANDED`), and the work dir is the user's to name.
    *efi_tree* is a staging directory holding ``EFI/BOOT/BOOTX64.EFI``; the caller sets the
    mtime of ``EFI``, ``EFI/BOOT`` and the file to SOURCE_DATE_EPOCH first, because
    ``mcopy -s -m`` keeps them. *image* must not exist (``mformat -C`` creates it).
    mtools 4.0.32 ignores SOURCE_DATE_EPOCH, so the steps avoid what stamps the current time:
    no volume label (``-v`` writes a dated directory entry) and no ``mmd``; ``-N`` fixes the
    volume serial. Result: FAT12/16, identical bytes on every build (checked).
    """
    if not re.fullmatch(r"[0-9a-fA-F]{8}", serial):
        raise ValueError(f"FAT serial must be 8 hex digits: {serial!r}")
    track = FAT_HEADS * FAT_SECTORS_PER_TRACK
    if sectors <= 0 or sectors % track:
        raise ValueError(f"sectors must be a positive multiple of {track}: {sectors}")
    img = mtools_safe_name(image)
    efi = mtools_safe_name(str(Path(efi_tree) / "EFI"))
    return [
        ["mformat", "-i", img, "-C", "-T", str(sectors), "-h", str(FAT_HEADS),
         "-s", str(FAT_SECTORS_PER_TRACK), "-N", serial.lower(), "::"],
        ["mcopy", "-i", img, "-s", "-m", efi, "::/"],
    ]  # fmt: skip


def xorriso_date_args(epoch: int) -> list[str]:
    """xorriso (``-as mkisofs``) options that make every date in the ISO *epoch*.

    xorriso 1.5.4 takes the volume dates from SOURCE_DATE_EPOCH but still records each
    file's and directory's own mtime (checked: touching the tree changes the ISO), so the
    file dates are set explicitly; with these two options the output is identical with or
    without SOURCE_DATE_EPOCH in the environment.
    """
    if epoch < 0:
        raise ValueError("epoch must be >= 0")
    stamp = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y%m%d%H%M%S00")
    return [f"--modification-date={stamp}", "--set_all_file_dates", f"={epoch}"]


#: The application id every ISO of livecd-tui carries in its primary volume descriptor:
#: how a later build knows that the file at iso.output is its own to replace.
ISO_APPLICATION_ID = "LIVECD-TUI"

#: Tools that write ISO images, and the argv prefix of each. Only xorriso can write the
#: hybrid MBR/GPT of a USB-bootable image.
MKISOFS_TOOLS: dict[str, tuple[str, ...]] = {
    "xorriso": ("xorriso", "-as", "mkisofs"),
    "genisoimage": ("genisoimage",),
    "mkisofs": ("mkisofs",),
}


def _epoch_or_env(epoch: int | None) -> int | None:
    """*epoch*, else SOURCE_DATE_EPOCH from the environment if it is a number, else None."""
    if epoch is not None:
        return epoch
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else None


def _iso_head(tool: str, out: Path | str, volume_label: str, epoch: int | None) -> list[str]:
    if tool not in MKISOFS_TOOLS:
        raise ValueError(f"unknown ISO tool {tool!r}; choose from {', '.join(MKISOFS_TOOLS)}")
    argv = [
        *MKISOFS_TOOLS[tool],
        "-o", str(out),
        "-iso-level", "3",  # files over 4 GiB (a big system.squashfs)
        "-r",  # Rock Ridge with sane owners and modes
        "-J", "-joliet-long",  # readable names on Windows
        "-V", _validate_label(volume_label),
        "-A", ISO_APPLICATION_ID,
    ]  # fmt: skip
    epoch = _epoch_or_env(epoch)
    if tool == "xorriso" and epoch is not None:
        argv += xorriso_date_args(epoch)
    return argv


def _need_xorriso(tool: str, what: str) -> None:
    if tool != "xorriso":
        raise ValueError(f"{what} needs xorriso (iso.tool), {tool} cannot write it")


def xorriso_grub2_argv(
    iso_root: Path | str,
    out: Path | str,
    volume_label: str,
    hybrid: bool,
    efi: bool = True,
    efi_image: Path | str | None = None,
    mbr: Path | str = GRUB_HYBRID_MBR,
    epoch: int | None = None,
    tool: str = "xorriso",
) -> list[str]:
    """argv that writes a GRUB 2 ISO (``xorriso -as mkisofs`` unless *tool* says otherwise).

    BIOS: El Torito boots :data:`GRUB_ELTORITO_IMG` (made by :func:`grub_mkimage_bios_argv`).
    With *hybrid*, ``boot_hybrid.img`` goes into the MBR so the same file boots as a USB
    disk. With *efi*, the FAT image (*efi_image*, default the copy at
    :data:`EFI_IMAGE_IN_ISO` in *iso_root*) becomes the El Torito EFI boot image; if
    *hybrid*, it is appended as GPT partition 2 (the EFI system partition of the USB disk)
    and the El Torito EFI entry points into that partition.
    *epoch* (default: SOURCE_DATE_EPOCH from the environment) fixes every date in the ISO
    (:func:`xorriso_date_args`): two builds are then byte-identical (checked).
    genisoimage/mkisofs can only write the non-hybrid CD (ValueError if *hybrid*).
    """
    argv = _iso_head(tool, out, volume_label, epoch)
    argv += [
        "-c", GRUB_BOOT_CATALOG,
        "-b", GRUB_ELTORITO_IMG,
        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
    ]  # fmt: skip
    if tool == "xorriso":
        argv.append("--grub2-boot-info")  # patch the core's location into it and the MBR
    if hybrid:
        _need_xorriso(tool, "a hybrid (USB-bootable) GRUB 2 image")
        argv += ["--grub2-mbr", str(mbr)]
    if efi:
        if hybrid:
            image = efi_image if efi_image is not None else Path(iso_root) / EFI_IMAGE_IN_ISO
            argv += [
                "-append_partition", "2", "0xef", str(image),
                "-appended_part_as_gpt",
                "-eltorito-alt-boot",
                "-e", "--interval:appended_partition_2:all::",
                "-no-emul-boot",
            ]  # fmt: skip
        else:
            argv += ["-eltorito-alt-boot", "-e", EFI_IMAGE_IN_ISO, "-no-emul-boot"]
    argv.append(str(iso_root))
    return argv


def xorriso_isolinux_argv(
    iso_root: Path | str,
    out: Path | str,
    volume_label: str,
    hybrid: bool = True,
    efi: bool = False,
    isohybrid_mbr: Path | str = ISOHYBRID_MBR,
    epoch: int | None = None,
    tool: str = "xorriso",
) -> list[str]:
    """argv that writes an ISOLINUX ISO; *epoch* and *tool* as for the GRUB 2 one.

    Needs :data:`ISOLINUX_FILES` and ``isolinux/isolinux.cfg`` in *iso_root*. With *hybrid*
    the isohybrid MBR makes it boot as a USB disk too (xorriso only). With *efi*, the tree
    must also hold the GRUB EFI FAT image at :data:`EFI_IMAGE_IN_ISO` and a grub.cfg: UEFI
    boots GRUB, BIOS boots ISOLINUX; ``-isohybrid-gpt-basdat`` makes the FAT image a GPT
    partition for USB boot.
    """
    argv = _iso_head(tool, out, volume_label, epoch)
    if hybrid:
        _need_xorriso(tool, "a hybrid (USB-bootable) ISOLINUX image")
        argv += ["-isohybrid-mbr", str(isohybrid_mbr)]
    argv += [
        "-c", ISOLINUX_BOOT_CATALOG,
        "-b", ISOLINUX_BIN_IN_ISO,
        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
    ]  # fmt: skip
    if efi:
        argv += ["-eltorito-alt-boot", "-e", EFI_IMAGE_IN_ISO, "-no-emul-boot"]
        if hybrid:
            argv.append("-isohybrid-gpt-basdat")
    argv.append(str(iso_root))
    return argv


def mkisofs_grub_legacy_argv(
    tool: str,
    iso_root: Path | str,
    out: Path | str,
    volume_label: str,
    epoch: int | None = None,
) -> list[str]:
    """argv of the article's ISO command for GRUB legacy (``stage2_eltorito``, no-emulation).

    *tool* is ``genisoimage``, ``mkisofs`` or ``xorriso`` (run as ``xorriso -as mkisofs``).
    The tree needs ``boot/grub/stage2_eltorito`` and ``boot/grub/menu.lst``. With xorriso
    every date is *epoch* (or SOURCE_DATE_EPOCH), so the image is the same bytes each time;
    genisoimage stamps the time it runs, and has no option against it.
    """
    if tool not in MKISOFS_TOOLS:
        raise ValueError(f"unknown ISO tool {tool!r}; choose from {', '.join(MKISOFS_TOOLS)}")
    argv = [
        *MKISOFS_TOOLS[tool],
        "-R",
        "-b", STAGE2_ELTORITO_IN_ISO,
        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
        "-V", _validate_label(volume_label),
        "-A", ISO_APPLICATION_ID,
        "-o", str(out),
    ]  # fmt: skip
    epoch = _epoch_or_env(epoch)
    if tool == "xorriso" and epoch is not None:
        argv += xorriso_date_args(epoch)
    return [*argv, str(iso_root)]


class ToolStep(NamedTuple):
    """One command of a boot loader's image making: argv, what it does, where it runs."""

    argv: list[str]
    describe: str
    #: The directory to run in (None: anywhere; every path in argv is absolute).
    cwd: Path | None = None


def grub2_image_steps(
    out: Path | str,
    epoch: int | None = None,
    efi: bool = True,
    marker_file: str = layout.MARKER,
    prefix: str = layout.GRUB_DIR,
    fat_sectors: int = EFI_FAT_SECTORS,
) -> list[ToolStep]:
    """The steps (argv, description, directory to run in) that make GRUB 2's boot images
    under *out*.

    *out* becomes part of the CD tree: ``boot/grub/early.cfg`` (the config embedded in both
    images, kept on the CD for reference), ``boot/grub/i386-pc/eltorito.img`` (BIOS),
    ``EFI/BOOT/BOOTX64.EFI`` (UEFI; also on the ISO filesystem, as on Debian's ISOs) and
    ``boot/grub/efi.img``, the FAT image holding it (the El Torito EFI image / ESP). With
    *epoch*, the FAT image is byte-identical on every build. grub.cfg is written separately
    (:func:`grub_cfg`). The mtools steps run in *out* and name their files relative to it.
    """
    root = Path(out)
    grub = layout.in_tree(root, layout.GRUB_DIR)
    early = grub / "early.cfg"
    efi_dir = root / "EFI"
    efi_binary = root / EFI_BOOT_BINARY
    fat = root / EFI_IMAGE_IN_ISO
    write_early = ["sh", "-c", 'printf "%s" "$1" > "$2"', "sh"]
    write_early += [grub_early_cfg(marker_file, prefix), str(early)]
    steps: list[ToolStep] = [
        ToolStep(
            ["mkdir", "-p", str(grub / "i386-pc"), str(efi_binary.parent)],
            "make GRUB's directories",
        ),
        ToolStep(write_early, f"write GRUB's built-in config (find the CD by {marker_file})"),
        ToolStep(
            grub_mkimage_bios_argv(root / GRUB_ELTORITO_IMG, prefix, early),
            "make GRUB's BIOS El Torito image (i386-pc-eltorito)",
        ),
    ]
    if efi:
        steps.append(
            ToolStep(
                grub_mkimage_efi_argv(efi_binary, prefix, early),
                "make GRUB's UEFI image BOOTX64.EFI (x86_64-efi)",
            )
        )
        if epoch is not None:
            touch = ["touch", "-h", "-d", f"@{epoch}", str(efi_dir), str(efi_binary.parent)]
            steps.append(
                ToolStep([*touch, str(efi_binary)], "date the EFI files (mcopy -m keeps the dates)")
            )
        steps.append(ToolStep(["rm", "-f", str(fat)], "remove an old EFI FAT image"))
        mformat, mcopy = efi_fat_image_steps(EFI_IMAGE_IN_ISO, ".", fat_sectors)
        steps.append(ToolStep(mformat, "make the EFI FAT image (fixed serial, no label)", root))
        steps.append(ToolStep(mcopy, "copy EFI/BOOT/BOOTX64.EFI into the FAT image", root))
    return steps
