"""The study's quantities as a DICOM Structured Report (Comprehensive 3D SR, TID 1500 Measurement Report).

One TID 1501 measurement group per finding: each lung (volume), both lungs together, and the lesions of each
lung and of both (volume and involvement, the share of that lung taken by lesions), plus a group holding the
patient-level decision (coded) with its reason (a comment). Every group names the algorithm: JCS Viewer with
its version, and each network's name, architecture and checksum as its parameters. Volumes are in millilitres
(UCUM ``ml``), involvement in per cent (UCUM ``%``).

The SR sits in the source study (highdicom copies the patient and study modules from the source images, which
it lists as evidence) in a new series; with ``anonymize`` it is de-identified by the output set's
:class:`~jcs_viewer.io.deidentify.Pseudonymizer`, like the SEG it accompanies.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcs_viewer.errors import ExportError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from jcs_viewer.io.deidentify import Pseudonymizer
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.quantify import Quantification
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.session.measurements import Measurement

#: our private coding scheme, for the concepts no public scheme has (declared in the SR itself).
SCHEME = "99JCS"
#: series numbers of our objects: the source series' number plus these (the SEG uses +1000).
SR_SERIES_OFFSET, PDF_SERIES_OFFSET = 1001, 1002


def _codes() -> dict[str, Any]:
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    return {
        "procedure": codes.LN.CTUnspecifiedBodyRegion,
        "lung": codes.cid7151.Lung,
        "lesion": codes.cid7159.Lesion,
        "volume": codes.SCT.Volume,
        "right": codes.SCT.Right,
        "left": codes.SCT.Left,
        "both": codes.SCT.RightAndLeft,
        "ml": Code("ml", "UCUM", "milliliter"),
        "percent": Code("%", "UCUM", "percent"),
        "involvement": Code("INVOLVEMENT", SCHEME, "Lung involvement (lesion volume / lung volume)"),
        "decision": Code("DECISION", SCHEME, "JCS COVID-19 patient-level decision"),
        "positive": codes.SCT.Positive,
        "negative": codes.SCT.Negative,
        "not assessable": Code("NOTASSESSABLE", SCHEME, "Not assessable"),
        "comment": codes.DCM.Comment,
        "device": codes.DCM.Device,
    }


def study_sources(volume: Volume, path: Path) -> list[Any]:
    """Headers of the study's source slices (the SR's evidence; the first one's patient and study are copied)."""
    from pydicom.errors import InvalidDicomError

    from jcs_viewer.io.dicom_scan import source_header

    datasets = []
    for name in tuple(getattr(volume, "source_files", ()) or ()):
        try:
            ds = source_header(name)
        except (OSError, InvalidDicomError) as exc:
            raise ExportError(f"Cannot write {path}: the source file {name} cannot be read ({exc}).") from exc
        datasets.append(ds)
    if not datasets:
        raise ExportError(f"Cannot write {path}: the study has no DICOM source files.")
    return datasets


def series_number(source: Any, offset: int) -> int:
    try:
        return int(getattr(source, "SeriesNumber", 0) or 0) + offset
    except (TypeError, ValueError):
        return offset


def model_parameters(models: dict[str, dict[str, Any]]) -> list[str]:
    """One line per network: its role, name, architecture and checksum (what identifies its version)."""
    roles = {"cls": "classifier", "seg": "lesion segmentation", "lung": "lung segmentation"}
    lines = []
    for key, info in sorted(models.items()):
        sha = str(info.get("sha256") or "")[:16]
        lines.append(f"{roles.get(key, key)}: {info.get('name', '?')} ({info.get('arch', '?')}"
                     f"{f', sha256 {sha}' if sha else ''})")
    return lines


