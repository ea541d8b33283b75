"""``jcs-viewer analyze``: run the JCS pipeline headless and write the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jcs_viewer.cli import path_argument
from jcs_viewer.settings import DEVICES, SLICE_SCORES  # the standard library only: --help stays instant

HELP = "analyse a study (or a folder of studies) without the GUI and write results.json, CSV and NIfTI masks"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", type=path_argument,
                        help="DICOM folder/file, NIfTI/MHA/NRRD file, image folder, "
                        "or a folder whose sub-folders are studies (analysed one after another)")
    parser.add_argument("--out", required=True, metavar="DIR", type=path_argument,
                        help="output folder (one sub-folder per study "
                        "when STUDY holds several)")
    parser.add_argument("--device", choices=DEVICES, help="inference device (default: the settings file's, "
                        "normally auto)")
    parser.add_argument("--weights-seg", metavar="NAME|PATH", help="segmentation weights (default: the shipped ones)")
    parser.add_argument("--weights-cls", metavar="NAME|PATH", help="classification weights (default: the shipped ones)")
    parser.add_argument("--weights-lung", metavar="NAME|PATH", help="lung segmentation weights, read for every "
                        "study (default: the shipped ones, one for HU studies and one for 8-bit images)")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME|PATH|DIR",
                        help="weights for whichever task they are, or a folder of weights to search first "
                        "(repeatable)")
    parser.add_argument("--slice-score", choices=SLICE_SCORES, help="what makes a slice positive: 'joint' (the "
                        "classifier's probability and the segmenter's lesion evidence, averaged; every slice is "
                        "segmented) or 'classifier' (the paper's flow) (default: the settings file's, normally joint)")
    parser.add_argument("--all-slices", action="store_true", default=None, help="with --slice-score classifier, "
                        "segment every slice, not only flagged ones (default: the settings file's choice)")
    parser.add_argument("--threshold", type=int, metavar="N", help="patient is positive when more than N slices "
                        "are positive (default: the settings file's, else scaled from the paper's 25, see "
                        "results.json)")
    parser.add_argument("--slice-cutoff", type=float, metavar="P", help="slice probability from which a slice "
                        "counts as positive (default: the settings file's, normally 0.5)")
    parser.add_argument("--series", metavar="UID", help="DICOM series to analyse (default: the largest CT series)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="slices per forward pass (default: automatic)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--session", metavar="FILE", type=path_argument,
                        help="a reader's session file (.jcssession, saved by the "
                        "viewer): its edited lesion mask, review states and notes are used for every output "
                        "(the AI mask is kept as lesion_mask_ai.nii.gz)")
    parser.add_argument("--report", action="store_true", help="also write the annotated PDF report (report.pdf) and, "
                        "for DICOM studies, the DICOM SEG of lesions and lungs (lesion_seg.dcm)")
    parser.add_argument("--prior", metavar="STUDY", type=path_argument,
                        help="an earlier study of the same patient: analysed too, "
                        "registered by the lungs and compared (lesion volume and involvement per lung then, now and "
                        "the change): comparison.json and, with --report, the report's Comparison section")
    parser.add_argument("--anonymize", action="store_true", help="remove patient name, ID, birth date and "
                        "accession number from the report and the DICOM SEG, SR and PDF")
    parser.add_argument("--send", metavar="SERVER", help="with --report, store the DICOM SEG, the SR of the "
                        "quantities and the report (Encapsulated PDF) on this PACS, in the source study: "
                        "AET@HOST:PORT or http(s)://HOST/dicom-web")
    from jcs_viewer.cli.pacs_cmd import add_server_options

    add_server_options(parser, required=True)


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError

    check_decision_options(args)
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    source = Path(args.study).expanduser()
    if not source.exists():
        raise UserError(f"Study path {source} does not exist.")
    session = getattr(args, "session", None)
    if session is not None and not Path(session).expanduser().is_file():
        what = "is not a file" if Path(session).expanduser().exists() else "does not exist"
        raise UserError(f"Session file {session} {what}.")
    prior = getattr(args, "prior", None)
    if prior is not None and not Path(prior).expanduser().exists():
        raise UserError(f"Prior study {prior} does not exist.")

    from jcs_viewer.errors import JCSError
    from jcs_viewer.interrupts import interrupt_deferred
    from jcs_viewer.pipeline import AnalysisOptions
    from jcs_viewer.pipeline.runner import load_models

    send = getattr(args, "send", None)
    if send is not None:
        from jcs_viewer.cli.pacs_cmd import server_and_ae
        from jcs_viewer.pacs.client import echo

        if not getattr(args, "report", False):
            raise UserError("--send stores the DICOM SEG, SR and report: add --report.")
        send = echo(*server_and_ae(args, send), timeout=args.timeout)  # a wrong server fails now, not after the run
    seg, cls, lung = _resolve_weights(args)
    options = AnalysisOptions(seg_weights=seg, cls_weights=cls, lung_weights=lung, batch_size=args.batch_size,
                              **settings_options(args, quiet=args.quiet))
    studies = find_studies(source)
    if session is not None and len(studies) > 1:
        raise UserError("--session belongs to one study; give that study, not a folder of studies.")
    if prior is not None and len(studies) > 1:
        raise UserError("--prior is compared with one study; give that study, not a folder of studies.")
    out_root = Path(args.out).expanduser()
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"--out {out_root} is a file, not a folder: give a folder for the results.")
    bar = None if args.quiet else ProgressBar(sys.stderr)
    with interrupt_deferred():  # Ctrl+C stops before the first study, never inside an import
        import jcs_viewer.report.bundle  # noqa: F401 - what each study below imports

        models = load_models(options)  # once for every study; errors here are one sentence (exit 2)
    failures = 0
    for study in studies:
        out_dir = out_root if len(studies) == 1 else out_root / study.name
        try:
            analyze_one(study, out_dir, options, models, bar, args.series, session=session,
                        report=getattr(args, "report", False), anonymize=getattr(args, "anonymize", False),
                        prior=None if prior is None else Path(prior).expanduser())
            if send is not None:
                send_results(out_dir, send, args)
        except JCSError as exc:
            if len(studies) == 1:
                raise
            failures += 1
            print(f"jcs-viewer: {study.name}: {exc}", file=sys.stderr)
    return 2 if failures else 0


def analyze_one(study: Path, out_dir: Path, options, models, bar, series_uid: str | None = None, cancel=None,
                session: str | Path | None = None, report: bool = False, anonymize: bool = False,
                prior: Path | None = None):
    """Load, analyse and write one study (:func:`jcs_viewer.report.bundle.analyze_and_write`), then say what came
    out: the decision (its reason first), the volumes, the comparison with a ``prior`` study, and every note."""
    from jcs_viewer.report.bundle import analyze_and_write

    result, written = analyze_and_write(study, out_dir, options, models, bar, series_uid, cancel, session=session,
                                        report=report, anonymize=anonymize, prior=prior)
    if bar is not None:
        bar.finish()
    for note in written.notes:
        print(f"  note: {study.name}: {note}")
    q = result.quant
    if result.decision_reason:  # the reason comes first: the numbers below do not speak for the patient
        print(f"{study.name}: {result.decision}: {result.decision_reason}")
    lesions = (f"lesions {q.lesion_volume_ml['total']:.1f} mL, {q.involvement_percent['total']:.1f} % of"
               if result.lesions_measured else "lesions not measured (no slice was analysed);")
    count = f"{result.positive_slices} positive slice{'' if result.positive_slices == 1 else 's'}"
    rule = "no threshold: a single slice" if result.n_slices <= 1 else f"threshold {result.threshold}"
    print(
        f"{study.name}: {result.decision} ({count}, {rule}); "
        f"{lesions} {q.lung_volume_ml['total']:.0f} mL lungs; {result.timings.get('total', 0.0):.1f} s -> {out_dir}"
    )
    for message in result.messages:
        print(f"  note: {message}")
    if written.comparison is not None:
        print_comparison(written.comparison)
    return result


def print_comparison(comparison) -> None:
    """The then / now / change table, aligned, with the interval, the registration and the notes."""
    print(f"Comparison with the prior study, {comparison.interval()}; {comparison.registration()}:")
    rows = [("", "prior", "current", "change"), *comparison.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + row[0].ljust(widths[0]) + "".join("  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:])))
    for note in comparison.notes:
        print(f"  note: {note}")


def send_results(out_dir: Path, server, args: argparse.Namespace) -> None:
    """Store the run's DICOM outputs (SEG, SR, Encapsulated PDF) on ``server``; says what went."""
    from jcs_viewer.cli.pacs_cmd import server_and_ae
    from jcs_viewer.errors import JCSError
    from jcs_viewer.pacs.client import send_files
    from jcs_viewer.report.bundle import DICOM_OUTPUT_NAMES

    files = [out_dir / name for name in DICOM_OUTPUT_NAMES if (out_dir / name).is_file()]
    if not files:
        raise JCSError(f"Nothing was sent to {server}: this study has no DICOM outputs (they need a DICOM source).")
    send_files(server, files, server_and_ae(args, str(server))[1], timeout=args.timeout)
    print(f"Sent {', '.join(f.name for f in files)} to {server}.")


