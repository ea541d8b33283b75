"""Exception types shared by every layer.

Each carries one sentence meant for the user, naming the file and the problem.
Callers show ``str(exc)``; a traceback is never shown to a user.
"""

from __future__ import annotations


class JCSError(Exception):
    """Base class: a problem the user can understand and usually fix."""


class StudyLoadError(JCSError):
    """A study, series or file could not be read."""


class ModelLoadError(JCSError):
    """A weights file or checkpoint could not be loaded."""


class ExportError(JCSError):
    """A report or segmentation could not be written."""


class NotComparable(JCSError):
    """Two studies cannot be compared (one of them has no lungs to register by)."""


class Cancelled(JCSError):
    """A long operation was cancelled by the user; nothing partial is kept."""


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` ends the program (Ctrl+C, ``sys.exit``) rather than reports a failure.

    Native decoders built with PyO3 (pylibjpeg's RLE and JPEG plugins) raise ``PanicException``, a
    ``BaseException``, on damaged data: code that turns failures into a sentence catches ``BaseException`` and
    lets through only what this says.
    """
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))
