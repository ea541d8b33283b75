"""File ▸ Open Prior Study for Comparison…: a follow-up reading beside an earlier scan of the patient.

The prior is loaded and analysed with the window's models in a worker, registered to the current study by the lungs
(:func:`jcs_viewer.pipeline.compare.compare`) and shown in a pane of its own beside the current images. Scrolling is
linked through the registration (the prior shows the slice that shows what the current slice shows; scrolling the
prior moves the current study back), and so are window/level; a "Comparison" tab lists lesion volume and involvement
per lung then, now and the change. Exports and the report carry the comparison (see ``ExportActions._inputs``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QSplitter, QTableWidget,
                               QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

from jcs_viewer.gui.slice_view import SliceView
from jcs_viewer.gui.state import ViewerState
from jcs_viewer.gui.workers import TaskWorker

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.compare import Comparison
    from jcs_viewer.pipeline.result import StudyResult


@dataclass(frozen=True)
class Compared:
    """A prior study analysed and compared with ``current`` (the study on screen when it started)."""

    current: Volume
    path: Path
    volume: Volume
    result: StudyResult
    comparison: Comparison


class PriorPane(QWidget):
    """The prior study's axial view (its own :class:`ViewerState`), following the current study's slice."""

    def __init__(self, current: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.current = current
        self.state = ViewerState()
        self.state.mouse_scheme = current.mouse_scheme
        self.comparison: Comparison | None = None
        self._syncing = False
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.position = QLabel()
        self.link_box = QCheckBox("Link scrolling")
        self.link_box.setChecked(True)
        self.link_box.setToolTip("The prior shows the slice that the registration pairs with the current slice")
        self.link_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Close the prior study")
        self.view = SliceView(self.state)
        self.view.setAcceptDrops(False)
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 2)
        header.addWidget(self.title)
        header.addSpacing(16)
        header.addWidget(self.position)
        header.addStretch(1)
        header.addWidget(self.link_box)
        header.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self._disconnect = [current.on("slice", self._follow_current),
                            current.on("window", lambda width, level: self.state.set_window(width, level,
                                                                                            current.preset)),
                            current.on("layers", lambda layers: self.state.set_layers(**dataclasses.asdict(layers))),
                            self.state.on("slice", self._on_prior_slice)]

    def show_prior(self, volume: Volume, result: StudyResult, comparison: Comparison, title: str) -> None:
        self.comparison = comparison
        self.state.set_volume(volume)
        self.state.set_result(result)
        self.state.set_window(*self.current.window, self.current.preset)
        self.state.set_layers(**dataclasses.asdict(self.current.layers))
        self.title.setText(title)
        self._follow_current(self.current.z)

    def detach(self) -> None:
        """Stop following the current study (the pane is being closed)."""
        for disconnect in self._disconnect:
            disconnect()
        self._disconnect = []

    def prior_slice_of(self, z: int) -> int:
        """The prior slice paired with current slice ``z`` (-1: the prior does not reach there)."""
        pairs = self.comparison.prior_slice
        return int(pairs[z]) if 0 <= z < len(pairs) else -1

    def _follow_current(self, z: int) -> None:
        if self.comparison is None or not self.link_box.isChecked() or self._syncing:
            return
        k = self.prior_slice_of(int(z))
        self._syncing = True
        try:
            if k >= 0:
                self.state.set_slice(k)
        finally:
            self._syncing = False
        self._update_position(k < 0)

    def _on_prior_slice(self, k: int) -> None:
        self._update_position(False)
        if self.comparison is None or not self.link_box.isChecked() or self._syncing:
            return
        pairs = np.asarray(self.comparison.prior_slice)
        valid = np.flatnonzero(pairs >= 0)
        if valid.size == 0:
            return
        self._syncing = True  # the prior was scrolled: the current study moves to the paired slice
        try:
            self.current.set_slice(int(valid[np.argmin(np.abs(pairs[valid] - int(k)))]))
        finally:
            self._syncing = False

    def _update_position(self, outside: bool) -> None:
        n = self.state.n_slices
        text = f"slice {self.state.z + 1} of {n}" if n else ""
        self.position.setText(text + ("  (the prior does not reach the current slice)" if outside else ""))


class ComparisonPanel(QWidget):
    """Lesion volume and involvement per lung: prior, current and the change."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Prior", "Current", "Change"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #c90;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 4, 2, 2)
        for widget in (self.header, self.table, self.notes):
            layout.addWidget(widget)

    def show_comparison(self, comparison: Comparison) -> None:
        self.header.setText(f"{comparison.interval()}.\nRegistered by the lungs: {comparison.registration()}. "
                            "Current: the AI's lesions (the report uses your edits).")
        rows = comparison.rows()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.notes.setText("\n".join(comparison.notes))
        self.notes.setVisible(bool(comparison.notes))


