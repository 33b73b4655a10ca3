"""The build's stages, in the order they run.

Each module declares one ``STAGE``: a planner that turns a profile into steps, plus what
the stage reads (for fingerprints). The order follows the method: tools, kernel, system
image, writable dirs, initrd, boot loader, ISO, boot test. The writable dirs' archive comes
before the initrd, whose config records the sha256 of the images (the media check).
"""

from __future__ import annotations

from livecd_tui.engine import Stage
from livecd_tui.stages import (
    bootloader,
    boottest,
    initrd,
    iso,
    kernel,
    preflight,
    system,
    writable,
)

STAGES: tuple[Stage, ...] = (
    preflight.STAGE,
    kernel.STAGE,
    system.STAGE,
    writable.STAGE,
    initrd.STAGE,
    bootloader.STAGE,
    iso.STAGE,
    boottest.STAGE,
)

STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
