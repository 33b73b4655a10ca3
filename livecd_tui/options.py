"""Every option a profile can hold, declared once.

This table is the single source of truth: the TOML reader and validator, the TUI's menu tree,
``livecd-tui options`` and ``docs/options.md`` are all generated from it. Adding an option
means adding one ``Option`` here and reading it in the stage that uses it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from livecd_tui.kernel.kconfig import GROUPS, PRESETS

Kind = Literal["bool", "int", "str", "path", "choice", "list"]

#: Longest string a profile may hold; anything longer is a mistake, not a value.
MAX_STRING = 4096
#: Longest list a profile may hold.
MAX_LIST = 1024
#: A directory right under the system root, named plainly: no '/', '.', '..' or anything a
#: shell or the init script's word splitting would read (the dirs are packed as named).
TOP_DIR = r"[A-Za-z0-9_][A-Za-z0-9._+@-]*"
TOP_DIR_HELP = (
    "a plain top-level directory name such as usr (letters, digits, . _ + @ -; "
    "no '/', '..' or absolute path)"
)


@dataclass(frozen=True)
class Option:
    """One setting: its TOML key, how it looks in the menus, its type and its meaning."""

    key: str
    title: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""
    #: For ints: the value must be a power of two (block sizes).
    power_of_two: bool = False
    #: (other key, values): the option is shown and used only when the other option has
    #: one of these values.
    depends_on: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    #: For paths: an empty value means "find it automatically"; a set value must exist.
    must_exist: bool = False
    #: For lists: each item must be one of these (empty: any string).
    item_choices: tuple[str, ...] = ()
    #: For lists: the fewest items it may hold.
    min_items: int = 0
    max_length: int = MAX_STRING
    #: For strings and list items: a regular expression a non-empty value must match, and
    #: what to say when it does not.
    pattern: str = ""
    pattern_help: str = ""
    #: For strings: an empty (or blank) value is refused.
    required: bool = False

    @property
    def section(self) -> str:
        """The menu this option lives in, as a dotted key prefix (``kernel.drivers``)."""
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The last part of the key, as written inside its TOML table."""
        return self.key.rpartition(".")[2]


@dataclass(frozen=True)
class Menu:
    """A menu of the tree: its key prefix, title and one line on what it is for."""

    key: str
    title: str
    help: str = ""
    children: tuple[str, ...] = field(default=())


def _auto_cpus() -> str:
    return "0 means all CPUs."


#: The driver group switches (kconfig.GROUPS holds what each adds): title and why.
_GROUP_OPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "disk",
        "Disk drivers",
        "A rescue CD needs them to reach the machine's disks, and the "
        "CD itself may sit behind one of them.",
    ),
    ("usb", "USB drivers", "Needed too when the ISO boots from a USB stick."),
    ("filesystems", "Filesystems", "A rescue CD mounts the filesystems it finds on disks."),
    (
        "network",
        "Network drivers",
        "For a CD that must reach the network. The live system gets all modules either way.",
    ),
    ("sound", "Sound drivers", "For a desktop CD."),
)
_DEFAULT_GROUPS = ("disk", "usb")


_MENUS: tuple[Menu, ...] = (
    Menu("kernel", "Kernel", "Which kernel boots the CD, where its modules and config are."),
    Menu(
        "kernel.drivers",
        "Driver groups",
        "Drivers chosen by what the CD is for, as the article picks them.",
    ),
    Menu("initrd", "Initrd", "The small first root that finds the CD and mounts the system."),
    Menu("system", "System", "Which installed system is packed into the squashfs image."),
    Menu(
        "system.scrub",
        "Scrub secrets",
        "What the packed copy leaves out or replaces, so the CD carries none of this "
        "machine's keys, password hashes, histories and logs. Only the copy that is packed "
        "is changed, never the system itself; out/PROFILE.scrub.txt lists every file.",
    ),
    Menu(
        "system.login",
        "Live login",
        "Who logs in on the live system and how: root or a live user, a password or none, "
        "autologin on the console. Applied to the packed copy of /etc.",
    ),
    Menu("writable", "Writable dirs", "How the read-only system becomes writable at boot."),
    Menu("bootloader", "Boot loader", "What the firmware starts and the menu it shows."),
    Menu("iso", "ISO image", "The image file and the marker that identifies the medium."),
    Menu("boottest", "Boot test", "Booting the ISO in QEMU before anyone burns a disc."),
    Menu("build", "Build", "Where and how the build runs."),
)

