"""Whether the models can judge a study at all, and the one sentence that says why not.

A decision is ``positive``, ``negative`` or ``not assessable``. The models were trained on axial chest slices
of 0.5-1.5 mm pixels; the patient rule counts positive slices over the lungs. So a study is not assessable
when it is not CT (an MR or PET series), when its slices are not axial, when its intensities clip the lungs to
black (a soft-tissue window), when a volume file or CT series without HU shows no lung window to read them back
from (:mod:`jcs_viewer.io.hu_estimate`), when it is a single slice, when it holds no lungs or too little lung to speak
for the patient (in mL; for images without a voxel size, a stack cut inside the lungs), when its pixels are
too coarse to tell a lesion from a vessel, its edges blurred past what the models read (a study resampled from
coarser pixels, :mod:`jcs_viewer.pipeline.sharpness`) or its grain too heavy (an ultra-low-dose scan,
:mod:`jcs_viewer.pipeline.noise`), or when fewer slices carry lung than the rule needs to ever call it positive.
Checked in that order; the first that applies is the reason.

Slices the models cannot read at all (not CT, not axial, lungs clipped to black, no window to read back, pixels too
coarse, edges too blurred or grain too heavy:
:func:`unreadable_reason`) are neither classified nor segmented: a score or a lesion there would be a guess. Nor are
the slices of a sharp study blurred on their own (breathing: :func:`blurred_slices`), which the analysis names.
"""

from __future__ import annotations

from types import EllipsisType
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.io.grey_levels import looks_like_hu
from jcs_viewer.pipeline.noise import SCALE_MM as NOISE_SCALE_MM
from jcs_viewer.vocabulary import compress_ranges, counted, plane_of_normal

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume

NOT_ASSESSABLE = "not assessable"
#: |cos| of the angle between the slice normal and the patient's head-foot axis below which the
#: slices are not axial (about 37 degrees of tilt; gantry tilts stay under 30).
AXIAL_MIN_COS = 0.8
#: lungs below this volume (both, mL) cannot speak for a patient (adult lungs hold 4-6 L;
#: a scan of the lung bases or apices alone holds a few hundred mL).
MIN_LUNG_ML = 500.0
#: the same floor where intensities are not HU and the lungs were found from grey levels alone.
MIN_LUNG_ML_NOT_HU = 1000.0
#: In-plane pixels coarser than this (mm) blur a 3-6 mm vessel into the surrounding lung as a ground-glass
#: smudge. The nets read a chest about 256 px across (about 1.4 mm a pixel, from 0.5-1 mm CT pixels); a study
#: more than twice as coarse is beyond what they were trained and checked on.
MAX_PIXEL_MM = 3.0
#: Edges of an HU study blurred past this (Gaussian standard deviation, mm: :func:`~jcs_viewer.pipeline.sharpness.
#: edge_blur_mm`) smear vessels into ground glass as coarse pixels do: the lesion-free real chest blurred to 1.39 mm
#: and the COPD thorax resampled from 4.2 mm to 0.8-2 mm pixels (2.0-2.2 mm) were called positive, the chest at
#: 1.15 mm negative; clinical reconstructions (the NY-SBU slices' soft kernels at 1-5 mm, the TotalSeg, LIDC and
#: dcmqi slices) measure 0.29-0.88 mm.
MAX_EDGE_BLUR_MM = 1.25
#: Sampling a sharp step on coarse pixels reads as up to about 0.4 pixel of blur (the COPD thorax at 4.2 mm pixels,
#: the test phantoms at 4-7 mm): blur within this many pixels is the grid's, which :data:`MAX_PIXEL_MM` judges.
PIXEL_BLUR_PER_PIXEL = 0.5
#: Soft-tissue noise of an HU study past this (HU, standard deviation at the scale the nets read:
#: :func:`~jcs_viewer.pipeline.noise.noise_hu`) clumps into blobs the nets read as ground glass: the lesion-free real
#: chest with added noise of 1-1.5 mm grain measuring 51.5-54.5 HU was called positive (14-26 slices, 19-22 mL), at
#: 43.5 HU it held 10 mL of false lesions, at 36.5-39.5 HU 2.7-3.3 mL; clinical reconstructions (the NY-SBU slices'
#: STANDARD and FC17 kernels at 1.25-5 mm, the TotalSeg crop) measure 6.5-26.5 HU.
MAX_NOISE_HU = 40.0
#: A stack of images without voxel size (whose lungs cannot be measured in mL) speaks for the patient when it
#: runs from lung apex to base: its first and last slices with lung each hold at most this share of the widest
#: lung section (whole real scans end at 0-6 %: the COPD thorax, the TotalSeg crop's base; the cut ends of the
#: CT-Seg slice groups hold 44-96 %).
MAX_END_SECTION_SHARE = 0.4
#: Both lungs of an adult span at least this much (mm) across their widest section (chests 25-30 cm inside the
#: ribs): where images carry no voxel size, the lungs' span in pixels gives the least a pixel can measure.
MIN_LUNG_SPAN_MM = 220.0
#: Where intensities are not HU, more of the chest than this at the lowest grey level is a window that clips the
#: lungs to black (a soft-tissue window): lung, air and any opacity darker than fat are then one value.
MAX_CLIPPED_CHEST_SHARE = 0.2
#: DICOM modalities that are imaging but not CT, in words: the nets never saw them. Other codes (OT, SC: a
#: secondary capture may hold a CT slice) are read as the grey levels they are.
OTHER_MODALITIES = {"MR": "magnetic resonance", "PT": "PET", "NM": "nuclear medicine", "US": "ultrasound",
                    "CR": "radiography", "DX": "radiography", "MG": "mammography", "XA": "angiography",
                    "RF": "fluoroscopy"}


