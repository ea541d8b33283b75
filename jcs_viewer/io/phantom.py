"""Synthetic chest CT phantom with known lungs and COVID-like lesions.

The phantom is a deterministic stand-in for a real chest CT: body outline with
subcutaneous fat and muscle, ribs, sternum and spine, mediastinum (heart, aorta,
pulmonary trunk, vena cava, trachea and main bronchi), two lungs around -850 HU
with branching vessels, the diaphragm domes with liver and spleen below them, and
optionally ground-glass and consolidation lesions at recorded places.

Geometry follows :class:`jcs_viewer.io.volume.Volume`: array ``(z, y, x)`` with z
ascending feet -> head, identity direction (x -> patient left, y -> posterior,
z -> superior, LPS), so the patient's right lung is at low x indices.

Every random draw comes from its own stream derived from ``seed`` (anatomy,
vessels, lesions, noise), which is why ``lesions=False`` gives the same anatomy
and the same noise as ``lesions=True``: the two studies differ exactly in the
voxels of ``lesion_mask``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The anatomy's constants are part of this module's interface (tests and docs read them here).
from jcs_viewer.io.phantom_anatomy import (CHEST_CENTRE_Z_MM, CHEST_HALF_EXTENT_MM, DEFAULT_FOV_MM, DEFAULT_Z_EXTENT_MM,
                                           LESION_HU_CLIP, LESION_HU_RANGES, LESION_LABELS, LUNG_LABELS, Anatomy,
                                           Geometry, paint_slice)
from jcs_viewer.io.phantom_lesions import LesionSpec, add_lesions, add_noise, add_vessels

__all__ = ["CHEST_CENTRE_Z_MM", "CHEST_HALF_EXTENT_MM", "LESION_HU_CLIP", "LESION_HU_RANGES", "LESION_LABELS",
           "LUNG_LABELS", "PHANTOM_VERSION", "LesionSpec", "Phantom", "default_spacing", "demo_cache_root",
           "demo_study_path", "ground_truth_summary", "make_phantom", "write_demo_study"]

# Bump when the generated images change, so cached demo studies are rebuilt.
PHANTOM_VERSION = 2


@dataclass
class Phantom:
    """A generated study and its ground truth.

    Attributes:
        hu: ``int16`` Hounsfield units ``(z, y, x)``.
        lesion_mask: ``uint8``; 0 none, 1 ground-glass, 2 consolidation.
        lung_mask: ``uint8``; 0 outside, 1 right lung (low x), 2 left lung.
        spacing: voxel size ``(z, y, x)`` in mm.
        origin: LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]``.
        direction: 3x3, columns are the LPS directions of the x, y, z index axes.
        lesions: one :class:`LesionSpec` per lesion (empty when generated without lesions).
        seed: the seed it was generated from.
    """

    hu: np.ndarray
    lesion_mask: np.ndarray
    lung_mask: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    lesions: list[LesionSpec] = field(default_factory=list)
    seed: int = 0

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def to_volume(self, info=None):
        """The image as a :class:`~jcs_viewer.io.volume.Volume` (shares the array)."""
        from jcs_viewer.io.volume import StudyInfo, Volume

        return Volume(
            array=self.hu,
            spacing=self.spacing,
            origin=self.origin,
            direction=self.direction,
            is_hu=True,
            info=info or StudyInfo(modality="CT"),
            source_format="dicom",
        )


def default_spacing(n_slices: int, size: int) -> tuple[float, float, float]:
    """Spacing that fits the whole chest in ``n_slices`` slices of ``size``² (2.5, 0.7, 0.7 at 128 x 512²)."""
    return (DEFAULT_Z_EXTENT_MM / n_slices, DEFAULT_FOV_MM / size, DEFAULT_FOV_MM / size)


def make_phantom(
    n_slices: int = 128,
    size: int = 512,
    seed: int = 0,
    lesions: bool = True,
    spacing: tuple[float, float, float] | None = None,
    noise_sigma: float = 18.0,
    lesion_scale: float = 1.0,
    table_shift_mm: float = 0.0,
) -> Phantom:
    """Generate a synthetic chest CT.

    Args:
        n_slices: number of axial slices.
        size: rows and columns of each slice.
        seed: any non-negative integer; the same seed gives the same arrays.
        lesions: add ground-glass and consolidation lesions (``False``: the same
            patient without them).
        spacing: voxel size ``(z, y, x)`` in mm. ``None`` fits the standard chest
            field (320 mm x 358 mm²), i.e. ``(2.5, 0.7, 0.7)`` at the default size;
            an explicit spacing scans the same patient with a different field.
        noise_sigma: standard deviation of the (slightly correlated) image noise in HU;
            0 gives the noise-free phantom.
        lesion_scale: the same lesions grown (> 1) or shrunk (< 1) in place: a follow-up scan of the patient.
        table_shift_mm: the patient lies this much further along the table (z): the same slices of the same
            anatomy, at other positions, as in a follow-up scan that a registration must align.

    Returns:
        The :class:`Phantom`.
    """
    if n_slices < 1 or size < 8:
        raise ValueError(f"phantom needs at least 1 slice of 8x8 pixels, got {n_slices} x {size}x{size}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    spacing = tuple(float(s) for s in (spacing or default_spacing(n_slices, size)))
    sz, sy, sx = spacing
    origin = (-(size - 1) * sx / 2.0, -(size - 1) * sy / 2.0, CHEST_CENTRE_Z_MM - (n_slices - 1) * sz / 2.0)
    streams = np.random.SeedSequence([seed, 0x4A435356]).spawn(4)
    rng_anatomy, rng_vessels, rng_lesions, rng_noise = (np.random.default_rng(s) for s in streams)

    geo = Geometry(n_slices, size, spacing, origin)
    anatomy = Anatomy.draw(rng_anatomy)
    hu = np.empty((n_slices, size, size), dtype=np.int16)
    lung = np.zeros((n_slices, size, size), dtype=np.uint8)
    for k in range(n_slices):
        paint_slice(hu[k], lung[k], geo, anatomy, geo.z_mm[k])

    add_vessels(hu, lung, geo, anatomy, rng_vessels)
    lesion_mask = np.zeros_like(lung)
    specs: list[LesionSpec] = []
    if lesions:
        specs = add_lesions(hu, lung, lesion_mask, geo, rng_lesions, scale=lesion_scale)
    add_noise(hu, noise_sigma, rng_noise)
    return Phantom(
        hu=hu,
        lesion_mask=lesion_mask,
        lung_mask=lung,
        spacing=spacing,
        origin=(origin[0], origin[1], origin[2] + float(table_shift_mm)),  # same slices, the patient moved
        direction=np.eye(3),
        lesions=specs,
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------
# Demo study on disk


def write_demo_study(
    out_dir: str | os.PathLike,
    n_slices: int = 128,
    seed: int = 0,
    lesions: bool = True,
    size: int = 512,
    spacing: tuple[float, float, float] | None = None,
    follow_up_days: int = 0,
    lesion_scale: float = 1.0,
) -> Path:
    """Generate the phantom and write it as a DICOM series with NIfTI ground truth.

    With ``follow_up_days`` it is the same patient scanned that many days later (a study of its own, its
    lesions scaled by ``lesion_scale``, the table 12 mm further), for comparison with the first scan.

    Layout::

        out_dir/dicom/IM_*.dcm                    one CT Image Storage file per slice
        out_dir/ground_truth/lesion_mask.nii.gz   0 none, 1 ground-glass, 2 consolidation
        out_dir/ground_truth/lung_mask.nii.gz     0 outside, 1 right lung, 2 left lung
        out_dir/ground_truth/lesions.json         lesion list, lesion and lung volumes (mL)

    Both sub-folders are built in a temporary folder inside ``out_dir`` and moved into
    place, replacing an earlier demo there; other content of ``out_dir`` is left alone.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: when ``out_dir`` cannot be written.
    """
    import shutil
    import tempfile

    from jcs_viewer.errors import ExportError

    out_dir = Path(out_dir)
    phantom = make_phantom(n_slices=n_slices, size=size, seed=seed, lesions=lesions, spacing=spacing,
                           lesion_scale=lesion_scale, table_shift_mm=12.0 if follow_up_days else 0.0)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=out_dir))
    except OSError as exc:
        raise ExportError(f"Cannot write the demo study to {out_dir}: {exc.strerror or exc}.") from exc
    try:
        _write_study_files(phantom, staging, lesions, follow_up_days)
        for name in ("dicom", "ground_truth"):
            target = out_dir / name
            old = None
            if target.exists():
                old = out_dir / f".demo-old-{name}-{os.getpid()}"
                os.replace(target, old)
            os.replace(staging / name, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise ExportError(f"Cannot write the demo study to {out_dir}: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _write_study_files(phantom: Phantom, root: Path, lesions: bool, follow_up_days: int = 0) -> None:
    import json

    from jcs_viewer.io.dicom_writer import DEFAULT_DATE, derive_uid, write_dicom_series, write_mask_nifti
    from jcs_viewer.io.volume import StudyInfo

    seed = phantom.seed
    tag = ("lesions" if lesions else "lesion-free") + (f"+{follow_up_days}d" if follow_up_days else "")
    study_uid = derive_uid("demo-study", PHANTOM_VERSION, seed, tag)
    info = StudyInfo(
        patient_name="DEMO^PHANTOM",
        patient_id=f"JCSDEMO{seed:05d}",
        sex="O",
        study_uid=study_uid,
        study_date=_days_after(DEFAULT_DATE, follow_up_days),
        study_description="CT CHEST synthetic demo (JCS Viewer)",
        series_uid=derive_uid("demo-series", PHANTOM_VERSION, seed, tag, phantom.hu.shape),
        series_number="2",
        series_description=f"Synthetic chest CT, seed {seed}, {'with lesions' if lesions else 'no lesions'}",
        modality="CT",
        frame_of_reference_uid=derive_uid("demo-frame", PHANTOM_VERSION, seed, tag),
        kvp=120.0,
        convolution_kernel="STANDARD",
    )
    geometry = dict(spacing=phantom.spacing, origin=phantom.origin, direction=phantom.direction)
    write_dicom_series(phantom.hu, root / "dicom", info=info, seed=seed, **geometry)
    truth = root / "ground_truth"
    write_mask_nifti(phantom.lesion_mask, truth / "lesion_mask.nii.gz", **geometry)
    write_mask_nifti(phantom.lung_mask, truth / "lung_mask.nii.gz", **geometry)
    (truth / "lesions.json").write_text(json.dumps(ground_truth_summary(phantom), indent=2) + "\n")


def _days_after(date: str, days: int) -> str:
    import datetime

    return (datetime.datetime.strptime(date, "%Y%m%d") + datetime.timedelta(days=int(days))).strftime("%Y%m%d")


def ground_truth_summary(phantom: Phantom) -> dict:
    """Lesion list and volumes (mL) of a phantom, as stored in ``lesions.json``."""
    from dataclasses import asdict

    ml = phantom.voxel_volume_ml
    # Per-label counts without np.bincount, which would cast the whole mask to int64.
    lesion_counts = [int(np.count_nonzero(phantom.lesion_mask == v)) for v in range(3)]
    lung_counts = [int(np.count_nonzero(phantom.lung_mask == v)) for v in range(3)]
    lung_ml = float(sum(lung_counts[1:])) * ml
    lesion_ml = float(sum(lesion_counts[1:])) * ml
    in_lung = {}
    for kind, label in LESION_LABELS.items():
        in_lung[kind] = round(float(lesion_counts[label]) * ml, 3)
    return {
        "generator": f"jcs_viewer.io.phantom v{PHANTOM_VERSION}",
        "seed": phantom.seed,
        "shape_zyx": list(phantom.hu.shape),
        "spacing_zyx_mm": list(phantom.spacing),
        "origin_xyz_mm": list(phantom.origin),
        "labels": {"lesion_mask": {"0": "none", "1": "ground_glass", "2": "consolidation"},
                   "lung_mask": {"0": "outside", "1": "right lung", "2": "left lung"}},
        "lesion_volume_ml": round(lesion_ml, 3),
        "lesion_volume_ml_by_kind": in_lung,
        "lung_volume_ml": {"right": round(float(lung_counts[1]) * ml, 3), "left": round(float(lung_counts[2]) * ml, 3),
                           "total": round(lung_ml, 3)},
        "lesion_percent_of_lung": round(100.0 * lesion_ml / lung_ml, 3) if lung_ml else 0.0,
        "lesions": [{**asdict(spec), "volume_ml": round(spec.n_voxels * ml, 3)} for spec in phantom.lesions],
    }


def demo_cache_root() -> Path:
    """Where cached demo studies live.

    ``$JCS_VIEWER_CACHE``, else ``$XDG_CACHE_HOME/jcs-viewer``, else ``~/.cache/jcs-viewer``.
    """
    if os.environ.get("JCS_VIEWER_CACHE"):
        return Path(os.environ["JCS_VIEWER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jcs-viewer"


def demo_study_path(seed: int = 0, n_slices: int = 128, lesions: bool = True) -> Path:
    """The default demo study, generated once into the cache and reused afterwards.

    The folder name carries the package and generator versions, so an upgrade builds a
    fresh study. It is built in a temporary folder and renamed into place, so a folder
    that exists is complete; when two processes race, the first rename wins.

    Returns:
        The study folder (``dicom/`` and ``ground_truth/`` inside).
    """
    import shutil
    import tempfile

    from jcs_viewer import __version__
    from jcs_viewer.errors import ExportError

    suffix = "" if n_slices == 128 else f"-{n_slices}sl"
    suffix += "" if lesions else "-nolesions"
    final = demo_cache_root() / f"demo-{__version__}.{PHANTOM_VERSION}-{seed}{suffix}"
    if (final / "dicom").is_dir() and (final / "ground_truth" / "lesions.json").is_file():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-tmp-", dir=final.parent))
    except OSError as exc:
        raise ExportError(f"Cannot create the demo cache folder {final.parent}: {exc.strerror or exc}.") from exc
    try:
        write_demo_study(staging, n_slices=n_slices, seed=seed, lesions=lesions)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "ground_truth" / "lesions.json").is_file():
                raise
    except OSError as exc:
        raise ExportError(f"Cannot write the demo study to {final}: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
