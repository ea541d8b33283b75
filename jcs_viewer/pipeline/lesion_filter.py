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
  a consolidation the dense strands between air bronchograms are lesion.

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
    k = max(1, int(round(SMOOTH_MM / px)))
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
