"""Weights registry, modelled on torchvision's ``_api`` (an entry per weights file with its recipe).

Where weights come from (earlier wins on a name clash):

1. folders added with :func:`add_weights_dir` (the CLI's ``--weights DIR``) or passed as ``extra_dirs``;
2. ``$JCS_VIEWER_WEIGHTS`` (``os.pathsep``-separated folders) if set, else the shipped ``weights/``
   folder (inside the installed wheel, or beside the package in a checkout: :mod:`jcs_viewer.shipped`);
3. the user's folder ``$XDG_DATA_HOME/jcs-viewer/weights`` (default ``~/.local/share/jcs-viewer/weights``).

Each folder may hold a ``manifest.json`` and any number of official JCS ``.pth`` files. A ``.pth``
that no manifest entry names is registered as ``official:<file stem>`` when its name tells its
architecture (``joint.pth``, ``res2net_cls.pth``, ``res2net_segloss.pth``); any other ``.pth`` is opened
only when it is asked for by its path, and then its keys tell (a folder is never opened file by file).

``manifest.json`` schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "weights": [
        {
          "name": "jcs_seg_lite-medseg-v2",       # unique; what load() takes
          "task": "seg",                          # "seg" | "cls" | "lung"
          "arch": "jcs_seg_lite",                 # build() name
          "config": {"width": 0.25},              # build() overrides (fields of SegConfig/ClsConfig)
          "file": "jcs_seg_lite-medseg-v2.safetensors",   # relative to the manifest's folder
          "sha256": "<64 hex digits>",            # verified on every load
          "input_size": 256,                      # square model input in pixels
          "mean": [0.485, 0.456, 0.406],          # ImageNet normalisation after scaling 8-bit to [0, 1]
          "std": [0.229, 0.224, 0.225],
          "window": [-600, 1500],                 # (center, width) HU -> 8-bit, see below
          "intensity": "window",                  # "window" | "ctseg" (CT-Seg min-max + CLAHE transform)
          "default": true,                        # default_weights(task) picks it
          "default_grey": false,                  # default_weights(task, grey=True) picks it first
          "licence": "...", "provenance": "...", "training_data": "...", "split": "...",
          "command": "jcs-viewer train ...", "seed": 0,
          "metrics": {"dice": 0.71}, "description": "..."
        }
      ]
    }

Intensity convention: an HU slice becomes the 8-bit image the weights were trained on with
``u8 = clip((HU - (center - width / 2)) / width, 0, 1) * 255``; then ``(u8 / 255 - mean) / std`` per
channel, the grey image repeated on 3 channels. ``window`` is null for weights trained on 8-bit images
whose window is unknown; callers then use their own estimate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jcs_viewer.atomic import atomic_path, atomic_write_text
from jcs_viewer.errors import ModelLoadError
from jcs_viewer.vocabulary import IMAGENET_MEAN, IMAGENET_STD, LUNG_WINDOW

SCHEMA_VERSION = 1
#: what a weights entry does: lesion segmentation, COVID classification, lung segmentation.
TASKS = ("seg", "cls", "lung")
#: input intensity domains (see ``WeightsEntry.intensity``).
INTENSITIES = ("window", "ctseg", "mixed")
#: What a net reads of each slice: the whole slice, or the square around its lungs.
CROPS = ("", "lungs")
MANIFEST_NAME = "manifest.json"
#: Lung window assumed for the official checkpoints (their HU window is undocumented upstream).
OFFICIAL_WINDOW = LUNG_WINDOW
_OFFICIAL_NAMES = {"joint": "jcs_joint", "res2net_cls": "jcs_cls", "res2net_segloss": "jcs_cls"}
_OFFICIAL_SIZES = {"jcs_seg": 512, "jcs_joint": 512, "jcs_cls": 224}
_EXTRA_DIRS: list[Path] = []
_KIND_CACHE: dict[tuple[str, int, int], str | None] = {}


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file and everything needed to use and reproduce it.

    Attributes:
        name: unique registry name.
        task: ``"seg"``, ``"cls"`` or ``"lung"``.
        arch: :func:`jcs_viewer.models.build` name.
        file: file name relative to ``root``.
        sha256: hex digest verified on load (None: not verified, official files only).
        config: ``build`` overrides.
        input_size: square input side in pixels.
        test_sizes: square input sides a lesion net reads each slice at, its probabilities averaged at
            the slice's size (multi-scale test-time augmentation, chosen on validation); empty:
            ``input_size`` alone.
        test_mirror: a classifier also reads each slice left-right mirrored; the two probabilities,
            attribute sets and activation maps (mirrored back) are averaged (test-time augmentation,
            chosen on validation).
        crop: what part of the slice the net reads: ``""`` the whole slice (or ``resize`` and a centre
            crop), ``"lungs"`` the square around the slice's lungs
            (:mod:`jcs_viewer.pipeline.lung_crop`).
        mean, std: per-channel normalisation of [0, 1] intensities.
        window: (center, width) in HU mapping HU to 8-bit before normalising; None if unknown.
        intensity: the image domain the weights were trained in: ``"window"`` (8-bit lung-window
            slices; HU studies are windowed with ``window``) or ``"ctseg"`` (the COVID-19-CT-Seg
            transform, min-max then CLAHE, applied to HU and 8-bit slices alike; ``window`` unused) or
            ``"mixed"`` (trained on lung-window and CT-Seg CLAHE slices as they are; HU studies are
            windowed with ``window``).
        licence, provenance, training_data, split, command, seed, metrics, description: the recipe.
        quick_check: the net's unrounded figures on a few named held-out images
            (:mod:`jcs_viewer.train.quick_check`), reproduced by the default test run.
        default: picked by :func:`default_weights` for its task.
        default_grey: picked first by ``default_weights(task, grey=True)``: the weights for studies whose
            intensities are 8-bit grey levels rather than HU (slice stacks of another tool's making, in a
            lung window or contrast-equalised), where weights that only know windowed HU read poorly.
        official: an upstream JCS ``.pth`` (loaded by ``load_official_checkpoint``), not safetensors.
        root: the folder holding ``file`` (not serialised).
    """

    name: str
    task: str
    arch: str
    file: str
    sha256: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    input_size: int = 256
    test_sizes: tuple[int, ...] = ()
    test_mirror: bool = False
    crop: str = ""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    window: tuple[float, float] | None = None
    intensity: str = "window"
    licence: str = ""
    provenance: str = ""
    training_data: str = ""
    split: str = ""
    command: str = ""
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    quick_check: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    default: bool = False
    default_grey: bool = False
    official: bool = False
    root: Path | None = field(default=None, compare=False)

    @property
    def path(self) -> Path:
        """Absolute path of the weights file."""
        return (self.root or Path.cwd()) / self.file

    def to_json(self) -> dict[str, Any]:
        """The manifest record (``root`` left out)."""
        d = dataclasses.asdict(self)
        d.pop("root")
        for k in ("mean", "std", "window", "test_sizes"):
            d[k] = list(d[k]) if d[k] is not None else None
        for k in ("test_sizes", "test_mirror", "crop", "quick_check"):
            if not d[k]:
                d.pop(k)
        return d

    @classmethod
    def from_json(cls, record: dict[str, Any], root: Path | None) -> WeightsEntry:
        """Parse a manifest record; unknown fields are ignored so newer manifests still load."""
        known = {f.name for f in dataclasses.fields(cls)} - {"root"}
        d = {k: v for k, v in record.items() if k in known}
        for k in ("mean", "std", "window"):
            if d.get(k) is not None:
                d[k] = tuple(float(v) for v in d[k])
        d["test_sizes"] = tuple(int(v) for v in d.get("test_sizes") or ())
        if not isinstance(d.get("test_mirror", False), bool):
            raise ValueError(f"test_mirror must be true or false, not {d['test_mirror']!r}")
        entry = cls(**d, root=root)
        file = str(entry.file)
        # A manifest names files in its own folder only: "../../etc/hostname" or an absolute path is refused.
        if not file or Path(file).name != file or file in (".", ".."):
            raise ValueError(f"file must be a file name inside the manifest's folder, not {file!r}")
        if entry.intensity not in INTENSITIES:
            raise ValueError(f"intensity must be one of {', '.join(INTENSITIES)}, not {entry.intensity!r}")
        if entry.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(map(repr, CROPS))}, not {entry.crop!r}")
        if entry.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {entry.task!r}")
        return entry


