"""A dialog to choose one series when a folder holds several."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from jcs_viewer.vocabulary import dicom_date

_COLUMNS = ("Series", "Study date", "Modality", "Plane", "Description", "Slices", "Size", "Thickness")


def default_choice(entries: list[Any]) -> int:
    """Index of the entry the loader would pick itself: the CT series with the most slices."""
    def key(i: int) -> tuple[bool, int]:
        e = entries[i]
        return (str(getattr(e, "modality", "")).upper() == "CT", int(getattr(e, "n_slices", 0)))
    return max(range(len(entries)), key=key)


class SeriesPickerDialog(QDialog):
    """Lists series (number, study date, modality, plane, description, slices, size, thickness); returns the
    chosen UID."""

    def __init__(self, entries: list[Any], folder: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self.entries = entries
        self.setWindowTitle("Choose a series")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{folder or 'This folder'} holds {len(entries)} series. Choose one to open:"))
        self.table = QTableWidget(len(entries), len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, entry in enumerate(entries):
            info = getattr(entry, "info", None)
            thickness = getattr(entry, "slice_thickness", None)
            values = (
                str(getattr(info, "series_number", "") or "?"),
                dicom_date(str(getattr(info, "study_date", "") or "")),
                str(getattr(entry, "modality", "")),
                str(getattr(entry, "plane", "")),
                str(getattr(entry, "description", "")),
                str(getattr(entry, "n_slices", "")),
                f"{getattr(entry, 'columns', '?')}×{getattr(entry, 'rows', '?')}",
                "" if thickness is None else f"{float(thickness):.2f} mm",
            )
            for col, value in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.table.selectRow(default_choice(entries) if entries else 0)
        self.table.doubleClicked.connect(lambda _: self.accept())
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 300)

    def selected_uid(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return str(getattr(self.entries[rows[0].row()], "series_uid", ""))
