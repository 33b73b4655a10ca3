"""The option schema: complete, consistent, and the single source of the docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from livecd_tui.options import MENUS, OPTIONS, defaults, reference_markdown, validate_value

ROOT = Path(__file__).resolve().parent.parent


def test_every_default_is_valid() -> None:
    for key, option in OPTIONS.items():
        _, reason = validate_value(option, option.default)
        assert reason is None, f"{key}: {reason}"


def test_every_option_has_a_menu_title_and_help() -> None:
    for key, option in OPTIONS.items():
        assert option.section in MENUS, key
        assert option.title and len(option.help) > 30, key


def test_depends_on_refers_to_real_options_and_values() -> None:
    for key, option in OPTIONS.items():
        for other, values in option.depends_on:
            assert other in OPTIONS, key
            for value in values:
                _, reason = validate_value(OPTIONS[other], value)
                assert reason is None, f"{key} depends on {other}={value!r}: {reason}"


def test_the_method_is_covered() -> None:
    must = [
        "kernel.source",
        "kernel.image",
        "kernel.tree",
        "kernel.drivers.sound",
        "initrd.format",
        "initrd.size_mib",
        "initrd.device_manager",
        "initrd.compression",
        "system.root",
        "system.dirs",
        "system.compressor",
        "system.block_size",
        "writable.strategy",
        "writable.overrides",
        "writable.copy_to_ram",
        "bootloader.type",
        "bootloader.entries",
        "bootloader.serial",
        "iso.tool",
        "iso.marker",
        "iso.hybrid",
        "iso.checksum",
        "boottest.firmware",
        "boottest.accel",
        "build.work_dir",
        "build.source_date_epoch",
        "build.jobs",
    ]
    assert not [k for k in must if k not in OPTIONS]
    assert defaults()["system.dirs"] == ["bin", "lib", "sbin", "usr"]


def test_docs_options_md_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "options.md").read_text() == reference_markdown()


def test_core_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "import livecd_tui.cli, livecd_tui.engine, livecd_tui.stages, livecd_tui.checks\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_block_size_must_be_a_power_of_two() -> None:
    option = OPTIONS["system.block_size"]
    assert validate_value(option, 256) == (256, None)
    value, reason = validate_value(option, 100)
    assert value is None and reason is not None
    assert "not a power of two" in reason and "64 or 128 KiB" in reason
