"""The blur a study's own edges show (``sharpness.edge_blur_mm``) and the rule that will not read a blurred study."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.pipeline.assess import MAX_EDGE_BLUR_MM, NOT_ASSESSABLE, blur_reason
from jcs_viewer.pipeline.sharpness import edge_blur_mm, slice_blur_mm

cv2 = pytest.importorskip("cv2")

PIXEL_MM = 0.7
SUPERSAMPLE = 5  # drawn on a 5x finer grid and averaged into pixels, as a detector integrates


def chest_slice(blur_mm: float, size: int = 256, vessels: bool = True, body: bool = True) -> np.ndarray:
    """An axial slice in HU: air, a soft-tissue body with two lungs (and vessels in them), blurred by a Gaussian
    of ``blur_mm`` before it is sampled into pixels of :data:`PIXEL_MM`."""
    fine = size * SUPERSAMPLE
    yy, xx = np.mgrid[:fine, :fine] / SUPERSAMPLE
    c = size / 2
    image = np.full((fine, fine), -1000.0 if body else -850.0, np.float32)
    if body:
        image[((yy - c) / 0.75) ** 2 + ((xx - c) / 0.95) ** 2 < (0.45 * size) ** 2] = 40.0
    for side in (-1, 1):
        lung = ((yy - c) / 0.6) ** 2 + ((xx - c - side * 0.22 * size) / 0.3) ** 2 < (0.5 * size) ** 2
        image[lung & body] = -850.0
    if vessels:
        rng = np.random.default_rng(0)
        for y, x in rng.uniform(0.3 * size, 0.7 * size, size=(40, 2)):
            image[(yy - y) ** 2 + (xx - x) ** 2 < 2.5**2] = 40.0  # 3.5 mm vessels
    if blur_mm > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_mm / PIXEL_MM * SUPERSAMPLE)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def stack(slice_: np.ndarray, n: int = 4) -> np.ndarray:
    return np.repeat(slice_[None], n, axis=0)


#: the blur a perfectly sharp step shows once averaged into pixels (a box of one pixel: sd = pixel / sqrt(12))
PIXEL_SD_MM = PIXEL_MM / np.sqrt(12)


@pytest.mark.parametrize("blur_mm", [0.5, 1.0, 2.0, 3.0])
def test_the_blur_of_a_chest_slice_is_read_from_its_edges(blur_mm):
    measured = edge_blur_mm(stack(chest_slice(blur_mm)), (PIXEL_MM, PIXEL_MM))
    expected = float(np.hypot(blur_mm, PIXEL_SD_MM))
    assert measured == pytest.approx(expected, rel=0.12), (measured, expected)


def test_the_figure_is_in_mm_whatever_the_pixel_size():
    """The same chest sampled at twice the pixel size reads the same blur in mm (where the pixels do not add)."""
    fine = edge_blur_mm(stack(chest_slice(2.0)), (PIXEL_MM, PIXEL_MM))
    coarse_slice = cv2.resize(chest_slice(2.0), (128, 128), interpolation=cv2.INTER_AREA)
    coarse = edge_blur_mm(stack(coarse_slice), (2 * PIXEL_MM, 2 * PIXEL_MM))
    assert coarse == pytest.approx(fine, rel=0.12)


def test_noise_never_reads_as_blur():
    """A low-dose scan's noise steepens the finer gradient: the figure can only fall."""
    clean = chest_slice(1.0)
    noisy = clean + np.random.default_rng(1).normal(0.0, 40.0, clean.shape).astype(np.float32)
    assert edge_blur_mm(stack(noisy), (PIXEL_MM, PIXEL_MM)) <= edge_blur_mm(stack(clean), (PIXEL_MM, PIXEL_MM))


def test_the_edge_of_a_reconstruction_circle_is_not_read():
    """A tight field of view cuts the body; the padding outside its circle meets the body in a sharp edge the scanner
    never blurred, which would pull the figure down."""
    blurred = chest_slice(2.0)
    size = blurred.shape[0]
    rows, cols = np.mgrid[:size, :size]
    cut = np.where((rows - size / 2) ** 2 + (cols - size / 2) ** 2 > (0.2 * size) ** 2, -3024.0, blurred)
    assert edge_blur_mm(stack(cut.astype(np.float32)), (PIXEL_MM, PIXEL_MM)) == pytest.approx(
        edge_blur_mm(stack(blurred), (PIXEL_MM, PIXEL_MM)), rel=0.03)  # 8 % low when the circle's edge was read


