"""``jcs-viewer gui --view axial|1x3|3d``: the start view, and screenshots of the 3-D tab (offscreen Qt).

On the offscreen platform VTK's Qt widget cannot draw (the 3-D tab shows its fallback), so a 3-D
screenshot run must say so and exit 2 rather than save a picture without the meshes and exit 0. The
drawn case runs against the bundle on X (tests/test_packaging.py, slow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("vtkmodules")

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path / "config"))
    volume, lung, lesion = synthetic_volume(n_slices=12, size=96, seed=2)
    win = MainWindow(settings=SettingsStore(tmp_path / "s.ini"),
                     analyze=lambda vol, **kw: synthetic_result(vol, lung, lesion, cam_size=16),
                     load_study=lambda path, series_uid=None: volume)
    qtbot.addWidget(win)
    yield win
    win.views.shutdown()


def test_3d_screenshot_without_opengl_says_why_and_exits_2(qtbot, window, tmp_path, capfd):
    window.screenshot_path = tmp_path / "shot.png"
    window.views.show_3d()
    window.show()
    window.open_path(Path("/synthetic.nii.gz"))
    qtbot.waitUntil(lambda: window.screenshot_path is None, timeout=60000)
    assert window.exit_code == 2
    assert (tmp_path / "shot.png").is_file()  # the picture is still written, for the record
    err = capfd.readouterr().err
    assert "the 3-D view shows nothing:" in err and "offscreen" in err


def test_slices_screenshot_is_unaffected(qtbot, window, tmp_path):
    window.screenshot_path = tmp_path / "shot.png"
    window.views.set_layout("1x3")
    window.show()
    window.open_path(Path("/synthetic.nii.gz"))
    qtbot.waitUntil(lambda: window.screenshot_path is None, timeout=60000)
    assert window.exit_code == 0 and window.views.layout_mode == "1x3"
    assert window.views.tabs.currentWidget() is not window.views.three_d


def test_an_unattended_screenshot_run_never_waits_on_the_series_picker(qtbot, tmp_path, monkeypatch):
    """Issue 15, item 12: ``gui --screenshot … --quit-after-analysis`` on a folder of two series hung on the picker."""
    from jcs_viewer.io import load_study, write_demo_study

    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    root = tmp_path / "two_series"
    write_demo_study(root / "a", n_slices=8, seed=1, size=64)
    write_demo_study(root / "b", n_slices=12, seed=2, size=64)
    def analyze(vol, **kw):  # a whole result: under load the analysis may end before the test looks
        return synthetic_result(vol, vol.array < -400, np.zeros(vol.array.shape, bool), cam_size=16)

    win = MainWindow(settings=SettingsStore(tmp_path / "s.ini"), analyze=analyze, load_study=load_study)
    qtbot.addWidget(win)
    asked = []
    win.pick_series = lambda folder, entries: asked.append(entries)  # a dialog here would block the run
    win.screenshot_path = tmp_path / "shot.png"
    win.open_path(root)
    qtbot.waitUntil(lambda: win.state.volume is not None or win.last_error is not None, timeout=20000)
    assert not asked and win.last_error is None
    assert win.state.volume.n_slices == 12  # the series analyze takes: the CT series with the most slices
    win.views.shutdown()


def test_a_pending_screenshot_never_fires_into_a_closed_window(qtbot, tmp_path):
    """The screenshot run's delayed save is bound to its window: a window closed before the delay ends (a test's
    teardown, a user quitting) is never called into. A bare timer with a lambda failed a later test in CI with
    "Internal C++ object (MainWindow) already deleted" raised in the Qt event loop."""
    import shiboken6

    volume, lung, lesion = synthetic_volume(n_slices=6, size=64, seed=3)
    win = MainWindow(settings=SettingsStore(tmp_path / "s.ini"),
                     analyze=lambda vol, **kw: synthetic_result(vol, lung, lesion, cam_size=16),
                     load_study=lambda path, series_uid=None: volume)
    win.screenshot_path = tmp_path / "shot.png"
    win.finish_screenshot_later(0, 50)
    win.views.shutdown()
    shiboken6.delete(win)
    qtbot.wait(200)  # pytest-qt fails the test on an exception raised in the event loop meanwhile
    assert not (tmp_path / "shot.png").exists()
