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

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Bump when the generated images change, so cached demo studies are rebuilt.
PHANTOM_VERSION = 2

# The field the default geometry covers: 320 mm along z (128 x 2.5 mm), 358.4 mm in-plane (512 x 0.7 mm).
DEFAULT_Z_EXTENT_MM = 320.0
DEFAULT_FOV_MM = 358.4
# Table position of the middle of the chest (patient z, mm); any plausible value works.
CHEST_CENTRE_Z_MM = -150.0
# Half the cranio-caudal chest extent. Anatomy uses t = (z - centre) / this:
# -1 is below the lung bases, +1 above the apices.
CHEST_HALF_EXTENT_MM = 160.0

LESION_LABELS = {"ground_glass": 1, "consolidation": 2}
LUNG_LABELS = {"right": 1, "left": 2}
# HU ranges of the noise-free lesion voxels (the figures).
LESION_HU_RANGES = {"ground_glass": (-700.0, -300.0), "consolidation": (-100.0, 50.0)}
# Noise-free lesion values are clipped to these, inside the ranges, so noise rarely leaves them.
LESION_HU_CLIP = {"ground_glass": (-670.0, -330.0), "consolidation": (-60.0, 15.0)}

# Tissue values (HU) before noise.
HU_AIR = -1000
HU_FAT = -100
HU_MEDIASTINAL_FAT = -90
HU_MUSCLE = 40
HU_BLOOD = 40
HU_LIVER = 58
HU_SPLEEN = 45
HU_LUNG = -850
HU_CORTICAL_BONE = 700
HU_CANCELLOUS_BONE = 400  # vertebral bodies, sternum
HU_RIB_MARROW = 300
HU_DISC = 90
HU_CSF = 15
HU_TABLE = 120


