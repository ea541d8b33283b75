"""What identifies a study and what its result depends on.

- The **study key** names the study's output folder: a slug of its path (relative to the batch source, so the
  archive may move) and a short hash of that path (unique even where slugs collide). Stable from run to run.
- The **input fingerprint** changes when any of the study's files is added, removed, resized or touched.
- The **model version** changes when the weights, the app version or an analysis option that changes the
  numbers changes. ``--resume`` redoes a study when either of the two differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jcs_viewer.pipeline.options import AnalysisOptions
    from jcs_viewer.pipeline.runner import LoadedModels

#: analysis options that say where or how fast a study ran, not what came out of it
_NOT_IN_VERSION = ("device", "batch_size")
_SLUG_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_LENGTH = 48


@dataclasses.dataclass(frozen=True)
class StudyItem:
    """One study of a batch.

    Attributes:
        key: the name of its output folder (see :func:`study_key`).
        path: the study (a folder or a file).
        label: its path as the user knows it (relative to the source), for the summary.
        error: why the study could not be brought in (a PACS retrieve that failed): an error row, not analysed.
    """

    key: str
    path: Path
    label: str
    error: str = ""


def study_key(label: str) -> str:
    """A stable, file-system-safe, unique folder name for the study at ``label`` (a relative path)."""
    slug = _SLUG_CHARS.sub("_", label).strip("._-")[-_SLUG_LENGTH:].strip("._-") or "study"
    return f"{slug}-{hashlib.sha256(label.encode('utf-8')).hexdigest()[:10]}"


def make_items(paths: list[Path], root: Path) -> list[StudyItem]:
    """Study items for ``paths``, labelled relative to ``root`` where they lie inside it; duplicates dropped."""
    items: dict[str, StudyItem] = {}
    root = root.resolve()
    for path in paths:
        resolved = path.resolve()
        try:
            label = resolved.relative_to(root).as_posix()
        except ValueError:
            label = resolved.as_posix()
        if label == ".":
            label = resolved.name
        items.setdefault(label, StudyItem(study_key(label), path, label))
    return list(items.values())


def input_fingerprint(path: Path) -> str:
    """sha256 over the sorted (relative path, size, mtime_ns) of the study's files; hidden files are left out.

    Cheap (no file is read) and enough to notice a re-exported or completed series; a file rewritten in
    place with the same size and modification time is not noticed.
    """
    path = Path(path)
    entries = []
    if path.is_file():
        stat = path.stat()
        entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    else:
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                file = Path(folder, name)
                try:
                    stat = file.stat()
                except OSError:  # unreadable or vanished: the load step will name it
                    continue
                entries.append((file.relative_to(path).as_posix(), stat.st_size, stat.st_mtime_ns))
    digest = hashlib.sha256(json.dumps(sorted(entries)).encode("utf-8"))
    return digest.hexdigest()


def weights_versions(models: LoadedModels) -> dict[str, dict[str, str]]:
    """Role -> {name, sha256} of every network in a :class:`~jcs_viewer.pipeline.runner.LoadedModels`."""
    from jcs_viewer.models.registry import sha256_of

    out = {}
    for role in ("cls", "seg", "lung", "grey_seg"):
        entry = getattr(models, f"{role}_entry", None)
        if entry is None:
            continue
        digest = getattr(entry, "sha256", None)
        if not digest and getattr(entry, "path", None) is not None:
            digest = sha256_of(entry.path)  # official checkpoints are listed without a digest
        out[role] = {"name": str(entry.name), "sha256": str(digest or "")}
    return out


def model_version(models: LoadedModels, options: AnalysisOptions, app_version: str, **outputs: Any) -> str:
    """A short hash of everything besides the input that a study's outputs depend on.

    Args:
        models: the loaded models (their weights' sha256s count, not where they were loaded).
        options: the :class:`~jcs_viewer.pipeline.AnalysisOptions` (device and batch size left out).
        app_version: ``jcs_viewer.__version__``.
        outputs: what else shapes the output set (``report=``, ``anonymize=``).
    """
    analysis = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_IN_VERSION}
    doc = {"app": app_version, "weights": weights_versions(models), "analysis": analysis, "outputs": outputs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
