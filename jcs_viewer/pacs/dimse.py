"""The DICOM network (DIMSE, pynetdicom): C-ECHO, study C-FIND, C-GET of a study, C-STORE of files.

Every failure a PACS can cause becomes one :class:`~jcs_viewer.pacs.server.PacsError` sentence: nothing
listening, an association refused (with the server's reason: usually an AE title it does not know), no
answer within the timeout, a partial retrieve, a stored object refused.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jcs_viewer.errors import Cancelled
from jcs_viewer.pacs.server import DEFAULT_TIMEOUT, PacsError, Server

#: study-level C-FIND return keys (the browser's and ``pacs find``'s columns).
STUDY_KEYS = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyDescription", "AccessionNumber",
              "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
#: what a C-GET may bring back, by pynetdicom sop_class name (at most 128 contexts in all; these suffice for a
#: CT study and what we and others store beside it).
GET_STORAGE_CLASSES = (
    "CTImageStorage", "EnhancedCTImageStorage", "MRImageStorage", "EnhancedMRImageStorage",
    "PositronEmissionTomographyImageStorage", "SecondaryCaptureImageStorage", "ComputedRadiographyImageStorage",
    "DigitalXRayImageStorageForPresentation", "SegmentationStorage", "Comprehensive3DSRStorage",
    "ComprehensiveSRStorage", "EnhancedSRStorage", "BasicTextSRStorage", "EncapsulatedPDFStorage",
    "GrayscaleSoftcopyPresentationStateStorage", "KeyObjectSelectionDocumentStorage", "RTStructureSetStorage",
)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
Progress = Callable[[int, int], None]


class _Reasons(logging.Handler):
    """Collects pynetdicom's log lines during one association (what it says of refused presentation contexts)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Rejection:
    """The A-ASSOCIATE-RJ PDU, if the PACS sent one: pynetdicom may report a reject whose socket closed at once as
    a failed connection (the ACSE thread finds the transport gone before it reads the reply), and the PDU itself
    is the only trustworthy record."""

    def __init__(self) -> None:
        self.pdu: Any = None

    def __call__(self, event: Any) -> None:
        from pynetdicom.pdu import A_ASSOCIATE_RJ

        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            self.pdu = event.pdu


def _reachable(server: Server, timeout: float) -> None:
    """Open and close a TCP connection first: 'nothing listening' and 'no such host' read better than an abort."""
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout):
            pass
    except socket.gaierror:
        raise PacsError(f"The PACS host {server.host} is unknown (check the name in {server}).") from None
    except TimeoutError:
        raise PacsError(f"The PACS {server} did not accept a connection within {timeout:g} s.") from None
    except OSError as exc:
        raise PacsError(f"Nothing answers at {server.host}:{server.port} ({exc.strerror or exc}): is the PACS "
                        "running and is the port right?") from None


@contextlib.contextmanager
def associate(server: Server, ae_title: str, contexts: Sequence[tuple], *, timeout: float = DEFAULT_TIMEOUT,
              roles: Sequence[Any] = (), handlers: Sequence[tuple] = ()) -> Iterator[Any]:
    """An established association with ``server`` (released afterwards), or one :class:`PacsError` sentence."""
    from pynetdicom import AE, evt

    _reachable(server, timeout)
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.maximum_pdu_size = 0  # no limit on what we take
    for context in contexts:
        ae.add_requested_context(*context)
    reasons, logger = _Reasons(), logging.getLogger("pynetdicom")
    rejection = _Rejection()
    logger.addHandler(reasons)
    start = time.monotonic()
    try:
        for _attempt in range(2):  # a connection dropped before the PACS said yes or no is tried once more
            assoc = ae.associate(server.host, server.port, ae_title=server.ae_title, ext_neg=list(roles) or None,
                                 evt_handlers=[*handlers, (evt.EVT_PDU_RECV, rejection)])
            if (assoc.is_established or assoc.is_rejected or rejection.pdu is not None
                    or time.monotonic() - start >= 0.45 * timeout):
                break
    finally:
        logger.removeHandler(reasons)
    if not assoc.is_established:
        ae.shutdown()
        raise PacsError(_refusal(server, ae_title, rejection.pdu, reasons.lines, time.monotonic() - start, timeout))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _refusal(server: Server, ae_title: str, rejection: Any, log: list[str], elapsed: float, timeout: float) -> str:
    if rejection is not None:
        reason = rejection.reason_str.strip()
        return (f"The PACS {server} rejected the association from {ae_title}"
                f"{f' ({reason})' if reason else ''}: check that the PACS knows our AE title {ae_title} (and this "
                f"computer's address) and that its own AE title is {server.ae_title}.")
    if any("No accepted presentation contexts" in line for line in log):
        return (f"The PACS {server} accepted none of the services {ae_title} asked for: it may not allow our AE "
                "title to query, retrieve or store.")
    if elapsed >= 0.9 * timeout:
        return f"The PACS {server} did not answer the association request within {timeout:g} s."
    return f"The PACS {server} closed the connection without accepting the association from {ae_title}."


def _status(value: Any) -> int:
    return int(getattr(value, "Status", -1)) if value is not None and "Status" in value else -1


def _check_final(server: Server, what: str, status: Any) -> int:
    code = _status(status)
    if code == -1:
        raise PacsError(f"The PACS {server} stopped answering the {what} (no reply within the timeout, or the "
                        "connection was aborted).")
    return code


