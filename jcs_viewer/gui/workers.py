"""The app's one worker abstraction: :class:`TaskWorker` runs loading, analysis, 3-D meshes and session writes
off the GUI thread, with progress, cancel and typed results; :class:`QtScheduling` gives the core's autosave a Qt
timer and a TaskWorker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from jcs_viewer.errors import Cancelled, is_interrupt
from jcs_viewer.pipeline.progress import CancelToken

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.pipeline.runner import LoadedModels


@dataclass(frozen=True)
class OpenedStudy:
    """A study loaded in the background (``demo``: the built-in demo study)."""

    path: Path
    volume: Volume
    demo: bool = False


@dataclass(frozen=True)
class SeriesChoice:
    """A folder holding several series: the reader picks one."""

    path: Path
    entries: list[Any]


@dataclass(frozen=True)
class Analysed:
    """An analysis finished for ``volume`` (compared with the study on screen before it is shown)."""

    volume: Volume
    result: StudyResult
    models: LoadedModels | None = None


class TaskWorker(QThread):
    """Runs ``func(progress, cancel)`` in a thread and reports through queued signals.

    ``progress`` is a callable taking a ``ProgressEvent``-like object (``stage``, ``done``,
    ``total``, ``message``) or the four values; ``cancel`` is a cancel token.

    Signals:
        progress(stage, done, total, message)
        succeeded(result)
        failed(exception)  -- the exception object; the GUI turns it into one sentence
        cancelled()
        settled()  -- after the outcome signal: its handlers have run when this one is delivered

    The thread posts its outcome to the GUI thread once; there the outcome signal, ``delivered`` and ``settled``
    follow each other within one event. Posting each public signal from the thread instead let a waiter see
    ``delivered`` before ``settled``'s handlers ran (a button still disabled, a status still stale).
    """

    progress = Signal(str, int, int, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    settled = Signal()
    _outcome = Signal(str, object)  # posted by the thread: "succeeded" / "failed" / "cancelled", and its value

    def __init__(self, name: str, func: Callable[[Callable[..., None], Any], Any], parent=None) -> None:
        super().__init__(parent)
        self.name = name
        self._func = func
        self.token = CancelToken()
        # True once the outcome's handlers ran on the GUI thread (isRunning() turns False earlier); set in the
        # same GUI event that runs settled's handlers, so no one waiting on it sees half of them.
        self.delivered = False
        self._started = False
        self._outcome.connect(self._deliver)  # this object lives on the GUI thread: a queued call

    def _deliver(self, kind: str, value: Any) -> None:
        if kind == "succeeded":
            self.succeeded.emit(value)
        elif kind == "failed":
            self.failed.emit(value)
        else:
            self.cancelled.emit()
        self.delivered = True  # settled's handlers see "not busy"
        self.settled.emit()

    def start(self, *args: Any) -> None:  # noqa: D102 - QThread.start
        self._started = True
        super().start(*args)

    @property
    def busy(self) -> bool:
        """Started and its outcome not yet handled by the GUI thread (isRunning() ends earlier)."""
        return self._started and not self.delivered

    def cancel(self) -> None:
        self.token.cancel()

    def _report(self, event: Any = None, done: int = 0, total: int = 0, message: str = "") -> None:
        if hasattr(event, "stage"):
            self.progress.emit(str(event.stage), int(getattr(event, "done", 0) or 0),
                               int(getattr(event, "total", 0) or 0), str(getattr(event, "message", "") or ""))
        else:
            self.progress.emit(str(event or ""), int(done), int(total), str(message))

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            result = self._func(self._report, self.token)
        except Cancelled:
            self._outcome.emit("cancelled", None)
        except BaseException as exc:  # noqa: BLE001 - the GUI shows one sentence and logs the traceback
            self._outcome.emit("failed", exc)
            if is_interrupt(exc):  # SystemExit and the like: settled above, now let it end the thread
                raise
        else:
            if self.token.cancelled:
                self._outcome.emit("cancelled", None)
            else:
                self._outcome.emit("succeeded", result)



#: Workers started with :func:`start_task` until their thread ended and their outcome was delivered: a QThread object
#: must never be freed while it runs (its owner may be gone by then: a view closed mid-build, a session switched
#: mid-write), nor before the outcome event posted to it arrives.
_LIVE: set[TaskWorker] = set()


def start_task(name: str, func: Callable[[Callable[..., None], Any], Any], *,
               succeeded: Callable[[Any], None] | None = None,
               settled: Callable[[], None] | None = None) -> TaskWorker:
    """Start ``func(progress, cancel)`` on a :class:`TaskWorker` that stays alive until its thread ends.

    ``succeeded`` and ``settled`` are connected before the thread starts (a fast task must not finish unheard);
    a bound method of a QObject runs on that object's thread, queued.
    """
    worker = TaskWorker(name, func)
    if succeeded is not None:
        worker.succeeded.connect(succeeded)
    if settled is not None:
        worker.settled.connect(settled)
    # Finished workers are let go here, on the GUI thread: freeing one from its own finished() signal would
    # destroy the QThread from inside its thread; and only once delivered, as its outcome is an event posted to it.
    _LIVE.difference_update([w for w in _LIVE if w.isFinished() and w.delivered])
    _LIVE.add(worker)
    worker.start()
    return worker


class QtScheduling:
    """:class:`jcs_viewer.session.store.Scheduling` on Qt: a single-shot timer on the GUI thread (the thread that
    edits the session, so the autosave snapshot is taken between two GUI events) and a :class:`TaskWorker`."""

    def __init__(self, parent: QObject, name: str = "autosave") -> None:
        self._parent = parent
        self._name = name

    def later(self, delay_s: float, fn: Callable[[], None]) -> Callable[[], None]:
        timer = QTimer(self._parent)
        timer.setSingleShot(True)
        timer.timeout.connect(fn)
        timer.timeout.connect(timer.deleteLater)
        timer.start(max(0, int(round(delay_s * 1000))))

        def cancel() -> None:
            try:
                timer.stop()
                timer.deleteLater()
            except RuntimeError:  # already fired and deleted
                pass

        return cancel

    def in_background(self, fn: Callable[[], None]) -> None:
        start_task(self._name, lambda _progress, _cancel: fn())
