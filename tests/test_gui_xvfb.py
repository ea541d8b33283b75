"""The real application in a subprocess on a real X display (CI: ``xvfb-run -a pytest``).

Starts ``jcs-viewer --demo`` (the README's command, not analysed) and ``jcs-viewer gui STUDY`` on the demo patient
at fewer slices (analysed), each with ``--screenshot PNG --quit-after-analysis`` and ``QT_QPA_PLATFORM=xcb``, and
checks the PNG: expected size, not blank, image and panels drawn, overlays where analysed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.xvfb

SCREENSHOT_SIZE = (1440, 900)


def _pipeline_can_run() -> bool:
    """Whether the real pipeline and default weights for both tasks are installed."""
    try:
        from jcs_viewer.models.registry import default_weights
        from jcs_viewer.pipeline import analyze  # noqa: F401
    except ImportError:
        return False
    try:
        return default_weights("cls") is not None and default_weights("seg") is not None
    except Exception:  # noqa: BLE001 - an unreadable registry means no default weights
        return False


def _png_pixels(path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable PNG"
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3).copy()


def _screenshot(tmp_path, *args: str) -> np.ndarray:
    """``jcs-viewer ARGS --screenshot PNG --quit-after-analysis`` on the X display, its own settings folder in
    ``tmp_path``; checks the exit and the drawn window, returns the pixels."""
    display = os.environ.get("DISPLAY")
    if not display:
        pytest.skip("no X display: run under `xvfb-run -a pytest` to test the real window (QT_QPA_PLATFORM=xcb)")
    png = tmp_path / "viewer.png"
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=display, JCS_VIEWER_DATA=str(tmp_path / "data"),
               JCS_VIEWER_CONFIG=str(tmp_path / "config"))
    code = "import sys; from jcs_viewer.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, *args, "--screenshot", str(png), "--quit-after-analysis"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"viewer exited {proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    pixels = _png_pixels(png)
    assert pixels.shape[:2] == (SCREENSHOT_SIZE[1], SCREENSHOT_SIZE[0])
    gray = pixels.mean(axis=2)
    assert gray.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, "screenshot looks blank"
    # The slice view (left, upper part) shows the CT: dark air, bright bone, many grey levels.
    ct = gray[80:600, 200:900]
    assert ct.min() < 40 and ct.max() > 200 and len(np.unique(ct.astype(np.uint8))) > 60
    # The right-hand panels are drawn (light background with dark text), not left empty.
    panel = gray[80:860, 1060:1430]
    assert panel.mean() > 150 and (panel < 100).mean() > 0.002
    return pixels


def test_the_readme_command_opens_the_built_in_demo(tmp_path):
    """``jcs-viewer --demo`` (the README's first command, no sub-command) opens the built-in demo study; not
    analysed here, the analysed window is the next test's."""
    from jcs_viewer.io.phantom import demo_study_path
    from jcs_viewer.settings import SettingsStore

    _screenshot(tmp_path, "--demo", "--no-analysis")
    recent = SettingsStore(tmp_path / "config" / "settings.ini").values.recent_studies
    assert recent and Path(recent[0]) == demo_study_path() / "dicom"


def test_real_window_screenshot(tmp_path):
    from jcs_viewer.io.phantom import write_demo_study

    # The demo patient at 24 slices of 128 px: the window is the same, the analysis a tenth of the demo's.
    study = write_demo_study(tmp_path / "demo", n_slices=24, size=128, seed=0) / "dicom"
    analysed = _pipeline_can_run()
    pixels = _screenshot(tmp_path, "gui", str(study), *(() if analysed else ("--no-analysis",)))
    if analysed:
        # An analysed study has coloured overlays (activation map / lesions) somewhere in the image.
        rgb = pixels[80:600, 200:900].astype(int)
        saturation = rgb.max(axis=2) - rgb.min(axis=2)
        assert (saturation > 80).mean() > 0.001
