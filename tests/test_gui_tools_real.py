"""The reading-room tools of issue 19 on real CT, in the real window with the shipped models (pytest-qt): the mouse
scheme, grow and interpolation on a real thorax (Chest Imaging Platform), the ruler and ellipse on a real COVID slice
(COVID-19-NY-SBU) down to the DICOM SR, read back by highdicom and checked by dciodvfy."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_data_path
from test_export_support import dciodvfy, require_tools

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from helpers_gui import open_window  # noqa: E402
from test_gui_editing import drag, key, view_point  # noqa: E402
from test_gui_mouse import _changes, _drag, _view_state  # noqa: E402

THORAX = ("real_ct_small", "chest_imaging_platform", "ct-64.nrrd")
COVID_SLICE = ("covid19_ny_sbu_dicom_slices", "A002304", "axial", "19010112-135.dcm")


@pytest.fixture
def real_window(qtbot, tmp_path, monkeypatch, pixel_size_rule):
    """A window that opens a real study and analyses it with the shipped models (the app's own pixel-size gate)."""
    def make(*parts):
        path = shared_data_path(*parts)
        if not path.exists():
            pytest.skip(f"{path} is not here")
        window = open_window(qtbot, tmp_path, monkeypatch, auto_analyze=True)
        window.open_path(path)
        qtbot.waitUntil(lambda: bool(window.editing.session is not None and not window.busy or window.last_error),
                        timeout=180000)
        assert window.last_error is None, window.last_error
        return window
    return make


def test_mouse_grow_and_interpolation_on_a_real_thorax(real_window, qtbot):
    window = real_window(*THORAX)
    session, c, state = window.editing.session, window.editing.controller, window.state
    volume, lung = state.volume, session.ai_result.lung_mask
    # The reading-room mouse on real pixels: left drag is window/level (the three buttons: test_gui_mouse.py).
    qtbot.wait(300)  # the view has settled after the result arrived
    before = _view_state(window)
    _drag(window.slice_view, Qt.MouseButton.LeftButton)
    assert _changes(before, _view_state(window)) == {"window": True, "pan": False, "zoom": False}
    # Grow from a click in aerated lung (-1000 to -700 HU): the connected region, in range, inside the AI's lungs.
    z = int(np.argmax(lung.reshape(lung.shape[0], -1).sum(axis=1)))
    state.set_slice(z)
    key(qtbot, window, Qt.Key.Key_G)
    c.set_hu_limit(False, -1000.0, -700.0)
    hu = volume.array[z]
    ok = (lung[z] > 0) & (hu >= -1000) & (hu <= -700)
    sure = ok[1:-1, 1:-1] & ok[:-2, 1:-1] & ok[2:, 1:-1] & ok[1:-1, :-2] & ok[1:-1, 2:]
    y, x = (int(v) for v in np.argwhere(sure)[len(np.argwhere(sure)) // 2] + 1)
    before = session.labels.data[z].copy()
    QTest.mouseClick(window.slice_view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, x, y))
    grown = (session.labels.data[z] > 0) & (before == 0)
    assert grown[y, x] and grown.sum() > 20
    assert ((hu[grown] >= -1000) & (hu[grown] <= -700)).all() and (lung[z][grown] > 0).all()
    assert session.labels.undo_labels()[-1] == "grow region"
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.labels.data[z], before)
    # Interpolation between two painted slices four apart, across the real lung.
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(2.0)
    ys, xs = np.nonzero(lung[z])
    cy, cx = int(np.median(ys)), int(np.median(xs))
    for zz in (z - 2, z + 2):
        state.set_slice(zz)
        drag(qtbot, window, [(cx - 2, cy), (cx + 2, cy)])
    QTest.keyClick(window.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert session.labels.undo_labels()[-1] == "interpolate"
    assert all(session.labels.data[zz, cy, cx] for zz in range(z - 1, z + 2))


def test_ruler_and_ellipse_on_a_real_covid_slice_reach_the_dicom_sr(real_window, qtbot, tmp_path):
    import highdicom as hd

    window = real_window(*COVID_SLICE)
    session, state = window.editing.session, window.state
    volume = state.volume
    _, sy, sx = volume.spacing
    key(qtbot, window, Qt.Key.Key_L)
    drag(qtbot, window, [(150, 250), (250, 250), (350, 250)])  # across the chest, 200 pixels
    key(qtbot, window, Qt.Key.Key_O)
    drag(qtbot, window, [(130, 230), (150, 250), (170, 270)])  # in the right lung's consolidation
    ruler, ellipse = session.measurements
    assert ruler.length_mm((sy, sx)) == pytest.approx(200 * sx, rel=0.03)
    stats = ellipse.stats(volume.array[0], (sy, sx))
    assert -1000 < stats["mean"] < 200 and stats["sd"] > 0  # real lung tissue, not air or bone
    window.exports.export_segmentation(folder=tmp_path / "out")
    qtbot.waitUntil(lambda: bool("results_sr" in window.exports.last_written or window.last_error), timeout=60000)
    assert window.last_error is None, window.last_error
    sr = hd.sr.srread(window.exports.last_written["results_sr"])
    rois = sr.content.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in rois] == ["Reader ruler 1 (slice 1)", "Reader ellipse 2 (slice 1)"]
    length = {m.name.meaning: m.value for m in rois[0].get_measurements()}
    assert length["Length"] == pytest.approx(ruler.length_mm((sy, sx)), abs=1e-3)
    require_tools("dciodvfy")
    errors, _ = dciodvfy(window.exports.last_written["results_sr"])
    assert errors == [], errors
