"""``jcs-viewer pacs``: talk to a hospital PACS (echo, find, get, send) over DIMSE or DICOMweb."""

from __future__ import annotations

import argparse
import sys

from jcs_viewer.cli import path_argument

HELP = "query a PACS, retrieve a study from it, or store DICOM files on it (DIMSE or DICOMweb)"
SERVER_HELP = ("the PACS: AET@HOST:PORT (DICOM network) or http(s)://HOST/dicom-web (DICOMweb) (default: the first "
               "server in the settings file)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pacs_action", metavar="ACTION", required=True)
    actions = {
        "echo": "check that the PACS answers and accepts us",
        "find": "list the studies on the PACS",
        "get": "retrieve one study into a folder (then: jcs-viewer analyze DIR)",
        "send": "store DICOM files (or every .dcm file in folders) on the PACS",
    }
    for name, text in actions.items():
        p = sub.add_parser(name, help=text, description=text)
        add_server_options(p)
        if name == "find":
            p.add_argument("--patient-id", default="", metavar="ID", help="only this patient's studies (DICOM "
                           "wildcards * and ? allowed)")
            p.add_argument("--json", action="store_true", help="print the studies as JSON")
        elif name == "get":
            p.add_argument("--study-uid", required=True, metavar="UID", help="the StudyInstanceUID (see pacs find)")
            p.add_argument("--out", required=True, metavar="DIR", type=path_argument,
                           help="folder for the study's files")
            p.add_argument("--quiet", action="store_true", help="no progress bar")
        elif name == "send":
            p.add_argument("paths", nargs="+", metavar="PATH", type=path_argument, help="DICOM files or folders")


def add_server_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--server``, ``--ae-title`` and ``--timeout`` (``analyze --send`` shares them)."""
    if not required:
        parser.add_argument("--server", metavar="SERVER", help=SERVER_HELP)
    parser.add_argument("--ae-title", metavar="AET", help="our calling AE title (default: the settings file's, "
                        "normally JCSVIEWER); the PACS must know it")
    parser.add_argument("--timeout", type=seconds, default=30.0, metavar="S", help="seconds to wait for the PACS "
                        f"(default 30, at most {MAX_TIMEOUT_S:g})")


#: a PACS that has not answered in an hour will not; beyond a few hundred years a socket's timeout overflows
MAX_TIMEOUT_S = 3600.0


def seconds(text: str) -> float:
    """argparse ``type`` of ``--timeout``: a number of seconds in (0, MAX_TIMEOUT_S]; NaN and inf are refused
    here (``socket.settimeout`` raised ValueError / OverflowError for them, past a ``<= 0`` check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 < value <= MAX_TIMEOUT_S:  # False for NaN
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    return value


def server_and_ae(args: argparse.Namespace, server: str | None = None) -> tuple[str, str]:
    """The server text and our AE title: the command line's, else the settings file's."""
    from jcs_viewer.cli import UserError
    from jcs_viewer.settings import Settings

    saved = Settings.load()
    server = server or getattr(args, "server", None) or next(iter(saved.pacs_servers), None)
    if not server:
        raise UserError("Name the PACS with --server AET@HOST:PORT or --server http(s)://HOST/dicom-web (or add "
                        "it to the servers in Settings).")
    return server, (args.ae_title or saved.pacs_ae_title or "JCSVIEWER")


def run(args: argparse.Namespace) -> int:
    from jcs_viewer.pacs import client

    server, ae_title = server_and_ae(args)
    if args.pacs_action == "echo":
        parsed = client.echo(server, ae_title, timeout=args.timeout)
        print(f"{parsed} answers" + (f" (as {ae_title})." if parsed.kind == "dimse" else "."))
    elif args.pacs_action == "find":
        _print_studies(client.find_studies(server, ae_title, patient_id=args.patient_id, timeout=args.timeout),
                       args.json)
    elif args.pacs_action == "get":
        bar = None if args.quiet else transfer_bar("retrieve")
        files = client.retrieve_study(server, args.study_uid, args.out, ae_title, progress=bar,
                                      timeout=args.timeout)
        print(f"{len(files)} instances of study {args.study_uid} -> {args.out}")
        print(f"Analyse it with: jcs-viewer analyze {args.out} --out RESULTS")
    else:
        files = dicom_files(args.paths)
        sent = client.send_files(server, files, ae_title, timeout=args.timeout)
        print(f"{sent} files stored on {server}.")
    return 0


def dicom_files(paths: list[str]) -> list:
    """Files as given, and every file under the given folders (sorted), skipping hidden ones."""
    from pathlib import Path

    from jcs_viewer.cli import UserError

    out = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                              and p.suffix.lower() in (".dcm", "")))
        elif path.is_file():
            out.append(path)
        else:
            raise UserError(f"{path} does not exist.")
    return out


def transfer_bar(stage: str):
    """A progress callback ``(done, total)`` drawing the analyse command's bar on stderr."""
    from types import SimpleNamespace

    from jcs_viewer.cli.analyze_cmd import ProgressBar

    bar = ProgressBar(sys.stderr)

    def report(done: int, total: int) -> None:
        total = max(total, done, 1)
        bar(SimpleNamespace(stage=stage, done=done, total=total, fraction=done / total, message=""))
    return report


def _print_studies(rows: list[dict], as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps(rows, indent=1))
        return
    if not rows:
        print("No study found.")
        return
    for row in rows:
        count = row["NumberOfStudyRelatedInstances"]
        print(f"{row['StudyInstanceUID']}  {row['PatientID'] or '-'}  {row['PatientName'] or '-'}  "
              f"{row['StudyDate'] or '-'}  {'/'.join(row['ModalitiesInStudy']) or '-'}  "
              f"{'?' if count is None else count} instances")
