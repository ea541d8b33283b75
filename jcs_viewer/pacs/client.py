"""One interface over both protocols: the command line and the GUI call these, never dimse/dicomweb directly.

``server`` is a :class:`~jcs_viewer.pacs.server.Server` or its text (``AET@HOST:PORT`` or a DICOMweb URL);
``ae_title`` is our calling AE title (DIMSE only; DICOMweb has none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jcs_viewer.pacs import dicomweb, dimse
from jcs_viewer.pacs.server import DEFAULT_AE_TITLE, DEFAULT_TIMEOUT, PacsError, Server, check_ae_title, parse_server

__all__ = ["PacsError", "Server", "echo", "find_studies", "retrieve_study", "send_files", "study_row"]


def _server(server: Server | str) -> Server:
    return server if isinstance(server, Server) else parse_server(server)


def echo(server: Server | str, ae_title: str = DEFAULT_AE_TITLE, timeout: float = DEFAULT_TIMEOUT) -> Server:
    """Check that the PACS answers (C-ECHO, or a QIDO-RS query); returns the parsed server."""
    server = _server(server)
    if server.kind == "dicomweb":
        dicomweb.echo(server, timeout)
    else:
        dimse.echo(server, check_ae_title(ae_title), timeout)
    return server


def find_studies(server: Server | str, ae_title: str = DEFAULT_AE_TITLE, *, patient_id: str = "",
                 study_uid: str = "", timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """Studies on the PACS (optionally one patient's, DICOM wildcards allowed), as :func:`study_row` dicts,
    newest first."""
    server = _server(server)
    if server.kind == "dicomweb":
        found = dicomweb.find_studies(server, patient_id, study_uid, timeout)
    else:
        found = dimse.find_studies(server, check_ae_title(ae_title), patient_id, study_uid, timeout)
    rows = [study_row(ds) for ds in found]
    return sorted(rows, key=lambda r: (r["StudyDate"], r["StudyInstanceUID"]), reverse=True)


def study_row(ds: Any) -> dict[str, Any]:
    """A study's query answer as plain values (JSON-ready): modalities a list, the instance count an int."""
    row: dict[str, Any] = {}
    for key in dimse.STUDY_KEYS:
        value = ds.get(key, None)
        value = getattr(value, "value", value)
        if key == "ModalitiesInStudy":
            items = [] if value in (None, "") else [value] if isinstance(value, str) else list(value)
            row[key] = [str(v) for v in items]
        elif key == "NumberOfStudyRelatedInstances":
            try:
                row[key] = int(value) if value not in (None, "") else None
            except (TypeError, ValueError):
                row[key] = None
        else:
            row[key] = "" if value is None else str(value)
    return row


def retrieve_study(server: Server | str, study_uid: str, out_dir: str | Path, ae_title: str = DEFAULT_AE_TITLE, *,
                   progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Bring every instance of one study into ``out_dir`` (``<SOPInstanceUID>.dcm``); returns the files.

    Raises:
        PacsError: unreachable, refused, unknown study, or only part of it arrived ("N of M instances").
        Cancelled: ``cancel()`` returned True.
    """
    server, out = _server(server), Path(out_dir).expanduser()
    study_uid = str(study_uid).strip()
    if not dimse._UID.match(study_uid):
        raise PacsError(f"{study_uid!r} is not a Study Instance UID (digits and dots).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PacsError(f"Cannot create the folder {out}: {exc.strerror or exc}.") from None
    if server.kind == "dicomweb":
        return dicomweb.get_study(server, study_uid, out, progress=progress, cancel=cancel, timeout=timeout)
    ae_title = check_ae_title(ae_title)
    studies = dimse.find_studies(server, ae_title, study_uid=study_uid, timeout=timeout)
    if not studies:
        raise PacsError(f"The PACS {server} has no study {study_uid}.")
    expected = study_row(studies[0])["NumberOfStudyRelatedInstances"]
    return dimse.get_study(server, ae_title, study_uid, out, expected=expected, progress=progress, cancel=cancel,
                           timeout=timeout)


def send_files(server: Server | str, files: Sequence[str | Path], ae_title: str = DEFAULT_AE_TITLE, *,
               progress: Callable[[int, int], None] | None = None, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Store DICOM files on the PACS (C-STORE or STOW-RS); returns how many were stored.

    Raises:
        PacsError: unreachable, refused, a file that is not DICOM, or a file the server refused (named).
    """
    from jcs_viewer.io.dicom_instance import read_instance
    from pydicom.errors import InvalidDicomError

    server = _server(server)
    paths = [Path(f) for f in files]
    for path in paths:
        try:
            read_instance(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError) as exc:
            raise PacsError(f"Cannot send {path}: it is not a readable DICOM file ({exc}).") from None
    if not paths:
        raise PacsError("There is nothing to send: no DICOM file was given.")
    if server.kind == "dicomweb":
        dicomweb.store_files(server, paths, progress=progress, timeout=timeout)
    else:
        dimse.store_files(server, check_ae_title(ae_title), paths, progress=progress, timeout=timeout)
    return len(paths)
