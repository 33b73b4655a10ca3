"""Secure Boot without booting: the key pair, signature detection, the EFI layout steps, what
the stages plan for each mode and what they refuse, and QEMU's Secure Boot argv."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from livecd_tui import qemu, secureboot
from livecd_tui.build import Build, find_prebuilt_kernel
from livecd_tui.engine import PlanError, plan_stage
from livecd_tui.profile import load_profile
from livecd_tui.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "demo.toml"
STAGE = {stage.name: stage for stage in STAGES}


def pe_image(signature_size: int) -> bytes:
    """A minimal PE32+ header whose certificate table (data directory 4) has this size."""
    image = bytearray(1024)
    image[:2] = b"MZ"
    struct.pack_into("<I", image, 0x3C, 0x80)
    image[0x80:0x84] = b"PE\0\0"
    optional = 0x80 + 24
    struct.pack_into("<H", image, optional, 0x20B)
    struct.pack_into(
        "<II", image, optional + 112 + 4 * 8, 0x200 if signature_size else 0, signature_size
    )
    return bytes(image)


def test_has_signature_reads_the_certificate_table(tmp_path: Path) -> None:
    signed, unsigned, other = tmp_path / "signed", tmp_path / "unsigned", tmp_path / "other"
    signed.write_bytes(pe_image(0x500))
    unsigned.write_bytes(pe_image(0))
    other.write_bytes(b"\x7fELF" + bytes(200))
    assert secureboot.has_signature(signed)
    assert not secureboot.has_signature(unsigned)
    assert not secureboot.has_signature(other)
    assert not secureboot.has_signature(tmp_path / "missing")


def test_has_signature_on_the_real_files() -> None:
    """Debian's shim is signed, its unsigned twin is not, and so is the host's kernel."""
    if not secureboot.SHIM_SIGNED.is_file():
        pytest.fail("shim-signed is missing: run `bash setup.sh`")
    assert secureboot.has_signature(secureboot.SHIM_SIGNED)
    unsigned = secureboot.SHIM_SIGNED.with_name("shimx64.efi")
    if unsigned.is_file():
        assert not secureboot.has_signature(unsigned)
    found = find_prebuilt_kernel(Path("/"))
    if found is not None:  # a Debian kernel is signed by Debian
        assert secureboot.has_signature(found[0])


def test_make_keys_writes_a_key_pair_once(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    made = secureboot.make_keys(directory, "test key")
    assert [path.name for path in made] == ["db.key", "db.crt", "db.cer"]
    assert (directory / "db.key").stat().st_mode & 0o077 == 0
    assert b"BEGIN CERTIFICATE" in (directory / "db.crt").read_bytes()
    assert (directory / "db.cer").read_bytes()[:1] == b"\x30"  # DER: a SEQUENCE
    with pytest.raises(ValueError, match="exist already"):
        secureboot.make_keys(directory, "test key")
    with pytest.raises(ValueError, match="one line"):
        secureboot.keygen_argv(tmp_path, "a/b")


def test_shim_layout_copies_debians_signed_files(tmp_path: Path) -> None:
    steps = secureboot.esp_steps(tmp_path, "shim", epoch=1)
    argvs = [step.argv for step in steps]
    assert ["cp", str(secureboot.SHIM_SIGNED), str(tmp_path / "EFI/BOOT/BOOTX64.EFI")] in argvs
    assert ["cp", str(secureboot.GRUB_CD_SIGNED), str(tmp_path / "EFI/BOOT/grubx64.efi")] in argvs
    assert any(argv[-1] == str(tmp_path / ".disk/info") for argv in argvs)
    assert not any(argv[0] in ("sbsign", "grub-mkimage") for argv in argvs)
    mformat = next(argv for argv in argvs if argv[0] == "mformat")
    assert mformat[mformat.index("-T") + 1] == str(secureboot.FAT_SECTORS)


def test_own_keys_layout_signs_grub_shim_and_kernel(tmp_path: Path) -> None:
    key, cert, kernel = tmp_path / "k", tmp_path / "c", tmp_path / "vmlinuz"
    steps = secureboot.esp_steps(tmp_path, "own-keys", key=key, cert=cert, kernel=kernel)
    argvs = [step.argv for step in steps]
    mkimage = next(argv for argv in argvs if argv[0] == "grub-mkimage")
    assert "--sbat" in mkimage and "--disable-shim-lock" not in mkimage
    assert "-c" in mkimage  # the early config that finds the CD by its marker
    signed = {argv[argv.index("--output") + 1]: argv[-1] for argv in argvs if argv[0] == "sbsign"}
    assert signed[str(tmp_path / "EFI/BOOT/BOOTX64.EFI")] == str(secureboot.SHIM_SIGNED)
    assert signed[str(tmp_path / "EFI/BOOT/grubx64.efi")].endswith("grubx64.unsigned.efi")
    assert signed[str(tmp_path / "boot/vmlinuz")] == str(kernel)
    with pytest.raises(ValueError):
        secureboot.esp_steps(tmp_path, "own-keys")
    with pytest.raises(ValueError):
        secureboot.esp_steps(tmp_path, "off")


def demo_profile(tmp_path: Path, body: str) -> Build:
    profile = tmp_path / "p.toml"
    profile.write_text(f'extends = "{DEMO}"\n{body}')
    return Build.for_profile(load_profile(profile), tmp_path / "work", dry_run=True)


def plan_text(build: Build, stage: str) -> str:
    return "\n".join("\n".join(step.script_lines()) for step in plan_stage(build, STAGE[stage]))


def test_off_plans_as_before(tmp_path: Path) -> None:
    build = demo_profile(tmp_path, "")
    text = plan_text(build, "bootloader")
    assert "shimx64" not in text and "sbsign" not in text and "BOOTX64.EFI" in text
    assert "ln " in plan_text(build, "iso") and "boot/vmlinuz" in plan_text(build, "iso")


def test_own_keys_plans_signing_and_takes_the_signed_kernel(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "db.key").write_text("key")
    (keys / "db.crt").write_text("cert")
    build = demo_profile(
        tmp_path,
        '[bootloader]\nsecure_boot = "own-keys"\n'
        'secure_boot_key = "keys/db.key"\nsecure_boot_cert = "keys/db.crt"\n'
        '[boottest]\nfirmware = "uefi"\n',
    )
    text = plan_text(build, "bootloader")
    assert text.count("sbsign --key") == 3
    iso = plan_text(build, "iso")
    assert "vmlinuz" not in "\n".join(line for line in iso.splitlines() if line.startswith("ln "))
    boot = plan_text(build, "boottest")
    assert "--set-pk" in boot and str(keys / "db.crt") in boot
    assert "-machine q35,smm=on" in boot and "OVMF_CODE_4M.secboot.fd" in boot


def test_own_keys_without_keys_is_refused_with_file_and_line(tmp_path: Path) -> None:
    build = demo_profile(tmp_path, '[bootloader]\nsecure_boot = "own-keys"\n')
    with pytest.raises(PlanError) as err:
        plan_stage(build, STAGE["bootloader"])
    assert err.value.option == "bootloader.secure_boot_key"
    assert f"{tmp_path / 'p.toml'}" in str(err.value)
    assert "secure-boot-keys" in str(err.value)


def test_shim_refuses_a_kernel_built_here_or_unsigned(tmp_path: Path) -> None:
    build = demo_profile(
        tmp_path, '[kernel]\nsource = "tree"\ntree = "."\n[bootloader]\nsecure_boot = "shim"\n'
    )
    with pytest.raises(PlanError, match="own-keys") as err:
        plan_stage(build, STAGE["bootloader"])
    assert err.value.option == "bootloader.secure_boot"
    assert f"{tmp_path / 'p.toml'}:6" in str(err.value)  # the line that sets it
    unsigned = tmp_path / "vmlinuz"
    unsigned.write_bytes(pe_image(0))
    build = demo_profile(
        tmp_path, f'[kernel]\nimage = "{unsigned}"\n[bootloader]\nsecure_boot = "shim"\n'
    )
    with pytest.raises(PlanError, match="carries no signature"):
        plan_stage(build, STAGE["bootloader"])


def test_shim_boot_test_uses_microsofts_keys(tmp_path: Path) -> None:
    build = demo_profile(
        tmp_path, '[bootloader]\nsecure_boot = "shim"\n[boottest]\nfirmware = "uefi"\n'
    )
    text = plan_text(build, "boottest")
    assert f"cp {secureboot.OVMF_VARS_MS}" in text and "virt-fw-vars" not in text
    bios = plan_text(demo_profile(tmp_path, '[bootloader]\nsecure_boot = "shim"\n'), "boottest")
    assert "q35" not in bios and "secboot" not in bios


def test_qemu_secure_boot_argv(tmp_path: Path) -> None:
    vars_copy, code = tmp_path / "a,b.fd", Path("/x/CODE.secboot.fd")
    argv = qemu.qemu_argv(
        tmp_path / "x.iso",
        firmware="uefi",
        medium="cdrom",
        memory_mib=512,
        accel="tcg",
        secure_boot=(vars_copy, code),
    )
    assert argv[argv.index("-machine") + 1] == "q35,smm=on"
    assert "driver=cfi.pflash01,property=secure,value=on" in argv
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in argv
    assert f"if=pflash,format=raw,unit=1,file={tmp_path}/a,,b.fd" in argv
    assert "-bios" not in argv
    with pytest.raises(ValueError):
        qemu.qemu_argv(
            tmp_path / "x.iso",
            firmware="bios",
            medium="cdrom",
            memory_mib=512,
            accel="tcg",
            secure_boot=(vars_copy, code),
        )


@pytest.mark.parametrize(
    "line",
    [
        "Verification failed: (0x1A) Security Violation",
        "error: bad shim signature.",
        'BdsDxe: failed to load Boot0001 "UEFI QEMU DVD-ROM" from PciRoot(0x0): Access Denied',
    ],
)
def test_a_secure_boot_refusal_is_a_failed_boot(line: str) -> None:
    assert qemu.boot_phase(line) == "failed"


def test_vars_enroll_argv_sets_every_key_to_the_certificate(tmp_path: Path) -> None:
    argv = secureboot.vars_enroll_argv(Path("/t.fd"), tmp_path / "c.crt", tmp_path / "o.fd")
    for flag in ("--set-pk", "--add-kek", "--add-db"):
        assert argv[argv.index(flag) + 2] == str(tmp_path / "c.crt")
    assert "--secure-boot" in argv and argv[-1] == str(tmp_path / "o.fd")
    assert shutil.which("openssl")  # make_keys' tool, installed by setup.sh


def test_a_refused_boot_is_diagnosed_as_secure_boot() -> None:
    lines = [
        "BdsDxe: starting Boot0001",
        "\x1b[1mVerification failed: (0x1A) Security Violation\x1b[0m",
        "OK",
    ]
    said, option = qemu.diagnose_boot(lines, "login:", serial=True)
    assert "Secure Boot refused" in said and "Verification failed" in said
    assert option == "bootloader.secure_boot"
    said, option = qemu.diagnose_boot(["GNU GRUB", "Linux version 6.1"], "login:", True)
    assert "Secure Boot" not in said
