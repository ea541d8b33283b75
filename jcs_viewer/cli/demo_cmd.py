"""``jcs-viewer demo``: write the built-in synthetic chest CT study (DICOM + ground truth)."""

from __future__ import annotations

import argparse

from jcs_viewer.cli import path_argument

HELP = "write the synthetic demo chest CT (DICOM series + ground-truth masks)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", type=path_argument,
                        help="folder to write dicom/ and ground_truth/ into")
    parser.add_argument("--slices", type=int, default=128, metavar="N", help="number of 512x512 slices (default 128)")
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed; same seed, same study (default 0)"
    )
    parser.add_argument("--no-lesions", action="store_true", help="the same patient without lesions")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from jcs_viewer.cli import UserError

    if args.slices < 8 or args.slices > 2000:
        raise UserError(f"--slices must be between 8 and 2000, got {args.slices}.")
    if args.seed < 0:
        raise UserError(f"--seed must be non-negative, got {args.seed}.")

    from jcs_viewer.io.phantom import write_demo_study

    start = time.perf_counter()
    out = write_demo_study(args.out, n_slices=args.slices, seed=args.seed, lesions=not args.no_lesions)
    summary = json.loads((out / "ground_truth" / "lesions.json").read_text())
    print(f"Demo study written to {out.resolve()} in {time.perf_counter() - start:.1f} s")
    print(f"  DICOM series : {(out / 'dicom').resolve()} ({args.slices} slices of 512x512)")
    print(f"  ground truth : {(out / 'ground_truth').resolve()} (lesion_mask, lung_mask .nii.gz, lesions.json)")
    print(
        f"  lungs {summary['lung_volume_ml']['total']:.0f} mL, {len(summary['lesions'])} lesions, "
        f"{summary['lesion_volume_ml']:.1f} mL ({summary['lesion_percent_of_lung']:.1f} % of lung)"
    )
    print(f"Open it with: jcs-viewer {(out / 'dicom').resolve()}")
    return 0
