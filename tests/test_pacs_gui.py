"""File ▸ Open from PACS and File ▸ Send Results to PACS, driven in the real main window (pytest-qt, offscreen)
against the live Orthanc: search, retrieve (and cancel), analyse, edit, send; then Orthanc holds the reader's
edited SEG, the SR of the edited quantities and the report."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.pacs_dialog import retrieve_folder  # noqa: E402
from jcs_viewer.io import write_demo_study  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402
from jcs_viewer.vocabulary import person_name
from orthanc_server import free_port, orthanc  # noqa: E402, F401 - fixture


@pytest.fixture
def stored_demo(orthanc, tmp_path):  # noqa: F811
    write_demo_study(tmp_path / "demo", n_slices=16, seed=8, size=64)
    files = sorted((tmp_path / "demo" / "dicom").glob("*.dcm"))
    orthanc.clear()
    orthanc.upload(files)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    return files, header


@pytest.fixture
def window(qtbot, orthanc, tmp_path):  # noqa: F811
    settings = SettingsStore(tmp_path / "settings.ini")
    settings.update(auto_analyze=True, session_restore="never", device="cpu", pacs_servers=(orthanc.dimse,))
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    return win


def search(qtbot, dialog, patient_id: str) -> None:
    dialog.patient.setText(patient_id)
    previous = dialog.worker
    assert dialog.search_button.isEnabled()
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.worker is not previous and dialog.worker.delivered, timeout=30000)
    assert not dialog.last_error, dialog.last_error


def test_open_from_pacs_then_send_the_edited_results(qtbot, window, orthanc, stored_demo, tmp_path):  # noqa: F811
    import highdicom as hd

    files, header = stored_demo
    window.pacs.open_from_pacs()
    dialog = window.pacs.browser
    assert dialog.server.currentText() == orthanc.dimse  # the server list of Settings
    dialog.server.setEditText(f"ORTHANC@127.0.0.1:{free_port()}")  # a typed server nobody answers at
    dialog.search()
    qtbot.waitUntil(lambda: dialog.worker.delivered, timeout=30000)
    assert dialog.last_error.startswith("Nothing answers at") and dialog.rows == []
    dialog.last_error = ""
    dialog.server.setCurrentIndex(0)
    search(qtbot, dialog, "NOBODY")
    assert dialog.rows == [] and "No study found" in dialog.status.text()
    search(qtbot, dialog, str(header.PatientID))
    assert [r["StudyInstanceUID"] for r in dialog.rows] == [header.StudyInstanceUID]
    assert dialog.table.item(0, 0).text() == header.PatientID
    assert dialog.table.item(0, 1).text() == person_name(str(header.PatientName))  # "Family, Given", not "Family^Given"
    assert "^" not in dialog.table.item(0, 1).text() and dialog.table.item(0, 2).text().count("-") == 2
    assert dialog.table.item(0, 4).text() == str(len(files))

    # Cancel: the retrieve stops and keeps nothing; the dialog stays open.
    dialog.retrieve()
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30000)
    assert dialog.isVisible() and "cancelled" in dialog.status.text()
    assert not retrieve_folder(header.StudyInstanceUID).exists()

    qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.editing.session is not None or window.last_error), timeout=120000)
    assert window.last_error is None, window.last_error
    assert not dialog.isVisible() and window.study_path == retrieve_folder(header.StudyInstanceUID)
    assert window.state.volume.n_slices == len(files)

    # The reader edits the lesion mask, then sends.
    session = window.editing.session
    with session.labels.stroke("brush"):
        session.labels.paint_disk(8, (32, 20), 5, 1)
    edited = session.labels.data > 0
    # A PACS that is not there: one sentence, nothing sent.
    window.pacs.send_results(server=f"ORTHANC@127.0.0.1:{free_port()}", anonymize=False)
    qtbot.waitUntil(lambda: bool(window.last_error), timeout=30000)
    assert window.last_error.startswith("Nothing answers at 127.0.0.1:") and not window.pacs.last_sent
    window.last_error = None
    window.pacs.send_results(server=orthanc.dimse, anonymize=False)
    qtbot.waitUntil(lambda: bool(window.pacs.last_sent or window.last_error), timeout=120000)
    assert window.last_error is None, window.last_error
    assert window.pacs.last_sent == ["lesion_seg.dcm", "results_sr.dcm", "report_pdf.dcm"]
    assert "Sent lesion_seg.dcm" in window.last_status

    series = {s["Modality"]: s for s in orthanc.series_of_study(header.StudyInstanceUID)}
    assert set(series) == {"CT", "SEG", "SR", "DOC"}
    fetched = {}
    for modality in ("SEG", "SR"):
        fetched[modality] = tmp_path / f"{modality}.dcm"
        fetched[modality].write_bytes(orthanc.instance_file(series[modality]["Instances"][0]))
    seg = hd.seg.segread(fetched["SEG"])
    assert seg.get_segment_description(1).algorithm_type.value == "SEMIAUTOMATIC"  # the reader's edit
    volume = window.state.volume
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in volume.source_files]
    lesion = seg.get_pixels_by_source_instance(sops, segment_numbers=[1], combine_segments=False)[..., 0] > 0
    assert np.array_equal(lesion, edited)
    sr = hd.sr.srread(fetched["SR"])
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    from jcs_viewer.pipeline.quantify import quantify

    result = window.state.result
    expected = quantify(volume, result.lung_mask, edited.astype(np.uint8),
                        min_lesion_voxels=result.quant.min_lesion_voxels)
    measured = groups["Lesions, both lungs"].get_measurements()[0].value
    assert measured == pytest.approx(expected.lesion_volume_ml["total"], rel=1e-6)
    orthanc.clear()


def test_send_before_analysis_is_one_sentence(qtbot, window, tmp_path):
    window.pacs.send_results(server=f"ORTHANC@127.0.0.1:{free_port()}")
    assert "no result to export" in window.last_error
