"""``jcs-viewer batch`` for real: a local Ray runtime on a handful of small studies (the demo at a few slices,
real sets from ``../shared/data`` when present, a corrupt study), then ``--resume``; the in-process run without
Ray; outputs removed or damaged, and inputs touched, are redone; Ctrl+C stops cleanly and ``--resume`` goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_data_path
from helpers_noqt import run_without
from jcs_viewer.batch.summary import RECORD_NAME, read_summary
from jcs_viewer.cli import main

#: real studies of ../shared/data run in the Ray batch (small: a few MB, a second or two each): two DICOM series
#: of other scanners than the demo's (the real NRRD volume is analysed in test_real_studies)
REAL_SETS = ("real_ct_small/lungmask_slices", "covid19_ny_sbu_dicom_slices/A002304/axial")


def write_demo(folder: Path, seed: int) -> Path:
    """The demo's DICOM series at 8 slices (each seed is another patient, with its own study UID), copied from
    the demo cache (built once per seed, not once per test)."""
    from jcs_viewer.io.phantom import demo_study_path

    shutil.copytree(demo_study_path(seed=seed, n_slices=8) / "dicom", folder)
    return folder


def write_corrupt(folder: Path) -> Path:
    """A DICOM series whose every file was cut short (headers readable, pixel data missing)."""
    write_demo(folder, seed=1)
    for file in folder.iterdir():
        os.truncate(file, 3000)
    return folder


def batch(*args: str) -> int:
    return main(["batch", *args, "--device", "cpu", "--quiet"])


def start_batch(*args: str) -> subprocess.Popen:
    """``jcs-viewer batch`` in a process of its own (to signal it, or its Ray workers), shipped weights only, with
    Python's Ctrl+C handler as a terminal starts it (a test run started in the background has SIGINT ignored,
    and a child inherits that)."""
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from jcs_viewer.cli import main; sys.exit(main())")
    command = [sys.executable, "-c", code, "batch", *args, "--device", "cpu", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "JCS_VIEWER_WEIGHTS"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_by_source(out: Path) -> dict[str, dict[str, str]]:
    return {row["source"]: row for row in read_summary(out)}


def mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()}


@pytest.fixture(autouse=True)
def _shipped_weights_only(monkeypatch):
    monkeypatch.delenv("JCS_VIEWER_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def ray_batch(tmp_path_factory):
    """One batch on a local Ray runtime (2 workers) over a study list; returns (list file, out, exit code)."""
    pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray-batch")
    write_demo(root / "demo", seed=0)
    write_demo(root / "demo2", seed=2)
    write_corrupt(root / "corrupt")
    # Three studies at least, with or without ../shared/data: two workers, so one of them takes a second study
    # with the models it already loaded.
    lines = ["# two demo patients and a corrupt study, relative to this file", "demo", "demo2", "corrupt  # cut short"]
    lines += [str(SHARED_DATA / name) for name in REAL_SETS if (SHARED_DATA / name).exists()]
    listing = root / "studies.txt"
    listing.write_text("\n".join(lines) + "\n")
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("JCS_VIEWER_WEIGHTS", raising=False)
        code = batch(str(listing), "--out", str(out), "--workers", "2")
    return listing, out, code


def test_ray_batch_writes_a_row_per_study_and_the_outputs(ray_batch):
    listing, out, code = ray_batch
    assert code == 2  # one study failed
    rows = read_summary(out)
    expected = 3 + sum((SHARED_DATA / name).exists() for name in REAL_SETS)
    assert len(rows) == expected and len({row["key"] for row in rows}) == expected
    for row in rows:
        assert row["this_run"] == "analysed" and row["app_version"] and len(row["fingerprint"]) == 64
        if row["status"] == "ok":
            folder = out / row["output"]
            doc = json.loads((folder / "results.json").read_text())
            assert doc["decision"] == row["decision"] and doc["study"].get("series_uid", "") == row["series_uid"]
            for name in ("arrays.npz", "per_slice.csv", "lesion_mask.nii.gz", "lung_mask.nii.gz", RECORD_NAME):
                assert (folder / name).is_file(), name
            assert "sha256:" + doc["models"]["cls"]["sha256"] in row["weights"]
            assert float(row["lung_ml_total"]) == pytest.approx(doc["lung_volume_ml"]["total"], abs=0.01)
    assert any(float(row["models_s"]) == 0 for row in rows)  # a worker process loads the models once
    demo = rows_by_source(out)["demo"]
    assert demo["status"] == "ok" and demo["decision"] == "positive" and demo["series_uid"]
    assert float(demo["lesion_ml_left"]) > 0 and float(demo["lesion_ml_right"]) > 0
    assert float(demo["involvement_pct_total"]) > 0 and float(demo["analyze_s"]) > 0

    import pyarrow.parquet as pq

    table = pq.read_table(out / "summary.parquet").to_pylist()
    assert [r["key"] for r in table] == [r["key"] for r in rows]
    assert table[0]["positive_slices"] == int(demo["positive_slices"])


def test_ray_batch_a_corrupt_study_is_one_error_row_with_its_sentence(ray_batch):
    _, out, _ = ray_batch
    errors = [row for row in read_summary(out) if row["status"] == "error"]
    assert len(errors) == 1 and errors[0]["source"] == "corrupt"
    sentence = errors[0]["error"]
    assert "truncated" in sentence and sentence.endswith(".") and "Traceback" not in sentence
    assert errors[0]["error_kind"] == "input" and not (out / errors[0]["key"] / "results.json").exists()


def test_ray_batch_real_sets_have_rows(ray_batch):
    for name in REAL_SETS:
        shared_data_path(*name.split("/"))  # skips with its reason when ../shared/data is absent
    rows = rows_by_source(ray_batch[1])
    for name in REAL_SETS:
        row = rows[(SHARED_DATA / name).resolve().as_posix()]
        assert row["status"] == "ok" and row["decision"] in ("negative", "not assessable", "positive"), row


def test_ray_batch_resume_redoes_nothing(ray_batch):
    listing, out, _ = ray_batch
    before, records = mtimes(out), {p: p.read_bytes() for p in out.glob(f"*/{RECORD_NAME}")}
    assert batch(str(listing), "--out", str(out), "--workers", "2", "--resume") == 2  # the error row stays
    assert mtimes(out) == before
    assert {p: p.read_bytes() for p in out.glob(f"*/{RECORD_NAME}")} == records
    rows = read_summary(out)
    assert rows and all(row["this_run"] == "skipped" for row in rows)
    assert sum(row["status"] == "error" for row in rows) == 1


@pytest.fixture
def tree(tmp_path):
    """A folder tree: site1/demo (one study) and site2/corrupt."""
    write_demo(tmp_path / "src" / "site1" / "demo", seed=0)
    write_corrupt(tmp_path / "src" / "site2" / "corrupt")
    return tmp_path / "src"


def test_without_ray_and_pyarrow_one_worker_runs_in_this_process(tree, tmp_path):
    """On a machine without Ray and pyarrow (blocked in a fresh interpreter): one sentence for Ray, and
    ``--workers 1`` runs the batch in-process with a CSV summary and a note that Parquet was skipped."""
    no, out = tmp_path / "no", tmp_path / "out"
    code = f"""
