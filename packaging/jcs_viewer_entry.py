"""Entry script of the PyInstaller bundle: the same ``jcs-viewer`` command line as the installed package.

The bundle keeps ``weights/`` and ``resources/`` beside the code (``sys._MEIPASS``). The registry
would find ``weights/`` there by itself (``jcs_viewer/../weights``); ``$JCS_VIEWER_WEIGHTS`` is set
as well so that the shipped folder is found even if the package layout inside the bundle changes.
A user's own ``$JCS_VIEWER_WEIGHTS`` wins.
"""

import multiprocessing
import os
import sys
from pathlib import Path


def _bundle_dir() -> Path:
    return Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen app must not re-run main() in worker processes
    if getattr(sys, "frozen", False):
        weights = _bundle_dir() / "weights"
        if not os.environ.get("JCS_VIEWER_WEIGHTS") and weights.is_dir():
            os.environ["JCS_VIEWER_WEIGHTS"] = str(weights)

    from jcs_viewer.cli import main

    sys.exit(main())