@dataclass
class LesionSpec:
    """One synthetic lesion.

    Attributes:
        kind: ``"ground_glass"`` or ``"consolidation"``.
        label: value in ``lesion_mask`` (1 ground-glass, 2 consolidation).
        lung: ``"right"`` or ``"left"``.
        zone: ``"upper"``, ``"middle"`` or ``"lower"``.
        centre_mm: LPS position (x, y, z) of the lesion centre in mm.
        radii_mm: semi-axes (x, y, z) of the main lobe in mm (the lesion is a union of lobes).
        mean_hu: intended core density before noise.
        n_voxels: voxels this lesion changed (filled in by :func:`make_phantom`).
        measured_mean_hu: noise-free mean HU of those voxels.
    """

    kind: str
    label: int
    lung: str
    zone: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    mean_hu: float
    n_voxels: int = 0
    measured_mean_hu: float = float("nan")


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

    geo = _Geometry(n_slices, size, spacing, origin)
    anatomy = _Anatomy.draw(rng_anatomy)
    hu = np.empty((n_slices, size, size), dtype=np.int16)
    lung = np.zeros((n_slices, size, size), dtype=np.uint8)
    for k in range(n_slices):
        _paint_slice(hu[k], lung[k], geo, anatomy, geo.z_mm[k])

    _add_vessels(hu, lung, geo, anatomy, rng_vessels)
    lesion_mask = np.zeros_like(lung)
    specs: list[LesionSpec] = []
    if lesions:
        specs = _add_lesions(hu, lung, lesion_mask, geo, rng_lesions)
    _add_noise(hu, noise_sigma, rng_noise)
    return Phantom(
        hu=hu,
        lesion_mask=lesion_mask,
        lung_mask=lung,
        spacing=spacing,
        origin=origin,
        direction=np.eye(3),
        lesions=specs,
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------
# Geometry and per-patient shape parameters


class _Geometry:
    """Voxel-to-mm lookup tables (float32, 1-D; broadcasting builds the grids)."""

    def __init__(self, n_slices: int, size: int, spacing, origin) -> None:
        self.n_slices, self.size = n_slices, size
        self.spacing = spacing
        self.origin = origin
        sz, sy, sx = spacing
        self.x_mm = (origin[0] + sx * np.arange(size)).astype(np.float32)
        self.y_mm = (origin[1] + sy * np.arange(size)).astype(np.float32)
        self.z_mm = origin[2] + sz * np.arange(n_slices)
        self.X = self.x_mm[None, :]
        self.Y = self.y_mm[:, None]

    def t_of_z(self, z_mm: float) -> float:
        return (z_mm - CHEST_CENTRE_Z_MM) / CHEST_HALF_EXTENT_MM

    def z_of_t(self, t: float) -> float:
        return CHEST_CENTRE_Z_MM + t * CHEST_HALF_EXTENT_MM

    def index_box(self, lo_mm, hi_mm):
        """Voxel index slices (z, y, x) covering the LPS box [lo, hi] (x, y, z order in), clipped."""
        sz, sy, sx = self.spacing
        out = []
        for axis, step, n in ((2, sz, self.n_slices), (1, sy, self.size), (0, sx, self.size)):
            a = math.floor((lo_mm[axis] - self.origin[axis]) / step)
            b = math.ceil((hi_mm[axis] - self.origin[axis]) / step) + 1
            out.append(slice(max(a, 0), min(b, n)))
        return tuple(out)


@dataclass
class _Anatomy:
    """Small per-seed variations of the body, so different seeds give different patients."""

    body_a: float
    body_b: float
    body_y: float
    lung_scale: float
    heart_x: float
    dome_right: float
    dome_left: float
    rib_phase: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "_Anatomy":
        return cls(
            body_a=float(rng.uniform(158, 168)),
            body_b=float(rng.uniform(112, 122)),
            body_y=float(rng.uniform(-14, -6)),
            lung_scale=float(rng.uniform(0.95, 1.05)),
            heart_x=float(rng.uniform(16, 28)),
            dome_right=float(rng.uniform(-0.40, -0.32)),
            dome_left=float(rng.uniform(-0.50, -0.42)),
            rib_phase=float(rng.uniform(0, 24)),
        )

    def spine_y(self) -> float:
        return self.body_y + self.body_b - 62.0


def _ellipse(X, Y, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Squared normalised radius ((X-cx)/ax)² + ((Y-cy)/ay)² (float32 grid)."""
    return ((X - np.float32(cx)) * np.float32(1.0 / ax)) ** 2 + ((Y - np.float32(cy)) * np.float32(1.0 / ay)) ** 2


def _window(X, Y, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """Row and column slices of the grid points inside [x0, x1] x [y0, y1] (mm)."""
    xs, ys = X[0], Y[:, 0]
    return (slice(int(np.searchsorted(ys, y0)), int(np.searchsorted(ys, y1, "right"))),
            slice(int(np.searchsorted(xs, x0)), int(np.searchsorted(xs, x1, "right"))))


def _in_ellipse(X, Y, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Boolean grid of the ellipse interior, computed only over its bounding box."""
    out = np.zeros((Y.shape[0], X.shape[1]), dtype=bool)
    rows, cols = _window(X, Y, cx - ax, cx + ax, cy - ay, cy + ay)
    out[rows, cols] = _ellipse(X[:, cols], Y[rows], cx, cy, ax, ay) < 1
    return out


def _near_segment(X, Y, p0, p1, radius: float) -> np.ndarray:
    """Boolean grid of points closer than ``radius`` to the 2-D segment p0-p1."""
    out = np.zeros((Y.shape[0], X.shape[1]), dtype=bool)
    rows, cols = _window(X, Y, min(p0[0], p1[0]) - radius, max(p0[0], p1[0]) + radius,
                         min(p0[1], p1[1]) - radius, max(p0[1], p1[1]) + radius)
    out[rows, cols] = _segment_distance(X[:, cols], Y[rows], p0, p1) < radius
    return out


def _segment_distance(X, Y, p0, p1) -> np.ndarray:
    """Distance (mm) of grid points to the 2-D segment p0-p1."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy or 1e-6
    u = np.clip(((X - p0[0]) * dx + (Y - p0[1]) * dy) / np.float32(length2), 0, 1)
    return np.sqrt((X - p0[0] - u * dx) ** 2 + (Y - p0[1] - u * dy) ** 2)


def _cap(t: float, centre: float, half: float) -> float:
    """Cross-section scale of an ellipsoid at t: 1 at its centre, 0 beyond ``half``."""
    r = (t - centre) / half
    return math.sqrt(1.0 - r * r) if abs(r) < 1.0 else 0.0


def _lung_scale(t: float, anatomy: _Anatomy) -> float:
    """Lung cross-section scale along z: tapers to the apex (t≈0.97); the bases are cut by the domes."""
    if t > 0.97 or t < -1.0:
        return 0.0
    apex = _cap(t, 0.35, 0.62) if t > 0.35 else 1.0
    return anatomy.lung_scale * max(apex, 0.0)


# ----------------------------------------------------------------------------------------------
# One axial slice


def _paint_slice(hu: np.ndarray, lung: np.ndarray, geo: _Geometry, an: _Anatomy, z_mm: float) -> None:
    X, Y = geo.X, geo.Y
    t = geo.t_of_z(z_mm)
    hu[:] = HU_AIR

    # Body: shoulders widen the outline near the apex, the neck narrows it above.
    widen = 1.0 + 0.04 * _cap(t, 0.85, 0.35)
    neck = 1.0 if t < 1.05 else max(0.4, 1.0 - (t - 1.05) * 3)
    a, b, cy = an.body_a * widen * neck, an.body_b * neck, an.body_y
    # Table under the patient: a thin carbon cradle, curving up at the sides.
    table_y = cy + an.body_b + 14.0 - 0.0008 * X**2
    hu[(np.abs(Y - table_y) < 2.0) & (np.abs(X) < 160)] = HU_TABLE

    body = _superellipse(X, Y, 0.0, cy, a, b, 2.4) < 1
    hu[body] = HU_FAT
    muscle = _superellipse(X, Y, 0.0, cy, a - 14, b - 12, 2.4) < 1
    hu[muscle] = HU_MUSCLE
    # Thoracic cavity inside the rib cage; below the chest it is the abdominal cavity.
    # The rib cage narrows towards the apex while the shoulders keep the body wide.
    taper = min(max((t + 0.1) / 1.0, 0.0), 1.0)
    cage_a, cage_b = a * (1.0 - 0.16 * taper), b * (1.0 - 0.06 * taper)
    cav_a, cav_b, cav_y = cage_a - 34.0, cage_b - 30.0, cy - 4.0
    cavity = _superellipse(X, Y, 0.0, cav_y, cav_a, cav_b, 2.2) < 1
    yv = an.spine_y()
    spine_block = _in_ellipse(X, Y, 0.0, yv + 8, 30, 40)
    cavity &= ~spine_block
    hu[cavity] = HU_MEDIASTINAL_FAT

    # Diaphragm domes: below them (per pixel) is the abdomen, above is the chest.
    dome_r = an.dome_right - 0.55 * _ellipse(X, Y, -60.0, cy - 15, 95, 115)
    dome_l = an.dome_left - 0.55 * _ellipse(X, Y, 60.0, cy - 15, 95, 115)
    dome = np.where(X < 0, dome_r, dome_l)
    abdomen = cavity & (t < dome)
    hu[abdomen & (X < 25)] = HU_LIVER
    hu[abdomen & (X >= 25)] = HU_SPLEEN

    # Mediastinal organs (all blood/soft tissue ~ +40 without contrast).
    organs = np.zeros_like(body)
    hs = _cap(t, -0.38, 0.36)
    if hs > 0:
        heart = _in_ellipse(X, Y, an.heart_x, cy - 22, 62 * hs, 50 * hs)
        organs |= heart
    if -0.85 < t < 0.62:  # descending aorta, left-anterior of the spine
        organs |= _in_ellipse(X, Y, 22.0, yv - 26, 12, 12)
    if -0.05 < t < 0.58:  # ascending aorta
        organs |= _in_ellipse(X, Y, -14.0, cy - 32, 15, 15)
    if 0.52 < t < 0.64:  # aortic arch
        organs |= _near_segment(X, Y, (-14.0, cy - 32), (22.0, yv - 26), 12)
    if 0.12 < t < 0.36:  # pulmonary trunk and arteries to the hila
        organs |= _in_ellipse(X, Y, 16.0, cy - 38, 13, 13)
        if t > 0.2:
            organs |= _near_segment(X, Y, (16.0, cy - 38), (48.0, cy - 6), 8)
            organs |= _near_segment(X, Y, (16.0, cy - 38), (-48.0, cy - 6), 8)
    if 0.2 < t < 0.9:  # superior vena cava
        organs |= _in_ellipse(X, Y, -32.0, cy - 30, 10, 10)
    if t > -0.6:  # oesophagus
        organs |= _in_ellipse(X, Y, 6.0, yv - 30, 7, 6)
    organs &= cavity
    hu[organs] = HU_BLOOD

    # Lungs: ellipses clipped by the cavity, the mediastinum and the domes.
    s = _lung_scale(t, an)
    keep_out = spine_block | (np.abs(X) < 14) | (_in_ellipse(X, Y, 0.0, yv - 26, 38, 22))
    if s > 0:
        keep_out = keep_out | _grow(organs, max(1, round(2.5 / geo.spacing[2])))
        apex_shift = 25.0 * max(0.0, t - 0.45)  # apices sit posteriorly
        for side, cx in (("right", -72.0), ("left", 72.0)):
            region = _in_ellipse(X, Y, cx, cy + 6 + apex_shift, 64 * s, 96 * s) & cavity & ~keep_out & (t > dome)
            lung[region] = LUNG_LABELS[side]
        # Gravity-dependent density: posterior lung is slightly denser.
        in_lung = lung > 0
        gradient = (HU_LUNG + 40.0 * (Y - cy) / np.float32(2 * b)).astype(np.float32)
        hu[in_lung] = np.broadcast_to(gradient, hu.shape)[in_lung]

    # Airways: trachea above the carina, main bronchi below it.
    if t > 0.40:
        _tube(hu, X, Y, (0.0, yv - 48), 10.0, 2.0)
    elif t > 0.2:
        f = (0.40 - t) / 0.20
        for sign in (-1, 1):
            _tube(hu, X, Y, (sign * (6 + 34 * f), yv - 48 + 20 * f), 7.0, 1.5)

    _paint_bones(hu, X, Y, t, z_mm, an, cage_a, cage_b, cy, yv)
    # Bones and airway walls painted over the lung edge are not lung.
    lung[hu > HU_LUNG + 150] = 0


def _superellipse(X, Y, cx: float, cy: float, ax: float, ay: float, p: float) -> np.ndarray:
    return np.abs((X - np.float32(cx)) / np.float32(ax)) ** p + np.abs((Y - np.float32(cy)) / np.float32(ay)) ** p


def _grow(organs: np.ndarray, r: int) -> np.ndarray:
    """``organs`` grown by ``r`` pixels along rows and columns (the fat/pleura between organ and lung)."""
    grown = organs.copy()
    grown[r:, :] |= organs[:-r, :]
    grown[:-r, :] |= organs[r:, :]
    grown[:, r:] |= organs[:, :-r]
    grown[:, :-r] |= organs[:, r:]
    return grown


def _tube(hu: np.ndarray, X, Y, centre, radius: float, wall: float) -> None:
    hu[_in_ellipse(X, Y, centre[0], centre[1], radius + wall, radius + wall)] = HU_MUSCLE
    hu[_in_ellipse(X, Y, centre[0], centre[1], radius, radius)] = HU_AIR


def _paint_bones(hu, X, Y, t, z_mm, an: _Anatomy, a, b, cy, yv) -> None:
    """Ribs, sternum, spine and scapulae; ``a``, ``b`` are the rib cage's outer semi-axes."""
    if t < -1.2 or t > 1.1:
        return
    # Ribs: a band of the chest wall; each rib descends from the spine towards the front, so an axial
    # slice cuts several rib segments. Bone where the wall point's rib phase falls inside a rib.
    outer = _superellipse(X, Y, 0.0, cy, a - 21, b - 19, 2.4)
    inner = _superellipse(X, Y, 0.0, cy, a - 28, b - 26, 2.4)
    ring = (outer < 1) & (inner >= 1)
    ring &= ~((np.abs(X) < 26) & (Y < cy))  # costal cartilage / sternum gap at the front
    ring &= ~((np.abs(X) < 34) & (Y > cy))  # spine at the back
    iy, ix = np.nonzero(ring)
    if iy.size:
        ys = Y[iy, 0]
        posterior = (ys - cy) / np.float32(b)  # -1 front .. +1 back
        pitch, height = 24.0, 10.0
        phase = np.mod(z_mm + an.rib_phase + 90.0 * (1.0 - posterior), pitch)
        rib = phase < height
        edge_z = np.minimum(phase, height - phase)
        radial = -np.maximum(outer[iy, ix] - 1.0, 1.0 - inner[iy, ix])  # > 0 inside the band, 0 at its edges
        core = (edge_z > 2.0) & (radial > 0.06)
        hu[iy[rib], ix[rib]] = HU_CORTICAL_BONE
        hu[iy[rib & core], ix[rib & core]] = HU_RIB_MARROW
    # Sternum.
    if -0.65 < t < 0.8:
        hu[_in_ellipse(X, Y, 0.0, cy - b + 22, 15, 7)] = HU_CORTICAL_BONE
        hu[_in_ellipse(X, Y, 0.0, cy - b + 22, 10, 4.7)] = HU_CANCELLOUS_BONE
    # Spine: vertebral bodies with discs every 26 mm, canal, arch, spinous and transverse processes.
    phase = (z_mm + 3.0 * an.rib_phase) % 26.0
    if phase < 5.0:
        hu[_in_ellipse(X, Y, 0.0, yv, 20, 17)] = HU_DISC
    else:
        hu[_in_ellipse(X, Y, 0.0, yv, 20, 17)] = HU_CORTICAL_BONE
        hu[_in_ellipse(X, Y, 0.0, yv, 16.7, 14.2)] = HU_CANCELLOUS_BONE
    arch = _in_ellipse(X, Y, 0.0, yv + 28, 16, 16) & (Y > yv + 16)
    hu[arch] = HU_CORTICAL_BONE
    hu[_in_ellipse(X, Y, 0.0, yv + 28, 9, 9)] = HU_CSF
    spinous = (np.abs(X) < 4) & (Y > yv + 40) & (Y < yv + 60)
    hu[spinous] = HU_CORTICAL_BONE
    if 8.0 < phase < 18.0:  # transverse processes, pointing back and out
        for sign in (-1, 1):
            hu[_near_segment(X, Y, (sign * 12.0, yv + 20), (sign * 30.0, yv + 30), 3.5)] = HU_CORTICAL_BONE
    # Scapulae: thin plates just outside the posterolateral upper rib cage.
    if t > 0.15:
        plate = (_superellipse(X, Y, 0.0, cy, a - 14, b - 12, 2.4) < 1) & (
            _superellipse(X, Y, 0.0, cy, a - 18, b - 16, 2.4) >= 1
        )
        plate &= (Y > cy + 0.2 * b) & (Y < cy + 0.8 * b) & (np.abs(X) > 55)
        hu[plate] = HU_CORTICAL_BONE


# ----------------------------------------------------------------------------------------------
# Vessels (3-D branching trees inside the lungs)


VESSEL_NODES_PER_LUNG = 700
VESSEL_LEAF_RADIUS_MM = 0.6


def _vessel_segments(an: _Anatomy, geo: _Geometry, lung: np.ndarray, rng: np.random.Generator):
    """Segments (p0, p1, radius) in LPS mm of one space-filling tree per lung.

    Random points inside the lung join the tree nearest-the-hilum first: each branches off
    the closest existing segment, a little upstream of its nearest point so that branches
    leave at acute angles. A segment's radius grows with the number of points it feeds
    (Murray-like exponent), so vessels thin towards the periphery.
    """
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    for side, label in LUNG_LABELS.items():
        sign = -1.0 if side == "right" else 1.0
        hilum = np.array([sign * 50.0, an.body_y - 4.0, geo.z_of_t(0.22)])
        points = _random_lung_points(lung, label, VESSEL_NODES_PER_LUNG, geo, rng)
        if len(points) < 2:
            continue
        points = points[np.argsort(np.linalg.norm((points - hilum) * (1, 1, 0.7), axis=1))]
        n = len(points)
        starts, ends = np.empty((n, 3)), points
        parent = np.full(n, -1)
        starts[0] = hilum
        for i in range(1, n):
            s0, vec = starts[:i], ends[:i] - starts[:i]
            length2 = np.maximum(np.einsum("ij,ij->i", vec, vec), 1e-9)
            u = np.clip(np.einsum("ij,ij->i", points[i] - s0, vec) / length2, 0, 1)
            dist = np.linalg.norm(s0 + u[:, None] * vec - points[i], axis=1)
            j = int(np.argmin(dist))
            u_attach = max(u[j] - 0.7 * dist[j] / math.sqrt(length2[j]), 0.0)
            starts[i] = starts[j] + u_attach * vec[j]
            parent[i] = j
        fed = np.ones(n)
        for i in range(n - 1, 0, -1):
            fed[parent[i]] += fed[i]
        for i in range(n):
            segments.append((starts[i], ends[i], float(VESSEL_LEAF_RADIUS_MM * fed[i] ** (1 / 2.7))))
    return segments


def _random_lung_points(lung, label, n, geo: _Geometry, rng) -> np.ndarray:
    """Up to ``n`` LPS points (mm) uniformly inside the lung labelled ``label``."""
    zs = np.flatnonzero(np.any(lung == label, axis=(1, 2)))
    if zs.size == 0:
        return np.zeros((0, 3))
    out: list[np.ndarray] = []
    for _ in range(50):
        k = rng.integers(zs[0], zs[-1] + 1, size=4 * n)
        j = rng.integers(0, geo.size, size=4 * n)
        i = rng.integers(0, geo.size, size=4 * n)
        ok = lung[k, j, i] == label
        out.append(np.stack([geo.x_mm[i[ok]], geo.y_mm[j[ok]], geo.z_mm[k[ok]]], axis=1))
        if sum(len(o) for o in out) >= n:
            break
    return np.concatenate(out)[:n].astype(float)


def _add_vessels(hu: np.ndarray, lung: np.ndarray, geo: _Geometry, an: _Anatomy, rng) -> None:
    """Paint the vessel trees into the lungs at blood density, with partial volume.

    A voxel's vessel fraction is averaged over a few sub-planes across its slice
    thickness and blurred over one pixel in-plane, so thin vessels fade in thick slices
    instead of being smeared through them.
    """
    sz, sy, sx = geo.spacing
    pixel = max(sx, sy)
    n_sub = int(min(max(math.ceil(sz / pixel), 1), 8))
    sub = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * sz  # sub-plane offsets within a slice (mm)
    for p0, p1, radius in _vessel_segments(an, geo, lung, rng):
        d = (p1 - p0).astype(np.float32)
        length2 = float(d @ d)
        if length2 < 1e-6:
            continue
        reach = radius + pixel + sz / 2
        box = geo.index_box(np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach)
        if any(s.stop <= s.start for s in box):
            continue
        lung_box = lung[box] > 0
        if not lung_box.any():
            continue
        yy = (geo.y_mm[box[1]] - np.float32(p0[1]))[None, :, None]
        xx = (geo.x_mm[box[2]] - np.float32(p0[0]))[None, None, :]
        w = np.zeros(lung_box.shape, dtype=np.float32)
        for offset in sub:
            zz = (geo.z_mm[box[0]] + offset - p0[2]).astype(np.float32)[:, None, None]
            u = np.clip((xx * d[0] + yy * d[1] + zz * d[2]) * np.float32(1.0 / length2), 0, 1)
            dist = np.sqrt((xx - u * d[0]) ** 2 + (yy - u * d[1]) ** 2 + (zz - u * d[2]) ** 2)
            w += np.clip((np.float32(radius) - dist) * np.float32(1.0 / pixel) + np.float32(0.5), 0, 1)
        w *= np.float32(1.0 / n_sub)
        inside = (w > 0.02) & lung_box
        if not inside.any():
            continue
        hu_box = hu[box]
        value = np.rint(HU_LUNG + w[inside] * (HU_BLOOD - HU_LUNG)).astype(np.int16)
        hu_box[inside] = np.maximum(hu_box[inside], value)


# ----------------------------------------------------------------------------------------------
# Lesions


_ZONES = {"upper": (0.42, 0.68), "middle": (0.05, 0.35), "lower": (-0.42, -0.05)}


def _lesion_plan(rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(lung, zone, kind) for each lesion: every zone of both lungs, ground-glass predominant."""
    plan = []
    for lung_side in ("right", "left"):
        for zone in ("upper", "middle", "lower"):
            plan.append((lung_side, zone, "ground_glass"))
    # Consolidations in two of the lower/middle zones plus one extra peripheral ground-glass.
    plan.append(("right", "lower", "consolidation"))
    plan.append((str(rng.choice(["left", "right"])), "middle", "consolidation"))
    plan.append((str(rng.choice(["left", "right"])), str(rng.choice(["lower", "middle"])), "ground_glass"))
    return plan


def _add_lesions(hu, lung, lesion_mask, geo: _Geometry, rng) -> list[LesionSpec]:
    sz, sy, sx = geo.spacing
    specs: list[LesionSpec] = []
    placed: list[tuple[np.ndarray, float]] = []
    for lung_side, zone, kind in _lesion_plan(rng):
        label = LUNG_LABELS[lung_side]
        for _attempt in range(40):
            t = rng.uniform(*_ZONES[zone])
            k = int(round((geo.z_of_t(t) - geo.origin[2]) / sz))
            if not 0 <= k < geo.n_slices:
                break
            ys, xs = np.nonzero(lung[k] == label)
            if ys.size < 50:
                break
            if kind == "ground_glass":
                radii = np.array([rng.uniform(14, 28), rng.uniform(14, 28), rng.uniform(10, 22)])
                # Subpleural: centre a few mm inside the lung edge, posterior half preferred.
                pick = _peripheral_pixel(lung[k] == label, ys, xs, rng, geo, depth_mm=0.5 * radii[:2].min())
            else:
                radii = np.array([rng.uniform(7, 14), rng.uniform(7, 14), rng.uniform(6, 12)])
                pick = _peripheral_pixel(lung[k] == label, ys, xs, rng, geo, depth_mm=radii[:2].min())
            if pick is None:
                continue
            centre = np.array([geo.x_mm[pick[1]], geo.y_mm[pick[0]], geo.z_mm[k]], dtype=float)
            if any(np.linalg.norm(centre - c) < r + radii.max() + 6 for c, r in placed):
                continue
            spec = _paint_lesion(hu, lung, lesion_mask, geo, rng, kind, lung_side, zone, centre, radii)
            if spec.n_voxels:
                specs.append(spec)
                placed.append((centre, float(radii.max())))
                break
    return specs


def _peripheral_pixel(region: np.ndarray, ys, xs, rng, geo: _Geometry, depth_mm: float):
    """A random pixel of ``region`` that lies about ``depth_mm`` inside its edge (outward along x)."""
    for _ in range(30):
        i = int(rng.integers(ys.size))
        y, x = int(ys[i]), int(xs[i])
        cx = int(xs.mean())
        step = 1 if x >= cx else -1  # towards the chest wall
        probe = x + step * int(round(depth_mm / geo.spacing[2]))
        if 0 <= probe < region.shape[1] and not region[y, probe]:
            if rng.random() < 0.35 or geo.y_mm[y] > geo.y_mm[int(ys.mean())]:
                return y, x
    return None


def _paint_lesion(hu, lung, lesion_mask, geo, rng, kind, lung_side, zone, centre, radii) -> LesionSpec:
    """Soft-edged, lobulated blob; HU graded from the edge to the core.

    Noise-free values stay inside the kind's range with a margin of about 3 noise sigmas
    where the range allows, so that the noisy study stays (nearly) within it too.
    """
    if kind == "ground_glass":
        core_hu = float(rng.uniform(-540, -380))
        edge_hu = -640.0
    else:
        core_hu = float(rng.uniform(-20, 5))
        edge_hu = -40.0
    lobes = [(centre, radii)]
    for _ in range(int(rng.integers(2, 5))):
        offset = rng.normal(size=3) * radii * 0.55
        lobes.append((centre + offset, radii * rng.uniform(0.45, 0.75, size=3)))
    extent = max(float(np.max(np.abs(c - centre) + r)) for c, r in lobes)
    box = geo.index_box(centre - extent, centre + extent)
    zz = geo.z_mm[box[0]].astype(np.float32)[:, None, None]
    yy = geo.y_mm[box[1]][None, :, None]
    xx = geo.x_mm[box[2]][None, None, :]
    # Soft membership: 1 at a lobe centre, 0 at its surface; union = max over lobes.
    weight = np.zeros((zz.shape[0], yy.shape[1], xx.shape[2]), dtype=np.float32)
    for c, r in lobes:
        q = ((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((zz - c[2]) / r[2]) ** 2
        np.maximum(weight, 1.0 - q, out=weight)
    label = LUNG_LABELS[lung_side]
    # Lesions never overlap: a voxel belongs to the first lesion that reached it.
    region = (weight > 0) & (lung[box] == label) & (lesion_mask[box] == 0)
    smooth = np.sqrt(np.clip(weight, 0, 1))  # rises fast at the edge, flat in the core
    # Patchy density: a few random plane waves (period 10-25 mm).
    texture = np.zeros_like(weight)
    amplitude = 45.0 if kind == "ground_glass" else 12.0
    for _ in range(3):
        k = rng.normal(size=3)
        k *= 2 * math.pi / (np.linalg.norm(k) * rng.uniform(10, 25))
        phase = rng.uniform(0, 2 * math.pi)
        texture += np.cos(np.float32(k[0]) * xx + np.float32(k[1]) * yy + np.float32(k[2]) * zz + np.float32(phase))
    target = edge_hu + (core_hu - edge_hu) * smooth + np.float32(amplitude / 3) * texture * smooth
    target = np.clip(target, *LESION_HU_CLIP[kind])
    target = np.rint(target).astype(np.int16)
    hu_box = hu[box]
    old = hu_box.copy()
    if kind == "ground_glass":
        # Vessels stay visible through ground glass: never darken a voxel.
        new = np.where(region, np.maximum(old, target), old)
    else:
        new = np.where(region, target, old)
    changed = new != old
    hu_box[...] = new
    lesion_mask[box][changed] = LESION_LABELS[kind]
    spec = LesionSpec(
        kind=kind,
        label=LESION_LABELS[kind],
        lung=lung_side,
        zone=zone,
        centre_mm=tuple(round(float(v), 2) for v in centre),
        radii_mm=tuple(round(float(v), 2) for v in radii),
        mean_hu=round(core_hu, 1),
        n_voxels=int(changed.sum()),
        measured_mean_hu=round(float(new[changed].mean()), 1) if changed.any() else float("nan"),
    )
    return spec


# ----------------------------------------------------------------------------------------------
# Noise


def _add_noise(hu: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """Add mildly correlated Gaussian noise (2x2 box-filtered white noise, rescaled to ``sigma``), clip to CT range."""
    if sigma <= 0:
        return
    n, h, w = hu.shape
    for k in range(n):
        white = rng.standard_normal((h + 1, w + 1), dtype=np.float32)
        # Averaging 4 neighbours halves the std; scale by 2 so the result has std = sigma.
        noise = white[:-1, :-1] + white[1:, :-1] + white[:-1, 1:] + white[1:, 1:]
        noise *= np.float32(sigma / 2.0)
        sl = hu[k].astype(np.float32)
        sl += noise
        np.clip(sl, -1024, 3071, out=sl)
        hu[k] = np.rint(sl).astype(np.int16)


# ----------------------------------------------------------------------------------------------
# Demo study on disk


def write_demo_study(
    out_dir: str | os.PathLike,
    n_slices: int = 128,
    seed: int = 0,
    lesions: bool = True,
    size: int = 512,
    spacing: tuple[float, float, float] | None = None,
) -> Path:
    """Generate the phantom and write it as a DICOM series with NIfTI ground truth.

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
    phantom = make_phantom(n_slices=n_slices, size=size, seed=seed, lesions=lesions, spacing=spacing)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=out_dir))
    except OSError as exc:
        raise ExportError(f"Cannot write the demo study to {out_dir}: {exc.strerror or exc}.") from exc
    try:
        _write_study_files(phantom, staging, lesions)
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


def _write_study_files(phantom: Phantom, root: Path, lesions: bool) -> None:
    import json

    from jcs_viewer.io.dicom_writer import derive_uid, write_dicom_series, write_mask_nifti
    from jcs_viewer.io.volume import StudyInfo

    seed = phantom.seed
    tag = "lesions" if lesions else "lesion-free"
    study_uid = derive_uid("demo-study", PHANTOM_VERSION, seed, tag)
    info = StudyInfo(
        patient_name="DEMO^PHANTOM",
        patient_id=f"JCSDEMO{seed:05d}",
        sex="O",
        study_uid=study_uid,
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
