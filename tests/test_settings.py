"""Settings: one typed value in a plain INI file, shared by the GUI (SettingsStore) and the headless core;
files written by QSettings (older versions) still load."""

from __future__ import annotations

import json

import pytest

from jcs_viewer.settings import Settings


def test_round_trip_and_defaults(tmp_path):
    path = tmp_path / "settings.ini"
    assert Settings.load(path) == Settings()
    s = Settings(device="cpu", slice_threshold=12, slice_cutoff=0.6, reviewer_name="Dr Ng", auto_analyze=False)
    s.save(path)
    assert Settings.load(path) == s


def test_bad_values_fall_back(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[General]\nslice_threshold=many\nundo_depth=40\nunknown=1\nauto_analyze=maybe\n")
    s = Settings.load(path)
    assert s.slice_threshold is None and s.undo_depth == 40 and s.auto_analyze is True


@pytest.mark.parametrize("content, kept, said", [
    ("[General]\nslice_cutoff=0.2\nslice_cutoff=0.9\n", {"slice_cutoff": 0.9}, None),  # last wins, as in Qt
    ("[General]\nrecent_studies=" + "[" * 200_000 + "\nundo_depth=7\n", {"undo_depth": 7},
     "recent_studies '[[[["),  # a RecursionError in the JSON reader took the GUI down at start-up
    ("slice_cutoff=0.9\n", {}, "the file cannot be read (File contains no section headers"),
    (b"\xff\xfe[\x00G\x00", {}, "the file cannot be read ("),
    ("[General]\nslice_cutoff=nan\ndevice=quantum\n", {}, "slice_cutoff nan is not between 0 and 1"),
])
def test_what_the_settings_file_cannot_give_is_said_and_the_rest_kept(tmp_path, content, kept, said):
    from jcs_viewer.settings import load_checked

    path = tmp_path / "settings.ini"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    settings, notes = load_checked(path)
    assert settings == Settings(**kept)
    assert (notes == []) if said is None else any(n.startswith(said) or said in n for n in notes), notes


def test_a_settings_file_that_is_a_fifo_or_a_folder_does_not_hang(tmp_path):
    """configparser opened a FIFO and waited for a writer for ever (the GUI and every command read the file)."""
    import os

    from jcs_viewer.settings import load_checked

    fifo, folder = tmp_path / "fifo.ini", tmp_path / "folder.ini"
    os.mkfifo(fifo)
    folder.mkdir()
    for path in (fifo, folder):
        settings, notes = load_checked(path)
        assert settings == Settings() and notes == ["the file cannot be read (it is not a regular file); the defaults "
                                                    "are used"]


def test_written_by_qsettings_is_readable(tmp_path, qtbot):
    from PySide6.QtCore import QSettings

    path = tmp_path / "settings.ini"
    qs = QSettings(str(path), QSettings.Format.IniFormat)
    qs.setValue("device", "cuda")
    qs.setValue("slice_threshold", 9)
    qs.setValue("reviewer_name", "Dr Ng")
    qs.setValue("segment_all_slices", True)
    qs.sync()
    s = Settings.load(path)
    assert (s.device, s.slice_threshold, s.reviewer_name, s.segment_all_slices) == ("cuda", 9, "Dr Ng", True)


def test_quoting_matches_qsettings_both_ways(tmp_path, qtbot):
    from PySide6.QtCore import QSettings

    name = 'Dr "Q" O\\Brien, MD'
    path = tmp_path / "a.ini"
    qs = QSettings(str(path), QSettings.Format.IniFormat)
    qs.setValue("reviewer_name", name)
    qs.sync()
    assert Settings.load(path).reviewer_name == name

    path2 = tmp_path / "b.ini"
    Settings(reviewer_name=name, autosave_dir="/data/my sessions").save(path2)
    qs2 = QSettings(str(path2), QSettings.Format.IniFormat)
    assert qs2.value("reviewer_name") == name
    assert qs2.value("autosave_dir") == "/data/my sessions"


# --- the headless core honours the file the GUI writes --------------------------------------------


@pytest.fixture
def analyze_setup(tmp_path_factory, tmp_path, monkeypatch):
    """Registered tiny weights, a small demo study and a private settings folder."""
    from test_pipeline_support import register_tiny_weights

    from jcs_viewer.io.phantom import write_demo_study

    weights = tmp_path_factory.mktemp("weights")
    register_tiny_weights(weights)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(weights))
    monkeypatch.setenv("XDG_DATA_HOME", str(weights / "no-user-weights"))
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path / "config"))
    return write_demo_study(tmp_path / "patient", n_slices=6, size=96, seed=3)


