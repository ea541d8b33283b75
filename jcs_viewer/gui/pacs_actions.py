"""File ▸ Open from PACS… and File ▸ Send Results to PACS…

Open: the study browser (:mod:`jcs_viewer.gui.pacs_dialog`) retrieves a study into the user's data folder and the
window opens that folder like any other. Send: after review, the reader's edits (edited lesion mask, review states,
notes, reviewer) go into the DICOM SEG, the SR of the quantities and the report (Encapsulated PDF), written by the
same writer as ``analyze --report`` (:func:`jcs_viewer.report.bundle.export_all`) and stored on the PACS in the
source study, all in a worker.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget

from jcs_viewer.gui.pacs_dialog import PacsBrowserDialog
from jcs_viewer.gui.workers import TaskWorker


class SendDialog(QDialog):
    """Which PACS the results go to, and whether they are anonymised."""

    def __init__(self, parent: QWidget, servers: tuple[str, ...], ae_title: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send results to PACS")
        form = QFormLayout(self)
        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.addItems(list(servers))
        form.addRow("Server:", self.server)
        form.addRow("", QLabel(f"as {ae_title}: the DICOM SEG, the measurements (SR) and the report (PDF) go into "
                               "the study as new series, with your edits."))
        self.anonymize_box = QCheckBox("Anonymise (a pseudonymous study instead of the patient's)")
        form.addRow("", self.anonymize_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Send")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class PacsActions(QObject):
    """Adds the two PACS actions to the window's File menu (above ``before``)."""

    def __init__(self, window: Any, file_menu: Any, before: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.worker: TaskWorker | None = None
        self.browser: PacsBrowserDialog | None = None
        self.last_sent: list[str] = []
        self.open_action = window.add_action(file_menu, "Open from &PACS…", self.open_from_pacs, "Ctrl+Shift+P", before)
        self.send_action = window.add_action(file_menu, "Send Results to PA&CS…", self.send_results, before=before)

    def _settings(self) -> tuple[tuple[str, ...], str]:
        values = self.window.settings.values
        return tuple(values.pacs_servers), values.pacs_ae_title or "JCSVIEWER"

    # ------------------------------------------------------------------ open
    def open_from_pacs(self) -> None:
        """Show the study browser (non-modal); a retrieved study opens in the window."""
        servers, ae_title = self._settings()
        dialog = PacsBrowserDialog(self.window, servers, ae_title)
        dialog.accepted.connect(lambda: dialog.folder is not None and self.window.open_path(dialog.folder))
        self.browser = dialog
        dialog.open()

    # ------------------------------------------------------------------ send
    def send_results(self, server: str | None = None, anonymize: bool | None = None) -> None:
        """Ask where (unless ``server`` is given, as tests do), then write and store the results in a worker."""
        window = self.window
        inputs = window.exports._inputs()  # the reader's session: edited mask, review, notes, reviewer
        if inputs is None:
            return
        volume, kwargs = inputs
        from jcs_viewer.io.export import dicom_seg_unavailable

        reason = dicom_seg_unavailable(volume)
        if reason is not None:
            window.show_error(f"Results can only go back to a PACS for a DICOM study: {reason}.")
            return
        servers, ae_title = self._settings()
        if server is None:
            dialog = SendDialog(window, servers, ae_title)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            server, anonymize = dialog.server.currentText().strip(), dialog.anonymize_box.isChecked()
        anonymize = bool(anonymize)
        if self.worker is not None and self.worker.busy:
            window.show_status("Results are already being sent.")
            return

        def task(progress: Any, cancel: Any) -> list[str]:
            from jcs_viewer.pacs.client import echo, send_files
            from jcs_viewer.report.bundle import DICOM_OUTPUT_NAMES, export_all

            progress("send", 0, 3, "Checking the PACS")
            target = echo(server, ae_title)
            pseudonyms = None
            if anonymize:
                from jcs_viewer.io.deidentify import Pseudonymizer

                pseudonyms = Pseudonymizer()
            with tempfile.TemporaryDirectory(prefix="jcs-send-") as folder:
                progress("send", 1, 3, "Writing the SEG, SR and report")
                written = export_all(kwargs.pop("result"), volume, folder, report=True, anonymize=anonymize,
                                     pseudonyms=pseudonyms, dicom_results=True, **kwargs)
                files = [Path(folder) / name for name in DICOM_OUTPUT_NAMES if (Path(folder) / name).is_file()]
                if not files:
                    from jcs_viewer.errors import ExportError

                    raise ExportError(" ".join(written.notes) or "No DICOM result could be written.")
                progress("send", 2, 3, f"Storing on {target}")
                send_files(target, files, ae_title)
                progress("send", 3, 3, "")
                return [f"{f.name}" for f in files] + [str(target)]

        worker = TaskWorker("send", task, window)
        worker.succeeded.connect(self._on_sent)
        worker.failed.connect(lambda exc: window._on_task_failed(exc, "sending the results to the PACS"))
        self.worker = worker
        window.show_status(f"Sending the results to {server}…")
        window.track(worker)

    def _on_sent(self, sent: list[str]) -> None:
        *names, server = sent
        self.last_sent = names
        self.window.show_status(f"Sent {', '.join(names)} to {server}.")