from jcs_viewer.cli import main
for folder, workers in (({str(no)!r}, "2"), ({str(out)!r}, "1")):
    assert main(["batch", {str(tree)!r}, "--out", folder, "--workers", workers, "--device", "cpu", "--quiet"]) == 2
"""
    done = run_without(("ray", "pyarrow"), code)
    assert done.returncode == 0 and "NOQT-OK" in done.stdout, done.stderr[-3000:]
    assert "Ray is not installed: pip install 'jcs-viewer[cluster]', or run with --workers 1" in done.stderr
    assert "summary.parquet was skipped: pyarrow is not installed" in done.stderr
    assert "Traceback" not in done.stderr and not no.exists()
    rows = rows_by_source(out)
    assert set(rows) == {"site1", "site2"}
    assert rows["site1"]["status"] == "ok" and (out / rows["site1"]["output"] / "results.json").is_file()
    assert rows["site2"]["status"] == "error" and "truncated" in rows["site2"]["error"]
    assert not (out / "summary.parquet").exists()


def test_resume_redoes_removed_partial_and_changed_studies(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert batch(str(tree), "--out", str(out), "--workers", "1") == 2
    demo = rows_by_source(out)["site1"]["key"]
    capsys.readouterr()
    assert batch(str(tree), "--out", str(out), "--workers", "1", "--resume") == 2
    said = capsys.readouterr()  # the corrupt study's failure is not retried, and not hidden either
    assert "0 analysed, 0 failed, 2 skipped (done before; 1 of them failed)" in said.out, said.out
    assert "1 of 2 studies failed" in said.err

    def resume() -> dict[str, str]:
        assert batch(str(tree), "--out", str(out), "--workers", "1", "--resume") == 2
        return {source: row["this_run"] for source, row in rows_by_source(out).items()}

    assert resume() == {"site1": "skipped", "site2": "skipped"}
    (out / demo / "lung_mask.nii.gz").unlink()  # a partial output set
    assert resume() == {"site1": "analysed", "site2": "skipped"}
    assert (out / demo / "lung_mask.nii.gz").is_file()
    shutil.rmtree(out / demo)  # a removed output folder
    assert resume() == {"site1": "analysed", "site2": "skipped"}
    first = next((tree / "site1" / "demo").iterdir())
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))  # the input changed
    assert resume() == {"site1": "analysed", "site2": "skipped"}
    assert resume() == {"site1": "skipped", "site2": "skipped"}


def test_ctrl_c_stops_cleanly_and_resume_continues(tmp_path):
    write_demo(tmp_path / "d0", seed=0)
    for i in range(1, 3):
        shutil.copytree(tmp_path / "d0", tmp_path / f"d{i}")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(f"d{i}" for i in range(3)) + "\n")
    out = tmp_path / "out"
    start = time.monotonic()
    proc = start_batch(str(listing), "--out", str(out), "--workers", "1")
    try:
        while not (recorded := list(out.glob(f"*/{RECORD_NAME}"))) and proc.poll() is None:
            time.sleep(0.05)
        seen = f"{len(recorded)} recorded after {time.monotonic() - start:.1f} s, batch exit code {proc.poll()}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (seen, err)
    assert "--resume" in err and "Traceback" not in err
    finished = read_summary(out)
    assert 1 <= len(finished) < 3 and all(row["status"] == "ok" for row in finished)
    assert not list(out.glob("*.incomplete"))  # the interrupted study left no staged outputs

    assert batch(str(listing), "--out", str(out), "--workers", "1", "--resume") == 0
    rows = read_summary(out)
    assert len(rows) == 3 and all(row["status"] == "ok" for row in rows)
    assert sum(row["this_run"] == "skipped" for row in rows) >= len(finished)  # and any finished unreported


def test_ctrl_c_while_the_models_load_stops_the_batch_after_loading(tmp_path, capsys, ctrl_c_while_models_load):
    """Ctrl+C during startup waits for the imports and the model loading to end (an interrupt inside an import
    left pydicom half imported: the Ctrl+C path then failed with a traceback), then stops before any study."""
    write_demo(tmp_path / "demo", seed=0)
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "demo"), "--out", str(out), "--workers", "1", "--device", "cpu"]) == 130
    assert len(ctrl_c_while_models_load) == 1  # loading finished
    err = capsys.readouterr().err
    assert "Interrupted." in err and "Traceback" not in err
    assert not list(out.glob(f"*/{RECORD_NAME}"))


def test_a_png_stack_has_no_volumes_in_the_summary(tmp_path):
    """A folder of PNG slices carries no voxel size: its row leaves the mL columns empty (they would be counted
    at assumed 1 mm voxels) while the DICOM demo beside it fills them; results.json says why."""
    import cv2

    from jcs_viewer.io import load_study

    demo = write_demo(tmp_path / "demo", seed=0)
    hu = load_study(demo).array.astype(np.float32)
    (tmp_path / "stack").mkdir()
    for z, image in enumerate(np.clip((hu + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)):
        assert cv2.imwrite(str(tmp_path / "stack" / f"{z:02d}.png"), image)
    listing = tmp_path / "list.txt"
    listing.write_text("demo\nstack\n")
    out = tmp_path / "out"
    assert batch(str(listing), "--out", str(out), "--workers", "1", "--device", "cpu") == 0
    rows = {row["source"]: row for row in read_summary(out)}
    assert rows["stack"]["status"] == rows["demo"]["status"] == "ok"
    assert all(rows["stack"][f"{kind}_ml_{side}"] == "" for kind in ("lesion", "lung")
               for side in ("left", "right", "total"))
    assert float(rows["demo"]["lung_ml_total"]) > 0
    doc = json.loads((out / rows["stack"]["output"] / "results.json").read_text())
    assert doc["geometry"]["voxel_size_known"] is False


def test_a_study_recorded_just_before_ctrl_c_is_in_the_summary(tmp_path, monkeypatch):
    """Ctrl+C can land after a study's done-record is written and before its row reaches the scheduler (the
    race the test above met under load): the interrupted summary still lists it, so it matches the records."""
    from jcs_viewer.batch import engine

    for i in range(2):
        write_demo(tmp_path / f"d{i}", seed=i)
    listing = tmp_path / "list.txt"
    listing.write_text("d0\nd1\n")
    real = engine.analyse_study

    def interrupted_on_return(*args, **kwargs):
        real(*args, **kwargs)  # outputs and done-record written
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "analyse_study", interrupted_on_return)
    out = tmp_path / "out"
    assert batch(str(listing), "--out", str(out), "--workers", "1", "--device", "cpu") == 130
    recorded = list(out.glob(f"*/{RECORD_NAME}"))
    finished = read_summary(out)
    assert len(recorded) == 1 and [row["key"] for row in finished] == [recorded[0].parent.name]
    assert finished[0]["status"] == "ok" and finished[0]["this_run"] == "analysed"


def ray_task_pids(driver: int) -> set[int]:
    """The driver's descendants running a batch study as a Ray task (Ray titles them ``ray::analyse_study``)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::analyse_study"):
                pid = int(entry.name)
                while pid > 1 and pid != driver:  # up the parent chain (worker -> raylet -> driver)
                    pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                if pid == driver:
                    pids.add(int(entry.name))
        except (OSError, ValueError, IndexError):  # gone meanwhile
            pass
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's worker processes in /proc")
def test_a_dead_worker_is_retried_once_then_an_error_row_and_resume_tries_again(tmp_path):
    pytest.importorskip("ray")
    write_demo(tmp_path / "demo", seed=0)
    out = tmp_path / "out"
    proc = start_batch(str(tmp_path / "demo"), "--out", str(out), "--workers", "2")
    killed: set[int] = set()
    try:
        while proc.poll() is None and len(killed) < 2:  # the first run of the task, then its one retry
            for pid in ray_task_pids(proc.pid) - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert len(killed) == 2 and proc.returncode == 2, err[-3000:]
    (row,) = read_summary(out)
    assert row["status"] == "error" and row["error_kind"] == "crash" and "died twice" in row["error"]
    assert not (out / row["key"] / RECORD_NAME).exists()  # a crash is no verdict on the study: not done

    assert batch(str(tmp_path / "demo"), "--out", str(out), "--workers", "1", "--resume") == 0
    (row,) = read_summary(out)
    assert row["status"] == "ok" and row["this_run"] == "analysed"


