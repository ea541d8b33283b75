"""The ``jcs-viewer`` command line.

Every subcommand lives in its own module under :mod:`jcs_viewer.cli` exposing
``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``. Those modules
import only the standard library at import time so that ``--help`` is instant;
heavy packages (torch, Qt, VTK) are imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from jcs_viewer import RESEARCH_USE_NOTICE, __version__

# Order is the order shown by --help. "gui" is the default when no subcommand is given.
SUBCOMMANDS = ("gui", "demo", "analyze", "batch", "pacs", "bench", "train", "evaluate")
_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


class UserError(Exception):
    """A problem the user can fix; the CLI prints its one sentence and exits 2."""


#: the longest file or folder name (bytes) of ext4, XFS, APFS and NTFS
NAME_MAX = 255


def path_argument(text: str) -> Path:
    """argparse ``type`` of every path option: ``""`` (which ``Path`` reads as the current folder, so that a study
    or an output folder quietly became the working directory) is refused; ``~`` is expanded."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no folder or file")
    path = Path(text).expanduser()
    longest = max((len(part.encode(errors="surrogateescape")) for part in path.parts), default=0)
    if longest > NAME_MAX:  # the operating system's own error surfaced as a traceback from the first exists()
        raise argparse.ArgumentTypeError(f"a name in it is {longest} bytes long; file systems allow {NAME_MAX}")
    return path


def _load(name: str):
    return importlib.import_module(f"jcs_viewer.cli.{name}_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jcs-viewer",
        description="Explainable COVID-19 chest CT reading aid (JCS). " + RESEARCH_USE_NOTICE,
    )
    parser.add_argument("--version", action="version", version=f"jcs-viewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = _load(name)
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `jcs-viewer`, `jcs-viewer STUDY` and `jcs-viewer --demo` open the viewer.
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in _TOP_LEVEL_FLAGS):
        argv = ["gui", *argv]
    _quiet_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        from jcs_viewer.errors import JCSError

        if isinstance(exc, (JCSError, UserError)):
            print(f"jcs-viewer: {exc}", file=sys.stderr)
            return 2
        raise


def _quiet_library_warnings() -> None:
    """Library warnings (pydicom on odd header values, highdicom on what it copies) go to the logging system,
    not raw onto the terminal: the reader gets our one sentence, not a file path and line number of pydicom."""
    import logging

    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False  # nor through a handler on the root logger


def gui_main() -> int:
    return main(["gui", *sys.argv[1:]])
