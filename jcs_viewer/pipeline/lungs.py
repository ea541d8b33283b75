"""Lung mask from a CT volume: 0 outside, 1 right lung, 2 left lung.

Steps (HU volumes):

1. Air: voxels below -320 HU (between aerated lung, about -850, and soft tissue).
2. Outside air removed: 3-D air components that touch the in-plane image border (room air,
   air under the table). If that removes every lung-sized component (a lung touching the
   field-of-view edge, or the airway open to room air through the mouth), it is redone slice
   by slice.
3. Lungs: the largest remaining component, plus the second largest when it is at least
   ``SECOND_LUNG_FRACTION`` of the largest; anything below ``MIN_LUNG_ML`` (or 0.5 % of the
   image for very few slices) is dropped
   (trachea, main bronchi and bowel gas are separate, smaller components). When both lungs
   form one component (joined at the anterior junction or through the airways), each slice is
   cut at the column of least lung tissue in the middle of the component.
4. Airways: the trachea and main bronchi are found and removed (:mod:`jcs_viewer.pipeline.airways`).
   Right/left: the lung whose centroid has the lower patient (LPS) x is the right lung.
5. Each lung is closed in-plane (``CLOSING_MM`` square) and its holes filled slice by slice, so
   vessels, airway walls and lesions inside the lungs (consolidation included) are lung; lesions
   on the pleura are added afterwards by :func:`include_lesions` from the AI mask.

Non-HU volumes (8-bit slice stacks, ``is_hu=False``) have no fixed air threshold: candidate
thresholds from just above black up to Otsu's (dark air/lung vs bright tissue), each with an
in-plane "sealing" erosion of 0/3/6 mm that closes gaps in a chest wall nearly as dark as the
lungs, are tried in that order and the first giving a plausible amount of lung is used (see
:func:`_search_dark_parameters`). Sealed lungs may break into pieces along z, so every large
piece is kept and the union is split into right/left at the midline. This is an approximation:
in a soft-tissue window, fat next to the lungs can be included. With the learned lungs, what they do
not call lung is cut away; lesions that continue past the lungs join them in :func:`include_lesions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jcs_viewer.pipeline.morphology import (
    CHUNK_SLICES,
    bounding_box,
    close_xy,
    components_touching,
    dilate_xy,
    fill_holes_xy,
    label_sizes,
)

AIR_HU = -320
MIN_LUNG_ML = 20.0
SECOND_LUNG_FRACTION = 0.2
FRAGMENT_FRACTION = 0.1
CLOSING_MM = 3.0
#: learned lung probability (0..255) from which a voxel counts as lung.
LEARNED_CUT = 128
#: share of an air component the learned mask must call lung for it to be a lung.
CONFIRM_FRACTION = 0.5
#: an HU air component with more than ``GAS_FRACTION`` of its voxels below ``GAS_HU`` is gas, not lung.
GAS_HU = -950
GAS_FRACTION = 0.5
#: hole regions at least this large (mm^2 in one slice) are tested by the dome rule.
DOME_MIN_MM2 = 300.0
RIGHT, LEFT = 1, 2
#: HU below this are no tissue and no air (air reads -1000, scanners clip at -1024): the padding a scanner writes
#: outside its reconstruction circle (-2000, -3024), which is dark like air and joins the air outside the body.
PADDING_BELOW_HU = -1024


def compute_lung_mask(
    volume_or_array: Any,
    spacing: tuple[float, float, float] | None = None,
    *,
    is_hu: bool | None = None,
    direction: np.ndarray | None = None,
    learned: np.ndarray | None = None,
) -> np.ndarray:
    """Segment the lungs.

    Args:
        volume_or_array: a :class:`~jcs_viewer.io.volume.Volume` or an ``(z, y, x)`` array.
        spacing: voxel size (z, y, x) in mm (arrays only).
        is_hu: whether values are HU (arrays only; default True).
        direction: 3x3 direction matrix (arrays only; default identity, low x = patient right).
        learned: optional ``uint8 (z, y, x)`` lung probability (0..255) of the learned lung
            segmenter on the same grid. With it, air components it does not call lung (bowel and
            stomach gas) are dropped, dense lung it connects to the aerated lung is added
            (consolidation, dependent density) and only the holes it calls lung are filled.

    Returns:
        ``uint8 (z, y, x)``: 0 none, 1 right lung, 2 left lung (all zeros when no lung is found).
    """
    if hasattr(volume_or_array, "array"):
        image = volume_or_array.array
        spacing = volume_or_array.spacing
        is_hu = volume_or_array.is_hu
        direction = volume_or_array.direction
    else:
        image = np.asarray(volume_or_array)
        if spacing is None:
            raise ValueError("spacing is required for a bare array")
    is_hu = True if is_hu is None else is_hu
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    outside = outside_reconstruction(image) if is_hu else None
    if outside is not None:
        framed = _inside_padding_frame(outside)
        if framed is not None:  # padding all round (a resampled volume): the frame's edge is the image's edge
            out = np.zeros(image.shape, dtype=np.uint8)
            out[framed] = compute_lung_mask(image[framed], spacing, is_hu=True, direction=direction,
                                            learned=None if learned is None else learned[framed])
            return out
    dz, dy, dx = (float(s) for s in spacing)
    voxel_ml = dz * dy * dx / 1000.0

    # 20 mL, or 0.5 % of the image for a few thin slices (a single 2-D slice has no 20 mL lung).
    min_voxels = min(MIN_LUNG_ML / voxel_ml, 0.005 * image.size)
    if is_hu:
        labels, lungs = _find_lungs(image, AIR_HU, 0, min_voxels, learned, is_hu=True)
    else:
        threshold, radius_px = _search_dark_parameters(image, spacing, min_voxels)
        labels, lungs = _find_lungs(image, threshold, radius_px, min_voxels, learned)
    if not lungs:
        return np.zeros(image.shape, dtype=np.uint8)
    airways = _remove_airways(labels, lungs, image, spacing, direction) if is_hu else None

    mask = np.zeros(image.shape, dtype=np.uint8)
    if len(lungs) == 2 and _side_by_side(labels == lungs[0], labels == lungs[1]):
        cx = [_lps_x_of_centroid(labels == lab, direction) for lab in lungs]
        right_lab, left_lab = (lungs[0], lungs[1]) if cx[0] < cx[1] else (lungs[1], lungs[0])
        mask[labels == right_lab] = RIGHT
        mask[labels == left_lab] = LEFT
    else:
        # One component, or two that are not a left/right pair (e.g. cut apart along z).
        _split_single(_any_of(labels, lungs), mask, direction)
    del labels
    if learned is not None:
        dense = learned >= LEARNED_CUT
        if is_hu:
            # Pure gas (bowel, outside the body) is never added; the air inside consolidation (air bronchograms, a
            # partial-volume seam between the dense lobe and the aerated lung) is, or it cuts the dense lobe off.
            dense &= image >= GAS_HU
        _add_dense_lung(mask, dense, airways)

    radius = max(1, int(round(CLOSING_MM / min(dy, dx))))
    out = np.zeros_like(mask)
    for lab in (RIGHT, LEFT):
        box = bounding_box(mask == lab, margin=radius + 1)
        if box is None:
            continue
        own = mask[box] == lab
        part = fill_holes_xy(close_xy(own, radius))
        holes = part & ~own
        if holes.any():
            keep = _keep_holes(holes, image[box], mask[box] > 0, spacing, direction, is_hu,
                               None if learned is None else learned[box] >= LEARNED_CUT)
            part = own | keep
        # Closing must not claim the other lung's voxels.
        region = out[box]
        region[part & (mask[box] != (LEFT if lab == RIGHT else RIGHT)) & (region == 0)] = lab
    if learned is not None and not is_hu:
        # The grey levels of an 8-bit stack (a window of unknown width, CLAHE) do not tell lung from fat or
        # mediastinum at the border; the learned net does (held-out CT-Seg volume groups: lung Dice
        # 0.93 / 0.97 before this cut, 0.97 / 0.98 after).
        out[learned < LEARNED_CUT] = 0
    if outside is not None:
        out[:, outside] = 0  # never lung, whatever it touches
    return out


def _inside_padding_frame(outside: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The box inside the padding (``outside``: :func:`outside_reconstruction`) where it frames the image on a side,
    or None.

    Lungs a tight field of view cuts touch the image's edge, which :func:`_find_lungs` allows for; a frame of
    padding around them (a volume resampled or pasted into a larger grid) would join them to the air outside.
    """
    inside = ~outside
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0 or (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, inside.shape[0] - 1, inside.shape[1] - 1):
        return None
    return slice(None), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def outside_reconstruction(hu: np.ndarray) -> np.ndarray:
    """``(y, x)``: the padding outside a scanner's reconstruction circle, the pixels below :data:`PADDING_BELOW_HU`
    in every slice that reach the in-plane border (a few noisy voxels of air or emphysema below -1024 inside the
    body are not padding). One 2-D pass: the circle is the same in every slice."""
    padding = (np.asarray(hu) < PADDING_BELOW_HU).all(axis=0)
    if not padding.any():
        return padding
    border = np.zeros(padding.shape, dtype=bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    return components_touching(padding[None], (border & padding)[None])[0]


def _add_dense_lung(mask: np.ndarray, learned: np.ndarray, airways: np.ndarray | None) -> None:
    """Add the learned lung that touches the aerated lungs in its slice, each voxel to its side, in place.

    Consolidated and dependent lung is soft-tissue dense, so the air threshold misses it; the
    network's lung mask finds it. Only learned regions touching an aerated lung in the same slice
    count (a learned blob elsewhere, e.g. below the diaphragm, is not lung), and the airways stay out.
    """
    box = bounding_box(learned | (mask > 0), margin=1)
    if box is None:
        return
    cand = learned[box] & (mask[box] == 0)
    if airways is not None:
        cand &= ~airways[box]
    if not cand.any():
        return
    # In-plane components: dense lung must touch aerated lung in its own slice, so a network false positive
    # below the lung bases cannot creep in through the slices.
    keep = components_touching(cand, mask[box] > 0)
    region = mask[box]
    for z in np.flatnonzero(keep.any(axis=(1, 2))):
        right_cols = np.flatnonzero((region[z] == RIGHT).any(axis=0))
        left_cols = np.flatnonzero((region[z] == LEFT).any(axis=0))
        ys, xs = np.nonzero(keep[z])
        if right_cols.size and left_cols.size:
            # Between the two lungs' facing edges (the mediastinum), whichever is nearer.
            r_mid, l_mid = right_cols.mean(), left_cols.mean()
            if r_mid < l_mid:
                cut = 0.5 * (right_cols.max() + left_cols.min())
                side = np.where(xs <= cut, RIGHT, LEFT)
            else:
                cut = 0.5 * (left_cols.max() + right_cols.min())
                side = np.where(xs <= cut, LEFT, RIGHT)
        elif right_cols.size or left_cols.size:
            side = np.full(xs.size, RIGHT if right_cols.size else LEFT)
        else:  # no aerated lung in this slice: the side of the nearest slice's lungs is not known here
            side = _side_from_volume(region, xs)
        region[z, ys, xs] = side.astype(np.uint8)


def _side_from_volume(region: np.ndarray, xs: np.ndarray) -> np.ndarray:
    right_cols = np.flatnonzero((region == RIGHT).any(axis=(0, 1)))
    left_cols = np.flatnonzero((region == LEFT).any(axis=(0, 1)))
    if not right_cols.size or not left_cols.size:
        return np.full(xs.size, RIGHT if right_cols.size else LEFT)
    r_mid, l_mid = right_cols.mean(), left_cols.mean()
    cut = 0.5 * (r_mid + l_mid)
    low, high = (RIGHT, LEFT) if r_mid < l_mid else (LEFT, RIGHT)
    return np.where(xs <= cut, low, high)


def _continues_outside(footprint: np.ndarray, end: int, caudal: int, lung: np.ndarray, holes: np.ndarray,
                       tissue: np.ndarray | None) -> bool:
    """Whether a hole region's tissue goes on past its caudal end (``footprint``, its pixels in slice ``end``)
    into tissue that is not lung.

    That is an organ reaching up into a ring of lung (liver, spleen, heart under a dome); a lesion
    ends on lung. Leaving the scan caudally counts as going on.
    """
    below = end + caudal
    if not 0 <= below < lung.shape[0]:
        return True
    under = footprint & ~lung[below] & ~holes[below]
    if tissue is not None:
        under &= tissue[below]
    return bool(under.sum() >= 0.5 * footprint.sum())


def _keep_holes(holes: np.ndarray, image: np.ndarray, lung: np.ndarray, spacing, direction,
                is_hu: bool, learned: np.ndarray | None) -> np.ndarray:
    """Which in-plane holes of a lung are lung.

    Vessels, airway walls and lesions inside the lung are; an organ ringed by lung in one axial
    slice (the liver or spleen under a diaphragm dome, the heart's apex) is not. Dome rule: a
    hole region of at least ``DOME_MIN_MM2`` whose tissue continues caudally below it into tissue
    that is not lung (or out of the scan) is an organ. The learned mask, when given, keeps the
    holes it calls lung and overrides the rule there (consolidation resting on the diaphragm).
    """
    import SimpleITK as sitk

    comps = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(holes.astype(np.uint8)), True))
    n = int(comps.max())
    if n == 0:
        return holes
    # Each region's area in each slice, one slice at a time (not one whole-volume pass per region).
    areas = np.stack([np.bincount(plane.ravel(), minlength=n + 1) for plane in comps], axis=1)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    caudal = -1 if float(np.asarray(direction, dtype=float).reshape(3, 3)[2, 2]) >= 0 else 1
    organ = np.zeros(n + 1, dtype=bool)
    tissue = image > AIR_HU if is_hu else None
    for lab in np.flatnonzero(areas[1:].max(axis=1) * pixel_mm2 >= DOME_MIN_MM2) + 1:
        zs = np.flatnonzero(areas[lab])
        end = int(zs[0] if caudal < 0 else zs[-1])
        organ[lab] = _continues_outside(comps[end] == lab, end, caudal, lung, holes, tissue)
    keep = holes & ~organ[comps]
    if learned is not None:
        keep |= holes & learned
    return keep


