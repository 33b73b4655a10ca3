"""Command output made safe to show on a terminal.

A booting GRUB draws its menu on the serial console with colours, cursor moves and a
whole-terminal reset; printed as is, those lines would turn off line wrapping or clear the
user's screen. The logs keep the raw lines; what is shown goes through :func:`printable`.
"""

from __future__ import annotations

import re

#: Terminal control sequences (CSI, OSC, other escapes) and the other control characters.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?|[\x00-\x08\x0b-\x1f\x7f]"
)


def printable(line: str) -> str:
    """A line without the terminal control sequences in it; tabs expanded."""
    if "\t" in line:
        line = line.expandtabs()
    return _ESCAPES.sub("", line) if not line.isprintable() else line
