"""Bad servers get one sentence and exit 2, never a traceback: nothing listening, an association refused (unknown
calling or called AE title), a server that never answers, a partial retrieve, a refused store. Each against a real
process: a live Orthanc, one whose filter refuses every instance, a port nobody listens on, a socket that
accepts and stays silent."""

from __future__ import annotations

import logging
import re
import socket
import threading

import pydicom
import pytest

from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study
from orthanc_server import free_port, orthanc, rejecting_orthanc, require_dicomweb  # noqa: F401 - fixtures

PROTOCOLS = ["dimse", "dicomweb"]


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("jcs-viewer: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held, stop = [], threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def demo_files(tmp_path):
    write_demo_study(tmp_path, n_slices=8, seed=21, size=48)
    return sorted((tmp_path / "dicom").glob("*.dcm"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nothing_listening(protocol, capsys):
    port = free_port()
    server = f"ORTHANC@127.0.0.1:{port}" if protocol == "dimse" else f"http://127.0.0.1:{port}/dicom-web"
    assert main(["pacs", "echo", "--server", server]) == 2
    assert "Nothing answers at" in one_sentence(capsys)


def test_unknown_calling_ae_title_is_refused_with_the_reason(orthanc, capsys):  # noqa: F811
    assert main(["pacs", "find", "--server", orthanc.dimse, "--ae-title", "STRANGER"]) == 2
    err = one_sentence(capsys)
    assert "rejected the association from STRANGER" in err and "Calling AE title not recognised" in err


def test_a_refusal_whose_socket_closes_at_once_is_still_read_as_a_refusal(orthanc, caplog):  # noqa: F811
    """Orthanc closes the socket right after its A-ASSOCIATE-RJ; pynetdicom's requestor thread may then find the
    transport gone before it reads the reply and call it a failed connection. Slowing pynetdicom down with its
    debug log makes that race common (about one association in seven before the fix read the PDU itself)."""
    from jcs_viewer.pacs.dimse import associate
    from jcs_viewer.pacs.server import PacsError, parse_server

    caplog.set_level(logging.DEBUG, logger="pynetdicom")
    server = parse_server(orthanc.dimse)
    sentences = []
    for _ in range(30):
        with pytest.raises(PacsError) as refused:
            with associate(server, "STRANGER", [("1.2.840.10008.1.1",)]):
                pass
        sentences.append(str(refused.value))
    assert all("rejected the association from STRANGER (Calling AE title not recognised)" in s for s in sentences), \
        sorted(set(sentences))


def test_wrong_called_ae_title_is_refused_with_the_reason(orthanc, capsys):  # noqa: F811
    wrong = orthanc.dimse.replace("ORTHANC@", "NOTORTHANC@")
    assert main(["pacs", "echo", "--server", wrong]) == 2
    err = one_sentence(capsys)
    assert "Called AE title not recognised" in err and "its own AE title is NOTORTHANC" in err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_that_never_answers_times_out(silent_server, protocol, capsys):
    server = (f"ORTHANC@127.0.0.1:{silent_server}" if protocol == "dimse"
              else f"http://127.0.0.1:{silent_server}/dicom-web")
    assert main(["pacs", "echo", "--server", server, "--timeout", "1"]) == 2
    err = one_sentence(capsys)
    assert "did not answer" in err and "within 1 s" in err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partial_retrieve_says_how_many_of_how_many_arrived(orthanc, demo_files, protocol, tmp_path,
                                                            capsys):  # noqa: F811
    if protocol == "dicomweb":
        require_dicomweb()
    orthanc.clear()
    ids = orthanc.upload(demo_files)
    # One stored file vanishes from Orthanc's storage (a broken disk): Orthanc can no longer send it.
    uuid = orthanc.rest(f"/instances/{ids[5]}/attachments/dicom/info")["Uuid"]
    (orthanc.root / "storage" / uuid[:2] / uuid[2:4] / uuid).unlink()
    study_uid = str(pydicom.dcmread(demo_files[0], stop_before_pixels=True).StudyInstanceUID)
    server = orthanc.dimse if protocol == "dimse" else orthanc.dicomweb
    assert main(["pacs", "get", "--server", server, "--study-uid", study_uid, "--out", str(tmp_path / "got"),
                 "--quiet"]) == 2
    err = one_sentence(capsys)
    arrived = len(list((tmp_path / "got").glob("*.dcm")))
    assert arrived < len(demo_files)
    assert f"Only {arrived} of {len(demo_files)} instances of study {study_uid} arrived" in err
    orthanc.clear()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_that_refuses_the_stored_object(rejecting_orthanc, demo_files, protocol, capsys):  # noqa: F811
    if protocol == "dicomweb":
        require_dicomweb()
    server = rejecting_orthanc.dimse if protocol == "dimse" else rejecting_orthanc.dicomweb
    assert main(["pacs", "send", "--server", server, str(demo_files[0])]) == 2
    err = one_sentence(capsys)
    assert demo_files[0].name in err
    assert ("refused to store" in err and "0xA700" in err) if protocol == "dimse" else "did not store" in err
    assert rejecting_orthanc.rest("/instances") == []


def test_analyze_send_checks_the_server_before_the_analysis(demo_files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(demo_files[0].parent), "--out", str(out), "--report", "--send",
                 f"ORTHANC@127.0.0.1:{free_port()}", "--quiet"]) == 2
    assert "Nothing answers at" in one_sentence(capsys)
    assert not out.exists()  # nothing was analysed or written
    assert main(["analyze", str(demo_files[0].parent), "--out", str(out), "--send", "ORTHANC@host:1"]) == 2
    assert "add --report" in one_sentence(capsys)


@pytest.mark.parametrize("text", ["ORTHANC", "ORTHANC@host", "ORTHANC@host:99999", "A" * 17 + "@host:104",
                                  "ftp://pacs/dicom-web"])
def test_a_server_address_that_is_neither_form_is_one_sentence(text, capsys):
    assert main(["pacs", "echo", "--server", text]) == 2
    one_sentence(capsys)


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e300", "0", "-5", "soon"])
@pytest.mark.parametrize("command", [["pacs", "echo", "--server", "PACS@127.0.0.1:1"],
                                     ["batch", "--server", "PACS@127.0.0.1:1", "--out", "OUT"]])
def test_a_timeout_that_is_no_number_of_seconds_is_refused_when_parsed(timeout, command, tmp_path, capsys):
    """``--timeout nan`` passed the ``<= 0`` check and raised ValueError in socket.settimeout; 1e300 raised
    OverflowError there."""
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command] + ["--timeout", timeout]
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and "number of seconds" in capsys.readouterr().err


@pytest.fixture
def answering_server():
    """A TCP server that answers every connection with the bytes it is set to (``None``: hangs up); yields a
    function that sets them and returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    answer: list[bytes | None] = [None]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    if answer[0] is not None:
                        conn.sendall(answer[0])
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def answering(reply: bytes | None) -> int:
        answer[0] = reply
        return listener.getsockname()[1]

    yield answering
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("reply, says", [
    (b"\x02\x00garbage, not a status line\r\n" * 4, "Something answers at .*, but not in HTTP: is it a DICOM port?"),
    (None, "closed the connection without answering the test query"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<html>hi</html>",
     r"answered the test query with something that is not DICOM JSON \(Expecting value at character 0\)"),
], ids=["not-http", "hangs-up", "not-json"])
def test_a_dicomweb_url_whose_server_answers_something_else_says_what(answering_server, reply, says, capsys):
    """Each read as "Nothing answers … is the PACS running" or "failed (JSONDecodeError)"."""
    server = f"http://127.0.0.1:{answering_server(reply)}/dicom-web"
    assert main(["pacs", "echo", "--server", server, "--timeout", "5"]) == 2
    assert re.search(says, one_sentence(capsys))
