"""File ▸ Export Report… and Export Segmentation…: dialogs on the GUI thread, writing in a worker.

The reader's session decides what is exported: the edited lesion mask, the review states,
notes and reviewer name go into the report; the AI result stays separate inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QPushButton, QWidget)

from jcs_viewer.gui.workers import TaskWorker


class ReportDialog(QDialog):
    """Where to write the report, whether to anonymise it, and who reviewed."""

    def __init__(self, parent: QWidget, path: Path, reviewer: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export report")
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.path_edit = QLineEdit(str(path))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("PDF file", row)
        self.reviewer_edit = QLineEdit(reviewer)
        form.addRow("Reviewer", self.reviewer_edit)
        self.anonymize_box = QCheckBox("Anonymise (remove name, ID, birth date and accession number)")
        form.addRow("", self.anonymize_box)
        self.segmentation_box = QCheckBox("Also write the segmentation (DICOM SEG, NIfTI) and the per-slice CSV")
        form.addRow("", self.segmentation_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(620, self.sizeHint().height())

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save report", self.path_edit.text(), "PDF (*.pdf)")
        if path:
            self.path_edit.setText(path if path.lower().endswith(".pdf") else path + ".pdf")

    @property
    def path(self) -> Path:
        return Path(self.path_edit.text()).expanduser()


class ExportActions(QObject):
    """Adds the export actions to the window's File menu and runs the writers in a worker."""

    def __init__(self, window: Any, file_menu: Any, before: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.worker: TaskWorker | None = None
        self.last_written: dict[str, Path] = {}
        self.report_action = window.add_action(file_menu, "Export &Report…", self.export_report, "Ctrl+E", before)
        self.seg_action = window.add_action(file_menu, "Export Se&gmentation…", self.export_segmentation,
                                         "Ctrl+Shift+E", before)

    # ------------------------------------------------------------------ what to export
    def _inputs(self) -> tuple[Any, dict[str, Any]] | None:
        window = self.window
        volume, result = window.state.volume, window.state.result
        if volume is None or result is None:
            window.show_error("Analyse a study before exporting: there is no result to export yet.")
            return None
        session = getattr(getattr(window, "editing", None), "session", None)
        if session is not None:
            kwargs = session.report_kwargs()
        else:
            kwargs = {"result": result}
        comparison = getattr(getattr(window, "prior", None), "comparison", None)
        if comparison is not None:  # a prior study is open: the report's Comparison section, comparison.json
            kwargs["comparison"] = comparison
        return volume, kwargs

    def _default_folder(self) -> Path:
        """Where the export dialogs start: the folder of the last export (a setting), else the home folder."""
        folder = Path(self.window.settings.values.export_dir).expanduser()
        return folder if str(folder) not in ("", ".") and folder.is_dir() else Path.home()

    # ------------------------------------------------------------------ actions
    def export_report(self, path: Path | None = None, anonymize: bool | None = None,
                      with_segmentation: bool | None = None) -> None:
        """Ask where (unless ``path`` is given, as tests do) and write the PDF report."""
        inputs = self._inputs()
        if inputs is None:
            return
        volume, kwargs = inputs
        from jcs_viewer.report.pdf import suggest_report_name

        if path is None:
            dialog = ReportDialog(self.window, self._default_folder() / suggest_report_name(volume.info),
                                  kwargs.get("reviewer") or self._reviewer_setting())
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            path, anonymize = dialog.path, dialog.anonymize_box.isChecked()
            with_segmentation = dialog.segmentation_box.isChecked()
            kwargs["reviewer"] = dialog.reviewer_edit.text().strip()
            if kwargs["reviewer"] != self._reviewer_setting():  # the next report starts with it
                self.window.save_setting(reviewer_name=kwargs["reviewer"])
        anonymize, with_segmentation = bool(anonymize), bool(with_segmentation)

        def task(progress: Any, cancel: Any) -> dict[str, Path]:
            progress("export", 0, 1, "Writing the report")
            if with_segmentation:
                from jcs_viewer.report import export_all

                # The SR (quantities and the reader's measurements) goes beside the SEG, as DICOM readers expect.
                written = export_all(kwargs.pop("result"), volume, path.parent, anonymize=anonymize,
                                     dicom_results=True, **kwargs)
                report = written.pop("report", None)
                if report is not None and Path(report) != path:
                    Path(report).replace(path)
                    written["report"] = path
                return written
            from jcs_viewer.report import write_report

            return {"report": write_report(kwargs.pop("result"), volume, path, anonymize=anonymize, **kwargs)}

        self._run(task, "writing the report")

    def export_segmentation(self, folder: Path | None = None) -> None:
        """Write DICOM SEG and SR (DICOM studies), NIfTI lesion/lung masks and the CSV into a folder."""
        inputs = self._inputs()
        if inputs is None:
            return
        volume, kwargs = inputs
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self.window, "Export segmentation to folder",
                                                      str(self._default_folder()))
            if not chosen:
                return
            folder = Path(chosen)

        def task(progress: Any, cancel: Any) -> dict[str, Path]:
            from jcs_viewer.report import export_all

            progress("export", 0, 1, "Writing the segmentation")
            return export_all(kwargs.pop("result"), volume, folder, report=False, dicom_results=True, **kwargs)

        self._run(task, "exporting the segmentation")

    def _reviewer_setting(self) -> str:
        return self.window.settings.values.reviewer_name

    def _run(self, task: Any, action: str) -> None:
        if self.worker is not None and self.worker.busy:
            self.window.show_status("An export is already running.")
            return
        worker = TaskWorker("export", task, self.window)
        worker.succeeded.connect(self._on_written)
        worker.failed.connect(lambda exc: self.window._on_task_failed(exc, action))
        self.worker = worker
        self.window.show_status("Exporting…")
        self.window.track(worker)

    def _on_written(self, written: dict[str, Path]) -> None:
        self.last_written = {k: Path(v) for k, v in written.items()}
        if self.last_written:  # the next export dialog starts here
            self.window.save_setting(export_dir=str(next(iter(self.last_written.values())).parent))
        names = ", ".join(p.name for p in self.last_written.values())
        folder = next(iter(self.last_written.values())).parent if self.last_written else ""
        # e.g. "No lesion_seg.dcm: DICOM SEG needs a DICOM source, ..." for a NIfTI study
        notes = "".join(f" {note}" for note in getattr(written, "notes", ()) or ())
        self.window.show_status(f"Exported {names} to {folder}.{notes}")