def _remove_airways(labels: np.ndarray, lungs: list[int], image: np.ndarray, spacing, direction) -> np.ndarray | None:
    """Clear the trachea and bronchi (plus a one-voxel in-plane rim) from the lung labels, in place.

    Returns the cleared airway mask (None when no airway was found).
    """
    from jcs_viewer.pipeline.airways import find_airways

    union = _any_of(labels, lungs)
    airways = find_airways(image, union, spacing, direction)
    if airways is None:
        return None
    airways = dilate_xy(airways, 1)
    labels[airways & union] = 0
    return airways


def _find_lungs(
    image: np.ndarray, threshold: float, seal_px: int, min_voxels: float, learned: np.ndarray | None = None,
    is_hu: bool = False,
) -> tuple[np.ndarray, list[int]]:
    """Label the lung components of ``image < threshold``; ``([], ...)`` when none qualifies.

    ``seal_px`` > 0 first erodes the dark mask in-plane (closing gaps in a chest wall that is
    as dark as the lungs, e.g. fat in a soft-tissue window) and grows the found lungs back.
    With ``learned`` lung probabilities, a component counts only when the network calls at least
    ``CONFIRM_FRACTION`` of it lung (so bowel and stomach gas, or air in a scan without lungs, do not).
    """
    dark = image < threshold
    air = dark & ~dilate_xy(~dark, seal_px) if seal_px else dark
    hu = image if is_hu else None
    labels, sizes = _inner_air_components(air, per_slice=False, min_voxels=min_voxels)
    lungs = _select_confirmed(labels, sizes, min_voxels, seal_px > 0, learned, hu)
    if not lungs:
        labels, sizes = _inner_air_components(air, per_slice=True, min_voxels=min_voxels)
        lungs = _select_confirmed(labels, sizes, min_voxels, seal_px > 0, learned, hu)
    if not lungs and learned is not None:
        # A tight field of view cuts the lungs at the image edge, so every lung touches the border;
        # the network (which never calls room air lung) tells them from the air outside the body.
        labels, sizes = _inner_air_components(air, per_slice=False, min_voxels=min_voxels, keep_border=True)
        lungs = _select_confirmed(labels, sizes, min_voxels, seal_px > 0, learned, hu)
    del air
    if lungs and seal_px:
        grown = np.zeros_like(labels)
        for lab in lungs:
            grown[dilate_xy(labels == lab, seal_px) & dark & (grown == 0)] = lab
        labels = grown
    return labels, lungs


