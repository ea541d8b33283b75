"""About box, settings dialog and start-up helpers (pytest-qt, offscreen)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QWidget  # noqa: E402

from jcs_viewer import RESEARCH_USE_NOTICE, __version__  # noqa: E402
from jcs_viewer.gui import about, settings_dialog, startup  # noqa: E402
from jcs_viewer.settings import Settings, SettingsStore  # noqa: E402


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.ini"


def make_dialog(qtbot, ini: Path) -> settings_dialog.SettingsDialog:
    dialog = settings_dialog.SettingsDialog(store=SettingsStore(ini))
    qtbot.addWidget(dialog)
    return dialog


def test_settings_dialog_round_trips_through_the_ini_file(qtbot, ini, tmp_path):
    dialog = make_dialog(qtbot, ini)
    assert dialog.values() == Settings()  # no file yet: the defaults
    autosave = tmp_path / "autosave ü"
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.threshold.setValue(17)
    dialog.cutoff.setValue(0.65)
    dialog.segment_all.setChecked(True)
    dialog.auto_analyze.setChecked(False)
    dialog.reviewer.setText("  Dr. Müller, MD ")
    dialog.layout_combo.setCurrentIndex(dialog.layout_combo.findData("1x3"))
    dialog.undo_depth.setValue(40)
    dialog.autosave.setText(str(autosave))
    with qtbot.waitSignal(dialog.saved) as saved:
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.result() == QDialog.DialogCode.Accepted
    expected = Settings(device="cpu", slice_threshold=17, slice_cutoff=0.65, segment_all_slices=True,
                        auto_analyze=False, autosave_dir=str(autosave), default_layout="1x3",
                        reviewer_name="Dr. Müller, MD", undo_depth=40)
    assert saved.args[0] == expected
    # The headless core reads the same file with configparser.
    assert Settings.load(ini) == expected
    # A fresh dialog shows what was saved.
    again = make_dialog(qtbot, ini)
    assert again.values() == expected
    assert again.threshold.text() == "17"


def test_automatic_threshold_is_stored_as_none(qtbot, ini):
    Settings(slice_threshold=30).save(ini)
    dialog = make_dialog(qtbot, ini)
    assert dialog.values().slice_threshold == 30
    dialog.threshold.setValue(settings_dialog.AUTO_THRESHOLD)
    assert dialog.threshold.text().startswith("Automatic")
    dialog.accept()
    assert Settings.load(ini).slice_threshold is None


def test_cancel_leaves_the_file_alone_and_restore_defaults_resets(qtbot, ini):
    Settings(device="cuda", reviewer_name="A").save(ini)
    before = ini.read_bytes()
    dialog = make_dialog(qtbot, ini)
    dialog.reviewer.setText("B")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert ini.read_bytes() == before
    dialog = make_dialog(qtbot, ini)
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.values() == Settings()


def test_autosave_folder_that_is_a_file_is_refused(qtbot, ini, tmp_path):
    a_file = tmp_path / "not-a-folder.txt"
    a_file.write_text("x")
    dialog = make_dialog(qtbot, ini)
    dialog.autosave.setText(str(a_file))
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert not dialog.error.isHidden() and str(a_file) in dialog.error.text()
    assert not ini.exists()


def test_unwritable_settings_file_raises_one_sentence(qtbot, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the config folder should be")
    store = SettingsStore(blocker / "settings.ini")
    with pytest.raises(OSError, match="Could not save settings to .*settings.ini"):
        store.update(device="cpu")
    assert store.values.device == "auto"  # nothing half-applied


def test_format_metrics():
    assert about.format_metrics({"dice": 0.71234, "n": 12, "cls": {"auc": 0.9}}) == "dice 0.712, n 12, cls.auc 0.900"
    assert about.format_metrics({}) == ""


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch) -> Path:
    """A weights folder with one real (randomly initialised) lite segmentation model and its manifest."""
    torch = pytest.importorskip("torch")
    from jcs_viewer.models import build
    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry, save_weights

    folder = tmp_path / "weights"
    torch.manual_seed(0)
    config = {"width": 0.125}
    digest = save_weights(build("jcs_seg_lite", **config), folder / "tiny-seg.safetensors")
    entry = WeightsEntry(name="tiny-seg", task="seg", arch="jcs_seg_lite", file="tiny-seg.safetensors",
                         sha256=digest, config=config, metrics={"dice": 0.71234}, licence="CC BY 4.0",
                         training_data="MedSeg COVID-19 slices", default=True, root=folder)
    add_manifest_entry(entry, folder)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))
    return folder


def table_text(dialog: about.AboutDialog) -> list[list[str]]:
    t = dialog.table
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def test_about_shows_version_notice_and_registered_weights(qtbot, tiny_weights):
    dialog = about.AboutDialog()
    qtbot.addWidget(dialog)
    assert __version__ in dialog.title_label.text()
    assert RESEARCH_USE_NOTICE in dialog.notice_label.text()
    rows = table_text(dialog)
    assert rows == [["tiny-seg (default)", "seg", "jcs_seg_lite", "dice 0.712", "CC BY 4.0", "MedSeg COVID-19 slices"]]
    assert dialog.empty_label.isHidden()
    assert "tiny-seg" in about.version_text(dialog.entries)


def test_default_labels_name_the_studies_a_default_reads():
    from types import SimpleNamespace as Entry

    assert about.default_label(Entry(default=True, default_grey=False)) == " (default)"
    assert about.default_label(Entry(default=False, default_grey=True)) == " (default for 8-bit studies)"
    assert about.default_label(Entry(default=False, default_grey=False)) == ""


def test_about_fits_the_screen_with_long_licence_texts(qtbot, tiny_weights):
    from jcs_viewer.models.registry import list_weights

    long_text = "Trained on a data set whose licence needs a paragraph to explain. " * 8
    entries = [dataclasses.replace(e, licence=long_text, training_data=long_text) for e in list_weights()]
    dialog = about.AboutDialog(entries=entries)
    qtbot.addWidget(dialog)
    assert dialog.width() <= dialog.screen().availableGeometry().width()
    licence_col = about.COLUMNS.index("Licence")
    assert dialog.table.columnWidth(licence_col) <= about.MAX_COLUMN
    assert dialog.table.item(0, licence_col).toolTip() == long_text  # the full text on hover
    metrics_col = about.COLUMNS.index("Metrics")
    assert dialog.table.item(0, metrics_col).toolTip() == "dice 0.712"


def test_about_shows_whole_weights_names_with_their_default_label(qtbot, tiny_weights):
    """A name and "(default for 8-bit studies)" are short enough to show whole: only licence texts are elided."""
    from jcs_viewer.models.registry import list_weights

    entry = dataclasses.replace(list_weights()[0], name="jcs_seg_effnet-ctseg-medseg-v6", default=False,
                                default_grey=True)
    dialog = about.AboutDialog(entries=[entry])
    qtbot.addWidget(dialog)
    item = dialog.table.item(0, 0)
    assert item.text() == "jcs_seg_effnet-ctseg-medseg-v6 (default for 8-bit studies)"
    assert dialog.table.columnWidth(0) >= dialog.table.fontMetrics().horizontalAdvance(item.text())


def test_about_with_a_broken_manifest_says_which_file(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"weights": "not a list"}))
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    dialog = about.AboutDialog()
    qtbot.addWidget(dialog)
    assert dialog.table.isHidden()
    assert "manifest.json is not a valid weights manifest" in dialog.empty_label.text()


def test_app_icon_has_every_size():
    icon = startup.app_icon()
    assert not icon.isNull()
    files = startup.icon_files()
    assert files[0].suffix == ".svg"
    sizes = {int(p.stem.rsplit("-", 1)[1]) for p in files[1:]}
    assert {16, 32, 48, 128, 256, 512} <= sizes
    assert icon.pixmap(256, 256).width() == 256


def test_first_paint_probe_reports_once(qtbot):
    import time

    seen: list[float] = []
    window = QWidget()
    qtbot.addWidget(window)
    start = time.time()
    startup.install_first_paint_probe(window, on_paint=seen.append, quit_app=False, start=start)
    window.resize(200, 100)
    window.show()
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    window.update()
    qtbot.wait(50)
    assert len(seen) == 1 and 0 <= seen[0] <= time.time() - start


def test_process_start_time_is_before_now():
    import time

    t = startup.process_start_time()
    assert time.time() - 3600 * 24 * 30 < t <= time.time()


def test_probe_from_environment(qtbot, monkeypatch):
    window = QWidget()
    qtbot.addWidget(window)
    monkeypatch.delenv(startup.FIRST_PAINT_ENV, raising=False)
    assert startup.maybe_probe_first_paint(window) is None
    monkeypatch.setenv(startup.FIRST_PAINT_ENV, "1")
    probe = startup.maybe_probe_first_paint(window)
    assert probe is not None
    from PySide6.QtWidgets import QApplication

    QApplication.instance().removeEventFilter(probe)  # do not quit the test's app


def test_viewer_paints_before_heavy_packages_are_imported(tmp_path):
    """``jcs-viewer gui`` (the real start-up path) paints the window before torch, VTK or SimpleITK load."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", JCS_VIEWER_FIRST_PAINT="1",
               JCS_VIEWER_CONFIG=str(tmp_path / "config"), JCS_VIEWER_DATA=str(tmp_path / "data"))
    code = "import sys; from jcs_viewer.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "gui"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split() for line in proc.stderr.splitlines() if line.startswith("first-paint-s:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    _, seconds, label, heavy = lines[0]
    assert label == "heavy:" and heavy == "-", lines[0]
    assert 0 < float(seconds) < 30


