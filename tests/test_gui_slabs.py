"""Slabs (issue 19, item 2): MIP, MinIP and average over a thickness in mm, in the axial view and the reformats,
set from the Layers panel; on a real CT volume."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_data_path
from jcs_viewer.gui.reformat import slab

pytest.importorskip("pytestqt")

from helpers_gui import open_window  # noqa: E402


def test_slab_projections_by_hand():
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 400, size=(20, 8, 9)).astype(np.int16)
    assert np.shares_memory(slab(volume, 0, 5, 10.0, 2.5, "off"), volume)  # off: the slice itself, no copy
    np.testing.assert_array_equal(slab(volume, 0, 5, 10.0, 2.5, "mip"), volume[3:8].max(axis=0))  # 2 each side
    np.testing.assert_array_equal(slab(volume, 0, 0, 10.0, 2.5, "minip"), volume[0:3].min(axis=0))  # cut at the end
    np.testing.assert_allclose(slab(volume, 1, 4, 2.0, 1.0, "mean"), volume[:, 3:6].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(slab(volume, 2, 8, 4.0, 1.0, "mip"), volume[:, :, 6:9].max(axis=2))
    # A slab thinner than two slices is the slice.
    np.testing.assert_array_equal(slab(volume, 0, 7, 1.0, 2.5, "mip"), volume[7])
    with pytest.raises(ValueError, match="unknown slab mode"):
        slab(volume, 0, 7, 10.0, 1.0, "maximum")


@pytest.fixture
def real_window(qtbot, tmp_path, monkeypatch):
    from jcs_viewer.io import load_study

    volume = load_study(shared_data_path("real_ct_small", "chest_imaging_platform", "ct-64.nrrd"))
    window = open_window(qtbot, tmp_path, monkeypatch, auto_analyze=False, default_layout="1x3")
    window.state.set_volume(volume)
    return window, volume


def test_mip_and_minip_from_the_layers_panel_on_a_real_volume(real_window, qtbot):
    window, volume = real_window
    state, panel = window.state, window.layers_panel
    z = volume.array.shape[0] // 2
    state.set_slice(z)
    sz = float(volume.spacing[0])
    half = int(round(10.0 / sz / 2))
    shown = lambda: np.asarray(window.slice_view.image.image)  # noqa: E731 - read at call time
    np.testing.assert_array_equal(shown(), volume.array[z])
    panel.slab_mode.setCurrentIndex(panel.slab_mode.findData("mip"))
    panel.slab_mm.setValue(10.0)
    assert (state.layers.slab_mode, state.layers.slab_mm) == ("mip", 10.0)
    expected = volume.array[max(0, z - half): z + half + 1].max(axis=0)
    np.testing.assert_array_equal(shown(), expected)
    assert half >= 1 and (shown() > volume.array[z]).any()  # the vessels of the neighbouring slices show
    assert "MIP slab 10 mm" in window.slice_view.corners.texts()["bottom_left"]
    # The coronal reformat projects the rows around its plane.
    coronal = window.views.panel.coronal
    qtbot.waitUntil(lambda: coronal.image.image is not None)
    y = coronal.index
    half_y = int(round(10.0 / float(volume.spacing[1]) / 2))
    np.testing.assert_array_equal(np.asarray(coronal.image.image),
                                  volume.array[:, max(0, y - half_y): y + half_y + 1, :].max(axis=1))
    # MinIP: the airways and lung darker than any single slice; moving the slice moves the slab.
    panel.slab_mode.setCurrentIndex(panel.slab_mode.findData("minip"))
    state.set_slice(z + 3)
    np.testing.assert_array_equal(shown(), volume.array[max(0, z + 3 - half): z + 3 + half + 1].min(axis=0))
    panel.slab_mode.setCurrentIndex(panel.slab_mode.findData("off"))
    np.testing.assert_array_equal(shown(), volume.array[z + 3])
    assert not panel.slab_mm.isEnabled()
