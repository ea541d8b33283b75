"""About box: version, installed weights with their metrics and licences, the research-use notice."""

from __future__ import annotations

import html
import platform
import sys
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from jcs_viewer import RESEARCH_USE_NOTICE, __version__
from jcs_viewer.gui.startup import app_icon

DESCRIPTION = ("Explainable COVID-19 chest CT reading aid built on JCS, joint classification and segmentation "
               "(Wu et al., IEEE Transactions on Image Processing, 2021).")
#: (component, licence) of what the application is built on; shown in the licences section.
THIRD_PARTY = (
    ("JCS Viewer", "Apache-2.0"),
    ("Qt 6 / Qt for Python (PySide6)", "LGPL-3.0"),
    ("PyTorch", "BSD-3-Clause"),
    ("VTK", "BSD-3-Clause"),
    ("pyqtgraph", "MIT"),
    ("NumPy", "BSD-3-Clause"),
    ("SimpleITK", "Apache-2.0"),
    ("pydicom, highdicom", "MIT"),
    ("pylibjpeg and plug-ins", "MIT / GPL-3.0 (libjpeg)"),
    ("ReportLab", "BSD-3-Clause"),
    ("safetensors", "Apache-2.0"),
)
WIDTH = 820  # px; wide enough for two weights rows without scrolling
MAX_COLUMN = 260  # px; longer cells (licence, training data) are elided, the full text is their tooltip
COLUMNS = ("Weights", "Task", "Architecture", "Metrics", "Licence", "Training data")


def format_metrics(metrics: dict[str, Any]) -> str:
    """``{"dice": 0.7123, "auc": 0.9}`` -> ``"dice 0.712, auc 0.900"``; nested dicts as ``outer.inner``."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            parts += [f"{key}.{inner}" for inner in format_metrics(value).split(", ") if inner]
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            parts.append(f"{key} {value}")
        elif isinstance(value, int):
            parts.append(f"{key} {value}")
        else:
            parts.append(f"{key} {value:.3f}")
    return ", ".join(parts)


def installed_weights() -> tuple[list[Any], str | None]:
    """The registry's entries, or ``([], sentence)`` when a manifest is unreadable."""
    from jcs_viewer.errors import JCSError
    from jcs_viewer.models.registry import list_weights

    try:
        return list_weights(), None
    except JCSError as exc:
        return [], str(exc)


def default_label(entry: Any) -> str:
    """" (default)", " (default for 8-bit studies)" (the nets picked for studies not in HU) or nothing."""
    if getattr(entry, "default", False):
        return " (default)"
    return " (default for 8-bit studies)" if getattr(entry, "default_grey", False) else ""


def version_text(entries: Sequence[Any] = ()) -> str:
    """Plain-text details for bug reports (what "Copy details" puts on the clipboard)."""
    lines = [f"JCS Viewer {__version__}", f"Python {platform.python_version()} on {platform.platform()}",
             f"Qt {qVersion()}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        lines.append(f"PyTorch {torch.__version__}")
    for e in entries:
        metrics = format_metrics(e.metrics) or "no metrics"
        lines.append(f"weights {e.name}{default_label(e)}: {e.task} {e.arch} {metrics}")
    return "\n".join(lines)


class AboutDialog(QDialog):
    """The About box.

    Args:
        parent: parent widget.
        entries: weights entries to list (default: :func:`installed_weights`, which imports torch).
    """

    def __init__(self, parent: QWidget | None = None, entries: Sequence[Any] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About JCS Viewer")
        problem = None
        if entries is None:
            entries, problem = installed_weights()
        self.entries = list(entries)

        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(72, 72))
        title = QLabel(f"<h2 style='margin:0'>JCS Viewer</h2><div>Version {html.escape(__version__)}</div>")
        self.title_label = title
        head = QHBoxLayout()
        head.addWidget(icon)
        head.addWidget(title, 1)

        description = QLabel(DESCRIPTION)
        description.setWordWrap(True)
        notice = QLabel(f"<b>{html.escape(RESEARCH_USE_NOTICE)}</b>")
        notice.setWordWrap(True)
        notice.setStyleSheet("background: #fff3cd; color: #5a4a10; border: 1px solid #e0c36a; border-radius: 3px;"
                             " padding: 6px;")
        self.notice_label = notice

        weights_title = QLabel("<b>Installed weights</b>")
        self.table = QTableWidget(len(self.entries), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        for row, e in enumerate(self.entries):
            name = e.name + default_label(e)
            cells = (name, e.task, e.arch, format_metrics(e.metrics) or "—", e.licence or "—",
                     e.training_data or "—")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text if COLUMNS[col] in ("Metrics", "Licence", "Training data")
                                else e.description or e.provenance or text)
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        for col in range(len(COLUMNS)):  # a licence paragraph must not make the box wider than the screen
            if COLUMNS[col] in ("Licence", "Training data") and self.table.columnWidth(col) > MAX_COLUMN:
                self.table.setColumnWidth(col, MAX_COLUMN)
        rows_height = sum(self.table.rowHeight(r) for r in range(min(len(self.entries), 6)))
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + rows_height
                                  + self.table.horizontalScrollBar().sizeHint().height() + 2 * self.table.frameWidth())
        self.empty_label = QLabel(problem or "No weights installed: analysis needs the shipped weights or an "
                                  "official JCS checkpoint (see the README).")
        self.empty_label.setWordWrap(True)
        self.empty_label.setVisible(not self.entries)
        self.table.setVisible(bool(self.entries))

        licences = "; ".join(f"{html.escape(name)} ({lic})" for name, lic in THIRD_PARTY)
        licence_label = QLabel(f"<b>Licences</b><br>{licences}. Each weights file's licence is listed above; the "
                               "official JCS checkpoints carry no upstream licence and their Res2Net backbone "
                               "weights are CC BY-NC-SA 4.0 (non-commercial).")
        licence_label.setWordWrap(True)
        licence_label.setTextFormat(Qt.TextFormat.RichText)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        copy = QPushButton("Copy details")
        copy.setToolTip("Copy version, Qt, PyTorch and weights details for a bug report")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(version_text(self.entries)))
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(description)
        layout.addWidget(notice)
        layout.addWidget(weights_title)
        layout.addWidget(self.table)
        layout.addWidget(self.empty_label)
        layout.addWidget(licence_label)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.setWindowIcon(app_icon())
        width = max(WIDTH, self.table.horizontalHeader().length() + 40)
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            width = min(width, int(screen.availableGeometry().width() * 0.9))
        self.resize(width, layout.heightForWidth(width) if layout.hasHeightForWidth() else self.sizeHint().height())


def show_about(parent: Any = None) -> None:
    """Open the About box modally (reads the weights registry, so torch is imported on first use)."""
    from PySide6.QtWidgets import QApplication

    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        dialog = AboutDialog(parent)
    finally:
        QApplication.restoreOverrideCursor()
    dialog.exec()
