"""``jcs-viewer batch``: analyse every study of an archive (on this machine or a Ray cluster), resumable."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from jcs_viewer.cli import path_argument

HELP = "analyse every study of a folder tree, a list or a PACS query, on this machine or a Ray cluster; resumable"
DEVICES = ("auto", "cpu", "cuda")
SLICE_SCORES = ("joint", "classifier")
#: a SOURCE file with one of these endings is a list of study paths, not a study
LIST_SUFFIXES = (".txt", ".lst", ".list")
_EPILOG = ("SOURCE is a folder tree (every study found in it) or a text file (.txt) of study paths, one a line, "
           "# starts a comment, relative paths are relative to the file; or, instead of SOURCE, a PACS query "
           "(--server with --patient-id / --study-date): the studies found are retrieved into DIR/.pacs/ first. "
           "Each study's outputs (as 'analyze' writes them) go to DIR/<study-key>/; DIR/summary.csv and "
           "DIR/summary.parquet have one row per study. On a cluster, DIR and the studies must be on a file "
           "system every node sees.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.add_argument("source", metavar="SOURCE", nargs="?", type=path_argument,
                        help="folder tree of studies, or a .txt file of "
                        "study paths (or none, with --server: the studies a PACS query finds)")
    parser.add_argument("--out", required=True, metavar="DIR", type=path_argument, help="output folder")
    parser.add_argument("--ray-address", metavar="auto|HOST:PORT", help="run on this Ray cluster (default: a "
                        "local Ray runtime on this machine)")
    parser.add_argument("--workers", type=int, metavar="N", help="studies analysed at a time (default: one per "
                        "CPU, or per GPU with --device cuda/auto on GPU nodes); 1 without --ray-address runs in "
                        "this process without Ray")
    parser.add_argument("--device", choices=DEVICES, help="inference device (default: the settings file's)")
    parser.add_argument("--report", action="store_true", help="also write report.pdf and, for DICOM studies, "
                        "lesion_seg.dcm")
    parser.add_argument("--anonymize", action="store_true", help="de-identify every output")
    parser.add_argument("--resume", action="store_true", help="skip studies done before with the same input "
                        "files, weights, app version and options (studies that failed on their input too)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--server", metavar="SERVER", help="take the studies from this PACS (AET@HOST:PORT or "
                        "http(s)://HOST/dicom-web): every study its query finds is retrieved into DIR/.pacs/ and "
                        "analysed")
    parser.add_argument("--patient-id", metavar="ID", default="", help="with --server: this patient's studies "
                        "(DICOM wildcards * and ? allowed)")
    parser.add_argument("--study-date", metavar="RANGE", default="", help="with --server: studies of this date "
                        "(YYYYMMDD) or range (YYYYMMDD-YYYYMMDD, YYYYMMDD-, -YYYYMMDD)")
    from jcs_viewer.cli.pacs_cmd import add_server_options

    add_server_options(parser, required=True)  # --ae-title, --timeout (--server is above)
    parser.add_argument("--weights-seg", metavar="NAME|PATH", help="segmentation weights (default: shipped)")
    parser.add_argument("--weights-cls", metavar="NAME|PATH", help="classification weights (default: shipped)")
    parser.add_argument("--weights-lung", metavar="NAME|PATH", help="lung segmentation weights (default: shipped)")
    parser.add_argument("--slice-score", choices=SLICE_SCORES, help="as for 'analyze'")
    parser.add_argument("--all-slices", action="store_true", default=None, help="as for 'analyze'")
    parser.add_argument("--threshold", type=int, metavar="N", help="as for 'analyze'")
    parser.add_argument("--slice-cutoff", type=float, metavar="P", help="as for 'analyze'")


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError
    from jcs_viewer.cli.analyze_cmd import check_decision_options

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1.")
    check_decision_options(args)
    server = getattr(args, "server", None)
    if (args.source is None) == (server is None):
        raise UserError("Give the studies as SOURCE (a folder or a .txt list) or as --server SERVER (a PACS "
                        "query), one of the two.")
    if server is None and (args.patient_id or args.study_date):
        raise UserError("--patient-id and --study-date select studies on a PACS: add --server SERVER.")
    source = Path(args.source).expanduser() if server is None else None
    if source is not None and not source.exists():
        raise UserError(f"Source {source} does not exist.")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder for the results.")

    from jcs_viewer.batch.engine import BatchConfig, run_batch
    from jcs_viewer.batch.fingerprint import make_items
    from jcs_viewer.cli.analyze_cmd import settings_options
    from jcs_viewer.pipeline import AnalysisOptions

    if server is not None:
        items = pacs_source_items(args, server, out)
        if not items:
            raise UserError(f"No study on {server} matches the query.")
    else:
        paths, root = find_batch_studies(source, out)
        if not paths:
            raise UserError(f"No studies were found in {source}.")
        items = make_items(paths, root)
    options = AnalysisOptions(seg_weights=args.weights_seg, cls_weights=args.weights_cls,
                              lung_weights=args.weights_lung, **settings_options(args, quiet=args.quiet))
    config = BatchConfig(out=out, options=options, report=args.report, anonymize=args.anonymize,
                         resume=args.resume, workers=args.workers, ray_address=args.ray_address)
    # The loader's warnings are in each row's notes; on the terminal they would break the progress bar.
    logger, mute = logging.getLogger("jcs_viewer"), logging.NullHandler()
    logger.addHandler(mute)
    try:
        outcome = run_batch(items, config, None if args.quiet else BatchProgress(sys.stderr))
    finally:
        logger.removeHandler(mute)
    for note in outcome.notes:
        print(f"jcs-viewer: {note}", file=sys.stderr)
    ok, failed, skipped = (outcome.count("analysed", "ok"), outcome.count("analysed", "error"),
                           outcome.count("skipped"))
    failed_before = outcome.count("skipped", "error")  # failed on their input in an earlier run: not retried
    before = f"done before; {failed_before} of them failed" if failed_before else "done before"
    print(f"{len(outcome.rows)} of {outcome.total} studies in {out / 'summary.csv'}: {ok} analysed, {failed} failed, "
          f"{skipped} skipped ({before}); {outcome.seconds:.0f} s.")
    if outcome.interrupted:
        print(f"jcs-viewer: Interrupted with {outcome.total - len(outcome.rows)} of {outcome.total} studies to go; "
              "run the same command with --resume to continue.", file=sys.stderr)
        return 130
    errors = sum(row["status"] == "error" for row in outcome.rows)  # this run's and the skipped ones'
    if errors:
        print(f"jcs-viewer: {errors} of {outcome.total} studies failed; the error column of summary.csv says why.",
              file=sys.stderr)
        return 2
    return 0


def pacs_source_items(args: argparse.Namespace, server: str, out: Path) -> list:
    """The studies a PACS query finds, retrieved into ``out/.pacs`` (see :mod:`jcs_viewer.batch.pacs_source`)."""
    from jcs_viewer.batch.pacs_source import pacs_items
    from jcs_viewer.cli.pacs_cmd import server_and_ae

    server, ae_title = server_and_ae(args, server)
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    return pacs_items(server, ae_title, out, patient_id=args.patient_id, study_date=args.study_date,
                      timeout=args.timeout, say=say)


def find_batch_studies(source: Path, out: Path) -> tuple[list[Path], Path]:
    """The studies of a batch SOURCE and the folder their labels are relative to.

    A list file gives its lines (relative to its folder); a folder is walked with
    :func:`jcs_viewer.cli.analyze_cmd.find_studies` until every part is one study. The output folder, when it
    lies inside the source, is left out.
    """
    from jcs_viewer.cli.analyze_cmd import find_studies

    if source.is_file() and source.suffix.lower() in LIST_SUFFIXES:
        root = source.parent
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            from jcs_viewer.cli import UserError

            raise UserError(f"Cannot read the study list {source}: {getattr(exc, 'strerror', None) or exc}.") from None
        entries = (line.split("#", 1)[0].strip() for line in lines)
        return [root / Path(entry).expanduser() for entry in entries if entry], root
    skip = out.resolve()

    def walk(folder: Path) -> list[Path]:
        if folder.resolve() == skip:
            return []
        found = find_studies(folder)
        if found == [folder]:
            return found
        return [study for part in found for study in (walk(part) if part.is_dir() else [part])]

    return walk(source), source if source.is_dir() else source.parent


class BatchProgress:
    """Studies done/failed/skipped/left and the throughput: one redrawn line on a terminal, else a line a study."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.total = self.ok = self.failed = self.skipped = 0
        self.t0 = time.monotonic()

    def start(self, total: int, skipped: int) -> None:
        self.total, self.skipped, self.t0 = total, skipped, time.monotonic()
        if skipped:
            self._emit(f"{skipped} of {total} studies were done before (--resume): skipped")
        self._emit(self.line())

    def update(self, row: dict) -> None:
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        what = row["decision"] if row["status"] == "ok" else f"error: {row['error']}"
        self._emit(self.line() if self.tty else f"{self.line()}  {row['key']}: {what}")

    def line(self) -> str:
        finished = self.ok + self.failed + self.skipped
        minutes = (time.monotonic() - self.t0) / 60.0
        rate = (self.ok + self.failed) / minutes if minutes > 0 else 0.0
        filled = int(round(self.WIDTH * finished / self.total)) if self.total else self.WIDTH
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {finished}/{self.total} done, {self.failed} failed, "
                f"{self.total - finished} left, {rate:.1f} studies/min")

    def _emit(self, text: str) -> None:
        self.stream.write(f"\r{text}   " if self.tty else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