def test_vessels_in_lung_are_not_steps():
    """Inside the lung, without the body's outline or a chest wall in view, there is nothing to measure on: however
    blurred the vessels, no figure (the lung lies a few mm beyond them on either side)."""
    lung_only = stack(chest_slice(0.5, body=False))
    assert edge_blur_mm(lung_only, (PIXEL_MM, PIXEL_MM)) is None
    assert edge_blur_mm(np.full((3, 64, 64), -1000, np.int16), (PIXEL_MM, PIXEL_MM)) is None


def _volume(array: np.ndarray, pixel_mm: float, is_hu: bool = True):
    from jcs_viewer.io.volume import Volume

    return Volume(np.round(array).astype(np.int16), (5.0, pixel_mm, pixel_mm), is_hu=is_hu)


def test_a_blurred_study_is_not_read_and_the_sentence_gives_the_figure():
    reason = blur_reason(_volume(stack(chest_slice(1.5)), PIXEL_MM))
    assert reason and "blurrier than its 0.7 mm pixels" in reason and "a blur of 1.5 mm" in reason
    assert f"{MAX_EDGE_BLUR_MM:g} mm or less" in reason and reason.endswith("no slice was scored.")
    assert blur_reason(_volume(stack(chest_slice(1.0)), PIXEL_MM)) is None
    assert blur_reason(_volume(stack(chest_slice(1.5)), PIXEL_MM, is_hu=False)) is None  # grey levels: no HU steps


def test_a_study_on_coarse_pixels_is_left_to_the_pixel_rule():
    """Steps sampled on coarse pixels read as up to about 0.4 pixel of blur (the test phantom at 64 px across,
    5.6 mm pixels: over 2 mm): that is the grid's, judged by the pixel size's own rule, not a blurred image."""
    from jcs_viewer.io import make_phantom

    volume = make_phantom(n_slices=8, size=64, seed=1).to_volume()
    assert edge_blur_mm(volume.array, volume.spacing[1:]) > MAX_EDGE_BLUR_MM
    assert blur_reason(volume) is None


def test_the_analysis_scores_no_slice_of_a_blurred_study(registered):
    """Through the pipeline: not assessable, no score and no lesion, the lungs still shown."""
    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, analyze

    volume = make_phantom(n_slices=16, size=256, seed=1).to_volume()
    sharp = analyze(volume, AnalysisOptions(device="cpu"))
    assert sharp.decision != NOT_ASSESSABLE and sharp.edge_blur_mm < MAX_EDGE_BLUR_MM
    sigma_px = 2.5 / volume.spacing[1]
    volume.array = np.stack([cv2.GaussianBlur(s.astype(np.float32), (0, 0), sigma_px) for s in volume.array]
                            ).round().astype(np.int16)
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert result.decision == NOT_ASSESSABLE and "blurrier than its" in result.decision_reason
    assert result.lung_mask.any() and not result.scored_slices.any() and not result.lesion_mask.any()
    assert result.edge_blur_mm == pytest.approx(2.5, rel=0.15)  # the figure the sentence gives, kept with the result
    assert f"a blur of {result.edge_blur_mm:.1f} mm" in result.decision_reason


def test_the_measured_blur_is_saved_with_the_result(registered, tmp_path):
    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, StudyResult, analyze

    result = analyze(make_phantom(n_slices=8, size=128, seed=2).to_volume(), AnalysisOptions(device="cpu"))
    assert result.edge_blur_mm is not None
    result.save(tmp_path)
    assert StudyResult.load(tmp_path).edge_blur_mm == result.edge_blur_mm


