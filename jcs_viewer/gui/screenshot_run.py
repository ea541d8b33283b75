"""``jcs-viewer gui STUDY --screenshot PNG [--quit-after-analysis]``: show what the app does, save the window."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from PySide6.QtWidgets import QApplication

from jcs_viewer.gui.window_chrome import save_png_atomic


def prepare_screenshot_view(window: Any) -> int:
    """Show the most suspicious slice so the picture shows what the app does.

    On the 3-D tab (``gui --view 3d``) wait for the meshes; returns the exit code: 2 when the
    3-D view could not draw them (no OpenGL, or the build timed out), else 0.
    """
    result = window.state.result
    prior = window.prior.worker
    deadline = time.monotonic() + 300.0
    while prior is not None and prior.busy and time.monotonic() < deadline:  # gui --prior: show the comparison
        QApplication.processEvents()
        time.sleep(0.02)
    if result is not None and np.any(result.slice_positive):
        window.state.set_slice(int(np.argmax(result.slice_probability)))
    if result is None or window.views.tabs.currentWidget() is not window.views.three_d:
        return 0
    tab = window.views.three_d
    from jcs_viewer.gui.view3d_tab import nothing_in_3d

    empty = nothing_in_3d(result)
    if empty:  # the tab says why instead of an empty scene; the picture shows that
        print(f"jcs-viewer: the 3-D view shows nothing: {empty}", file=sys.stderr)
        return 0
    built = tab.wait_until_current(120.0)
    view = tab.view
    if view is None or not view.available or not built:
        reason = getattr(view, "unavailable_reason", None) or "the surfaces were not built in time"
        print(f"jcs-viewer: the 3-D view shows nothing: {reason}", file=sys.stderr)
        return 2
    return 0

def finish_screenshot_run(window: Any, code: int) -> None:
    """Save the window as the screenshot asked for (once), then quit if asked to."""
    if window.screenshot_path is None:
        return
    path, window.screenshot_path = window.screenshot_path, None
    window.exit_code = code
    QApplication.processEvents()
    try:
        save_png_atomic(window.views.grab_window(), path)  # grab() leaves the VTK area black
    except OSError as exc:
        print(f"jcs-viewer: could not write the screenshot {path}: {exc}")
        window.exit_code = 2
    if window.quit_after_analysis:
        window.close()
        QApplication.instance().exit(window.exit_code)
