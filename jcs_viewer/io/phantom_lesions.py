"""The demo phantom's vessels (branching trees inside the lungs), COVID-like lesions and image noise.
Internal to :mod:`jcs_viewer.io.phantom`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jcs_viewer.io.phantom_anatomy import (HU_BLOOD, HU_LUNG, LESION_HU_CLIP, LESION_LABELS, LUNG_LABELS, Anatomy,
                                           Geometry)


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


# ----------------------------------------------------------------------------------------------
# Vessels (3-D branching trees inside the lungs)


VESSEL_NODES_PER_LUNG = 700
VESSEL_LEAF_RADIUS_MM = 0.6


def _vessel_segments(an: Anatomy, geo: Geometry, lung: np.ndarray, rng: np.random.Generator):
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


def _random_lung_points(lung, label, n, geo: Geometry, rng) -> np.ndarray:
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


def add_vessels(hu: np.ndarray, lung: np.ndarray, geo: Geometry, an: Anatomy, rng) -> None:
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


def add_lesions(hu, lung, lesion_mask, geo: Geometry, rng, scale: float = 1.0) -> list[LesionSpec]:
    """Place and paint the lesions; ``scale`` grows (> 1) or shrinks them where they are (a follow-up)."""
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
            spec = _paint_lesion(hu, lung, lesion_mask, geo, rng, kind, lung_side, zone, centre, radii * scale)
            if spec.n_voxels:
                specs.append(spec)
                placed.append((centre, float(radii.max())))
                break
    return specs


def _peripheral_pixel(region: np.ndarray, ys, xs, rng, geo: Geometry, depth_mm: float):
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


def add_noise(hu: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
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