def test_each_slice_is_read_on_its_own():
    """Breathing blurs some slices of a sharp study: each slice asked for gets its own figure, the others none."""
    slices = np.stack([chest_slice(0.5), chest_slice(2.5), chest_slice(0.5), chest_slice(2.5)])
    blur = slice_blur_mm(slices, (PIXEL_MM, PIXEL_MM), np.array([0, 1, 3]))
    assert blur[0] == pytest.approx(np.hypot(0.5, PIXEL_SD_MM), rel=0.15) and np.isnan(blur[2])
    assert blur[1] == pytest.approx(2.5, rel=0.12) and blur[3] == pytest.approx(2.5, rel=0.12)
    # Slices of fine pixels are read at half the size, the averaging's own spread taken off: the same figure.
    finer = np.stack([cv2.resize(s, (512, 512), interpolation=cv2.INTER_CUBIC) for s in slices[:2]])
    assert slice_blur_mm(finer, (PIXEL_MM / 2, PIXEL_MM / 2), np.array([0, 1]))[1] == pytest.approx(blur[1], rel=0.1)


def test_slices_blurred_by_breathing_are_not_scored_and_the_analysis_says_which(registered, tmp_path):
    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, StudyResult, analyze

    volume = make_phantom(n_slices=24, size=256, seed=1).to_volume()
    moved = np.arange(8, 14)
    volume.array[moved] = np.stack([cv2.GaussianBlur(s.astype(np.float32), (0, 0), 2.5 / volume.spacing[1])
                                    for s in volume.array[moved]]).round().astype(np.int16)
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert np.flatnonzero(result.blurred_slices).tolist() == moved.tolist()
    assert not result.scored_slices[moved].any() and result.scored_slices.sum() > 6
    assert not result.slice_positive[moved].any() and not result.segmented_slices[moved].any()
    assert any("6 slices with lung (9-14) are blurred past" in m for m in result.messages), result.messages
    rows = result.summary_dict()["per_slice"]
    assert [r["index"] for r in rows if r["too_blurred"]] == moved.tolist()
    result.save(tmp_path)
    assert np.array_equal(StudyResult.load(tmp_path).blurred_slices, result.blurred_slices)
    _said_once_beside_the_count(result, volume, tmp_path)


def _said_once_beside_the_count(result, volume, tmp_path):
    """The summary panel and the report say it under the slice count it changes, and not again among the notes."""
    import re
    import shutil
    import subprocess

    pytest.importorskip("PySide6")
    from jcs_viewer.gui.summary_panel import summary_html
    from jcs_viewer.report import write_report

    note = "6 slices with lung (9-14) are blurred past"
    html = summary_html(result)
    assert html.count(note) == 1 and html.index(note) < html.index("Lesion volume")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    pdf = write_report(result, volume, tmp_path / "report.pdf")
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                               check=True).stdout)
    assert text.count(note) == 1 and text.index(note) < text.index("Summary"), text[:1500]


def test_the_blurred_slices_note_gives_the_study_s_own_limit_and_both_causes():
    """The limit the slices were held to grows with the pixel (``blur_limit_mm``); the note said 1.25 mm whatever the
    pixels, and named breathing alone where thick slices through the domes blur the lung bases as much."""
    from jcs_viewer.pipeline.assess import MAX_EDGE_BLUR_MM, blur_limit_mm, blurred_slices_note

    blurred = np.zeros(30, bool)
    blurred[[3, 4, 5, 9]] = True
    coarse = (5.0, 3.2, 3.2)
    assert blur_limit_mm(coarse) == pytest.approx(1.6) and MAX_EDGE_BLUR_MM < 1.6
    note = blurred_slices_note(blurred, coarse)
    assert note.startswith("4 slices with lung (4-6, 10) are blurred") and "more than 1.6 mm" in note
    assert "breathing" in note and "thick slice" in note
    assert "more than 1.25 mm" in blurred_slices_note(blurred, (1.0, 0.7, 0.7)) == blurred_slices_note(blurred)
    assert blurred_slices_note(np.zeros(30, bool), coarse) is None


def test_the_lung_slice_rule_says_how_many_were_too_blurred():
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.assess import not_assessable_reason

    volume = Volume(np.zeros((40, 64, 64), np.int16), (5.0, 2.0, 2.0))
    lung = np.zeros(volume.array.shape, np.uint8)
    lung[:, 10:50, 10:50] = 1  # 40 slices of 32 mL
    scored = np.zeros(40, bool)
    scored[:3] = True
    reason = not_assessable_reason(volume, lung, scored, 5, None, None, blurred=37)
    assert reason.startswith("Only 3 slices carry lung sharp enough to read (37 more are blurred)"), reason
