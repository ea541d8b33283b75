"""``jcs-viewer analyze``: run the JCS pipeline headless and write the results."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

HELP = "analyse a study (or a folder of studies) without the GUI and write results.json, CSV and NIfTI masks"
DEVICES = ("auto", "cpu", "cuda")
SLICE_SCORES = ("joint", "classifier")  # jcs_viewer.pipeline.options.SLICE_SCORES, without numpy at --help time


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", help="DICOM folder/file, NIfTI/MHA/NRRD file, image folder, "
                        "or a folder whose sub-folders are studies (analysed one after another)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (one sub-folder per study "
                        "when STUDY holds several)")
    parser.add_argument("--device", choices=DEVICES, help="inference device (default: the settings file's, "
                        "normally auto)")
    parser.add_argument("--weights-seg", metavar="NAME|PATH", help="segmentation weights (default: the shipped ones)")
    parser.add_argument("--weights-cls", metavar="NAME|PATH", help="classification weights (default: the shipped ones)")
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
    parser.add_argument("--session", metavar="FILE", help="a reader's session file (.jcssession, saved by the "
                        "viewer): its edited lesion mask, review states and notes are used for every output "
                        "(the AI mask is kept as lesion_mask_ai.nii.gz)")
    parser.add_argument("--report", action="store_true", help="also write the annotated PDF report (report.pdf) and, "
                        "for DICOM studies, the DICOM SEG of lesions and lungs (lesion_seg.dcm)")
    parser.add_argument("--anonymize", action="store_true", help="remove patient name, ID, birth date and "
                        "accession number from the report and the DICOM SEG")


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.cli import UserError

    if args.threshold is not None and args.threshold < 0:
        raise UserError("--threshold must be zero or a positive number of slices.")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    if args.slice_cutoff is not None and not 0.0 <= args.slice_cutoff <= 1.0:
        raise UserError("--slice-cutoff must lie between 0 and 1.")
    source = Path(args.study).expanduser()
    if not source.exists():
        raise UserError(f"Study path {source} does not exist.")
    session = getattr(args, "session", None)
    if session is not None and not Path(session).expanduser().is_file():
        raise UserError(f"Session file {session} does not exist.")

    from jcs_viewer.errors import JCSError
    from jcs_viewer.pipeline import AnalysisOptions
    from jcs_viewer.pipeline.runner import load_models

    seg, cls = _resolve_weights(args)
    options = AnalysisOptions(seg_weights=seg, cls_weights=cls, batch_size=args.batch_size,
                              **settings_options(args, quiet=args.quiet))
    studies = find_studies(source)
    if session is not None and len(studies) > 1:
        raise UserError("--session belongs to one study; give that study, not a folder of studies.")
    out_root = Path(args.out).expanduser()
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"--out {out_root} is a file, not a folder: give a folder for the results.")
    bar = None if args.quiet else ProgressBar(sys.stderr)
    models = load_models(options)  # once for every study; errors here are one sentence (exit 2)
    failures = 0
    for study in studies:
        out_dir = out_root if len(studies) == 1 else out_root / study.name
        try:
            analyze_one(study, out_dir, options, models, bar, args.series, session=session,
                        report=getattr(args, "report", False), anonymize=getattr(args, "anonymize", False))
        except JCSError as exc:
            if len(studies) == 1:
                raise
            failures += 1
            print(f"jcs-viewer: {study.name}: {exc}", file=sys.stderr)
    return 2 if failures else 0


#: written last when a run's outputs move into place: its presence says the set is complete.
COMPLETION_FILE = "results.json"
#: every file a run may write into its folder (a new run removes the ones it did not write again).
OUTPUT_NAMES = frozenset({COMPLETION_FILE, "arrays.npz", "per_slice.csv", "lesion_mask.nii.gz", "lung_mask.nii.gz",
                          "lesion_mask_ai.nii.gz", "report.pdf", "lesion_seg.dcm"})


@contextlib.contextmanager
def staged_outputs(out_dir: Path):
    """All or nothing: a run writes into ``<out>.incomplete`` beside ``out_dir``; only when every output is there
    do they move into ``out_dir`` (``results.json`` last), and the stage is removed.

    A failed or cancelled run removes its stage and leaves ``out_dir`` as it was; a killed run leaves the visibly
    named ``<out>.incomplete`` folder (cleared by the next run), never a partial set in ``out_dir``.
    """
    from jcs_viewer.errors import ExportError

    stage = out_dir.with_name(out_dir.name + ".incomplete")
    try:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    except OSError as exc:
        raise ExportError(f"Could not write the results to {out_dir}: {exc.strerror or exc}.") from None
    try:
        yield stage
        done = sorted(stage.iterdir(), key=lambda p: p.name == COMPLETION_FILE)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / COMPLETION_FILE).unlink(missing_ok=True)  # an older set is no longer complete
            for name in OUTPUT_NAMES - {p.name for p in done}:  # nor are the parts this run did not write
                (out_dir / name).unlink(missing_ok=True)
            for path in done:
                os.replace(path, out_dir / path.name)
        except OSError as exc:
            raise ExportError(f"Could not write the results to {out_dir}: {exc.strerror or exc}.") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def analyze_one(study: Path, out_dir: Path, options, models, bar, series_uid: str | None = None, cancel=None,
                session: str | Path | None = None, report: bool = False, anonymize: bool = False):
    """Load, analyse and write one study; nothing is written unless the analysis completes.

    With ``session`` (a viewer session file) the reader's edited mask, review states and notes
    drive every output; with ``report`` the PDF report (and, for DICOM studies, the DICOM SEG)
    are written too; with ``anonymize`` every output is de-identified (PS3.15 E.1: the report, the SEG
    and the study fields of results.json).
    """
    from jcs_viewer.io import load_study
    from jcs_viewer.io.export import export_csv, export_nifti
    from jcs_viewer.pipeline import analyze
    from jcs_viewer.session.headless import EditedOutputs, apply_session_file

    volume = load_study(study, series_uid=series_uid)
    result = analyze(volume, options, progress=bar, cancel=cancel, models=models)
    if bar is not None:
        bar.finish()
    outputs = EditedOutputs(result, result)
    if session is not None:
        outputs = apply_session_file(result, volume, Path(session).expanduser())  # before anything is written
        result = outputs.result
    seg_note = None
    pseudonyms = None
    if anonymize:  # one pseudonym map for results.json and the SEG (PS3.15 E.1, jcs_viewer.io.deidentify)
        import dataclasses

        from jcs_viewer.io.deidentify import Pseudonymizer

        pseudonyms = Pseudonymizer()
        result = dataclasses.replace(result, study=pseudonyms.study_fields(result.study))
    with staged_outputs(out_dir) as stage:
        result.save(stage)
        export_csv(result, stage / "per_slice.csv", review=outputs.review)
        export_nifti(result.lesion_mask, volume, stage / "lesion_mask.nii.gz")
        export_nifti(result.lung_mask, volume, stage / "lung_mask.nii.gz")
        if session is not None:
            export_nifti(outputs.ai_result.lesion_mask, volume, stage / "lesion_mask_ai.nii.gz")
        if report:
            from jcs_viewer.io.export import dicom_seg_unavailable, export_dicom_seg
            from jcs_viewer.report import write_report

            kwargs = outputs.report_kwargs()
            write_report(kwargs.pop("result"), volume, stage / "report.pdf", anonymize=anonymize, **kwargs)
            seg_note = dicom_seg_unavailable(volume)
            if seg_note is None:
                export_dicom_seg(volume, result.lesion_mask, result.lung_mask, stage / "lesion_seg.dcm",
                                 edited=session is not None, anonymize=anonymize, pseudonyms=pseudonyms)
    if seg_note is not None:
        print(f"  note: no lesion_seg.dcm for {study.name}: {seg_note}.")
    q = result.quant
    if result.decision_reason:  # the reason comes first: the numbers below do not speak for the patient
        print(f"{study.name}: {result.decision}: {result.decision_reason}")
    lesions = (f"lesions {q.lesion_volume_ml['total']:.1f} mL, {q.involvement_percent['total']:.1f} % of"
               if result.lesions_measured else "lesions not measured (no slice was analysed);")
    print(
        f"{study.name}: {result.decision} ({result.positive_slices} positive slices, threshold {result.threshold}); "
        f"{lesions} {q.lung_volume_ml['total']:.0f} mL lungs; {result.timings.get('total', 0.0):.1f} s -> {out_dir}"
    )
    for message in result.messages:
        print(f"  note: {message}")
    return result


def settings_options(args: argparse.Namespace, quiet: bool = False) -> dict:
    """Device, thresholds and slice coverage: the command line's, else the reader's settings file.

    The file is the one the viewer's Settings dialog writes (:func:`jcs_viewer.settings.settings_path`),
    so a headless run decides like the app. Values the file holds but the pipeline cannot use (an
    unknown device, a cut-off outside 0..1) fall back to the built-in defaults with a note on stderr.
    """
    from jcs_viewer.settings import Settings, settings_path

    saved, defaults = Settings.load(), Settings()
    notes = []
    if saved.device not in DEVICES:
        notes.append(f"device {saved.device!r} is not one of {', '.join(DEVICES)}; using {defaults.device}")
        saved.device = defaults.device
    if not 0.0 <= saved.slice_cutoff <= 1.0:
        notes.append(f"slice_cutoff {saved.slice_cutoff} is not between 0 and 1; using {defaults.slice_cutoff}")
        saved.slice_cutoff = defaults.slice_cutoff
    if saved.slice_score not in SLICE_SCORES:
        notes.append(f"slice_score {saved.slice_score!r} is not one of {', '.join(SLICE_SCORES)}; "
                     f"using {defaults.slice_score}")
        saved.slice_score = defaults.slice_score
    if saved.slice_threshold is not None and saved.slice_threshold < 0:
        notes.append(f"slice_threshold {saved.slice_threshold} is negative; using the automatic threshold")
        saved.slice_threshold = None
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
    """
    if source.is_file():
        return [source]
    subdirs = sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
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


def _resolve_weights(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``(seg, cls)`` weights from ``--weights-seg/--weights-cls`` and the task-agnostic ``--weights``."""
    from jcs_viewer.cli import UserError

    seg, cls = args.weights_seg, args.weights_cls
    if not args.weights:
        return seg, cls
    from jcs_viewer.models import registry

    for item in args.weights:
        path = Path(item).expanduser()
        if path.is_dir():
            registry.add_weights_dir(path)
            continue
        task = _task_of(item, path, registry)
        if task == "seg":
            if seg is not None and seg != item:
                raise UserError(f"Two segmentation weights were given ({seg} and {item}); pass one.")
            seg = item
        else:
            if cls is not None and cls != item:
                raise UserError(f"Two classification weights were given ({cls} and {item}); pass one.")
            cls = item
    return seg, cls


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
        if self.tty:
            filled = int(round(self.WIDTH * event.fraction))
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r{event.stage:<12} [{bar}] {event.done}/{event.total}   ")
            self.stream.flush()
            if event.done >= event.total:
                self.stream.write("\n")
        elif event.done >= event.total and event.stage != self._last_stage:
            self._write_line(f"{event.stage}: done ({event.total})")
            self._last_stage = event.stage

    def _write_line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self._last_stage = None
