"""ASCII mode: the TUI on a terminal that shows ASCII only.

An LFS box's console is often a Linux virtual terminal (``TERM=linux``) without a UTF-8
locale, and its font lacks many of the box, block and symbol glyphs Textual draws
(``━ ▏ ⭘ ▊``, rounded corners). In ASCII mode the app draws ASCII itself: ascii borders
(``ascii.tcss``), ``> v`` tree icons and ``|- `-`` guides, ``#`` progress bars, scroll bars
of colour only, ``*`` as the header's icon. What still is not ASCII (a log line, a value
with accents) is turned into ASCII on its way to the terminal, one character per cell, by
:class:`AsciiDriver`: the layout Textual computed stays right.

The mode is chosen by ``LIVECD_TUI_ASCII=1`` (or ``0``: never), else automatically on the
Linux console and where the locale's encoding is not UTF-8.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.console import RenderResult as RichResult
from rich.text import Text
from textual.app import RenderResult
from textual.command import CommandPalette, SearchIcon
from textual.dom import DOMNode
from textual.drivers.linux_driver import LinuxDriver
from textual.renderables.bar import Bar as BarRenderable
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widgets import Header, LoadingIndicator, TextArea

#: The environment variable that chooses the mode: 1 (ASCII) or 0 (Unicode), else automatic.
ENV = "LIVECD_TUI_ASCII"
#: The stylesheet added in ASCII mode (borders).
CSS = Path(__file__).with_name("ascii.tcss")

#: The header's icon (Textual's is ``⭘``).
HEADER_ICON = "*"
#: The tree's menu icons (closed, open) and guide lines (Textual's ``Tree.LINES`` layout:
#: blank, vertical, last child, other child).
TREE_ICONS = ("> ", "v ")
TREE_LINES = ("  ", "| ", "`-", "|-")
#: The progress bar: done, still to do.
BAR_DONE = "#"
BAR_TODO = "-"

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def started_environ() -> Mapping[str, str]:
    """The environment the process was started with.

    Python replaces a C locale by C.UTF-8 at start (PEP 538: it sets ``LC_CTYPE``), so
    ``os.environ`` says UTF-8 where the user's terminal was set up for ASCII;
    ``/proc/self/environ`` still holds what the process was given.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def locale_is_utf8(environ: Mapping[str, str]) -> bool:
    """Whether the locale these variables choose for characters (LC_ALL, LC_CTYPE, LANG,
    the first one set) encodes UTF-8; none set is the C locale."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            return re.search(r"utf-?8", value, re.IGNORECASE) is not None
    return False


def ascii_wanted(
    environ: Mapping[str, str] | None = None, started: Mapping[str, str] | None = None
) -> bool:
    """Whether the TUI should draw ASCII only: as ``LIVECD_TUI_ASCII`` says, else on the
    Linux console (its fonts lack glyphs Textual uses) and without a UTF-8 locale.
    ``started``: the environment the process began with (to see through PEP 538)."""
    env = os.environ if environ is None else environ
    chosen = env.get(ENV, "").strip().lower()
    if chosen in _TRUE:
        return True
    if chosen in _FALSE:
        return False
    if env.get("TERM") == "linux":
        return True
    if started is None:
        started = started_environ() if environ is None else env
    return not locale_is_utf8(started)


# -- characters on their way to the terminal ------------------------------------------
#: One ASCII character for the non-ASCII ones Textual and tools print most.
_GROUPS = {
    "-": "─━═╌╍┄┅┈┉╴╶╸╺╼╾▔▁‐‑‒–—―−",
    "|": "│┃║╎╏┆┇┊┋╵╷╹╻╽╿▏▎▍▌▋▊▉▐▕",
    "+": "┌┍┎┏┐┑┒┓└┕┖┗┘┙┚┛├┝┞┟┠┡┢┣┤┥┦┧┨┩┪┫┬┭┮┯┰┱┲┳┴┵┶┷┸┹┺┻┼┽┾┿╀╁╂╃╄╅╆╇╈╉╊╋"
    "╒╓╔╕╖╗╘╙╚╛╜╝╞╟╠╡╢╣╤╥╦╧╨╩╪╫╬╭╮╯╰▖▗▘▙▚▛▜▝▞▟",
    "#": "█▀▄░▒▓■▪",
    ">": "►▶▸▹→⇒»›",
    "<": "◄◀◂◃←⇐«‹",
    "v": "▼▾▽↓",
    "^": "▲▴△↑",
    "o": "⭘○◯◦",
    "*": "•●∙✱★☆",
    ".": "·…⋯",
    "x": "×✗✘✕",
    '"': "“”„‟″",
    "'": "‘’‚‛′",
    " ": "\u00a0\u2002\u2003\u2009\u200a\u202f",
}


class _AsciiTable(dict[int, str]):
    """``str.translate`` table filled on demand: each character becomes as many ASCII
    characters as it takes cells (a wide one two, a combining one none)."""

    def __init__(self) -> None:
        super().__init__(
            {
                ord(char): ascii_char
                for ascii_char, chars in _GROUPS.items()
                for char in chars
                if len(ascii_char) == 1
            }
        )

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char.isascii():  # escape sequences and text stay as they are
            self[code] = char
            return char
        width = cell_len(char)
        base = unicodedata.normalize("NFKD", char)[:1]
        shown = base if base.isascii() and base.isprintable() and base else "?"
        self[code] = value = shown * width
        return value


_TABLE = _AsciiTable()


def to_ascii(text: str) -> str:
    """``text`` with every character ASCII, taking the same cells: box lines become
    ``- | +``, arrows ``> <``, accented letters their base letter, the rest ``?``."""
    return text if text.isascii() else text.translate(_TABLE)


class AsciiDriver(LinuxDriver):
    """Textual's terminal driver, writing ASCII only (see :func:`to_ascii`).

    What reaches the terminal otherwise: Textual writes through ``sys.__stderr__``; under a
    C locale Python's UTF-8 mode makes that UTF-8 (bytes a non-UTF-8 console shows as two or
    three wrong characters each), and with ``PYTHONUTF8=0`` it is ASCII with backslash
    escapes (``\u2500``: six cells for one). ASCII in, both write the same bytes.
    """

    def write(self, data: str) -> None:
        super().write(to_ascii(data))


# -- Textual's glyphs, drawn in ASCII ---------------------------------------------------
def is_ascii(node: DOMNode) -> bool:
    """Whether the app ``node`` belongs to draws ASCII only."""
    return bool(getattr(node.app, "ascii", False))


def header(node: DOMNode) -> Header:
    """The screens' header; with an ASCII icon in ASCII mode."""
    return Header(icon=HEADER_ICON) if is_ascii(node) else Header()


