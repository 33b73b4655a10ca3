"""Helpers for the integration tests: they build real ISOs with the real tools and boot them
in QEMU through the real `livecd-tui` command. Nothing here is faked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
#: A fixed time for every timestamp, so builds are comparable.
EPOCH = "1700000000"

@dataclass
class Result:
    code: int
    output: str

    def ran(self) -> list[str]:
        """Stages that ran (not skipped), in order."""
        return re.findall(r"^==> (\w+): \d+ step", self.output, re.M)

    def status(self, stage: str) -> str | None:
        found = re.findall(rf"^==> {stage}: (done|failed|interrupted|up to date)", self.output,
                           re.M)
        return found[-1] if found else None


def livecd(*args: str | Path, timeout: float = 1800) -> Result:
    """Run the real `livecd-tui` command and return its exit code and output."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    proc = subprocess.run([sys.executable, "-m", "livecd_tui.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    return Result(proc.returncode, proc.stdout + proc.stderr)


def write_profile(path: Path, base: Path, body: str) -> Path:
    """A test profile that extends a shipped one."""
    path.write_text(f'extends = "{base}"\n{body}')
    return path


def serial_log(work: Path) -> str:
    return (work / "logs" / "boottest.log").read_text(errors="replace")