def slice_plane(direction: Any) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"``: the patient plane nearest the slices."""
    return plane_of_normal(np.asarray(direction, dtype=float).reshape(3, 3)[:, 2])


def is_axial(direction: Any) -> bool:
    """Whether the slice normal lies within about 37 degrees of the patient's head-foot axis."""
    normal = np.asarray(direction, dtype=float).reshape(3, 3)[:, 2]
    norm = float(np.linalg.norm(normal)) or 1.0
    return abs(float(normal[2])) / norm >= AXIAL_MIN_COS


def unreadable_reason(volume: Volume, lung_mask: np.ndarray | None = None,
                      coarse: str | None | EllipsisType = ...) -> str | None:
    """Why the models cannot read the slices at all (not CT, not axial, lungs clipped to black, intensities without HU
    whose window was not found, pixels too coarse or edges too blurred), or None when they can.

    Images without a voxel size (1 mm assumed) are judged coarse from the lungs' span in pixels, once
    ``lung_mask`` is known (see :data:`MIN_LUNG_SPAN_MM`). ``coarse``: :func:`coarse_reason` where the caller has it.
    """
    return (modality_reason(volume) or plane_reason(volume) or clipped_reason(volume)
            or getattr(volume, "intensity_reason", "")
            or (coarse_reason(volume, lung_mask) if coarse is ... else coarse))


def modality_reason(volume: Volume) -> str | None:
    """Why a series of another imaging modality (MR, PET, ...) cannot be read, or None (CT, or not DICOM)."""
    modality = str(getattr(getattr(volume, "info", None), "modality", "") or "").upper()
    if modality not in OTHER_MODALITIES:
        return None
    return (f"The series is {OTHER_MODALITIES[modality]} ({modality}), not CT; the models read chest CT only, so "
            "no slice was scored.")


def plane_reason(volume: Volume) -> str | None:
    """Why slices that are not axial cannot be read, or None for axial slices."""
    if is_axial(volume.direction):
        return None
    return (f"The slices are {slice_plane(volume.direction)}, not axial; the models read axial chest slices only "
            "(open the axial series of this study).")


def clipped_reason(volume: Volume) -> str | None:
    """Why intensities whose window clips the lungs to black cannot be read, or None (always for the scanner's HU)."""
    if getattr(volume, "is_hu", True) and not getattr(volume, "hu_estimated", False):
        return None
    share = clipped_chest_share(volume.array)
    if share <= MAX_CLIPPED_CHEST_SHARE:
        return None
    return (f"The intensities clip the inside of the chest to black ({share:.0%} of it at the lowest grey level, as "
            "a soft-tissue window does), so lung cannot be told from air and nothing in the lungs can be read; "
            "open the study in Hounsfield units or exported with a lung window.")


