"""Where a PACS is: ``AET@HOST:PORT`` (DICOM network, DIMSE) or an ``http(s)://…/dicom-web`` URL (DICOMweb).

Standard library only: the command line parses ``--server`` before anything heavy is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jcs_viewer.errors import JCSError

DEFAULT_AE_TITLE = "JCSVIEWER"
#: seconds to wait for a connection, an association answer or a DIMSE/HTTP reply.
DEFAULT_TIMEOUT = 30.0

_AE_CHARS = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 characters, no backslash, no controls
_DIMSE = re.compile(r"^(?P<aet>[^@]+)@(?P<host>\[[0-9a-fA-F:]+\]|[^:@\s]+):(?P<port>\d{1,5})$")


class PacsError(JCSError):
    """A PACS could not be reached, refused us, or did not deliver or accept what we asked for."""


@dataclass(frozen=True)
class Server:
    """One PACS: ``kind`` is ``"dimse"`` (``ae_title``, ``host``, ``port``) or ``"dicomweb"`` (``url``)."""

    kind: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""

    def __str__(self) -> str:
        return self.url if self.kind == "dicomweb" else f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` stripped, or :class:`PacsError` when it cannot be a DICOM AE title."""
    title = str(title).strip()
    if not _AE_CHARS.match(title):
        raise PacsError(f"The {what} {title!r} is not a DICOM AE title (1 to 16 plain characters, no backslash).")
    return title


def parse_server(text: str) -> Server:
    """Parse ``AET@HOST:PORT`` or an ``http(s)://`` DICOMweb URL.

    Raises:
        PacsError: neither form, a bad AE title, or a port outside 1..65535.
    """
    text = str(text).strip()
    if text.lower().startswith(("http://", "https://")):
        return Server("dicomweb", url=text.rstrip("/"))
    match = _DIMSE.match(text)
    if not match:
        raise PacsError(f"The server {text!r} is neither AET@HOST:PORT (e.g. ORTHANC@pacs.example.org:4242) "
                        "nor a DICOMweb URL (http(s)://host/dicom-web).")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise PacsError(f"The server {text!r} names port {port}, outside 1 to 65535.")
    aet = check_ae_title(match["aet"], "server's AE title")
    return Server("dimse", ae_title=aet, host=match["host"].strip("[]"), port=port)
