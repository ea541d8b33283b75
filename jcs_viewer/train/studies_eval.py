"""Whole-study evaluation: the app's own analysis on a list of studies with expected decisions.

``jcs-viewer evaluate studies --manifest CSV`` reads one row per study::

    path,expected,lung_mask,lesion_mask,lung_labels,lesion_labels,lesion_free
    real_ct_small/chest_imaging_platform/ct-64.nrrd,negative,real_ct_small/.../wholeLung-64.nrrd,,,,

``expected`` is ``positive``, ``negative`` or ``not assessable``; the mask columns are optional label
images on any grid (compared by physical position, nearest neighbour); ``*_labels`` lists the label
values that count (``10-14`` or ``1,5``; default: any nonzero); ``lesion_free`` (yes/no, default: yes for
expected negatives) says that every lesion found is a false positive. Relative paths are relative to the
CSV's folder. Each study runs through :func:`jcs_viewer.report.bundle.analyze_and_write` exactly as
``jcs-viewer analyze`` does, and its NIfTI masks are compared with the references.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.errors import StudyLoadError

if TYPE_CHECKING:
    from jcs_viewer.pipeline.engine import ProgressCallback
    from jcs_viewer.pipeline.options import AnalysisOptions

DECISIONS = ("positive", "negative", "not assessable")


def parse_labels(text: str) -> list[int] | None:
    """``"10-14"`` / ``"1,5,6"`` -> label values; empty -> None (any nonzero)."""
    text = (text or "").strip()
    if not text:
        return None
    values: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        values += list(range(int(lo), int(hi or lo) + 1))
    return values


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The manifest rows with resolved paths.

    Raises:
        StudyLoadError: the file is missing, has no ``path``/``expected`` columns, or a row is invalid.
    """
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyLoadError(f"The study manifest {path} cannot be read ({exc}).") from None
    if not rows or not {"path", "expected"} <= set(rows[0]):
        raise StudyLoadError(f"The study manifest {path} needs the columns path and expected.")
    out = []
    for line, row in enumerate(rows, start=2):
        expected = (row.get("expected") or "").strip().lower()
        if expected not in DECISIONS:
            raise StudyLoadError(f"{path} line {line}: expected must be one of {', '.join(DECISIONS)}, "
                                 f"not {row.get('expected')!r}.")

        def resolve(key: str) -> Path | None:
            value = (row.get(key) or "").strip()
            return None if not value else (Path(value) if Path(value).is_absolute() else path.parent / value)

        try:
            entry = {"path": resolve("path"), "expected": expected, "lung_mask": resolve("lung_mask"),
                     "lesion_mask": resolve("lesion_mask"), "lung_labels": parse_labels(row.get("lung_labels", "")),
                     "lesion_labels": parse_labels(row.get("lesion_labels", "")),
                     # Without a lesion mask every lesion is a false positive when the study has none.
                     "lesion_free": _flag(row.get("lesion_free"), default=expected == "negative")}
        except ValueError:
            raise StudyLoadError(f"{path} line {line}: label lists look like 10-14 or 1,5,6, and lesion_free is "
                                 "yes or no.") from None
        if entry["path"] is None:
            raise StudyLoadError(f"{path} line {line} has no path.")
        out.append(entry)
    return out


def _flag(text: str | None, default: bool) -> bool:
    text = (text or "").strip().lower()
    if not text:
        return default
    if text in ("1", "yes", "true"):
        return True
    if text in ("0", "no", "false"):
        return False
    raise ValueError(f"lesion_free must be yes or no, not {text!r}")


