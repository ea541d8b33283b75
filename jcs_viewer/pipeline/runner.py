"""The staged analysis runner: ``analyze(volume) -> StudyResult``.

Stages (progress events carry these names): ``load models``, ``lungs``, ``classify``,
``segment``, ``quantify``. Slices are scored after segmentation (:mod:`jcs_viewer.pipeline.slice_score`):
the default joint score needs every slice segmented; the classifier-only score (the paper's flow)
segments only the classifier's positive slices. Cancellation is checked between batches; a cancelled run raises
:class:`jcs_viewer.errors.Cancelled` and returns or writes nothing. Never imports Qt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.pipeline.assess import NOT_ASSESSABLE, not_assessable_reason, unreadable_reason
from jcs_viewer.pipeline.decision import manual_threshold_rule, patient_decision, slice_threshold
from jcs_viewer.pipeline.options import AnalysisOptions
from jcs_viewer.pipeline.progress import CancelToken, ProgressEvent
from jcs_viewer.pipeline.quantify import quantify
from jcs_viewer.pipeline.result import StudyResult
from jcs_viewer.pipeline.slice_score import combine, lesion_evidence
from jcs_viewer.pipeline.slice_score import rule as slice_rule

#: Activation maps are stored at this size (uint8): the lite/official classifier grids are 7^2-16^2,
#: so 64^2 keeps every detail of the bilinear map at 4 kB a slice; the viewer stretches it to the slice.
CAM_SIZE = (64, 64)
#: Lesions are accepted this far (mm, in-plane) outside the computed lung mask.
LUNG_MARGIN_MM = 5.0
#: The learned lungs already hold the lesions on the pleura: a thin margin only.
LEARNED_LUNG_MARGIN_MM = 2.0
_DEFAULT_BATCH = {("cpu", "cls"): 16, ("cpu", "seg"): 4, ("cuda", "cls"): 64, ("cuda", "seg"): 16,
                  ("cpu", "lung"): 8, ("cuda", "lung"): 32}


@dataclass
class LoadedModels:
    """Models ready for inference and their registry entries (what the GUI worker keeps loaded).

    Attributes:
        cls_model: classifier (``forward`` -> N x 2 logits).
        cls_entry: its :class:`~jcs_viewer.models.registry.WeightsEntry` (or any object with the
            same ``name``, ``arch``, ``sha256``, ``input_size``, ``mean``, ``std``, ``window``).
        seg_model: segmentation network (``forward`` -> N x 5 x H x W probabilities).
        seg_entry: its entry.
        lung_model: learned lung segmenter (``forward`` -> N x 1 x H x W), or None: HU lungs only.
        lung_entry: its entry.
        grey_seg_model: the lesion network for studies of 8-bit grey levels (not HU), or None: ``seg_model``
            reads them too.
        grey_seg_entry: its entry.
    """

    cls_model: Any
    cls_entry: Any
    seg_model: Any
    seg_entry: Any
    lung_model: Any = None
    lung_entry: Any = None
    grey_seg_model: Any = None
    grey_seg_entry: Any = None

    def lesion_net(self, is_hu: bool) -> tuple[Any, Any]:
        """(model, entry) of the lesion network for a study in HU (``is_hu``) or in 8-bit grey levels."""
        if not is_hu and self.grey_seg_model is not None:
            return self.grey_seg_model, self.grey_seg_entry
        return self.seg_model, self.seg_entry

    def networks(self) -> list[Any]:
        """Every loaded network (once each)."""
        out: list[Any] = []
        for module in (self.cls_model, self.seg_model, self.lung_model, self.grey_seg_model):
            if module is not None and all(module is not m for m in out):
                out.append(module)
        return out


def load_models(options: AnalysisOptions | None = None, device: Any = None) -> LoadedModels:
    """Load the classifier and segmentation weights named in ``options`` (defaults otherwise).

    Raises:
        ModelLoadError: a name/path is unknown, a file is damaged, or no default is installed.
    """
    from jcs_viewer.models import default_weights, load, resolve_device

    options = options or AnalysisOptions()
    device = device or resolve_device(options.device)
    loaded = {}
    for task, wanted in (("cls", options.cls_weights), ("seg", options.seg_weights)):
        if wanted is None:
            entry = default_weights(task)
            if entry is None:
                label = "classification" if task == "cls" else "segmentation"
                raise ModelLoadError(
                    f"No {label} weights are installed; pass --weights-{task} NAME_OR_PATH "
                    "or install the shipped weights."
                )
            wanted = entry.name
        model, entry = load(wanted, device)
        if entry.task != task:
            raise ModelLoadError(f"{wanted} holds {entry.task} weights, but {task} weights were expected.")
        loaded[task] = (model, entry)
    grey_model = grey_entry = None
    if options.seg_weights is None:  # named weights read every study; the defaults follow its intensities
        grey = default_weights("seg", grey=True)
        if grey is not None and grey.name != loaded["seg"][1].name:
            grey_model, grey_entry = load(grey.name, device)
    lung_model = lung_entry = None
    if options.learned_lungs:
        wanted = options.lung_weights or getattr(default_weights("lung"), "name", None)
        if wanted is not None:
            lung_model, lung_entry = load(wanted, device)
            if lung_entry.task != "lung":
                raise ModelLoadError(f"{wanted} holds {lung_entry.task} weights, but lung weights were expected.")
    return LoadedModels(loaded["cls"][0], loaded["cls"][1], loaded["seg"][0], loaded["seg"][1],
                        lung_model, lung_entry, grey_model, grey_entry)


def analyze(
    volume: Any,
    options: AnalysisOptions | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel: CancelToken | None = None,
    models: LoadedModels | None = None,
) -> StudyResult:
    """Run the JCS pipeline on one study.

    Args:
        volume: the :class:`~jcs_viewer.io.volume.Volume` to analyse.
        options: analysis options (defaults when None).
        progress: called with a :class:`ProgressEvent` after every batch/step (from this thread).
        cancel: checked between batches; :meth:`CancelToken.cancel` stops the run.
        models: already-loaded models (the GUI keeps them); loaded from ``options`` when None.
            On a GPU out-of-memory fall-back these modules are moved to the CPU.

    Returns:
        The complete :class:`StudyResult`.

    Raises:
        Cancelled: the token was cancelled (nothing partial is returned).
        ModelLoadError: weights could not be loaded.
        JCSError: the device is unavailable or memory ran out even on the CPU.
    """
    import torch

    from jcs_viewer.models import prepare_model, resolve_device
    from jcs_viewer.pipeline import lungs
    from jcs_viewer.pipeline.engine import InferenceEngine

    options = options or AnalysisOptions()
    timings: dict[str, float] = {}
    messages: list[str] = list(getattr(volume, "warnings", []) or [])
    t_start = time.perf_counter()

    def emit(stage: str, done: int, total: int, message: str = "") -> None:
        if progress is not None:
            progress(ProgressEvent(stage, done, total, message))

    def check() -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()

    # ---- load models
    check()
    t0 = time.perf_counter()
    emit("load models", 0, 1, "Loading the models")
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    if models is None:
        models = load_models(options, device)
    networks = models.networks()
    for module in networks:
        prepare_model(module, device)
    timings["load models"] = time.perf_counter() - t0
    emit("load models", 1, 1)
    engine = InferenceEngine(device, options.amp, networks, messages, progress, cancel)

    image = volume.array
    n, height, width = image.shape
    is_hu = bool(volume.is_hu)

    # ---- lungs
    check()
    t0 = time.perf_counter()
    emit("lungs", 0, 1, "Finding the lungs")
    learned = None
    if models.lung_model is not None:
        from jcs_viewer.pipeline.lung_ai import predict_lung_probability

        learned = predict_lung_probability(volume, models.lung_model, models.lung_entry, engine,
                                           _batch_size(options, engine.device, "lung"))
    lung_mask = lungs.compute_lung_mask(volume, learned=learned)
    del learned
    scored = lungs.lung_slices(lung_mask, volume.spacing)
    if unreadable_reason(volume):  # the models cannot read these slices: no score, no lesion
        scored[:] = False
    timings["lungs"] = time.perf_counter() - t0
    emit("lungs", 1, 1)

    # ---- classify
    from jcs_viewer.pipeline.preprocess import entry_geometry, prepare_batch, resize, to_uint8, uncrop

    t0 = time.perf_counter()
    probs = np.zeros(n, dtype=np.float32)
    cams = np.zeros((n,) + CAM_SIZE, dtype=np.uint8) if options.compute_cams else None
    cls_entry, cls_model = models.cls_entry, models.cls_model
    has_attributes = bool(getattr(getattr(cls_model, "config", None), "attributes", False)) and hasattr(
        cls_model, "forward_with_attributes"
    )
    attributes = np.zeros((n, 5), dtype=np.float32) if has_attributes else None
    resize_hw, input_hw = entry_geometry(cls_entry)

    def classify(idx: list[int]) -> None:
        from jcs_viewer.models import inference_context
        from jcs_viewer.models.gradcam import classify_explained

        # Contiguous runs are views; a batch with gaps (slices without lung skipped) is gathered.
        span = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx) else np.asarray(idx)
        x = prepare_batch(image[span], cls_entry, is_hu, engine.device)
        with inference_context(engine.device, engine.amp):
            if cams is not None or attributes is not None:
                # One forward pass gives the probability, the (analytic) Grad-CAM and the attributes.
                p, cam, attr = classify_explained(cls_model, x, target_class=1,
                                                  out_size=input_hw if resize_hw != input_hw else CAM_SIZE)
                if cams is not None:
                    if resize_hw != input_hw:
                        cam = resize(uncrop(cam[:, None].float(), cls_entry), CAM_SIZE)[:, 0]
                    cams[span] = to_uint8(cam)
                if attributes is not None:
                    attributes[span] = attr.cpu().numpy()
            else:
                p = torch.softmax(cls_model(x).float(), dim=1)[:, 1]
        probs[span] = p.float().cpu().numpy()

    # Only slices with lung are classified: the others get no COVID score.
    engine.run("classify", np.flatnonzero(scored).tolist(), _batch_size(options, engine.device, "cls"), classify,
               cpu_batch_size=_DEFAULT_BATCH[("cpu", "cls")])
    timings["classify"] = time.perf_counter() - t0

    # ---- segment: every slice for the joint score or when asked, else the classifier's positives
    t0 = time.perf_counter()
    joint = options.slice_score == "joint"
    if joint or options.segment_all_slices:
        segmented = scored.copy()
    else:
        segmented = (probs >= options.slice_cutoff) & scored
    lesion_prob = np.zeros(image.shape, dtype=np.uint8)
    evidence = np.zeros(n, dtype=np.float32) if joint else None
    seg_model, seg_entry = models.lesion_net(is_hu)
    todo = np.flatnonzero(segmented)
    # Where lesions count: the lungs and a margin (lesions on the pleura); nowhere without lungs.
    margin = LUNG_MARGIN_MM if models.lung_model is None else LEARNED_LUNG_MARGIN_MM
    region = lungs.restrict_region(lung_mask, volume.spacing, margin)
    pixel_mm = (float(volume.spacing[1]), float(volume.spacing[2]))

    def segment(idx: list[int]) -> None:
        from jcs_viewer.models import inference_context
        from jcs_viewer.pipeline.lesion_filter import lesion_gate

        if is_hu:  # lesions only where their density and shape can be (not normal lung, not vessels)
            region[idx] &= lesion_gate(image[idx], pixel_mm)

        x = prepare_batch(image[idx], seg_entry, is_hu, engine.device)
        with inference_context(engine.device, engine.amp):
            out = seg_model(x)[:, :1].float()
        lesion_prob[idx] = to_uint8(resize(out, (height, width))[:, 0])
        if evidence is not None:
            evidence[idx] = lesion_evidence(lesion_prob[idx], region[idx], pixel_mm)

    engine.run("segment", todo, _batch_size(options, engine.device, "seg"), segment,
               cpu_batch_size=_DEFAULT_BATCH[("cpu", "seg")])
    cut = int(round(options.lesion_cutoff * 255))
    lesion_mask = np.zeros(image.shape, dtype=np.uint8)
    if todo.size:
        lesion_mask[todo] = (lesion_prob[todo] >= max(cut, 1)) & region[todo]
    region = None  # 1 byte a voxel: free it before quantification

    # A slice without lung gets no COVID score and cannot be flagged.
    probs[~scored] = 0.0
    if evidence is not None:
        evidence[~scored] = 0.0
    scores = combine(probs, evidence, options.slice_score)
    slice_positive = (scores >= options.slice_cutoff) & scored
    if options.threshold is not None:
        threshold, rule = int(options.threshold), manual_threshold_rule(int(options.threshold))
    else:
        threshold, rule = slice_threshold(n, volume.spacing[0])
    decision, positive_slices = patient_decision(slice_positive, threshold)
    reason = not_assessable_reason(volume, lung_mask, scored, threshold)
    if reason:
        decision = NOT_ASSESSABLE
    timings["segment"] = time.perf_counter() - t0
    check()

    # ---- quantify
    t0 = time.perf_counter()
    emit("quantify", 0, 1, "Measuring the lesions")
    if lesion_mask.any():
        lung_mask = lungs.include_lesions(lung_mask, lesion_mask, volume.spacing, LUNG_MARGIN_MM)
    quant = quantify(volume, lung_mask, lesion_mask)
    timings["quantify"] = time.perf_counter() - t0
    emit("quantify", 1, 1)
    timings["total"] = time.perf_counter() - t_start
    check()

    info = getattr(volume, "info", None)
    study = {
        key: str(getattr(info, key))
        for key in ("study_uid", "series_uid", "study_date", "study_description", "series_description", "modality")
        if info is not None and getattr(info, key, "")
    }
    return StudyResult(
        n_slices=n,
        spacing=tuple(volume.spacing),
        origin=tuple(volume.origin),
        direction=np.asarray(volume.direction, dtype=float).reshape(3, 3),
        slice_probability=scores,
        classifier_probability=probs,
        lesion_evidence=evidence,
        slice_score=options.slice_score,
        slice_rule=slice_rule(options.slice_score, options.slice_cutoff),
        slice_cutoff=float(options.slice_cutoff),
        slice_positive=slice_positive,
        positive_slices=positive_slices,
        threshold=threshold,
        threshold_rule=rule,
        decision=decision,
        decision_reason=reason or "",
        scored_slices=scored,
        cams=cams,
        lesion_probability=lesion_prob,
        lesion_mask=lesion_mask,
        segmented_slices=segmented,
        lung_mask=lung_mask,
        attributes=attributes,
        quant=quant,
        models=_describe_all(models, is_hu),
        timings={k: round(v, 4) for k, v in timings.items()},
        messages=messages,
        options={**options.to_dict(), "device_used": str(engine.device)},
        lesion_cutoff=float(options.lesion_cutoff),
        is_hu=is_hu,
        study=study,
    )


def _batch_size(options: AnalysisOptions, device: Any, task: str) -> int:
    if options.batch_size:
        return int(options.batch_size)
    return _DEFAULT_BATCH[("cuda" if getattr(device, "type", "cpu") == "cuda" else "cpu", task)]


def _describe_all(models: LoadedModels, is_hu: bool = True) -> dict[str, dict[str, Any]]:
    seg_model, seg_entry = models.lesion_net(is_hu)
    out = {"cls": _describe(models.cls_entry, models.cls_model), "seg": _describe(seg_entry, seg_model)}
    if models.lung_model is not None:
        out["lung"] = _describe(models.lung_entry, models.lung_model)
    return out


def _describe(entry: Any, model: Any) -> dict[str, Any]:
    window = getattr(entry, "window", None)
    return {
        "name": str(getattr(entry, "name", "")),
        "arch": str(getattr(entry, "arch", getattr(model, "arch_name", ""))),
        "sha256": getattr(entry, "sha256", None),
        "input_size": getattr(entry, "input_size", None),
        "window": list(window) if window else None,
    }