def check_decision_options(args: argparse.Namespace) -> None:
    """``--threshold`` and ``--slice-cutoff`` within their ranges, else one sentence (``analyze`` and ``batch``)."""
    from jcs_viewer.cli import UserError

    if args.threshold is not None and args.threshold < 0:
        raise UserError("--threshold must be zero or a positive number of slices.")
    if args.slice_cutoff is not None and not 0.0 <= args.slice_cutoff <= 1.0:
        raise UserError("--slice-cutoff must lie between 0 and 1.")


def settings_options(args: argparse.Namespace, quiet: bool = False) -> dict:
    """Device, thresholds and slice coverage: the command line's, else the reader's settings file.

    The file is the one the viewer's Settings dialog writes (:func:`jcs_viewer.settings.settings_path`),
    so a headless run decides like the app. Values the file holds but the pipeline cannot use (an
    unknown device, a cut-off outside 0..1) fall back to the built-in defaults with a note on stderr.
    """
    from jcs_viewer.settings import Settings, load_checked, settings_path

    (saved, notes), defaults = load_checked(), Settings()
    options = {
        "device": args.device if args.device is not None else saved.device,
        "threshold": args.threshold if args.threshold is not None else saved.slice_threshold,
        "slice_cutoff": args.slice_cutoff if args.slice_cutoff is not None else saved.slice_cutoff,
        "slice_score": args.slice_score if args.slice_score is not None else saved.slice_score,
        "segment_all_slices": bool(args.all_slices) or saved.segment_all_slices,
    }
    used = {key: value for key, value, field in (
        ("device", saved.device, "device"), ("threshold", saved.slice_threshold, "slice_threshold"),
        ("slice cut-off", saved.slice_cutoff, "slice_cutoff"), ("slice score", saved.slice_score, "slice_score"),
        ("segment all slices", saved.segment_all_slices, "segment_all_slices"))
        if value != getattr(defaults, field)}
    if not quiet and (notes or used):
        where = settings_path()
        for note in notes:
            print(f"jcs-viewer: {where}: {note}.", file=sys.stderr)
        if used:
            listed = ", ".join(f"{k} {v}" for k, v in used.items())
            print(f"Settings from {where}: {listed} (command-line options win).", file=sys.stderr)
    return options


