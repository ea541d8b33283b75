"""The main window's chrome: menus and toolbar, status-bar read-outs, the warning banner, key help.

Each ``install_*`` function builds its part on a :class:`~jcs_viewer.gui.main_window.MainWindow` and stores the
widgets and actions on it (the window's code and tests reach them there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from jcs_viewer import RESEARCH_USE_NOTICE
from jcs_viewer.atomic import atomic_path
from jcs_viewer.gui import mouse
from jcs_viewer.gui.recent_studies import RecentStudies
from jcs_viewer.gui.state import HU_PRESETS
from jcs_viewer.pipeline.progress import STAGE_LABELS as ANALYSIS_STAGE_LABELS
from jcs_viewer.pipeline.progress import STAGES
from jcs_viewer.vocabulary import counted


#: The smallest first window size.
MIN_SIZE = (1440, 900)
#: Progress labels: the analysis stages' own, and the window's tasks.
STAGE_LABELS = {**ANALYSIS_STAGE_LABELS, "load": "Loading study", "scan": "Scanning folder",
                "demo": "Preparing the demo study", "export": "Exporting"}


def progress_reading(stage: str, done: int, total: int, message: str) -> tuple[int, str]:
    """What the window's progress bar shows for a progress event: (value of 1000, text). An analysis stage fills
    its share of the whole analysis; any other task fills the bar on its own."""
    label = STAGE_LABELS.get(stage, stage.capitalize())
    fraction = 1.0 if total <= 0 else min(1.0, done / total)
    if stage in STAGES:
        overall = (STAGES.index(stage) + fraction) / len(STAGES)
        count = f" {done}/{total}" if total > 1 else ""
    else:
        overall, count = fraction, ""
    return int(round(overall * 1000)), f"{label}{count}" + (f" — {message}" if message else "")


def analysis_finished_text(result: Any) -> str:
    """The status bar's line when an analysis is shown: its decision and how many slices it flagged."""
    flagged = sum(bool(p) for p in getattr(result, "slice_positive", ()))
    return f"Analysis finished: {getattr(result, 'decision', '')}, {counted(flagged, 'flagged slice')}."


def initial_size() -> tuple[int, int]:
    """The window's first size: 90 % of the screen's free area (1728 x 972 on 1920 x 1080), never below 1440 x 900
    (the size the layout is drawn for)."""
    screen = QApplication.primaryScreen()
    if screen is None:
        return MIN_SIZE
    free = screen.availableGeometry()
    return max(MIN_SIZE[0], int(free.width() * 0.9)), max(MIN_SIZE[1], int(free.height() * 0.9))


