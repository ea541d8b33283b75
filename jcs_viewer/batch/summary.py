"""The batch's record keeping: one row per study, ``summary.csv``/``summary.parquet``, and done-records.

A study's done-record, ``DIR/<key>/batch.json``, is written (atomically) after its outputs are in place; it holds
the row and the fingerprint and model version the row was made from. ``--resume`` trusts it only when both still
match and the output set is complete (``results.json`` and every file the run wrote are there).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcs_viewer.atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from jcs_viewer.pipeline.result import StudyResult

RECORD_NAME = "batch.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
#: ``error_kind`` of an error that the same input will raise again (a :class:`~jcs_viewer.errors.JCSError`):
#: recorded as done. Other errors (a crash, an unexpected exception) are tried again by ``--resume``.
INPUT_ERROR = "input"

_SIDES = ("left", "right", "total")
#: column -> type, in the order of the summary
COLUMNS: dict[str, str] = {
    "key": "str", "source": "str", "status": "str", "error": "str", "error_kind": "str",
    "study_uid": "str", "series_uid": "str", "n_slices": "int",
    "decision": "str", "decision_reason": "str", "positive_slices": "int", "threshold": "int",
    **{f"lesion_ml_{s}": "float" for s in _SIDES},
    **{f"lung_ml_{s}": "float" for s in _SIDES},
    **{f"involvement_pct_{s}": "float" for s in _SIDES},
    "models_s": "float", "load_s": "float", "analyze_s": "float", "write_s": "float", "total_s": "float",
    "app_version": "str", "weights": "str", "model_version": "str", "fingerprint": "str",
    "this_run": "str", "worker": "str", "output": "str", "notes": "str",
}


def result_fields(result: StudyResult, notes: list[str]) -> dict[str, Any]:
    """The summary fields that come from a ``StudyResult`` (lesion figures None when no slice was analysed;
    volumes None for images without a voxel size, whose mL would be counted at assumed voxels)."""
    q = result.quant
    measured = bool(result.lesions_measured)
    sized = bool(result.has_voxel_size)
    fields: dict[str, Any] = {
        "status": "ok",
        "study_uid": result.study.get("study_uid"),
        "series_uid": result.study.get("series_uid"),
        "n_slices": int(result.n_slices),
        "decision": result.decision,
        "decision_reason": result.decision_reason or None,
        "positive_slices": int(result.positive_slices),
        "threshold": int(result.threshold),
        "app_version": result.app_version,
        "weights": "; ".join(f"{role}={m.get('name')}@sha256:{m.get('sha256')}"
                             for role, m in sorted(result.models.items())),
        "notes": " | ".join([*result.messages, *notes]) or None,
    }
    for side in _SIDES:
        fields[f"lesion_ml_{side}"] = round(float(q.lesion_volume_ml[side]), 3) if measured and sized else None
        fields[f"lung_ml_{side}"] = round(float(q.lung_volume_ml[side]), 3) if sized else None
        fields[f"involvement_pct_{side}"] = round(float(q.involvement_percent[side]), 3) if measured else None
    return fields


def error_fields(sentence: str, kind: str) -> dict[str, Any]:
    """The summary fields of a study that failed: its one sentence and whether the input is to blame."""
    return {"status": "error", "error": sentence, "error_kind": kind}


def one_sentence(exc: BaseException) -> str:
    """An unexpected exception as one sentence, without a traceback."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"Unexpected {type(exc).__name__} while analysing it: {text.rstrip('.')}."


def complete_row(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every summary column present (None where not known), in column order."""
    return {name: fields.get(name) for name in COLUMNS}


def finish_row(base: dict[str, Any], fields: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The study's row from the scheduler's ``base`` fields (key, source, fingerprint, versions) and the worker's
    ``fields``; when the row is final (ok, or failed on its input) its done-record is written at once, so a study
    that finished is never redone, even when the scheduler stops before hearing of it."""
    outputs = fields.pop("outputs", [])
    row = complete_row({**base, **fields, "this_run": "analysed",
                        "output": base["key"] if fields.get("status") == "ok" else None})
    if row["status"] == "ok" or row["error_kind"] == INPUT_ERROR:  # a crash is not a verdict on the input
        try:
            write_record(out_dir, row, outputs)
        except OSError as exc:
            row.update(error_fields(f"Could not write {out_dir / RECORD_NAME}: {exc.strerror or exc}.", "output"))
    return row


# ---------------------------------------------------------------------------------------------- done-records
def write_record(out_dir: Path, row: dict[str, Any], outputs: list[str]) -> None:
    """Write ``out_dir/batch.json`` for a finished study (after its outputs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"row": row, "outputs": sorted(outputs)}
    atomic_write_text(out_dir / RECORD_NAME, json.dumps(record, indent=1, allow_nan=False))


def done_row(out_dir: Path, fingerprint: str, model_version: str) -> dict[str, Any] | None:
    """The recorded row when the study is done for this input and these models, else None.

    Done means: the record's fingerprint and model version match, and either the study failed on its input
    (the same input fails the same way) or its output set is complete: ``results.json`` (written last by
    :func:`jcs_viewer.report.bundle.staged_outputs`) and every other file the run wrote are there.
    """
    from jcs_viewer.report.bundle import COMPLETION_FILE

    try:
        record = json.loads((out_dir / RECORD_NAME).read_text(encoding="utf-8"))
        row, outputs = dict(record["row"]), list(record["outputs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if row.get("fingerprint") != fingerprint or row.get("model_version") != model_version:
        return None
    if row.get("status") == "error":
        return row if row.get("error_kind") == INPUT_ERROR else None
    if COMPLETION_FILE not in outputs or not all((out_dir / name).is_file() for name in outputs):
        return None
    return row


# ---------------------------------------------------------------------------------------------- summary files
def write_summary(out: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Write ``summary.csv`` and ``summary.parquet`` into ``out``; returns notes (parquet skipped, and why)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(complete_row(row) for row in rows)
    atomic_write_text(out / SUMMARY_CSV, text.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return [f"{SUMMARY_PARQUET} was skipped: pyarrow is not installed (pip install 'jcs-viewer[cluster]')."]
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
    table = pa.Table.from_pylist([complete_row(row) for row in rows], schema=schema)
    with atomic_path(out / SUMMARY_PARQUET) as tmp:
        pq.write_table(table, tmp)
    return []


def read_summary(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/summary.csv`` (strings; empty cells are ``""``)."""
    with open(out / SUMMARY_CSV, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