_OPTIONS: tuple[Option, ...] = (
    # ---------------------------------------------------------------- Kernel
    Option(
        "kernel.source",
        "Kernel source",
        "choice",
        "prebuilt",
        "Where the CD's kernel comes from. 'prebuilt' takes an already built kernel image "
        "(the running system's from /boot by default). 'tree' builds one from a kernel "
        "source tree with make, as the article does for a dedicated live-CD kernel.",
        choices=("prebuilt", "tree"),
    ),
    Option(
        "kernel.image",
        "Kernel image",
        "path",
        "",
        "The kernel image (bzImage/vmlinuz) to put on the CD. Empty: the newest "
        "/boot/vmlinuz-* of the system root.",
        depends_on=(("kernel.source", ("prebuilt",)),),
        must_exist=True,
    ),
    Option(
        "kernel.modules_dir",
        "Modules directory",
        "path",
        "",
        "The kernel's modules, /lib/modules/RELEASE. Empty: found from the image's release. "
        "The initrd takes the drivers it loads from here, and the live system gets them all "
        "so it can load drivers after boot.",
        depends_on=(("kernel.source", ("prebuilt",)),),
        must_exist=True,
    ),
    Option(
        "kernel.config",
        "Kernel config",
        "path",
        "",
        "The prebuilt kernel's .config, used to check that the kernel can boot this CD. "
        "Empty: /boot/config-RELEASE, the modules dir's build/.config, /proc/config.gz, or "
        "the copy built into the image (IKCONFIG). A source tree is always checked by its "
        "own .config, the one it is built with.",
        depends_on=(("kernel.source", ("prebuilt",)),),
        must_exist=True,
    ),
    Option(
        "kernel.tree",
        "Source tree",
        "path",
        "/usr/src/linux",
        "A configured kernel source tree. The kernel stage runs 'make bzImage modules' in "
        "it and installs the modules into the work dir; make only rebuilds what changed.",
        depends_on=(("kernel.source", ("tree",)),),
        must_exist=True,
    ),
    Option(
        "kernel.jobs",
        "Make jobs",
        "int",
        0,
        "Parallel jobs for make (-j). 0 means build.jobs.",
        minimum=0,
        maximum=1024,
        depends_on=(("kernel.source", ("tree",)),),
    ),
    Option(
        "kernel.extra_modules",
        "Extra modules",
        "list",
        [],
        "More kernel modules (by name) for the initrd to load at boot, with their "
        "dependencies, besides those the method and the driver groups need.",
    ),
    Option(
        "kernel.drivers.preset",
        "Purpose",
        "choice",
        "custom",
        "What the CD is for, as the article picks drivers by purpose. 'custom': the driver "
        "group switches below decide. "
        + " ".join(
            f"'{name}': {' + '.join(groups) if groups else 'only what booting the CD needs'}."
            for name, groups in PRESETS.items()
        )
        + " The kernel check warns about a group's missing drivers (the CD still boots), "
        "kernel-fix adds them, and the initrd loads the disk and USB drivers it has.",
        choices=("custom", *PRESETS),
    ),
    *(
        Option(
            f"kernel.drivers.{group}",
            title,
            "bool",
            group in _DEFAULT_GROUPS,
            f"{GROUPS[group][0].upper()}{GROUPS[group][1:]}. {why}",
            depends_on=(("kernel.drivers.preset", ("custom",)),),
        )
        for group, title, why in _GROUP_OPTIONS
    ),
    # ---------------------------------------------------------------- Initrd
    Option(
        "initrd.format",
        "Initrd format",
        "choice",
        "initramfs",
        "'initramfs': a cpio archive the kernel unpacks into RAM; its /init mounts the "
        "system and switch_roots into it (the modern way, needs no RAM-disk driver). "
        "'classic': the article's ext2 RAM-disk image whose /linuxrc pivot_roots; it needs "
        "BLK_DEV_RAM and ext2 built into the kernel and a kernel older than 7.0.",
        choices=("initramfs", "classic"),
    ),
    Option(
        "initrd.size_mib",
        "Image size",
        "int",
        8,
        "Size of the classic ext2 RAM-disk image. It must hold the shell, modules and "
        "libraries, and be no bigger than the kernel's RAM disk (BLK_DEV_RAM_SIZE or "
        "ramdisk_size=), which the boot loader entry sets to match.",
        minimum=1,
        maximum=1024,
        unit="MiB",
        depends_on=(("initrd.format", ("classic",)),),
    ),
    Option(
        "initrd.toolbox",
        "Toolbox",
        "choice",
        "auto",
        "Where the initrd's shell and commands come from. 'busybox': one static binary "
        "(initrd.busybox). 'system': the system root's own bash, mount, switch_root or "
        "pivot_root, insmod and coreutils, each with its libraries, as the article builds "
        "it (an LFS system without busybox). 'auto': busybox when one is named, in the "
        "root or on this host, else 'system'; check and plan say which and why.",
        choices=("auto", "busybox", "system"),
    ),
    Option(
        "initrd.shell",
        "Shell",
        "choice",
        "busybox",
        "The shell that runs the init script. busybox is one static binary that also "
        "provides every command the script needs; bash needs its libraries and the "
        "commands copied in one by one. The system toolbox always runs bash.",
        choices=("busybox", "bash"),
        depends_on=(("initrd.toolbox", ("auto", "busybox")),),
    ),
    Option(
        "initrd.busybox",
        "Busybox binary",
        "path",
        "",
        "The busybox to put into the initrd. Empty: found in the system root or on PATH "
        "(Debian: busybox-static). A static build needs no libraries.",
        must_exist=True,
    ),
    Option(
        "initrd.device_manager",
        "Device manager",
        "choice",
        "devtmpfs",
        "Who fills /dev. 'devtmpfs': the kernel does (enough when the initrd loads the "
        "drivers itself). 'mdev': busybox's small hotplug helper. 'udev': the article's "
        "choice, loads drivers by hardware; needs udevd and its rules in the initrd.",
        choices=("devtmpfs", "mdev", "udev"),
    ),
    Option(
        "initrd.extra_binaries",
        "Extra binaries",
        "list",
        [],
        "More programs (paths in the system root) to copy into the initrd with the "
        "libraries they need, e.g. for debugging in the rescue shell.",
    ),
    Option(
        "initrd.firmware",
        "Include firmware",
        "bool",
        False,
        "Copy the firmware files the initrd's modules ask for from /lib/firmware.",
    ),
    Option(
        "initrd.compression",
        "Compression",
        "choice",
        "gzip",
        "How the initrd is compressed. The kernel must have the matching decompressor "
        "built in (RD_GZIP, RD_XZ, RD_ZSTD). gzip is what every kernel can read.",
        choices=("gzip", "xz", "zstd"),
    ),
    Option(
        "initrd.wait",
        "Wait for medium",
        "int",
        10,
        "How long the init script keeps looking for the CD or USB stick; USB devices "
        "can take seconds to appear.",
        minimum=1,
        maximum=600,
        unit="s",
    ),
    # ---------------------------------------------------------------- System
    Option(
        "system.source",
        "System source",
        "choice",
        "root",
        "'root': pack an installed system (the directory below). 'busybox': pack a tiny "
        "system made from a static busybox, for trying the method in a minute.",
        choices=("root", "busybox"),
    ),
    Option(
        "system.root",
        "System root",
        "path",
        "/",
        "The root directory of the installed system to pack (the article packs the "
        "running system, '/').",
        depends_on=(("system.source", ("root",)),),
        must_exist=True,
    ),
    Option(
        "system.dirs",
        "Directories",
        "list",
        ["bin", "lib", "sbin", "usr"],
        "Top-level directories packed into the squashfs, as in the article. On merged-/usr "
        "systems bin, lib and sbin are links into usr and are kept as links; lib64 is "
        "added when the root has it, because the dynamic loader is found through it. "
        "Plain names only: no '/', '..' or absolute paths.",
        pattern=TOP_DIR,
        pattern_help=TOP_DIR_HELP,
    ),
    Option(
        "system.modules",
        "Kernel modules",
        "choice",
        "all",
        "Which of the kernel's modules the live system gets under /lib/modules: 'all', so "
        "it can load any driver after boot; 'initrd', only those the initrd loads (a "
        "smaller, faster image); 'none'. A system root that already holds the CD kernel's "
        "modules is packed as it is; one that does not (it runs another kernel) gets them "
        "into the image from kernel.modules_dir (or the kernel stage), the root untouched.",
        choices=("all", "initrd", "none"),
    ),
    Option(
        "system.excludes",
        "Excludes",
        "list",
        [],
        "Paths left out of the squashfs, relative to the root, as mksquashfs -wildcards "
        "patterns: 'usr/share/doc', 'usr/share/locale/*/LC_MESSAGES', '... *.pyc' (at any "
        "depth). The work dir and /proc /sys /dev /run /tmp are always left out; "
        "'livecd-tui capture' shows what each pattern leaves out.",
    ),
    Option(
        "system.compressor",
        "Squashfs compressor",
        "choice",
        "zstd",
        "mksquashfs's compressor. zstd packs nearly as small as xz at the speed of gzip; "
        "gzip is the most widely supported; lz4 boots fastest and packs largest. The "
        "kernel needs the matching SQUASHFS_* option.",
        choices=("gzip", "xz", "zstd", "lz4"),
    ),
    Option(
        "system.block_size",
        "Block size",
        "int",
        128,
        "Squashfs block size. Larger blocks pack smaller, smaller blocks read faster at random.",
        minimum=4,
        maximum=1024,
        unit="KiB",
        power_of_two=True,
    ),
    Option(
        "system.cpus",
        "CPUs",
        "int",
        0,
        "Processors mksquashfs uses. 0 means build.jobs.",
        minimum=0,
        maximum=1024,
    ),
    Option(
        "system.layers",
        "Layers",
        "bool",
        True,
        "Rebuild in proportion to the change: a rebuild packs only what changed in the root "
        "since the last build (new, changed and removed files) into a small squashfs layer, "
        "and the live system stacks the layers on the base image with overlayfs. Off: "
        "every build packs the whole system.",
    ),
    Option(
        "system.max_layers",
        "Most layers",
        "int",
        4,
        "With this many layers on the base, the next build packs one new base instead.",
        minimum=1,
        maximum=32,
    ),
    Option(
        "system.repack_percent",
        "Repack at",
        "int",
        25,
        "When the layers together are larger than this share of the base image, the next "
        "build packs one new base instead.",
        minimum=1,
        maximum=100,
        unit="%",
    ),
    Option(
        "system.keep_owners",
        "Keep owners",
        "bool",
        True,
        "Keep files' owners and groups as in the root. Off: every file belongs to root, "
        "which suits a tree built by an unprivileged user.",
    ),
    Option(
        "system.scrub.ssh_host_keys",
        "SSH host keys",
        "bool",
        True,
        "Leave out /etc/ssh/ssh_host_*: every copy of the CD would otherwise be this "
        "machine to SSH clients. On a systemd system the image gets a drop-in that runs "
        "'ssh-keygen -A' before sshd, so each boot makes its own keys.",
    ),
    Option(
        "system.scrub.passwords",
        "Lock passwords",
        "bool",
        True,
        "Replace every password hash in /etc/shadow, /etc/gshadow (and /etc/passwd) by '!', "
        "locking the accounts, and leave out the backups shadow-, gshadow- and "
        "security/opasswd. The live login's account then gets what 'Live login' says.",
    ),
    Option(
        "system.scrub.machine_id",
        "Empty machine-id",
        "bool",
        True,
        "Pack /etc/machine-id empty (systemd makes a new one at boot) and leave out a "
        "separate /var/lib/dbus/machine-id, so no two live systems share this machine's id.",
    ),
    Option(
        "system.scrub.histories",
        "Shell histories",
        "bool",
        True,
        "Leave out .bash_history, .ash_history, .zsh_history, .python_history, .lesshst, "
        ".viminfo and other history files, wherever they are.",
    ),
    Option(
        "system.scrub.home",
        "Empty /root and /home",
        "bool",
        True,
        "Pack /root and each /home/USER empty (the directories stay). Off: their contents "
        "are packed, except what the other scrub items leave out.",
    ),
    Option(
        "system.scrub.logs",
        "Logs",
        "bool",
        True,
        "Leave out everything under /var/log; its first-level directories stay, empty, "
        "for the services that write into them.",
    ),
    Option(
        "system.scrub.caches",
        "Caches",
        "bool",
        True,
        "Empty the directories under /var/cache (debconf's databases stay, without their "
        "-old backups) and leave out /root/.cache and /home/*/.cache.",
    ),
    Option(
        "system.scrub.tmp",
        "Temporary files",
        "bool",
        True,
        "Pack /tmp and /var/tmp empty (the directories stay), whatever was left there.",
    ),
    Option(
        "system.scrub.secrets",
        "Secrets",
        "bool",
        True,
        "Leave out known secret files (.netrc, .gnupg, .pgpass, .git-credentials anywhere; "
        ".ssh/id_*, .aws, .kube, .docker/config.json, keyrings and browser profiles in "
        "/root, /home and service homes; /etc/ssl/private, letsencrypt keys, keytabs, "
        "apt auth.conf, mysql's debian.cnf, ppp and ipsec secrets, iwd and NetworkManager "
        "secrets, Bluetooth keys, systemd credentials, cloud-init user data, k3s and "
        "kubernetes keys...), and scan every other packed file for secrets by content "
        "(private keys, WireGuard keys, Wi-Fi PSKs, keytabs, password hashes, cloud "
        "credentials...): a file holding one is left out, or for a setting in /etc packed "
        "with the value replaced. The build's last check scans the image again.",
    ),
    Option(
        "system.scrub.allow",
        "Allowed secrets",
        "list",
        [],
        "Files packed as they are even though the scrub would leave them out or replace "
        "their secrets (by their path or their content), as paths in the system: "
        "'/etc/wireguard/wg0.conf'. The scrub report lists them as kept.",
    ),
    Option(
        "system.login.user",
        "Live user",
        "str",
        "",
        "The account that logs in on the live system. Empty: root. A name: that user is "
        "added to the packed copy of /etc (first free uid from 1000, home /home/NAME, "
        "/bin/bash if the system has it) unless it exists there already, and root is left "
        "as 'Lock passwords' says.",
        max_length=32,
        pattern=r"(?!root\Z)[a-z_][a-z0-9_-]*",
        pattern_help="a user name: lower-case letters, digits, '_' and '-', not starting "
        "with a digit or '-' (and not root: leave it empty for root)",
    ),
    Option(
        "system.login.password",
        "Password",
        "choice",
        "none",
        "The live login's password. 'none': an empty password, so the console logs in "
        "with Enter (sshd refuses empty passwords by default). 'locked': no password "
        "works; only autologin gets in. 'hash': the hash below. 'keep': the system's own "
        "(locked too while 'Lock passwords' is on; a new live user is locked).",
        choices=("none", "locked", "hash", "keep"),
    ),
    Option(
        "system.login.password_hash",
        "Password hash",
        "str",
        "",
        "The live login's password as a crypt(3) hash, never the password itself: make "
        "one with 'openssl passwd -6' (SHA-512) or 'mkpasswd -m yescrypt'.",
        max_length=512,
        pattern=r"\$[0-9a-z]+\$[^:\s]+",
        pattern_help="a crypt hash such as the output of 'openssl passwd -6' ($6$salt$...); "
        "a plain password is refused",
        depends_on=(("system.login.password", ("hash",)),),
    ),
    Option(
        "system.login.autologin",
        "Autologin",
        "choice",
        "off",
        "Log the live login in without a prompt: 'tty1', on the first virtual console; "
        "'all', on every getty, the serial console too (then set boottest.marker to what "
        "the shell prints, since no 'login:' appears). busybox init: the inittab runs "
        "'login -f USER'; agetty: --autologin; systemd: a getty@tty1 (and serial-getty) "
        "drop-in.",
        choices=("off", "tty1", "all"),
    ),
    Option(
        "system.login.groups",
        "Live user's groups",
        "list",
        ["sudo", "wheel", "adm", "cdrom", "audio", "video", "plugdev", "netdev"],
        "Groups the live user joins, those of them the system has.",
        max_length=32,
        pattern=r"[a-z_][a-z0-9_-]*",
        pattern_help="a group name: lower-case letters, digits, '_' and '-'",
    ),
    # ---------------------------------------------------------------- Writable
    Option(
        "writable.strategy",
        "Strategy",
        "choice",
        "overlay",
        "'overlay': the squashfs is the lower layer of an overlayfs whose upper layer is a "
        "tmpfs, so every directory is writable (modern). 'classic': the article's way: a "
        "tmpfs root with links to the squashfs's directories, /etc unpacked from an "
        "archive on the CD, /home /root /var made empty at boot.",
        choices=("overlay", "classic"),
    ),
    Option(
        "writable.archive_dirs",
        "Archived dirs",
        "list",
        ["etc"],
        "Directories packed into the archive on the CD and unpacked into the tmpfs root "
        "at boot (the article packs /etc).",
        depends_on=(("writable.strategy", ("classic",)),),
        pattern=TOP_DIR,
        pattern_help=TOP_DIR_HELP,
    ),
    Option(
        "writable.empty_dirs",
        "Empty dirs",
        "list",
        ["home", "root", "var"],
        "Directories made empty on the tmpfs root at boot. /var also gets run, log and "
        "lock and the login records (utmp, wtmp, btmp, lastlog).",
        depends_on=(("writable.strategy", ("classic",)),),
        pattern=TOP_DIR,
        pattern_help=TOP_DIR_HELP,
    ),
    Option(
        "writable.overrides",
        "/etc overrides",
        "path",
        "",
        "A directory whose files replace or add to the live system's /etc, e.g. an "
        "inittab with a getty on the serial console or an fstab for the live system. "
        "Empty: none.",
        must_exist=True,
    ),
    Option(
        "writable.archive_compression",
        "Archive compression",
        "choice",
        "bzip2",
        "How the /etc archive is compressed (the article uses bzip2). busybox tar in the "
        "initrd unpacks all three.",
        choices=("bzip2", "gzip", "xz"),
    ),
    Option(
        "writable.tmpfs_size",
        "Tmpfs size",
        "str",
        "",
        "Size of the tmpfs that holds every change made in the live system, as mount's "
        "size= takes it ('512m', '50%'). Empty: the kernel's default, half the RAM.",
        max_length=16,
        pattern=r"[1-9][0-9]*[kmgtpeKMGTPE]?|[1-9][0-9]{0,2}%",
        pattern_help="a size as mount's size= takes it: a number of bytes with an optional "
        "k, m, g or t ('512m', '2g'), or a share of the RAM ('50%')",
    ),
    Option(
        "writable.copy_to_ram",
        "Copy to RAM",
        "bool",
        False,
        "Copy the system image into RAM at boot, so the CD can be removed and the system "
        "runs faster. Needs RAM larger than the image. This makes the boot menu's 'toram' "
        "entry the default (first), added when bootloader.entries lacks it; the other "
        "entries boot from the medium as before.",
    ),
    Option(
        "writable.persistence",
        "Persistence",
        "choice",
        "off",
        "Keep the live system's changes across boots. 'partition': a filesystem labelled "
        "writable.persistence_label (ext2/3/4, on a USB stick's partition or a VM disk) "
        "holds them instead of the tmpfs. 'file': an ext2/3/4 image file at "
        "writable.persistence_file on a FAT filesystem (a stick, or the FAT stick the CD's "
        "files were copied to). `livecd-tui persistence-image` makes either. The boot menu "
        "gets a 'nopersist' entry that boots without it. Not found at boot: the tmpfs, "
        "and the console says so.",
        choices=("off", "partition", "file"),
    ),
    Option(
        "writable.persistence_label",
        "Persistence label",
        "str",
        "LIVECD-DATA",
        "The filesystem label (for an encrypted store: the LUKS label) of the persistence "
        "partition or image. Only a filesystem with this label is ever written.",
        depends_on=(("writable.persistence", ("partition", "file")),),
        required=True,
        max_length=16,
        pattern=r"[A-Za-z0-9_.-]+",
        pattern_help="up to 16 letters, digits, '_', '.' and '-' (an ext4 label)",
    ),
    Option(
        "writable.persistence_file",
        "Persistence file",
        "str",
        "livecd/persistence.img",
        "Path of the persistence image on the FAT filesystem that holds it.",
        depends_on=(("writable.persistence", ("file",)),),
        required=True,
        max_length=255,
        pattern=r"(?!\.\.?(/|$))[A-Za-z0-9_.-]+(/(?!\.\.?(/|$))[A-Za-z0-9_.-]+)*",
        pattern_help="a relative path of letters, digits, '_', '.' and '-' (FAT names), "
        "without '.' or '..' parts",
    ),
    Option(
        "writable.persistence_encrypted",
        "Encrypted persistence",
        "bool",
        False,
        "The persistence store is LUKS-encrypted: the initrd asks for the passphrase on "
        "the console (cryptsetup and dm-crypt go into the initrd).",
        depends_on=(("writable.persistence", ("partition", "file")),),
    ),
    # ---------------------------------------------------------------- Boot loader
    Option(
        "bootloader.type",
        "Boot loader",
        "choice",
        "grub2",
        "'grub2': one image that boots from BIOS and UEFI, from CD and USB stick. "
        "'isolinux': small and BIOS only, also as a USB image (isohybrid). 'grub-legacy': "
        "the article's stage2_eltorito with a menu.lst, BIOS CD only.",
        choices=("grub2", "isolinux", "grub-legacy"),
    ),
    Option(
        "bootloader.title",
        "Menu title",
        "str",
        "Live system",
        "The name of the boot menu entries.",
        max_length=128,
    ),
    Option(
        "bootloader.timeout",
        "Timeout",
        "int",
        5,
        "Seconds the boot menu waits before it starts the first entry.",
        minimum=0,
        maximum=3600,
        unit="s",
    ),
    Option(
        "bootloader.entries",
        "Menu entries",
        "list",
        ["normal", "toram", "debug"],
        "Entries of the boot menu: 'normal', 'toram' (copy the system to RAM), 'check' "
        "(verify the sha256 of the system image and the /etc archive on the medium before "
        "booting; a damaged file stops in the rescue shell, named), 'debug' (stop in a "
        "shell before switching to the live system, with verbose output) and 'nopersist' "
        "(boot without writable.persistence; added by itself when persistence is on). The "
        "first is the default.",
        item_choices=("normal", "toram", "check", "debug", "nopersist"),
        min_items=1,
    ),
    Option(
        "bootloader.cmdline",
        "Kernel command line",
        "str",
        "",
        "Extra kernel parameters for every entry, e.g. 'quiet' or 'nomodeset'. A value "
        'holding blanks is quoted the kernel\'s way: name="a b".',
        max_length=1024,
        pattern=r"[^\"'\\]*(?:\"[^\"'\\]*\"[^\"'\\]*)*",
        pattern_help="kernel parameters with double quotes in pairs, and no single quote or "
        "backslash (GRUB 2 cannot pass them to the kernel unchanged)",
    ),
    Option(
        "bootloader.serial",
        "Serial console",
        "bool",
        True,
        "Boot menu and kernel console on the first serial port too, so the CD can be used "
        "headless and the boot test can read it.",
    ),
    Option(
        "bootloader.serial_speed",
        "Serial speed",
        "int",
        115200,
        "Baud rate of the serial console.",
        minimum=1200,
        maximum=921600,
        unit="baud",
        depends_on=(("bootloader.serial", (True,)),),
    ),
    Option(
        "bootloader.stage2_eltorito",
        "stage2_eltorito",
        "path",
        "",
        "GRUB legacy's El Torito stage 2. Empty: looked for under /usr/lib/grub and "
        "/boot/grub. Debian: apt-get download grub-legacy, then dpkg-deb -x.",
        depends_on=(("bootloader.type", ("grub-legacy",)),),
        must_exist=True,
    ),
    Option(
        "bootloader.secure_boot",
        "Secure Boot",
        "choice",
        "off",
        "Boot with UEFI Secure Boot on. 'shim': Debian's shim (signed by Microsoft) starts "
        "Debian's signed GRUB, which boots only a kernel Debian signed: the distribution's "
        "kernel (kernel.source prebuilt), not one built here. 'own-keys': your key "
        "(bootloader.secure_boot_key/_cert, made by `livecd-tui secure-boot-keys DIR`) "
        "signs the GRUB built here, the kernel (any kernel, an LFS one too) and Debian's "
        "shim once more; enroll the certificate in the firmware's db (its setup menu) or "
        "as a MOK (mokutil --import db.cer). Needs shim-signed (both), "
        "grub-efi-amd64-signed (shim) and sbsigntool (own-keys). BIOS boot is unchanged.",
        choices=("off", "shim", "own-keys"),
        depends_on=(("bootloader.type", ("grub2",)),),
    ),
    Option(
        "bootloader.secure_boot_key",
        "Signing key",
        "path",
        "",
        "Your Secure Boot private key (PEM, no passphrase), e.g. DIR/db.key from "
        "`livecd-tui secure-boot-keys DIR`. Required with own-keys.",
        depends_on=(("bootloader.type", ("grub2",)), ("bootloader.secure_boot", ("own-keys",))),
        must_exist=True,
    ),
    Option(
        "bootloader.secure_boot_cert",
        "Signing certificate",
        "path",
        "",
        "The certificate of the signing key (PEM), e.g. DIR/db.crt. Required with own-keys.",
        depends_on=(("bootloader.type", ("grub2",)), ("bootloader.secure_boot", ("own-keys",))),
        must_exist=True,
    ),
    # ---------------------------------------------------------------- ISO
    Option(
        "iso.tool",
        "ISO tool",
        "choice",
        "xorriso",
        "The program that writes the ISO 9660 image. xorriso makes hybrid BIOS/UEFI "
        "images, and the same bytes from the same inputs; genisoimage and mkisofs are the "
        "article's tool (GRUB legacy, isolinux) but stamp the time they run.",
        choices=("xorriso", "genisoimage", "mkisofs"),
    ),
    Option(
        "iso.volume_label",
        "Volume label",
        "str",
        "LIVECD",
        "The ISO 9660 volume id (up to 32 characters), shown by blkid and file managers.",
        max_length=32,
        required=True,
        pattern=r"[\x20-\x7e]+",
        pattern_help="ASCII letters, digits, blanks and punctuation",
    ),
    Option(
        "iso.marker",
        "Medium marker",
        "str",
        "livecd-tui",
        "Text written to the LABEL file at the root of the CD. The init script mounts "
        "each CD or disk and keeps the one whose LABEL file holds this text, so another "
        "disc or a USB stick is never taken for this one.",
        max_length=256,
    ),
    Option(
        "iso.output",
        "Output path",
        "path",
        "",
        "Where the finished ISO goes. Empty: out/PROFILE.iso in the work dir. A file "
        "already there is replaced only when it is an ISO livecd-tui wrote; a symlink, a "
        "system directory (/etc, /usr, /var/lib...) or what is packed is refused.",
    ),
    Option(
        "iso.hybrid",
        "USB-bootable hybrid",
        "bool",
        True,
        "Give the ISO a partition table and MBR boot code so the same file can be "
        "written to a USB stick with dd (grub2, isolinux).",
    ),
    Option(
        "iso.checksum",
        "Checksum file",
        "bool",
        True,
        "Write ISO.sha256 beside the ISO, to check a download or a burnt disc.",
    ),
    Option(
        "iso.medium",
        "Target medium",
        "choice",
        "cd",
        "What the ISO is for, so the preview (livecd-tui capture) can warn when it will not "
        "fit: 'cd' 700 MB (737,280,000 bytes), 'dvd' 4.7 GB (4,700,372,992 bytes), "
        "'dvd-dl' 8.5 GB (8,543,666,176 bytes), 'usb' no limit.",
        choices=("cd", "dvd", "dvd-dl", "usb"),
    ),
    # ---------------------------------------------------------------- Boot test
    Option(
        "boottest.enabled",
        "Boot test",
        "bool",
        True,
        "Boot the finished ISO in QEMU with a serial console and wait for the success "
        "marker, before anyone burns a disc.",
    ),
    Option(
        "boottest.firmware",
        "Firmware",
        "choice",
        "bios",
        "Boot the test machine with a PC BIOS (SeaBIOS) or UEFI (OVMF).",
        choices=("bios", "uefi"),
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.medium",
        "Medium",
        "choice",
        "cdrom",
        "Attach the ISO as a CD-ROM, or as a USB disk (tests the hybrid image).",
        choices=("cdrom", "usb"),
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.memory_mib",
        "Memory",
        "int",
        1024,
        "RAM of the test machine. Copy-to-RAM needs more than the system image.",
        minimum=64,
        maximum=65536,
        unit="MiB",
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.timeout",
        "Timeout",
        "int",
        300,
        "Seconds to wait for the success marker. Without KVM, QEMU emulates the CPU and "
        "a boot takes tens of seconds.",
        minimum=5,
        maximum=7200,
        unit="s",
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.marker",
        "Success marker",
        "str",
        "login:",
        "Text on the serial console that proves the live system came up, e.g. the "
        "getty's 'login:' prompt. It must not be empty: an empty marker would be "
        "found before anything booted.",
        max_length=256,
        required=True,
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.accel",
        "Accelerator",
        "choice",
        "auto",
        "'auto' uses KVM only when a test guest really runs with it, else TCG (software "
        "emulation, slower but always works).",
        choices=("auto", "kvm", "tcg"),
        depends_on=(("boottest.enabled", (True,)),),
    ),
    Option(
        "boottest.secure_boot_vars",
        "Secure Boot VARS",
        "path",
        "",
        "With bootloader.secure_boot on and a UEFI boot test, the machine boots OVMF's "
        "Secure Boot firmware (q35 with SMM) with a copy of this variable store. Empty: "
        "for shim, Debian's OVMF_VARS_4M.ms.fd (Microsoft's keys); for own-keys, one made "
        "with virt-fw-vars (PyPI: virt-firmware) that holds your certificate as PK, KEK "
        "and db.",
        depends_on=(
            ("boottest.enabled", (True,)),
            ("boottest.firmware", ("uefi",)),
            ("bootloader.type", ("grub2",)),
            ("bootloader.secure_boot", ("shim", "own-keys")),
        ),
        must_exist=True,
    ),
    # ---------------------------------------------------------------- Build
    Option(
        "build.work_dir",
        "Work dir",
        "path",
        "",
        "Where the build keeps its files, logs and state. Empty: "
        "$XDG_CACHE_HOME/livecd-tui/PROFILE. Never inside the packed system.",
    ),
    Option(
        "build.source_date_epoch",
        "SOURCE_DATE_EPOCH",
        "int",
        0,
        "A fixed time (seconds since 1970) for every timestamp in the images, so two "
        "builds of the same inputs are byte-identical. 0: taken from the environment's "
        "SOURCE_DATE_EPOCH, else the build time.",
        minimum=0,
        maximum=2**32 - 1,
    ),
    Option(
        "build.jobs",
        "Jobs",
        "int",
        0,
        "Parallel jobs for the build's tools: the default of kernel.jobs (make -j) and "
        "system.cpus (mksquashfs). The initramfs compressors run single-threaded, so the "
        "same inputs give the same bytes on any machine. " + _auto_cpus(),
        minimum=0,
        maximum=1024,
    ),
)

