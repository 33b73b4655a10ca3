"""Secure Boot: the signed files of a Debian host, the user's own keys, and the EFI layout.

``bootloader.secure_boot`` has three values:

- ``off``: GRUB's own BOOTX64.EFI, as before.
- ``shim``: Debian's shim (signed by Microsoft's UEFI CA, which nearly every PC trusts)
  starts Debian's signed CD GRUB (``gcdx64.efi.signed`` as ``grubx64.efi`` next to it), which
  loads the kernel only if shim accepts its signature: a kernel Debian signed.
- ``own-keys``: the same shim, also signed with the user's key, starts the GRUB this tool
  builds (signed with the user's key) and the kernel (signed with the user's key). Shim
  trusts what the firmware's db or its MOK list holds, so the user's certificate works when
  enrolled in either.

Facts checked in QEMU on Debian 12 (GRUB 2.06-13+deb12u2, shim 16.1, OVMF 2022.11 secboot):

- Without shim, Debian's GRUB refuses every kernel under Secure Boot: built as usual it
  says ``shim_lock protocol not found``; built with ``--disable-shim-lock`` it says
  ``verification requested but nobody cares: /boot/vmlinuz`` (its lockdown wants some
  verifier to vouch for the kernel). So own-keys keeps shim in front, which is also how a
  user's GRUB gets the shim_lock protocol that checks the kernel.
- Shim refuses a GRUB without an ``.sbat`` section; :data:`SBAT_CSV` is the one Debian's
  signed GRUB of the same version carries (``grub-mkimage --sbat``).
- UEFI firmware accepts an image when any of its signatures is in db, so a shim signed by
  Microsoft *and* the user boots on a machine whose db holds only the user's certificate.
- Debian's ``gcdx64.efi`` finds its config through its built-in script: it searches for
  ``/.disk/info``, sets the prefix to ``($root)/boot/grub`` and sources ``grub.cfg`` there
  (read with ``strings`` from the signed image), so the ISO gets a ``/.disk/info``.
- shim + gcdx64 + MokManager need about 5.8 MB, more than the FAT image of plain GRUB.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from livecd_tui import bootconf, layout
from livecd_tui.profile import Profile

MODES: tuple[str, ...] = ("off", "shim", "own-keys")

#: Debian package shim-signed: shim signed by Microsoft, and its MOK manager.
SHIM_SIGNED = Path("/usr/lib/shim/shimx64.efi.signed")
MOKMANAGER_SIGNED = Path("/usr/lib/shim/mmx64.efi.signed")
#: Debian package grub-efi-amd64-signed: GRUB for CDs, signed by Debian.
GRUB_CD_SIGNED = Path("/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed")

#: The EFI directory on the ESP; shim loads ``grubx64.efi`` and ``mmx64.efi`` from its own.
EFI_DIR = "EFI/BOOT"
SHIM_ON_ESP = bootconf.EFI_BOOT_BINARY
GRUB_ON_ESP = f"{EFI_DIR}/grubx64.efi"
MOKMANAGER_ON_ESP = f"{EFI_DIR}/mmx64.efi"
#: The file Debian's signed GRUB searches for to find the CD (see the module's doc).
DISK_INFO = ".disk/info"

#: ``.sbat`` of the GRUB this tool builds: the generations of Debian 12's signed GRUB
#: (shim compares only names and generation numbers).
SBAT_CSV = (
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
    "grub,5,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\n"
    "grub.debian,5,Debian,grub2,2.06-13,https://tracker.debian.org/pkg/grub2\n"
    "grub.debian12,1,Debian,grub2,2.06-13,https://tracker.debian.org/pkg/grub2\n"
)

#: FAT image for shim + GRUB + MokManager: 8 MiB (a multiple of mformat's track).
FAT_SECTORS = 16384

#: Names of the files ``secure-boot-keys`` writes.
KEY_NAME = "db.key"
CERT_NAME = "db.crt"
CERT_DER_NAME = "db.cer"

#: OVMF with Secure Boot (needs q35 with SMM) and its variable stores (Debian: ovmf).
OVMF_SECBOOT_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
#: Variables with Microsoft's keys enrolled and Secure Boot on: shim boots with it.
OVMF_VARS_MS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
#: Empty variables, to enroll the user's certificate in (``virt-fw-vars``).
OVMF_VARS_BLANK = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
#: Owner GUID of the certificates this tool enrolls in a test VARS file (any fixed GUID).
OWNER_GUID = "6c697665-6364-2d74-7569-2d7465737400"


def mode_of(profile: Profile) -> str:
    """bootloader.secure_boot where it applies (GRUB 2), else "off"."""
    if profile["bootloader.type"] != "grub2":
        return "off"
    return str(profile["bootloader.secure_boot"])


def keygen_argv(directory: Path, common_name: str, days: int = 3650) -> list[list[str]]:
    """argv lists that make a self-signed RSA-2048 key pair in *directory*: the key and the
    certificate in PEM (for sbsign) and the certificate in DER (for firmware setup menus
    and ``mokutil --import``). No passphrase: sbsign runs unattended."""
    if not common_name or "/" in common_name or any(ord(c) < 32 for c in common_name):
        raise ValueError(f"the certificate's name must be one line without '/': {common_name!r}")
    key, cert, der = (directory / KEY_NAME, directory / CERT_NAME, directory / CERT_DER_NAME)
    return [
        ["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", str(days), "-subj", f"/CN={common_name}/", "-keyout", str(key),
         "-out", str(cert)],
        ["openssl", "x509", "-in", str(cert), "-outform", "DER", "-out", str(der)],
    ]  # fmt: skip


def make_keys(directory: Path, common_name: str) -> list[Path]:
    """Make the key pair of :func:`keygen_argv`; refuses to replace existing keys.

    Raises ValueError for a bad name or existing files, OSError when openssl is missing or
    fails (its output in the message)."""
    targets = [directory / KEY_NAME, directory / CERT_NAME, directory / CERT_DER_NAME]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ValueError(
            f"{', '.join(existing)} exist already; remove them or choose another directory"
        )
    argvs = keygen_argv(directory, common_name)
    if shutil.which("openssl") is None:
        raise OSError("openssl is missing (Debian: apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    for argv in argvs:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OSError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()[-400:]}")
    (directory / KEY_NAME).chmod(0o600)
    return targets


def sbsign_argv(key: Path, cert: Path, image: Path, out: Path) -> list[str]:
    """argv of ``sbsign`` (Debian: sbsigntool) that signs the EFI *image* into *out*;
    an image signed already keeps its signatures and gets one more."""
    return ["sbsign", "--key", str(key), "--cert", str(cert), "--output", str(out), str(image)]


def has_signature(image: Path) -> bool:
    """Whether the PE/COFF *image* (an EFI binary, a bzImage with EFI stub) carries an
    Authenticode signature: its certificate table (data directory 4) is not empty.
    False for a file that is not a PE image or cannot be read."""
    try:
        with open(image, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if len(head) < 64 or head[:2] != b"MZ":
        return False
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    if pe + 24 + 2 > len(head) or head[pe : pe + 4] != b"PE\0\0":
        return False
    optional = pe + 24
    magic = struct.unpack_from("<H", head, optional)[0]
    directories = optional + (112 if magic == 0x20B else 96)
    entry = directories + 4 * 8
    if entry + 8 > len(head):
        return False
    _address, size = struct.unpack_from("<II", head, entry)
    return size > 0


def vars_enroll_argv(template: Path, cert: Path, out: Path) -> list[str]:
    """argv of ``virt-fw-vars`` (PyPI: virt-firmware) that writes *out*: the OVMF variable
    store *template* with *cert* as PK, KEK and db and Secure Boot on, as a machine whose
    owner enrolled the key in the firmware setup."""
    return [
        "virt-fw-vars",
        "--input",
        str(template),
        "--set-pk",
        OWNER_GUID,
        str(cert),
        "--add-kek",
        OWNER_GUID,
        str(cert),
        "--add-db",
        OWNER_GUID,
        str(cert),
        "--secure-boot",
        "--output",
        str(out),
    ]


def esp_steps(
    out: Path,
    mode: str,
    key: Path | None = None,
    cert: Path | None = None,
    kernel: Path | None = None,
    epoch: int | None = None,
    shim: Path = SHIM_SIGNED,
    mokmanager: Path = MOKMANAGER_SIGNED,
    signed_grub: Path = GRUB_CD_SIGNED,
) -> list[bootconf.ToolStep]:
    """The steps that lay out the EFI side of the CD under *out* for *mode*.

    Run after :func:`bootconf.grub2_image_steps` with ``efi=False`` (the BIOS image and
    ``boot/grub/early.cfg``). ``shim``: Debian's signed shim, GRUB and MokManager.
    ``own-keys``: GRUB made here with *early.cfg* and an ``.sbat``, signed with *key* and
    *cert*, shim signed once more with them, and *kernel* signed into ``boot/vmlinuz`` (the
    ISO stage then takes it instead of the kernel stage's). Both: ``/.disk/info`` and the
    FAT image ``boot/grub/efi.img`` holding ``EFI/BOOT``.
    """
    if mode not in ("shim", "own-keys"):
        raise ValueError(f"no EFI layout for secure boot mode {mode!r}")
    root = Path(out)
    efi_dir = root / EFI_DIR
    grub_dir = layout.in_tree(root, layout.GRUB_DIR)
    steps = [
        bootconf.ToolStep(
            ["mkdir", "-p", str(efi_dir), str(root / ".disk")], "make the EFI and .disk directories"
        )
    ]
    info = [
        "sh",
        "-c",
        'printf "%s\\n" "$1" > "$2"',
        "sh",
        "livecd-tui live CD (Debian's signed GRUB finds the CD by this file)",
        str(root / DISK_INFO),
    ]
    steps.append(
        bootconf.ToolStep(info, f"write /{DISK_INFO} (Debian's signed GRUB searches for it)")
    )
    if mode == "shim":
        steps += [
            bootconf.ToolStep(
                ["cp", str(shim), str(root / SHIM_ON_ESP)],
                "copy Debian's signed shim as BOOTX64.EFI",
            ),
            bootconf.ToolStep(
                ["cp", str(signed_grub), str(root / GRUB_ON_ESP)],
                "copy Debian's signed CD GRUB as grubx64.efi (shim starts it)",
            ),
        ]
    else:
        if key is None or cert is None or kernel is None:
            raise ValueError("own-keys needs the key, the certificate and the kernel")
        sbat = grub_dir / "sbat.csv"
        unsigned = grub_dir / "grubx64.unsigned.efi"
        write_sbat = ["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", SBAT_CSV, str(sbat)]
        mkimage = bootconf.grub_mkimage_efi_argv(unsigned, layout.GRUB_DIR, grub_dir / "early.cfg")
        mkimage[1:1] = ["--sbat", str(sbat)]
        steps += [
            bootconf.ToolStep(
                write_sbat, "write GRUB's SBAT data (shim refuses a GRUB without it)"
            ),
            bootconf.ToolStep(mkimage, "make GRUB's UEFI image with SBAT (x86_64-efi)"),
            bootconf.ToolStep(
                sbsign_argv(key, cert, unsigned, root / GRUB_ON_ESP),
                "sign GRUB with your key as grubx64.efi",
            ),
            bootconf.ToolStep(["rm", "-f", str(unsigned)], "remove the unsigned GRUB"),
            bootconf.ToolStep(
                sbsign_argv(key, cert, shim, root / SHIM_ON_ESP),
                "sign Debian's shim with your key too, as BOOTX64.EFI (it "
                "then boots where db holds only your certificate)",
            ),
            bootconf.ToolStep(
                sbsign_argv(key, cert, kernel, layout.in_tree(root, layout.KERNEL)),
                "sign the kernel with your key",
            ),
        ]
    steps.append(
        bootconf.ToolStep(
            ["cp", str(mokmanager), str(root / MOKMANAGER_ON_ESP)],
            "copy shim's MOK manager (enrolls a key at boot)",
        )
    )
    if epoch is not None:
        dated = [
            str(root / "EFI"),
            str(efi_dir),
            str(root / SHIM_ON_ESP),
            str(root / GRUB_ON_ESP),
            str(root / MOKMANAGER_ON_ESP),
        ]
        steps.append(
            bootconf.ToolStep(
                ["touch", "-h", "-d", f"@{epoch}", *dated],
                "date the EFI files (mcopy -m keeps the dates)",
            )
        )
    fat = root / bootconf.EFI_IMAGE_IN_ISO
    steps.append(bootconf.ToolStep(["rm", "-f", str(fat)], "remove an old EFI FAT image"))
    mformat, mcopy = bootconf.efi_fat_image_steps(bootconf.EFI_IMAGE_IN_ISO, ".", FAT_SECTORS)
    steps.append(
        bootconf.ToolStep(mformat, "make the EFI FAT image (fixed serial, no label)", root)
    )
    steps.append(
        bootconf.ToolStep(mcopy, "copy EFI/BOOT (shim, GRUB, MokManager) into the FAT image", root)
    )
    return steps
