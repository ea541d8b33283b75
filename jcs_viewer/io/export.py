"""Standard exports of a study's masks: NIfTI, DICOM SEG and a per-slice CSV.

Every writer is atomic (a temporary file in the target folder, then ``os.replace``) and
turns any failure into :class:`~jcs_viewer.errors.ExportError` with one sentence naming the
file. Heavy packages (SimpleITK, highdicom) are imported inside the functions.

Geometry conventions (see :class:`~jcs_viewer.io.volume.Volume`): arrays are ``(z, y, x)``,
``spacing`` is ``(z, y, x)`` mm, ``origin`` is the LPS position ``(x, y, z)`` of voxel 0 and the
columns of ``direction`` are the LPS directions of the x, y and z index axes.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.atomic import atomic_path
from jcs_viewer.errors import ExportError, JCSError

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume

#: Lesion mask values with a class meaning when the mask carries classes (1/2).
GGO_LABEL, CONSOLIDATION_LABEL = 1, 2
#: Lung mask values (contract of the pipeline's lung mask).
RIGHT_LUNG, LEFT_LUNG = 1, 2

_CSV_COLUMNS = (
    "slice",  # numbered from 1 (top of the array first), as the viewer and the report number slices
    "position_mm",
    "probability",
    "classifier_probability",
    "lesion_evidence",
    "has_lung",
    "positive",
    "segmented",
    "lesion_area_mm2",
    "lesion_count",
    "review_state",
)


# --------------------------------------------------------------------------- atomic writes
def _suffix_of(path: Path) -> str:
    """Full suffix (``.nii.gz`` stays whole) so writers that pick a format by name still work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


