"""Turn one scanned DICOM series into a :class:`Volume`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.dicom_geometry import arrange_slices
from jcs_viewer.io.dicom_multiframe import frame_headers
from jcs_viewer.io.dicom_pixels import read_pixels
from jcs_viewer.io.dicom_scan import ScanResult, SeriesEntry, describe_files
from jcs_viewer.io.grey_levels import looks_like_hu, to_grey_levels
from jcs_viewer.io.hu_estimate import estimated_hu, no_window_reason
from jcs_viewer.io.volume import Volume
from jcs_viewer.vocabulary import counted


def choose_series(scan: ScanResult, where: str, series_uid: str | None) -> tuple[SeriesEntry, list[str]]:
    """The requested series, or by default the CT series with the most slices.

    Returns:
        The series and warnings (other series present, modality not CT).

    Raises:
        StudyLoadError: no series, the UID is absent, or no series holds images.
    """
    entries = scan.entries
    if not entries:
        if scan.problems:
            raise StudyLoadError(scan.problems[0])
        if scan.n_files == 0:
            raise StudyLoadError(f"{where} is empty: no files to load.")
        raise StudyLoadError(f"No DICOM files found in {where} ({scan.n_files} files checked).")
    if series_uid is not None:
        for entry in entries:
            if entry.series_uid == series_uid:
                return entry, []
        listed = "; ".join(f"{e.series_uid} = {e.label()}" for e in entries[:5])
        raise StudyLoadError(f"Series {series_uid} is not in {where} (found: {listed}).")
    with_pixels = [e for e in entries if e.has_pixels]
    if not with_pixels:
        files = [f for e in entries for f in e.files]
        raise StudyLoadError(
            f"No DICOM file in {where} holds an image ({describe_files(files)}: no pixel data)."
        )
    ct = [e for e in with_pixels if e.modality == "CT"]
    pool = ct or with_pixels
    chosen = max(pool, key=lambda e: e.n_slices)  # first of equals: lowest series number
    warnings = []
    others = [e for e in entries if e is not chosen]
    if others:
        names = "; ".join(f"{e.label()}, UID {e.series_uid}" for e in others[:4])
        more = f"; and {len(others) - 4} more" if len(others) > 4 else ""
        warnings.append(
            f"{where} holds {len(entries)} series; loaded {chosen.label()}. Also there: {names}{more}. "
            "To read another, give its UID (analyze --series UID, or pick it when the viewer asks)."
        )
    return chosen, warnings


def load_series(entry: SeriesEntry, warnings: list[str] | None = None) -> Volume:
    """Load one scanned series: sort slices, read pixels once, rescale to HU.

    Raises:
        StudyLoadError: the series holds no image or a file is damaged.
    """
    warnings = list(warnings or [])
    images = [h for h in entry.headers if h.has_pixels]
    no_pixels = [h.path for h in entry.headers if not h.has_pixels]
    if not images:
        raise StudyLoadError(f"DICOM file {entry.files[0]} has no pixel data (no image to show).")
    if no_pixels:
        warnings.append(f"Ignored {counted(len(no_pixels), 'file')} without pixel data ({describe_files(no_pixels)}).")
    images = [frame for h in images for frame in (frame_headers(h) if h.n_frames > 1 else [h])]
    if any(h.samples_per_pixel != 1 for h in images):
        colour = next(h for h in images if h.samples_per_pixel != 1)
        raise StudyLoadError(f"{colour.path} is a colour image; only grey-scale CT slices can be loaded.")
    # A series without a Modality (stripped by an anonymiser or a test exporter) is taken for CT when its
    # rescaled values hold air at about -1000 HU, as a volume file's are.
    is_ct = entry.modality in ("CT", "")
    geometry = arrange_slices(images)
    warnings.extend(geometry.warnings)
    bare = [h.path for h in geometry.headers if h.no_preamble]
    if bare:
        warnings.append(f"{counted(len(bare), 'file')} ({describe_files(bare)}) carry no DICOM preamble or file meta "
                        "(an old or raw export): read as the bare data sets they are.")
    zero_slope = [h.path for h in geometry.headers if h.slope_zero]
    if zero_slope:
        warnings.append(f"RescaleSlope is 0 in {counted(len(zero_slope), 'file')} ({describe_files(zero_slope)}), "
                        "which would make every pixel one value; a slope of 1 was used.")
    array, pixel_warnings = read_pixels(geometry.headers, is_ct)
    warnings.extend(pixel_warnings)
    holds_air = looks_like_hu(array)
    inverted = [h.path for h in geometry.headers if h.monochrome1]
    if inverted and not holds_air:  # grey levels shown white-low: turned over so that air is dark, as everywhere
        first = geometry.headers[0]
        plain = first.pixel_representation == 0 and first.slope == 1.0 and first.intercept == 0.0
        top = (2 ** first.bits_stored - 1) if plain else int(array.max()) + int(array.min())  # the stored range's
        array = np.clip(top - array.astype(np.int32), -32768, 32767).astype(np.int16)
        warnings.append(f"{counted(len(inverted), 'file')} ({describe_files(inverted)}) are MONOCHROME1 (the lowest "
                        "value shown white): their grey levels were turned over.")
    hu_estimated, intensity_reason = False, ""
    if entry.modality in ("CT", "") and not holds_air:
        # A CT stored with its 1024 offset and no RescaleIntercept, or exported through a window.
        hu = estimated_hu(array, "the series", warnings)
        if hu is not None:
            array, is_ct, hu_estimated = hu, True, True
        else:
            intensity_reason = no_window_reason("the series", missing_intercept=entry.modality == "CT")
    if not entry.modality:
        is_ct = holds_air or hu_estimated
        warnings.append("The series gives no Modality; its values " + (
            "hold air at about -1000, so they are read as CT in Hounsfield units." if holds_air else
            "are read as CT, in the Hounsfield units estimated above." if hu_estimated else
            "hold no air at about -1000 HU, so they are read as grey levels, not as CT."))
    elif not is_ct:
        warnings.append(f"Modality is {entry.modality}, not CT: values are read as grey levels, not as HU, and the "
                        "COVID-19 analysis is not meant for this image.")
    if not is_ct:
        array = to_grey_levels(array, "the series", warnings)
    info = entry.info
    if info.slice_thickness is None and geometry.headers[0].slice_thickness is not None:
        info = replace(info, slice_thickness=geometry.headers[0].slice_thickness)
    return Volume(
        array=array,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        is_hu=is_ct,
        hu_estimated=hu_estimated,
        intensity_reason=intensity_reason,
        info=info,
        source_files=tuple(h.path for h in geometry.headers),
        warnings=warnings,
        source_format="dicom",
        voxel_size_assumed=geometry.size_assumed,
    )
