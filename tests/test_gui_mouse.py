"""Mouse schemes (issue 19, item 4): real drags on the slice views do what the reader's scheme says; the scheme is
a setting that applies at once; the help lists it as a table; a double-click maximises one pane of the 1×3 layout."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from jcs_viewer.gui import mouse  # noqa: E402
from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402


@pytest.fixture(scope="module")
def study():
    volume, lung, lesion = synthetic_volume(n_slices=30, size=128, seed=5)
    return volume, synthetic_result(volume, lung, lesion, cam_size=16)


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch, study):
    config = tmp_path / "config"
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(config))
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_RESTORE_SESSION", "never")

    def make(**settings_values):
        settings = SettingsStore(config / "settings.ini")
        settings.update(auto_analyze=False, **settings_values)
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        window.resize(1400, 860)
        window.show()
        window.state.set_volume(study[0])
        window.state.set_result(study[1])
        qtbot.waitExposed(window)
        return window
    return make


def _drag(graphics_view, button, dx=60, dy=-40, steps=6):
    """Press ``button`` in the middle of the view, move by (dx, dy) pixels in steps, release: as a hand would."""
    viewport = graphics_view.viewport()
    start = QPointF(viewport.width() / 2, viewport.height() / 2)

    def send(kind, pos, pressed):
        event = QMouseEvent(kind, pos, QPointF(viewport.mapToGlobal(pos.toPoint())),
                            button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton, pressed,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)

    # pyqtgraph drops mouse moves that come sooner than 1/mouseRateLimit s after the last one it took: spaced as a
    # hand's are, or a drag that follows another at once could lose every move and end as a click.
    gap_s = 1.5 / max(1.0, float(pg.getConfigOption("mouseRateLimit")))
    send(QEvent.Type.MouseButtonPress, start, button)
    for i in range(1, steps + 1):
        time.sleep(gap_s)
        send(QEvent.Type.MouseMove, start + QPointF(dx * i / steps, dy * i / steps), button)
    end = start + QPointF(dx, dy)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def _double_click(graphics_view):
    viewport = graphics_view.viewport()
    pos = QPointF(viewport.width() / 2, viewport.height() / 2)
    glob = QPointF(viewport.mapToGlobal(pos.toPoint()))
    left = Qt.MouseButton.LeftButton
    none = Qt.MouseButton.NoButton
    for kind, buttons in ((QEvent.Type.MouseButtonPress, left), (QEvent.Type.MouseButtonRelease, none),
                          (QEvent.Type.MouseButtonDblClick, left), (QEvent.Type.MouseButtonRelease, none)):
        QApplication.sendEvent(viewport, QMouseEvent(kind, pos, glob, left, buttons, Qt.KeyboardModifier.NoModifier))
    QApplication.processEvents()


def _view_state(window):
    (x0, x1), (y0, y1) = window.slice_view.view.viewRange()
    return {"window": tuple(window.state.window), "centre": ((x0 + x1) / 2, (y0 + y1) / 2), "width": x1 - x0}


def _changes(before, after):
    return {"window": before["window"] != after["window"],
            "pan": not np.allclose(before["centre"], after["centre"], atol=0.5),
            "zoom": not np.isclose(before["width"], after["width"], rtol=1e-3)}


def test_reading_room_is_the_default_left_window_middle_pan_right_zoom(make_window):
    window = make_window()
    assert window.state.mouse_scheme == "reading-room"
    seen = {}
    for name, button in (("left", Qt.MouseButton.LeftButton), ("middle", Qt.MouseButton.MiddleButton),
                         ("right", Qt.MouseButton.RightButton)):
        before = _view_state(window)
        _drag(window.slice_view, button)
        seen[name] = _changes(before, _view_state(window))
    # On failure, say what each drag changed.
    assert seen["left"] == {"window": True, "pan": False, "zoom": False}, seen
    assert seen["middle"]["pan"] and not seen["middle"]["window"] and not seen["middle"]["zoom"], seen
    assert seen["right"]["zoom"] and not seen["right"]["window"], seen
    assert window.state.preset == "custom"  # the left drag left the lung preset


def test_the_pan_first_scheme_from_settings_applies_at_once(make_window):
    window = make_window(mouse_scheme="pan-first")
    assert window.state.mouse_scheme == "pan-first"
    before = _view_state(window)
    _drag(window.slice_view, Qt.MouseButton.LeftButton)
    after = _view_state(window)
    assert _changes(before, after) == {"window": False, "pan": True, "zoom": False}
    _drag(window.slice_view, Qt.MouseButton.RightButton)
    assert _changes(after, _view_state(window))["window"]
    # The Settings dialog's choice takes effect without a restart.
    window.apply_settings(window.settings.update(mouse_scheme="reading-room"))
    before = _view_state(window)
    _drag(window.slice_view, Qt.MouseButton.LeftButton)
    assert _changes(before, _view_state(window)) == {"window": True, "pan": False, "zoom": False}


def test_the_coronal_view_follows_the_scheme_too(make_window):
    window = make_window(default_layout="1x3")
    coronal = window.views.panel.coronal
    before = tuple(window.state.window)
    _drag(coronal, Qt.MouseButton.LeftButton)
    assert tuple(window.state.window) != before


def test_double_click_maximises_one_pane_of_the_1x3_layout_and_restores_it(make_window, qtbot):
    window = make_window(default_layout="1x3")
    panel = window.views.panel
    panes = [panel.slice_view, panel.coronal, panel.sagittal]
    qtbot.waitUntil(lambda: all(p.isVisible() and p.width() > 50 for p in panes))
    widths = panel.sizes()
    _double_click(panel.sagittal)
    assert panel.maximised is panel.sagittal
    assert [p.isVisible() for p in panes] == [False, False, True]
    _double_click(panel.sagittal)
    assert panel.maximised is None and all(p.isVisible() for p in panes)
    qtbot.waitUntil(lambda: panel.sizes() == widths)
    # In the axial-only layout a double-click changes nothing; switching layout starts from the three panes.
    _double_click(panel.slice_view)
    assert panel.maximised is panel.slice_view
    panel.set_layout("axial")
    assert panel.maximised is None and panel.slice_view.isVisible()
    _double_click(panel.slice_view)
    assert panel.maximised is None


def test_the_help_is_a_table_of_the_scheme_in_force():
    html = mouse.help_html(mouse.scheme("pan-first"))
    assert "<table" in html and "Left drag</b></td><td>pan" in html and "Right drag</b></td><td>window / level" in html
    assert "Left drag</b></td><td>window / level" in mouse.help_html(mouse.scheme("reading-room"))
    assert mouse.scheme("no such scheme").name == mouse.DEFAULT_SCHEME  # an old settings file