def test_an_unreachable_cluster_is_one_sentence_and_nothing_written(tmp_path, capsys):
    pytest.importorskip("ray")
    import socket

    write_demo(tmp_path / "demo", seed=0)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    assert batch(str(tmp_path / "demo"), "--out", str(out), "--ray-address", f"127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert f"Could not connect to the Ray cluster at 127.0.0.1:{port}:" in err and "Traceback" not in err
    assert not (out / "summary.csv").exists()


def test_a_native_decoder_panic_is_an_error_row_and_ctrl_c_still_stops(tmp_path, monkeypatch):
    """A Rust decoder's ``PanicException`` derives from ``BaseException``, not ``Exception``: it ends one study
    as an error row instead of the batch; Ctrl+C, a ``BaseException`` too, still goes through."""
    import jcs_viewer.io
    from jcs_viewer.batch.worker import analyse_study
    from jcs_viewer.pipeline.options import AnalysisOptions

    class PanicException(BaseException):  # pyo3_runtime's class cannot be imported; it behaves like this
        pass

    def panics(path):
        raise PanicException("index out of bounds: the len is 2048 but the index is 2048")

    monkeypatch.setattr(jcs_viewer.io, "load_study", panics)
    base = {"key": "s1", "source": "s1"}
    row = analyse_study(str(tmp_path / "s1"), str(tmp_path / "out" / "s1"), base, AnalysisOptions(device="cpu"),
                        models=object())
    assert row["status"] == "error" and "PanicException" in row["error"] and "index out of bounds" in row["error"]

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(jcs_viewer.io, "load_study", interrupted)
    with pytest.raises(KeyboardInterrupt):
        analyse_study(str(tmp_path / "s2"), str(tmp_path / "out" / "s2"), base, AnalysisOptions(device="cpu"),
                      models=object())