def text_view(view_id: str, title: str, text: str = "") -> TextArea:
    """A read-only, unwrapped text area with a border title: the plan and capture views."""
    area = TextArea(text, read_only=True, show_line_numbers=False, soft_wrap=False, id=view_id)
    area.border_title = title
    return area


class AsciiScrollBarRender(ScrollBarRender):
    """Scroll bars of colour only: the thumb's ends are whole cells, not eighth blocks."""

    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8


class AsciiBar(BarRenderable):
    """A progress bar of ``#`` (done) and ``-`` (still to do), readable without colour."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RichResult:
        width = self.width or options.max_width
        start, end = (max(0, min(width, round(edge))) for edge in self.highlight_range)
        end = max(start, end)
        todo = console.get_style(self.background_style)
        yield Text.assemble(
            (BAR_TODO * start, todo),
            (BAR_DONE * (end - start), console.get_style(self.highlight_style)),
            (BAR_TODO * (width - end), todo),
            end="",
        )


class AsciiLoadingIndicator(LoadingIndicator):
    """Textual's loading indicator without its ``●`` dots (as with animations off)."""

    def render(self) -> RenderResult:
        return Text("Loading...")


class AsciiCommandPalette(CommandPalette):
    """Textual's command palette with ASCII for its search icon and placeholder."""

    def __init__(self) -> None:
        super().__init__(placeholder="Search for commands...", id="--command-palette")

    def on_mount(self) -> None:
        self.query_one(SearchIcon).icon = ">"


@contextmanager
def textual_in_ascii() -> Iterator[None]:
    """While the app runs in ASCII mode: Textual's scroll bars drawn in ASCII (a class-wide
    setting of Textual's; one app runs at a time)."""
    renderer = ScrollBar.renderer
    ScrollBar.renderer = AsciiScrollBarRender
    try:
        yield
    finally:
        ScrollBar.renderer = renderer
