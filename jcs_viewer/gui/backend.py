"""The non-Qt functions the viewer calls in its workers, imported lazily (torch loads only when analysing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.engine import ProgressCallback
    from jcs_viewer.pipeline.options import AnalysisOptions
    from jcs_viewer.pipeline.progress import CancelToken
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.pipeline.runner import LoadedModels


def load_study(path: Path, series_uid: str | None = None) -> Volume:
    from jcs_viewer.io import load_study as _load

    return _load(path, series_uid=series_uid)


def scan_folder(path: Path) -> list[Any]:
    """Series in a folder (``scan_folder`` may return a list or an object with ``entries``)."""
    from jcs_viewer.io import scan_folder as _scan

    found = _scan(path)
    return list(getattr(found, "entries", found))


def demo_study_path() -> Path:
    """The cached demo study's DICOM folder (generated on first use)."""
    from jcs_viewer.io.phantom import demo_study_path as _demo

    root = Path(_demo())
    return root / "dicom" if (root / "dicom").is_dir() else root


def analyze(volume: Volume, options: AnalysisOptions | None = None, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None, models: LoadedModels | None = None) -> StudyResult:
    from jcs_viewer.pipeline import analyze as _analyze

    return _analyze(volume, options=options, progress=progress, cancel=cancel, models=models)


def load_models(options: AnalysisOptions | None = None) -> LoadedModels:
    """Load the default (or ``options``-named) weights once; the window keeps them for later runs."""
    from jcs_viewer.pipeline import load_models as _load_models

    return _load_models(options)
