"""The batch scheduler: which studies to run, where to run them, and what to record.

Each study is one Ray task (:func:`jcs_viewer.batch.worker.analyse_study`) with its resources declared: one GPU
when the analysis runs on CUDA and the runtime has GPUs, one CPU otherwise. Without ``--ray-address`` a local
Ray runtime is started in this process (and shut down at the end); with ``--workers 1`` and no address the
studies run one after another in this process, without Ray. A task whose worker process dies is retried once;
exceptions are not retried (the worker turns them into ``error`` rows: the same input fails the same way).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from jcs_viewer.batch.fingerprint import StudyItem, input_fingerprint, model_version
from jcs_viewer.batch.summary import complete_row, done_row, error_fields, finish_row, write_summary
from jcs_viewer.batch.worker import analyse_study
from jcs_viewer.errors import JCSError
from jcs_viewer.interrupts import interrupt_deferred

if TYPE_CHECKING:
    from jcs_viewer.pipeline.options import AnalysisOptions

#: the object store holds only the small per-study rows: keep Ray from reserving a share of the machine's memory
OBJECT_STORE_BYTES = 128 * 1024 * 1024
_CRASHED = ("The worker process died twice while analysing it (out of memory, or a crash in a native library); "
            "--resume tries it again.")


@dataclasses.dataclass
class BatchConfig:
    """How to run a batch.

    Attributes:
        out: the output folder (``DIR``): one sub-folder per study, ``summary.csv``, ``summary.parquet``.
        options: the :class:`~jcs_viewer.pipeline.AnalysisOptions` of every study.
        report: also write the PDF report and, for DICOM studies, the DICOM SEG.
        anonymize: de-identify every output.
        resume: skip studies done before with the same input and model version.
        workers: studies at a time (None: every CPU of this machine, or of the cluster); 1 without
            ``ray_address`` runs in this process without Ray.
        ray_address: ``auto`` or ``HOST:PORT`` of a running Ray cluster; None starts a local runtime.
        ray: run on Ray (True) or in this process (False); None decides from ``workers`` and ``ray_address``.
    """

    out: Path
    options: AnalysisOptions
    report: bool = False
    anonymize: bool = False
    resume: bool = False
    workers: int | None = None
    ray_address: str | None = None
    ray: bool | None = None

    @property
    def uses_ray(self) -> bool:
        if self.ray is not None:
            return self.ray
        return self.ray_address is not None or self.workers != 1


@dataclasses.dataclass
class BatchOutcome:
    """What a batch did: ``rows`` (summary order), counts, and whether Ctrl+C stopped it."""

    rows: list[dict[str, Any]]
    total: int
    interrupted: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def count(self, this_run: str, status: str | None = None) -> int:
        return sum(1 for r in self.rows if r["this_run"] == this_run and status in (None, r["status"]))


def import_ray() -> Any:
    """The ``ray`` module, or a one-sentence error saying how to get it."""
    try:
        import ray
    except ImportError:
        raise JCSError("Ray is not installed: pip install 'jcs-viewer[cluster]', or run with --workers 1 "
                       "(one study at a time in this process).") from None
    return ray


def run_batch(items: list[StudyItem], config: BatchConfig, progress: Any = None) -> BatchOutcome:
    """Analyse ``items`` into ``config.out``, record each study as it finishes, and write the summary.

    Args:
        items: the studies (see :func:`jcs_viewer.batch.fingerprint.make_items`).
        config: where and how.
        progress: optional object with ``start(total, skipped)``, ``update(row)`` and ``close()``.

    Returns:
        The outcome; on Ctrl+C ``interrupted`` is set and the summary holds the studies that finished.

    Raises:
        JCSError: Ray is missing or unreachable, or the weights cannot be loaded (nothing was run).
    """
    from jcs_viewer import __version__
    from jcs_viewer.pipeline.runner import load_models

    start = time.perf_counter()
    with interrupt_deferred():  # Ctrl+C now stops the batch before any study, never inside an import
        ray = import_ray() if config.uses_ray else None
        import jcs_viewer.report.bundle  # noqa: F401 - what each study and the Ctrl+C path below import
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        # Loaded here once: a bad weights name fails before any study, and their sha256s are the model version.
        models = load_models(config.options, device="cpu" if ray is not None else None)
    version = model_version(models, config.options, __version__, report=config.report, anonymize=config.anonymize)
    if ray is not None:
        models = None  # the workers load their own

    rows: dict[str, dict[str, Any]] = {}
    todo: list[tuple[StudyItem, dict[str, Any]]] = []
    for item in items:
        base = {"key": item.key, "source": item.label, "fingerprint": input_fingerprint(item.path),
                "model_version": version, "app_version": __version__}
        row = done_row(out / item.key, base["fingerprint"], version) if config.resume else None
        if row is not None:
            rows[item.key] = {**complete_row(row), "this_run": "skipped"}
        elif item.error:  # not brought in (a failed retrieve): its row says why; --resume tries it again
            rows[item.key] = complete_row({**base, **error_fields(item.error, "retrieve"), "this_run": "analysed"})
        else:
            todo.append((item, base))
    if progress is not None:
        progress.start(len(items), len(rows))

    def finish(row: dict[str, Any]) -> None:
        rows[row["key"]] = row
        if progress is not None:
            progress.update(row)

    interrupted = ended = False
    notes: list[str] = []
    try:
        if ray is not None:
            _run_on_ray(ray, todo, config, finish)
        else:
            for item, base in todo:
                finish(analyse_study(str(item.path), str(out / item.key), base, config.options, config.report,
                                     config.anonymize, models=models))
        ended = True
    except KeyboardInterrupt:
        interrupted = ended = True
        for item, base in todo:  # done-record written, but the interrupt came before its row reached us
            row = None if item.key in rows else done_row(out / item.key, base["fingerprint"], version)
            if row is not None:
                rows[item.key] = {**complete_row(row), "this_run": "analysed"}
    finally:
        ordered = [rows[item.key] for item in items if item.key in rows]
        if ordered or ended:  # an error before any study (Ray unreachable) leaves an earlier summary as it was
            notes = write_summary(out, ordered)
        if progress is not None:
            progress.close()
    return BatchOutcome(ordered, len(items), interrupted, notes, time.perf_counter() - start)


def _run_on_ray(ray: Any, todo: list[tuple[StudyItem, dict[str, Any]]], config: BatchConfig,
                finish: Callable[[dict[str, Any]], None]) -> None:
    """One task per study on Ray, at most a few more in flight than the runtime can run at once."""
    if not todo:
        return
    pending: dict[Any, tuple[StudyItem, dict[str, Any]]] = {}
    with ray_runtime(ray, config):
        try:
            resources, slots = _task_resources(ray, config)
            task = ray.remote(analyse_study).options(max_retries=1, retry_exceptions=False, **resources)
            queue = iter(todo)
            while True:
                while len(pending) < 2 * slots and (job := next(queue, None)) is not None:
                    item, base = job
                    ref = task.remote(str(item.path), str(Path(config.out) / item.key), base, config.options,
                                      config.report, config.anonymize)
                    pending[ref] = job
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    item, base = pending.pop(ref)
                    finish(_task_row(ray, ref, base, Path(config.out) / item.key))
        except KeyboardInterrupt:
            for ref in pending:  # not forced: a running study's staged outputs are cleaned up, never half-moved
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            raise


def _task_row(ray: Any, ref: Any, base: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """A finished task's row; a task whose worker died (after its one retry) becomes an error row."""
    try:
        return ray.get(ref)
    except ray.exceptions.WorkerCrashedError:
        fields = error_fields(_CRASHED, "crash")
    except ray.exceptions.RayError as exc:  # node lost, out of memory, ...: tried again on --resume
        fields = error_fields(f"Ray could not run it ({type(exc).__name__}); --resume tries it again.", "crash")
    return finish_row(base, fields, out_dir)


