"""The real viewer process is killed (SIGKILL) 2.5 s after a series of brush strokes; a restart
restores every stroke. Strokes go through the real EditController (JCS_VIEWER_EDIT_SCRIPT)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

# The viewer as `jcs-viewer gui --demo` starts it, but analysed from the demo's ground-truth masks:
# the shipped weights may be absent, and the kill test is about the session, not the model.
APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from jcs_viewer.gui.app import ensure_app
    from jcs_viewer.gui.main_window import MainWindow
    from jcs_viewer.gui.synthetic import synthetic_result
    from jcs_viewer.io import load_study
    from jcs_viewer.io.phantom import demo_study_path

    root = Path(demo_study_path())

    def analyze(volume, options=None, progress=None, cancel=None, models=None):
        lesion = load_study(root / "ground_truth" / "lesion_mask.nii.gz").array.astype(np.uint8)
        lung = load_study(root / "ground_truth" / "lung_mask.nii.gz").array.astype(np.uint8)
        return synthetic_result(volume, lung, lesion)

    app = ensure_app()
    window = MainWindow(analyze=analyze)
    window.show()
    window.open_demo()
    sys.exit(app.exec())
    """
)

STROKES = [
    {"z": 60, "points": [[150, 220], [200, 240], [250, 260]], "radius_mm": 4.0},
    {"z": 64, "points": [[330, 200], [360, 260]], "radius_mm": 6.0},
    {"z": 64, "points": [[345, 230], [350, 240]], "radius_mm": 2.0, "erase": True},
    {"z": 70, "points": [[180, 300]], "radius_mm": 3.0},
    {"z": 75, "points": [[160, 200], [170, 330]], "radius_mm": 2.5},
]


def start(tmp_path: Path, script: Path) -> tuple[subprocess.Popen, queue.Queue]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", JCS_VIEWER_DATA=str(tmp_path / "data"),
               JCS_VIEWER_CONFIG=str(tmp_path / "config"), XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               JCS_VIEWER_RESTORE_SESSION="always", JCS_VIEWER_EDIT_SCRIPT=str(script))
    proc = subprocess.Popen([sys.executable, "-c", APP], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue, prefix: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line within {timeout} s; output: {seen[-20:]}")


def test_sigkill_after_strokes_loses_nothing(tmp_path):
    strokes = tmp_path / "strokes.json"
    strokes.write_text(json.dumps({"strokes": STROKES}))
    proc, lines = start(tmp_path, strokes)
    try:
        ready = wait_for(lines, "session-ready")
        assert "restored=0" in ready  # first run: no session yet
        ai_sha = ready.split("sha=")[1]
        painted = wait_for(lines, "painted").split("sha=")[1]
        assert painted != ai_sha
        time.sleep(2.5)  # the autosave promise: within 2 s of the last change
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    sessions = list((tmp_path / "data" / "sessions").glob("*.jcssession"))
    assert len(sessions) == 1 and not list((tmp_path / "data" / "sessions").glob(".session-*"))

    # Restart without strokes: the session is restored with every stroke.
    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({"strokes": []}))
    proc, lines = start(tmp_path, empty)
    try:
        ready = wait_for(lines, "session-ready")
    finally:
        proc.kill()
        proc.wait(10)
    assert "restored=1" in ready
    assert ready.split("sha=")[1] == painted

    from jcs_viewer.session.store import load_session

    mask = load_session(sessions[0]).edited_mask
    assert mask[60, 240, 200] and mask[64, 215, 338] and mask[70, 300, 180] and mask[75, 260, 165]
    assert not mask[64, 235, 347]  # the erased spot stays erased
    assert np.count_nonzero(mask) > 0
