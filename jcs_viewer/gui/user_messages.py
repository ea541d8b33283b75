"""Turning exceptions into one plain sentence for the user, and the log file that keeps the details."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from jcs_viewer.errors import JCSError
from jcs_viewer.settings import data_dir

GENERIC_SENTENCE = "Something unexpected went wrong while {action}; the details were written to {log}."


def log_path() -> Path:
    return data_dir() / "logs" / "jcs-viewer.log"


def setup_logging() -> Path:
    """Send warnings and errors (with tracebacks) of the ``jcs_viewer`` loggers to the log file."""
    path = log_path()
    logger = logging.getLogger("jcs_viewer")
    if not any(getattr(h, "_jcs_gui", False) for h in logger.handlers):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
        except OSError:
            return path  # an unwritable data folder must not stop the viewer
        handler._jcs_gui = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return path


def user_message(exc: BaseException, action: str) -> str:
    """One sentence for a dialog: ``str(exc)`` for our errors, a generic sentence otherwise.

    Unexpected exceptions are logged with their traceback; the sentence points to the log.
    """
    if isinstance(exc, JCSError):
        text = str(exc).strip() or f"The operation failed while {action}."
        return text.splitlines()[0]
    logging.getLogger("jcs_viewer.gui").error("Unexpected error while %s", action,
                                              exc_info=(type(exc), exc, exc.__traceback__))
    return GENERIC_SENTENCE.format(action=action, log=log_path())