def export_dicom_sr(result: StudyResult, volume: Volume, path: str | os.PathLike[str], *,
                    quant: Quantification | None = None,
                    anonymize: bool = False, pseudonyms: Pseudonymizer | None = None,
                    measurements: Sequence[Measurement] = ()) -> Path:
    """Write the TID 1500 measurement report of ``result`` (volumes of ``quant``, default ``result.quant``), with
    the reader's ``measurements`` (rulers and ellipse ROIs) as TID 1410 planar ROI groups on their source slices.

    Raises:
        ExportError: no DICOM sources, or the SR cannot be built or written.
    """
    import highdicom as hd

    from jcs_viewer import __version__
    from jcs_viewer.io.export import check_target, save_dataset

    path = check_target(Path(path))
    quant = result.quant if quant is None else quant
    sources = study_sources(volume, path)
    code = _codes()
    algorithm = hd.sr.AlgorithmIdentification(name="JCS Viewer", version=__version__,
                                              parameters=model_parameters(result.models) or None)
    groups = []

    def group(label: str, finding: Any, side: str, measurements: list[tuple[Any, float, Any]]) -> Any:
        item = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
            finding_type=finding, algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(anatomic_location=code["lung"], laterality=code[side])],
            measurements=[hd.sr.Measurement(name=name, value=float(value), unit=unit)
                          for name, value, unit in measurements])
        groups.append(item)
        return item

    sides = (("right", "right", "Right lung"), ("left", "left", "Left lung"), ("total", "both", "Both lungs"))
    for key, side, label in sides:
        group(label, code["lung"], side, [(code["volume"], quant.lung_volume_ml[key], code["ml"])])
    if result.lesions_measured:
        for key, side, label in sides:
            group(f"Lesions, {label.lower()}", code["lesion"], side,
                  [(code["volume"], quant.lesion_volume_ml[key], code["ml"]),
                   (code["involvement"], quant.involvement_percent[key], code["percent"])])
    verdict = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Patient-level decision"),
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(
            name=code["decision"], value=code.get(str(result.decision), code["not assessable"]))])
    reason = str(getattr(result, "decision_reason", "") or "") or (
        f"{result.positive_slices} positive slices against a threshold of {result.threshold}.")
    # TID 1501 leaves room for a comment; highdicom has no argument for it, so it is appended to the group.
    verdict[0].ContentSequence.append(hd.sr.TextContentItem(
        name=code["comment"], value=reason[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    groups.append(verdict)
    groups += reader_measurement_groups(measurements, volume, sources)

    observer = hd.sr.ObserverContext(
        observer_type=code["device"],
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="JCS Viewer", manufacturer_name="JCS Viewer developers", model_name="JCS Viewer"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # highdicom on odd values it copies from the sources
            report = hd.sr.MeasurementReport(
                observation_context=hd.sr.ObservationContext(observer_device_context=observer),
                procedure_reported=code["procedure"], imaging_measurements=groups)
            sr = hd.sr.Comprehensive3DSR(
                evidence=sources, content=report[0], series_instance_uid=hd.UID(),
                series_number=series_number(sources[0], SR_SERIES_OFFSET), sop_instance_uid=hd.UID(),
                instance_number=1, manufacturer="JCS Viewer developers", is_complete=True,
                series_description="JCS Viewer measurements (research use only)",
                coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
                    designator=SCHEME, name="JCS Viewer codes", responsible_organization="JCS Viewer developers")])
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ExportError(f"Cannot write {path}: the structured report could not be built ({exc}).") from exc
    return save_dataset(sr, path, anonymize=anonymize, pseudonyms=pseudonyms)


def reader_measurement_groups(measurements: Sequence[Measurement], volume: Volume, sources: list[Any]) -> list[Any]:
    """One TID 1410 group per ruler (length in mm, a POLYLINE) or ellipse ROI (area in mm² and the mean, SD,
    minimum and maximum attenuation, an ELLIPSE), each on its source slice. Needs one source file per slice."""
    import highdicom as hd
    import numpy as np
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    if not measurements or len(sources) != volume.n_slices:
        return []
    spacing = tuple(float(s) for s in volume.spacing[1:])
    hu = Code("[hnsf'U]", "UCUM", "Hounsfield unit") if volume.is_hu else Code("1", "UCUM", "no units")
    groups = []
    for number, m in enumerate(measurements, 1):
        # DICOM 2-D coordinates put the top-left corner of the first pixel at (0, 0): our centres are +0.5.
        (x0, y0), (x1, y1) = ((x + 0.5, y + 0.5) for x, y in (m.p0, m.p1))
        if m.kind == "ruler":
            kind, data = hd.sr.GraphicTypeValues.POLYLINE, [[x0, y0], [x1, y1]]
            values = [hd.sr.Measurement(name=codes.SCT.Length, value=m.length_mm(spacing),
                                        unit=Code("mm", "UCUM", "millimeter"))]
        else:
            cx, cy, rx, ry = (v + 0.5 if i < 2 else v for i, v in enumerate(m.ellipse()))
            kind = hd.sr.GraphicTypeValues.ELLIPSE
            major, minor = ([[cx - rx, cy], [cx + rx, cy]], [[cx, cy - ry], [cx, cy + ry]])
            data = major + minor if rx >= ry else minor + major
            stats = m.stats(volume.array[m.z], spacing)
            values = [hd.sr.Measurement(name=codes.SCT.Area, value=stats["area_mm2"],
                                        unit=Code("mm2", "UCUM", "square millimeter"))]
            for key, derivation in (("mean", codes.SCT.Mean), ("sd", codes.SCT.StandardDeviation),
                                    ("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum)):
                if key in stats:
                    values.append(hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=stats[key],
                                                    unit=hu, derivation=derivation))
        region = hd.sr.ImageRegion(graphic_type=kind, graphic_data=np.asarray(data, dtype=float),
                                   source_image=hd.sr.SourceImageForRegion.from_source_image(sources[m.z]))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=hd.UID(), identifier=f"Reader {m.kind} {number} (slice {m.z + 1})"),
            referenced_region=region, measurements=values))
    return groups
