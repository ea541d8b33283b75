"""Everything that leaves the app for one study, in one folder: one writer for ``analyze`` (and the study
evaluation) and File > Export.

:func:`export_all` writes the files (report, SEG, NIfTI masks, CSV); :func:`write_study_outputs` adds the
machine-readable result (``results.json``, ``arrays.npz``) and the all-or-nothing staging of a headless run;
:func:`analyze_and_write` is the whole headless run of one study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.errors import ExportError
from jcs_viewer.io.export import dicom_seg_unavailable, export_csv, export_dicom_seg, export_nifti
from jcs_viewer.pipeline.result import ARRAYS_NPZ, RESULTS_JSON

if TYPE_CHECKING:
    from collections.abc import Sequence

    from jcs_viewer.io.deidentify import Pseudonymizer
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.compare import Comparison
    from jcs_viewer.pipeline.engine import ProgressCallback
    from jcs_viewer.pipeline.options import AnalysisOptions
    from jcs_viewer.pipeline.progress import CancelToken
    from jcs_viewer.pipeline.quantify import Quantification
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.pipeline.runner import LoadedModels
    from jcs_viewer.session.headless import EditedOutputs
    from jcs_viewer.session.measurements import Measurement

REPORT_NAME = "report.pdf"
SEG_NAME = "lesion_seg.dcm"
SR_NAME = "results_sr.dcm"  # the quantities as a DICOM SR (TID 1500), beside the SEG
PDF_DICOM_NAME = "report_pdf.dcm"  # the report as a DICOM Encapsulated PDF, for a PACS
LESION_NIFTI_NAME = "lesion_mask.nii.gz"
LUNG_NIFTI_NAME = "lung_mask.nii.gz"
CSV_NAME = "per_slice.csv"
AI_LESION_NIFTI_NAME = "lesion_mask_ai.nii.gz"  # beside the edited lesion mask when the reader edited it
COMPARISON_NAME = "comparison.json"  # then / now / change against a prior study (analyze --prior)
#: written last when a run's outputs move into place: its presence says the set is complete.
COMPLETION_FILE = RESULTS_JSON
#: every file a run may write into its folder (a new run removes the ones it did not write again).
OUTPUT_NAMES = frozenset({COMPLETION_FILE, ARRAYS_NPZ, CSV_NAME, LESION_NIFTI_NAME, LUNG_NIFTI_NAME,
                          AI_LESION_NIFTI_NAME, REPORT_NAME, SEG_NAME, SR_NAME, PDF_DICOM_NAME, COMPARISON_NAME})
#: the outputs that go to a PACS (``analyze --send``, File > Send Results to PACS), in this order.
DICOM_OUTPUT_NAMES = (SEG_NAME, SR_NAME, PDF_DICOM_NAME)


class ExportResult(dict[str, Path]):
    """Name -> written path, plus ``notes``: sentences for the user about files not written."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []
        self.comparison: Comparison | None = None  # analyze --prior: the Comparison written


