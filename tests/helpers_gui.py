"""One way the GUI tests open the real main window: its own settings and data folders, shown at a reading size."""

from __future__ import annotations


def open_window(qtbot, tmp_path, monkeypatch, **settings_values):
    """A shown :class:`~jcs_viewer.gui.main_window.MainWindow` whose settings file and data folder live in
    ``tmp_path`` (``settings_values`` go into that file first; sessions are never restored)."""
    from jcs_viewer.gui.main_window import MainWindow
    from jcs_viewer.settings import SettingsStore

    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_RESTORE_SESSION", "never")
    settings = SettingsStore(tmp_path / "config" / "settings.ini")
    settings.update(session_restore="never", **settings_values)
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.resize(1400, 860)
    window.show()
    qtbot.waitExposed(window)
    return window
