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
