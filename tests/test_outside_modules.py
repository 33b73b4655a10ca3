"""A real root without the CD kernel's modules (it runs another kernel): system.modules
puts them into the image from outside the root, as the help says, and leaves the root as
it was. Real mksquashfs; the modules are a few of the host kernel's, with a real depmod."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_scrub import KERNEL, build, squashfs_paths, tree_digest

#: What the initrd needs (the medium's drivers, loop, squashfs, overlay) and one it does not.
MODULES = (
    "kernel/fs/isofs/isofs.ko",
    "kernel/drivers/cdrom/cdrom.ko",
    "kernel/drivers/scsi/sr_mod.ko",
    "kernel/drivers/scsi/scsi_mod.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/fs/squashfs/squashfs.ko",
    "kernel/fs/overlayfs/overlay.ko",
    "kernel/net/key/af_key.ko",
)

needs_tools = pytest.mark.skipif(
    KERNEL is None or not all(shutil.which(t) for t in ("mksquashfs", "unsquashfs")),
    reason="needs a kernel in /boot with its modules, and squashfs-tools",
)


def small_modules_dir(tmp_path: Path, release: str) -> Path:
    """A few of the host kernel's modules in a modules dir of their own (depmod run)."""
    base = tmp_path / "kmods"
    target = base / "lib" / "modules" / release
    for rel in MODULES:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path("/lib/modules") / release / rel, target / rel)
    for name in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        if (Path("/lib/modules") / release / name).is_file():
            shutil.copy2(Path("/lib/modules") / release / name, target / name)
    subprocess.run(["depmod", "-b", str(base), release], check=True)
    return target


def merged_usr_root(root: Path) -> None:
    """A small merged-/usr system (lib is a link to usr/lib) with no /usr/lib/modules."""
    for d in ("usr/bin", "usr/lib", "usr/sbin", "etc", "var"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name in ("bin", "lib", "sbin"):
        (root / name).symlink_to(f"usr/{name}")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "usr/bin/busybox")
    (root / "usr/bin/sh").symlink_to("busybox")
    (root / "usr/sbin/init").symlink_to("../bin/busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def outside_setup(tmp_path: Path, mode: str = "all") -> tuple[Path, Path, Path, str]:
    """A merged-/usr root without modules and a profile that packs it with a few of the
    host kernel's modules from outside: (profile, root, modules dir, release)."""
    assert KERNEL is not None
    image, release = KERNEL
    modules = small_modules_dir(tmp_path, release)
    root = tmp_path / "root"
    merged_usr_root(root)
    profile = tmp_path / "outside.toml"
    profile.write_text(
        f'[kernel]\nimage = "{image}"\nmodules_dir = "{modules}"\n'
        f'[system]\nsource = "root"\nroot = "{root}"\ndirs = ["bin", "lib", "sbin", "usr"]\n'
        f'modules = "{mode}"\ncompressor = "gzip"\n'
    )
    return profile, root, modules, release


@needs_tools
@pytest.mark.parametrize("mode", ["all", "initrd", "none"])
def test_modules_from_outside_the_root(tmp_path: Path, mode: str) -> None:
    profile, root, _modules, release = outside_setup(tmp_path, mode)
    before = tree_digest(root)
    result = build(profile, tmp_path / "work", "preflight,kernel,system")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert tree_digest(root) == before, "the root was changed"

    paths = squashfs_paths(tmp_path / "work" / "stages" / "system" / "system.squashfs")
    inside = f"usr/lib/modules/{release}"
    packed = {p.removeprefix(inside + "/") for p in paths if p.startswith(inside + "/")}
    kos = {p for p in packed if p.endswith(".ko")}
    if mode == "all":
        assert kos == set(MODULES)
        assert "modules.dep" in packed and "modules.builtin" in packed
    elif mode == "initrd":
        # The initrd loads the CD drivers it finds; af_key is nobody's medium.
        assert kos and kos < set(MODULES) and "kernel/net/key/af_key.ko" not in kos
        assert "modules.dep" in packed
    else:
        assert inside not in paths and not packed
    assert "lib" in paths and not any(p.startswith("lib/") for p in paths), (
        "lib stays the root's link to usr/lib"
    )
    log = (tmp_path / "work" / "logs" / "system.log").read_text()
    if mode != "none":
        assert "is not changed" in log


@needs_tools
def test_the_exported_script_writes_the_same_pseudo_files(tmp_path: Path) -> None:
    """The bash twin of the modules step gives the very definitions livecd-tui wrote."""
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile
    from livecd_tui.stages import system

    profile_path, root, modules, _release = outside_setup(tmp_path)
    work = tmp_path / "work"
    result = build(profile_path, work, "preflight,kernel,system")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = work / "stages" / "system" / system.MODULES_PSEUDO
    wanted = sorted(done.read_text().splitlines())

    the_build = Build.for_profile(load_profile(profile_path), work)
    step = system.outside_modules_step(the_build, root, modules)
    the_build.partial_dir("system").mkdir(parents=True)
    subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(step.script_lines())], check=True
    )
    made = the_build.partial_dir("system") / system.MODULES_PSEUDO
    assert sorted(made.read_text().splitlines()) == wanted


@needs_tools
def test_capture_shows_the_modules_from_outside(tmp_path: Path) -> None:
    from livecd_tui import capture
    from livecd_tui.build import Build
    from livecd_tui.profile import load_profile

    profile_path, _root, modules, release = outside_setup(tmp_path)
    found = capture.scan(Build.for_profile(load_profile(profile_path), tmp_path / "work"))
    packed = {path for path, _host, _size in found.files}
    assert {f"usr/lib/modules/{release}/{rel}" for rel in MODULES} <= packed
    assert any(str(modules) in note for note in found.notes)
