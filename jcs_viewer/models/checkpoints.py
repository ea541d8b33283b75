"""Loading the official JCS ``.pth`` checkpoints strictly and safely (``weights_only=True``)."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from jcs_viewer.errors import ModelLoadError

OFFICIAL_KINDS = ("jcs_seg", "jcs_joint", "jcs_cls")
_NESTING_KEYS = ("state_dict", "model", "net", "model_state_dict", "module")


def read_state_dict(path: str | Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` file into a flat state_dict (unwrapped, ``module.`` prefixes stripped).

    Raises:
        ModelLoadError: missing, unreadable, truncated, non-checkpoint or code-carrying file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path.name}: no such checkpoint file ({path}).")
    check_archive(path)
    with open(path, "rb") as fp:
        head = fp.read(2)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip; legacy files are a pickle
        raise ModelLoadError(f"{path.name} is not a PyTorch checkpoint (neither torch's zip format nor a pickle).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise ModelLoadError(f"{path.name} contains pickled code or objects that are not plain tensors, "
                                 "so it was refused for safety.") from None
        raise ModelLoadError(f"{path.name} is not a PyTorch checkpoint (unreadable pickle data).") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        why = "truncated or corrupt" if ("zip" in str(exc).lower() or isinstance(exc, EOFError)) else "unreadable"
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint ({why} file).") from None
    except Exception:  # noqa: BLE001 - any other failure inside the unpickler is still a bad file
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint.") from None
    return unwrap_state_dict(obj, path.name)


#: torch.save writes its zip members uncompressed: declared contents beyond this multiple of the file are a
#: compressed archive that torch never wrote (a "zip bomb" inflating to gigabytes in memory).
MAX_INFLATION = 1.5
#: the pickle of a state dict is its key table: a few MB for the largest JCS checkpoint.
MAX_PICKLE_BYTES = 64 << 20


def check_archive(path: Path) -> None:
    """Refuse a zip checkpoint whose members declare more than the file could hold, before loading it.

    Raises:
        ModelLoadError: one sentence naming the file and the declared sizes.
    """
    if not zipfile.is_zipfile(path):
        return  # the legacy format: torch.load reads it as a stream, memory bounded by the file size
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt file).") from None
    declared = sum(m.file_size for m in members)
    pickles = max((m.file_size for m in members if m.filename.endswith(".pkl")), default=0)
    if declared > MAX_INFLATION * size + (1 << 20) or pickles > MAX_PICKLE_BYTES:
        raise ModelLoadError(f"{path.name} was refused: its archive declares {declared / 2**20:,.0f} MB of contents "
                             f"in a {size / 2**20:,.1f} MB file (compressed members, which PyTorch never writes).")


def unwrap_state_dict(obj: object, name: str) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a checkpoint object and strip DataParallel ``module.`` prefixes."""
    for _ in range(3):  # at most a few levels of {"state_dict": {...}} wrapping
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{name} holds no model weights (no state_dict of tensors found).")
    sd = {str(k): v for k, v in obj.items()}
    while sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def detect_kind(sd: Mapping[str, torch.Tensor]) -> str | None:
    """``"jcs_joint"``, ``"jcs_seg"``, ``"jcs_cls"``, ``"res2net_imagenet"`` or None, from the key set."""
    keys = sd.keys()
    has_vgg = any(k.startswith("vgg16.") for k in keys)
    if has_vgg and any(k.startswith("res2net.") for k in keys):
        return "jcs_joint"
    if has_vgg:
        return "jcs_seg"
    if "layer4.0.conv1.weight" in keys or "conv1.0.weight" in keys:
        fc = sd.get("fc.weight")
        if fc is not None and fc.shape[0] == 1000:
            return "res2net_imagenet"
        return "jcs_cls"
    return None


def load_official_checkpoint(path: str | Path, kind: str) -> nn.Module:
    """Build the official ``kind`` network and load ``path`` into it strictly.

    Accepts a bare state_dict, one nested under ``state_dict``/``model``/``net``, and ``module.``
    prefixes. Extra ``num_batches_tracked`` entries on frozen-BN layers (as in Res2Net ImageNet files)
    are ignored: they carry no information. Everything else must match exactly.

    Args:
        path: the ``.pth`` file.
        kind: ``"jcs_seg"``, ``"jcs_joint"`` or ``"jcs_cls"``.

    Returns:
        The module in eval mode on CPU.

    Raises:
        ModelLoadError: one sentence naming the file and the problem.
    """
    from jcs_viewer.models.factory import build

    if kind not in OFFICIAL_KINDS:
        raise ValueError(f"kind must be one of {OFFICIAL_KINDS}, not {kind!r}")
    path = Path(path)
    sd = read_state_dict(path)
    found = detect_kind(sd)
    if found == "res2net_imagenet":
        raise ModelLoadError(f"{path.name} is the Res2Net ImageNet backbone (1000-class fc), not a {kind} checkpoint.")
    if found is not None and found != kind:
        raise ModelLoadError(f"{path.name} is a {found} checkpoint, not {kind}.")
    if found is None:
        raise ModelLoadError(f"{path.name} does not contain {kind} weights (unrecognised key names).")
    with torch.device("meta"):  # no random init of 118 M parameters that are overwritten anyway
        model = build(kind)
    load_strict(model, sd, path.name, kind, assign=True)
    return model.eval()


def load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], name: str, what: str, assign: bool = False) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence :class:`ModelLoadError` on mismatch.

    With ``assign`` the checkpoint tensors (as float32) replace the module's, which may then be built on
    the meta device.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected and not k.endswith("num_batches_tracked")]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k} {list(sd[k].shape)} vs {list(expected[k].shape)})")
        raise ModelLoadError(f"{name} does not match the {what} architecture: {'; '.join(parts)} keys.")
    # NaN weights load and run: every output is NaN, every score below the cutoff, and a positive study reads
    # "negative" without a word. A file that holds them is damaged.
    damaged = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if damaged:
        raise ModelLoadError(f"{name} is damaged: {len(damaged)} of its tensors hold NaN or infinite values "
                             f"(e.g. {damaged[0]}).")
    try:
        if assign:
            sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
            model.load_state_dict(dict(sd), strict=True, assign=True)
            for buf_name, buf in model.named_buffers():  # a legacy file without num_batches_tracked
                if buf.is_meta:
                    owner = model.get_submodule(buf_name.rpartition(".")[0])
                    setattr(owner, buf_name.rpartition(".")[2], torch.zeros((), dtype=buf.dtype))
        else:
            model.load_state_dict(dict(sd), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelLoadError(f"{name} could not be loaded into {what}: {first}") from None
