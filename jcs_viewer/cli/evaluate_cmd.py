"""``jcs-viewer evaluate seg|lungs|cls|...``: score weights on labelled images; prints one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "score segmentation (Dice, IoU, E-measure, JCS mIoU) or classification (acc, sens, spec, AUC, F1) weights"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    seg = sub.add_parser("seg", help="lesion segmentation on image/mask pairs matched by name")
    seg.add_argument("--images", type=Path, help="image folder (default with --split: the MedSeg tr_im folder)")
    seg.add_argument("--masks", type=Path, help="mask folder (default with --split: the MedSeg tr_mask_new folder)")
    seg.add_argument("--list", type=Path, help="evaluate only the images named in this file (one per line)")
    seg.add_argument("--split", choices=("train", "val", "test"), help="our MedSeg split (jcs_viewer/train/splits.py)")
    seg.add_argument("--threshold", type=float, default=0.5, help="probability threshold for Dice/IoU/E (0.5)")
    lungs = sub.add_parser("lungs", help="the learned lung segmenter on slice/lung-mask pairs matched by name")
    lungs.add_argument("--images", type=Path, help="slice folder (default with --split: CT-Seg's ct folder)")
    lungs.add_argument("--masks", type=Path, help="lung mask folder (default with --split: CT-Seg's lungs folder)")
    lungs.add_argument("--list", type=Path, help="evaluate only the images named in this file (one per line)")
    lungs.add_argument("--split", choices=("train", "val", "test"),
                       help="our CT-Seg split by volume group (jcs_viewer/train/splits.py)")
    lungs.add_argument("--threshold", type=float, default=0.5, help="probability threshold (0.5)")
    for p, default in ((seg, "window"), (lungs, "clahe")):
        p.add_argument("--intensity", choices=("window", "clahe"),
                       help="what the images are: 8-bit lung-window slices (MedSeg) or CT-Seg CLAHE slices "
                            f"(default: clahe with --dataset ctseg, else {default})")
        p.add_argument("--dataset", choices=("medseg", "ctseg"), default="medseg" if p is seg else "ctseg",
                       help="which public set --split refers to (seg: medseg; lungs: ctseg)")
    cls = sub.add_parser("cls", help="COVID vs non-COVID on two image folders")
    cls.add_argument("--covid", type=Path, help="COVID image folder (default with --split: COVID-CT's CT_COVID)")
    cls.add_argument("--noncovid", type=Path, help="non-COVID image folder (default with --split: CT_NonCOVID)")
    cls.add_argument("--list", type=Path, nargs=2, metavar=("COVID_LIST", "NONCOVID_LIST"),
                     help="evaluate only the images named in these files")
    cls.add_argument("--split", choices=("train", "val", "test"), help="the official COVID-CT split")
    cls.add_argument("--threshold", type=float, default=0.5, help="COVID probability threshold (0.5)")
    twins = sub.add_parser("twins", help="classification of real lesion slices against their lesion-free twins")
    twins.add_argument("--threshold", type=float, default=0.5, help="COVID probability threshold (0.5)")
    cam = sub.add_parser("cam", help="whether the classifier's Grad-CAM maps point at the lesions and stay in the "
                                     "lungs")
    for p in (cls, twins, cam):
        p.add_argument("--mirror", choices=("on", "off"),
                       help="also read each image left-right mirrored and average (default: as the weights' "
                            "manifest entry says, test_mirror)")
    for p in (twins, cam):
        p.add_argument("--split", choices=("train", "val", "test"), default="test",
                       help="MedSeg split, or CT-Seg volume groups with --dataset ctseg (test)")
        p.add_argument("--dataset", choices=("medseg", "ctseg"), default="medseg",
                       help="MedSeg lung-window slices or COVID-19-CT-Seg CLAHE slices (medseg)")
    phantom = sub.add_parser("phantom", help="classification or segmentation of the synthetic demo chest CT "
                                             "(never trained on)")
    phantom.add_argument("--model", choices=("cls", "seg", "joint"), default="cls",
                         help="which weights to score: cls, seg, or joint (the whole pipeline's joint slice score "
                              "and patient decision, with --weights for the classifier and --seg-weights)")
    phantom.add_argument("--seg-weights", help="with --model joint: segmentation weights (default: the default)")
    phantom.add_argument("--seed", type=int, default=0, help="phantom seed (0: the demo study)")
    phantom.add_argument("--slices", type=int, default=128, help="slices (128: the demo study)")
    phantom.add_argument("--threshold", type=float, default=0.5, help="COVID probability threshold (0.5)")
    studies = sub.add_parser("studies", help="the whole analysis on studies listed with their expected decision "
                                             "(CSV: path, expected, optional lung_mask, lesion_mask, lung_labels, "
                                             "lesion_labels)")
    studies.add_argument("--manifest", type=Path, required=True, help="the CSV list of studies")
    studies.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="inference device")
    studies.add_argument("--seg-weights", help="segmentation weights (default: the default)")
    stacks = sub.add_parser("stacks", help="the whole analysis on COVID-19-CT-Seg volume groups read as 8-bit slice "
                                           "stacks: lesion and lung Dice per volume (--dataset medseg: each MedSeg "
                                           "slice read as a one-slice stack, lesion Dice per slice)")
    stacks.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                        help="CT-Seg volume groups or MedSeg slices (test: the held-out ones; all: CT-Seg only)")
    stacks.add_argument("--dataset", choices=("ctseg", "medseg"), default="ctseg", help="the slices read (ctseg)")
    stacks.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="inference device")
    stacks.add_argument("--seg-weights", help="segmentation weights (default: the default for 8-bit studies)")
    for p in (seg, lungs, cls, twins, cam, phantom, studies, stacks):
        p.add_argument("--weights", help="registry name or weights path (default: the task's default weights)")
        p.add_argument("--data-root", type=Path, help="public data folder (default: ../shared/data)")


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError
    from jcs_viewer.cli.train_cmd import default_data_root
    from jcs_viewer.train.splits import covid_ct_split, medseg_image_name, medseg_split, read_list

    root = args.data_root or default_data_root()
    if args.task == "twins":
        from jcs_viewer.train.evaluate import evaluate_twins

        result = evaluate_twins(root, args.split, args.weights, args.threshold, args.dataset, _mirror(args))
        print(json.dumps({**result, "split": args.split}))
        return 0
    if args.task == "cam":
        from jcs_viewer.train.evaluate import evaluate_cam

        print(json.dumps({**evaluate_cam(root, args.split, args.weights, dataset=args.dataset, mirror=_mirror(args)),
                          "split": args.split}))
        return 0
    if args.task == "studies":
        from jcs_viewer.errors import JCSError
        from jcs_viewer.pipeline import AnalysisOptions
        from jcs_viewer.train.studies_eval import evaluate_studies

        options = AnalysisOptions(device=args.device, cls_weights=args.weights, seg_weights=args.seg_weights)
        try:
            print(json.dumps(evaluate_studies(args.manifest, options)))
        except JCSError as exc:
            raise UserError(str(exc)) from None
        return 0
    if args.task == "stacks":
        from jcs_viewer.pipeline import AnalysisOptions
        from jcs_viewer.train.ctseg_stacks import evaluate_ctseg_stacks
        from jcs_viewer.train.ctseg_train import CTSEG_FOLDER

        options = AnalysisOptions(device=args.device, cls_weights=args.weights, seg_weights=args.seg_weights)
        if args.dataset == "medseg":
            from jcs_viewer.train.ctseg_stacks import evaluate_medseg_slices
            from jcs_viewer.train.ctseg_train import MEDSEG_FOLDER

            if args.split == "all":
                raise UserError("--split all reads the CT-Seg volume groups; give MedSeg a split (train, val, test).")
            print(json.dumps(evaluate_medseg_slices(root / MEDSEG_FOLDER, args.split, options)))
            return 0
        print(json.dumps(evaluate_ctseg_stacks(root / CTSEG_FOLDER, args.split, options)))
        return 0
    if args.task == "phantom":
        from jcs_viewer.train.evaluate import evaluate_phantom

        print(json.dumps(evaluate_phantom(args.weights, args.seed, args.slices, args.threshold, args.model,
                                          args.seg_weights)))
        return 0
    if args.list is not None and args.split is not None:
        raise UserError("Give --list or --split, not both.")
    if args.task in ("seg", "lungs"):
        from jcs_viewer.train.evaluate import evaluate_lungs, evaluate_seg

        if args.task == "lungs" and args.dataset != "ctseg":
            raise UserError("evaluate lungs --split needs --dataset ctseg (MedSeg has no lung masks).")
        if args.dataset == "ctseg":
            from jcs_viewer.train.ctseg_train import CTSEG_FOLDER, ctseg_files

            ctseg = root / CTSEG_FOLDER
            images = args.images or (ctseg / "ct" if args.split else None)
            masks = args.masks or (ctseg / ("lesions" if args.task == "seg" else "lungs") if args.split else None)

            def split_names(split):
                return [image.name for image, _ in ctseg_files(ctseg, split)]
        else:
            medseg = root / "medseg_covid19_ct100_jcs"
            images = args.images or (medseg / "tr_im" if args.split else None)
            masks = args.masks or (medseg / "tr_mask_new" if args.split else None)

            def split_names(split):
                return [medseg_image_name(i) for i in medseg_split(split)]
        if images is None or masks is None:
            raise UserError(f"evaluate {args.task} needs --images and --masks (or --split to use the "
                            f"{args.dataset} folders).")
        names = None
        if args.list is not None:
            names = read_list(args.list)
        elif args.split is not None:
            names = split_names(args.split)
        intensity = args.intensity or ("clahe" if args.dataset == "ctseg" else "window")
        evaluate = evaluate_seg if args.task == "seg" else evaluate_lungs
        result = evaluate(images, masks, args.weights, names, args.threshold, intensity)
        result["dataset"] = args.dataset
    else:
        from jcs_viewer.train.evaluate import evaluate_cls

        ucsd = root / "ucsd_covid_ct"
        covid = args.covid or (ucsd / "Images" / "CT_COVID" if args.split else None)
        noncovid = args.noncovid or (ucsd / "Images" / "CT_NonCOVID" if args.split else None)
        if covid is None or noncovid is None:
            raise UserError("evaluate cls needs --covid and --noncovid (or --split to use the COVID-CT folders).")
        covid_names = noncovid_names = None
        if args.list is not None:
            covid_names, noncovid_names = read_list(args.list[0]), read_list(args.list[1])
        elif args.split is not None:
            covid_names, noncovid_names = covid_ct_split(ucsd, args.split)
        result = evaluate_cls(covid, noncovid, args.weights, covid_names, noncovid_names, args.threshold,
                              _mirror(args))
    if args.split:
        result["split"] = args.split
    print(json.dumps(result))
    return 0


def _mirror(args: argparse.Namespace) -> bool | None:
    """``--mirror on|off`` as a bool; None (not given): the weights' own ``test_mirror``."""
    return None if args.mirror is None else args.mirror == "on"
