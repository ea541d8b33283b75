"""Undo/redo as compressed deltas, and the slice tools."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.session import tools
from jcs_viewer.session.labels import LabelLayer


@pytest.fixture
def layer():
    return LabelLayer(np.zeros((6, 64, 80), np.uint8), undo_depth=5)


def test_stroke_is_one_undo_step_and_redo_restores(layer):
    with layer.stroke("brush"):
        layer.paint_disk(2, (20, 20), 4, 1)
        layer.paint_disk(2, (24, 30), 4, 1)
        layer.paint_disk(3, (24, 30), 4, 1)
    painted = layer.data.copy()
    assert painted[2, 20, 20] == 1 and painted[3, 24, 30] == 1
    assert layer.undo_labels() == ["brush"]
    assert layer.undo() == "brush"
    assert not layer.data.any()
    assert layer.redo() == "brush"
    np.testing.assert_array_equal(layer.data, painted)


def test_undo_order_is_last_in_first_out(layer):
    states = [layer.data.copy()]
    for i, z in enumerate((1, 2, 3)):
        with layer.stroke(f"s{i}"):
            layer.paint_disk(z, (10 + 5 * i, 10), 3, 1)
        states.append(layer.data.copy())
    for expected in reversed(states[:-1]):
        layer.undo()
        np.testing.assert_array_equal(layer.data, expected)
    assert layer.undo() is None


def test_new_edit_clears_redo(layer):
    with layer.stroke("a"):
        layer.paint_disk(1, (10, 10), 3, 1)
    layer.undo()
    assert layer.can_redo
    with layer.stroke("b"):
        layer.paint_disk(1, (30, 30), 3, 1)
    assert not layer.can_redo and layer.redo() is None


def test_depth_cap_drops_oldest(layer):
    for i in range(8):
        with layer.stroke(f"s{i}"):
            layer.paint_disk(i % 6, (5 + 6 * i, 40), 2, 1)
    assert layer.undo_labels() == [f"s{i}" for i in range(3, 8)]
    for _ in range(5):
        assert layer.undo() is not None
    assert layer.undo() is None
    # The three oldest strokes could not be undone and remain painted.
    assert layer.data.sum() > 0


def test_eraser_and_hu_limited_brush(layer):
    hu = np.full((64, 80), -900, np.int16)
    hu[:, 40:] = -500
    allowed = tools.hu_allowed(hu, (-800, 100))
    with layer.stroke("brush"):
        layer.paint_disk(0, (32, 40), 10, 1, allowed=allowed)
    assert layer.data[0, 32, 45] == 1 and layer.data[0, 32, 35] == 0
    with layer.stroke("eraser"):
        layer.paint_disk(0, (32, 45), 3, 0)
    assert layer.data[0, 32, 45] == 0 and layer.data[0, 32, 49] == 1


def test_empty_stroke_records_nothing(layer):
    with layer.stroke("noop"):
        layer.paint_disk(0, (10, 10), 3, 0)
    assert not layer.can_undo and layer.revision == 0


def test_brush_is_circular_in_mm_on_anisotropic_pixels(layer):
    ry, rx = tools.brush_radius_px(4.0, (0.5, 1.0))
    with layer.stroke():
        layer.paint_disk(0, (32, 40), (ry, rx), 1)
    rows = np.flatnonzero(layer.data[0].any(axis=1))
    cols = np.flatnonzero(layer.data[0].any(axis=0))
    assert (rows[-1] - rows[0] + 1) * 0.5 == pytest.approx(8.5, abs=0.6)
    assert (cols[-1] - cols[0] + 1) * 1.0 == pytest.approx(9.0, abs=1.1)


def test_fill_holes_and_remove_islands_and_clear(layer):
    ring = np.zeros((64, 80), bool)
    yy, xx = np.ogrid[:64, :80]
    d = (yy - 30) ** 2 + (xx - 30) ** 2
    ring[(d <= 100) & (d >= 25)] = True
    layer.paint_mask(1, ring, 1)
    layer.paint_mask(1, (yy == 60) & (xx == 70), 1)  # a one-pixel island
    assert layer.data[1, 30, 30] == 0
    assert tools.fill_holes(layer, 1)
    assert layer.data[1, 30, 30] == 1
    assert tools.remove_islands(layer, 1, min_area_mm2=2.0, pixel_spacing_yx=(1.0, 1.0))
    assert layer.data[1, 60, 70] == 0 and layer.data[1, 30, 30] == 1
    assert tools.clear_slice(layer, 1)
    assert not layer.data[1].any()
    layer.undo()
    assert layer.data[1, 30, 30] == 1


def test_reset_slice_and_accept_ai_are_undoable(layer):
    ai = np.zeros_like(layer.data)
    ai[2, 10:20, 10:20] = 1
    with layer.stroke():
        layer.paint_disk(2, (40, 40), 3, 1)
    assert tools.reset_slice(layer, 2, ai)
    np.testing.assert_array_equal(layer.data[2], ai[2])
    assert layer.undo() == "reset slice to AI"
    assert layer.data[2, 40, 40] == 1
    assert layer.replace_all(ai, "accept AI")
    np.testing.assert_array_equal(layer.data, ai)
    layer.undo()
    assert layer.data[2, 40, 40] == 1


def test_sphere_brush_spans_slices(layer):
    with layer.stroke("3-D brush"):
        tools.paint_ball(layer, (3, 32, 40), radius_mm=5.0, spacing_zyx=(2.0, 1.0, 1.0), value=1)
    painted_slices = np.flatnonzero(layer.data.any(axis=(1, 2)))
    assert painted_slices.tolist() == [1, 2, 3, 4, 5]
    assert layer.data[3].sum() > layer.data[1].sum() > 0  # the ball's sections shrink away from its centre
    assert layer.undo_labels() == ["3-D brush"]
    # A range-limited ball paints only the allowed pixels of each slice it crosses, and stops at the volume's end.
    allowed = np.zeros(layer.data.shape[1:], bool)
    allowed[:, 45:] = True
    with layer.stroke("3-D brush"):
        tools.paint_ball(layer, (0, 32, 40), radius_mm=5.0, spacing_zyx=(2.0, 1.0, 1.0), value=2,
                         allowed=lambda z: allowed)
    assert (layer.data[0][:, :45] != 2).all() and (layer.data[0][:, 45:] == 2).any()


def test_listener_gets_changed_z_range(layer):
    seen = []
    layer.add_listener(seen.append)
    with layer.stroke():
        layer.paint_disk(4, (10, 10), 2, 1)
    layer.undo()
    assert seen == [slice(4, 5), slice(4, 5)]


def _realistic_strokes(rng, n_slices, size, spacing):
    """100 strokes as readers make them on a chest CT: drags of 30-150 mm with brushes of 3-25 mm
    radius (80 brush, 10 eraser), and 10 strokes with the 3-D ball brush (8-15 mm, across slices)."""
    sz, sy, sx = spacing
    strokes = []
    for i in range(100):
        kind = "ball" if i % 10 == 9 else ("eraser" if i % 5 == 4 else "brush")
        radius_mm = float(rng.uniform(8, 15) if kind == "ball" else rng.uniform(3, 25))
        length_mm = float(rng.uniform(30, 150))
        z = int(rng.integers(20, n_slices - 20))
        y0, x0 = rng.uniform(0.3 * size, 0.7 * size), rng.uniform(0.15 * size, 0.85 * size)
        angle, bend = rng.uniform(0, 2 * np.pi), rng.uniform(-1.0, 1.0)
        t = np.linspace(0.0, 1.0, 40)  # 40 mouse moves along a gently curved path
        heading = angle + bend * t
        ys = y0 + np.cumsum(np.sin(heading)) * length_mm / 40 / sy
        xs = x0 + np.cumsum(np.cos(heading)) * length_mm / 40 / sx
        path = list(zip(np.clip(ys, 0, size - 1), np.clip(xs, 0, size - 1)))
        strokes.append((kind, z, radius_mm, path))
    return strokes


def test_history_of_100_realistic_strokes_on_a_full_study_stays_under_50_mb():
    # 300 x 512 x 512 at 1.0 x 0.7 x 0.7 mm. Worst case for compression: the strokes paint over
    # random labels, so the stored previous values do not compress to nothing.
    n_slices, size, spacing = 300, 512, (1.0, 0.7, 0.7)
    noise = (np.random.default_rng(0).random((n_slices, size, size), np.float32) < 0.5).astype(np.uint8)
    layer = LabelLayer(noise, undo_depth=100)
    rng = np.random.default_rng(1)
    box_voxels = 0
    before_last = None
    strokes = _realistic_strokes(rng, n_slices, size, spacing)
    for i, (kind, z, radius_mm, path) in enumerate(strokes):
        value = 0 if kind == "eraser" else 1
        if i == len(strokes) - 1:
            before_last = layer.data.copy()
        before = len(layer.undo_labels())
        with layer.stroke(kind):
            for cy, cx in path:
                if kind != "ball":
                    layer.paint_disk(z, (cy, cx), tools.brush_radius_px(radius_mm, spacing[1:]), value)
                    continue
                reach = int(radius_mm // spacing[0])
                for dz in range(-reach, reach + 1):  # as the window's 3-D brush: a ball of discs
                    r = np.sqrt(max(radius_mm ** 2 - (dz * spacing[0]) ** 2, 0.0))
                    if r > 0:
                        layer.paint_disk(z + dz, (cy, cx), tools.brush_radius_px(r, spacing[1:]), value)
        assert len(layer.undo_labels()) == before + 1, "every stroke is one undo step"
        ys, xs = np.array(path).T
        reach_px = radius_mm / spacing[1]
        box_voxels += int((np.ptp(ys) + 2 * reach_px) * (np.ptp(xs) + 2 * reach_px)
                          * (2 * int(radius_mm // spacing[0]) + 1 if kind == "ball" else 1))
    assert len(layer.undo_labels()) == 100
    # Not tiny strokes: their boxes hold millions of voxels (the 20-dab 10 mm drags this test used
    # to paint held ~0.5 million in all).
    assert box_voxels > 2 * 2**20
    assert layer.history_nbytes < 50 * 2**20
    # Bounding boxes and old values only: less than the boxes' raw bytes (whole slices would not be).
    assert layer.history_nbytes < box_voxels
    print(f"undo history for 100 realistic strokes ({box_voxels / 2**20:.1f} Mvoxels in their boxes): "
          f"{layer.history_nbytes / 2**20:.2f} MiB")
    # The compact record is complete: undoing the last (3-D) stroke restores its voxels exactly.
    assert layer.undo() == "ball"
    np.testing.assert_array_equal(layer.data, before_last)


def test_bench_edit_prints_its_figures(capsys):
    """``jcs-viewer bench edit`` paints its 100 realistic strokes and prints one JSON object."""
    import json

    from jcs_viewer.cli import main
    from jcs_viewer.session.bench import realistic_strokes

    strokes = realistic_strokes(40, (8.0, 0.7, 0.7))
    kinds = [kind for kind, *_ in strokes]
    assert (kinds.count("brush"), kinds.count("eraser"), kinds.count("3-D brush")) == (80, 10, 10)
    assert all(3 <= radius <= 25 and len(path) == 40 for _, _, radius, path in strokes)
    assert main(["bench", "edit", "--slices", "40", "--repeats", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["study"] == "40x512x512"
    assert 0 < report["undo_history_100_strokes_kib"] < 50 * 1024


def _disc(shape, cy, cx, r):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_interpolation_between_two_drawn_slices_blends_their_shapes():
    data = np.zeros((12, 64, 64), np.uint8)
    data[2][_disc((64, 64), 30, 30, 6)] = 1
    data[8][_disc((64, 64), 30, 36, 12)] = 1
    layer = LabelLayer(data)
    assert tools.interpolate_between(layer, [2, 8, 11]) == [(2, 8), (8, 11)]  # 11 (edited, empty): a taper
    areas = [int(layer.data[z].sum()) for z in range(2, 9)]
    assert areas == sorted(areas) and areas[0] < areas[3] < areas[-1]  # grows from the small to the large disc
    centres = [np.nonzero(layer.data[z])[1].mean() for z in range(2, 9)]
    assert centres == sorted(centres)  # and moves from one centre to the other
    assert layer.data[8].sum() > layer.data[9].sum() > layer.data[10].sum() and not layer.data[11].any()
    assert layer.undo_labels() == ["interpolate"]  # one undo step for both gaps
    layer.undo()
    assert not layer.data[3:8].any() and not layer.data[9:].any()
    # A lesion drawn on one slice only and an empty slice beyond: it tapers to nothing.
    layer = LabelLayer(data.copy())
    layer.replace_region((slice(8, 9), slice(None), slice(None)), np.zeros((1, 64, 64), np.uint8), "clear")
    assert tools.interpolate_between(layer, [2, 8], max_gap=5) == [(2, 8)]
    areas = [int(layer.data[z].sum()) for z in range(3, 8)]
    assert areas == sorted(areas, reverse=True) and areas[-1] == 0
    assert not tools.interpolate_between(LabelLayer(np.zeros((5, 8, 8), np.uint8)), [0, 4])  # nothing to blend


def test_grow_region_stays_in_range_connected_and_inside_the_allowed_area():
    hu = np.full((64, 64), -900.0)  # aerated lung
    hu[10:30, 10:30] = -500.0  # a ground-glass patch
    hu[10:30, 40:50] = -500.0  # another, not connected
    hu[30:40, 10:30] = 40.0  # soft tissue next to the patch
    lungs = np.ones((64, 64), bool)
    lungs[:, 25:] = False  # the patch crosses the lung border
    layer = LabelLayer(np.zeros((3, 64, 64), np.uint8))
    added = tools.grow_region(layer, 1, (15, 15), hu, (-750.0, -300.0), within=lungs)
    assert added == 20 * 15 and layer.data[1, 10:30, 10:25].all()
    assert not layer.data[1, :, 25:].any() and not layer.data[1, 30:].any() and not layer.data[[0, 2]].any()
    assert tools.grow_region(layer, 1, (50, 50), hu, (-750.0, -300.0)) == 0  # clicked on aerated lung
    assert layer.undo_labels() == ["grow region"]
