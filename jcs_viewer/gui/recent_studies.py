"""File ▸ Recent Studies: the paths opened last, kept in the reader's settings file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_RECENT = 8


class RecentStudies:
    """The recent-studies list of one window and the menu that shows it.

    Args:
        window: the :class:`~jcs_viewer.gui.main_window.MainWindow` (its settings store, ``add_action`` and
            ``save_setting``).
        menu: the submenu to fill.
        open_path: called with the chosen path.
    """

    def __init__(self, window: Any, menu: Any, open_path: Callable[[Path], None]) -> None:
        self.window = window
        self.menu = menu
        self._open_path = open_path
        self.rebuild()

    def paths(self) -> list[str]:
        """Most recent first, as stored."""
        return list(self.window.settings.values.recent_studies)

    def remember(self, path: Path) -> None:
        """Put ``path`` first (once) and keep the :data:`MAX_RECENT` latest."""
        recent = [p for p in self.paths() if p != str(path)]
        recent.insert(0, str(path))
        self.window.save_setting(recent_studies=tuple(recent[:MAX_RECENT]))
        self.rebuild()

    def clear(self) -> None:
        self.window.save_setting(recent_studies=())
        self.rebuild()

    def last_dir(self) -> str:
        """Where a file dialog starts: beside the study opened last, else the home folder."""
        recent = self.paths()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def rebuild(self) -> None:
        self.menu.clear()
        recent = self.paths()
        for path in recent:
            self.window.add_action(self.menu, path, lambda p=path: self._open_path(Path(p)))
        if recent:
            self.menu.addSeparator()
            self.window.add_action(self.menu, "Clear list", self.clear)
        self.menu.setEnabled(bool(recent))