OPTIONS: Mapping[str, Option] = {option.key: option for option in _OPTIONS}
MENUS: Mapping[str, Menu] = {menu.key: menu for menu in _MENUS}


def defaults() -> dict[str, Any]:
    """A fresh copy of every option's default value."""
    return {key: _copy(option.default) for key, option in OPTIONS.items()}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def options_in(menu: str) -> list[Option]:
    """The options directly inside a menu, in declaration order."""
    return [option for option in _OPTIONS if option.section == menu]


def submenus_of(menu: str) -> list[Menu]:
    """The menus directly inside a menu (or the top-level menus for ``""``)."""
    return [m for m in _MENUS if m.key.rpartition(".")[0] == menu]


def is_active(option: Option, values: Mapping[str, Any]) -> bool:
    """Whether an option's ``depends_on`` holds, so it is shown and used."""
    return all(values.get(other) in allowed for other, allowed in option.depends_on)


def dependents_of(key: str) -> list[Option]:
    """Options that are only shown when ``key`` has certain values."""
    return [o for o in _OPTIONS if any(other == key for other, _ in o.depends_on)]


def describe_type(option: Option) -> str:
    """A short human description of what values an option takes."""
    if option.kind == "choice":
        return "one of " + ", ".join(option.choices)
    if option.kind == "int":
        unit = f" {option.unit}" if option.unit else ""
        powers = ", a power of two" if option.power_of_two else ""
        return f"integer {option.minimum}..{option.maximum}{unit}{powers}"
    if option.kind == "list":
        least = f", at least {option.min_items}" if option.min_items else ""
        if option.item_choices:
            return "list of " + ", ".join(option.item_choices) + least
        return "list of strings" + least
    if option.kind == "path":
        return "path" + (" (empty: automatic)" if option.default == "" else "")
    if option.kind == "str":
        required = ", not empty" if option.required else ""
        return f"string (up to {option.max_length} characters{required})"
    return "boolean"