def clipped_chest_share(array: np.ndarray) -> float:
    """The median share of the chest at the array's lowest value, over up to 12 evenly spaced slices.

    The chest is what lies above the lowest value with the gaps in its wall closed (fat and muscle of a
    soft-tissue window can touch black) and its holes filled. A lung window keeps air and lung above its floor.
    """
    from jcs_viewer.pipeline.morphology import close_xy, fill_holes_xy

    picked = np.unique(np.linspace(0, len(array) - 1, min(len(array), 12)).astype(int))
    above = array[picked] > array.min()
    chest = fill_holes_xy(close_xy(above, max(2, round(array.shape[2] / 40))))  # 6 px across 256
    area = chest.sum(axis=(1, 2))
    shares = ((chest & ~above).sum(axis=(1, 2)) / np.maximum(area, 1))[area > 0.05 * above[0].size]
    return float(np.median(shares)) if shares.size else 0.0


def coarse_reason(volume: Volume, lung_mask: np.ndarray | None = None, blur: float | None | EllipsisType = ...,
                  noise: float | None | EllipsisType = ...) -> str | None:
    """Why pixels too coarse, edges too blurred or grain too heavy to tell a lesion from a vessel or from noise cannot
    be read, or None.

    ``blur``, ``noise``: :func:`edge_blur` and :func:`image_noise` of ``volume`` where the caller has them (measured
    here when not given).
    """
    if getattr(volume, "has_voxel_size", True):
        pixel_mm = max(_pixel_mm(volume))
        if pixel_mm > MAX_PIXEL_MM:
            return (f"The pixels are {pixel_mm:.1f} mm wide, too coarse to tell a lesion from a vessel; the models "
                    f"read chest CT with pixels of {MAX_PIXEL_MM:g} mm or finer, so no slice was scored.")
        return blur_reason(volume, blur) or noise_reason(volume, noise)
    elif lung_mask is not None:
        span = lung_span_px(lung_mask)
        if span and MIN_LUNG_SPAN_MM / span > MAX_PIXEL_MM:
            return (f"The images carry no voxel size and the lungs span only {span} pixels across; adult lungs are "
                    f"{MIN_LUNG_SPAN_MM / 10:g} cm wide or more, so a pixel is at least "
                    f"{MIN_LUNG_SPAN_MM / span:.1f} mm, too coarse to tell a lesion from a vessel (the models read "
                    f"pixels of {MAX_PIXEL_MM:g} mm or finer), so no slice was scored.")
    return None


def _quality_measurable(volume: Volume) -> bool:
    """Whether blur and noise are measured: HU (steps and soft tissue are found by their HU) and a voxel size (the
    figures are at scales in mm)."""
    return bool(getattr(volume, "is_hu", True)) and bool(getattr(volume, "has_voxel_size", True))


def _pixel_mm(volume: Volume) -> tuple[float, float]:
    """The in-plane pixel size ``(y, x)`` in mm."""
    return float(volume.spacing[1]), float(volume.spacing[2])


def edge_blur(volume: Volume) -> float | None:
    """The blur an HU study's own edges show (mm, :func:`~jcs_viewer.pipeline.sharpness.edge_blur_mm`), or None:
    grey levels (the steps are found by their HU), images without a voxel size (no mm) and studies without a body
    outline or chest wall in view are not measured."""
    if not _quality_measurable(volume):
        return None
    from jcs_viewer.pipeline.sharpness import edge_blur_mm

    return edge_blur_mm(volume.array, _pixel_mm(volume))


def blur_reason(volume: Volume, blur: float | None | EllipsisType = ...) -> str | None:
    """Why an HU study whose edges are blurred past what its pixels explain cannot be read, or None.

    ``blur``: :func:`edge_blur` of ``volume`` where the caller has it (measured here when not given).
    """
    if blur is ...:
        blur = edge_blur(volume)
    pixel_mm = max(_pixel_mm(volume))
    if blur is None or blur <= blur_limit_mm(volume):
        return None
    return (f"The image is blurrier than its {pixel_mm:.1f} mm pixels: its edges are spread by a blur of {blur:.1f} mm "
            "(standard deviation), as in a study resampled from coarser pixels or reconstructed with a very smooth "
            "filter, which smears vessels into ground glass; the models read CT whose edges measure "
            f"{MAX_EDGE_BLUR_MM:g} mm or less (clinical reconstructions 0.3-0.9 mm), so no slice was scored.")


