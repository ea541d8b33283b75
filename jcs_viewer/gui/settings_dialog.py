"""Preferences dialog: edits the injected :class:`jcs_viewer.settings.SettingsStore`.

The store writes the INI file the headless core reads (:class:`jcs_viewer.settings.Settings`), so what the
reader sees here is exactly what ``jcs-viewer analyze`` will use.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPlainTextEdit,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from jcs_viewer.gui.mouse import SCHEMES
from jcs_viewer.settings import Settings, SettingsStore

DEVICES = (("auto", "Automatic (GPU when available)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"))
LAYOUTS = (("axial", "Axial slice only"), ("1x3", "Axial, coronal and sagittal (1×3)"))
RESTORE = (("ask", "Ask"), ("always", "Restore it"), ("never", "Start from the AI result"))
NOT_IN_DIALOG = ("recent_studies", "export_dir")  # kept by the File menu and the exports, not edited here
AUTO_THRESHOLD = -1  # spin box value shown as "Automatic"
MAX_THRESHOLD = 2000
MAX_UNDO = 1000


class SettingsDialog(QDialog):
    """Edit the reader's preferences; OK saves them, Cancel leaves the file as it was.

    Args:
        parent: parent widget.
        store: the settings to edit (default: the user's file).

    Signals:
        saved(Settings): emitted after OK wrote the file.
    """

    saved = Signal(object)

    def __init__(self, parent: QWidget | None = None, store: SettingsStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("JCS Viewer Settings")
        self.store = store if store is not None else SettingsStore()
        self._build()
        self.set_values(self.store.reload())

    def _build(self) -> None:
        analysis = QGroupBox("Analysis")
        form = QFormLayout(analysis)
        self.device = QComboBox()
        for key, label in DEVICES:
            self.device.addItem(label, key)
        form.addRow("Device:", self.device)
        self.threshold = QSpinBox()
        self.threshold.setRange(AUTO_THRESHOLD, MAX_THRESHOLD)
        self.threshold.setSpecialValueText("Automatic (paper's 25, scaled to the study)")
        self.threshold.setToolTip("A study is positive when MORE than this many slices are positive.")
        form.addRow("Positive-slice threshold:", self.threshold)
        self.cutoff = QDoubleSpinBox()
        self.cutoff.setRange(0.05, 0.95)
        self.cutoff.setSingleStep(0.05)
        self.cutoff.setDecimals(2)
        self.cutoff.setToolTip("Slice score from which a slice counts as positive.")
        form.addRow("Slice score cut-off:", self.cutoff)
        self.slice_score = QComboBox()
        self.slice_score.addItem("Joint: classifier and lesion evidence", "joint")
        self.slice_score.addItem("Classifier only (the paper's flow)", "classifier")
        self.slice_score.setToolTip("Joint averages the classifier's COVID probability with the segmenter's "
                                    "lesion evidence and segments every slice; classifier only segments the "
                                    "slices the classifier flags.")
        form.addRow("Slice score:", self.slice_score)
        self.segment_all = QCheckBox("Segment every slice (classifier score; slower)")
        self.segment_all.setToolTip("With the classifier-only score, segment every slice, not only the flagged ones.")
        form.addRow("", self.segment_all)
        self.auto_analyze = QCheckBox("Analyse a study as soon as it is opened")
        form.addRow("", self.auto_analyze)

        reading = QGroupBox("Reading")
        form2 = QFormLayout(reading)
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText("Shown in reports and review notes")
        form2.addRow("Reviewer name:", self.reviewer)
        self.layout_combo = QComboBox()
        for key, label in LAYOUTS:
            self.layout_combo.addItem(label, key)
        form2.addRow("Default layout:", self.layout_combo)
        self.mouse_combo = QComboBox()
        for key, choice in SCHEMES.items():
            self.mouse_combo.addItem(choice.title, key)
        self.mouse_combo.setToolTip("What the left, middle and right mouse drags do in the slice views "
                                    "(Help ▸ Keyboard and mouse lists them).")
        form2.addRow("Mouse:", self.mouse_combo)
        self.undo_depth = QSpinBox()
        self.undo_depth.setRange(1, MAX_UNDO)
        self.undo_depth.setSuffix(" steps")
        form2.addRow("Undo depth:", self.undo_depth)
        row = QHBoxLayout()
        self.autosave = QLineEdit()
        self.autosave.setPlaceholderText("Default: the user's data folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_autosave)
        row.addWidget(self.autosave, 1)
        row.addWidget(browse)
        form2.addRow("Autosave folder:", row)
        self.restore_combo = QComboBox()
        for key, label in RESTORE:
            self.restore_combo.addItem(label, key)
        self.restore_combo.setToolTip("What to do when a study with an autosaved session (edits, review, notes) "
                                      "is opened again.")
        form2.addRow("Saved session on reopening:", self.restore_combo)

        pacs = QGroupBox("Hospital PACS")
        form3 = QFormLayout(pacs)
        self.ae_title = QLineEdit()
        self.ae_title.setMaxLength(16)
        self.ae_title.setToolTip("Our calling AE title: the PACS must know it (with this computer's address).")
        form3.addRow("Our AE title:", self.ae_title)
        self.servers = QPlainTextEdit()
        self.servers.setPlaceholderText("One per line, the default first:\nPACS@pacs.hospital.org:104\n"
                                        "https://pacs.hospital.org/dicom-web")
        self.servers.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)
        form3.addRow("Servers:", self.servers)

        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setWordWrap(True)
        self.error.hide()
        where = QLabel(f"Stored in {self.store.path}; <code>jcs-viewer analyze</code> uses the same file.")
        where.setWordWrap(True)
        where.setStyleSheet("color: gray;")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: self.set_values(Settings()))
        self.buttons = buttons

        layout = QVBoxLayout(self)
        layout.addWidget(analysis)
        layout.addWidget(reading)
        layout.addWidget(pacs)
        layout.addWidget(self.error)
        layout.addWidget(where)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)

    def set_values(self, settings: Settings) -> None:
        """Show ``settings`` in the widgets (unknown device/layout names fall back to the first choice)."""
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        self.threshold.setValue(AUTO_THRESHOLD if settings.slice_threshold is None
                                else min(max(settings.slice_threshold, 0), MAX_THRESHOLD))
        self.cutoff.setValue(settings.slice_cutoff)
        self.slice_score.setCurrentIndex(max(0, self.slice_score.findData(settings.slice_score)))
        self.segment_all.setChecked(settings.segment_all_slices)
        self.auto_analyze.setChecked(settings.auto_analyze)
        self.reviewer.setText(settings.reviewer_name)
        self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(settings.default_layout)))
        self.mouse_combo.setCurrentIndex(max(0, self.mouse_combo.findData(settings.mouse_scheme)))
        self.undo_depth.setValue(min(max(settings.undo_depth, 1), MAX_UNDO))
        self.autosave.setText(settings.autosave_dir)
        self.restore_combo.setCurrentIndex(max(0, self.restore_combo.findData(settings.session_restore)))
        self.ae_title.setText(settings.pacs_ae_title)
        self.servers.setPlainText("\n".join(settings.pacs_servers))
        self.error.hide()

    def values(self) -> Settings:
        """The settings as currently edited (not yet saved)."""
        threshold = self.threshold.value()
        return dataclasses.replace(
            self.store.values,  # fields this dialog does not show (the recent studies) stay as they are
            device=self.device.currentData(),
            slice_threshold=None if threshold == AUTO_THRESHOLD else threshold,
            slice_cutoff=round(self.cutoff.value(), 2),
            slice_score=self.slice_score.currentData(),
            segment_all_slices=self.segment_all.isChecked(),
            auto_analyze=self.auto_analyze.isChecked(),
            autosave_dir=self.autosave.text().strip(),
            default_layout=self.layout_combo.currentData(),
            mouse_scheme=self.mouse_combo.currentData(),
            reviewer_name=self.reviewer.text().strip(),
            undo_depth=self.undo_depth.value(),
            session_restore=self.restore_combo.currentData(),
            pacs_ae_title=self.ae_title.text().strip(),
            pacs_servers=tuple(line.strip() for line in self.servers.toPlainText().splitlines() if line.strip()),
        )

    def _browse_autosave(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder", self.autosave.text() or str(Path.home()))
        if folder:
            self.autosave.setText(folder)

    def validation_error(self) -> str | None:
        """One sentence about the first invalid field, or None."""
        from jcs_viewer.pacs.server import PacsError, check_ae_title, parse_server

        try:
            check_ae_title(self.ae_title.text(), "AE title")
            for line in self.values().pacs_servers:
                parse_server(line)
        except PacsError as exc:
            return str(exc)
        folder = self.autosave.text().strip()
        if folder and Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
            return f"Autosave folder {folder} is a file, not a folder."
        return None

    def accept(self) -> None:
        """Validate, save, emit :attr:`saved`, close; on a problem keep the dialog open and say why."""
        problem = self.validation_error()
        if problem:
            self.error.setText(problem)
            self.error.show()
            return
        settings = self.values()
        try:
            settings = self.store.replace(settings)
        except OSError as exc:
            QMessageBox.warning(self, "Settings not saved", str(exc))
            return
        self.saved.emit(settings)
        super().accept()


def edit_settings(parent: QWidget | None = None, store: SettingsStore | None = None) -> Settings | None:
    """Run the dialog modally; the saved settings, or None when cancelled."""
    dialog = SettingsDialog(parent, store)
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None