def shipped_weights_dir() -> Path:
    """The shipped ``weights/`` folder (inside an installed wheel, or the repository's; :mod:`jcs_viewer.shipped`)."""
    from jcs_viewer.shipped import weights_dir

    return weights_dir()


def primary_weights_dir() -> Path:
    """Where new entries go by default: the first ``$JCS_VIEWER_WEIGHTS`` folder, else the shipped one."""
    env = [p for p in os.environ.get("JCS_VIEWER_WEIGHTS", "").split(os.pathsep) if p]
    return Path(env[0]).expanduser() if env else shipped_weights_dir()


def user_weights_dir() -> Path:
    """``weights/`` in the user's data folder (default ``~/.local/share/jcs-viewer/weights``)."""
    from jcs_viewer.settings import data_dir

    return data_dir() / "weights"


def add_weights_dir(path: str | Path) -> None:
    """Search ``path`` first from now on (the CLI's ``--weights DIR``)."""
    p = Path(path).expanduser()
    if p not in _EXTRA_DIRS:
        _EXTRA_DIRS.insert(0, p)


def weights_dirs(extra_dirs: tuple[str | Path, ...] | list[str | Path] = ()) -> list[Path]:
    """Folders searched for weights, highest precedence first."""
    dirs = [Path(p).expanduser() for p in extra_dirs] + list(_EXTRA_DIRS)
    env = os.environ.get("JCS_VIEWER_WEIGHTS")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else [shipped_weights_dir()]
    dirs.append(user_weights_dir())
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def read_manifest(folder: Path) -> list[WeightsEntry]:
    """Entries of ``folder/manifest.json`` (empty when there is none).

    Raises:
        ModelLoadError: the manifest exists but is not valid.
    """
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = data.get("weights", []) if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise ValueError("no 'weights' list")
        return [WeightsEntry.from_json(r, folder) for r in records]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{path} is not a valid weights manifest ({exc}).") from None


