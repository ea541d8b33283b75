"""Follow-up comparison: a prior study registered to the current one (lungs first), the slice of the prior that
shows what a current slice shows, and lesion volume and involvement per lung then, now and the change.

Registration: a rigid (Euler 3-D) SimpleITK registration of the prior's lung mask to the current one's, started
from their centres of mass, on smoothed masks at 4 mm; the lungs are what both studies share even when the disease
has changed, and a rigid move is what a patient does between two scans on the table. A study of a few slices (a
key image, a single slice) has no 3-D lungs to register: its slices are paired in order and registered in plane
(Euler 2-D on the lung masks of the slices with the most lung). No Qt.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.vocabulary import counted

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.quantify import Quantification
    from jcs_viewer.pipeline.result import StudyResult

SIDES = ("right", "left", "total")
#: Registration works on lung masks resampled to this spacing (mm): fast, and lungs are large.
REGISTRATION_MM = 4.0
#: Fewer slices than this in either study: no 3-D registration, the slices are paired in order.
MIN_SLICES_3D = 8


@dataclass(frozen=True)
class Comparison:
    """The prior study against the current one.

    Attributes:
        prior_date, current_date: study dates (``YYYY-MM-DD`` or "").
        days: days between them (None when a date is missing).
        lesion_ml: per side (right, left, total): (prior, current).
        involvement_percent: per side: (prior, current).
        prior_slice: for each current slice, the prior's slice showing the same place (-1: outside the prior).
        translation_mm: how far the registration moved the prior (x, y, z), and its rotation in degrees.
        rotation_deg: the registration's rotation about x, y, z.
        notes: sentences the reader needs beside the numbers (a study of a few slices, a missing date).
    """

    prior_date: str
    current_date: str
    days: int | None
    lesion_ml: dict[str, tuple[float, float]]
    involvement_percent: dict[str, tuple[float, float]]
    prior_slice: np.ndarray
    translation_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    notes: tuple[str, ...] = ()

    def with_current(self, quant: Quantification) -> Comparison:
        """The same comparison with the current study's numbers taken from ``quant`` (the reader's edited mask)."""
        return dataclasses.replace(
            self, lesion_ml={s: (v[0], float(quant.lesion_volume_ml[s])) for s, v in self.lesion_ml.items()},
            involvement_percent={s: (v[0], float(quant.involvement_percent[s]))
                                 for s, v in self.involvement_percent.items()})

    def interval(self) -> str:
        """``"2026-10-01 → 2026-10-29 (28 days)"``, or what is known of it."""
        days = "" if self.days is None else f" ({counted(self.days, 'day')})"
        return f"{self.prior_date or 'undated'} → {self.current_date or 'undated'}{days}"

    def registration(self) -> str:
        """How far the prior was moved onto the current study, in words."""
        x, y, z = (round(v, 1) + 0.0 for v in self.translation_mm)  # + 0.0: no "-0.0"
        return (f"prior moved {x:+.1f} / {y:+.1f} / {z:+.1f} mm (x / y / z), rotated "
                f"{max(abs(a) for a in self.rotation_deg):.1f}° at most")

    def change(self, what: str, side: str) -> float:
        """Current minus prior of ``"lesion_ml"`` or ``"involvement_percent"`` for ``side``."""
        then, now = getattr(self, what)[side]
        return now - then

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(quantity, then, now, change) for the summary panel, the report and the CLI."""
        out = []
        for what, label, unit in (("lesion_ml", "Lesion volume", "mL"), ("involvement_percent", "Involvement", "%")):
            for side in SIDES:
                then, now = getattr(self, what)[side]
                name = f"{label}, {'both lungs' if side == 'total' else side + ' lung'}"
                out.append((name, f"{then:.1f} {unit}", f"{now:.1f} {unit}", f"{now - then:+.1f} {unit}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"prior_date": self.prior_date, "current_date": self.current_date, "days": self.days,
                "notes": list(self.notes),
                "lesion_ml": {k: list(v) for k, v in self.lesion_ml.items()},
                "involvement_percent": {k: list(v) for k, v in self.involvement_percent.items()},
                "translation_mm": list(self.translation_mm), "rotation_deg": list(self.rotation_deg)}


def compare(current: Volume, current_result: StudyResult, prior: Volume, prior_result: StudyResult) -> Comparison:
    """Register ``prior`` to ``current`` by their lungs and tabulate the change.

    Raises:
        NotComparable: a study has no lungs to register by.
    """
    if not np.any(current_result.lung_mask) or not np.any(prior_result.lung_mask):
        from jcs_viewer.errors import NotComparable

        raise NotComparable("The studies cannot be compared: one of them has no lungs to register by.")
    thin = min(current.array.shape[0], prior.array.shape[0]) < MIN_SLICES_3D
    if thin:
        transform = register_in_plane(current, current_result.lung_mask, prior, prior_result.lung_mask)
    else:
        transform = register_lungs(current, current_result.lung_mask, prior, prior_result.lung_mask)
    params = transform.GetParameters()  # Euler3D: angles (rad) x, y, z, then translation
    now, then = current_result.quant, prior_result.quant
    dates = (_date(prior.info.study_date), _date(current.info.study_date))
    days = (dates[1] - dates[0]).days if all(dates) else None
    notes = []
    if thin:
        counts = {"prior": prior.array.shape[0], "current": current.array.shape[0]}
        few = [name for name, n in counts.items() if n < MIN_SLICES_3D]
        who = "Both studies have" if len(few) == 2 else f"The {few[0]} study has"
        notes.append(f"{who} only {min(counts[name] for name in few)} slice(s): lesion and lung volumes are those of "
                     "the slices scanned, not of the lungs, and the slices are paired in order.")
    if days is None:
        notes.append("A study date is missing: the interval between the scans is not known.")
    elif days < 0:
        notes.append("The 'prior' study is the later one: the changes read backwards in time.")
    return Comparison(
        prior_date=dates[0].isoformat() if dates[0] else "", current_date=dates[1].isoformat() if dates[1] else "",
        days=days,
        lesion_ml={s: (float(then.lesion_volume_ml[s]), float(now.lesion_volume_ml[s])) for s in SIDES},
        involvement_percent={s: (float(then.involvement_percent[s]), float(now.involvement_percent[s])) for s in SIDES},
        prior_slice=prior_slices(current, current_result.lung_mask, prior, transform),
        translation_mm=tuple(round(float(v), 2) for v in params[3:6]),
        rotation_deg=tuple(round(float(np.degrees(v)), 2) for v in params[:3]),
        notes=tuple(notes),
    )


def register_lungs(current: Volume, current_lung: np.ndarray, prior: Volume, prior_lung: np.ndarray) -> Any:
    """The rigid SimpleITK transform that maps a current (fixed) point to the prior (moving) study."""
    import SimpleITK as sitk

    fixed = _mask_image(current, current_lung)
    moving = _mask_image(prior, prior_lung)
    return _register_rigid(fixed, moving, sitk.Euler3DTransform)


def _register_rigid(fixed: Any, moving: Any, kind: Any) -> Any:
    """Mean squares between the smoothed masks, from their centres of mass, by regular-step gradient descent."""
    import SimpleITK as sitk

    initial = sitk.CenteredTransformInitializer(fixed, moving, kind(), sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=150)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(initial, inPlace=False)
    return _single(method.Execute(fixed, moving), kind)


def _single(found: Any, kind: Any) -> Any:
    """The one transform of the composite that a registration returns, as ``kind`` (its parameters readable)."""
    while found.GetName() == "CompositeTransform":
        found = found.GetNthTransform(0)
    return kind(found)


def register_in_plane(current: Volume, current_lung: np.ndarray, prior: Volume, prior_lung: np.ndarray) -> Any:
    """For studies of a few slices: the slices with the most lung registered in plane (rotation about z and an
    x/y shift, Euler 2-D), and z moved so that the first slices pair; returned as an Euler 3-D transform."""
    import SimpleITK as sitk

    def plane(volume: Volume, lung: np.ndarray) -> tuple[Any, int]:
        k = int(np.argmax(np.asarray(lung).reshape(lung.shape[0], -1).sum(axis=1)))
        image = sitk.GetImageFromArray((np.asarray(lung[k]) > 0).astype(np.float32))
        image.SetSpacing((float(volume.spacing[2]), float(volume.spacing[1])))
        origin = volume.index_to_lps((k, 0, 0))
        image.SetOrigin((float(origin[0]), float(origin[1])))
        return sitk.SmoothingRecursiveGaussian(image, REGISTRATION_MM), k

    (fixed, _), (moving, _) = plane(current, current_lung), plane(prior, prior_lung)
    found = _register_rigid(fixed, moving, sitk.Euler2DTransform)
    return _as_3d(found, float(prior.index_to_lps((0, 0, 0))[2] - current.index_to_lps((0, 0, 0))[2]))


def _as_3d(in_plane: Any, dz: float) -> Any:
    import SimpleITK as sitk

    out = sitk.Euler3DTransform()
    cx, cy = in_plane.GetCenter()
    out.SetCenter((cx, cy, 0.0))
    out.SetRotation(0.0, 0.0, in_plane.GetAngle())
    tx, ty = in_plane.GetTranslation()
    out.SetTranslation((tx, ty, dz))
    return out


def _mask_image(volume: Volume, lung: np.ndarray) -> Any:
    """The lung mask as a smooth float image at :data:`REGISTRATION_MM`, in the study's physical space."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray((np.asarray(lung) > 0).astype(np.float32))
    image.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
    image.SetOrigin(tuple(float(v) for v in volume.origin))
    image.SetDirection(tuple(float(v) for v in np.asarray(volume.direction, dtype=float).reshape(-1)))
    size = [max(1, int(round(n * s / REGISTRATION_MM))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    image = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                          (REGISTRATION_MM,) * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)
    return sitk.SmoothingRecursiveGaussian(image, REGISTRATION_MM)


def prior_slices(current: Volume, current_lung: np.ndarray, prior: Volume, transform: Any) -> np.ndarray:
    """For each current slice, the prior slice whose position the transform maps its lungs' centre to."""
    n = current.array.shape[0]
    ys, xs = np.nonzero(np.asarray(current_lung).any(axis=0))
    _, ny, nx = current.array.shape
    cy, cx = (float(ys.mean()), float(xs.mean())) if ys.size else (ny / 2, nx / 2)
    out = np.full(n, -1, dtype=np.int64)
    for z in range(n):
        point = transform.TransformPoint(tuple(float(v) for v in current.index_to_lps((z, cy, cx))))
        k = int(round(prior.lps_to_index(point)[0]))
        if 0 <= k < prior.array.shape[0]:
            out[z] = k
    return out


def _date(value: str) -> datetime.date | None:
    try:
        return datetime.datetime.strptime(str(value or "").strip(), "%Y%m%d").date()
    except ValueError:
        return None