def run_analyze(study, out, *flags) -> dict:
    from jcs_viewer.cli import main

    assert main(["analyze", str(study), "--out", str(out), *flags]) == 0
    return json.loads((out / "results.json").read_text())


def test_analyze_uses_the_settings_the_gui_saved(analyze_setup, tmp_path, qtbot, capsys):
    from jcs_viewer.settings import SettingsStore, settings_path

    # What the Settings dialog does: the window's store on the shared INI file.
    SettingsStore().update(device="cpu", slice_threshold=4, slice_cutoff=0.35, segment_all_slices=True,
                           reviewer_name="Dr Ng")
    doc = run_analyze(analyze_setup, tmp_path / "a")
    assert doc["threshold"] == 4
    opts = doc["options"]
    assert (opts["device"], opts["threshold"], opts["slice_cutoff"], opts["segment_all_slices"]) == \
        ("cpu", 4, 0.35, True)
    # every slice with lung
    assert len(doc["per_slice"]) == 6 and all(row["segmented"] == row["has_lung"] for row in doc["per_slice"])
    err = capsys.readouterr().err
    assert f"Settings from {settings_path()}" in err and "threshold 4" in err

    # Command-line options win over the file; --quiet says nothing about the settings.
    doc = run_analyze(analyze_setup, tmp_path / "b", "--device", "auto", "--threshold", "1", "--slice-cutoff", "0.6",
                      "--quiet")
    opts = doc["options"]
    assert (opts["device"], opts["threshold"], opts["slice_cutoff"], opts["segment_all_slices"]) == (
        "auto", 1, 0.6, True)
    assert doc["threshold"] == 1
    assert "Settings from" not in capsys.readouterr().err


def test_analyze_without_a_settings_file_uses_the_defaults(analyze_setup, tmp_path, capsys):
    opts = run_analyze(analyze_setup, tmp_path / "a", "--device", "cpu")["options"]
    assert (opts["threshold"], opts["slice_cutoff"], opts["segment_all_slices"]) == (None, 0.5, False)
    assert "Settings from" not in capsys.readouterr().err


def test_analyze_ignores_unusable_settings_with_a_note(analyze_setup, tmp_path, capsys):
    from jcs_viewer.settings import settings_path

    Settings(device="gpu", slice_cutoff=1.5, slice_threshold=-3).save(settings_path())
    opts = run_analyze(analyze_setup, tmp_path / "a")["options"]
    assert (opts["device"], opts["slice_cutoff"], opts["threshold"]) == ("auto", 0.5, None)
    err = capsys.readouterr().err
    assert "device 'gpu' is not one of auto, cpu, cuda" in err and "slice_cutoff 1.5" in err


def test_bad_slice_cutoff_flag_is_one_sentence(analyze_setup, tmp_path, capsys):
    from jcs_viewer.cli import main

    assert main(["analyze", str(analyze_setup), "--out", str(tmp_path / "x"), "--slice-cutoff", "2"]) == 2
    assert "--slice-cutoff must lie between 0 and 1." in capsys.readouterr().err


def test_store_updates_by_field_saves_atomically_notifies_and_disconnects(tmp_path):
    from jcs_viewer.settings import SettingsStore

    store = SettingsStore(tmp_path / "s.ini")
    seen = []
    off = store.on_change(seen.append)
    store.update(auto_analyze=False, recent_studies=("/data/a, b", '/data/"c"'), session_restore="never")
    again = Settings.load(tmp_path / "s.ini")
    assert again.auto_analyze is False and again.recent_studies == ("/data/a, b", '/data/"c"')
    assert again.session_restore == "never" and seen == [again]
    store.update(auto_analyze=False)  # no change: no write, no event
    off()
    store.update(undo_depth=7)
    assert len(seen) == 1 and Settings.load(tmp_path / "s.ini").undo_depth == 7
    with pytest.raises(TypeError):
        store.update(analysis_auto=True)  # a misspelt key cannot be written (the old 'analysis/auto' bug)