def _search_dark_parameters(image: np.ndarray, spacing, min_voxels: float) -> tuple[float, int]:
    """Threshold and sealing radius for a non-HU image.

    Candidates go from the darkest threshold (just above black: soft-tissue windows, where
    fat is only slightly brighter than lung) up to Otsu's (lung-window images), each with
    sealing radii 0, 3 and 6 mm; the first giving a plausible amount of lung wins (at least
    1.5 L, or 5 % of the scanned volume for partial studies). Larger thresholds and radii leak
    into fat and the abdomen, so "most lung" is only the fall-back. Tried on the whole volume
    up to 16 M voxels, else on every k-th slice; the caller applies the choice to the whole volume.
    """
    step = max(1, int(np.ceil(image.size / 16e6)))
    sample = image[::step]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    plausible_ml = min(1500.0, 0.05 * image.size * voxel_ml)
    px = min(float(spacing[1]), float(spacing[2]))
    thresholds, t = [], dark_threshold(image)
    low = float(image.min()) + 1.5
    while t >= low and len(thresholds) < 3:
        thresholds.append(t)
        t /= 4.0
    thresholds.append(low)
    best, best_volume = (thresholds[0] if thresholds else low, 0), 0.0
    for threshold in sorted(thresholds):
        for radius_mm in (0.0, 3.0, 6.0):
            radius = int(round(radius_mm / px))
            labels, lungs = _find_lungs(sample, threshold, radius, min_voxels / step)
            volume_ml = float(np.count_nonzero(labels)) * voxel_ml * step if lungs else 0.0
            if volume_ml >= plausible_ml:
                return threshold, radius
            if volume_ml > best_volume:
                best, best_volume = (threshold, radius), volume_ml
    return best