class PriorActions(QObject):
    """The Open/Close Prior actions, the worker that analyses and compares, and the pane and tab they show."""

    def __init__(self, window: Any, file_menu: Any, before: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.worker: TaskWorker | None = None
        self.pane: PriorPane | None = None
        self.panel: ComparisonPanel | None = None
        self.split: QSplitter | None = None
        self.comparison: Comparison | None = None
        self.pending: Path | None = None  # gui --prior: opened once the current study's result is shown
        self.open_action = window.add_action(file_menu, "Open P&rior Study for Comparison…", self.choose_prior,
                                          before=before)
        self.close_action = window.add_action(file_menu, "Close Prior Study", self.close_prior, before=before)
        self.close_action.setEnabled(False)
        window.state.on("volume", lambda volume: self.close_prior())  # a prior belongs to the study it was opened for
        window.state.on("result", self._open_pending)

    def _open_pending(self, result: StudyResult | None) -> None:
        if result is not None and self.pending is not None:
            path, self.pending = self.pending, None
            self.open_prior(path)

    def choose_prior(self) -> None:
        if not self._ready():
            return
        folder = QFileDialog.getExistingDirectory(self.window, "Open the prior study (a DICOM folder)",
                                                  self.window.recent.last_dir())
        if folder:
            self.open_prior(Path(folder))

    def _ready(self) -> bool:
        if self.window.state.result is None:
            self.window.show_error("Analyse the current study before opening a prior study to compare it with.")
            return False
        return True

    def open_prior(self, path: Path) -> None:
        """Load and analyse ``path`` in a worker, register it to the current study and show the comparison."""
        window = self.window
        if not self._ready():
            return
        if self.worker is not None and self.worker.busy:
            window.show_status("A prior study is already being opened.")
            return
        current, result = window.state.volume, window.state.result
        options, models, load_models = window.analysis_options(), window.models, window._load_models
        load_study, analyze = window._load_study, window._analyze

        def task(progress: Any, cancel: Any) -> Compared:
            from jcs_viewer.pipeline.compare import compare

            nonlocal models
            progress("load", 0, 1, "Loading the prior study")
            volume = load_study(path)
            if models is None and load_models is not None:
                models = load_models(options)
            prior_result = analyze(volume, options=options, progress=progress, cancel=cancel, models=models)
            progress("compare", 0, 1, "Registering the prior to the current study by the lungs")
            comparison = compare(current, result, volume, prior_result)  # NotComparable says why not
            return Compared(current, path, volume, prior_result, comparison)

        worker = TaskWorker("prior", task, self)
        worker.succeeded.connect(self._on_compared)
        worker.failed.connect(lambda exc: window._on_task_failed(exc, "opening the prior study"))
        worker.cancelled.connect(lambda: window.show_status("Opening the prior study was cancelled."))
        self.worker = worker
        window.show_status("Opening the prior study…")
        window.track(worker)

    def _on_compared(self, outcome: Compared) -> None:
        window = self.window
        if outcome.current is not window.state.volume:
            return  # another study was opened meanwhile
        self._show(outcome)
        c = outcome.comparison
        then, now = c.lesion_ml["total"]
        window.show_status(f"Prior study compared ({c.interval()}): lesions {then:.1f} → {now:.1f} mL.")

    def _show(self, outcome: Compared) -> None:
        window = self.window
        if self.pane is None:
            self.pane = PriorPane(window.state)
            self.pane.close_button.clicked.connect(self.close_prior)
            panel = window.views.panel  # the current images (axial or 1×3) and the prior side by side
            host = panel.parentWidget()
            index, sizes = host.indexOf(panel), host.sizes()
            self.split = QSplitter(Qt.Orientation.Horizontal)
            host.insertWidget(index, self.split)
            self.split.addWidget(panel)
            self.split.addWidget(self.pane)
            host.setSizes(sizes)
            self.panel = ComparisonPanel()
            window.side_tabs.addTab(self.panel, "Comparison")
        info = outcome.volume.info
        date = outcome.comparison.prior_date or "undated"
        self.pane.show_prior(outcome.volume, outcome.result, outcome.comparison,
                             f"Prior {date}: {info.series_description or outcome.path.name}")
        self.panel.show_comparison(outcome.comparison)
        window.side_tabs.setCurrentWidget(self.panel)
        self.split.setSizes([self.split.width() // 2] * 2)
        self.comparison = outcome.comparison
        self.close_action.setEnabled(True)

    def close_prior(self) -> None:
        """Remove the prior pane and the Comparison tab; the current images take the whole width again."""
        if self.worker is not None and self.worker.busy:
            self.worker.cancel()
        self.comparison = None
        self.close_action.setEnabled(False)
        if self.pane is None:
            return
        window = self.window
        self.pane.detach()
        panel, split = window.views.panel, self.split
        host = split.parentWidget()
        index, sizes = host.indexOf(split), host.sizes()
        host.insertWidget(index, panel)
        host.setSizes(sizes)
        split.setParent(None)
        split.deleteLater()
        window.side_tabs.removeTab(window.side_tabs.indexOf(self.panel))
        self.panel.deleteLater()
        self.pane = self.panel = self.split = None
