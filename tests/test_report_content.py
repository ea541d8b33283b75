"""Report content without layout: key-slice choice, zone table, overlays that survive grey print, headless imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from jcs_viewer.vocabulary import compress_ranges
from jcs_viewer.report.content import (
    build_content,
    edited_slice_indices,
    lesion_table_by_lung_and_zone,
    pick_key_slices,
)
from jcs_viewer.report.images import Crop, cam_overlay, field_of_view, lesion_overlay
from jcs_viewer.report.plots import runs, score_plot
from test_export_support import make_study


def test_key_slices_are_the_most_involved_spread_out_plus_confirmed():
    n = 60
    area = np.zeros(n)
    area[20:31] = np.arange(11) * 10.0  # peak at 30, neighbours almost as big
    area[45] = 55.0
    prob = np.linspace(0, 1, n)
    positions = np.arange(n) * 2.0 - 50
    review = {5: "confirmed", 29: "rejected", 30: "confirmed"}
    keys = pick_key_slices(area, prob, review, positions, max_involved=3, max_confirmed=2)
    by_index = {k.index: k for k in keys}
    assert list(by_index) == sorted(by_index)
    assert 30 in by_index and 45 in by_index
    involved = [k.index for k in keys if "most involved" in k.reason]
    assert len(involved) == 3 and min(np.diff(sorted(involved))) >= n // 15  # no near-duplicate neighbours
    assert by_index[30].reason == "most involved, reviewer-confirmed"
    assert by_index[5].reason == "reviewer-confirmed" and by_index[5].position_mm == -40.0
    assert by_index[30].review_state == "confirmed"


def test_key_slices_without_lesions_show_the_highest_scores():
    prob = np.array([0.1, 0.9, 0.2, 0.8, 0.3])
    keys = pick_key_slices(np.zeros(5), prob, {}, np.arange(5.0))
    assert [k.index for k in keys] == [1, 3] and all(k.reason == "highest score" for k in keys)


def test_zone_table_splits_the_quantification_by_lung(tmp_path):
    volume, result = make_study(tmp_path, n_slices=12, size=48)
    table = lesion_table_by_lung_and_zone(volume, result.lung_mask, result.lesion_mask)
    q = result.quant
    for side in ("right", "left"):
        assert np.isclose(sum(row[side] for row in table.values()), q.lesion_volume_ml[side])
    assert table["upper"]["total"] > 0 or table["lower"]["total"] > 0
    for zone in ("upper", "middle", "lower"):
        assert np.isclose(table[zone]["total"], q.zones[zone])


def test_content_uses_the_edited_mask_and_lists_edits(tmp_path):
    volume, result = make_study(tmp_path, n_slices=12, size=48)
    edited = result.lesion_mask.copy()
    edited[1, 20:24, 10:14] = 1
    content = build_content(result, volume, edited_mask=edited, review={1: "confirmed", 3: "rejected"})
    assert content.edited and content.edited_slices == [1] == edited_slice_indices(result.lesion_mask, edited)
    assert np.isclose(content.quant.lesion_volume_ml["total"], edited.sum() * np.prod(volume.spacing) / 1000)
    assert content.confirmed == [1] and content.rejected == [3]
    unchanged = build_content(result, volume, edited_mask=result.lesion_mask.copy())
    assert not unchanged.edited and unchanged.quant is result.quant


def test_review_state_object_is_accepted(tmp_path):
    from jcs_viewer.session.review import ReviewState

    volume, result = make_study(tmp_path, n_slices=12, size=48)
    state = ReviewState(flagged=np.flatnonzero(result.slice_positive))
    state.confirm(5)
    state.reject(6)
    content = build_content(result, volume, review=state)
    assert content.review == {5: "confirmed", 6: "rejected"}
    assert any(k.index == 5 and "reviewer-confirmed" in k.reason for k in content.key_slices)


def test_lesion_overlay_reads_in_grey():
    gray = np.full((40, 40), 60, np.uint8)
    lesion = np.zeros((40, 40), bool)
    lesion[10:30, 12:28] = True
    rgb = lesion_overlay(gray, lesion)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.all(luma[29, 14:26] > 250)  # white inner edge on the lesion's bottom row
    assert np.all(luma[30:32, 14:26] < 5)  # 2-px black outer edge below it
    interior = luma[13:27, 15:25]
    assert interior.max() - interior.min() > 40  # hatched: a texture, not a flat tint
    assert np.allclose(luma[:6], 60, atol=0.5)  # background away from the lesion untouched
    assert np.array_equal(lesion_overlay(gray, np.zeros_like(lesion))[..., 0], gray)


def test_activation_overlay_outlines_the_hot_region():
    gray = np.full((30, 30), 200, np.uint8)  # bright tissue, where colour alone is lost in grey
    cam = np.zeros((30, 30), np.uint8)
    cam[10:20, 10:20] = 255
    luma = cam_overlay(gray, cam) @ np.array([0.299, 0.587, 0.114])
    assert luma[9, 15] < 5 and luma[10, 15] > 250  # black outside, white inside the outline


def test_field_of_view_crops_to_lungs_with_square_pixels():
    lungs = np.zeros((3, 100, 200), bool)
    lungs[:, 30:70, 40:160] = True
    crop = field_of_view(lungs, (100, 200), (0.5, 1.0), max_px=300)
    assert isinstance(crop, Crop)
    assert 0 < crop.y0 < 30 and 70 < crop.y1 <= 100 and 0 < crop.x0 < 40 and 160 < crop.x1 <= 200
    h_mm, w_mm = (crop.y1 - crop.y0) * 0.5, (crop.x1 - crop.x0) * 1.0
    assert np.isclose(crop.out_w * crop.mm_per_px, w_mm, rtol=0.01)
    assert np.isclose(crop.out_h * crop.mm_per_px, h_mm, rtol=0.02)


def test_field_of_view_widens_to_include_hot_activation():
    lungs = np.zeros((3, 100, 200), bool)
    lungs[:, 30:70, 40:160] = True
    hot = np.zeros((100, 200), bool)
    hot[92:96, 10:20] = True  # below and left of the lungs
    plain = field_of_view(lungs, (100, 200), (1.0, 1.0))
    crop = field_of_view(lungs, (100, 200), (1.0, 1.0), include=hot)
    assert plain.y1 < 92 and plain.x0 > 10
    assert crop.y1 >= 96 and crop.x0 <= 10 and (crop.y0, crop.x1) == (plain.y0, plain.x1)
    assert field_of_view(lungs, (100, 200), (1.0, 1.0), include=np.zeros_like(hot)) == plain


def test_score_plot_area_axis_has_round_ticks():
    from reportlab.graphics.shapes import String

    area = np.array([0.0, 400.0, 1531.0, 20.0])
    d = score_plot(np.full(4, 0.6), 0.5, np.ones(4, bool), area, [2], width=400)
    right = sorted(float(s.text.replace(",", "")) for s in d.contents
                   if isinstance(s, String) and s.x > 400 - 46 and s.text.replace(",", "").isdigit())
    assert right == [0.0, 500.0, 1000.0, 1500.0]


def test_small_helpers():
    assert compress_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert compress_ranges([]) == "none"
    assert runs(np.array([0, 1, 1, 0, 1, 0, 1, 1, 1], bool)) == [(1, 2), (4, 4), (6, 8)]


def test_report_and_export_import_without_gui_packages():
    code = (
        "import sys, jcs_viewer.report.pdf, jcs_viewer.report.bundle, jcs_viewer.io.export\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'vtk')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
