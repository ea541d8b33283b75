"""Everything that leaves the app for one study, in one folder (``analyze --report``, File > Export)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jcs_viewer.errors import ExportError
from jcs_viewer.io.export import dicom_seg_unavailable, export_csv, export_dicom_seg, export_nifti

REPORT_NAME = "report.pdf"
SEG_NAME = "lesion_seg.dcm"
LESION_NIFTI_NAME = "lesion_mask.nii.gz"
LUNG_NIFTI_NAME = "lung_mask.nii.gz"
CSV_NAME = "per_slice.csv"


class ExportResult(dict[str, Path]):
    """Name -> written path, plus ``notes``: sentences for the user about files not written."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []


def export_all(
    result: Any,
    volume: Any,
    out_dir: str | os.PathLike[str],
    *,
    report: bool = True,
    anonymize: bool = False,
    reviewer: str = "",
    review: Any = None,
    edited_mask: np.ndarray | None = None,
    notes: str = "",
    lesion_classes: np.ndarray | None = None,
) -> ExportResult:
    """Write report.pdf, lesion_seg.dcm, lesion_mask.nii.gz, lung_mask.nii.gz and per_slice.csv.

    The lesion files hold the reader's ``edited_mask`` when it differs from the AI's mask,
    else the AI's mask. A non-DICOM study gets every file but the SEG: no ``"lesion_seg"``
    key in the returned mapping, and a note saying "DICOM SEG needs a DICOM source" in its
    ``notes``.

    Args:
        result: the pipeline's ``StudyResult``.
        volume: the study's :class:`~jcs_viewer.io.volume.Volume`.
        out_dir: folder to write into (created when missing).
        report: also write the PDF report.
        anonymize: anonymise the report and blank the patient fields of the SEG
            (NIfTI and CSV hold no patient data).
        reviewer, review, edited_mask, notes: passed to the report (see
            :func:`jcs_viewer.report.pdf.write_report`).
        lesion_classes: optional class mask (1 ground-glass / 2 consolidation) for the SEG's
            lesion segments; used only when no edited mask is given.

    Returns:
        Name -> written path for each file written (keys: report, lesion_seg, lesion_nifti,
        lung_nifti, csv); its ``notes`` list says why a file was left out (a SEG that cannot be
        built does not stop the other files).

    Raises:
        ExportError: the folder or a file other than the SEG cannot be written (files written before stay).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"Cannot export to {out}: it is a file, not a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot export to {out}: {exc.strerror or exc}.") from exc

    from jcs_viewer.pipeline.quantify import quantify
    from jcs_viewer.report.content import edited_slice_indices

    ai_mask = np.asarray(result.lesion_mask)
    edited = edited_mask is not None and bool(edited_slice_indices(ai_mask, edited_mask))
    lesion = (np.asarray(edited_mask) > 0).astype(np.uint8) if edited else ai_mask.astype(np.uint8)
    written = ExportResult()
    if report:
        from jcs_viewer.report.pdf import write_report

        written["report"] = write_report(result, volume, out / REPORT_NAME, anonymize=anonymize, reviewer=reviewer,
                                         review=review, edited_mask=edited_mask, notes=notes)
    seg_source = lesion if edited or lesion_classes is None else np.asarray(lesion_classes)
    seg_reason = dicom_seg_unavailable(volume)
    if seg_reason is None:
        try:
            written["lesion_seg"] = export_dicom_seg(volume, seg_source, result.lung_mask, out / SEG_NAME,
                                                     edited=edited, anonymize=anonymize)
        except ExportError as exc:  # the other files do not depend on the SEG: write them, say what failed
            written.notes.append(f"No {SEG_NAME}: {exc}")
    else:
        written.notes.append(f"No {SEG_NAME}: {seg_reason}.")
    written["lesion_nifti"] = export_nifti(lesion, volume, out / LESION_NIFTI_NAME)
    written["lung_nifti"] = export_nifti(result.lung_mask, volume, out / LUNG_NIFTI_NAME)
    quant = quantify(volume, result.lung_mask, lesion) if edited else None
    written["csv"] = export_csv(result, out / CSV_NAME, review=review, quant=quant)
    return written
