"""Editing and sessions in the main window: Edit menu, edit panel, re-run guard, autosave, restore.

:func:`install_editing` adds everything to a :class:`~jcs_viewer.gui.main_window.MainWindow`; the
window calls :meth:`SessionSupport.adopt_result` when an analysis finishes.

Automation (tests, demos):
- ``JCS_VIEWER_RESTORE_SESSION=ask|always|never`` decides the restore question without a dialog
  (default: the ``session/restore`` setting, else ask).
- ``JCS_VIEWER_EDIT_SCRIPT=FILE.json`` prints ``session-ready restored=0|1 sha=...`` once a session is
  ready, then performs the file's strokes through the real :class:`EditController` and prints
  ``painted sha=...`` (sha: SHA-256 of the edited mask). File: ``{"strokes": [{"z": 60,
  "points": [[x, y], ...], "erase": false, "radius_mm": 4}, ...]}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QGroupBox, QMessageBox, QSplitter, QTabWidget, QVBoxLayout, QWidget

from jcs_viewer.gui.edit_panel import EditPanel
from jcs_viewer.gui.editing import EditController
from jcs_viewer.gui.measure import MEASURE_TOOLS, MeasurePanel
from jcs_viewer.gui.workers import QtScheduling, TaskWorker
from jcs_viewer.vocabulary import counted

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult

RESTORE_ENV = "JCS_VIEWER_RESTORE_SESSION"
SCRIPT_ENV = "JCS_VIEWER_EDIT_SCRIPT"
COUNT_DELAY_MS = 300  # deferred 3-D lesion count waits for the reader to pause


def mask_sha(mask: Any) -> str:
    """SHA-256 of a mask's bytes (scripts compare sessions with it)."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(mask)).hexdigest()


