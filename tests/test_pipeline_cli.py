"""``jcs-viewer analyze`` end to end on small demo studies with registered tiny weights."""

import csv
import json

import numpy as np
import pytest

from jcs_viewer.cli import main
from test_pipeline_support import dice


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory):
    from jcs_viewer.io.phantom import write_demo_study

    return write_demo_study(tmp_path_factory.mktemp("demo") / "patient_a", n_slices=10, size=128, seed=5)


def test_analyze_writes_every_output_with_source_geometry(registered, demo_study, tmp_path, capsys):
    import SimpleITK as sitk

    out = tmp_path / "out"
    rc = main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--all-slices", "--threshold", "2"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "patient_a:" in printed.out
    assert {"results.json", "arrays.npz", "per_slice.csv", "lesion_mask.nii.gz", "lung_mask.nii.gz"} <= {
        p.name for p in out.iterdir()}
    doc = json.loads((out / "results.json").read_text())
    assert doc["threshold"] == 2 and doc["options"]["segment_all_slices"] is True
    assert doc["models"]["cls"]["name"] == "test-cls" and len(doc["models"]["seg"]["sha256"]) == 64
    rows = list(csv.DictReader((out / "per_slice.csv").open()))
    # Every slice with lung is segmented and scored; a slice without lung has empty score cells.
    assert len(rows) == 10 and all(r["segmented"] == r["has_lung"] for r in rows)
    assert all((r["probability"] == "") == (r["has_lung"] == "0") for r in rows)
    truth = sitk.ReadImage(str(demo_study / "ground_truth" / "lung_mask.nii.gz"))
    for name in ("lung_mask.nii.gz", "lesion_mask.nii.gz"):
        written = sitk.ReadImage(str(out / name))
        assert written.GetSize() == truth.GetSize()
        assert np.allclose(written.GetSpacing(), truth.GetSpacing())
        assert np.allclose(written.GetOrigin(), truth.GetOrigin(), atol=1e-3)
        assert np.allclose(written.GetDirection(), truth.GetDirection())
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lung_mask.nii.gz")))
    assert dice(lungs > 0, sitk.GetArrayFromImage(truth) > 0) >= 0.9


