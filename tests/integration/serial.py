"""A live system booted in QEMU and driven over its serial console, as a user logs in.

The boot test only waits for a prompt; these tests log in and run commands in the live
system (did modprobe find a module the initrd did not load?). QEMU's serial port is its
stdin/stdout; a thread collects what the guest prints.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from livecd_tui import qemu


def direct_kernel_args(kernel: Path, initrd: Path, append: str) -> list[str]:
    """Extra arguments to boot *kernel* + *initrd* directly with command line *append*.

    Skips the boot loader (the ISO stays attached as the medium): a quick way to test the
    initramfs with extra words such as ``livecd.debug``. Pass the result as *extra_args* of
    :func:`livecd_tui.qemu.qemu_argv`.
    """
    if "\n" in append:
        raise ValueError("the kernel command line must be one line")
    return ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append]


class Guest:
    """A running guest: what its console printed so far, and a way to type."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(4096):  # type: ignore[attr-defined]
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            text = b"".join(self._chunks).decode(errors="replace").replace("\r", "")
        return qemu.strip_ansi(text)  # bash's bracketed-paste switches, colours

    def expect(self, text: str, timeout: float, after: int = 0) -> int:
        """Wait until ``text`` appears after offset ``after``; its end offset. Fails with
        the console's last lines when it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.output.find(text, after)
            if found >= 0:
                return found + len(text)
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = "\n".join(self.output.splitlines()[-40:])
        raise AssertionError(
            f"{text!r} did not appear within {timeout:g} s; the console showed last:\n{tail}"
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\r")
        self.proc.stdin.flush()

    def run(self, command: str, token: str, timeout: float = 120) -> str:
        """Type ``command; echo token`` and return what the guest printed before the token
        (``token`` should be computed by the shell, e.g. ``$((6*7))``, so that the echoed
        command line itself does not match)."""
        start = len(self.output)
        self.send(command)
        end = self.expect(token, timeout, after=start)
        return self.output[start:end]


@contextlib.contextmanager
def booted(
    iso: Path,
    memory_mib: int = 768,
    timeout: int = 1200,
    disks: Sequence[Path] = (),
    interface: str = "virtio",
) -> Iterator[Guest]:
    """Boot ``iso`` as a BIOS CD under TCG with the serial console on a pipe; ``disks``
    are raw images attached as virtio disks (vda, vdb, ...), or with ``interface="ide"``
    as IDE disks (sda, ...: a kernel without virtio drivers sees those)."""
    extra: list[str] = []
    for index, disk in enumerate(disks):
        where = ",index=" + str(index) if interface == "ide" else ""
        extra += ["-drive", f"file={qemu.option_value(disk)},format=raw,if={interface}{where}"]
    argv = qemu.qemu_argv(
        iso,
        firmware="bios",
        medium="cdrom",
        memory_mib=memory_mib,
        accel="tcg",
        timeout=timeout,
        extra_args=extra,
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Guest(proc)
    finally:
        qemu.stop_qemu(proc)


def log_in(guest: Guest, user: str = "root", timeout: float = 900) -> None:
    """Wait for the serial getty's prompt, log in (no password), wait for the shell."""
    at = guest.expect("login:", timeout)
    guest.send(user)
    guest.expect("#" if user == "root" else "$", 120, after=at)
