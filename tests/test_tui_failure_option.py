"""The build screen's `e` goes to the option the failed step named, before any other."""

from __future__ import annotations

from livecd_tui.engine import Failure
from livecd_tui.stages import boottest
from livecd_tui.tui.build_screen import option_for_failure


def test_e_goes_to_the_option_the_diagnosis_named() -> None:
    # The hint names boottest.timeout first; a login prompt was seen, so the marker is wrong.
    failure = Failure(
        "boottest",
        0,
        "boot",
        "qemu-system-x86_64 ...",
        None,
        None,
        ["box login: ", "timed out after 300 s without seeing 'READY'"],
        hint="a longer boottest.timeout; another boottest.marker",
        option="boottest.marker",
    )
    assert option_for_failure(boottest.STAGE, failure) == "boottest.marker"


def test_without_a_named_option_the_text_decides() -> None:
    failure = Failure(
        "boottest", 0, "boot", "qemu", None, None, ["no luck"], hint="a longer boottest.timeout"
    )
    assert option_for_failure(boottest.STAGE, failure) == "boottest.timeout"
