"""``jcs-viewer gui [STUDY]``: the desktop viewer (also what ``jcs-viewer`` alone starts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jcs_viewer.cli import path_argument

HELP = "open the desktop viewer (default command)"
VIEWS = ("axial", "1x3", "3d")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", nargs="?", type=path_argument, help="study folder or volume file to open")
    parser.add_argument("--demo", action="store_true", help="open the built-in synthetic demo study")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="save a PNG of the window once the study is analysed (for tests and docs)")
    parser.add_argument("--quit-after-analysis", action="store_true",
                        help="exit after the analysis (and the screenshot) is done")
    parser.add_argument("--no-analysis", action="store_true",
                        help="do not analyse automatically on open (this run only)")
    parser.add_argument("--prior", type=path_argument,
                        metavar="STUDY", help="an earlier study of the same patient, opened "
                        "beside STUDY for comparison once STUDY is analysed")
    parser.add_argument("--view", choices=VIEWS, help="start in this view: the axial slice, the 1×3 layout or the "
                        "3-D tab (default: the default-layout setting); with --screenshot, what the PNG shows")


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError

    if args.study is not None and args.demo:
        raise UserError("Give either a study or --demo, not both.")
    if args.study is not None and not args.study.exists():
        raise UserError(f"{args.study} does not exist.")
    prior = getattr(args, "prior", None)
    if prior is not None and (args.study is None and not args.demo or not prior.exists()):
        raise UserError(f"--prior {prior} does not exist." if args.study is not None or args.demo
                        else "--prior needs the current study too.")
    if args.quit_after_analysis and args.screenshot is None:
        raise UserError("--quit-after-analysis needs --screenshot PNG.")
    from jcs_viewer.gui.app import run_viewer

    return run_viewer(study=args.study, demo=args.demo, screenshot=args.screenshot,
                      quit_after_analysis=args.quit_after_analysis,
                      auto_analyse=False if args.no_analysis else None, view=getattr(args, "view", None),
                      prior=prior)
