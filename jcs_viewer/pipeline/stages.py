"""The analysis stages, one method each, over the state of one run (:class:`AnalysisRun`).

:func:`jcs_viewer.pipeline.runner.analyze` calls them in the order of
:data:`~jcs_viewer.pipeline.progress.ANALYSIS_STAGES`; each stage reads what the earlier ones left on the run and
adds its own arrays. Slices are scored after segmentation (:mod:`jcs_viewer.pipeline.slice_score`): the default
joint score needs every slice segmented; the classifier-only score (the paper's flow) segments only the
classifier's positive slices. Never imports Qt; torch loads when a run starts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.pipeline.assess import (NOT_ASSESSABLE, blurred_slices, blurred_slices_note, coarse_reason, edge_blur,
                                        image_noise, not_assessable_reason, unreadable_reason)
from jcs_viewer.pipeline.decision import manual_threshold_rule, patient_decision, slice_threshold
from jcs_viewer.pipeline.options import AnalysisOptions
from jcs_viewer.pipeline.progress import ANALYSIS_STAGES, CancelToken, ProgressEvent
from jcs_viewer.pipeline.quantify import quantify
from jcs_viewer.pipeline.result import StudyResult
from jcs_viewer.pipeline.slice_score import combine, evidence_window_mm, lesion_evidence
from jcs_viewer.pipeline.slice_score import rule as slice_rule

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.runner import LoadedModels

#: Activation maps are stored at this size (uint8): the lite/official classifier grids are 7^2-16^2,
#: so 64^2 keeps every detail of the bilinear map at 4 kB a slice; the viewer stretches it to the slice.
CAM_SIZE = (64, 64)
#: Lesions are accepted this far (mm, in-plane) outside the computed lung mask.
LUNG_MARGIN_MM = 5.0
#: The learned lungs already hold the lesions on the pleura: a thin margin only.
LEARNED_LUNG_MARGIN_MM = 2.0
#: a lesion at least this much inside the lungs (and margin) is kept whole where it runs past them.
WHOLE_LESION_SHARE = 0.5
_DEFAULT_BATCH = {("cpu", "cls"): 16, ("cpu", "seg"): 4, ("cuda", "cls"): 64, ("cuda", "seg"): 16,
                  ("cpu", "lung"): 8, ("cuda", "lung"): 32}
_STEPS = {stage.name: stage for stage in ANALYSIS_STAGES}


class AnalysisRun:
    """The state of one analysis as its stages fill it in.

    Args:
        volume: the study.
        options: the analysis options.
        progress: called with every :class:`ProgressEvent`.
        cancel: checked between stages and batches.
    """

    def __init__(self, volume: Volume, options: AnalysisOptions,
                 progress: Callable[[ProgressEvent], None] | None, cancel: CancelToken | None) -> None:
        self.volume, self.options, self.progress, self.cancel = volume, options, progress, cancel
        self.timings: dict[str, float] = {}
        self.messages: list[str] = list(getattr(volume, "warnings", []) or [])
        self.image = volume.array
        self.is_hu = bool(volume.is_hu)
        self.pixel_mm = (float(volume.spacing[1]), float(volume.spacing[2]))
        # the scanner's slice thickness where the header gives it (a 1 mm slice every 10 mm is thin), else the spacing
        thickness = getattr(getattr(volume, "info", None), "slice_thickness", None) or float(volume.spacing[0])
        self.evidence_window_mm = evidence_window_mm(thickness)
        self._started = time.perf_counter()

    # ------------------------------------------------------------------ plumbing
    def emit(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, done, total, message))

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage and check for cancellation on either side; a one-step stage reports 0/1 then 1/1
        (per-slice stages report their batches through the inference engine)."""
        declared = _STEPS[name]
        self.check()
        started = time.perf_counter()
        if not declared.per_slice:
            self.emit(name, 0, 1, declared.label)
        yield
        self.timings[name] = time.perf_counter() - started
        if not declared.per_slice:
            self.emit(name, 1, 1)
        self.check()

    def batch_size(self, task: str) -> int:
        if self.options.batch_size:
            return int(self.options.batch_size)
        return _DEFAULT_BATCH[("cuda" if self.engine.device.type == "cuda" else "cpu", task)]

    # ------------------------------------------------------------------ stages
    def load_models(self, models: LoadedModels | None, loader: Callable[..., LoadedModels]) -> None:
        """Load (or adopt) the networks and put them on the device."""
        import torch

        from jcs_viewer.models import prepare_model, resolve_device
        from jcs_viewer.pipeline.engine import InferenceEngine

        device = resolve_device(self.options.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        self.models = models if models is not None else loader(self.options, device)
        networks = self.models.networks()
        for module in networks:
            prepare_model(module, device)
        self.engine = InferenceEngine(device, self.options.amp, networks, self.messages, self.progress, self.cancel)

    def find_lungs(self) -> None:
        """The lung mask (HU method, with the learned lungs where installed) and the slices that hold lung."""
        from jcs_viewer.pipeline import lungs

        learned = None
        lung_model, lung_entry = self.models.lung_net(self.is_hu)
        if lung_model is not None:
            from jcs_viewer.pipeline.lung_ai import predict_lung_probability

            learned = predict_lung_probability(self.volume, lung_model, lung_entry, self.engine,
                                               self.batch_size("lung"))
        self.lung_mask = lungs.compute_lung_mask(self.volume, learned=learned)
        del learned
        self.scored = lungs.lung_slices(self.lung_mask, self.volume.spacing)
        self.edge_blur = edge_blur(self.volume)
        self.noise = image_noise(self.volume)
        self.coarse = coarse_reason(self.volume, self.lung_mask, self.edge_blur, self.noise)
        self.unreadable = unreadable_reason(self.volume, self.lung_mask, self.coarse)
        if self.unreadable:  # the models cannot read these slices: no score, no lesion
            self.scored[:] = False
        # Slices a sharp study blurs on its own (breathing) read as ground glass: they are not scored either.
        self.blurred = blurred_slices(self.volume, self.scored)
        if self.blurred.any():
            self.scored &= ~self.blurred
            self.messages.append(blurred_slices_note(self.blurred, self.volume.spacing))

    def classify(self) -> None:
        """COVID probability, Grad-CAM and lesion attributes of every slice with lung (one forward pass each, two
        where the weights read each slice and its mirror)."""
        from jcs_viewer.models import inference_context
        from jcs_viewer.models.gradcam import class_probability, classify_explained
        from jcs_viewer.pipeline.lung_crop import paste_boxes
        from jcs_viewer.pipeline.preprocess import (entry_boxes, entry_geometry, prepare_batch, resize, to_uint8,
                                                    uncrop)

        n = self.image.shape[0]
        self.probs = probs = np.zeros(n, dtype=np.float32)
        self.cams = cams = np.zeros((n,) + CAM_SIZE, dtype=np.uint8) if self.options.compute_cams else None
        entry, model, engine = self.models.cls_entry, self.models.cls_model, self.engine
        has_attributes = bool(getattr(getattr(model, "config", None), "attributes", False)) and hasattr(
            model, "forward_with_attributes")
        self.attributes = attributes = np.zeros((n, 5), dtype=np.float32) if has_attributes else None
        resize_hw, input_hw = entry_geometry(entry)
        mirror = bool(getattr(entry, "test_mirror", False))

        def step(idx: list[int]) -> None:
            # Contiguous runs are views; a batch with gaps (slices without lung skipped) is gathered.
            span = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx) else np.asarray(idx)
            boxes = entry_boxes(entry, self.lung_mask[span])
            x = prepare_batch(self.image[span], entry, self.is_hu, engine.device, boxes, self.pixel_mm)
            with inference_context(engine.device, engine.amp):
                if cams is not None or attributes is not None:
                    p, cam, attr = classify_explained(model, x, target_class=1, out_size=(
                        input_hw if resize_hw != input_hw or boxes is not None else CAM_SIZE), mirror=mirror)
                    if cams is not None:
                        if boxes is not None:  # the map of the lung square, laid back into the slice
                            cam = paste_boxes(cam[:, None].float(), boxes, CAM_SIZE)[:, 0]
                        elif resize_hw != input_hw:
                            cam = resize(uncrop(cam[:, None].float(), entry), CAM_SIZE)[:, 0]
                        cams[span] = to_uint8(cam)
                    if attributes is not None:
                        attributes[span] = attr.cpu().numpy()
                else:
                    p = class_probability(model, x, target_class=1, mirror=mirror)
            probs[span] = p.float().cpu().numpy()

        # Only slices with lung are classified: the others get no COVID score.
        engine.run("classify", np.flatnonzero(self.scored).tolist(), self.batch_size("cls"), step,
                   cpu_batch_size=_DEFAULT_BATCH[("cpu", "cls")])

    def segment(self) -> None:
        """Lesion probability and mask: every slice with lung for the joint score (or when asked), else the
        classifier's positives; lesions count only in the lungs and a margin, where density and shape allow."""
        from jcs_viewer.models import inference_context
        from jcs_viewer.pipeline import lungs
        from jcs_viewer.pipeline.lesion_filter import lesion_gate, through_plane_partial_volume
        from jcs_viewer.pipeline.morphology import components_touching
        from jcs_viewer.pipeline.preprocess import lesion_probabilities, to_uint8

        options, image, engine = self.options, self.image, self.engine
        n, height, width = image.shape
        joint = options.slice_score == "joint"
        if joint or options.segment_all_slices:
            self.segmented = self.scored.copy()
        else:
            self.segmented = (self.probs >= options.slice_cutoff) & self.scored
        self.lesion_prob = lesion_prob = np.zeros(image.shape, dtype=np.uint8)
        self.evidence = evidence = np.zeros(n, dtype=np.float32) if joint else None
        model, entry = self.models.lesion_net(self.is_hu)
        todo = np.flatnonzero(self.segmented)
        margin = LUNG_MARGIN_MM if self.models.lung_net(self.is_hu)[0] is None else LEARNED_LUNG_MARGIN_MM
        region = lungs.restrict_region(self.lung_mask, self.volume.spacing, margin)
        cut = max(int(round(options.lesion_cutoff * 255)), 1)

        def step(idx: list[int]) -> None:
            # On HU studies lesions lie only where their density and shape can be (not normal lung, not vessels).
            gate = None
            if self.is_hu:
                gate = lesion_gate(image[idx], self.pixel_mm)
                gate &= ~through_plane_partial_volume(image, self.lung_mask, idx, self.pixel_mm)
            if gate is not None:
                region[idx] &= gate
            with inference_context(engine.device, engine.amp):
                out = lesion_probabilities(model, image[idx], entry, self.is_hu, engine.device, (height, width),
                                           self.pixel_mm)
            lesion_prob[idx] = to_uint8(out[:, 0])
            if evidence is not None:
                evidence[idx] = lesion_evidence(lesion_prob[idx], region[idx], self.pixel_mm, self.evidence_window_mm)
            found = lesion_prob[idx] >= cut
            if gate is not None:
                found &= gate
            inside = found & region[idx]
            # The lung mask misses lobes consolidated throughout (the learned lungs do; MedSeg tr_im_0023: 76 % of
            # its lesion outside): a lesion mostly inside the lungs that runs past them is kept whole, one mostly
            # outside is tissue beside the lungs (fat of the chest wall or pericardium) and stays cut.
            # Read, these slices of ``region`` hold their lesions: no second whole-volume array at this stage's peak
            # (last in the step: a batch retried after a GPU out-of-memory error never got here).
            region[idx] = inside | components_touching(found, inside, min_share=WHOLE_LESION_SHARE)

        engine.run("segment", todo, self.batch_size("seg"), step, cpu_batch_size=_DEFAULT_BATCH[("cpu", "seg")])
        not_read = np.ones(n, dtype=bool)
        not_read[todo] = False
        region[not_read] = False
        self.lesion_mask = region.view(np.uint8)

    def decide(self) -> None:
        """Slice scores, flagged slices and the patient decision (or why the study cannot be assessed)."""
        options, scored = self.options, self.scored
        # A slice without lung gets no COVID score and cannot be flagged.
        self.probs[~scored] = 0.0
        if self.evidence is not None:
            self.evidence[~scored] = 0.0
        self.scores = combine(self.probs, self.evidence, options.slice_score)
        self.slice_positive = (self.scores >= options.slice_cutoff) & scored
        if options.threshold is not None:
            self.threshold, self.rule = int(options.threshold), manual_threshold_rule(int(options.threshold))
        else:
            self.threshold, self.rule = slice_threshold(self.image.shape[0], self.volume.spacing[0])
        self.decision, self.positive_slices = patient_decision(self.slice_positive, self.threshold)
        self.reason = not_assessable_reason(self.volume, self.lung_mask, scored, self.threshold, self.unreadable,
                                            self.coarse, int(np.count_nonzero(self.blurred)))
        if self.reason:
            self.decision = NOT_ASSESSABLE

    def quantify(self) -> None:
        """Lesion and lung volumes; the lesions on the pleura join the lungs they belong to."""
        from jcs_viewer.pipeline import lungs

        if self.lesion_mask.any():
            self.lung_mask = lungs.include_lesions(self.lung_mask, self.lesion_mask, self.volume.spacing,
                                                   LUNG_MARGIN_MM)
        self.quant = quantify(self.volume, self.lung_mask, self.lesion_mask)

    def result(self) -> StudyResult:
        """The complete, immutable-by-convention result of the run."""
        volume, options = self.volume, self.options
        self.timings["total"] = time.perf_counter() - self._started
        info = getattr(volume, "info", None)
        study = {
            key: str(getattr(info, key))
            for key in ("study_uid", "series_uid", "study_date", "study_description", "series_description",
                        "modality")
            if info is not None and getattr(info, key, "")
        }
        return StudyResult(
            n_slices=self.image.shape[0],
            spacing=tuple(volume.spacing),
            origin=tuple(volume.origin),
            direction=np.asarray(volume.direction, dtype=float).reshape(3, 3),
            slice_probability=self.scores,
            classifier_probability=self.probs,
            lesion_evidence=self.evidence,
            slice_score=options.slice_score,
            slice_rule=slice_rule(options.slice_score, options.slice_cutoff, self.evidence_window_mm),
            slice_cutoff=float(options.slice_cutoff),
            slice_positive=self.slice_positive,
            positive_slices=self.positive_slices,
            threshold=self.threshold,
            threshold_rule=self.rule,
            decision=self.decision,
            decision_reason=self.reason or "",
            scored_slices=self.scored,
            cams=self.cams,
            lesion_probability=self.lesion_prob,
            lesion_mask=self.lesion_mask,
            segmented_slices=self.segmented,
            lung_mask=self.lung_mask,
            attributes=self.attributes,
            quant=self.quant,
            models=describe_models(self.models, self.is_hu),
            timings={k: round(v, 4) for k, v in self.timings.items()},
            messages=self.messages,
            options={**options.to_dict(), "device_used": str(self.engine.device)},
            lesion_cutoff=float(options.lesion_cutoff),
            is_hu=self.is_hu,
            hu_estimated=bool(getattr(volume, "hu_estimated", False)),
            has_voxel_size=volume.has_voxel_size,
            edge_blur_mm=self.edge_blur,
            noise_hu=self.noise,
            blurred_slices=self.blurred,
            study=study,
        )


def describe_models(models: LoadedModels, is_hu: bool = True) -> dict[str, dict[str, Any]]:
    """Name, architecture, sha256, input size, window and test-time reading (input sides averaged, mirror) of each
    network a study was read with."""
    seg_model, seg_entry = models.lesion_net(is_hu)
    out = {"cls": _describe(models.cls_entry, models.cls_model), "seg": _describe(seg_entry, seg_model)}
    lung_model, lung_entry = models.lung_net(is_hu)
    if lung_model is not None:
        out["lung"] = _describe(lung_entry, lung_model)
    return out


def _describe(entry: Any, model: Any) -> dict[str, Any]:
    window = getattr(entry, "window", None)
    return {
        "name": str(getattr(entry, "name", "")),
        "arch": str(getattr(entry, "arch", getattr(model, "arch_name", ""))),
        "sha256": getattr(entry, "sha256", None),
        "input_size": getattr(entry, "input_size", None),
        "window": list(window) if window else None,
        "test_sizes": [int(v) for v in getattr(entry, "test_sizes", ()) or ()],
        "test_mirror": bool(getattr(entry, "test_mirror", False)),
    }