def test_heavy_imported_lists_loaded_heavy_modules(monkeypatch):
    import sys
    import types

    monkeypatch.delitem(sys.modules, "vtkmodules", raising=False)
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or types.ModuleType("torch"))
    assert "torch" in startup.heavy_imported() and "vtkmodules" not in startup.heavy_imported()
    assert set(startup.heavy_imported()) <= set(startup.HEAVY_MODULES)


def test_every_setting_maps_to_a_widget_and_back(qtbot, ini):
    changed = Settings(device="cuda", slice_threshold=0, slice_cutoff=0.3, slice_score="classifier",
                       segment_all_slices=True,
                       auto_analyze=False, autosave_dir="/data/autosave", default_layout="1x3",
                       reviewer_name="R. Reader", undo_depth=7, session_restore="always", mouse_scheme="pan-first",
                       pacs_ae_title="READER1", pacs_servers=("PACS@pacs.example.org:104", "https://h/dicom-web"))
    defaults = Settings()
    # Fails when Settings gains a field this test (and so probably the dialog) does not set.
    shown = [f.name for f in dataclasses.fields(Settings) if f.name not in settings_dialog.NOT_IN_DIALOG]
    assert all(getattr(changed, name) != getattr(defaults, name) for name in shown)
    dialog = make_dialog(qtbot, ini)
    dialog.set_values(changed)
    assert dialog.values() == changed
