"""The window's "3-D" tab: a :class:`~jcs_viewer.gui.view3d.LungLesionView` built the first time it is shown.

VTK is imported only then, so start-up and the axial-only workflow never pay for it. The tab follows
the state: a new result rebuilds both surfaces; a lesion edit (event ``labels`` from the editing
session, whose live label layer is ``state.result.lesion_mask``) rebuilds the lesion surface only,
debounced so a brush stroke does not queue one mesh build per mouse move.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedLayout, QVBoxLayout, QWidget

from jcs_viewer.errors import ExportError
from jcs_viewer.gui.mpr import LESION_EVENTS, lesion_mask_of
from jcs_viewer.gui.state import ViewerState
from jcs_viewer.vocabulary import counted

if TYPE_CHECKING:
    from jcs_viewer.pipeline.result import StudyResult

EDIT_DEBOUNCE_MS = 400
NO_RESULT_TEXT = "Analyse the study to see the lungs and lesions in 3-D."


def nothing_in_3d(result: StudyResult) -> str | None:
    """Why the 3-D view would be an empty scene for ``result`` (one sentence), or None when it has surfaces."""
    lung, lesion = result.lung_mask, result.lesion_mask
    n = int(lung.shape[0])
    if n < 3:
        return f"A study of {counted(n, 'slice')} has no 3-D shape to show: read it in the Slices tab."
    if not lung.any() and not lesion.any():
        return "Nothing to show in 3-D: the analysis found no lungs and no lesions in this study."
    return None


class ThreeDTab(QWidget):
    """Lungs (translucent) and lesions (solid) of the current result, with Reset and Export PNG."""

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = state
        self.view: Any = None  # LungLesionView, built lazily
        self.build_seconds: float | None = None  # last full build (set_study -> meshes in the scene)
        self._study_stale = True
        self._lesions_stale = False

        self.message = QLabel(NO_RESULT_TEXT)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setStyleSheet("color: #aaa; font-size: 12pt;")
        self.export_button = QPushButton("Export 3-D PNG…")
        self.export_button.setToolTip("Save the current 3-D view as an 800×800 PNG (for the report)")
        self.export_button.setEnabled(False)
        self._page = QWidget()
        self._page_layout = QVBoxLayout(self._page)
        self._page_layout.setContentsMargins(0, 0, 0, 0)
        self._bar_host = QWidget()
        bar = QHBoxLayout(self._bar_host)
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addStretch(1)
        bar.addWidget(self.export_button)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self._bar_host)
        self._stack = QStackedLayout()
        self._stack.addWidget(self.message)
        self._stack.addWidget(self._page)
        outer.addLayout(self._stack, 1)

        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_DEBOUNCE_MS)
        self._edit_timer.timeout.connect(self._push_lesions)
        state.on("volume", lambda volume: self._on_result(None))
        state.on("result", self._on_result)
        for event in LESION_EVENTS:
            state.on(event, lambda *_: self._on_lesions_edited())

    # --- lazy construction -----------------------------------------------------------------
    def ensure_view(self) -> Any:
        """Create the VTK view (imports VTK) if needed and return it."""
        if self.view is None:
            from jcs_viewer.gui.view3d import LungLesionView

            self.view = LungLesionView(self._page)
            self.view.surfaces_ready.connect(self._on_surfaces_ready)
            self._page_layout.addWidget(self.view)
            # One tool row: the export button joins the view's own (Reset view, Lungs, status).
            row = self.view.layout().itemAt(0).layout() if self.view.layout() is not None else None
            if row is not None:
                row.insertWidget(2, self.export_button)
                self._bar_host.hide()
        return self.view

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if self.viewer.result is not None and nothing_in_3d(self.viewer.result) is None:
            self.ensure_view()
            self._sync()

    # --- state -------------------------------------------------------------------------
    def _on_result(self, result: StudyResult | None) -> None:
        self._study_stale = True
        self._edit_timer.stop()
        empty = None if result is None else nothing_in_3d(result)
        has = result is not None and empty is None
        self.message.setText(empty or NO_RESULT_TEXT)
        self._stack.setCurrentIndex(1 if has else 0)
        self.export_button.setEnabled(has)
        if self.isVisible():
            if has:
                self.ensure_view()
                self._sync()

    def _on_lesions_edited(self) -> None:
        self._lesions_stale = True
        if self.view is not None and self.isVisible():
            self._edit_timer.start()

    def _sync(self) -> None:
        if self.view is None or self.viewer.result is None or nothing_in_3d(self.viewer.result):
            return
        if self._study_stale:
            self._push_study()
        elif self._lesions_stale:
            self._push_lesions()

    def _push_study(self) -> None:
        state = self.viewer
        result = state.result
        lesion = lesion_mask_of(state)
        self.ensure_view().set_study(result.lung_mask, lesion, state.volume.spacing, state.volume.origin,
                                     state.volume.direction)
        self._study_stale = self._lesions_stale = False

    def _push_lesions(self) -> None:
        if self.view is None or self.viewer.result is None:
            return
        if self._study_stale:
            self._push_study()
            return
        self.view.update_lesions(lesion_mask_of(self.viewer))
        self._lesions_stale = False

    def _on_surfaces_ready(self, seconds: float) -> None:
        if "lungs" in getattr(self.view, "last_stats", {}):
            self.build_seconds = float(seconds)

    # --- public ------------------------------------------------------------------------
    def wait_until_current(self, timeout: float = 60.0) -> bool:
        """Push pending changes and block until their meshes are shown (export and tests)."""
        if self.viewer.result is None or nothing_in_3d(self.viewer.result):
            return False
        self.ensure_view()
        self._edit_timer.stop()
        self._sync()
        return bool(self.view.wait_for_build(timeout))

    def export_png(self, path: str | os.PathLike[str], size: tuple[int, int] = (800, 800)) -> Path:
        """Write the 3-D view as a PNG (the reader's camera when the view was shown, else anterior).

        Raises:
            ExportError: no analysed study, or the PNG could not be rendered or written.
        """
        if self.viewer.result is None:
            raise ExportError(f"Cannot write {path}: analyse the study first; the 3-D view has nothing to show.")
        empty = nothing_in_3d(self.viewer.result)
        if empty:
            raise ExportError(f"Cannot write {path}: {empty[0].lower()}{empty[1:]}")
        self.wait_until_current()
        return self.view.export_png(path, size=size)

    def shutdown(self) -> None:
        """Release OpenGL and the mesh thread (the window's close calls this)."""
        self._edit_timer.stop()
        if self.view is not None:
            self.view.shutdown()