def official_entry(path: Path, read_keys: bool = True) -> WeightsEntry | None:
    """A registry entry for an official JCS ``.pth`` (kind from its name, else, with ``read_keys``, from its keys).

    Listing a folder passes ``read_keys=False``: a file is opened only when it was asked for by its path.
    """
    kind = _OFFICIAL_NAMES.get(path.stem) or (_kind_from_keys(path) if read_keys else None)
    if kind not in _OFFICIAL_SIZES:
        return None
    return WeightsEntry(
        name=f"official:{path.stem}", task="cls" if kind == "jcs_cls" else "seg", arch=kind, file=path.name,
        input_size=_OFFICIAL_SIZES[kind], window=OFFICIAL_WINDOW, official=True, root=path.parent,
        licence="unstated upstream (JCS repository has no licence); Res2Net weights CC BY-NC-SA 4.0",
        provenance="official JCS release (github.com/yuhuan-wu/JCS), supplied by the user",
        training_data="COVID-CS (JCS authors)",
        description=f"official {kind} checkpoint {path.name}; HU window assumed (lung W1500/L-600)")


def _kind_from_keys(path: Path) -> str | None:
    from jcs_viewer.models.checkpoints import check_archive, detect_kind, read_state_dict

    try:
        st = path.stat()
    except OSError:
        return None
    check_archive(path)  # a refused archive says so, rather than "not a checkpoint"
    key = (str(path.resolve()), st.st_size, int(st.st_mtime_ns))
    if key not in _KIND_CACHE:
        try:  # mmap: reads the key table, not 0.5 GB of tensors
            _KIND_CACHE[key] = detect_kind(read_state_dict(path, mmap=True))
        except ModelLoadError:
            try:
                _KIND_CACHE[key] = detect_kind(read_state_dict(path))
            except ModelLoadError:
                _KIND_CACHE[key] = None
    return _KIND_CACHE[key]


def list_weights(task: str | None = None, extra_dirs: tuple[str | Path, ...] = ()) -> list[WeightsEntry]:
    """All registered weights (manifest entries, then unlisted official ``.pth``), optionally one task."""
    entries: dict[str, WeightsEntry] = {}
    for folder in weights_dirs(extra_dirs):
        found = read_manifest(folder)
        listed = {e.file for e in found}
        if folder.is_dir():
            for pth in sorted(folder.glob("*.pth")) + sorted(folder.glob("*.pth.tar")):
                if pth.name not in listed and (off := official_entry(pth, read_keys=False)) is not None:
                    found.append(off)
        for e in found:
            entries.setdefault(e.name, e)
    return [e for e in entries.values() if task is None or e.task == task]


def get_weights(name: str, extra_dirs: tuple[str | Path, ...] = ()) -> WeightsEntry:
    """The entry called ``name``.

    Raises:
        ModelLoadError: no such entry.
    """
    all_entries = list_weights(extra_dirs=extra_dirs)
    for e in all_entries:
        if e.name == name:
            return e
    names = ", ".join(e.name for e in all_entries) or "none installed"
    raise ModelLoadError(f"No weights named {name!r} (available: {names}).")


