"""File ▸ Open from PACS: a study browser (server from Settings, search by patient ID) that retrieves the chosen
study in a worker, with progress and Cancel, into a folder the viewer then opens like any other.

Every network call runs in a :class:`~jcs_viewer.gui.workers.TaskWorker`; the dialog only shows rows, progress
and one sentence when something fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from jcs_viewer.gui.workers import TaskWorker
from jcs_viewer.vocabulary import counted, dicom_date, person_name

COLUMNS = (("PatientID", "Patient ID"), ("PatientName", "Name"), ("StudyDate", "Date"),
           ("ModalitiesInStudy", "Modalities"), ("NumberOfStudyRelatedInstances", "Images"),
           ("StudyDescription", "Description"))


def retrieve_folder(study_uid: str) -> Path:
    """Where a retrieved study lands: the user's data folder, one sub-folder per study."""
    from jcs_viewer.settings import data_dir

    return data_dir() / "pacs" / study_uid


class PacsBrowserDialog(QDialog):
    """Search a PACS and retrieve one study; after ``exec()`` is accepted, :attr:`folder` holds its files.

    Args:
        parent: parent widget.
        servers: the servers of the settings (the first selected); the combo box also takes a typed one.
        ae_title: our calling AE title.
    """

    def __init__(self, parent: QWidget | None, servers: tuple[str, ...], ae_title: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.ae_title = ae_title
        self.folder: Path | None = None
        self.rows: list[dict[str, Any]] = []
        self.worker: TaskWorker | None = None
        self.last_error = ""

        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.addItems(list(servers))
        self.server.setToolTip("AET@HOST:PORT or http(s)://HOST/dicom-web (File ▸ Settings keeps the list)")
        self.server.lineEdit().setPlaceholderText("PACS@pacs.hospital.org:104 or https://…/dicom-web")
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("Patient ID (wildcards * and ?), empty for every study")
        self.patient.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        top = QHBoxLayout()
        top.addWidget(QLabel("Server:"))
        top.addWidget(self.server, 2)
        top.addWidget(QLabel(f"as {ae_title}"))
        query = QHBoxLayout()
        query.addWidget(self.patient, 1)
        query.addWidget(self.search_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([label for _, label in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda *_: self.retrieve())

        self.status = QLabel("Search the PACS for studies.")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)  # no "0%" while nothing is retrieved
        self.retrieve_button = QPushButton("Retrieve and Open")
        self.retrieve_button.setDefault(True)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(query)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(bottom)
        self.resize(900, 480)
        self._update_buttons()

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        return self.worker is not None and self.worker.busy

    def selected_row(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        self.search_button.setEnabled(not self.busy)
        self.retrieve_button.setEnabled(not self.busy and self.selected_row() is not None)
        self.cancel_button.setText("Cancel retrieve" if self.busy else "Close")

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #c0392b;" if error else "")
        if error:
            self.last_error = text

    # ------------------------------------------------------------------ search
    def search(self) -> None:
        """Query the PACS in a worker (study level, the patient ID as typed)."""
        if self.busy:
            return
        server, patient = self.server.currentText().strip(), self.patient.text().strip()
        ae_title = self.ae_title

        def task(progress: Any, cancel: Any) -> list[dict[str, Any]]:
            from jcs_viewer.pacs.client import find_studies

            return find_studies(server, ae_title, patient_id=patient)
        self._say(f"Searching {server}…")
        self._start(task, self._show_rows)

    def _show_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _label) in enumerate(COLUMNS):
                value = row.get(key)
                text = "/".join(value) if isinstance(value, list) else "" if value is None else str(value)
                text = dicom_date(text) if key == "StudyDate" else person_name(text) if key == "PatientName" else text
                item = QTableWidgetItem(text)
                item.setToolTip(row["StudyInstanceUID"])
                self.table.setItem(r, c, item)
        if rows:
            self.table.selectRow(0)
        self._say(f"{counted(len(rows), 'study', 'studies')} found." if rows else "No study found.")

    # ------------------------------------------------------------------ retrieve
    def retrieve(self) -> None:
        """Retrieve the selected study in a worker; the dialog closes (accepted) when every instance arrived."""
        row = self.selected_row()
        if row is None or self.busy:
            return
        server, ae_title, uid = self.server.currentText().strip(), self.ae_title, row["StudyInstanceUID"]
        folder = retrieve_folder(uid)

        def task(progress: Any, cancel: Any) -> Path:
            from jcs_viewer.pacs.client import retrieve_study

            shutil.rmtree(folder, ignore_errors=True)  # an older copy
            try:
                retrieve_study(server, uid, folder, ae_title, cancel=lambda: cancel.cancelled,
                               progress=lambda done, total: progress("retrieve", done, total, ""))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # cancelled or partial: nothing half is kept
                raise
            return folder
        self._say(f"Retrieving {row['PatientID'] or 'the study'} from {server}…")
        self._start(task, self._retrieved)

    def _retrieved(self, folder: Path) -> None:
        self.folder = folder
        self.accept()

    def cancel(self) -> None:
        """Cancel a running retrieve (the dialog stays open), else close the dialog."""
        if self.busy:
            self.worker.cancel()
            self._say("Cancelling…")
        else:
            self.reject()

    def reject(self) -> None:  # noqa: D102 - Escape / the window's close button cancel first
        if self.busy:
            self.worker.cancel()
            self.worker.wait()
        super().reject()

    # ------------------------------------------------------------------ worker plumbing
    def _start(self, task: Any, on_success: Any) -> None:
        from jcs_viewer.gui.user_messages import user_message

        worker = TaskWorker("pacs", task, self)
        worker.progress.connect(self._on_progress)
        worker.succeeded.connect(on_success)
        worker.failed.connect(lambda exc: self._say(user_message(exc, "talking to the PACS"), error=True))
        worker.cancelled.connect(lambda: self._say("Retrieve cancelled; nothing was kept."))
        worker.settled.connect(self._update_buttons)
        self.worker = worker
        self.progress.setRange(0, 0)  # busy until the first count arrives
        worker.settled.connect(lambda: (self.progress.setRange(0, 1), self.progress.setValue(0),
                                        self.progress.setTextVisible(False)))
        worker.start()
        self._update_buttons()

    def _on_progress(self, stage: str, done: int, total: int, message: str) -> None:
        if stage == "retrieve" and total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("%v of %m images")
            self.progress.setTextVisible(True)
            self.status.setText(f"Retrieving: {done} of {total} images arrived.")
            self.progress.setAlignment(Qt.AlignmentFlag.AlignCenter)
