"""Flagged-slice review: the list of flagged slices with scores, confirm/reject, progress."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from jcs_viewer.gui.state import ViewerState
from jcs_viewer.session.review import ReviewDecision
from jcs_viewer.vocabulary import counted

_MARK = {None: "  ", ReviewDecision.CONFIRMED: "✔", ReviewDecision.REJECTED: "✘"}
_COLOR = {None: None, ReviewDecision.CONFIRMED: QColor(40, 170, 70), ReviewDecision.REJECTED: QColor(130, 130, 130)}


class ReviewPanel(QWidget):
    """Observes the review state; the buttons call the same actions as keys n/p/c/x."""

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.progress_label = QLabel("No analysis yet")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(8)
        self.list = QListWidget()
        # Keys (arrows, n/p/c/x) stay with the window; the list is driven by the mouse.
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.setToolTip("Slices the classifier flagged (probability above the cutoff). Click to go there.")
        self.list.itemClicked.connect(lambda item: state.set_slice(item.data(Qt.ItemDataRole.UserRole)))

        buttons = QHBoxLayout()
        self.prev_button = QPushButton("◀ Prev")
        self.prev_button.setToolTip("Previous flagged slice (P)")
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("Next flagged slice (N)")
        self.confirm_button = QPushButton("Confirm")
        self.confirm_button.setToolTip("Confirm this slice shows COVID-19 findings (C)")
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip("Reject the AI's flag on this slice (X)")
        for button in (self.prev_button, self.next_button, self.confirm_button, self.reject_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(button)
        self.prev_button.clicked.connect(state.previous_flagged)
        self.next_button.clicked.connect(state.next_flagged)
        self.confirm_button.clicked.connect(lambda: state.review.confirm(state.z))
        self.reject_button.clicked.connect(lambda: state.review.reject(state.z))

        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        self._items: dict[int, QListWidgetItem] = {}
        state.on("result", lambda r: self._rebuild())
        state.on("review", self._on_review)
        state.on("slice", self._on_slice)
        self._rebuild()

    def _rebuild(self) -> None:
        self.list.clear()
        self._items = {}
        review = self.state.review
        for z in review.flagged:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, z)
            self.list.addItem(item)
            self._items[z] = item
            self._style(z)
        self._update_progress()
        enabled = self.state.result is not None
        for button in (self.prev_button, self.next_button, self.confirm_button, self.reject_button):
            button.setEnabled(enabled)
        self._on_slice(self.state.z)

    def _style(self, z: int) -> None:
        item = self._items.get(z)
        if item is None:
            return
        review = self.state.review
        decision = review.decision(z)
        score = review.scores.get(z, float("nan"))
        item.setText(f"{_MARK[decision]}  slice {z + 1:>4}   score {score:.2f}"
                     + (f"   {decision.value}" if decision else ""))
        color = _COLOR[decision]
        item.setForeground(QBrush(color) if color is not None else QBrush())

    def _on_review(self, z: int, decision: Any) -> None:
        if z < 0:
            self._rebuild()
            return
        self._style(z)
        self._update_progress()

    def _update_progress(self) -> None:
        review = self.state.review
        if self.state.result is None:
            self.progress_label.setText("No analysis yet")
        elif review.total == 0:
            self.progress_label.setText("No slices flagged")
        else:
            self.progress_label.setText(f"<b>{review.progress_text()}</b> — {counted(review.total, 'flagged slice')}")
        self.progress_bar.setRange(0, max(1, review.total))
        self.progress_bar.setValue(review.reviewed)

    def _on_slice(self, z: int) -> None:
        item = self._items.get(z)
        if item is not None:
            self.list.setCurrentItem(item)
            self.list.scrollToItem(item)
        else:
            self.list.clearSelection()