@contextlib.contextmanager
def ray_runtime(ray: Any, config: BatchConfig) -> Iterator[None]:
    """Connect to the cluster at ``config.ray_address``, or start a quiet local runtime of ``config.workers``
    CPUs (logs in a temporary folder); shut down and clean up on leaving. A Ray the caller initialised is used
    as it is and left running."""
    if ray.is_initialized():
        yield
        return
    temp = None
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if config.ray_address is not None:
        _check_reachable(config.ray_address)
        try:
            ray.init(address=config.ray_address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            message = " ".join(str(exc).split()).rstrip(".")
            raise JCSError(f"Could not connect to the Ray cluster at {config.ray_address}: {message}.") from None
    else:
        temp = tempfile.mkdtemp(prefix="jcs-ray-")
        ray.init(num_cpus=config.workers or os.cpu_count() or 1, include_dashboard=False, _temp_dir=temp,
                 object_store_memory=OBJECT_STORE_BYTES, **quiet)
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one sentence, where nothing listens at ``HOST:PORT`` (Ray itself retries for
    minutes); ``auto`` and other forms are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise JCSError(f"Could not connect to the Ray cluster at {address}: {exc.strerror or exc} (is "
                       "'ray start --head' running there, and the port open?).") from None


def _task_resources(ray: Any, config: BatchConfig) -> tuple[dict[str, Any], int]:
    """The resources each study's task declares, and how many such tasks the runtime runs at once."""
    cluster = ray.cluster_resources()
    gpus, cpus = int(cluster.get("GPU", 0)), max(1, int(cluster.get("CPU", 1)))
    device = config.options.device
    if device == "cuda" and gpus == 0:
        raise JCSError("--device cuda was given, but the Ray runtime has no GPU; use --device cpu or auto.")
    if device in ("cuda", "auto") and gpus > 0:
        # max_calls=0: a GPU worker keeps its process (and its loaded models) for the next study
        return {"num_gpus": 1, "num_cpus": 1, "max_calls": 0}, min(gpus, config.workers or gpus)
    return {"num_cpus": 1}, min(cpus, config.workers or cpus)
