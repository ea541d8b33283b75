"""``StudyResult``: everything one analysis produced, saved as JSON + compressed arrays.

On disk (one folder per study)::

    results.json   summary, per-slice table, models, options, timings (versioned schema)
    arrays.npz     slice probabilities, CAMs, attributes, lesion probability/mask, lung mask

Both files are written atomically (temporary file + ``os.replace``); ``StudyResult.load``
gives back an object equal to the one saved.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from jcs_viewer import __version__
from jcs_viewer.atomic import atomic_path, atomic_write_text
from jcs_viewer.errors import ExportError, StudyLoadError
from jcs_viewer.pipeline.quantify import Quantification
from jcs_viewer.vocabulary import ATTRIBUTE_KEYS

# 2: joint slice score (classifier probability and lesion evidence kept apart)
# 3: "not assessable" decisions with decision_reason; slices without lung are not scored (scored_slices)
SCHEMA_VERSION = 3
RESULTS_JSON = "results.json"
ARRAYS_NPZ = "arrays.npz"
# Optional arrays stored in arrays.npz (absent when None).
_ARRAY_FIELDS = ("slice_probability", "slice_positive", "cams", "attributes", "lesion_probability",
                 "lesion_mask", "segmented_slices", "lung_mask", "classifier_probability", "lesion_evidence",
                 "scored_slices", "blurred_slices")


def lesions_measured(segmented_slices: Any, lesion_ml: float = 0.0) -> bool:
    """Whether lesion figures mean something: the lesion network ran on some slice, or the reader painted lesions
    (``lesion_ml`` of an edited mask). Otherwise (no lungs, too coarse to read) 0 mL means "not measured", not
    "no lesion"."""
    return bool(np.any(segmented_slices)) or bool(lesion_ml)


@dataclass(eq=False)
class StudyResult:
    """The outcome of :func:`jcs_viewer.pipeline.analyze` for one study.

    Arrays are ``(z, y, x)`` like the :class:`~jcs_viewer.io.volume.Volume`; ``cams`` are
    ``(z, h, w)`` at reduced resolution (stretch to the slice for display).

    ``slice_probability`` is each slice's score, the one compared with ``slice_cutoff``
    (``slice_score`` says how it was made, ``slice_rule`` in words); with the joint score it is the
    mean of ``classifier_probability`` and ``lesion_evidence``, with the classifier score it equals
    ``classifier_probability``.
    """

    n_slices: int
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    slice_probability: np.ndarray
    slice_cutoff: float
    slice_positive: np.ndarray
    positive_slices: int
    threshold: int
    threshold_rule: str
    decision: str
    cams: np.ndarray | None
    lesion_probability: np.ndarray | None
    lesion_mask: np.ndarray
    segmented_slices: np.ndarray
    lung_mask: np.ndarray
    attributes: np.ndarray | None
    quant: Quantification
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    lesion_cutoff: float = 0.5
    classifier_probability: np.ndarray | None = None
    lesion_evidence: np.ndarray | None = None
    slice_score: str = "classifier"
    slice_rule: str = ""
    is_hu: bool = True
    #: the HU are estimated from a file without them (Volume.hu_estimated)
    hu_estimated: bool = False
    #: False for PNG/JPEG stacks: spacing, mL and mm are at the 1 mm voxels assumed for them, not measured.
    has_voxel_size: bool = True
    #: the blur the study's own edges show (mm, Gaussian sd; :func:`jcs_viewer.pipeline.assess.edge_blur`), or None
    #: where not measured (not HU, no voxel size, no body outline in view; results from before it was measured)
    edge_blur_mm: float | None = None
    #: the noise of the study's soft tissue (HU, sd at the nets' scale; :func:`jcs_viewer.pipeline.assess.image_noise`),
    #: or None where not measured (as ``edge_blur_mm``)
    noise_hu: float | None = None
    #: slices with lung left unscored because their own edges are blurred past what the models read (breathing);
    #: None in results from before they were measured
    blurred_slices: np.ndarray | None = None
    decision_reason: str = ""
    scored_slices: np.ndarray | None = None
    study: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    app_version: str = __version__
    schema_version: int = SCHEMA_VERSION


    @property
    def lesions_measured(self) -> bool:
        """Whether the lesion network ran on any slice (see :func:`lesions_measured`)."""
        return lesions_measured(self.segmented_slices)
    def __post_init__(self) -> None:
        if self.scored_slices is None:  # results from before schema 3 scored every slice
            self.scored_slices = np.ones(int(self.n_slices), dtype=bool)
        if self.classifier_probability is None:
            if self.slice_score != "classifier":
                raise ValueError("a joint slice score needs the classifier probabilities it was made from")
            self.classifier_probability = self.slice_probability

    # ------------------------------------------------------------------ views
    def per_slice(self) -> list[dict[str, Any]]:
        """One row per slice: index, probability, positive, segmented, lesion area and count."""
        rows = []
        normal = np.asarray(self.direction, dtype=float).reshape(3, 3)[:, 2]
        start = float(np.dot(np.asarray(self.origin, dtype=float), normal))
        for z in range(self.n_slices):
            scored = bool(self.scored_slices[z])
            row: dict[str, Any] = {
                "index": z,
                "position_mm": round(start + z * float(self.spacing[0]), 3),
                "has_lung": scored,
                # A slice without lung has no COVID score (null), not a score of 0.
                "probability": round(float(self.slice_probability[z]), 6) if scored else None,
                "classifier_probability": round(float(self.classifier_probability[z]), 6) if scored else None,
                "positive": bool(self.slice_positive[z]),
                "segmented": bool(self.segmented_slices[z]),
                "lesion_area_mm2": round(float(self.quant.per_slice_area_mm2[z]), 3),
                "lesion_count": int(self.quant.per_slice_count[z]),
                # lung there, but too blurred to read (breathing): not scored (has_lung is False)
                "too_blurred": bool(self.blurred_slices is not None and self.blurred_slices[z]),
            }
            if self.lesion_evidence is not None:
                row["lesion_evidence"] = round(float(self.lesion_evidence[z]), 6) if scored else None
            if self.attributes is not None:
                # Lesion attributes describe flagged slices only.
                flagged = bool(self.slice_positive[z])
                for name, value in zip(ATTRIBUTE_KEYS, self.attributes[z]):
                    row[name] = round(float(value), 6) if flagged else None
            rows.append(row)
        return rows

    def summary_dict(self) -> dict[str, Any]:
        """The JSON document written as ``results.json`` (without the arrays)."""
        q = self.quant
        return {
            "schema_version": self.schema_version,
            "app_version": self.app_version,
            "created": self.created,
            "decision": self.decision,
            "decision_reason": self.decision_reason,
            "positive_slices": int(self.positive_slices),
            "threshold": int(self.threshold),
            "threshold_rule": self.threshold_rule,
            "slice_score": self.slice_score,
            "slice_rule": self.slice_rule,
            "slice_cutoff": float(self.slice_cutoff),
            "lesion_cutoff": float(self.lesion_cutoff),
            "n_slices": int(self.n_slices),
            "lesion_volume_ml": dict(q.lesion_volume_ml),
            "lung_volume_ml": dict(q.lung_volume_ml),
            "involvement_percent": dict(q.involvement_percent),
            "lesion_count": int(q.lesion_count),
            "extent_mm": float(q.extent_mm),
            "zones_ml": dict(q.zones),
            "mean_hu": q.mean_hu,
            "ggo_ml": q.ggo_ml,
            "consolidation_ml": q.consolidation_ml,
            "quantification": q.to_dict(),
            "geometry": {
                "spacing_zyx_mm": list(self.spacing),
                "origin_lps_mm": list(self.origin),
                "direction": np.asarray(self.direction, dtype=float).reshape(3, 3).tolist(),
                "is_hu": bool(self.is_hu),
                "hu_estimated": bool(self.hu_estimated),
                "voxel_size_known": bool(self.has_voxel_size),
                "edge_blur_mm": None if self.edge_blur_mm is None else float(self.edge_blur_mm),
                "noise_hu": None if self.noise_hu is None else float(self.noise_hu),
            },
            "study": dict(self.study),
            "models": {k: dict(v) for k, v in self.models.items()},
            "options": dict(self.options),
            "timings": {k: float(v) for k, v in self.timings.items()},
            "messages": list(self.messages),
            "per_slice": self.per_slice(),
        }

    # --------------------------------------------------------------- persist
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` and ``arrays.npz`` into ``directory`` (created if needed)."""
        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
            arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS if getattr(self, name) is not None}
            with atomic_path(out / ARRAYS_NPZ) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            text = json.dumps(self.summary_dict(), indent=1, allow_nan=False)
            atomic_write_text(out / RESULTS_JSON, text)
        except OSError as exc:
            raise ExportError(f"Could not write the results to {out}: {exc.strerror or exc}.") from exc
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> "StudyResult":
        """Read a folder written by :meth:`save`."""
        folder = Path(directory)
        json_path, npz_path = folder / RESULTS_JSON, folder / ARRAYS_NPZ
        try:
            doc = json.loads(json_path.read_text(encoding="utf-8"))
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except FileNotFoundError as exc:
            raise StudyLoadError(f"{exc.filename} is missing, so the saved analysis cannot be read.") from exc
        except (OSError, ValueError) as exc:
            raise StudyLoadError(f"The saved analysis in {folder} is damaged ({exc}).") from exc
        if not isinstance(doc, dict) or doc.get("schema_version", 0) > SCHEMA_VERSION:
            raise StudyLoadError(
                f"{json_path} was written by a newer JCS Viewer (schema {doc.get('schema_version')!r})."
            )
        try:
            geo = doc["geometry"]
            return cls(
                n_slices=int(doc["n_slices"]),
                spacing=tuple(float(v) for v in geo["spacing_zyx_mm"]),
                origin=tuple(float(v) for v in geo["origin_lps_mm"]),
                direction=np.asarray(geo["direction"], dtype=float),
                slice_probability=arrays["slice_probability"],
                slice_cutoff=float(doc["slice_cutoff"]),
                slice_positive=arrays["slice_positive"],
                positive_slices=int(doc["positive_slices"]),
                threshold=int(doc["threshold"]),
                threshold_rule=str(doc["threshold_rule"]),
                decision=str(doc["decision"]),
                decision_reason=str(doc.get("decision_reason", "")),
                scored_slices=arrays.get("scored_slices"),
                blurred_slices=arrays.get("blurred_slices"),
                cams=arrays.get("cams"),
                lesion_probability=arrays.get("lesion_probability"),
                lesion_mask=arrays["lesion_mask"],
                segmented_slices=arrays["segmented_slices"],
                lung_mask=arrays["lung_mask"],
                attributes=arrays.get("attributes"),
                quant=Quantification.from_dict(doc["quantification"]),
                models=doc.get("models", {}),
                timings={k: float(v) for k, v in doc.get("timings", {}).items()},
                messages=list(doc.get("messages", [])),
                options=doc.get("options", {}),
                lesion_cutoff=float(doc.get("lesion_cutoff", 0.5)),
                # Schema 1 had the classifier score only: its slice_probability is the classifier's.
                classifier_probability=arrays.get("classifier_probability", arrays["slice_probability"]),
                lesion_evidence=arrays.get("lesion_evidence"),
                slice_score=str(doc.get("slice_score", "classifier")),
                slice_rule=str(doc.get("slice_rule", "")),
                is_hu=bool(geo.get("is_hu", True)),
                hu_estimated=bool(geo.get("hu_estimated", False)),
                has_voxel_size=bool(geo.get("voxel_size_known", True)),
                edge_blur_mm=None if geo.get("edge_blur_mm") is None else float(geo["edge_blur_mm"]),
                noise_hu=None if geo.get("noise_hu") is None else float(geo["noise_hu"]),
                study=doc.get("study", {}),
                created=str(doc.get("created", "")),
                app_version=str(doc.get("app_version", "")),
                schema_version=int(doc["schema_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StudyLoadError(f"{json_path} lacks a required entry ({exc}).") from exc

    # ---------------------------------------------------------------- compare
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StudyResult):
            return NotImplemented
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None:
                    return False
                a, b = np.asarray(a), np.asarray(b)
                if a.shape != b.shape or a.dtype != b.dtype and name != "direction" or not np.array_equal(a, b):
                    return False
            elif name == "spacing" or name == "origin":
                if tuple(map(float, a)) != tuple(map(float, b)):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


__all__ = ["StudyResult", "SCHEMA_VERSION", "RESULTS_JSON", "ARRAYS_NPZ"]
