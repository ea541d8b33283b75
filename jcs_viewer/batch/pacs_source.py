"""A batch whose studies come from a PACS query (``jcs-viewer batch --server SERVER --patient-id ID
--study-date RANGE``): the studies found are retrieved one by one into ``DIR/.pacs/<StudyInstanceUID>/`` and
analysed like folders.

A retrieve is all or nothing: it lands in ``<uid>.incomplete`` and is renamed when every instance arrived, with a
hidden ``.retrieved`` mark, so ``--resume`` neither retrieves a study again nor analyses half of one. A study that
cannot be retrieved becomes an error row with the PACS's sentence (retried by ``--resume``); the rest go on.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from jcs_viewer.batch.fingerprint import StudyItem, study_key
from jcs_viewer.errors import JCSError

CACHE_NAME = ".pacs"
RETRIEVED_MARK = ".retrieved"
_DATE_RANGE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")


def parse_date_range(text: str) -> tuple[str, str]:
    """DICOM date matching: ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD`` -> (first, last).

    Raises:
        JCSError: anything else, in one sentence.
    """
    text = (text or "").strip()
    match = _DATE_RANGE.match(text)
    if not text or not match or not (match.group(1) or match.group(3)):
        raise JCSError(f"--study-date {text!r} is not a date (YYYYMMDD) or a range (YYYYMMDD-YYYYMMDD, "
                       "YYYYMMDD-, -YYYYMMDD).")
    first, dash, last = match.groups()
    if not dash:
        return first, first
    return first or "00000000", last or "99999999"


def pacs_items(server: str, ae_title: str, out: Path, *, patient_id: str = "", study_date: str = "",
               timeout: float = 30.0, say: Callable[[str], None] | None = None) -> list[StudyItem]:
    """Query the PACS, retrieve what is not retrieved yet, and return the batch's study items.

    Raises:
        JCSError: the PACS cannot be queried (nothing is retrieved), or the date range is malformed.
    """
    from jcs_viewer.pacs.client import find_studies

    first, last = parse_date_range(study_date) if study_date else ("00000000", "99999999")
    rows = [row for row in find_studies(server, ae_title, patient_id=patient_id, timeout=timeout)
            if first <= (row["StudyDate"] or "00000000") <= last or (not study_date and not row["StudyDate"])]
    cache = Path(out) / CACHE_NAME
    items = []
    for i, row in enumerate(rows, 1):
        uid = row["StudyInstanceUID"]
        label = f"{row['PatientID'] or 'no-id'}/{row['StudyDate'] or 'undated'}/{uid}"
        folder = cache / uid
        error = ""
        if not (folder / RETRIEVED_MARK).is_file():
            if say is not None:
                say(f"Retrieving study {i} of {len(rows)} ({label}) from {server}")
            error = _retrieve(server, ae_title, uid, folder, timeout)
        items.append(StudyItem(study_key(label), folder, label, error))
    return items


def _retrieve(server: str, ae_title: str, uid: str, folder: Path, timeout: float) -> str:
    """Bring one study into ``folder``, all or nothing; returns "" or the sentence saying why not."""
    from jcs_viewer.pacs.client import retrieve_study

    stage = folder.with_name(folder.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        retrieve_study(server, uid, stage, ae_title, timeout=timeout)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(stage, folder)
        (folder / RETRIEVED_MARK).write_text(f"{server}\n", encoding="utf-8")
    except JCSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        return f"Not retrieved from {server}: {exc}"
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        return f"Not retrieved from {server}: could not write {folder}: {exc.strerror or exc}."
    return ""