def find_studies(source: Path) -> list[Path]:
    """The studies under ``source``: itself, or each sub-folder when it holds several studies.

    A folder is one study when it has no sub-folders, when its DICOM files all belong to one
    StudyInstanceUID (series may sit in sub-folders), or when it holds image/volume files
    itself. Otherwise every non-hidden sub-folder is a study.

    Raises:
        StudyLoadError: ``source`` cannot be listed (permission denied, say).
    """
    from jcs_viewer.errors import StudyLoadError
    from jcs_viewer.io.loader import check_study_path

    if check_study_path(source).is_file():
        return [source]
    try:
        subdirs = sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as exc:
        raise StudyLoadError(f"Cannot read the folder {source}: {exc.strerror or exc}.") from None
    if not subdirs:
        return [source]
    from jcs_viewer.io import scan_folder

    entries = scan_folder(source)
    if entries:
        if len({e.info.study_uid for e in entries}) <= 1:
            return [source]
        return subdirs
    if any(f.is_file() and not f.name.startswith(".") for f in source.iterdir()):
        return [source]
    return subdirs


def _resolve_weights(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """``(seg, cls, lung)`` weights from ``--weights-seg/-cls/-lung`` and the task-agnostic ``--weights``."""
    from jcs_viewer.cli import UserError

    chosen = {"seg": args.weights_seg, "cls": args.weights_cls, "lung": args.weights_lung}
    if args.weights:
        from jcs_viewer.models import registry

        labels = {"seg": "segmentation", "cls": "classification", "lung": "lung"}
        for item in args.weights:
            path = Path(item).expanduser()
            if path.is_dir():
                registry.add_weights_dir(path)
                continue
            task = _task_of(item, path, registry)
            if chosen[task] is not None and chosen[task] != item:
                raise UserError(f"Two {labels[task]} weights were given ({chosen[task]} and {item}); pass one.")
            chosen[task] = item
    return chosen["seg"], chosen["cls"], chosen["lung"]


def _task_of(item: str, path: Path, registry) -> str:
    from jcs_viewer.errors import ModelLoadError

    if path.is_file():
        resolved = path.resolve()
        for entry in registry.list_weights(extra_dirs=(resolved.parent,)):
            if entry.path.resolve() == resolved:
                return entry.task
        entry = registry.official_entry(resolved)
        if entry is None:
            raise ModelLoadError(f"{path.name} is neither an official JCS checkpoint nor listed in a weights manifest.")
        return entry.task
    return registry.get_weights(item).task


class ProgressBar:
    """A one-line progress bar on a terminal (a line per finished stage otherwise)."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_stage = None

    def __call__(self, event) -> None:
        if event.message and event.total == 0:  # a note (e.g. the GPU fall-back)
            self._write_line(f"note: {event.message}")
            return
        from jcs_viewer.pipeline.progress import STAGE_LABELS

        label = STAGE_LABELS.get(event.stage, event.stage)
        if self.tty:
            filled = int(round(self.WIDTH * event.fraction))
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r{label:<22} [{bar}] {event.done}/{event.total}   ")
            self.stream.flush()
            if event.done >= event.total:
                self.stream.write("\n")
        elif event.done >= event.total and event.stage != self._last_stage:
            self._write_line(f"{label}: done ({event.total})")
            self._last_stage = event.stage

    def _write_line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self._last_stage = None
