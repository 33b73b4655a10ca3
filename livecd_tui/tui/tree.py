"""The menu tree: the option schema drawn the way menuconfig draws it.

The tree only shows the profile and says what the user asked for (toggle, edit); the
editor screen changes the profile and tells the tree to redraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from livecd_tui.options import MENUS, OPTIONS, options_in, submenus_of
from livecd_tui.profile import Profile
from livecd_tui.tui import glyphs
from livecd_tui.tui.describe import menu_label, option_label, problems_by_key


class MenuTree(Tree[str]):
    """Menus and options of one profile; each node's data is a menu or option key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "Down", show=False),
        Binding("k,up", "cursor_up", "Up", show=False),
        Binding("enter,right,l", "open", "Open/edit", show=False),
        Binding("escape,left,h", "back", "Back", show=False),
        Binding("space", "toggle_value", "Toggle", tooltip="Toggle a bool, cycle a choice"),
        Binding(
            "z",
            "toggle_hidden",
            "Hidden",
            show=False,
            tooltip="Show or hide options whose dependencies are not met",
        ),
    ]

    # Arrows the Linux console's fonts have (CP437), unlike Textual's default ▶.
    ICON_NODE = "► "
    ICON_NODE_EXPANDED = "▼ "

    #: Show options whose ``depends_on`` is unmet (greyed) instead of leaving them out.
    show_hidden: reactive[bool] = reactive(False)

    @dataclass
    class ToggleRequested(Message):
        """Space on an option: flip a bool or step a choice."""

        key: str

    @dataclass
    class EditRequested(Message):
        """Enter on an option: open its editor."""

        key: str

    def __init__(self, profile: Profile, *, id: str | None = None) -> None:
        super().__init__("Profile", id=id)
        self.profile = profile
        self.show_root = False
        self.guide_depth = 2
        self._by_key: dict[str, TreeNode[str]] = {}
        self._problems: dict[str, str] = {}
        self._pending_cursor: TreeNode[str] | None = None

    def on_mount(self) -> None:
        if glyphs.is_ascii(self):
            self.ICON_NODE, self.ICON_NODE_EXPANDED = glyphs.TREE_ICONS
            self.LINES = dict.fromkeys(Tree.LINES, glyphs.TREE_LINES)
        self.rebuild()

    # -- drawing ---------------------------------------------------------------------
    def problem(self, key: str) -> str | None:
        """Why an option's value is invalid, as of the last redraw."""
        return self._problems.get(key)

    def rebuild(self) -> None:
        """Rebuild every node from the schema, keeping what was open and the cursor."""
        expanded = {key for key, node in self._by_key.items() if node.is_expanded}
        current = self.cursor_node.data if self.cursor_node else None
        self._problems = problems_by_key(self.profile)
        self.clear()
        self._by_key = {}
        self._add_menu(self.root, "")
        for key in expanded:
            if key in self._by_key:
                self._by_key[key].expand()
        # Keep the cursor where it was; on the option's menu when the option went away.
        section = OPTIONS[current].section if current and current in OPTIONS else None
        if not (current and self.move_to(current)) and not (section and self.move_to(section)):
            first = self.root.children[0] if self.root.children else None
            if first is not None:
                self._move_soon(first)

    def _add_menu(self, parent: TreeNode[str], menu: str) -> None:
        for sub in submenus_of(menu):
            node = parent.add(menu_label(sub.key), data=sub.key)
            self._by_key[sub.key] = node
            self._add_menu(node, sub.key)
        if not menu:
            return
        for option in options_in(menu):
            if self.show_hidden or self.profile.is_active(option.key):
                label = option_label(option, self.profile, self._problems.get(option.key))
                self._by_key[option.key] = parent.add_leaf(label, data=option.key)

    def refresh_values(self, structural: bool = False) -> None:
        """Redraw after the profile changed; ``structural`` when options may appear or go."""
        if structural:
            self.rebuild()
            return
        self._problems = problems_by_key(self.profile)
        for key, node in self._by_key.items():
            if key in OPTIONS:
                node.set_label(option_label(OPTIONS[key], self.profile, self._problems.get(key)))

    def watch_show_hidden(self) -> None:
        if self.is_mounted:
            self.rebuild()

    def move_to(self, key: str) -> bool:
        """Open the menus above ``key`` and put the cursor on it; False if it is not shown."""
        node = self._by_key.get(key)
        if node is None:
            return False
        parent = node.parent
        while parent is not None and parent is not self.root:
            parent.expand()
            parent = parent.parent
        self._move_soon(node)
        return True

    def _move_soon(self, node: TreeNode[str]) -> None:
        """Move the cursor once the tree has laid out its new lines; the latest wish wins."""
        self._pending_cursor = node
        self.call_after_refresh(self._move_pending)

    def _move_pending(self) -> None:
        node, self._pending_cursor = self._pending_cursor, None
        if node is not None:
            self.move_cursor(node, animate=False)
            self.scroll_to_node(node, animate=False)

    # -- actions ---------------------------------------------------------------------
    @property
    def current_key(self) -> str | None:
        """The menu or option key under the cursor."""
        node = self.cursor_node
        return node.data if node is not None else None

    def action_open(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        if node.data in MENUS:
            node.expand()
            if node.children:
                self._move_soon(node.children[0])
        else:
            self.post_message(self.EditRequested(node.data))

    def action_back(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.data in MENUS and node.is_expanded:
            node.collapse()
            return
        parent = node.parent
        if parent is not None and parent is not self.root:
            parent.collapse()
            self.move_cursor(parent, animate=False)

    def action_toggle_value(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        if node.data in MENUS:
            node.toggle()
        else:
            self.post_message(self.ToggleRequested(node.data))

    def action_toggle_hidden(self) -> None:
        self.show_hidden = not self.show_hidden
        self.notify(
            "Showing hidden options (greyed)"
            if self.show_hidden
            else "Hiding options whose dependencies are not met",
            timeout=2,
        )
