"""``jcs-viewer demo``: placeholder until its issue lands."""

from __future__ import annotations

import argparse

HELP = "demo (not yet available)"


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError

    raise UserError("'demo' is not available in this version yet.")
