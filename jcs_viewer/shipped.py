"""Where the shipped ``weights/`` and ``resources/`` folders are, however the app was installed.

- a wheel (``pip install jcs-viewer``): inside the package, ``jcs_viewer/_shipped_weights`` and
  ``jcs_viewer/_shipped_resources`` (pyproject.toml maps the repository's top-level folders there);
- a source checkout or an editable install: the top-level ``weights/`` and ``resources/`` beside the package;
- the PyInstaller bundle: ``weights/`` and ``resources/`` in ``sys._MEIPASS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / name
    inside = _PACKAGE / f"_shipped_{name}"
    return inside if inside.is_dir() else _PACKAGE.parent / name


def weights_dir() -> Path:
    """The folder of the shipped weights and their ``manifest.json``."""
    return _folder("weights")


def resources_dir() -> Path:
    """The folder of the shipped resources (icons, evaluation lists)."""
    return _folder("resources")
