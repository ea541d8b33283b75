"""The demo phantom's anatomy: geometry tables, per-patient shape parameters and the painting of one axial
slice (body, bones, mediastinum, lungs, domes with liver and spleen). Internal to :mod:`jcs_viewer.io.phantom`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


# ----------------------------------------------------------------------------------------------
# Geometry and per-patient shape parameters


class Geometry:
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
class Anatomy:
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
    def draw(cls, rng: np.random.Generator) -> "Anatomy":
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


def _lung_scale(t: float, anatomy: Anatomy) -> float:
    """Lung cross-section scale along z: tapers to the apex (t≈0.97); the bases are cut by the domes."""
    if t > 0.97 or t < -1.0:
        return 0.0
    apex = _cap(t, 0.35, 0.62) if t > 0.35 else 1.0
    return anatomy.lung_scale * max(apex, 0.0)


# ----------------------------------------------------------------------------------------------
# One axial slice


def paint_slice(hu: np.ndarray, lung: np.ndarray, geo: Geometry, an: Anatomy, z_mm: float) -> None:
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


def _paint_bones(hu, X, Y, t, z_mm, an: Anatomy, a, b, cy, yv) -> None:
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
