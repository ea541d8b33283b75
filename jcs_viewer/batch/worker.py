"""One study of a batch, start to finish: load, analyse, write the output set, return the summary fields.

The same function runs as a Ray task (in a worker process) and in this process (``--workers 1``). It never
raises for a bad study: a :class:`~jcs_viewer.errors.JCSError` (one sentence already) or any other exception
(worded as one sentence, no traceback) comes back as the fields of an ``error`` row, so the scheduler sees
exceptions only when the worker process itself died (Ray retries those once).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcs_viewer.batch.summary import INPUT_ERROR, error_fields, finish_row, one_sentence, result_fields

if TYPE_CHECKING:
    from jcs_viewer.pipeline.options import AnalysisOptions
    from jcs_viewer.pipeline.runner import LoadedModels

#: models loaded in this process, by the options that chose them: a Ray worker process runs many studies
#: and loads the networks for the first one only.
_MODELS: dict[str, Any] = {}


def models_for(options: AnalysisOptions) -> tuple[LoadedModels, float]:
    """The models for ``options``, loaded once per process; returns ``(models, seconds spent loading)``."""
    from jcs_viewer.pipeline.runner import load_models

    key = repr(options)
    if key in _MODELS:
        return _MODELS[key], 0.0
    start = time.perf_counter()
    _MODELS.clear()  # one set at a time: a worker's memory holds one
    _MODELS[key] = load_models(options)
    return _MODELS[key], time.perf_counter() - start


def analyse_study(study: str, out_dir: str, base: dict[str, Any], options: AnalysisOptions,
                  report: bool = False, anonymize: bool = False, models: LoadedModels | None = None) -> dict[str, Any]:
    """Analyse ``study`` into ``out_dir`` (all or nothing), write its done-record and return its summary row.

    Args:
        study: the study's path (folder or file), as the worker sees it.
        out_dir: its output folder ``DIR/<key>``.
        base: the row fields the scheduler knows (key, source, fingerprint, model version, app version).
        options: the :class:`~jcs_viewer.pipeline.AnalysisOptions`.
        report: also write the PDF report and, for DICOM, the DICOM SEG.
        anonymize: de-identify every output.
        models: models already loaded (in-process runs); None loads them once per process.

    Returns:
        The row (:func:`jcs_viewer.batch.summary.finish_row`): ``base`` with the status, result figures,
        timings and worker.
    """
    from jcs_viewer.errors import JCSError, is_interrupt
    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline import analyze
    from jcs_viewer.pipeline.result import ARRAYS_NPZ
    from jcs_viewer.report.bundle import COMPLETION_FILE, write_study_outputs

    timings = {"models_s": 0.0}
    start = time.perf_counter()
    try:
        if models is None:
            models, timings["models_s"] = models_for(options)
        t0 = time.perf_counter()
        volume = load_study(Path(study))
        t1 = time.perf_counter()
        result = analyze(volume, options, models=models)
        t2 = time.perf_counter()
        written = write_study_outputs(result, volume, Path(out_dir), report=report, anonymize=anonymize)
        t3 = time.perf_counter()
        timings.update(load_s=t1 - t0, analyze_s=t2 - t1, write_s=t3 - t2)
        fields = result_fields(result, list(written.notes))
        fields["outputs"] = sorted({COMPLETION_FILE, ARRAYS_NPZ, *(Path(p).name for p in written.values())})
    except JCSError as exc:
        fields = error_fields(str(exc), INPUT_ERROR)
    except BaseException as exc:  # noqa: BLE001 - one bad study must not stop the batch (native panics too)
        if is_interrupt(exc):
            raise
        fields = error_fields(one_sentence(exc), "unexpected")
    timings["total_s"] = time.perf_counter() - start
    fields.update({k: round(v, 3) for k, v in timings.items()})
    fields["worker"] = socket.gethostname()
    return finish_row(base, fields, Path(out_dir))