class WarningBanner(QFrame):
    """A dismissible yellow strip for load warnings."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setStyleSheet("WarningBanner { background: #5a4a10; border-radius: 3px; } QLabel { color: #ffe9a8; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 4, 3)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_messages(self, messages: list[str]) -> None:
        if not messages:
            self.hide()
            return
        shown = messages[:4]
        more = f" (+{len(messages) - 4} more)" if len(messages) > 4 else ""
        self.label.setText("⚠ " + "  ".join(shown) + more)
        self.label.setToolTip("\n".join(messages))
        self.show()


def install_menus(window: Any) -> None:
    """File, Analysis, View and Help menus and the toolbar of ``window`` (a :class:`MainWindow`)."""
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    window.open_study_action = window.add_action(file_menu, "Open &Study…", window.choose_study_folder,
                                          QKeySequence.StandardKey.Open)
    window.add_action(file_menu, "Open &File…", window.choose_study_file, "Ctrl+Shift+O")
    window.open_demo_action = window.add_action(file_menu, "Open &Demo Study", window.open_demo, "Ctrl+D")
    window.recent = RecentStudies(window, file_menu.addMenu("&Recent Studies"), window.open_path)
    file_menu.addSeparator()
    window.settings_action = window.add_action(file_menu, "&Settings…", window.edit_settings, "Ctrl+,")
    window._file_menu = file_menu
    file_menu.addSeparator()
    window.add_action(file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)

    analysis = menu.addMenu("&Analysis")
    window.analyse_action = window.add_action(analysis, "&Analyse", window.start_analysis, "F5")
    window.cancel_action = window.add_action(analysis, "&Cancel\tEsc", window.cancel_tasks)
    analysis.addSeparator()
    window.auto_action = QAction("Analyse automatically on open", window, checkable=True)
    window.auto_action.setChecked(window.auto_analyse)
    window.auto_action.toggled.connect(lambda on: window.save_setting(auto_analyze=on))
    analysis.addAction(window.auto_action)

    view = menu.addMenu("&View")
    for key, (name, width, level) in HU_PRESETS.items():
        window.add_action(view, f"{name.title()} window (W{width:.0f}/L{level:.0f})\t{key}",
                     lambda _=False, k=key: window.state.apply_preset(k))
    window.add_action(view, "&Reset view\tR", window.state.reset_view)
    window.add_action(view, "Toggle &overlays\tS", window.state.toggle_overlays)
    window.add_action(view, "Toggle image &corners\tI", window.state.toggle_corners)
    window.anonymise_action = QAction("&Anonymise view (no name, ID or dates on screen)", window, checkable=True)
    window.anonymise_action.toggled.connect(lambda on: window.state.set_layers(anonymised=on))
    view.addAction(window.anonymise_action)
    view.addSeparator()
    window.add_action(view, "&Next flagged slice\tN", window.state.next_flagged)
    window.add_action(view, "&Previous flagged slice\tP", window.state.previous_flagged)
    window.add_action(view, "Next run of flagged slices", window.state.next_run, "Shift+N")
    window.add_action(view, "Previous run of flagged slices", window.state.previous_run, "Shift+P")
    window.add_action(view, "&Confirm slice\tC", lambda: window.state.review.confirm(window.state.z))
    window.add_action(view, "Re&ject slice\tX", lambda: window.state.review.reject(window.state.z))

    help_menu = menu.addMenu("&Help")
    window.add_action(help_menu, "&Keyboard and mouse", lambda: window._info(
        "Keyboard and mouse", mouse.help_html(mouse.scheme(window.state.mouse_scheme))))
    window.add_action(help_menu, "&About JCS Viewer", window.show_about)

    bar = window.toolbar
    for action in (window.open_study_action, window.open_demo_action, window.analyse_action):
        bar.addAction(action)
    # A widget in a toolbar is shown/hidden through its action.
    window._progress_action = bar.addWidget(window._progress_widget)
    window._progress_action.setVisible(False)


class StatusMessage(QLabel):
    """The status bar's passing message: elided to the room left beside the read-outs (QStatusBar's own message
    was painted under the slice counter), the whole sentence in its tooltip, cleared after ``timeout_ms``."""

    def __init__(self) -> None:
        super().__init__()
        self.full_text = ""
        self.setMinimumWidth(80)
        self._clear = QTimer(self)
        self._clear.setSingleShot(True)
        self._clear.timeout.connect(lambda: self.show_message(""))

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()
        if timeout_ms > 0:
            self._clear.start(timeout_ms)

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight, max(0, self.width())))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._elide()


def install_status_bar(window: Any) -> None:
    """The status bar's permanent read-outs (slice, position, cursor, window) and the research notice."""
    bar = window.statusBar()
    window.message_label = StatusMessage()
    bar.addWidget(window.message_label, 1)
    window.slice_label = QLabel("—")
    window.position_label = QLabel("")
    window.cursor_label = QLabel("")
    window.window_label = QLabel("")
    for label, width in ((window.slice_label, 110), (window.position_label, 120), (window.cursor_label, 230),
                         (window.window_label, 210)):
        label.setMinimumWidth(width)
        # Permanent: showMessage() must not hide the slice read-out.
        bar.addPermanentWidget(label)
    window.notice_label = QLabel("Research use only — not a medical device")
    window.notice_label.setToolTip(RESEARCH_USE_NOTICE)
    window.notice_label.setStyleSheet("color: #e08a00; font-weight: bold;")
    bar.addPermanentWidget(window.notice_label)


def is_text_input(widget: QWidget) -> bool:
    """An editable text or number field, where plain keys are text, not viewer hotkeys."""
    from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QPlainTextEdit, QTextEdit

    if isinstance(widget, (QLineEdit, QAbstractSpinBox)):
        return True
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return not widget.isReadOnly()
    return False


def save_png_atomic(pixmap: Any, path: Path) -> None:
    """Save a QPixmap as PNG through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        if not pixmap.save(str(tmp), "PNG"):
            raise OSError("Qt could not encode the image")
