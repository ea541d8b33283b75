"""Settings: a plain INI file shared by QSettings (GUI) and configparser (headless)."""

from __future__ import annotations

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
