"""Background work: study scanning/loading and analysis run in a QThread, never on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal

from jcs_viewer.errors import Cancelled
from jcs_viewer.pipeline.progress import CancelToken


@dataclass(frozen=True)
class OpenedStudy:
    """A study loaded in the background (``demo``: the built-in demo study)."""

    path: Path
    volume: Any
    demo: bool = False


@dataclass(frozen=True)
class SeriesChoice:
    """A folder holding several series: the reader picks one."""

    path: Path
    entries: list[Any]


@dataclass(frozen=True)
class Analysed:
    """An analysis finished for ``volume`` (compared with the study on screen before it is shown)."""

    volume: Any
    result: Any
    models: Any = None


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
    """

    progress = Signal(str, int, int, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    settled = Signal()

    def __init__(self, name: str, func: Callable[[Callable[..., None], Any], Any], parent=None) -> None:
        super().__init__(parent)
        self.name = name
        self._func = func
        self.token = CancelToken()
        # True once the outcome's handlers ran on the GUI thread (isRunning() turns False earlier). Marked by
        # ``settled``, emitted after the outcome: queued calls arrive in the order they were posted, so a
        # handler of the outcome never runs after "not busy" was visible.
        self.delivered = False
        self._started = False
        self.settled.connect(self._mark_delivered)

    def _mark_delivered(self, *_: Any) -> None:
        self.delivered = True

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
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - the GUI shows one sentence and logs the traceback
            self.failed.emit(exc)
        else:
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
        finally:
            self.settled.emit()

