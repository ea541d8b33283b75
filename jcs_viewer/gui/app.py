"""Creating the QApplication and running the viewer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

APP_ID = "jcs-viewer"
SCREENSHOT_SIZE = (1440, 900)


def ensure_app() -> Any:
    """The QApplication (created once), with pyqtgraph configured for row-major images."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName(APP_ID)
        app.setOrganizationName("JCS Viewer")
        app.setApplicationDisplayName("JCS Viewer")
        from jcs_viewer.gui.startup import app_icon

        app.setWindowIcon(app_icon())
        app.setDesktopFileName("jcs-viewer")  # matches packaging/jcs-viewer.desktop
    return app


def run_viewer(study: Path | None = None, demo: bool = False, screenshot: Path | None = None,
               quit_after_analysis: bool = False, auto_analyse: bool | None = None, view: str | None = None,
               prior: Path | None = None) -> int:
    """Show the main window, optionally open a study, and run the event loop.

    With ``screenshot`` the window saves a PNG once the analysis finished (or the study loaded
    when analysis is off); with ``quit_after_analysis`` it then exits with 0 (or 2 on an error).
    ``view`` ("axial", "1x3" or "3d") overrides the default-layout setting for this window; on "3d"
    the tab shows the meshes once the analysis is done (and a screenshot waits for them). ``prior``: an
    earlier study of the patient, opened for comparison once the study is analysed (a screenshot waits for it).
    """
    app = ensure_app()
    from PySide6.QtCore import QTimer

    from jcs_viewer.gui.main_window import MainWindow
    from jcs_viewer.gui.user_messages import setup_logging

    setup_logging()
    window = MainWindow()
    window.auto_override = auto_analyse
    window.screenshot_path = screenshot
    window.quit_after_analysis = quit_after_analysis
    window.prior.pending = prior
    if view in ("axial", "1x3"):
        window.views.set_layout(view)
    elif view == "3d":
        window.views.show_3d()
    if screenshot is None:
        _fit_to_screen(window)
    else:
        window.resize(*SCREENSHOT_SIZE)  # deterministic pictures for tests and docs
    from jcs_viewer.gui.startup import maybe_probe_first_paint

    maybe_probe_first_paint(window)  # JCS_VIEWER_FIRST_PAINT=1: prints "first-paint-s: X heavy: -" and quits
    window.show()
    # Open after the window is on screen so start-up feels instant.
    if demo:
        QTimer.singleShot(0, window.open_demo)
    elif study is not None:
        QTimer.singleShot(0, window, lambda: window.open_path(study))
    elif screenshot is not None:
        window.finish_screenshot_later(0, 300)
    code = app.exec()
    return int(window.exit_code or code)


def _fit_to_screen(window: Any) -> None:
    """Default size 1440x900, shrunk to 95 % of a smaller screen."""
    screen = window.screen()
    if screen is None:
        return
    area = screen.availableGeometry()
    window.resize(min(SCREENSHOT_SIZE[0], int(area.width() * 0.95)), min(SCREENSHOT_SIZE[1], int(area.height() * 0.95)))