def format_value(value: Any) -> str:
    """A value as TOML would spell it, for messages and docs."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def validate_value(option: Option, value: Any) -> tuple[Any, str | None]:
    """Check one value against its option; return (value, None) or (None, reason).

    Existence of paths is checked by the profile, which knows the file's directory.
    """
    kind = option.kind
    if kind == "bool":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {_typename(value)}"
        return value, None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected an integer, got {_typename(value)}"
        if option.minimum is not None and value < option.minimum:
            return None, f"{value} is below the minimum {option.minimum}{_unit(option)}"
        if option.maximum is not None and value > option.maximum:
            return None, f"{value} is above the maximum {option.maximum}{_unit(option)}"
        if option.power_of_two and value & (value - 1):
            below = 1 << (value.bit_length() - 1)
            return None, (
                f"{value} is not a power of two (mksquashfs refuses it): "
                f"{below} or {below * 2}{_unit(option)}"
            )
        return value, None
    if kind in ("str", "path", "choice"):
        if not isinstance(value, str):
            return None, f"expected a string, got {_typename(value)}"
        problem = _string_problem(value, option.max_length)
        if problem:
            return None, problem
        problem = path_length_problem(value) if kind == "path" else None
        if problem:
            return None, problem
        if kind == "choice" and value not in option.choices:
            return None, f"{format_value(value)} is not one of: " + ", ".join(option.choices)
        problem = _pattern_problem(option, value)
        if problem:
            return None, problem
        if option.required and not value.strip():
            return None, "must not be empty"
        return value, None
    # list
    if not isinstance(value, list):
        return None, f"expected a list of strings, got {_typename(value)}"
    if len(value) > MAX_LIST:
        return None, f"list has {len(value)} items, more than {MAX_LIST}"
    if len(value) < option.min_items:
        return None, f"needs at least {option.min_items} item(s), got {len(value)}"
    for index, item in enumerate(value):
        if not isinstance(item, str):
            return None, f"item {index + 1} should be a string, got {_typename(item)}"
        problem = _string_problem(item, option.max_length)
        if problem:
            return None, f"item {index + 1}: {problem}"
        if option.item_choices and item not in option.item_choices:
            return None, (
                f"item {format_value(item)} is not one of: " + ", ".join(option.item_choices)
            )
        # An empty item matches nothing a pattern allows ('' in system.dirs is the root).
        problem = _pattern_problem(option, item) or (
            "is empty" if option.pattern and not item else None
        )
        if problem:
            return None, f"item {index + 1} ({format_value(item)}): {problem}"
    return list(value), None


def _string_problem(value: str, max_length: int) -> str | None:
    if len(value) > max_length:
        return f"too long ({len(value)} characters, at most {max_length})"
    if "\n" in value or "\r" in value:
        return "must be a single line (it contains a line break)"
    if "\x00" in value:
        return "contains a NUL character"
    control = re.search(r"[\x01-\x1f\x7f]", value)
    if control:  # a tab or a terminal escape: no command or menu wants one
        return f"contains a control character (U+{ord(control.group()):04X})"
    return None


#: Linux's limits on a file name and a path, in bytes (beyond them: ENAMETOOLONG).
NAME_MAX, PATH_MAX = 255, 4096


def path_length_problem(path: str) -> str | None:
    """Why the system would refuse ``path`` for its length (ENAMETOOLONG), if it would."""
    data = os.fsencode(path)
    if len(data) >= PATH_MAX:
        return f"the path is {len(data)} bytes long; Linux allows {PATH_MAX - 1}"
    longest = max(data.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return (
            f"a name in the path ({os.fsdecode(longest[:16])}...) is {len(longest)} bytes "
            f"long; Linux allows {NAME_MAX}"
        )
    return None


def _pattern_problem(option: Option, value: str) -> str | None:
    if option.pattern and value and not re.fullmatch(option.pattern, value):
        return f"must be {option.pattern_help or 'of the form ' + option.pattern}"
    return None


def _unit(option: Option) -> str:
    return f" {option.unit}" if option.unit else ""


def _typename(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    for kind, name in names.items():
        if isinstance(value, kind):
            return f"{name} ({format_value(value) if not isinstance(value, dict) else '{...}'})"
    return type(value).__name__


def reference_text() -> str:
    """One line per option: key = default, title and type (``livecd-tui options``)."""
    lines = []
    for option in OPTIONS.values():
        lines.append(
            f"{option.key} = {format_value(option.default)}    # {option.title}; "
            f"{describe_type(option)}"
        )
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """The option reference, generated from the schema (written to docs/options.md)."""
    out = [
        "# Options",
        "",
        "Every option a profile can hold, generated from the schema by "
        "`livecd-tui options --markdown`. A profile is a TOML file; each section below "
        "is a TOML table (`[kernel]`, `[kernel.drivers]`...).",
        "",
    ]
    for menu_key, menu in MENUS.items():
        depth = menu_key.count(".") + 2
        out += [f"{'#' * depth} {menu.title} (`[{menu_key}]`)", "", menu.help, ""]
        for option in OPTIONS.values():
            if option.section != menu_key:
                continue
            out += [
                f"- **`{option.key}`**: {option.title}. {describe_type(option)}; default "
                f"`{format_value(option.default)}`.",
                f"  {option.help}",
            ]
            if option.depends_on:
                cond = " and ".join(
                    f"`{k}` is {' or '.join(format_value(v) for v in vals)}"
                    for k, vals in option.depends_on
                )
                out.append(f"  Used only when {cond}.")
            deps = dependents_of(option.key)
            if deps:
                out.append("  Shows: " + ", ".join(f"`{d.key}`" for d in deps) + ".")
        out.append("")
    return "\n".join(out)
