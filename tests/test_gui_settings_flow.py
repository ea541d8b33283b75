"""Settings and About from the real main window's menus (pytest-qt, offscreen).

File ▸ Settings writes the INI file through the injected SettingsStore; the window's next analysis, a new window's
layout, the session autosave folder and the reviewer name follow it, and the headless core reads
the same file. Help ▸ About shows the version, the registered weights with their metrics and the
research-use notice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialogButtonBox  # noqa: E402

from jcs_viewer import RESEARCH_USE_NOTICE, __version__  # noqa: E402
from jcs_viewer.gui.about import AboutDialog  # noqa: E402
from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.settings_dialog import SettingsDialog  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.session.store import load_session  # noqa: E402
from jcs_viewer.settings import Settings, settings_path  # noqa: E402


@pytest.fixture(scope="module")
def study():
    return synthetic_volume(n_slices=12, size=96, seed=4)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path / "config"))
    return tmp_path


def make_window(qtbot, study, analyzed: list | None = None) -> MainWindow:
    """A window on the user's settings file (as the app opens it), with a stub analysis."""
    volume, lung, lesion = study

    def analyze(vol, options=None, progress=None, cancel=None, models=None):
        if analyzed is not None:
            analyzed.append(options)
        return synthetic_result(vol, lung, lesion, cam_size=16)

    window = MainWindow(settings=SettingsStore(), analyze=analyze, load_study=lambda path, series_uid=None: volume)
    qtbot.addWidget(window)
    window.show()
    return window


def run_modal(qtbot, trigger, handle, kind):
    """Trigger an action that opens a modal ``kind`` dialog; ``handle(dialog)`` must close it."""
    seen = []

    def poll():
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, kind):
            seen.append(dialog)
            handle(dialog)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)
    trigger()
    qtbot.waitUntil(lambda: bool(seen), timeout=20000)
    return seen[0]


def test_settings_from_the_menu_drive_the_window_and_the_headless_core(qtbot, env, study):
    autosave = env / "my sessions"
    window = make_window(qtbot, study)
    assert window.views.layout_mode == "axial"

    def fill(dialog: SettingsDialog) -> None:
        dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
        dialog.threshold.setValue(7)
        dialog.cutoff.setValue(0.4)
        dialog.auto_analyze.setChecked(True)
        dialog.autosave.setText(str(autosave))
        dialog.layout_combo.setCurrentIndex(dialog.layout_combo.findData("1x3"))
        dialog.reviewer.setText("Dr. Quinn, MD")
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()

    run_modal(qtbot, window.settings_action.trigger, fill, SettingsDialog)
    expected = Settings(device="cpu", slice_threshold=7, slice_cutoff=0.4, autosave_dir=str(autosave),
                        default_layout="1x3", reviewer_name="Dr. Quinn, MD")
    # The plain file the headless core reads (configparser, no Qt).
    assert Settings.load(settings_path()) == expected
    options = window.analysis_options()
    assert (options.device, options.threshold, options.slice_cutoff) == ("cpu", 7, 0.4)
    window.close()

    # A new window: default layout, and the analysis, session folder and reviewer from the settings.
    analyzed: list = []
    window = make_window(qtbot, study, analyzed)
    assert window.views.layout_mode == "1x3"
    window.open_path(env / "study.nii.gz")
    qtbot.waitUntil(lambda: window.editing.session is not None and not window.busy, timeout=20000)
    assert (analyzed[0].device, analyzed[0].threshold, analyzed[0].slice_cutoff) == ("cpu", 7, 0.4)
    session = window.editing.session
    assert session.reviewer == "Dr. Quinn, MD"
    window.state.review.confirm(3)
    session.flush()
    files = list(autosave.glob("*.jcssession"))
    assert len(files) == 1 and load_session(files[0]).reviewer == "Dr. Quinn, MD"
    assert not (env / "data" / "sessions").exists() or not list((env / "data" / "sessions").iterdir())


def test_help_about_shows_version_weights_metrics_and_notice(qtbot, env, study, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from jcs_viewer.models import build
    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry, save_weights

    folder = tmp_path / "weights"
    torch.manual_seed(0)
    digest = save_weights(build("jcs_cls_lite", width=0.25), folder / "tiny-cls.safetensors")
    add_manifest_entry(WeightsEntry(name="tiny-cls", task="cls", arch="jcs_cls_lite", file="tiny-cls.safetensors",
                                    sha256=digest, config={"width": 0.25}, metrics={"auc": 0.795, "n": 203},
                                    default=True, root=folder), folder)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))
    window = make_window(qtbot, study)
    about = next(a for a in window.menuBar().actions() if a.text().replace("&", "") == "Help").menu()
    action = next(a for a in about.actions() if "About" in a.text())
    seen = {}

    def inspect(dialog: AboutDialog) -> None:
        seen["title"] = dialog.title_label.text()
        seen["notice"] = dialog.notice_label.text()
        table = dialog.table
        seen["rows"] = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]
        dialog.reject()

    run_modal(qtbot, action.trigger, inspect, AboutDialog)
    assert f"Version {__version__}" in seen["title"]
    assert RESEARCH_USE_NOTICE in seen["notice"]
    assert [row[:4] for row in seen["rows"]] == [["tiny-cls (default)", "cls", "jcs_cls_lite", "auc 0.795, n 203"]]


def test_dialog_says_where_the_file_is_and_that_analyze_uses_it(qtbot, env):
    dialog = SettingsDialog(store=SettingsStore())
    qtbot.addWidget(dialog)
    labels = [w.text() for w in dialog.findChildren(type(dialog.error))]
    assert any(str(Path(settings_path())) in text and "jcs-viewer analyze" in text for text in labels)