def _reference_on(label_file: Path, grid_file: Path, labels: list[int] | None) -> np.ndarray:
    import SimpleITK as sitk

    grid = sitk.ReadImage(str(grid_file))
    try:
        ref = sitk.ReadImage(str(label_file))
    except RuntimeError:
        raise StudyLoadError(f"The reference mask {label_file} cannot be read.") from None
    arr = sitk.GetArrayFromImage(sitk.Resample(ref, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    return np.isin(arr, labels) if labels else arr > 0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * int((a & b).sum()) / denom


def evaluate_studies(manifest: Path, options: AnalysisOptions | None = None,
                     progress: ProgressCallback | None = None) -> dict:
    """One JSON-ready dict: per study figures and the overall sensitivity, specificity and lung Dice."""
    import SimpleITK as sitk

    from jcs_viewer.errors import JCSError
    from jcs_viewer.pipeline import AnalysisOptions
    from jcs_viewer.pipeline.runner import load_models
    from jcs_viewer.report.bundle import analyze_and_write

    rows = read_manifest(Path(manifest))
    options = options or AnalysisOptions()
    models = load_models(options)
    studies = []
    with tempfile.TemporaryDirectory(prefix="jcs-evaluate-studies-") as tmp:
        for k, row in enumerate(rows):
            out = Path(tmp) / f"{k:04d}"
            record: dict[str, Any] = {"path": str(row["path"]), "expected": row["expected"]}
            try:
                result, _ = analyze_and_write(row["path"], out, options, models, progress)
            except JCSError as exc:
                record.update(decision="error", error=str(exc))
                studies.append(record)
                continue
            voxel_ml = float(np.prod(result.spacing)) / 1000.0
            q = result.quant
            record.update(decision=result.decision, decision_reason=result.decision_reason,
                          positive_slices=int(result.positive_slices), threshold=int(result.threshold),
                          lesion_ml=round(float(q.lesion_volume_ml["total"]), 2),
                          lung_ml=round(float(q.lung_volume_ml["total"]), 1))
            lung = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lung_mask.nii.gz"))) > 0
            lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesion_mask.nii.gz"))) > 0
            if row["lung_mask"] is not None:
                ref = _reference_on(row["lung_mask"], out / "lung_mask.nii.gz", row["lung_labels"])
                record["lung_dice"] = round(_dice(lung, ref), 4)
            if row["lesion_mask"] is not None:
                ref = _reference_on(row["lesion_mask"], out / "lesion_mask.nii.gz", row["lesion_labels"])
                record["lesion_dice"] = round(_dice(lesion, ref), 4)
                record["false_positive_lesion_ml"] = round(float((lesion & ~ref).sum()) * voxel_ml, 2)
            elif row["lesion_free"]:
                record["false_positive_lesion_ml"] = record["lesion_ml"]  # no lesion is expected at all
            studies.append(record)
    return {"task": "studies", "manifest": str(manifest), "studies": studies, **overall(studies)}


def overall(studies: list[dict[str, Any]]) -> dict[str, Any]:
    """Sensitivity (expected positive called positive), specificity (expected negative not called
    positive), agreement on "not assessable", mean lung Dice and the largest false-positive volume."""
    def share(rows, ok) -> float | None:
        return round(sum(1 for r in rows if ok(r)) / len(rows), 4) if rows else None

    pos = [r for r in studies if r["expected"] == "positive"]
    neg = [r for r in studies if r["expected"] == "negative"]
    na = [r for r in studies if r["expected"] == "not assessable"]
    dice = [r["lung_dice"] for r in studies if "lung_dice" in r]
    fp = [r["false_positive_lesion_ml"] for r in studies if "false_positive_lesion_ml" in r]
    return {
        "n": len(studies),
        "sensitivity": share(pos, lambda r: r["decision"] == "positive"),
        "specificity": share(neg, lambda r: r["decision"] not in ("positive", "error")),
        "not_assessable_agreement": share(na, lambda r: r["decision"] == "not assessable"),
        "mean_lung_dice": round(float(np.mean(dice)), 4) if dice else None,
        "max_false_positive_lesion_ml": max(fp) if fp else None,
        "errors": sum(1 for r in studies if r["decision"] == "error"),
    }