def dark_threshold(image: np.ndarray) -> float:
    """Otsu threshold between dark (air/lung) and bright (tissue) intensities of a non-HU image."""
    import SimpleITK as sitk

    sample = image[:: max(1, image.shape[0] // 32)]
    img = sitk.GetImageFromArray(np.ascontiguousarray(sample).astype(np.float32))
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetNumberOfHistogramBins(128)
    otsu.Execute(img)
    return float(otsu.GetThreshold())


def include_lesions(lung_mask: np.ndarray, lesion_mask: np.ndarray, spacing, margin_mm: float = 10.0) -> np.ndarray:
    """Add lesion voxels lying just outside the lungs (pleural consolidation) to the nearest lung, and the
    lesions that continue from a lung beyond that margin (consolidated lung the lung mask missed), each voxel
    to its side.

    Lesion voxels within ``margin_mm`` in-plane of a lung join it, and farther ones when their in-plane
    component touches a lung; the rest stay outside. Returns a new mask; ``lung_mask`` is not modified.
    """
    out = lung_mask.copy()
    radius = max(1, int(round(margin_mm / min(float(spacing[1]), float(spacing[2])))))
    # Lesion still outside after the margin, one byte a voxel; the rest is done a few slices at a time (all of it
    # in-plane), so no whole-volume temporary is held at the analysis's last stage.
    extra = np.zeros(lung_mask.shape, dtype=bool)
    for z0 in range(0, lung_mask.shape[0], CHUNK_SLICES):
        span = slice(z0, z0 + CHUNK_SLICES)
        lung = lung_mask[span]
        left_out = (lesion_mask[span] != 0) & (lung == 0)
        if not left_out.any():
            continue
        for lab in (RIGHT, LEFT):
            take = left_out & dilate_xy(lung == lab, radius)
            out[span][take] = lab
            left_out &= ~take
        extra[span] = left_out
    if extra.any():
        _add_dense_lung(out, extra, None)
    return out


def restrict_region(lung_mask: np.ndarray, spacing, margin_mm: float = 5.0) -> np.ndarray:
    """The lungs dilated in-plane by ``margin_mm``: where the AI's lesions are accepted."""
    radius = max(1, int(round(margin_mm / min(float(spacing[1]), float(spacing[2])))))
    return dilate_xy(lung_mask > 0, radius)


# --------------------------------------------------------------------------- internals


def _any_of(labels: np.ndarray, wanted: list[int]) -> np.ndarray:
    """``np.isin(labels, wanted)``; for uint8 labels by a 256-entry table (one gather, not a sort)."""
    if labels.dtype != np.uint8:
        return np.isin(labels, wanted)
    table = np.zeros(256, dtype=bool)
    table[np.asarray(wanted, dtype=np.intp)] = True
    return table[labels]


def _inner_air_components(
    air: np.ndarray, per_slice: bool, min_voxels: float, keep_border: bool = False
) -> tuple[np.ndarray, list[int]]:
    """Label air not connected to the in-plane border (all air with ``keep_border``), components of
    at least ``min_voxels``.

    Returns ``uint8`` labels sorted by size (1 = largest) and the sizes in voxels.
    """
    import SimpleITK as sitk

    if per_slice:
        # Zero slices between the slices stop connectivity along z: one 3-D call labels every slice.
        spaced = np.zeros((2 * air.shape[0] - 1,) + air.shape[1:], dtype=np.uint8)
        spaced[::2] = air
        inner = remove_labels_on_border(sitk.ConnectedComponent(sitk.GetImageFromArray(spaced), False))
        air = sitk.GetArrayViewFromImage(inner)[::2] > 0
    image = sitk.ConnectedComponent(sitk.GetImageFromArray(air.view(np.uint8)), False)
    found = sitk.GetArrayViewFromImage(image)  # 32-bit labels: read in place, never copied whole
    size = label_sizes(found)
    if not keep_border:
        size[_border_labels(found)] = 0
    size[0] = 0
    # Largest first, ties in label order (as ITK's relabelling sorts); lung-sized components are never 250.
    order = np.lexsort((np.arange(size.size), -size))
    order = order[size[order] >= max(1, min_voxels)][:250]
    relabel = np.zeros(size.size, dtype=np.uint8)
    relabel[order] = np.arange(1, order.size + 1, dtype=np.uint8)
    labels = np.empty(found.shape, dtype=np.uint8)
    for z in range(0, found.shape[0], CHUNK_SLICES):  # a few slices at a time: the indices are 64-bit
        labels[z : z + CHUNK_SLICES] = relabel[found[z : z + CHUNK_SLICES]]
    del found, image
    return labels, [int(v) for v in size[order]]


def remove_labels_on_border(labels):
    """Zero the components of a SimpleITK label image that touch the in-plane (x/y) border."""
    import SimpleITK as sitk

    view = sitk.GetArrayViewFromImage(labels)
    border = _border_labels(view)
    if border.size == 0:
        return labels
    return sitk.ChangeLabel(labels, changeMap={int(b): 0 for b in border})


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edges = np.concatenate(
        [labels[:, 0, :].ravel(), labels[:, -1, :].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]
    )
    found = np.unique(edges)
    return found[found != 0]


def _select_confirmed(labels: np.ndarray, sizes: list[int], min_voxels: float, fragments: bool,
                      learned: np.ndarray | None, hu: np.ndarray | None = None) -> list[int]:
    """:func:`_select_lungs` over the components that look like lung.

    With HU, a component that is mostly pure air (bowel or stomach gas: median below ``GAS_HU`` and
    over ``GAS_FRACTION`` of it below that) is not lung: aerated lung is parenchyma around -850 HU,
    and even an emphysematous lung keeps most of it above -950. With ``learned``, the network must
    call at least ``CONFIRM_FRACTION`` of the component lung, and every confirmed component large enough to be a
    fragment is kept: consolidation cuts a diseased lung's air into pieces (in a slice, or lobe from lobe), and
    only the largest two were kept before (one real COVID slice lost its whole left lung that way, and the
    right lung's second piece was taken for the left).
    """
    if learned is None and hu is None:
        return _select_lungs(sizes, min_voxels, fragments)
    candidates = [lab for lab in range(1, min(len(sizes), 8) + 1) if sizes[lab - 1] >= min_voxels]
    confirmed = []
    for lab in candidates:
        comp = labels == lab
        if hu is not None:
            values = hu[comp]
            if np.count_nonzero(values < GAS_HU) > GAS_FRACTION * values.size:
                continue
        if learned is None or np.count_nonzero(learned[comp] >= LEARNED_CUT) >= CONFIRM_FRACTION * sizes[lab - 1]:
            confirmed.append(lab)
    chosen = _select_lungs([sizes[lab - 1] for lab in confirmed], min_voxels, fragments or learned is not None)
    return [confirmed[i - 1] for i in chosen]


def _select_lungs(sizes: list[int], min_voxels: float, fragments: bool = False) -> list[int]:
    """Labels (1-based, by size) taken as lung: the largest and a second of comparable size.

    With ``fragments`` (sealed non-HU images, whose lungs can break into pieces along z) every
    component of at least ``FRAGMENT_FRACTION`` of the largest is kept (up to six).
    """
    if not sizes or sizes[0] < min_voxels:
        return []
    if fragments:
        floor = max(min_voxels, FRAGMENT_FRACTION * sizes[0])
        return [i + 1 for i, size in enumerate(sizes[:6]) if size >= floor]
    keep = [1]
    if len(sizes) > 1 and sizes[1] >= max(min_voxels, SECOND_LUNG_FRACTION * sizes[0]):
        keep.append(2)
    return keep


def _side_by_side(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two components are a right/left pair: overlapping in z, apart in x."""
    za, zb = np.flatnonzero(a.any(axis=(1, 2))), np.flatnonzero(b.any(axis=(1, 2)))
    overlap = min(za[-1], zb[-1]) - max(za[0], zb[0]) + 1
    if overlap < 0.5 * min(za.size, zb.size):
        return False
    xa, xb = np.flatnonzero(a.any(axis=(0, 1))), np.flatnonzero(b.any(axis=(0, 1)))
    # Lungs side by side overlap little in x; halves of one lung overlap almost fully.
    x_overlap = min(xa[-1], xb[-1]) - max(xa[0], xb[0]) + 1
    return x_overlap < 0.5 * min(xa.size, xb.size)


def _lps_x_of_centroid(component: np.ndarray, direction: np.ndarray) -> float:
    """Patient x (LPS, + = left) of a component's centroid, up to the origin offset."""
    zs, ys, xs = np.nonzero(component[:: max(1, component.shape[0] // 64)])
    ijk = np.array([xs.mean(), ys.mean(), zs.mean()])
    return float((direction @ ijk)[0])


def _split_single(component: np.ndarray, mask: np.ndarray, direction: np.ndarray) -> None:
    """Cut one joined component into right/left lungs slice by slice at the thinnest middle column."""
    cols = np.flatnonzero(component.any(axis=(0, 1)))
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    width = hi - lo
    mid_lo, mid_hi = lo + int(0.3 * width), lo + int(0.7 * width)
    # Column index ascends to patient left when direction[0, 0] > 0 (standard axial LPS).
    low_cols_are_right = float(direction[0, 0]) >= 0.0
    profile_all = component.sum(axis=(0, 1))
    default_cut = mid_lo + int(np.argmin(profile_all[mid_lo:mid_hi])) if mid_hi > mid_lo else (lo + hi) // 2
    low_label, high_label = (RIGHT, LEFT) if low_cols_are_right else (LEFT, RIGHT)
    for z in np.flatnonzero(component.any(axis=(1, 2))):
        window = component[z, :, mid_lo:mid_hi].sum(axis=0)
        if window.size:
            # Of the thinnest columns (often a run of empty ones), the one nearest the study's midline.
            candidates = mid_lo + np.flatnonzero(window == window.min())
            cut = int(candidates[np.argmin(np.abs(candidates - default_cut))])
        else:
            cut = default_cut
        mask[z, :, :cut][component[z, :, :cut]] = low_label
        mask[z, :, cut:][component[z, :, cut:]] = high_label


#: a slice carries lung (and gets a COVID score) from this much lung in it, mm^2 (a 1.4 cm square).
MIN_SLICE_LUNG_MM2 = 200.0


def lung_slices(lung_mask: np.ndarray, spacing) -> np.ndarray:
    """``bool (z,)``: the slices with at least ``MIN_SLICE_LUNG_MM2`` of lung, the ones that get a score."""
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    area = np.count_nonzero(lung_mask.reshape(lung_mask.shape[0], -1), axis=1) * pixel_mm2
    return area >= MIN_SLICE_LUNG_MM2
