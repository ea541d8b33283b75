"""Measure the time from process start to the main window's first paint.

Each run starts a fresh interpreter that does what ``jcs-viewer gui`` does (the CLI module, then
``ensure_app()``, then ``MainWindow``), shows the window and quits on its first paint. Usage::

    .venv/bin/python packaging/measure_startup.py [--runs 5] [--platform offscreen|xcb] [--importtime N]
    .venv/bin/python packaging/measure_startup.py --exe dist/jcs-viewer/jcs-viewer   # the bundle
    .venv/bin/python packaging/measure_startup.py --exe .venv/bin/jcs-viewer         # the installed command

``--exe`` runs that ``jcs-viewer`` itself (``gui`` with ``JCS_VIEWER_FIRST_PAINT=1``: the real start-up
path, e.g. a PyInstaller bundle). Every run reports which heavy packages (torch, VTK, SimpleITK, ...) were
imported before the first paint: none should be. ``--importtime N`` also prints the N slowest imports
(cumulative, ``python -X importtime``) of one run (not with ``--exe``). Settings and data folders are
throw-away ones, so no saved layout or session changes what is measured.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "vtkmodules", "SimpleITK", "pydicom", "reportlab", "highdicom")

# The child mirrors jcs_viewer.cli -> gui_cmd.run -> app.run_viewer, with throw-away settings.
CHILD = r"""
import os, sys, time
t_main = time.time()
import jcs_viewer.cli  # the console script's first import
from jcs_viewer.gui.app import ensure_app
app = ensure_app()
from PySide6.QtCore import QSettings
from jcs_viewer.gui.main_window import MainWindow
from jcs_viewer.gui.startup import install_first_paint_probe, process_start_time
window = MainWindow(settings=QSettings(os.environ["MEASURE_INI"], QSettings.Format.IniFormat))
window.resize(1440, 900)
def report(seconds):
    heavy = [m for m in %(heavy)r if m in sys.modules]
    print(f"first-paint-s: {seconds:.3f} interpreter-s: {t_main - process_start_time():.3f} "
          f"paint-at: {time.time():.3f} heavy: {','.join(heavy) or '-'}",
          file=sys.stderr, flush=True)
install_first_paint_probe(window, on_paint=report)
window.show()
app.exec()
""" % {"heavy": HEAVY}


def run_once(python: str, platform: str, importtime: bool = False,
             exe: str | None = None) -> tuple[float, float, float | None, str, str]:
    """One fresh-process run (of ``exe gui`` when given, else of :data:`CHILD` in ``python``).

    Returns:
        (first paint s by the child's clock from its own start, the same from just before the parent
        spawned it, interpreter start-up s (None with ``exe``), heavy modules imported, stderr).
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, QT_QPA_PLATFORM=platform, MEASURE_INI=str(Path(tmp) / "settings.ini"),
                   JCS_VIEWER_CONFIG=tmp, JCS_VIEWER_DATA=str(Path(tmp) / "data"), JCS_VIEWER_FIRST_PAINT="1")
        if exe:
            cmd = [exe, "gui"]
        else:
            cmd = [python, *(["-X", "importtime"] if importtime else []), "-c", CHILD]
        spawned = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        ended = time.time()
    if exe:
        m = re.search(r"first-paint-s: ([\d.]+)(?: heavy: (\S+))?", proc.stderr)
        if not m:
            raise SystemExit(f"{exe}: no first paint reported (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        # The bundle quits right after painting: time to exit bounds the paint from above.
        return float(m.group(1)), ended - spawned, None, m.group(2) or "?", proc.stderr
    m = re.search(r"first-paint-s: ([\d.]+) interpreter-s: ([-\d.]+) paint-at: ([\d.]+) heavy: (\S+)", proc.stderr)
    if not m:
        raise SystemExit(f"no first paint reported (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return float(m.group(1)), float(m.group(3)) - spawned, float(m.group(2)), m.group(4), proc.stderr


def slowest_imports(stderr: str, n: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the ``n`` top-level-ish imports with the largest cumulative time."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)), m.group(4)))
    rows.sort(reverse=True)
    return [(cum, self_, ("  " * (depth - 1)) + name) for cum, self_, depth, name in rows[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default="offscreen", help="Qt platform plugin (offscreen, or xcb under Xvfb)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--exe", metavar="JCS_VIEWER", help="measure this jcs-viewer executable (a bundle's, or "
                        "the installed console script) instead of the CHILD script in --python")
    parser.add_argument("--importtime", type=int, default=0, metavar="N")
    args = parser.parse_args()
    run_once(args.python, args.platform, exe=args.exe)  # warm the file cache: we report warm starts
    times, heavy_runs = [], 0
    for i in range(args.runs):
        t, wall, interp, heavy, _ = run_once(args.python, args.platform, exe=args.exe)
        times.append(t)
        heavy_runs += heavy not in ("-", "?")  # "?": a build whose probe does not list them
        if interp is None:
            print(f"run {i + 1}: first paint {t:.3f} s after process start (process ran {wall:.3f} s; "
                  f"heavy imported: {heavy})")
        else:
            print(f"run {i + 1}: first paint {t:.3f} s after process start ({wall:.3f} s after spawn; interpreter "
                  f"start {interp:.3f} s; heavy imported: {heavy})")
    print(f"median first paint: {statistics.median(times):.3f} s over {args.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}) on platform {args.platform}"
          f"{' of ' + args.exe if args.exe else ''}")
    if heavy_runs:
        print(f"WARNING: {heavy_runs} run(s) imported heavy packages before the first paint")
    if args.importtime and not args.exe:
        err = run_once(args.python, args.platform, importtime=True)[-1]
        print("slowest imports (cumulative ms, self ms), one run under -X importtime:")
        for cum, self_, name in slowest_imports(err, args.importtime):
            print(f"  {cum / 1000:8.1f} {self_ / 1000:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