def default_weights(task: str, extra_dirs: tuple[str | Path, ...] = (), grey: bool = False) -> WeightsEntry | None:
    """The entry marked ``default`` for ``task``; else an official file for it; else None.

    With ``grey`` (a study of 8-bit grey levels, not HU) an entry marked ``default_grey`` comes first.
    """
    entries = list_weights(task, extra_dirs)
    if grey:
        for e in entries:
            if e.default_grey:
                return e
    for e in entries:
        if e.default:
            return e
    return next((e for e in entries if e.official), None)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(name_or_path: str | Path, device: str | torch.device = "cpu", extra_dirs: tuple[str | Path, ...] = (),
         fold_bn: bool = True) -> tuple[nn.Module, WeightsEntry]:
    """Build the network of an entry, verify the file hash and load the weights strictly.

    Args:
        name_or_path: a registry name, or a path to an official ``.pth`` or a manifest-listed file.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; the module is channels-last.
        extra_dirs: more weights folders to search first.
        fold_bn: fold batch norms into the convs for faster inference (same outputs; the module's
            state_dict keys then differ, so pass False to fine-tune or re-save it).

    Returns:
        ``(module in eval mode on device, entry)``.

    Raises:
        ModelLoadError: unknown name, missing file, hash mismatch, unreadable or mismatching weights.
    """
    from jcs_viewer.models.checkpoints import load_official_checkpoint, load_strict
    from jcs_viewer.models.device import resolve_device
    from jcs_viewer.models.factory import build

    entry = _resolve(name_or_path, extra_dirs)
    path = entry.path
    if not path.is_file():
        raise ModelLoadError(f"{path.name}: weights file of {entry.name!r} is missing ({path}).")
    if entry.sha256:
        actual = sha256_of(path)
        if actual.lower() != entry.sha256.lower():
            raise ModelLoadError(f"{path.name} does not match the SHA-256 recorded for {entry.name!r} "
                                 "(file changed or corrupt).")
    if entry.official:
        model = load_official_checkpoint(path, entry.arch)
    else:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path.name} is not a readable safetensors file ({exc}).") from None
        try:
            model = build(entry.arch, **entry.config)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{entry.name!r} names an invalid architecture or config ({exc}).") from None
        load_strict(model, sd, path.name, entry.arch)
    if fold_bn:
        from jcs_viewer.models.inference import fold_batchnorm

        model = fold_batchnorm(model)
    model = model.to(device=resolve_device(device), memory_format=torch.channels_last).eval()
    return model, entry


def _resolve(name_or_path: str | Path, extra_dirs: tuple[str | Path, ...]) -> WeightsEntry:
    text = str(name_or_path)
    entries = list_weights(extra_dirs=extra_dirs)
    for e in entries:
        if e.name == text:
            return e
    p = Path(text).expanduser()
    if p.is_file():
        resolved = p.resolve()
        for e in entries:
            if e.path.resolve() == resolved:
                return e
        # A manifest beside the file knows its configuration; key names alone cannot tell a
        # lite file from the official architecture of the same family.
        for e in list_weights(extra_dirs=(resolved.parent,)):
            if e.path.resolve() == resolved:
                return e
        entry = official_entry(resolved)
        if entry is not None:
            return entry
        raise ModelLoadError(f"{p.name} is neither an official JCS checkpoint nor listed in a weights manifest.")
    if p.is_dir():  # a weights folder is added with its manifest (Settings / JCS_VIEWER_WEIGHTS), not named here
        raise ModelLoadError(f"{p} is a folder: name one weights file in it, or a registered weights name.")
    names = ", ".join(e.name for e in entries) or "none installed"
    raise ModelLoadError(f"No weights named {text!r} and no such file (available: {names}).")


def save_weights(model: nn.Module, path: str | Path) -> str:
    """Write ``model``'s state_dict as safetensors atomically; returns the file's SHA-256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"arch": str(getattr(model, "arch_name", ""))})
    return sha256_of(path)


def add_manifest_entry(entry: WeightsEntry, folder: str | Path | None = None) -> Path:
    """Add or replace ``entry`` (by name) in ``folder/manifest.json`` atomically; returns the manifest path.

    ``folder`` defaults to ``entry.root``, else :func:`primary_weights_dir`. When ``entry.default`` is
    set, other entries of the same task lose their default flag (``default_grey`` likewise).
    """
    folder = Path(folder or entry.root or primary_weights_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "weights": []}
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    records = list(data.get("weights", []))
    for flag in ("default", "default_grey"):
        if getattr(entry, flag):
            for r in records:
                if r.get("task") == entry.task:
                    r[flag] = False
    # A replaced entry keeps its place; a new one goes last.
    at = next((k for k, r in enumerate(records) if r.get("name") == entry.name), None)
    if at is None:
        records.append(entry.to_json())
    else:
        records[at] = entry.to_json()
    data["weights"] = records
    data["schema_version"] = SCHEMA_VERSION
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")
