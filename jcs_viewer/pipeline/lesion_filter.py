"""Where a lesion can be in an HU study, by density and shape: the gate applied to the AI's lesions.

COVID-19 lesions are ground-glass opacity (hazy attenuation above normal lung, from about -750 HU)
and consolidation (soft-tissue density). What the segmenter also paints on real CT without disease
is normal or emphysematous lung (-850 HU and below), and vessels, fissures and bronchial walls:
dense but thin. So, on HU studies only:

- density: the local mean HU (``SMOOTH_MM`` box) must be at least ``MIN_LESION_HU``;
- shape: dense structures (local mean above ``DENSE_HU``) thinner than ``THIN_MM`` (removed by an
  in-plane opening) are not lesion. Consolidation is dense and broad and survives the opening; the
  vessels running through a ground-glass area are left out of it, as a reader outlining it would,
  together with their partial-volume shell (``HALO_MM``, at least one pixel), whose density is that of
  ground glass. Only where the surroundings (``CONTEXT_MM``) are aerated (below ``CONTEXT_HU``): within
  a consolidation the dense strands between air bronchograms are lesion;
- through-plane partial volume: where a slice cuts an organ's surface obliquely (the heart's border, a
  diaphragm dome), lying between that organ in one neighbouring slice and lighter lung in the other, the
  slab's average has ground-glass density and is not lesion (:func:`through_plane_partial_volume`).

Non-HU studies have no absolute density, so they get no gate.
"""

from __future__ import annotations

import numpy as np

MIN_LESION_HU = -750.0
DENSE_HU = -300.0
SMOOTH_MM = 3.0
THIN_MM = 6.0
HALO_MM = 2.0
CONTEXT_MM = 12.0
CONTEXT_HU = -600.0


def lesion_gate(slices: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """``bool (N, H, W)``: where lesions are accepted in these HU slices."""
    import cv2

    from jcs_viewer.pipeline.morphology import dilate_xy, erode_xy

    px = min(float(pixel_mm[0]), float(pixel_mm[1]))
    k = _pixels(SMOOTH_MM, pixel_mm)
    smooth = np.stack([cv2.blur(s.astype(np.float32), (k, k)) for s in slices])
    gate = smooth >= MIN_LESION_HU
    dense = smooth >= DENSE_HU
    radius = max(1, int(round(THIN_MM / 2.0 / px)))
    broad = dilate_xy(erode_xy(dense, radius), radius)  # opening: what is at least THIN_MM across
    thin = dense & ~broad
    # The partial-volume shell around a vessel has ground-glass density: it goes with the vessel.
    vessels = dilate_xy(thin, max(1, int(round(HALO_MM / px))))
    # Only in aerated surroundings: inside consolidation the dense strands between air bronchograms
    # are lesion, not vessels.
    c = max(1, int(round(CONTEXT_MM / px)))
    aerated = np.stack([cv2.blur(s.astype(np.float32), (c, c)) for s in slices]) < CONTEXT_HU
    gate &= ~(vessels & aerated)
    return gate


#: Through-plane partial volume: tissue outside the lungs at this level (smoothed mean at least ``ORGAN_HU``) ...
ORGAN_HU = -300.0
#: ... in the slice on one side, and lung lighter by at least ``RAMP_HU`` in the slice on the other.
RAMP_HU = 50.0
#: ... and the organ's side denser than this slice by at least ``DENSER_HU`` (not a lesion as dense on both sides)
DENSER_HU = 20.0


def through_plane_partial_volume(image: np.ndarray, lung_mask: np.ndarray, idx, pixel_mm: tuple[float, float]
                                 ) -> np.ndarray:
    """``bool (len(idx), H, W)``: where slices ``idx`` of an HU volume average an organ's surface with lung.

    A slice cuts the heart's border, a diaphragm dome or the chest wall obliquely: where the slice on one side
    holds the organ (tissue outside the lung mask) and the slice on the other side lung lighter than this one,
    or the organ again (a wedge of lung between two organs), the slab averages the two into ground-glass
    density, on a band as wide as the organ's surface rises across one slice. On thick slices that band reads
    as subpleural ground glass: the real lesion-free chest crop averaged into 4.5 mm slices was called positive
    with 14.3 mL of lesion by the heart and the domes (2.3 mL with this rule; 1.9 mL at its own 1.5 mm before).
    The organ's side must be denser than this slice, so a consolidation the lung mask misses, as dense here as
    on both sides, is kept. A lesion is cut at most where an organ lies on one side and lighter lung on the other;
    one that continues as densely into the next slice is kept. The first and last slices, without both
    neighbours, are not judged.
    """
    import cv2

    idx = np.asarray(idx, dtype=int)
    n = image.shape[0]
    out = np.zeros((len(idx),) + image.shape[1:], dtype=bool)
    if n < 3:
        return out
    k = _pixels(SMOOTH_MM, pixel_mm)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def smooth_and_organ(z: int) -> tuple[np.ndarray, np.ndarray]:
        if z not in cache:
            smooth = cv2.blur(image[z].astype(np.float32), (k, k))
            cache[z] = (smooth, (smooth >= ORGAN_HU) & (lung_mask[z] == 0))
        return cache[z]

    for i, z in enumerate(idx):
        if 0 < z < n - 1:
            here = smooth_and_organ(z)[0]
            before, organ_before = smooth_and_organ(z - 1)
            after, organ_after = smooth_and_organ(z + 1)
            # the organ's side denser than this slice, the other side lighter or the organ again: a mixture
            denser_before = organ_before & (before >= here + DENSER_HU)
            denser_after = organ_after & (after >= here + DENSER_HU)
            out[i] = ((denser_before & (denser_after | (after <= here - RAMP_HU)))
                      | (denser_after & (before <= here - RAMP_HU)))
    return out


def _pixels(mm: float, pixel_mm: tuple[float, float]) -> int:
    """A length in whole pixels of the finer in-plane axis, at least one."""
    return max(1, int(round(mm / min(float(pixel_mm[0]), float(pixel_mm[1])))))