def test_folder_of_studies_is_analysed_one_by_one(registered, demo_study, tmp_path):
    import shutil

    from jcs_viewer.io.phantom import write_demo_study

    root = tmp_path / "studies"
    shutil.copytree(demo_study, root / "patient_a")
    write_demo_study(root / "patient_b", n_slices=6, size=96, seed=6)
    out = tmp_path / "out"
    assert main(["analyze", str(root), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    for name in ("patient_a", "patient_b"):
        assert (out / name / "results.json").is_file() and (out / name / "lung_mask.nii.gz").is_file()


def test_weights_option_picks_the_task_from_the_file(registered, demo_study, tmp_path):
    out = tmp_path / "out"
    seg_file = registered / "test-seg.safetensors"
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet",
                 "--weights", str(seg_file), "--weights", "test-cls"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["options"]["seg_weights"] == str(seg_file) and doc["options"]["cls_weights"] == "test-cls"


def test_weights_option_routes_lung_weights_to_the_lung_net(demo_study, tmp_path, monkeypatch, capsys):
    """``--weights`` takes a lung entry as lung weights (it was taken for classification weights and refused);
    two lung weights are one sentence."""
    monkeypatch.delenv("JCS_VIEWER_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))
    out = tmp_path / "out"
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet",
                 "--weights", "lung_lite-ctseg-v3"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["options"]["lung_weights"] == "lung_lite-ctseg-v3" and doc["options"]["cls_weights"] is None
    assert doc["models"]["lung"]["name"] == "lung_lite-ctseg-v3"
    assert main(["analyze", str(demo_study), "--out", str(tmp_path / "two"), "--device", "cpu", "--quiet",
                 "--weights", "lung_lite-ctseg-v3", "--weights-lung", "lung_lite-ctseg-v2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Two lung weights were given" in err[0]


def test_a_single_slice_is_printed_without_a_patient_threshold(registered, tmp_path, capsys):
    from jcs_viewer.io.phantom import write_demo_study

    study = write_demo_study(tmp_path / "one", n_slices=1, size=96, seed=3)
    assert main(["analyze", str(study), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("one: not assessable ("))
    assert "no threshold: a single slice" in line and "threshold 0" not in line
    assert ("1 positive slice," in line) != ("0 positive slices," in line)


@pytest.mark.parametrize("extra, message", [
    (["--weights-seg", "no-such-weights"], "No weights named 'no-such-weights'"),
    (["--threshold", "-1"], "--threshold"),
])
def test_errors_are_one_sentence_and_exit_2(registered, demo_study, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("jcs-viewer: ")
    assert not out.exists()


def test_out_that_is_a_file_is_refused_before_any_work(registered, demo_study, tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("mine")
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0] and "File exists" not in err[0]
    assert out.read_text() == "mine"


def test_a_run_that_fails_while_writing_leaves_the_previous_set_whole(registered, demo_study, tmp_path, monkeypatch,
                                                                      capsys):
    """All or nothing: a report that cannot be written (a full disk, say) leaves no partial set behind."""
    import jcs_viewer.report.pdf
    from jcs_viewer.errors import ExportError

    out = tmp_path / "out"
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "results.json" in before and "report.pdf" not in before

    def full_disk(*args, **kwargs):
        raise ExportError("Could not write the report: No space left on device.")

    monkeypatch.setattr(jcs_viewer.report.pdf, "write_report", full_disk)
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet", "--report",
                 "--slice-cutoff", "0.9"]) == 2
    assert "No space left" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not list(out.glob(".*"))  # no stage, no temp files
    monkeypatch.undo()
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet", "--report"]) == 0
    assert {"results.json", "report.pdf"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_dicom_output_the_disk_refuses_fails_the_run_and_keeps_the_previous_set(registered, demo_study, tmp_path,
                                                                                    monkeypatch, capsys):
    """The SEG, SR and Encapsulated PDF were notes when they failed (right for a study that cannot have them): a full
    disk then replaced a complete set by one without them, exit 0. A write the file system refuses fails the run."""
    import errno

    import pydicom

    out = tmp_path / "out"
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet", "--report"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"lesion_seg.dcm", "report.pdf"} <= set(before)

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pydicom.Dataset, "save_as", full_disk)
    assert main(["analyze", str(demo_study), "--out", str(out), "--device", "cpu", "--quiet", "--report",
                 "--slice-cutoff", "0.9"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_out_as_dot_a_readers_incomplete_folder_and_an_overlong_name(registered, demo_study, tmp_path, monkeypatch,
                                                                     capsys):
    """``--out .`` raised ValueError (the stage is named after the folder); a reader's own folder called
    ``<out>.incomplete`` was deleted as a stale stage; a 300-byte name raised OSError from the first exists()."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["analyze", str(demo_study), "--out", ".", "--device", "cpu", "--quiet"]) == 0
    assert (work / "results.json").is_file() and not (tmp_path / "work.incomplete").exists()

    mine = tmp_path / "out.incomplete"
    mine.mkdir()
    (mine / "notes.txt").write_text("the reader's")
    assert main(["analyze", str(demo_study), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 2
    assert "was not left by this app" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "the reader's" and not (tmp_path / "out").exists()

    with pytest.raises(SystemExit) as done:
        main(["analyze", str(demo_study), "--out", str(tmp_path / ("x" * 300)), "--device", "cpu", "--quiet"])
    assert done.value.code == 2 and "300 bytes long; file systems allow 255" in capsys.readouterr().err


def test_a_stage_left_by_a_killed_run_is_cleared_by_the_next(registered, demo_study, tmp_path):
    from jcs_viewer.report.bundle import STAGE_MARK

    stage = tmp_path / "out.incomplete"
    stage.mkdir()
    (stage / STAGE_MARK).touch()
    (stage / "lesion_mask.nii.gz").write_bytes(b"half written")
    assert main(["analyze", str(demo_study), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    assert not stage.exists() and (tmp_path / "out" / "results.json").is_file()
    assert not (tmp_path / "out" / STAGE_MARK).exists()


def test_a_pipe_as_study_and_a_folder_as_session_are_named_for_what_they_are(tmp_path, capsys):
    """A FIFO as STUDY said "Cannot read the folder …: Not a directory"; a folder as --session "does not exist"."""
    import os

    fifo = tmp_path / "study.dcm"
    os.mkfifo(fifo)
    assert main(["analyze", str(fifo), "--out", str(tmp_path / "o")]) == 2
    assert "is not a regular file or folder (a pipe, socket or device)" in capsys.readouterr().err
    (tmp_path / "session").mkdir()
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--session", str(tmp_path / "session")]) == 2
    assert f"Session file {tmp_path / 'session'} is not a file." in capsys.readouterr().err


def test_missing_study_exits_2(registered, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["analyze", "", "--out", "OUT"], ["analyze", "STUDY", "--out", " "],
                                  ["batch", "", "--out", "OUT"], ["demo", "--out", ""], ["gui", ""]])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch, capsys, argv):
    """``Path("")`` is ``.``: ``analyze ""`` once scanned the working folder (a checkout's .venv, recursively) and
    an empty --out would have written results into it."""
    monkeypatch.chdir(tmp_path)
    argv = [{"OUT": str(tmp_path / "out"), "STUDY": str(tmp_path)}.get(a, a) for a in argv]
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert "an empty path names no folder or file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cancelled_analysis_writes_nothing(registered, demo_study, tmp_path):
    from jcs_viewer.cli.analyze_cmd import analyze_one
    from jcs_viewer.errors import Cancelled
    from jcs_viewer.pipeline import AnalysisOptions, CancelToken
    from jcs_viewer.pipeline.runner import load_models

    token = CancelToken()
    options = AnalysisOptions(device="cpu", batch_size=2, segment_all_slices=True)

    def progress(event):
        if event.stage == "segment" and event.done > 0:
            token.cancel()

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        analyze_one(demo_study, out, options, load_models(options), progress, cancel=token)
    assert not out.exists()
