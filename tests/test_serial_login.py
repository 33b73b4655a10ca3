"""A login prompt on the serial console whenever bootloader.serial is on (the boot test
waits for 'login:' there): SysV and busybox inittabs get a getty line when they lack one."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecd_tui import scrub
from livecd_tui.build import Build
from livecd_tui.profile import new_profile

#: Debian's sysvinit-core inittab: the serial getty is there, commented out.
DEBIAN_INITTAB = """\
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
1:2345:respawn:/sbin/getty 38400 tty1
2:23:respawn:/sbin/getty 38400 tty2
#T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100
"""


def sysv_root(root: Path, inittab: str = DEBIAN_INITTAB) -> Path:
    for d in ("sbin", "etc", "bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sbin" / "init").write_text("#!/bin/sh\n")  # not systemd, not busybox
    (root / "sbin" / "agetty").write_text("#!/bin/sh\n")
    (root / "etc" / "inittab").write_text(inittab)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return root


def plan_for(root: Path, **values: object) -> scrub.ScrubPlan:
    profile = new_profile()
    for key, value in values.items():
        profile.set(key, value)
    return scrub.make_plan(Build(profile=profile, work=root.parent / "work"), root, ["etc"])


def inittab_of(plan: scrub.ScrubPlan) -> str | None:
    found = next((r for r in plan.replacements if r.path == "etc/inittab"), None)
    return found.content.decode() if found else None


def test_sysvinit_gets_a_getty_on_the_serial_console(tmp_path: Path) -> None:
    root = sysv_root(tmp_path / "root")
    text = inittab_of(plan_for(root, **{"bootloader.serial_speed": 38400}))
    assert text is not None and text.startswith(DEBIAN_INITTAB)
    assert text.endswith("S0:2345:respawn:/sbin/agetty -L ttyS0 38400 vt100\n")
    assert scrub.has_serial_getty(text)
    assert (root / "etc" / "inittab").read_text() == DEBIAN_INITTAB, "the root is not changed"


def test_no_serial_no_line_and_an_existing_getty_is_kept(tmp_path: Path) -> None:
    root = sysv_root(tmp_path / "root")
    assert inittab_of(plan_for(root, **{"bootloader.serial": False})) is None
    own = DEBIAN_INITTAB + "T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100\n"
    other = sysv_root(tmp_path / "other", own)
    assert inittab_of(plan_for(other)) is None


def test_an_inittab_in_the_overrides_wins(tmp_path: Path) -> None:
    root = sysv_root(tmp_path / "root")
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "inittab").write_text("id:2:initdefault:\n")
    assert inittab_of(plan_for(root, **{"writable.overrides": str(overrides)})) is None


def test_autologin_everywhere_reaches_the_new_serial_getty(tmp_path: Path) -> None:
    root = sysv_root(tmp_path / "root")
    text = inittab_of(plan_for(root, **{"system.login.autologin": "all"}))
    assert text is not None
    assert "S0:2345:respawn:/sbin/agetty --autologin root -L ttyS0 115200 vt100" in text


@pytest.mark.parametrize(
    ("inittab", "found"),
    [
        ("ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n", True),
        ("T0:23:respawn:/sbin/agetty -L 115200 /dev/ttyS0 vt100\n", True),
        ("#T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100\n", False),
        ("T0:23:off:/sbin/getty -L ttyS0 9600 vt100\n", False),
        ("1:2345:respawn:/sbin/getty 38400 tty1\n", False),
    ],
)
def test_has_serial_getty(inittab: str, found: bool) -> None:
    assert scrub.has_serial_getty(inittab) is found


def test_busybox_init_gets_its_own_getty_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("bin", "sbin", "etc"):
        (root / d).mkdir(parents=True)
    (root / "bin" / "busybox").write_text("")
    (root / "sbin" / "init").symlink_to("../bin/busybox")
    (root / "sbin" / "getty").symlink_to("../bin/busybox")
    (root / "etc" / "inittab").write_text("::sysinit:/etc/init.d/rcS\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    text = inittab_of(plan_for(root))
    assert text == "::sysinit:/etc/init.d/rcS\nttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n"
