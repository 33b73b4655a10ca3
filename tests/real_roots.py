"""Real system roots for the integration tests, made with debootstrap once per machine and
cached outside the repository (next to the classic test kernel).

- ``lfs``: what an LFS box looks like to livecd-tui: SysV init, no busybox anywhere, bash,
  coreutils, util-linux, kmod, udev, and a kernel with its modules installed into the root
  (``/boot/vmlinuz-RELEASE``, ``/lib/modules/RELEASE``, as ``make modules_install`` does);
  the kernel is this host's Debian kernel.
- ``systemd``: a Debian root with systemd and no kernel at all (it would be booted with the
  host's kernel, whose modules are not in it).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from livecd_tui.build import find_prebuilt_kernel
from tests import kernel_tree

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = {
    "lfs": "sysvinit-core,udev,kmod",
    "systemd": "systemd-sysv,udev,kmod",
}
#: Bump when the way a root is made changes, so cached roots are made again.
VERSION = "1"
#: debootstrap runs at most this often for one root.
ATTEMPTS = 2


class RootError(Exception):
    """A test root could not be made (debootstrap failed: no network?)."""


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def real_root(name: str, cache: Path | None = None) -> Path:
    """The cached root ``name`` ("lfs" or "systemd"), made on first use (about a minute)."""
    cache = (cache or kernel_tree.default_cache_dir()) / "roots"
    root = cache / name
    stamp = cache / f"{name}.done"
    with _locked(cache):
        if stamp.is_file() and stamp.read_text().strip() == VERSION and root.is_dir():
            return root
        shutil.rmtree(root, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
        try:
            for attempt in range(ATTEMPTS):  # the archive is across a network: retry once
                shutil.rmtree(tmp / "root", ignore_errors=True)
                result = subprocess.run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        f"--include={PACKAGES[name]}",
                        SUITE,
                        str(tmp / "root"),
                        MIRROR,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode == 0:
                    break
                if attempt == ATTEMPTS - 1:
                    raise RootError(
                        f"debootstrap {name} failed:\n{result.stdout[-3000:]}"
                        f"{result.stderr[-3000:]}"
                    )
            _finish(name, tmp / "root")
            (tmp / "root").rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        stamp.write_text(VERSION + "\n")
        return root


def _finish(name: str, root: Path) -> None:
    (root / "etc" / "hostname").write_text(f"livecd-{name}\n")
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / leftover).glob("*.deb"):
            entry.unlink()
    found = list(root.rglob("busybox"))
    if found:
        raise RootError(f"the {name} root holds busybox ({found[0]}): it must not")
    if name == "lfs":
        kernel = find_prebuilt_kernel(Path("/"))
        if kernel is None:
            raise RootError("no kernel in /boot to install into the LFS-like root")
        image, release = kernel
        (root / "boot").mkdir(exist_ok=True)
        shutil.copy2(image, root / "boot" / f"vmlinuz-{release}")
        config = Path("/boot") / f"config-{release}"
        if config.is_file():
            shutil.copy2(config, root / "boot" / config.name)
        shutil.copytree(
            Path("/lib/modules") / release, root / "lib" / "modules" / release, symlinks=True
        )


if __name__ == "__main__":
    import sys

    for wanted in sys.argv[1:] or list(PACKAGES):
        print(real_root(wanted))
