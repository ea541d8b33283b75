"""``jcs-viewer batch --server``: the studies of a PACS query, retrieved from a live Orthanc and analysed in this
process; a date range selects; ``--resume`` neither retrieves nor analyses again; a study the PACS cannot deliver
is an error row with its sentence; bad queries are one sentence."""

from __future__ import annotations

import shutil

import pydicom
import pytest

from jcs_viewer.batch.pacs_source import CACHE_NAME, RETRIEVED_MARK, parse_date_range
from jcs_viewer.batch.summary import read_summary
from jcs_viewer.cli import main
from jcs_viewer.errors import JCSError
from orthanc_server import orthanc  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def _shipped_weights_only(monkeypatch):
    monkeypatch.delenv("JCS_VIEWER_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def two_scans(orthanc, tmp_path_factory):  # noqa: F811
    """One patient scanned twice (the demo and its 30-day follow-up) in Orthanc; returns (patient ID, UIDs)."""
    from jcs_viewer.io.phantom import write_demo_study

    root = tmp_path_factory.mktemp("pacs-batch")
    uids = []
    for name, days in (("first", 0), ("later", 30)):
        written = write_demo_study(root / name, n_slices=8, seed=11, size=96, follow_up_days=days)
        files = sorted((written / "dicom").glob("*.dcm"))
        orthanc.upload(files)
        uids.append(str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
    return "JCSDEMO00011", uids


def batch(*args: str) -> int:
    return main(["batch", *args, "--device", "cpu", "--quiet", "--workers", "1"])


def test_a_pacs_query_is_retrieved_analysed_and_resumed(orthanc, two_scans, tmp_path, capsys):  # noqa: F811
    patient, (first, later) = two_scans
    out = tmp_path / "out"
    assert batch("--server", orthanc.dimse, "--patient-id", patient, "--out", str(out)) == 0
    rows = read_summary(out)
    assert sorted(row["study_uid"] for row in rows) == sorted([first, later])
    assert all(row["status"] == "ok" and row["source"].startswith(f"{patient}/") for row in rows)
    for uid in (first, later):
        assert (out / CACHE_NAME / uid / RETRIEVED_MARK).is_file()
        assert len(list((out / CACHE_NAME / uid).glob("*.dcm"))) == 8
    assert all((out / row["output"] / "results.json").is_file() for row in rows)
    # --resume: nothing retrieved or analysed again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / CACHE_NAME).rglob("*.dcm")}
    assert batch("--server", orthanc.dimse, "--patient-id", patient, "--out", str(out), "--resume") == 0
    assert {row["this_run"] for row in read_summary(out)} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in (out / CACHE_NAME).rglob("*.dcm")} == stamps
    # A date range picks the follow-up only (the demo's first scan is 2020-03-15, the later one 30 days on).
    dated = tmp_path / "dated"
    assert batch("--server", orthanc.dimse, "--patient-id", patient, "--study-date", "20200401-",
                 "--out", str(dated)) == 0
    assert [row["study_uid"] for row in read_summary(dated)] == [later]


def test_a_study_the_pacs_cannot_deliver_is_an_error_row(orthanc, two_scans, tmp_path, monkeypatch):  # noqa: F811
    from jcs_viewer.pacs import client

    patient, (first, later) = two_scans
    real = client.retrieve_study

    def deliver_one(server, uid, out_dir, *args, **kwargs):
        if uid == first:  # the archive lost this one's instances
            raise client.PacsError("Only 0 of 8 instances arrived.")
        return real(server, uid, out_dir, *args, **kwargs)

    monkeypatch.setattr(client, "retrieve_study", deliver_one)
    out = tmp_path / "out"
    assert batch("--server", orthanc.dimse, "--patient-id", patient, "--out", str(out)) == 2
    rows = {row["source"].rsplit("/", 1)[1]: row for row in read_summary(out)}
    assert rows[later]["status"] == "ok"
    assert rows[first]["status"] == "error" and rows[first]["error_kind"] == "retrieve"
    assert rows[first]["error"] == f"Not retrieved from {orthanc.dimse}: Only 0 of 8 instances arrived."
    assert not (out / CACHE_NAME / first).exists() and not (out / CACHE_NAME / f"{first}.incomplete").exists()
    # The PACS delivers again: --resume retrieves and analyses that study only.
    monkeypatch.setattr(client, "retrieve_study", real)
    assert batch("--server", orthanc.dimse, "--patient-id", patient, "--out", str(out), "--resume") == 0
    rows = {row["source"].rsplit("/", 1)[1]: row for row in read_summary(out)}
    assert (rows[first]["status"], rows[first]["this_run"]) == ("ok", "analysed")
    assert rows[later]["this_run"] == "skipped"
    shutil.rmtree(out)


def test_bad_pacs_queries_are_one_sentence(orthanc, tmp_path, capsys):  # noqa: F811
    assert batch("--server", orthanc.dimse, "--patient-id", "NOBODY-HERE", "--out", str(tmp_path / "o")) == 2
    assert "No study on" in capsys.readouterr().err
    assert batch(str(tmp_path), "--server", orthanc.dimse, "--out", str(tmp_path / "o")) == 2
    assert "one of the two" in capsys.readouterr().err
    assert batch(str(tmp_path), "--study-date", "20200101", "--out", str(tmp_path / "o")) == 2
    assert "add --server" in capsys.readouterr().err
    assert parse_date_range("20200101") == ("20200101", "20200101")
    assert parse_date_range("-20200101") == ("00000000", "20200101")
    with pytest.raises(JCSError, match="is not a date"):
        parse_date_range("2020-01-01")
