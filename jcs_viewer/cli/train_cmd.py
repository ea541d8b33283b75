"""``jcs-viewer train``: placeholder until its issue lands."""

from __future__ import annotations

import argparse

HELP = "train (not yet available)"


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError

    raise UserError("'train' is not available in this version yet.")
