"""DICOMweb (dicomweb-client): QIDO-RS queries, WADO-RS retrieve, STOW-RS store; the same contract as
:mod:`jcs_viewer.pacs.dimse` (one :class:`~jcs_viewer.pacs.server.PacsError` sentence per failure)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jcs_viewer.errors import Cancelled
from jcs_viewer.pacs.dimse import _UID, STUDY_KEYS, Progress
from jcs_viewer.pacs.server import DEFAULT_TIMEOUT, PacsError, Server


def _client(server: Server, timeout: float) -> Any:
    from dicomweb_client.api import DICOMwebClient

    # Its own log lines (failed instances, retries) would reach the terminal raw; our sentence says it.
    logging.getLogger("dicomweb_client").addHandler(logging.NullHandler())
    logging.getLogger("dicomweb_client").propagate = False
    client = DICOMwebClient(server.url, timeout=timeout)
    client.set_http_retry_params(retry=False)
    return client


@contextlib.contextmanager
def _http(server: Server, what: str, timeout: float) -> Iterator[None]:
    """Turn the HTTP client's exceptions into one sentence naming the server and what was asked."""
    import requests

    try:
        yield
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        code = getattr(response, "status_code", "?")
        reason = getattr(response, "reason", "") or ""
        hint = " (check the URL: it should end in the server's DICOMweb root)" if code == 404 else ""
        raise PacsError(f"The DICOMweb server {server} answered the {what} with HTTP {code} {reason}{hint}."
                        .replace(" .", ".")) from None
    except requests.exceptions.Timeout:
        raise PacsError(f"The DICOMweb server {server} did not answer the {what} within {timeout:g} s.") from None
    except requests.exceptions.ConnectionError as exc:
        raise PacsError(_connection_failure(server, what, exc)) from None
    except requests.exceptions.JSONDecodeError as exc:  # also a RequestException: before it
        raise PacsError(f"The DICOMweb server {server} answered the {what} with something that is not DICOM JSON "
                        f"({exc.msg} at character {exc.pos}): is the URL the server's DICOMweb root?") from None
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"The {what} to {server} failed ({type(exc).__name__}).") from None
    except ValueError as exc:  # an answer that is not DICOM JSON / multipart
        raise PacsError(f"The DICOMweb server {server} gave an answer to the {what} that is not DICOMweb "
                        f"({str(exc).splitlines()[0] if str(exc) else 'unreadable'}).") from None


def _connection_failure(server: Server, what: str, exc: Exception) -> str:
    """Why no HTTP answer came: nothing listening, a listener that is not HTTP, or one that hung up."""
    from http.client import BadStatusLine, RemoteDisconnected

    cause = exc.args[0] if exc.args else None
    reason = cause.args[1] if getattr(cause, "args", None) and len(cause.args) > 1 else None
    if isinstance(reason, RemoteDisconnected):
        return f"The server at {server} closed the connection without answering the {what}."
    if isinstance(reason, BadStatusLine):  # e.g. a DIMSE port, or another protocol
        return (f"Something answers at {server}, but not in HTTP: is it a DICOM port? Give a DIMSE server as "
                "AET@HOST:PORT, a DICOMweb server by its http(s) URL.")
    return f"Nothing answers at {server}: is the PACS running and is the URL right?"


def echo(server: Server, timeout: float = DEFAULT_TIMEOUT) -> None:
    """A one-study QIDO-RS query: DICOMweb has no C-ECHO, an answered query is the proof of life."""
    with _http(server, "test query", timeout):
        _client(server, timeout).search_for_studies(limit=1)


def find_studies(server: Server, patient_id: str = "", study_uid: str = "",
                 timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """QIDO-RS studies; returns pydicom Datasets with the :data:`~jcs_viewer.pacs.dimse.STUDY_KEYS`."""
    from pydicom import Dataset

    filters = {k: v for k, v in (("PatientID", patient_id), ("StudyInstanceUID", study_uid)) if v}
    with _http(server, "study query", timeout):
        found = _client(server, timeout).search_for_studies(fields=list(STUDY_KEYS), search_filters=filters,
                                                           get_remaining=True)
        return [Dataset.from_json(item) for item in found]


def get_study(server: Server, study_uid: str, out_dir: Path, *, expected: int | None = None,
              progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """WADO-RS one study into ``out_dir`` as ``<SOPInstanceUID>.dcm``; same contract as the DIMSE C-GET."""
    from pydicom import Dataset

    client = _client(server, timeout)
    if expected is None:  # the study query says how many to expect, for the progress and the partial check
        with _http(server, "study query", timeout):
            found = client.search_for_studies(search_filters={"StudyInstanceUID": study_uid},
                                              fields=["NumberOfStudyRelatedInstances"])
        if not found:
            raise PacsError(f"The DICOMweb server {server} has no study {study_uid}.")
        expected = int(Dataset.from_json(found[0]).get("NumberOfStudyRelatedInstances", 0) or 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    received: list[Path] = []
    try:
        with _http(server, "study retrieve", timeout):
            for ds in client.iter_study(study_uid):
                received.append(_save(server, ds, out_dir))
                if progress is not None:
                    progress(len(received), max(expected, len(received)))
                if cancel is not None and cancel():
                    raise Cancelled(f"Retrieving the study was cancelled after {len(received)} instances.")
    except PacsError as exc:
        if not expected:
            raise
        raise PacsError(f"Only {len(received)} of {expected} instances of study {study_uid} arrived "
                        f"({str(exc).rstrip('.')}).") from None
    if not received:
        raise PacsError(f"The DICOMweb server {server} sent no instance of study {study_uid} "
                        "(is the Study UID right?).")
    if len(received) < expected:
        raise PacsError(f"Only {len(received)} of {expected} instances of study {study_uid} arrived from {server}.")
    return received


def _save(server: Server, ds: Any, out_dir: Path) -> Path:
    uid = str(ds.SOPInstanceUID)
    if not _UID.match(uid):
        raise PacsError(f"The DICOMweb server {server} sent an instance with the malformed SOP Instance "
                        f"UID {uid[:64]!r}.")
    path = out_dir / f"{uid}.dcm"
    try:
        ds.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise PacsError(f"{path} could not be written ({exc.strerror or exc}).") from None
    return path


def store_files(server: Server, files: Sequence[Path], *, progress: Progress | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> None:
    """STOW-RS ``files``, one request per file so a refusal names its file."""
    from jcs_viewer.io.dicom_instance import read_instance

    client = _client(server, timeout)
    for done, path in enumerate(files, start=1):
        ds = read_instance(path)
        with _http(server, f"store of {Path(path).name}", timeout):
            answer = client.store_instances([ds])
        failed = list(getattr(answer, "FailedSOPSequence", None) or [])
        if failed:
            reason = failed[0].get("FailureReason", "")
            raise PacsError(f"The DICOMweb server {server} refused to store {Path(path).name}"
                            f"{f' (failure reason 0x{int(reason):04X})' if reason != '' else ''}.")
        # PS3.18: what was stored is listed in the answer; a server may drop an instance without saying so.
        stored = {str(item.get("ReferencedSOPInstanceUID", ""))
                  for item in getattr(answer, "ReferencedSOPSequence", None) or []}
        if str(ds.SOPInstanceUID) not in stored:
            raise PacsError(f"The DICOMweb server {server} did not store {Path(path).name} (its answer does not "
                            "list it as stored).")
        if progress is not None:
            progress(done, len(files))