def image_noise(volume: Volume) -> float | None:
    """The noise of an HU study's soft tissue at the scale the nets read (HU, :func:`~jcs_viewer.pipeline.noise.
    noise_hu`), or None where it is not measured (as :func:`edge_blur`: grey levels, no voxel size, no body)."""
    if not _quality_measurable(volume):
        return None
    from jcs_viewer.pipeline.noise import noise_hu

    return noise_hu(volume.array, _pixel_mm(volume))


def noise_reason(volume: Volume, noise: float | None | EllipsisType = ...) -> str | None:
    """Why an HU study whose grain is too heavy to tell faint ground glass from noise cannot be read, or None.

    ``noise``: :func:`image_noise` of ``volume`` where the caller has it (measured here when not given).
    """
    if noise is ...:
        noise = image_noise(volume)
    if noise is None or noise <= MAX_NOISE_HU:
        return None
    return (f"The image is too noisy: the grain of its soft tissue measures {noise:.0f} HU (standard deviation at "
            f"the {NOISE_SCALE_MM:g} mm scale the models read), as in an ultra-low-dose scan, and grain that coarse "
            f"reads as faint ground glass; the models read CT whose noise measures {MAX_NOISE_HU:g} HU or less "
            "(clinical reconstructions 6-27 HU), so no slice was scored. A smoother reconstruction kernel or "
            "thicker slices of the same scan may be readable.")


def blur_limit_mm(volume_or_spacing: Volume | tuple[float, ...]) -> float:
    """The edge blur (mm) past which the models cannot read a study's slices (see :data:`MAX_EDGE_BLUR_MM`), from
    the study or its (z, y, x) spacing."""
    spacing = getattr(volume_or_spacing, "spacing", volume_or_spacing)
    return max(MAX_EDGE_BLUR_MM, PIXEL_BLUR_PER_PIXEL * max(float(spacing[1]), float(spacing[2])))


def blurred_slices(volume: Volume, slices: np.ndarray) -> np.ndarray:
    """``bool (z,)``: which of ``slices`` (bool) are blurred past :func:`blur_limit_mm` on their own (breathing or
    moving during a sharp study), each read by :func:`~jcs_viewer.pipeline.sharpness.slice_blur_mm`; none for
    studies whose blur is not measured (:func:`edge_blur`)."""
    out = np.zeros(len(volume.array), dtype=bool)
    if not _quality_measurable(volume) or not np.any(slices):
        return out
    from jcs_viewer.pipeline.sharpness import slice_blur_mm

    blur = slice_blur_mm(volume.array, _pixel_mm(volume), np.flatnonzero(slices))
    with np.errstate(invalid="ignore"):
        return blur > blur_limit_mm(volume)  # NaN (too few steps to tell) is not blurred


def blurred_slices_note(blurred: np.ndarray | None, spacing: tuple[float, ...] | None = None) -> str | None:
    """The sentence that says which slices were left unread for their blur (``blurred``: ``bool (z,)``, e.g. a
    result's ``blurred_slices``; ``spacing``: the study's, for its limit), or None where there are none."""
    if blurred is None or not np.any(blurred):
        return None
    blurred = np.asarray(blurred, dtype=bool)
    numbers = compress_ranges((np.flatnonzero(blurred) + 1).tolist())
    n = int(np.count_nonzero(blurred))
    limit = round(blur_limit_mm(spacing), 2) if spacing is not None else MAX_EDGE_BLUR_MM
    return (f"{counted(n, 'slice')} with lung ({numbers}) {'is' if n == 1 else 'are'} blurred past what the models "
            f"read (edges spread by more than {limit:g} mm: breathing or moving during the scan, or a thick slice "
            f"cutting a curved surface such as a diaphragm dome obliquely), so "
            f"{'it was' if n == 1 else 'they were'} not scored; a lesion there is neither flagged nor measured.")


def lung_span_px(lung_mask: np.ndarray) -> int:
    """The widest left-right extent of the lungs in any slice, in pixels (0 without lung)."""
    columns = np.asarray(lung_mask).any(axis=1)  # (z, x)
    has = columns.any(axis=1)
    if not has.any():
        return 0
    first = columns.argmax(axis=1)
    last = columns.shape[1] - 1 - columns[:, ::-1].argmax(axis=1)
    return int((last - first + 1)[has].max())