class SessionSupport(QObject):
    """Owns the window's :class:`StudySession`, the :class:`EditController`, the panel and the Edit menu."""

    autosaved = Signal(str)  # emitted from the saving thread; queued to the GUI thread
    autosave_failed = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.state = window.state
        self.session: Any = None
        self.controller = EditController(window.state, window.slice_view, self)
        self.panel = EditPanel(self.controller)
        self.restore_policy = os.environ.get(RESTORE_ENV) or window.settings.values.session_restore
        self._count_worker: TaskWorker | None = None
        self.restore_box: QMessageBox | None = None
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(COUNT_DELAY_MS)
        self._count_timer.timeout.connect(self._start_count)
        self._add_panel()
        self._build_menu()
        self.controller.message.connect(window.show_status)
        self.controller.history_changed.connect(self._relabel_history)
        self.autosaved.connect(lambda p: self.panel.set_save_status(f"Autosaved {time.strftime('%H:%M:%S')}"))
        self.autosave_failed.connect(self._on_autosave_failed)
        self.state.on("volume", self._on_volume)
        window.installEventFilter(self)

    # ================================================================== construction
    def _add_panel(self) -> None:
        tabs = getattr(self.window, "side_tabs", None)
        if isinstance(tabs, QTabWidget):
            # A tab beside "Layers"; choosing the brush or eraser (B/E, Edit menu) brings it forward.
            page = QWidget()
            layout = QVBoxLayout(page)
            layout.setContentsMargins(4, 6, 4, 4)
            layout.addWidget(self.panel)
            layout.addStretch(1)
            tabs.addTab(page, "Lesion editing")
            self.group = page
            self.measure_panel = MeasurePanel(self.controller.measure, self.controller.set_tool)
            tabs.addTab(self.measure_panel, "Measurements")
            self.controller.tool_changed.connect(lambda tool: tabs.setCurrentWidget(
                self.measure_panel if tool in MEASURE_TOOLS else page) if tool != "none" else None)
            return
        box = QGroupBox("Lesion editing")
        layout = QVBoxLayout(box)
        layout.setContentsMargins(4, 6, 4, 4)
        layout.addWidget(self.panel)
        self.group = box
        parent: QWidget | None = self.window.review_panel
        while parent is not None and not isinstance(parent, QSplitter):
            parent = parent.parentWidget()
        if parent is None:  # no splitter: a dock-less fallback under the review panel
            self.window.review_panel.parentWidget().layout().addWidget(box)
            return
        parent.insertWidget(parent.count() - 1, box)  # before the layers box
        parent.setStretchFactor(parent.indexOf(box), 0)

    def _build_menu(self) -> None:
        w, c = self.window, self.controller
        menu = w.menuBar().addMenu("&Edit")
        actions = w.menuBar().actions()
        if len(actions) > 2:  # right after File
            w.menuBar().insertMenu(actions[1], menu)
        self.menu = menu

        def add(text: str, slot: Any, shortcuts: tuple[str, ...] = (), checkable: bool = False) -> QAction:
            action = QAction(text, w)
            if shortcuts:
                action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setCheckable(checkable)
            action.triggered.connect(lambda *_: slot())
            menu.addAction(action)
            return action

        self.undo_action = add("Undo", c.undo, ("Ctrl+Z",))
        self.redo_action = add("Redo", c.redo, ("Ctrl+Y", "Ctrl+Shift+Z"))
        menu.addSeparator()
        self.navigate_action = add("Navigate (no tool)", lambda: c.set_tool("none"), checkable=True)
        self.brush_action = add("Brush", lambda: c.set_tool("brush"), ("B",), checkable=True)
        self.eraser_action = add("Eraser", lambda: c.set_tool("eraser"), ("E",), checkable=True)
        self.grow_action = add("Grow region (click, within the HU range)", lambda: c.set_tool("grow"), ("G",),
                               checkable=True)
        self.ruler_action = add("Ruler", lambda: c.set_tool("ruler"), ("L",), checkable=True)
        self.ellipse_action = add("Ellipse ROI (area, HU statistics)", lambda: c.set_tool("ellipse"), ("O",),
                                  checkable=True)
        add("Larger brush", c.grow, ("]",))
        add("Smaller brush", c.shrink, ("[",))
        menu.addSeparator()
        add("Fill holes in slice", c.fill_holes)
        add("Remove small islands in slice", lambda: c.remove_islands(self.panel.island_area.value()))
        add("Clear slice", c.clear_slice)
        add("Reset slice to AI", c.reset_slice)
        add("Accept AI result (all slices)", c.accept_ai)
        add("Interpolate between edited slices", c.interpolate, ("Ctrl+I",))
        self._tool_actions = {"none": self.navigate_action, "brush": self.brush_action,
                              "eraser": self.eraser_action, "grow": self.grow_action, "ruler": self.ruler_action,
                              "ellipse": self.ellipse_action}
        c.tool_changed.connect(self._mirror_tool)
        self._mirror_tool(c.tool)
        self._relabel_history()

    def _mirror_tool(self, tool: str) -> None:
        for name, action in self._tool_actions.items():
            action.setChecked(name == tool)

    def _relabel_history(self) -> None:
        labels = self.session.labels if self.session is not None else None
        undo = labels.next_undo_label() if labels is not None else None
        redo = labels.next_redo_label() if labels is not None else None
        self.undo_action.setText(f"Undo {undo}" if undo else "Undo")
        self.redo_action.setText(f"Redo {redo}" if redo else "Redo")
        self.undo_action.setEnabled(undo is not None)
        self.redo_action.setEnabled(redo is not None)

    # ================================================================== session life cycle
    def session_file(self, volume: Volume) -> Path:
        """Where this study's session lives: the autosave folder setting, else the user's data folder."""
        from jcs_viewer.session.store import session_path

        folder = self.window.settings.values.autosave_dir.strip()
        return session_path(volume, Path(folder).expanduser() if folder else None)

    def _on_volume(self, volume: Volume | None) -> None:
        self.close_session()
        if volume is not None and self.session_file(volume).is_file():
            self.window.show_status("This study has a saved session; it is offered once the analysis finishes.")

    def close_session(self) -> None:
        """Write pending changes and stop autosaving (new study, window closing)."""
        session, self.session = self.session, None
        self._count_timer.stop()
        self._close_restore_box()
        if session is not None:
            try:
                session.close(save=True)
            except Exception as exc:  # noqa: BLE001 - closing must never lose the window
                self.window.show_error(f"Could not save your edits: {exc}")
        if self.controller.session is not None:
            self.controller.set_session(None)
        self._relabel_history()

    def adopt_result(self, volume: Volume, result: StudyResult) -> bool:
        """Show an analysis result, keeping the reader's work; False when the reader cancelled.

        A re-run on a study with manual edits asks first (:meth:`ask_rerun`).
        """
        session = self.session
        if session is not None and session.volume is volume:
            choice = self.ask_rerun() if session.has_edits else "replace"
            if choice == "cancel":
                self.window.show_status("The new analysis was set aside; your edits are unchanged.")
                return False
            self.controller.end_stroke()
            session.apply_new_ai_result(result, keep_edits=(choice == "keep"))
            self.state.set_result(session.result)
            session.use_review(self.state.review)
            self.controller.set_session(session)
            return True
        self.close_session()
        session = self._new_session(volume, result)
        self.state.set_result(session.result)
        session.use_review(self.state.review)
        self.session = session
        restored = self._offer_restore(session)
        self.controller.set_session(session)
        self._after_change()
        self._run_script(restored)
        return True

    def _new_session(self, volume: Volume, result: StudyResult) -> Any:
        from jcs_viewer.session.study_session import StudySession

        settings = self.window.settings.values
        session = StudySession(volume, result, undo_depth=settings.undo_depth,
                               autosave_path=self.session_file(volume), reviewer=settings.reviewer_name,
                               on_autosave_error=lambda exc: self.autosave_failed.emit(str(exc)),
                               on_autosaved=lambda path: self.autosaved.emit(str(path)),
                               scheduling=QtScheduling(self))
        session.add_listener(self._on_session_change)
        session.add_count_listener(lambda: self.state.emit("quant"))
        return session

    def _offer_restore(self, session: Any) -> bool:
        """Restore now (policy "always"), or offer it in a non-modal dialog (policy "ask").

        The question never blocks: analysis, review and editing go on while it is open. The file
        being offered is first copied to ``*.previous.jcssession``, so starting over (or editing
        before answering, which autosaves over it) never loses the earlier work.
        """
        from jcs_viewer.session.store import SessionError, load_session

        path = session.autosaver.path if session.autosaver is not None else None
        if path is None or not path.is_file() or self.restore_policy == "never":
            return False
        try:
            saved = load_session(path)
        except SessionError as exc:
            self.window.show_error(str(exc))
            return False
        if self.restore_policy == "always":
            return self.restore_saved(saved)
        try:
            shutil.copy2(path, path.with_name(path.stem + ".previous" + path.suffix))
        except OSError:
            pass  # the offer still works; only the safety copy is missing
        self.ask_restore(saved)
        return False

    def restore_saved(self, saved: Any) -> bool:
        """Bring ``saved`` (a SessionState) into the current session; returns whether it worked."""
        from jcs_viewer.session.store import SessionError

        self._close_restore_box()
        session = self.session
        if session is None:
            return False
        self.controller.end_stroke()
        try:
            session.restore(saved)
        except SessionError as exc:
            self.window.show_error(str(exc))
            return False
        self.edit_panel_sync()
        n = len(session.edited_slices())
        self.window.show_status(f"Restored your session: {counted(n, 'edited slice')}, "
                                f"{counted(len(saved.review), 'review decision')}.")
        return True

    def edit_panel_sync(self) -> None:
        """Notes and history labels after a restore."""
        self.controller.session_changed.emit(self.session)
        self._after_change()

    # ================================================================== questions (tests replace these)
    def ask_restore(self, saved: Any) -> None:
        """Offer to restore a saved session in a non-modal dialog (:attr:`restore_box`)."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved.saved_at)) if saved.saved_at else "earlier"
        box = QMessageBox(QMessageBox.Icon.Question, "Restore session",
                          f"You worked on this study before (saved {when}). Restore your edits, review "
                          "decisions and notes? (Restoring replaces anything changed since opening.)",
                          QMessageBox.StandardButton.NoButton, self.window)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Start from the AI result", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(restore)
        box.setModal(False)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.buttonClicked.connect(lambda button: self.restore_saved(saved) if button is restore
                                  else self._close_restore_box())
        self.restore_box = box
        box.show()

    def _close_restore_box(self) -> None:
        box, self.restore_box = self.restore_box, None
        if box is not None:
            box.hide()
            box.deleteLater()

    def ask_rerun(self) -> str:
        """A new AI result arrived for a study with manual edits: "keep", "replace" or "cancel"."""
        n = len(self.session.edited_slices())
        box = QMessageBox(QMessageBox.Icon.Question, "New analysis result",
                          f"You edited the lesion mask on {counted(n, 'slice')}. What should happen "
                          "to your edits? (Either choice can be undone with Ctrl+Z.)", parent=self.window)
        keep = box.addButton("Keep my edits", QMessageBox.ButtonRole.AcceptRole)
        replace = box.addButton("Replace with new AI result", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(cancel)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "replace" if clicked is replace else "cancel"

    # ================================================================== live updates
    def _on_session_change(self, zs: slice) -> None:
        self.state.emit("labels", zs)
        self._after_change()

    def _after_change(self) -> None:
        self.state.emit("quant")
        self._relabel_history()
        self.panel.refresh_info()
        if self.session is not None and self.session.lesion_count_stale:
            self._count_timer.start()

    def _start_count(self) -> None:
        session = self.session
        if session is None or not session.lesion_count_stale:
            return
        if self._count_worker is not None and self._count_worker.busy:
            self._count_timer.start()  # one count at a time; try again shortly
            return
        job, revision = session.lesion_count_job()
        worker = TaskWorker("lesion count", lambda progress, cancel: job(), self)
        worker.succeeded.connect(lambda count, s=session, r=revision: s.set_lesion_count(count, r))
        self._count_worker = worker
        worker.start()

    def _on_autosave_failed(self, sentence: str) -> None:
        self.panel.set_save_status("Autosave failed")
        self.window.show_error(sentence)

    # ================================================================== scripted edits
    def _run_script(self, restored: bool) -> None:
        script = os.environ.get(SCRIPT_ENV)
        if not script or self.session is None:
            return
        print(f"session-ready restored={int(restored)} sha={mask_sha(self.session.labels.data)}", flush=True)
        try:
            strokes = json.loads(Path(script).read_text(encoding="utf-8")).get("strokes", [])
        except (OSError, ValueError) as exc:
            print(f"jcs-viewer: cannot read the edit script {script}: {exc}", file=sys.stderr, flush=True)
            return
        if not strokes:
            return
        c = self.controller
        for stroke in strokes:
            self.state.set_slice(int(stroke["z"]))
            c.set_radius(float(stroke.get("radius_mm", c.radius_mm)))
            c.set_tool("eraser" if stroke.get("erase") else "brush")
            c.stroke_polyline([(float(x), float(y)) for x, y in stroke["points"]])
        c.set_tool("none")
        print(f"painted sha={mask_sha(self.session.labels.data)}", flush=True)

    # ================================================================== closing
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.close_session()  # flush: no edit is lost on a normal exit
        return False


def install_editing(window: Any) -> SessionSupport:
    """Add lesion editing, the Edit menu and session autosave/restore to a :class:`MainWindow`."""
    return SessionSupport(window)