def echo(server: Server, ae_title: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """C-ECHO: raises :class:`PacsError` unless the server answers with success."""
    from pynetdicom.sop_class import Verification

    with associate(server, ae_title, [(Verification,)], timeout=timeout) as assoc:
        code = _check_final(server, "C-ECHO", assoc.send_c_echo())
    if code != 0x0000:
        raise PacsError(f"The PACS {server} answered the C-ECHO with status 0x{code:04X} (not success).")


def find_studies(server: Server, ae_title: str, patient_id: str = "", study_uid: str = "",
                 timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """Study-root C-FIND; returns one pydicom Dataset per study (the :data:`STUDY_KEYS`)."""
    from pydicom import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for key in STUDY_KEYS:
        setattr(query, key, "")
    query.PatientID = patient_id
    query.StudyInstanceUID = study_uid
    found = []
    with associate(server, ae_title, [(FindModel,)], timeout=timeout) as assoc:
        for status, identifier in assoc.send_c_find(query, FindModel):
            code = _check_final(server, "C-FIND", status)
            if code in (0xFF00, 0xFF01):
                if identifier is not None:
                    found.append(identifier)
            elif code != 0x0000:
                raise PacsError(f"The PACS {server} refused the study query (C-FIND status 0x{code:04X}).")
    return found


def get_study(server: Server, ae_title: str, study_uid: str, out_dir: Path, *, expected: int | None = None,
              progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """C-GET one study into ``out_dir`` as ``<SOPInstanceUID>.dcm`` files (we are the storage SCP).

    Args:
        expected: the number of instances the study holds, when known from a query (the server's pending
            responses refine it).
        progress: called with ``(instances received, instances expected)``.
        cancel: polled between instances; when it returns True the association is aborted and
            :class:`~jcs_viewer.errors.Cancelled` raised (files already received stay in ``out_dir``).

    Raises:
        PacsError: the server is unreachable or refuses, or not every instance arrived ("N of M").
    """
    from pydicom import Dataset
    from pynetdicom import ALL_TRANSFER_SYNTAXES, build_role, evt, sop_class
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel

    out_dir.mkdir(parents=True, exist_ok=True)
    received: list[Path] = []
    problems: list[str] = []
    total = [expected or 0]

    def on_store(event: Any) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            uid = str(ds.SOPInstanceUID)
            if not _UID.match(uid):
                problems.append(f"an instance with the malformed SOP Instance UID {uid[:64]!r}")
                return 0xC211
            path = out_dir / f"{uid}.dcm"
            ds.save_as(path, enforce_file_format=True)
        except OSError as exc:
            problems.append(f"{out_dir} could not be written ({exc.strerror or exc})")
            return 0xA700
        except Exception as exc:  # noqa: BLE001 - a malformed instance from the server, named once
            problems.append(f"an instance could not be read ({exc})")
            return 0xC210
        received.append(path)
        if progress is not None:
            progress(len(received), max(total[0], len(received)))
        return 0x0000

    classes = [getattr(sop_class, name) for name in GET_STORAGE_CLASSES]
    contexts = [(GetModel,)] + [(uid, ALL_TRANSFER_SYNTAXES) for uid in classes]
    roles = [build_role(uid, scp_role=True) for uid in classes]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    final = None
    with associate(server, ae_title, contexts, timeout=timeout, roles=roles,
                   handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for status, _identifier in assoc.send_c_get(query, GetModel):
            code = _check_final(server, "C-GET", status)
            counts = [int(status.get(k, 0) or 0) for k in ("NumberOfRemainingSuboperations",
                      "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                      "NumberOfWarningSuboperations")]
            if sum(counts):
                total[0] = max(total[0], sum(counts))
            if cancel is not None and cancel():
                assoc.abort()
                raise Cancelled(f"Retrieving the study was cancelled after {len(received)} instances.")
            if code not in (0xFF00, 0xFF01):
                final = code
    arrived, wanted = len(received), max(total[0], len(received))
    if problems:
        raise PacsError(f"{arrived} of {wanted or '?'} instances of the study arrived: {problems[0]}.")
    if final not in (None, 0x0000) or arrived < wanted:
        raise PacsError(f"Only {arrived} of {wanted or '?'} instances of study {study_uid} arrived from {server} "
                        f"(C-GET status 0x{final or 0:04X}: the server failed to send the others).")
    if not received:
        raise PacsError(f"The PACS {server} sent no instance of study {study_uid} (is the Study UID right?).")
    return received


def store_files(server: Server, ae_title: str, files: Sequence[Path], *, progress: Progress | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> None:
    """C-STORE ``files`` in one association, in their own transfer syntaxes.

    Raises:
        PacsError: unreachable, refused, or a file refused by the server (named, with the status).
    """
    from jcs_viewer.io.dicom_instance import read_instance

    datasets = [read_instance(f) for f in files]
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    with associate(server, ae_title, [(cls, [ts]) for cls, ts in contexts], timeout=timeout) as assoc:
        for done, (path, ds) in enumerate(zip(files, datasets), start=1):
            try:
                status = assoc.send_c_store(ds)
            except ValueError:
                raise PacsError(f"The PACS {server} does not accept {Path(path).name} "
                                f"({ds.SOPClassUID.name}).") from None
            code = _check_final(server, "C-STORE", status)
            if code != 0x0000 and code & 0xF000 != 0xB000:
                raise PacsError(f"The PACS {server} refused to store {Path(path).name} "
                                f"(C-STORE status 0x{code:04X}).")
            if progress is not None:
                progress(done, len(files))