def export_all(
    result: StudyResult,
    volume: Volume,
    out_dir: str | os.PathLike[str],
    *,
    report: bool = True,
    anonymize: bool = False,
    reviewer: str = "",
    review: Any = None,
    edited_mask: np.ndarray | None = None,
    notes: str = "",
    measurements: Sequence[Measurement] = (),
    lesion_classes: np.ndarray | None = None,
    segmentation: bool = True,
    pseudonyms: Pseudonymizer | None = None,
    dicom_results: bool = False,
    comparison: Comparison | None = None,
) -> ExportResult:
    """Write report.pdf, lesion_seg.dcm, results_sr.dcm, report_pdf.dcm, the NIfTI masks and per_slice.csv.

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
        reviewer, review, edited_mask, notes, measurements: passed to the report (see
            :func:`jcs_viewer.report.pdf.write_report`).
        lesion_classes: optional class mask (1 ground-glass / 2 consolidation) for the SEG's
            lesion segments; used only when no edited mask is given.
        segmentation: write the DICOM SEG (DICOM studies only).
        dicom_results: with ``segmentation``, also the DICOM SR of the quantities and (with ``report``) the
            report as a DICOM Encapsulated PDF: what goes back to a PACS.
        pseudonyms: the output set's :class:`~jcs_viewer.io.deidentify.Pseudonymizer` (with ``anonymize``).
        comparison: a :class:`~jcs_viewer.pipeline.compare.Comparison` with a prior study: the report's
            "Comparison" section and ``comparison.json`` (its "now" from the reader's mask when edited).

    Returns:
        Name -> written path for each file written (keys: report, lesion_seg, results_sr, report_dicom,
        lesion_nifti, lung_nifti, csv); its ``notes`` list says why a file was left out (a SEG that cannot be
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
                                         review=review, edited_mask=edited_mask, notes=notes,
                                         measurements=measurements, comparison=comparison)
    seg_source = lesion if edited or lesion_classes is None else np.asarray(lesion_classes)
    seg_reason = dicom_seg_unavailable(volume) if segmentation else None
    if segmentation and seg_reason is not None:
        written.notes.append(f"No {SEG_NAME}: {seg_reason}.")
    elif segmentation:
        try:
            written["lesion_seg"] = export_dicom_seg(volume, seg_source, result.lung_mask, out / SEG_NAME,
                                                     edited=edited, anonymize=anonymize, pseudonyms=pseudonyms)
        except ExportError as exc:  # the other files do not depend on the SEG: write them, say what failed
            _note_or_fail(exc, SEG_NAME, written.notes)
    quant = (quantify(volume, result.lung_mask, lesion, min_lesion_voxels=result.quant.min_lesion_voxels)
             if edited else None)
    if dicom_results and segmentation and seg_reason is None:
        written.update(_dicom_results(result, volume, out, quant, written.get("report"), written.notes,
                                      anonymize=anonymize, pseudonyms=pseudonyms, measurements=measurements))
    written["lesion_nifti"] = export_nifti(lesion, volume, out / LESION_NIFTI_NAME)
    if edited:  # the AI's own mask stays beside the reader's
        written["lesion_nifti_ai"] = export_nifti(ai_mask.astype(np.uint8), volume, out / AI_LESION_NIFTI_NAME)
    written["lung_nifti"] = export_nifti(result.lung_mask, volume, out / LUNG_NIFTI_NAME)
    written["csv"] = export_csv(result, out / CSV_NAME, review=review, quant=quant)
    if comparison is not None:
        written["comparison"] = _write_comparison(comparison if quant is None else comparison.with_current(quant),
                                                  out / COMPARISON_NAME)
    return written


def _write_comparison(comparison: Comparison, path: Path) -> Path:
    import json

    from jcs_viewer.atomic import atomic_write_text

    try:
        return atomic_write_text(path, json.dumps(comparison.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc


def _dicom_results(result: StudyResult, volume: Volume, out: Path, quant: Quantification, pdf: Path | None,
                   notes: list[str], *, anonymize: bool, pseudonyms: Pseudonymizer | None,
                   measurements: Sequence[Measurement] = ()) -> dict[str, Path]:
    """The SR of the quantities and (with a report) the Encapsulated PDF: in the study, beside the SEG."""
    from jcs_viewer.report.dicom_pdf import export_dicom_pdf
    from jcs_viewer.report.dicom_sr import export_dicom_sr

    written = {}
    try:
        written["results_sr"] = export_dicom_sr(result, volume, out / SR_NAME, quant=quant, anonymize=anonymize,
                                                pseudonyms=pseudonyms, measurements=measurements)
    except ExportError as exc:  # like the SEG: the other files stand on their own
        _note_or_fail(exc, SR_NAME, notes)
    if pdf is not None:
        try:
            written["report_dicom"] = export_dicom_pdf(pdf, volume, out / PDF_DICOM_NAME, anonymize=anonymize,
                                                       pseudonyms=pseudonyms)
        except ExportError as exc:
            _note_or_fail(exc, PDF_DICOM_NAME, notes)
    return written


def _note_or_fail(exc: ExportError, name: str, notes: list[str]) -> None:
    """A DICOM output this study cannot have (no DICOM source, a SEG it cannot encode) is a note beside the rest;
    one the file system refused (a full disk) fails the run: a set missing it must not replace a complete one."""
    if isinstance(exc.__cause__, OSError):
        raise exc
    text = str(exc)
    if text.startswith("Cannot write "):  # the path is the stage's, gone when the run ends: "No NAME" names it
        text = text.split(f"{name}: ", 1)[-1]
    notes.append(f"No {name}: {text}")


#: marks a stage folder as this app's, so that a later run may clear it (and never a reader's own folder)
STAGE_MARK = ".jcs-viewer-stage"


@contextlib.contextmanager
def staged_outputs(out_dir: Path):
    """All or nothing: a run writes into ``<out>.incomplete`` beside ``out_dir``; only when every output is there
    do they move into ``out_dir`` (``results.json`` last), and the stage is removed.

    A failed or cancelled run removes its stage and leaves ``out_dir`` as it was; a killed run leaves the visibly
    named ``<out>.incomplete`` folder (cleared by the next run), never a partial set in ``out_dir``.
    """
    out_dir = Path(os.path.abspath(out_dir))  # "." and "a/..": the stage goes beside the folder they name
    stage = out_dir.with_name(out_dir.name + ".incomplete")
    if stage.exists() and not (stage / STAGE_MARK).is_file():  # a folder of the reader's, not one we left
        raise ExportError(f"Could not write the results to {out_dir}: {stage} exists and was not left by this app; "
                          "rename or move it.")
    try:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        (stage / STAGE_MARK).touch()
    except OSError as exc:
        raise ExportError(f"Could not write the results to {out_dir}: {exc.strerror or exc}.") from None
    try:
        yield stage
        (stage / STAGE_MARK).unlink()
        done = sorted(stage.iterdir(), key=lambda p: p.name == COMPLETION_FILE)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / COMPLETION_FILE).unlink(missing_ok=True)  # an older set is no longer complete
            for name in OUTPUT_NAMES - {p.name for p in done}:  # nor are the parts this run did not write
                (out_dir / name).unlink(missing_ok=True)
            for path in done:
                os.replace(path, out_dir / path.name)
        except OSError as exc:
            raise ExportError(f"Could not write the results to {out_dir}: {exc.strerror or exc}.") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_study_outputs(result: StudyResult, volume: Volume, out_dir: Path, *, edits: EditedOutputs | None = None,
                        report: bool = False, anonymize: bool = False,
                        comparison: Comparison | None = None) -> ExportResult:
    """A headless run's whole output set, all or nothing (:func:`staged_outputs`).

    ``results.json``/``arrays.npz`` (with the reader's edits, when given), the CSV and NIfTI masks, and with
    ``report`` the PDF and (DICOM studies) the SEG, the SR and the Encapsulated PDF, through :func:`export_all`.
    With ``anonymize`` every
    file is de-identified with one pseudonym map (PS3.15 E.1, :mod:`jcs_viewer.io.deidentify`).

    Args:
        result: the pipeline's ``StudyResult``.
        volume: the analysed study.
        out_dir: the folder the set lands in.
        edits: an :class:`~jcs_viewer.session.headless.EditedOutputs` (a reader's session), or None.
        report: also write the PDF report and the DICOM SEG.
        anonymize: de-identify every output.
        comparison: a :class:`~jcs_viewer.pipeline.compare.Comparison` with a prior study (``comparison.json``,
            and the report's "Comparison" section).
    """
    pseudonyms = None
    saved = edits.result if edits is not None else result
    if anonymize:
        from jcs_viewer.io.deidentify import Pseudonymizer

        pseudonyms = Pseudonymizer()
        saved = dataclasses.replace(saved, study=pseudonyms.study_fields(saved.study))
    with staged_outputs(Path(out_dir)) as stage:
        saved.save(stage)
        written = export_all(
            edits.ai_result if edits is not None else result, volume, stage, report=report, anonymize=anonymize,
            segmentation=report, pseudonyms=pseudonyms, dicom_results=report, comparison=comparison,
            **({} if edits is None else {"reviewer": edits.reviewer, "review": edits.review, "notes": edits.notes,
                                         "edited_mask": edits.result.lesion_mask,
                                         "measurements": edits.measurements}))
    for name, path in written.items():
        written[name] = Path(out_dir) / Path(path).name
    return written


def analyze_and_write(study: Path, out_dir: Path, options: AnalysisOptions | None, models: LoadedModels | None,
                      progress: ProgressCallback | None = None, series_uid: str | None = None,
                      cancel: CancelToken | None = None, session: str | Path | None = None,
                      report: bool = False, anonymize: bool = False,
                      prior: Path | None = None) -> tuple[StudyResult, ExportResult]:
    """Load, analyse and write one study (:func:`write_study_outputs`); nothing is written unless it completes.

    With ``session`` (a viewer session file) the reader's edited mask, review states and notes drive every
    output. With ``prior`` (an earlier study of the patient) that study is analysed too, registered by the lungs
    and compared (:func:`jcs_viewer.pipeline.compare.compare`): ``comparison.json`` and the report's section.
    Returns ``(result as written, files written with their notes)``; the comparison is ``written.comparison``.
    """
    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline import analyze
    from jcs_viewer.session.headless import apply_session_file

    volume = load_study(study, series_uid=series_uid)
    result = analyze(volume, options, progress=progress, cancel=cancel, models=models)
    edits = None
    if session is not None:
        edits = apply_session_file(result, volume, Path(session).expanduser())  # before anything is written
        result = edits.result
    comparison = None
    if prior is not None:
        comparison = compare_with_prior(volume, edits.ai_result if edits is not None else result, Path(prior),
                                        options, models, progress, cancel)
    written = write_study_outputs(result, volume, out_dir, edits=edits, report=report, anonymize=anonymize,
                                  comparison=comparison)
    written.comparison = None if comparison is None else comparison.with_current(result.quant)
    return result, written


def compare_with_prior(volume: Volume, result: StudyResult, prior: Path, options: AnalysisOptions | None,
                       models: LoadedModels | None, progress: ProgressCallback | None = None,
                       cancel: CancelToken | None = None) -> Comparison:
    """Load and analyse the ``prior`` study with the same models, then compare it with ``volume``'s ``result``.

    Raises:
        JCSError: the prior cannot be loaded (StudyLoadError), or one of the studies has no lungs to register by
            (NotComparable).
    """
    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline import analyze
    from jcs_viewer.pipeline.compare import compare

    prior_volume = load_study(prior)
    prior_result = analyze(prior_volume, options, progress=progress, cancel=cancel, models=models)
    return compare(volume, result, prior_volume, prior_result)
