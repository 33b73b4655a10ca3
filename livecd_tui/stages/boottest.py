"""Stage ``boottest``: boot the ISO in QEMU before anyone burns a disc (method step 12).

QEMU runs headless with the serial console on its standard output, so the console is the
stage's log; the stage succeeds when the profile's success marker appears and fails on
timeout with the last console lines. KVM is used only when a test guest really runs with it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from livecd_tui import qemu, tools
from livecd_tui.build import Build
from livecd_tui.engine import Stage
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


def plan_boottest(build: Build) -> list[Step]:
    p = build.profile
    if not p["boottest.enabled"]:
        return [command(["true"], "the boot test is turned off (boottest.enabled)")]
    ovmf = qemu.find_ovmf() if p["boottest.firmware"] == "uefi" else None
    argv = qemu.qemu_argv(build.iso_path, firmware=p["boottest.firmware"],
                          medium=p["boottest.medium"], memory_mib=int(p["boottest.memory_mib"]),
                          accel=accelerator(build), ovmf=ovmf)
    return [command(argv, f"boot the ISO ({p['boottest.firmware']}, {p['boottest.medium']}) "
                          f"and wait for {p['boottest.marker']!r} on the serial console",
                    until=p["boottest.marker"], timeout=float(p["boottest.timeout"]),
                    hint=f"read the serial log, {build.log_path('boottest')}; a "
                         "boot that was only slow (no KVM: QEMU emulates the CPU) needs a "
                         "longer boottest.timeout; a different prompt, another "
                         "boottest.marker; QEMU itself is Debian's "
                         f"{tools.QEMU.debian}",
                    option="boottest.timeout",
                    diagnose=lambda lines: qemu.diagnose_boot(
                        lines, p["boottest.marker"], bool(p["bootloader.serial"])))]


STAGE = Stage(
    name="boottest",
    title="Boot test",
    describe="Boot the ISO in QEMU with a serial console and wait for the success marker.",
    plan=plan_boottest,
    reads=("boottest.",),
    uses=("iso",),
)
