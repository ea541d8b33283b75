"""Start-up helpers: where the bundled resources live, the window icon, and a first-paint probe.

The probe answers "how long from process start until the reader sees the window?". Set
``JCS_VIEWER_FIRST_PAINT=1`` (or call :func:`install_first_paint_probe`) and the first paint of the
main window prints ``first-paint-s: <seconds since process start> heavy: <modules>`` to stderr and quits
the app; ``heavy`` lists which of :data:`HEAVY_MODULES` were already imported (``-`` for none), because
the window must show before torch and VTK are loaded.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Environment variable that turns the first-paint probe on (any non-empty value but "0").
FIRST_PAINT_ENV = "JCS_VIEWER_FIRST_PAINT"
APP_ICON_NAME = "jcs-viewer"
#: Slow-to-import packages that start-up must not wait for (reported by the first-paint probe).
HEAVY_MODULES = ("torch", "vtkmodules", "SimpleITK", "pydicom", "reportlab", "highdicom")
_IMPORTED_AT = time.time()


def resources_dir() -> Path:
    """The shipped ``resources/`` (bundle, installed wheel or source tree: :mod:`jcs_viewer.shipped`)."""
    from jcs_viewer.shipped import resources_dir as shipped_resources

    return shipped_resources()


def icon_files() -> list[Path]:
    """The SVG master and every rendered PNG size that exists, SVG first."""
    icons = resources_dir() / "icons"
    svg = icons / f"{APP_ICON_NAME}.svg"
    pngs = sorted(icons.glob(f"{APP_ICON_NAME}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    return ([svg] if svg.is_file() else []) + pngs


def app_icon() -> Any:
    """A ``QIcon`` with every size of the application icon (empty icon if the files are missing)."""
    from PySide6.QtGui import QIcon

    icon = QIcon()
    for path in icon_files():
        icon.addFile(str(path))
    return icon


def process_start_time() -> float:
    """Wall-clock time (``time.time()`` scale) at which this process started.

    Linux: the process's start in clock ticks since boot (``/proc/self/stat``, 10 ms resolution) against
    ``CLOCK_BOOTTIME``, so interpreter start-up is counted. (``/proc/stat``'s ``btime`` is whole seconds and
    drifts from the wall clock, which is why it is not used.) Elsewhere: when this module was imported.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5)
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - start_since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED_AT


def heavy_imported() -> list[str]:
    """Which of :data:`HEAVY_MODULES` this process has imported so far."""
    return [name for name in HEAVY_MODULES if name in sys.modules]


def install_first_paint_probe(widget: Any, on_paint: Callable[[float], None] | None = None,
                              quit_app: bool = True, start: float | None = None) -> Any:
    """Report the first paint of ``widget`` (or any of its children).

    Args:
        widget: the window; install before ``show()``.
        on_paint: called once with the seconds since ``start``; default prints
            ``first-paint-s: X heavy: <imported heavy modules or ->``.
        quit_app: quit the QApplication after reporting.
        start: reference time (``time.time()`` scale); default :func:`process_start_time`.

    Returns:
        The event filter object (kept alive by its parent ``widget``).
    """
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    t0 = process_start_time() if start is None else start

    def default_report(seconds: float) -> None:
        print(f"first-paint-s: {seconds:.3f} heavy: {','.join(heavy_imported()) or '-'}", file=sys.stderr, flush=True)

    report = on_paint or default_report

    class _Probe(QObject):
        """Application-wide filter: the first child of ``widget`` to paint counts as the window's paint."""

        def __init__(self) -> None:
            super().__init__(widget)
            self.seconds: float | None = None

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
            if self.seconds is None and event.type() == QEvent.Type.Paint and _belongs(obj):
                self.seconds = time.time() - t0
                QApplication.instance().removeEventFilter(self)
                report(self.seconds)
                if quit_app:
                    QTimer.singleShot(0, QApplication.instance().quit)
            return False

    def _belongs(obj: QObject) -> bool:
        window = getattr(obj, "window", None)
        return obj is widget or (callable(window) and window() is widget)

    probe = _Probe()
    QApplication.instance().installEventFilter(probe)
    return probe


def maybe_probe_first_paint(window: Any) -> Any | None:
    """Install the probe when ``$JCS_VIEWER_FIRST_PAINT`` asks for it (call before ``window.show()``)."""
    if os.environ.get(FIRST_PAINT_ENV, "") in ("", "0"):
        return None
    return install_first_paint_probe(window)
