"""``jcs-viewer train seg|cls``: train the lite models on the public data (see ``weights/README.md``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jcs_viewer.cli import path_argument

HELP = "train the lesion segmentation (seg), COVID classification (cls) or lung segmentation (lungs) network"

# task -> (data folder under ../shared/data, architecture, size, batch, epochs, lr)
DEFAULTS = {
    "seg": ("medseg_covid19_ct100_jcs", "jcs_seg_lite", 256, 8, 60, 2e-3),
    "cls": ("ucsd_covid_ct", "jcs_cls_lite", 224, 32, 30, 2e-3),
    "lungs": ("", "lung_lite", 256, 8, 30, 1e-3),
}


#: segmentation architectures with a pretrained encoder, trained on CT-Seg + MedSeg (jcs_viewer.train.ctseg_train).
PRETRAINED_SEG = ("jcs_seg_effnet",)


def default_data_root() -> Path:
    """``../shared/data`` beside the repository checkout."""
    import jcs_viewer

    return Path(jcs_viewer.__file__).resolve().parents[2] / "shared" / "data"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=tuple(DEFAULTS),
                        help="seg: MedSeg lesion masks; cls: COVID-CT + LA-DNN; lungs: COVID-19-CT-Seg lung masks")
    parser.add_argument("--out", required=True, type=path_argument,
                        help="output folder (weights, checkpoint, run.json)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: ../shared/data/<medseg|ucsd_covid_ct>; "
                                                  "lungs and --arch jcs_seg_effnet: ../shared/data itself)")
    parser.add_argument("--epochs", type=int, help="epochs (seg 60, cls 30, lungs 8)")
    parser.add_argument("--size", type=int, help="input size the whole image is seen at (seg 256, cls 224)")
    parser.add_argument("--crop", type=int, help="train on random crops of this side at --size scale (default: none)")
    parser.add_argument("--batch", type=int, help="batch size (seg 8, cls 32)")
    parser.add_argument("--lr", type=float, help="peak Adam learning rate (seg/cls 2e-3, lungs 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (smoke tests)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes (keeps the best so far)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    parser.add_argument("--arch", help="architecture (jcs_seg_lite / jcs_cls_lite)")
    parser.add_argument("--config", default="{}", help='JSON architecture overrides, e.g. \'{"width": 0.5}\'')
    parser.add_argument("--medseg-twins", type=float, default=0.0, metavar="F",
                        help="cls: a fraction F of each batch are crops of MedSeg training slices and of their "
                             "lesion-free twins, labelled from their masks (0: COVID-CT only); seg: each slice is "
                             "replaced by its lesion-free twin with probability F")


    parser.add_argument("--init", type=Path, metavar="WEIGHTS",
                        help="start from these weights (a run's best.safetensors or shipped weights, the same "
                             "--arch and --config) instead of random or ImageNet ones: a second run continues a first")
    parser.add_argument("--ctseg", action="store_true",
                        help="cls with --medseg-twins: COVID-19-CT-Seg training-group slices, labelled from their "
                             "infection masks, make half of the real-CT crops")
    parser.add_argument("--cam-loss", type=float, default=0.0, metavar="W",
                        help="cls with --medseg-twins: weight of a loss that makes the classifier's Grad-CAM map "
                             "peak on the crops' lesions and carry nothing away from them (0: off)")
    parser.add_argument("--lung-crop", action="store_true",
                        help="cls: train and validate on the square around each image's lungs (found by the "
                             "shipped lung net), as the app then reads every slice")
    parser.add_argument("--average-from", type=int, metavar="EPOCH",
                        help="cls: also keep the mean of the weights of every epoch from EPOCH (0-based) on "
                             "(stochastic weight averaging, average.safetensors; finalize weighs it)")
    parser.add_argument("--sgd", action="store_true",
                        help="cls: SGD with Nesterov momentum 0.9 instead of Adam (Adam's first steps move every "
                             "weight by about the learning rate, whatever its gradient; SGD moves it in proportion)")
    parser.add_argument("--freeze-bn", action="store_true",
                        help="cls with --init: keep the BatchNorm statistics the checkpoint has (BN read in eval "
                             "mode while training), so that only the gradients move the network")
    parser.add_argument("--distil", type=Path, metavar="NPZ",
                        help="cls: a teacher's targets (python -m jcs_viewer.train.ct_trunk --teacher-out NPZ): its "
                             "calibrated COVID probability of each COVID-CT training image as a soft label")
    parser.add_argument("--distil-weight", type=float, default=1.0, metavar="W",
                        help="cls with --distil: weight of the soft label (1)")
    parser.add_argument("--distil-features", type=float, default=0.0, metavar="W",
                        help="cls with --distil: weight of a term that points the pooled features, through a "
                             "training-only linear projector, at the teacher's (0: off)")
    parser.add_argument("--densify", type=float, default=0.0, metavar="F",
                        help="seg, lungs: with probability F a slice's lesions are drawn soft-tissue dense "
                             "(consolidation), the mask unchanged (0: off)")
    parser.add_argument("--dependent-lobes", type=float, default=0.0, metavar="F",
                        help="lungs: with probability F the posterior part of one lung or both is drawn "
                             "soft-tissue dense (a lobe consolidated throughout), still labelled lung (0: off)")
    parser.add_argument("--medseg-lungs", nargs="?", const="", metavar="LUNG_WEIGHTS",
                        help="lungs: MedSeg training slices join CT-Seg, labelled lung where a lung net (these "
                             "weights; default: the 8-bit default) or the radiologists' lesion masks say so (real "
                             "consolidated lobes in real 8-bit windows)")


def command_line(task: str, opts, explicit_data: bool) -> str:
    """The full command that reproduces a run, every default spelled out."""
    import shlex

    parts = ["jcs-viewer", "train", task, "--out", str(opts.out)]
    if explicit_data:
        parts += ["--data", str(opts.data)]
    parts += ["--epochs", str(opts.epochs), "--size", str(opts.size), "--batch", str(opts.batch),
              "--lr", f"{opts.lr:g}", "--seed", str(opts.seed), "--arch", opts.arch]
    for flag, value in (("--crop", opts.crop), ("--max-steps", opts.max_steps), ("--max-minutes", opts.max_minutes)):
        if value is not None:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if opts.config:
        import json

        parts += ["--config", json.dumps(opts.config)]
    if opts.medseg_twins:
        parts += ["--medseg-twins", f"{opts.medseg_twins:g}"]
    if opts.init is not None:
        parts += ["--init", str(opts.init)]
    if opts.ctseg:
        parts += ["--ctseg"]
    if opts.cam_weight:
        parts += ["--cam-loss", f"{opts.cam_weight:g}"]
    if opts.lung_crop:
        parts += ["--lung-crop"]
    if opts.average_from is not None:
        parts += ["--average-from", str(opts.average_from)]
    if opts.sgd:
        parts += ["--sgd"]
    if opts.freeze_bn:
        parts += ["--freeze-bn"]
    if opts.distil is not None:
        parts += ["--distil", str(opts.distil), "--distil-weight", f"{opts.distil_weight:g}"]
        if opts.distil_features:
            parts += ["--distil-features", f"{opts.distil_features:g}"]
    if opts.densify:
        parts += ["--densify", f"{opts.densify:g}"]
    if opts.dependent_lobes:
        parts += ["--dependent-lobes", f"{opts.dependent_lobes:g}"]
    if opts.medseg_lungs is not None:
        parts += ["--medseg-lungs", opts.medseg_lungs]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError
    from jcs_viewer.train.common import TrainOptions

    folder, arch, size, batch, epochs, lr = DEFAULTS[args.task]
    if args.arch in PRETRAINED_SEG or args.task == "lungs":
        folder = ""  # these read CT-Seg and MedSeg: the data root that holds both
    data = args.data or default_data_root() / folder
    if not Path(data).is_dir():
        raise UserError(f"The training data folder {data} does not exist; pass --data.")
    try:
        config = json.loads(args.config)
        if not isinstance(config, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise UserError(f"--config must be a JSON object ({exc}).") from None
    opts = TrainOptions(
        data=Path(data), out=args.out, epochs=args.epochs or epochs, size=args.size or size,
        batch=args.batch or batch, lr=args.lr or lr, seed=args.seed, crop=args.crop, max_steps=args.max_steps,
        max_minutes=args.max_minutes, threads=args.threads, arch=args.arch or arch, config=config,
        medseg_twins=args.medseg_twins, init=args.init, ctseg=args.ctseg, cam_weight=args.cam_loss,
        lung_crop=args.lung_crop, average_from=args.average_from, densify=args.densify,
        dependent_lobes=args.dependent_lobes, medseg_lungs=args.medseg_lungs, sgd=args.sgd, freeze_bn=args.freeze_bn,
        distil=args.distil, distil_weight=args.distil_weight, distil_features=args.distil_features,
    )
    if opts.cam_weight and not (args.task == "cls" and opts.medseg_twins > 0):
        raise UserError("--cam-loss needs the lesion masks of a cls run with --medseg-twins.")
    if opts.ctseg and not (args.task == "cls" and opts.medseg_twins > 0):
        raise UserError("--ctseg adds real-CT crops to a cls run with --medseg-twins only.")
    if opts.lung_crop and args.task != "cls":
        raise UserError("--lung-crop is for cls runs only.")
    if opts.average_from is not None and (args.task != "cls" or opts.average_from < 0):
        raise UserError("--average-from is for cls runs only, from an epoch of 0 or more.")
    if opts.distil is not None and (args.task != "cls" or not Path(opts.distil).is_file()):
        raise UserError("--distil takes a teacher file (ct_trunk --teacher-out) for a cls run.")
    if opts.sgd and args.task != "cls":
        raise UserError("--sgd is for cls runs only.")
    if opts.freeze_bn and (args.task != "cls" or opts.init is None):
        raise UserError("--freeze-bn keeps the statistics of --init: a cls run that continues one.")
    if opts.distil is None and opts.distil_features:
        raise UserError("--distil-features needs --distil.")
    if opts.init is not None and not Path(opts.init).is_file():
        raise UserError(f"--init: {opts.init} is not a file.")
    if opts.crop is not None and not 32 <= opts.crop <= opts.size:
        raise UserError(f"--crop must be between 32 and --size ({opts.size}).")
    if opts.densify and (args.task not in ("seg", "lungs") or not 0.0 < opts.densify <= 1.0):
        raise UserError("--densify is for seg and lungs runs only, a probability above 0 up to 1.")
    if opts.dependent_lobes and (args.task != "lungs" or not 0.0 < opts.dependent_lobes <= 1.0):
        raise UserError("--dependent-lobes is for lungs runs only, a probability above 0 up to 1.")
    if opts.medseg_lungs is not None:
        if args.task != "lungs":
            raise UserError("--medseg-lungs is for lungs runs only.")
        if not opts.medseg_lungs:  # the labelling net by name, so that the command says which
            from jcs_viewer.models import default_weights

            entry = default_weights("lung", grey=True)
            if entry is None:
                raise UserError("--medseg-lungs needs a lung net to label MedSeg's lungs; none is installed.")
            opts.medseg_lungs = entry.name
    if not 0.0 <= opts.medseg_twins < 1.0:
        raise UserError("--medseg-twins must be a fraction from 0 up to (not including) 1.")
    opts.command = command_line(args.task, opts, explicit_data=args.data is not None)
    if args.task == "lungs" or opts.arch in PRETRAINED_SEG:
        from jcs_viewer.train.ctseg_train import train_ctseg

        record = train_ctseg(opts, "lungs" if args.task == "lungs" else "lesions")
        summary = {"best_val_dice": record.get("best_val_dice")}
    elif args.task == "seg":
        from jcs_viewer.train.seg_train import train_seg

        record = train_seg(opts)
        summary = {"best_val_dice": record.get("best_val_dice")}
    else:
        from jcs_viewer.train.cls_train import train_cls

        record = train_cls(opts)
        summary = {"best_val_score": record.get("best_val_score")}
    print(json.dumps({"task": args.task, "out": str(args.out), "steps": record.get("steps"),
                      "minutes": record.get("minutes"), **summary}))
    return 0
