"""The TUI's preview of what the system image will hold, opened from the System menu (the
real preview of the demo profile: a busybox system, a sample packed by mksquashfs)."""

from __future__ import annotations

import shutil

import pytest
from textual.widgets import TextArea

from livecd_tui import capture
from livecd_tui.profile import Profile
from livecd_tui.tui.capture_screen import CaptureScreen
from livecd_tui.tui.editor_screen import EditorScreen
from tests.test_tui import SIZE, demo, go_to, make_app, pilot_test

__all__ = ["demo"]  # the fixture, imported for this module's tests

needs_tools = pytest.mark.skipif(
    not shutil.which("mksquashfs") or not shutil.which("busybox"),
    reason="needs mksquashfs and busybox",
)


def active(app, action: str) -> bool:  # type: ignore[no-untyped-def]
    return any(
        b.binding.action == action and b.enabled for b in app.screen.active_bindings.values()
    )


@needs_tools
@pilot_test
async def test_preview_opens_from_the_system_menu(demo: Profile) -> None:
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await go_to(pilot, app, "bootloader.timeout")
        assert not active(app, "capture")
        await pilot.press("v")
        assert isinstance(app.screen, EditorScreen)  # v belongs to the System menu
        await go_to(pilot, app, "system.compressor")
        assert active(app, "capture")
        await pilot.press("v")
        assert isinstance(app.screen, CaptureScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        area = app.screen.query_one("#capture", TextArea)
        for text in ("packed", "bin", "estimate: zstd", "ISO", "[iso.medium]"):
            assert text in area.text
        assert area.border_subtitle == "no warnings"
        await pilot.press("escape")
        assert isinstance(app.screen, EditorScreen)


@needs_tools
@pilot_test
async def test_preview_follows_unsaved_changes_and_warns(
    demo: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.set("system.excludes", ["usr/bin/*"])  # not saved: the preview uses it anyway
    monkeypatch.setattr(capture, "free_space", lambda path: 0)  # a full disk: a warning
    app = make_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.action_capture()  # type: ignore[attr-defined]
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        area = app.screen.query_one("#capture", TextArea)
        assert "  usr/bin/*  (" in area.text
        assert "listed in system.excludes [system.excludes]" in area.text
        assert area.border_subtitle == "1 warning(s)"
        assert "! the work dir" in area.text
