"""The main window: menus, slice view + score strip, review/layers/summary panels, workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QPushButton, QSplitter, QTabWidget, QToolBar, QVBoxLayout,
                               QWidget)

from jcs_viewer.gui import backend
from jcs_viewer.gui.export_actions import ExportActions
from jcs_viewer.gui.pacs_actions import PacsActions
from jcs_viewer.gui.prior import PriorActions
from jcs_viewer.gui.layers_panel import LayersPanel
from jcs_viewer.gui.layout import install_views
from jcs_viewer.gui.review_panel import ReviewPanel
from jcs_viewer.gui.score_strip import ScoreStrip
from jcs_viewer.gui.series_picker import SeriesPickerDialog
from jcs_viewer.gui.session_ui import install_editing
from jcs_viewer.gui.slice_view import SliceView
from jcs_viewer.gui.state import ViewerState
from jcs_viewer.gui.summary_panel import SummaryPanel
from jcs_viewer.gui.user_messages import user_message
from jcs_viewer.gui.screenshot_run import finish_screenshot_run, prepare_screenshot_view
from jcs_viewer.gui.window_chrome import (WarningBanner, analysis_finished_text, initial_size, install_menus,
                                         install_status_bar, is_text_input, progress_reading)
from jcs_viewer.gui.workers import Analysed, OpenedStudy, SeriesChoice, TaskWorker
from jcs_viewer.settings import Settings, SettingsStore

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.options import AnalysisOptions
    from jcs_viewer.pipeline.runner import LoadedModels

APP_NAME = "JCS Viewer"
_ORPHANS: list[TaskWorker] = []  # workers that outlived their window (see closeEvent)
FILE_FILTER = ("CT volumes (*.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr *.dcm);;"
               "DICOM file (*.dcm);;All files (*)")


class MainWindow(QMainWindow):
    """The viewer. Study reading and analysis run in :class:`TaskWorker` threads.

    Args:
        settings: the :class:`~jcs_viewer.settings.SettingsStore` every part reads (tests pass one on a file
            of their own); default: the user's settings file.
        analyze: ``analyze(volume, options=, progress=, cancel=, models=)``; default: the pipeline.
        load_study, scan_folder, demo_study_path: the io functions (injectable for tests).
        models: passed through to ``analyze`` (``None``: the registered default weights).
        options: an ``AnalysisOptions`` (``None``: defaults).
    """

    def __init__(self, *, settings: SettingsStore | None = None, analyze: Callable[..., Any] | None = None,
                 load_study: Callable[..., Any] | None = None, scan_folder: Callable[..., Any] | None = None,
                 demo_study_path: Callable[[], Any] | None = None, models: LoadedModels | None = None,
                 options: AnalysisOptions | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        # One INI file shared with the headless core (jcs_viewer.settings reads it).
        self.settings = settings if settings is not None else SettingsStore()
        self._analyze = analyze or backend.analyze
        # Models are loaded once by the first analysis and kept (only with the real pipeline).
        self._load_models = backend.load_models if analyze is None else None
        self._load_study = load_study or backend.load_study
        self._scan_folder = scan_folder or backend.scan_folder
        self._demo_study_path = demo_study_path or backend.demo_study_path
        self.models = models
        self.options = options
        self.state = ViewerState()
        self.state.mouse_scheme = self.settings.values.mouse_scheme
        self.study_path: Path | None = None
        self.load_worker: TaskWorker | None = None
        self.analysis_worker: TaskWorker | None = None
        self.last_error: str | None = None
        self.last_status: str = ""
        self.settings_note = ""  # what the settings file could not give the last analysis
        self._message_box: QMessageBox | None = None
        self._old_workers: list[TaskWorker] = []
        # Screenshot mode (--screenshot/--quit-after-analysis): set by the CLI.
        self.screenshot_path: Path | None = None
        self.quit_after_analysis = False
        self.exit_code = 0
        # Overrides the saved "analyse on open" setting for this window only (CLI --no-analysis).
        self.auto_override: bool | None = None

        self.setWindowTitle(f"{APP_NAME} — research use only")
        self.setAcceptDrops(True)
        self.resize(*initial_size())
        self._build_widgets()
        install_menus(self)
        install_status_bar(self)
        self._connect_state()
        self.views = install_views(self)  # axial / 1×3 layouts, linked crosshair, 3-D tab
        self.editing = install_editing(self)  # brush/eraser, Edit menu, undo/redo, session autosave/restore
        self.exports = ExportActions(self, self._file_menu, before=self.settings_action)  # report, SEG, NIfTI, CSV
        self.pacs = PacsActions(self, self._file_menu, before=self.settings_action)  # open from / send to a PACS
        self.prior = PriorActions(self, self._file_menu, before=self.settings_action)  # follow-up comparison
        QApplication.instance().installEventFilter(self)
        if self.settings.notes:
            self._note_settings(self.settings.notes)

    # ================================================================== construction
    def _build_widgets(self) -> None:
        state = self.state
        self.slice_view = SliceView(state)
        self.slice_view.setAcceptDrops(False)
        self.score_strip = ScoreStrip(state)
        self.score_strip.setAcceptDrops(False)
        self.banner = WarningBanner()
        self.empty_hint = QLabel("Open a study: File ▸ Open Study (Ctrl+O), drop a folder or file here, "
                                 "or File ▸ Open Demo Study.")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setStyleSheet("color: #aaa; font-size: 13pt;")

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(2)
        left_layout.addWidget(self.banner)
        image_split = QSplitter(Qt.Orientation.Vertical)
        image_split.addWidget(self.slice_view)
        image_split.addWidget(self.score_strip)
        image_split.setStretchFactor(0, 5)
        image_split.setStretchFactor(1, 1)
        image_split.setSizes([700, 150])
        left_layout.addWidget(self.empty_hint)
        left_layout.addWidget(image_split, 1)
        self.image_split = image_split

        self.review_panel = ReviewPanel(state)
        self.layers_panel = LayersPanel(state)
        self.summary_panel = SummaryPanel(state)
        right = QSplitter(Qt.Orientation.Vertical)
        right.setChildrenCollapsible(False)
        for title, widget in (("Summary", self.summary_panel), ("Flagged slices", self.review_panel)):
            box = QGroupBox(title)
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(4, 6, 4, 4)
            box_layout.addWidget(widget)
            right.addWidget(box)
        # Layers and lesion editing share one tabbed box (editing adds its tab, see session_ui):
        # at 1440x900 four stacked boxes left the summary a few lines high.
        self.side_tabs = QTabWidget()
        self.side_tabs.setDocumentMode(True)
        self.side_tabs.addTab(self.layers_panel, "Layers")
        right.addWidget(self.side_tabs)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setStretchFactor(2, 0)
        right.setMinimumWidth(360)
        self.side_split = right

        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 1)
        main.setSizes([1040, 400])
        self.setCentralWidget(main)

        # Toolbar: open/analyse buttons, then the progress of the running task and its Cancel.
        bar = QToolBar("Main")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.toolbar = bar
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumWidth(320)
        self.progress.setFormat("")
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running task; the previous result is kept (Esc)")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.clicked.connect(self.cancel_tasks)
        self._progress_widget = QWidget()
        pl = QHBoxLayout(self._progress_widget)
        pl.setContentsMargins(12, 0, 0, 0)
        pl.addWidget(self.progress)
        pl.addWidget(self.cancel_button)

    def add_action(self, menu: Any, text: str, slot: Callable[..., Any], shortcut: Any = None,
                before: QAction | None = None) -> QAction:
        """A menu action calling ``slot``; appended, or inserted above ``before`` (e.g. Settings/Quit)."""
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda *_: slot())
        menu.insertAction(before, action) if before is not None else menu.addAction(action)
        return action

    def _connect_state(self) -> None:
        state = self.state
        state.on("slice", lambda z: self._update_slice_labels())
        state.on("volume", lambda v: self._on_volume_shown())
        state.on("window", lambda width, level: self.window_label.setText(
            f"W {width:.0f}  L {level:.0f}  ({state.preset})"))
        state.on("cursor", self._on_cursor)
        self._on_volume_shown()

    # ================================================================== settings / recent
    def show_about(self) -> None:
        from jcs_viewer.gui.about import show_about  # reads the weights registry (imports torch once)

        show_about(self)

    def edit_settings(self) -> None:
        from jcs_viewer.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self, store=self.settings)
        dialog.saved.connect(self.apply_settings)
        dialog.exec()

    def _note_settings(self, notes: list[str]) -> None:
        """Say what the settings file could not give (at start and with each analysis until it is saved again)."""
        self.settings_note = f"Settings file {self.settings.path}: {'; '.join(notes)}."
        self.show_status(self.settings_note)

    def apply_settings(self, settings: Settings) -> None:
        """Take a saved :class:`jcs_viewer.settings.Settings` into use (the mouse at once, analysis options for
        the next run)."""
        self.settings_note = ""  # the reader has saved settings the app can use
        self.auto_action.setChecked(settings.auto_analyze)
        self.state.mouse_scheme = settings.mouse_scheme

    def analysis_options(self) -> AnalysisOptions:
        """Options for the next run: the injected ones, else the reader's saved settings."""
        if self.options is not None:
            return self.options
        from jcs_viewer.pipeline.options import AnalysisOptions

        s, notes = self.settings.reload_checked()  # a headless run or another window may have changed the file
        if notes:  # the run goes on with the defaults in their place; the status line says why
            self._note_settings(notes)
        return AnalysisOptions(device=s.device, threshold=s.slice_threshold, slice_cutoff=s.slice_cutoff,
                               slice_score=s.slice_score, segment_all_slices=s.segment_all_slices)

    @property
    def auto_analyse(self) -> bool:
        if self.auto_override is not None:
            return self.auto_override
        return self.settings.values.auto_analyze

    def save_setting(self, **changes: Any) -> None:
        """Store settings fields; a file that cannot be written costs the preference, not the reading."""
        try:
            self.settings.update(**changes)
        except OSError as exc:
            self.show_status(str(exc))

    # ================================================================== opening studies
    def choose_study_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open study folder", self.recent.last_dir())
        if folder:
            self.open_path(Path(folder))

    def choose_study_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CT volume", self.recent.last_dir(), FILE_FILTER)
        if path:
            self.open_path(Path(path))

    @staticmethod
    def _study_title(path: Path, volume: Volume, demo: bool = False) -> str:
        """"<study> — <series> — JCS Viewer (research use only)": the demo by that name (its folder is called
        "dicom"), and the app's name once, even where a description carries it."""
        name = "Demo study (synthetic)" if demo else (path.name or str(path))
        info = getattr(volume, "info", None)
        desc = getattr(info, "series_description", "") or getattr(info, "study_description", "")
        desc = desc.replace(f"({APP_NAME})", "").replace(APP_NAME, "").strip(" -—")
        return f"{name}{' — ' + desc if desc else ''} — {APP_NAME} (research use only)"

    def open_demo(self) -> None:
        """Open the built-in synthetic study (generated once, in the worker)."""
        def task(progress: Callable[..., None], cancel: Any) -> Any:
            progress("demo", 0, 1, "")
            path = Path(self._demo_study_path())
            progress("load", 0, 1, "")
            return OpenedStudy(path, self._load_study(path, series_uid=None), demo=True)
        self._start_load(task, "opening the demo study")

    def open_path(self, path: Path, series_uid: str | None = None) -> None:
        """Open a study folder or file in the background; a folder with several series asks which."""
        path = Path(path)
        # An unattended run (--screenshot) has nobody to answer the series picker: it takes the series
        # ``analyze`` would (the CT series with the most slices).
        ask = self.screenshot_path is None

        def task(progress: Callable[..., None], cancel: Any) -> Any:
            if series_uid is None and path.is_dir() and ask:
                progress("scan", 0, 1, "")
                entries = [e for e in self._scan_folder(path) if getattr(e, "has_pixels", True)]
                if len(entries) > 1:
                    return SeriesChoice(path, entries)
            progress("load", 0, 1, "")
            return OpenedStudy(path, self._load_study(path, series_uid=series_uid))
        self._start_load(task, f"opening {path.name or path}")

    def _start_load(self, task: Callable[..., Any], action: str) -> None:
        if self.load_worker is not None and self.load_worker.busy:
            self.show_status("A study is already being opened; wait for it or cancel it.")
            return
        worker = TaskWorker(action, task, self)
        worker.succeeded.connect(self._on_loaded)
        worker.failed.connect(lambda exc: self._on_task_failed(exc, action))
        worker.cancelled.connect(lambda: self.show_status("Opening the study was cancelled."))
        self.load_worker = worker
        self.track(worker)

    def pick_series(self, folder: Path, entries: list[Any]) -> str | None:
        """Ask which series to open (tests replace this method)."""
        dialog = SeriesPickerDialog(entries, str(folder), self)
        if dialog.exec() == SeriesPickerDialog.DialogCode.Accepted:
            return dialog.selected_uid()
        return None

    def _on_loaded(self, outcome: OpenedStudy | SeriesChoice) -> None:
        path = outcome.path
        if isinstance(outcome, SeriesChoice):
            uid = self.pick_series(path, outcome.entries)
            if uid is not None:
                QTimer.singleShot(0, self, lambda: self.open_path(path, series_uid=uid))
            elif self.screenshot_path is not None:
                self._finish_screenshot_run(2)
            return
        volume = outcome.volume
        self.cancel_analysis()  # a result for the previous study must not land on this one
        self.study_path = path
        self.state.set_volume(volume)
        self.recent.remember(path)
        self.banner.show_messages(list(getattr(volume, "warnings", []) or []))
        self.setWindowTitle(self._study_title(path, volume, outcome.demo))
        self.show_status(f"Opened {path} ({volume.n_slices} slices).")
        if self.auto_analyse:
            QTimer.singleShot(0, self.start_analysis)
        elif self.screenshot_path is not None:
            self.finish_screenshot_later(0, 200)

    def _on_volume_shown(self) -> None:
        has = self.state.volume is not None
        self.empty_hint.setVisible(not has)
        if not hasattr(self, "views"):  # afterwards image_split is the "Slices" tab: the tab widget shows it
            self.image_split.setVisible(has)
        self.analyse_action.setEnabled(has)
        self._update_slice_labels()

    # ================================================================== analysis
    def start_analysis(self) -> None:
        """Run the pipeline on the open study in the background (F5 / toolbar / on open)."""
        volume = self.state.volume
        if volume is None:
            self.show_status("Open a study first.")
            return
        if self.analysis_worker is not None and self.analysis_worker.busy:
            self.show_status("The analysis is already running.")
            return

        options, models, load_models = self.analysis_options(), self.models, self._load_models

        def task(progress: Callable[..., None], cancel: Any) -> Any:
            nonlocal models
            if models is None and load_models is not None:
                progress("load models", 0, 1, "Loading the models")
                models = load_models(options)
            result = self._analyze(volume, options=options, progress=progress, cancel=cancel, models=models)
            return Analysed(volume, result, models)

        worker = TaskWorker("analysis", task, self)
        worker.succeeded.connect(self._on_analysed)
        # The volume analysed rides in the closures: a late answer for a study no longer shown is dropped.
        worker.failed.connect(lambda exc, v=volume: self._on_analysis_failed(v, exc))
        worker.cancelled.connect(lambda v=volume: self._on_analysis_cancelled(v))
        self.analysis_worker = worker
        self.show_status(f"Analysing… {self.settings_note}".strip())
        self.track(worker)

    def _on_analysed(self, outcome: Analysed) -> None:
        result = outcome.result
        if outcome.models is not None:
            self.models = outcome.models
        if outcome.volume is not self.state.volume:
            return  # the user opened another study meanwhile
        try:
            # The edited-mask session shows the result (and asks before replacing manual edits).
            if not self.editing.adopt_result(outcome.volume, result):
                return
        except Exception as exc:  # noqa: BLE001 - a malformed result must not crash the viewer
            self._on_task_failed(exc, "showing the analysis")
            return
        self.show_status(f"{analysis_finished_text(result)} {self.settings_note}".strip())
        if self.screenshot_path is not None:
            code = self._prepare_screenshot_view()
            self.finish_screenshot_later(code, 300)

    def _on_analysis_failed(self, volume: Volume, exc: BaseException) -> None:
        if volume is not self.state.volume:
            return
        self._on_task_failed(exc, "analysing the study")

    def _on_analysis_cancelled(self, volume: Volume) -> None:
        if volume is not self.state.volume:
            return  # cancelled because another study was opened
        kept = "the previous result is kept" if self.state.result is not None else "no result was kept"
        self.show_status(f"Analysis cancelled; {kept}.")
        if self.screenshot_path is not None:
            self._finish_screenshot_run(1)

    def cancel_analysis(self) -> None:
        if self.analysis_worker is not None and self.analysis_worker.busy:
            self.analysis_worker.cancel()
            old = self.analysis_worker
            self._old_workers.append(old)
            old.finished.connect(lambda w=old: self._old_workers.remove(w) if w in self._old_workers else None)
            self.analysis_worker = None  # a new analysis may start while this one winds down
            self._update_busy()

    def cancel_tasks(self) -> None:
        """Cancel whatever runs (Esc / Cancel button)."""
        for worker in (self.load_worker, self.analysis_worker, getattr(getattr(self, "prior", None), "worker", None)):
            if worker is not None and worker.busy:
                worker.cancel()
                self.progress.setFormat("Cancelling…")

    def track(self, worker: TaskWorker) -> None:
        """Start ``worker`` (already held where :attr:`busy` looks) with its progress in the window's bar.

        The bar and Cancel follow :attr:`busy`, updated on ``settled`` — the event that ends a worker's busy
        state — so no handler sees a window that is idle with its bar still up.
        """
        worker.progress.connect(self._on_progress)
        worker.settled.connect(self._update_busy)
        worker.start()
        self._update_busy()

    @property
    def busy(self) -> bool:
        workers = (self.load_worker, self.analysis_worker,
                   *(getattr(getattr(self, name, None), "worker", None) for name in ("exports", "pacs", "prior")))
        return any(w is not None and w.busy for w in workers)

    def _update_busy(self) -> None:
        busy = self.busy
        self._progress_action.setVisible(busy)
        self.cancel_action.setEnabled(busy)
        if not busy:
            self.progress.setValue(0)
            self.progress.setFormat("")

    def _on_progress(self, stage: str, done: int, total: int, message: str) -> None:
        value, text = progress_reading(stage, done, total, message)
        self.progress.setValue(value)
        self.progress.setFormat(text)

    # ================================================================== messages
    def _on_task_failed(self, exc: BaseException, action: str) -> None:
        self.show_error(user_message(exc, action))

    def show_error(self, sentence: str) -> None:
        """One plain sentence in a (non-blocking) message box; never a traceback."""
        self.last_error = sentence
        self.show_status(sentence)
        if self.screenshot_path is not None:
            import sys

            print(f"jcs-viewer: {sentence}", file=sys.stderr)
            self.finish_screenshot_later(2, 0)  # after the failed worker settled: the picture shows it idle
            return
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, sentence, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._message_box = box
        box.open()

    def _info(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_status(self, text: str) -> None:
        self.last_status = text
        self.message_label.show_message(text, 8000)

    def _update_slice_labels(self) -> None:
        state = self.state
        if state.volume is None:
            self.slice_label.setText("No study")
            self.position_label.setText("")
            return
        flag = ""
        if state.result is not None and bool(np.asarray(state.result.slice_positive)[state.z]):
            flag = " ⚑"
        self.slice_label.setText(f"Slice {state.z + 1}/{state.n_slices}{flag}")
        try:
            self.position_label.setText(f"z = {state.volume.slice_position_mm(state.z):.1f} mm")
        except Exception:  # noqa: BLE001 - a volume without geometry still shows its slices
            self.position_label.setText("")
        self._on_cursor(state.cursor)

    def _on_cursor(self, info: dict[str, Any] | None) -> None:
        if info is None:
            self.cursor_label.setText("")
            return
        volume = self.state.volume
        unit = "value" if not self.state.is_hu else "est. HU" if getattr(volume, "hu_estimated", False) else "HU"
        self.cursor_label.setText(f"voxel ({info['x']}, {info['y']}, {info['z']})  {unit} {info['value']}")

    # ================================================================== keys
    def handle_key(self, key: int) -> bool:
        """Viewer hotkeys (DESIGN.md); returns whether the key was used."""
        state = self.state
        k = Qt.Key
        actions: dict[int, Callable[[], Any]] = {
            k.Key_1: lambda: state.apply_preset(1), k.Key_2: lambda: state.apply_preset(2),
            k.Key_3: lambda: state.apply_preset(3), k.Key_Up: lambda: state.step(1),
            k.Key_Down: lambda: state.step(-1), k.Key_PageUp: lambda: state.step(10),
            k.Key_PageDown: lambda: state.step(-10), k.Key_Home: lambda: state.set_slice(0),
            k.Key_End: lambda: state.set_slice(state.n_slices - 1), k.Key_R: state.reset_view,
            k.Key_S: state.toggle_overlays, k.Key_I: state.toggle_corners, k.Key_N: state.next_flagged,
            k.Key_P: state.previous_flagged,
            k.Key_C: lambda: state.review.confirm(state.z) if state.result is not None else None,
            k.Key_X: lambda: state.review.reject(state.z) if state.result is not None else None,
            k.Key_Escape: self.cancel_tasks,
        }
        action = actions.get(key)
        if action is None:
            return False
        action()
        return True

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        # Keys are handled here, before child widgets (the graphics view would eat the arrows).
        if (event.type() == QEvent.Type.KeyPress and isinstance(obj, QWidget) and obj.window() == self
                and not is_text_input(obj)):  # typing notes or a number must not change the slice
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if mods == Qt.KeyboardModifier.NoModifier and self.handle_key(event.key()):
                return True
        return super().eventFilter(obj, event)

    # ================================================================== drag and drop
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(paths[0])

    # ================================================================== screenshot run
    def _prepare_screenshot_view(self) -> int:
        return prepare_screenshot_view(self)

    def _finish_screenshot_run(self, code: int) -> None:
        finish_screenshot_run(self, code)

    def finish_screenshot_later(self, code: int, delay_ms: int) -> None:
        # Bound to this window (the context object): if it is closed first, the timer never calls into it.
        QTimer.singleShot(delay_ms, self, lambda: self._finish_screenshot_run(code))

    # ================================================================== closing
    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        for worker in (self.load_worker, self.analysis_worker, *self._old_workers):
            if worker is not None and worker.isRunning():
                worker.cancel()
                if not worker.wait(5000):
                    # Still busy (e.g. inside one long model call): let it finish on its own
                    # rather than destroying a running thread with this window.
                    worker.setParent(None)
                    _ORPHANS.append(worker)
                    worker.finished.connect(lambda w=worker: _ORPHANS.remove(w) if w in _ORPHANS else None)
        super().closeEvent(event)
