"""Stage ``boottest``: boot the ISO in QEMU before anyone burns a disc (method step 12).

QEMU runs headless with the serial console on its standard output, so the console is the
stage's log; the stage succeeds when the profile's success marker appears and fails on
timeout with the last console lines. KVM is used only when a test guest really runs with it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from livecd_tui import qemu, secureboot, tools
from livecd_tui.build import Build
from livecd_tui.engine import Stage, StepFailed
from livecd_tui.steps import Step, command


def accelerator(build: Build) -> str:
    """The profile's accelerator; for 'auto', whether KVM really works on this host.

    Probing takes seconds when /dev/kvm exists, so the answer is kept per host boot
    (keyed by the kernel's boot id) in the user's cache dir. A dry run (plan,
    export-script) never probes: it takes the kept answer, else TCG, which always works.
    """
    choice = build.profile["boottest.accel"]
    if choice != "auto":
        return str(choice)
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "tcg" if build.dry_run else qemu.detect_accel()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "livecd-tui"
    remembered = cache / f"accel-{boot_id}"
    with contextlib.suppress(OSError):
        answer = remembered.read_text().strip()
        if answer in qemu.ACCELS:
            return answer
    if build.dry_run:
        return "tcg"
    answer = qemu.detect_accel()
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        remembered.write_text(answer + "\n")
    return answer


def secure_boot_vars_steps(build: Build) -> tuple[list[Step], Path] | None:
    """With Secure Boot on and a UEFI boot test: the steps that make a fresh, writable
    copy of the variable store (the firmware writes to it), and that copy's path.

    The template is boottest.secure_boot_vars, else Debian's with Microsoft's keys (shim),
    else (own-keys) one made by virt-fw-vars with the user's certificate as PK, KEK, db.
    """
    p = build.profile
    mode = secureboot.mode_of(p)
    if mode == "off" or p["boottest.firmware"] != "uefi":
        return None
    out = build.partial_dir("boottest")
    copy = out / "secure-boot-vars.fd"
    steps: list[Step] = []
    template = p.resolve_path("boottest.secure_boot_vars")
    if template is None and mode == "shim":
        template = secureboot.OVMF_VARS_MS
    if template is None:
        cert = p.resolve_path("bootloader.secure_boot_cert")
        if cert is None:
            raise StepFailed(
                "the own-keys boot test needs a variable store that trusts "
                "your certificate: set bootloader.secure_boot_cert (one is "
                "made from it) or boottest.secure_boot_vars",
                option="boottest.secure_boot_vars",
            )
        template = out / "secure-boot-vars-template.fd"
        argv = secureboot.vars_enroll_argv(secureboot.OVMF_VARS_BLANK, cert, template)
        argv[0] = tools.VIRT_FW_VARS.find() or argv[0]
        steps.append(command(["rm", "-f", template], "remove an old variable store"))
        steps.append(
            command(
                argv,
                "enroll your certificate as PK, KEK and db in a copy of "
                "OVMF's variables, Secure Boot on",
                hint="pip install virt-firmware, or set boottest.secure_boot_vars",
                option="boottest.secure_boot_vars",
            )
        )
    steps.append(
        command(
            ["cp", template, copy],
            "copy the UEFI variable store for this boot (the firmware writes to it)",
        )
    )
    return steps, copy


def plan_boottest(build: Build) -> list[Step]:
    p = build.profile
    if not p["boottest.enabled"]:
        return [command(["true"], "the boot test is turned off (boottest.enabled)")]
    ovmf = qemu.find_ovmf() if p["boottest.firmware"] == "uefi" else None
    steps: list[Step] = []
    secure = secure_boot_vars_steps(build)
    if secure is not None:
        steps, copy = secure
        code = tools.OVMF_SECBOOT.find() or str(secureboot.OVMF_SECBOOT_CODE)
    argv = qemu.qemu_argv(
        build.iso_path,
        firmware=p["boottest.firmware"],
        medium=p["boottest.medium"],
        memory_mib=int(p["boottest.memory_mib"]),
        accel=accelerator(build),
        ovmf=ovmf,
        secure_boot=(copy, Path(code)) if secure is not None else None,
    )
    firmware = p["boottest.firmware"] + (" Secure Boot" if secure is not None else "")
    return [
        *steps,
        command(
            argv,
            f"boot the ISO ({firmware}, {p['boottest.medium']}) "
            f"and wait for {p['boottest.marker']!r} on the serial console",
            until=p["boottest.marker"],
            timeout=float(p["boottest.timeout"]),
            hint=f"read the serial log, {build.log_path('boottest')}; a "
            "boot that was only slow (no KVM: QEMU emulates the CPU) needs a "
            "longer boottest.timeout; a different prompt, another "
            "boottest.marker; QEMU itself is Debian's "
            f"{tools.QEMU.debian}",
            option="boottest.timeout",
            diagnose=lambda lines: qemu.diagnose_boot(
                lines, p["boottest.marker"], bool(p["bootloader.serial"])
            ),
        ),
    ]


STAGE = Stage(
    name="boottest",
    title="Boot test",
    describe="Boot the ISO in QEMU with a serial console and wait for the success marker.",
    plan=plan_boottest,
    reads=("boottest.", "bootloader.type", "bootloader.secure_boot", "bootloader.secure_boot_cert"),
    uses=("iso",),
)
