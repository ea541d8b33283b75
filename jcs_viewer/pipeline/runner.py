"""The staged analysis runner: ``analyze(volume) -> StudyResult``.

The stages are named in :data:`jcs_viewer.pipeline.progress.ANALYSIS_STAGES` (``load models``, ``lungs``,
``classify``, ``segment``, ``quantify``; progress events carry these names and the GUI shows their labels) and
done by :class:`jcs_viewer.pipeline.stages.AnalysisRun`. Cancellation is checked between batches; a cancelled run
raises :class:`jcs_viewer.errors.Cancelled` and returns or writes nothing. Never imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.pipeline.options import AnalysisOptions
from jcs_viewer.pipeline.progress import CancelToken, ProgressEvent
from jcs_viewer.pipeline.result import StudyResult

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume


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
        grey_lung_model: the lung network for studies of 8-bit grey levels, or None: ``lung_model`` reads them too.
        grey_lung_entry: its entry.
    """

    cls_model: Any
    cls_entry: Any
    seg_model: Any
    seg_entry: Any
    lung_model: Any = None
    lung_entry: Any = None
    grey_seg_model: Any = None
    grey_seg_entry: Any = None
    grey_lung_model: Any = None
    grey_lung_entry: Any = None

    def lesion_net(self, is_hu: bool) -> tuple[Any, Any]:
        """(model, entry) of the lesion network for a study in HU (``is_hu``) or in 8-bit grey levels."""
        if not is_hu and self.grey_seg_model is not None:
            return self.grey_seg_model, self.grey_seg_entry
        return self.seg_model, self.seg_entry

    def lung_net(self, is_hu: bool) -> tuple[Any, Any]:
        """(model, entry) of the learned lung network for a study in HU or in 8-bit grey levels; (None, None)
        without learned lungs."""
        if not is_hu and self.grey_lung_model is not None:
            return self.grey_lung_model, self.grey_lung_entry
        return self.lung_model, self.lung_entry

    def networks(self) -> list[Any]:
        """Every loaded network (once each)."""
        out: list[Any] = []
        for module in (self.cls_model, self.seg_model, self.lung_model, self.grey_seg_model, self.grey_lung_model):
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
        grey_model, grey_entry = _grey_default("seg", loaded["seg"][1].name, device)
    lung_model = lung_entry = grey_lung_model = grey_lung_entry = None
    if options.learned_lungs:
        wanted = options.lung_weights or getattr(default_weights("lung"), "name", None)
        if wanted is not None:
            lung_model, lung_entry = load(wanted, device)
            if lung_entry.task != "lung":
                raise ModelLoadError(f"{wanted} holds {lung_entry.task} weights, but lung weights were expected.")
        if options.lung_weights is None:
            grey_lung_model, grey_lung_entry = _grey_default("lung", wanted, device)
    return LoadedModels(loaded["cls"][0], loaded["cls"][1], loaded["seg"][0], loaded["seg"][1],
                        lung_model, lung_entry, grey_model, grey_entry, grey_lung_model, grey_lung_entry)


def _grey_default(task: str, loaded_name: str | None, device: Any) -> tuple[Any, Any]:
    """(model, entry) of the ``default_grey`` weights of ``task`` for 8-bit studies, or (None, None) when there are
    none or they are the ones already loaded for every study."""
    from jcs_viewer.models import default_weights, load

    grey = default_weights(task, grey=True)
    if grey is None or grey.name == loaded_name:
        return None, None
    return load(grey.name, device)


def analyze(
    volume: Volume,
    options: AnalysisOptions | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel: CancelToken | None = None,
    models: LoadedModels | None = None,
) -> StudyResult:
    """Run the JCS pipeline on one study, stage by stage (:data:`~jcs_viewer.pipeline.progress.ANALYSIS_STAGES`).

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
    from jcs_viewer.pipeline.stages import AnalysisRun

    run = AnalysisRun(volume, options or AnalysisOptions(), progress, cancel)
    with run.stage("load models"):
        run.load_models(models, load_models)
    with run.stage("lungs"):
        run.find_lungs()
    with run.stage("classify"):
        run.classify()
    with run.stage("segment"):
        run.segment()
        run.decide()
    with run.stage("quantify"):
        run.quantify()
    return run.result()