def not_assessable_reason(volume: Volume, lung_mask: np.ndarray, scored: np.ndarray, threshold: int,
                          unreadable: str | None | EllipsisType = ...,
                          coarse: str | None | EllipsisType = ..., blurred: int = 0) -> str | None:
    """One sentence saying why the study cannot be judged, or None when it can.

    Args:
        volume: the study (``array``, ``spacing``, ``direction``, ``is_hu``).
        lung_mask: the lung mask (0 none, 1 right, 2 left).
        scored: ``bool (z,)`` slices that carry lung.
        threshold: the patient rule's threshold (positive when more slices than this are positive).
        unreadable: :func:`unreadable_reason` of ``volume`` and ``lung_mask`` where the caller has it already
            (the clipped-window check reads the whole array); computed here when not given.
        coarse: :func:`coarse_reason` of ``volume`` and ``lung_mask`` where the caller has it (the blur is measured
            on the image); computed here when not given.
        blurred: how many slices with lung were left out of ``scored`` for their blur (:func:`blurred_slices`).
    """
    n = int(volume.array.shape[0])
    if coarse is ...:
        coarse = coarse_reason(volume, lung_mask)
    if unreadable is ...:
        unreadable = unreadable_reason(volume, lung_mask, coarse)
    if unreadable and unreadable != coarse:  # not axial, or clipped to black: these explain a missing lung
        return unreadable
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    lung_ml = float(np.count_nonzero(lung_mask)) * voxel_ml
    if n <= 1:
        # a slice below or above the chest (an abdominal slice of the same series) is worth naming as such
        shows = ", and this one shows no lung" if lung_ml == 0.0 else ""
        return f"A single slice cannot be judged{shows}: the patient rule counts positive slices across the lungs."
    is_hu = bool(getattr(volume, "is_hu", True))
    if lung_ml == 0.0:
        if is_hu and not looks_like_hu(volume.array):  # e.g. a CT stored with its 1024 offset and no intercept
            return ("No lungs were found in the study, and no value in it is as low as air (-1000 HU): if it is a "
                    "chest CT, its values are not Hounsfield units (is its RescaleIntercept missing?).")
        if getattr(volume, "hu_estimated", False):
            return ("No lungs were found in the study. Its values are grey levels read back as estimated HU, as if "
                    "exported through a linear window; a window that clips the lungs to black (a soft-tissue window), "
                    "an inverted grey scale or a curve that is not linear leaves no lung to find; open the study in "
                    "Hounsfield units or exported with a lung window.")
        return "No lungs were found in the study, so there is nothing the models could judge."
    floor = MIN_LUNG_ML if is_hu else MIN_LUNG_ML_NOT_HU
    if not getattr(volume, "has_voxel_size", True):
        cut = cut_lungs_reason(lung_mask)
        if cut:
            return cut
    elif lung_ml < floor:
        what = "" if is_hu else " (intensities are not Hounsfield units, so the lungs were found from grey levels)"
        return (f"Only {lung_ml:.0f} mL of lung is in the study{what}; at least {floor:.0f} mL are needed "
                "to judge the patient (a scan of part of the lungs cannot).")
    if coarse:
        return coarse
    with_lung = int(np.count_nonzero(scored))
    if with_lung <= threshold:
        verb = "carries" if with_lung == 1 else "carry"
        sharp = f" sharp enough to read ({blurred} more {'is' if blurred == 1 else 'are'} blurred)" if blurred else ""
        return (f"Only {counted(with_lung, 'slice')} {verb} lung{sharp}, but the rule needs more than "
                f"{threshold} positive slices to call a study positive.")
    return None


def cut_lungs_reason(lung_mask: np.ndarray) -> str | None:
    """Why a stack without voxel size does not cover the lungs (cut inside them), or None when it runs from
    apex to base: the scale-free stand-in for the mL floor (see :data:`MAX_END_SECTION_SHARE`)."""
    area = np.count_nonzero(np.asarray(lung_mask).reshape(len(lung_mask), -1), axis=1)
    with_lung = np.flatnonzero(area)
    widest = float(area.max())
    ends = (("first", with_lung[0]), ("last", with_lung[-1]))
    cut = [f"its {which} image with lung ({area[z] / widest:.0%} of the widest lung section)"
           for which, z in ends if area[z] > MAX_END_SECTION_SHARE * widest]
    if not cut:
        return None
    return ("The images carry no voxel size, so the lungs cannot be measured in mL and the stack must run from the "
            f"lung apices to the bases to speak for the patient; it is cut inside the lungs at {' and '.join(cut)}.")