def check_target(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any slow rendering, when ``path`` can obviously not be written.

    Returns:
        ``path`` as a Path.

    Raises:
        ExportError: a file stands where a folder of the path should be, or a folder stands
            where the file should be.
    """
    path = Path(path)
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ExportError(f"Cannot write {path}: {ancestor} is a file, not a folder.")
            break
    if path.is_dir():
        raise ExportError(f"Cannot write {path}: a folder with that name exists.")
    return path


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    The parent folder is created when missing. Any failure, inside the block or while
    preparing the folder, removes the temporary file and raises :class:`ExportError`.

    Raises:
        ExportError: the target cannot be written (read-only folder, a file where a folder
            is expected, a folder where the file should be, a full disk, a writer error).
    """
    path = check_target(path)
    parent = path.parent
    stack = ExitStack()
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # The temporary name still ends like the target: writers pick the format by suffix.
        tmp = stack.enter_context(atomic_path(path, suffix=_suffix_of(path)))
    except OSError as exc:
        if exc.errno == errno.ENOENT and parent.is_dir():
            # e.g. /proc: the folder exists but takes no new files; "No such file" would mislead.
            raise ExportError(f"Cannot write {path}: {parent} does not accept new files.") from exc
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    try:
        with stack:  # removes the temporary on failure, renames it over ``path`` on success
            yield tmp
    except JCSError:
        raise
    except Exception as exc:  # noqa: BLE001 - any writer (or rename) failure becomes one sentence
        raise ExportError(f"Cannot write {path}: {_reason(exc)}.") from exc


def _reason(exc: BaseException) -> str:
    """First line of an exception's message (SimpleITK's run over many lines)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(exc).__name__


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# --------------------------------------------------------------------------- NIfTI
def _check_mask(mask: np.ndarray, volume: Volume, what: str, path: Path) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(volume.shape):
        raise ExportError(f"Cannot write {path}: the {what} has shape {mask.shape}, the study {tuple(volume.shape)}.")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ExportError(f"Cannot write {path}: the {what} holds values outside 0..255.")
    return mask


def export_nifti(mask: np.ndarray, volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a label mask as NIfTI with exactly the study's geometry, on the source's own voxel grid.

    A NIfTI/MHA/NRRD study is written back in its file's voxel order (same size, spacing, origin and
    direction as the input, so image and mask arrays align index by index); a DICOM series on the grid
    of its slices sorted feet to head (the grid its DICOM SEG frames refer to). Label values are kept (lesion 0/1
    or classes 1/2; lungs 0 none / 1 right / 2 left).

    Args:
        mask: ``(z, y, x)`` integer mask with the volume's shape.
        volume: the :class:`~jcs_viewer.io.volume.Volume` the mask belongs to.
        path: target ending in ``.nii`` or ``.nii.gz``.

    Returns:
        The written path.

    Raises:
        ExportError: wrong name, shape or values, or an unwritable target.
    """
    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ExportError(f"Cannot write {path}: a NIfTI file name must end in .nii or .nii.gz.")
    mask = _check_mask(mask, volume, "mask", path)
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    # SimpleITK orders everything (x, y, z); Volume.spacing is (z, y, x).
    image.SetSpacing(tuple(float(s) for s in reversed(volume.spacing)))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    image.SetDirection(tuple(float(d) for d in np.asarray(volume.direction, dtype=float).reshape(9)))
    source = getattr(volume, "source_orientation", None)
    if source:  # back onto the source file's own voxel grid: a permutation and flips, never a resampling
        image = sitk.DICOMOrient(image, source)
    with atomic_target(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=path.name.endswith(".gz"))
    return path


# --------------------------------------------------------------------------- CSV
def slice_positions_mm(geometry: Any, n_slices: int) -> np.ndarray:
    """Slice positions along the slice normal (mm), as :meth:`Volume.slice_position_mm` gives them.

    Args:
        geometry: any object with ``origin``, ``direction`` and ``spacing`` (a Volume or a
            StudyResult, which copies them from the volume).
        n_slices: number of slices.
    """
    direction = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    start = float(np.dot(np.asarray(geometry.origin, dtype=float), direction[:, 2]))
    return start + np.arange(n_slices) * float(geometry.spacing[0])


def normalise_review(review: Any) -> dict[int, str]:
    """Review states as ``{slice: "confirmed" | "rejected"}``.

    Accepts a mapping slice -> state (strings or enums with ``.value``) or an object with a
    ``decisions()`` method (the session's ``ReviewState``). Unknown states are ignored.
    """
    if review is None:
        return {}
    items = review.decisions() if hasattr(review, "decisions") else review
    if not isinstance(items, Mapping):
        raise TypeError(f"review must be a mapping slice -> state, got {type(review).__name__}")
    out: dict[int, str] = {}
    for z, state in items.items():
        value = str(getattr(state, "value", state)).lower()
        if value in ("confirmed", "rejected"):
            out[int(z)] = value
    return out


def export_csv(
    result: Any,
    path: str | os.PathLike[str],
    *,
    review: Any = None,
    quant: Any = None,
) -> Path:
    """Write one CSV row of metrics per slice.

    Columns: slice (numbered from 1, as in the viewer and the report), position_mm, probability (the slice
    score compared with the cutoff),
    classifier_probability, lesion_evidence (empty with the classifier-only score), has_lung (0/1:
    slices without lung have no score, their score cells are empty), positive (0/1),
    segmented (0/1), lesion_area_mm2, lesion_count, review_state (confirmed / rejected / unreviewed).

    Args:
        result: a ``StudyResult`` (reads n_slices, geometry, slice_probability,
            slice_positive, segmented_slices and quant).
        path: target ``.csv`` file.
        review: optional review states (see :func:`normalise_review`).
        quant: a Quantification to use instead of ``result.quant`` (e.g. of an edited mask).

    Returns:
        The written path.
    """
    n = int(result.n_slices)
    quant = result.quant if quant is None else quant
    states = normalise_review(review)
    positions = slice_positions_mm(result, n)
    prob = np.asarray(result.slice_probability, dtype=float).reshape(-1)
    classifier = getattr(result, "classifier_probability", None)
    classifier = prob if classifier is None else np.asarray(classifier, dtype=float).reshape(-1)
    evidence = getattr(result, "lesion_evidence", None)
    evidence = None if evidence is None else np.asarray(evidence, dtype=float).reshape(-1)
    positive = np.asarray(result.slice_positive, dtype=bool).reshape(-1)
    scored = getattr(result, "scored_slices", None)
    scored = np.ones(n, dtype=bool) if scored is None else np.asarray(scored, dtype=bool).reshape(-1)
    segmented = np.asarray(result.segmented_slices, dtype=bool).reshape(-1)
    area = np.asarray(quant.per_slice_area_mm2, dtype=float).reshape(-1)
    count = np.asarray(quant.per_slice_count).reshape(-1)
    for name, arr in (("slice_probability", prob), ("classifier_probability", classifier),
                      ("lesion_evidence", prob if evidence is None else evidence),
                      ("slice_positive", positive), ("scored_slices", scored), ("segmented_slices", segmented),
                      ("per_slice_area_mm2", area), ("per_slice_count", count)):
        if arr.shape[0] != n:
            raise ExportError(f"Cannot write {path}: {name} has {arr.shape[0]} values for {n} slices.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for z in range(n):
        writer.writerow(
            (
                z + 1,
                f"{positions[z]:.2f}",
                f"{prob[z]:.4f}" if scored[z] else "",
                f"{classifier[z]:.4f}" if scored[z] else "",
                "" if evidence is None or not scored[z] else f"{evidence[z]:.4f}",
                int(scored[z]),
                int(positive[z]),
                int(segmented[z]),
                f"{area[z]:.1f}",
                int(count[z]),
                states.get(z, "unreviewed"),
            )
        )
    return write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------- DICOM SEG
def _codes() -> dict[str, Any]:
    """Coded concepts for the segments (DICOM PS3.16; SNOMED CT where DICOM uses it)."""
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    return {
        "abnormal": codes.cid7150.MorphologicallyAbnormalStructure,  # SCT 49755003
        "anatomy": codes.cid7150.AnatomicalStructure,  # SCT 91723000
        "lesion": codes.cid7159.Lesion,  # SCT 52988006
        "ggo": codes.DCM.GroundGlassOpacity,  # DCM 112120 (CID 6104)
        "consolidation": Code("95436008", "SCT", "Lung consolidation"),
        "lung": codes.cid7151.Lung,  # SCT 39607008
        "right": codes.SCT.Right,  # SCT 24028007
        "left": codes.SCT.Left,  # SCT 7771000
    }


def _lesion_segments(
    lesion_mask: np.ndarray, lesion_classes: Mapping[int, str] | None
) -> list[tuple[str, str, np.ndarray]]:
    """(label, code key, binary mask) per lesion class present."""
    known = {"ggo": "ggo", "ground-glass opacity": "ggo", "ground glass opacity": "ggo",
             "consolidation": "consolidation", "lesion": "lesion"}
    if lesion_classes is None:
        values = set(np.unique(lesion_mask).tolist()) - {0}
        if values and values <= {GGO_LABEL, CONSOLIDATION_LABEL} and CONSOLIDATION_LABEL in values:
            lesion_classes = {GGO_LABEL: "Ground-glass opacity", CONSOLIDATION_LABEL: "Consolidation"}
        else:
            return [("Lesion", "lesion", lesion_mask > 0)]
    segments = []
    for value, label in sorted(lesion_classes.items()):
        key = known.get(str(label).strip().lower(), "lesion")
        segments.append((str(label), key, lesion_mask == int(value)))
    return segments


def _read_sources(volume: Volume, path: Path) -> list[Any]:
    """Source datasets (headers only) in slice order, checked against the volume geometry."""
    from pydicom.errors import InvalidDicomError

    from jcs_viewer.io.dicom_scan import source_header

    files = list(volume.source_files)
    if len(files) != volume.n_slices:
        raise ExportError(
            f"Cannot write {path}: DICOM SEG needs one source file per slice "
            f"({len(files)} files for {volume.n_slices} slices; multi-frame sources are not supported)."
        )
    datasets = []
    for z, name in enumerate(files):
        try:
            ds = source_header(name)
        except (OSError, InvalidDicomError) as exc:
            raise ExportError(f"Cannot write {path}: the source file {name} cannot be read ({exc}).") from exc
        try:
            ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ExportError(f"Cannot write {path}: the source file {name} has no image position or size.") from exc
        if not str(ds.get("SOPClassUID", "") or "").strip():
            # Some real series leave it empty (highdicom then fails with KeyError ''): the file meta
            # knows the class, else a CT slice is a CT Image.
            known = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "").strip()
            if not known and str(ds.get("Modality", "CT") or "CT").upper() == "CT":
                known = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
            if not known:
                raise ExportError(f"Cannot write {path}: the source file {name} has no SOP Class UID, so the "
                                  "SEG cannot say what kind of image it annotates.")
            ds.SOPClassUID = known
        expected = volume.index_to_lps((z, 0, 0))
        if (rows, cols) != tuple(volume.shape[1:]) or not np.allclose(ipp, expected, atol=0.05):
            raise ExportError(f"Cannot write {path}: the source file {name} does not match slice {z} of the study.")
        datasets.append(ds)
    return datasets


_FORMAT_NAMES = {"nifti": "a NIfTI file", "mha": "a MetaImage file", "nrrd": "an NRRD file",
                 "images": "image files (PNG/JPEG)"}


def dicom_seg_unavailable(volume: Volume) -> str | None:
    """Why no DICOM SEG can be written for ``volume`` (a clause without a full stop), or None when it can.

    A SEG references its source images by UID, so it needs a study loaded from DICOM files.
    """
    fmt = str(getattr(volume, "source_format", "") or "")
    if fmt == "synthetic":
        return "DICOM SEG needs a DICOM source, and this study is a synthetic image without one"
    if fmt != "dicom":
        loaded_from = _FORMAT_NAMES.get(fmt, f"{fmt} files" if fmt else "an unknown source")
        return f"DICOM SEG needs a DICOM source, and this study was loaded from {loaded_from}"
    if not tuple(getattr(volume, "source_files", ()) or ()):
        return "DICOM SEG needs a DICOM source, and this study has no DICOM files behind it"
    if getattr(volume, "source_orientation", None):
        # Its frames would have to follow the source slices, which the axial reading reordered.
        return ("DICOM SEG needs the series' own slices, and this non-axial series was read as axial slices "
                "(the NIfTI masks are written on its own grid)")
    return None


def export_dicom_seg(
    volume: Volume,
    lesion_mask: np.ndarray,
    lung_mask: np.ndarray | None,
    path: str | os.PathLike[str],
    *,
    lesion_classes: Mapping[int, str] | None = None,
    edited: bool = False,
    anonymize: bool = False,
    pseudonyms: Any = None,
) -> Path:
    """Write a BINARY DICOM Segmentation of the lesions and lungs that references the source series.

    Segments: one per lesion class (ground-glass opacity / consolidation when the mask holds
    classes 1 and 2 or ``lesion_classes`` names them, else one "Lesion"), then the right and
    left lung (lung mask 1/2; one "Lung" segment when the mask has only the value 1).

    Args:
        volume: the DICOM-loaded :class:`~jcs_viewer.io.volume.Volume` (``source_files`` per slice).
        lesion_mask: ``(z, y, x)`` lesion mask (0/1, or classes 1/2).
        lung_mask: ``(z, y, x)`` lung mask 0/1/2, or None for no lung segments.
        path: target file (``.dcm``).
        lesion_classes: optional mapping lesion mask value -> label ("Ground-glass opacity",
            "Consolidation", "Lesion"); the code follows the label.
        edited: the reader edited the lesion mask: its segments are SEMIAUTOMATIC.
        anonymize: de-identify the SEG after DICOM PS3.15 E.1 (:mod:`jcs_viewer.io.deidentify`): no name,
            ID, date, institution, physician or source UID of the study is left in it; the references to
            the source images keep working through pseudonymous UIDs.
        pseudonyms: the :class:`~jcs_viewer.io.deidentify.Pseudonymizer` of the whole output set, so its
            other files name the same pseudonymous UIDs (default: a new one).

    Returns:
        The written path.

    Raises:
        ExportError: a non-DICOM study, unreadable or mismatching sources, an unwritable target.
    """
    path = Path(path)
    reason = dicom_seg_unavailable(volume)
    if reason is not None:
        raise ExportError(f"Cannot write {path}: {reason}.")
    check_target(path)
    lesion_mask = _check_mask(lesion_mask, volume, "lesion mask", path)
    if lung_mask is not None:
        lung_mask = _check_mask(lung_mask, volume, "lung mask", path)
    sources = _read_sources(volume, path)

    import highdicom as hd

    from jcs_viewer import __version__

    code = _codes()
    algorithm = hd.AlgorithmIdentificationSequence(
        name="JCS Viewer", family=hd.sr.CodedConcept.from_code(_ai_family()), version=__version__
    )
    planned: list[tuple[str, Any, Any, Any, np.ndarray, str]] = []
    lesion_type = "SEMIAUTOMATIC" if edited else "AUTOMATIC"
    for label, key, mask in _lesion_segments(lesion_mask, lesion_classes):
        planned.append((label, code["abnormal"], code[key], None, mask, lesion_type))
    if lung_mask is not None:
        if np.any(lung_mask == LEFT_LUNG):
            for label, side, value in (("Right lung", "right", RIGHT_LUNG), ("Left lung", "left", LEFT_LUNG)):
                planned.append((label, code["anatomy"], code["lung"], code[side], lung_mask == value, "AUTOMATIC"))
        else:
            planned.append(("Lung", code["anatomy"], code["lung"], None, lung_mask > 0, "AUTOMATIC"))

    descriptions = []
    for number, (label, category, prop, modifier, _mask, algo_type) in enumerate(planned, start=1):
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=category,
            segmented_property_type=prop,
            algorithm_type=algo_type,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"JCS {label}",
        )
        if modifier is not None:
            # The laterality modifier lives inside the property type item (PS3.3 C.8.20.2).
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(modifier)
            ]
        descriptions.append(desc)
    # (frames, rows, cols, segments): segments overlap (lesion inside lung), so no label map.
    pixels = np.stack([m for *_, m, _t in planned], axis=-1).astype(bool, copy=False)

    try:
        series_number = int(getattr(sources[0], "SeriesNumber", 0) or 0) + 1000
    except (TypeError, ValueError):
        series_number = 1000
    try:
        with warnings.catch_warnings():
            # highdicom warns about odd source values it copies (e.g. one-component patient
            # names); nothing the reader can act on while exporting.
            warnings.simplefilter("ignore", UserWarning)
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="JCS Viewer developers",
                manufacturer_model_name="JCS Viewer",
                software_versions=__version__,
                device_serial_number="0",
                content_label="JCS_LESIONS",
                content_description="JCS Viewer lesion and lung segmentation (research use only)",
                series_description="JCS Viewer segmentation",
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"Cannot write {path}: the segmentation could not be built ({exc}).") from exc
    return save_dataset(seg, path, anonymize=anonymize, pseudonyms=pseudonyms)


def save_dataset(ds: Any, path: str | os.PathLike[str], *, anonymize: bool = False, pseudonyms: Any = None) -> Path:
    """Write a DICOM object of ours atomically, de-identified first with ``anonymize`` (by the output set's
    :class:`~jcs_viewer.io.deidentify.Pseudonymizer` ``pseudonyms``, default a new one); returns the path."""
    if anonymize:
        from jcs_viewer.io.deidentify import Pseudonymizer

        (pseudonyms or Pseudonymizer()).dataset(ds)
    with atomic_target(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)  # a PS3.10 file: preamble, complete file meta
    return Path(path)


def _ai_family() -> Any:
    from pydicom.sr.codedict import codes

    return codes.cid7162.ArtificialIntelligence
