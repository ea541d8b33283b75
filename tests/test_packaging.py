"""Desktop packaging: icon set, desktop entry, its installer, and (slow) the PyInstaller bundle."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
ICONS = REPO / "resources" / "icons"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def read_desktop(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


@pytest.mark.parametrize("size", SIZES)
def test_icon_png_sizes_are_drawn(size):
    from PIL import Image

    with Image.open(ICONS / f"jcs-viewer-{size}.png") as im:
        assert im.size == (size, size) and im.mode == "RGBA"
        alpha = im.getchannel("A")
        assert alpha.getpixel((0, 0)) == 0  # rounded corner is transparent
        assert alpha.getpixel((size // 2, size // 2)) == 255  # the mark is opaque
        assert len(im.convert("RGB").getcolors(size * size)) > 8  # a drawing, not a flat square


def test_svg_master_is_valid_and_matches_the_pngs(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(ICONS / "jcs-viewer.svg"))
    assert renderer.isValid()
    image = QImage(64, 64, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    shipped = QImage(str(ICONS / "jcs-viewer-64.png")).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    # The PNGs are renders of the SVG: re-run packaging/make_icons.py after editing it.
    diff = sum(abs(image.pixelColor(x, y).red() - shipped.pixelColor(x, y).red())
               for x in range(0, 64, 4) for y in range(0, 64, 4))
    assert diff / 256 < 8


def test_desktop_entry_fields():
    entry = read_desktop(PACKAGING / "jcs-viewer.desktop")
    assert entry["Type"] == "Application" and entry["Icon"] == "jcs-viewer"
    assert entry["Exec"].split()[0] == "jcs-viewer" and entry["Exec"].split()[1] in ("%f", "%F")
    assert "MedicalSoftware" in entry["Categories"].split(";")
    assert "research use" in entry["Comment"].lower()
    assert entry["Terminal"] == "false"


def test_desktop_entry_validates():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate not installed (Debian package desktop-file-utils)")
    proc = subprocess.run([tool, str(PACKAGING / "jcs-viewer.desktop")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_install_and_uninstall_desktop_entry(tmp_path):
    data = tmp_path / "share dir"
    exe = tmp_path / "app dir" / "jcs-viewer"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = dict(os.environ, XDG_DATA_HOME=str(data), HOME=str(tmp_path))
    script = PACKAGING / "install_desktop_entry.sh"
    subprocess.run(["bash", str(script), str(exe)], env=env, check=True, capture_output=True)
    installed = data / "applications" / "jcs-viewer.desktop"
    entry = read_desktop(installed)
    assert entry["Exec"] == f'"{exe}" %f' and entry["TryExec"] == str(exe)
    for size in SIZES:
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "jcs-viewer.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "jcs-viewer.svg").is_file()
    if shutil.which("desktop-file-validate"):
        assert subprocess.run(["desktop-file-validate", str(installed)], capture_output=True).returncode == 0
    subprocess.run(["bash", str(script), "--uninstall"], env=env, check=True, capture_output=True)
    assert not installed.exists()
    assert not list((data / "icons").rglob("jcs-viewer.*"))


def test_install_refuses_a_missing_executable(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path), PATH="/usr/bin:/bin")
    proc = subprocess.run(["bash", str(PACKAGING / "install_desktop_entry.sh"), str(tmp_path / "nope")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "no jcs-viewer executable" in proc.stderr
    assert not (tmp_path / "applications").exists()


# --- the bundle (minutes: PyInstaller analyses torch, Qt and VTK) ---------------------------------


def shipped_weights_complete() -> bool:
    manifest = REPO / "weights" / "manifest.json"
    if not manifest.is_file():
        return False
    records = json.loads(manifest.read_text()).get("weights", [])
    tasks = {r["task"] for r in records if r.get("default") and (REPO / "weights" / r["file"]).is_file()}
    return tasks >= {"seg", "cls"}


def make_tiny_weights(folder: Path) -> None:
    """Real lite models, randomly initialised, registered in ``folder`` (used when none are shipped)."""
    import torch

    from jcs_viewer.models import build
    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry, save_weights

    torch.manual_seed(0)
    for name, arch, task, config, size in (("tiny-cls", "jcs_cls_lite", "cls", {"width": 0.25}, 64),
                                           ("tiny-seg", "jcs_seg_lite", "seg", {"width": 0.125}, 64)):
        digest = save_weights(build(arch, **config), folder / f"{name}.safetensors")
        add_manifest_entry(WeightsEntry(name=name, task=task, arch=arch, file=f"{name}.safetensors", sha256=digest,
                                        config=config, input_size=size, window=(-600.0, 1500.0), default=True,
                                        root=folder), folder)


@pytest.fixture(scope="module")
def bundle():
    """Build the one-folder bundle into a temporary folder (or use $JCS_VIEWER_BUNDLE, an existing build).

    Not pytest's tmp_path: other pytest runs on the machine prune old base temp folders while this one
    (minutes) is still using its build.
    """
    existing = os.environ.get("JCS_VIEWER_BUNDLE")
    if existing:
        yield Path(existing)
        return
    pytest.importorskip("PyInstaller", reason="PyInstaller is not installed: pip install -e '.[packaging]' "
                        "(packaging/build.sh installs it on first use)")
    root = Path(tempfile.mkdtemp(prefix="jcs-bundle-"))
    try:
        env = dict(os.environ, PYTHON=sys.executable, DIST=str(root / "dist"), WORK=str(root / "work"))
        proc = subprocess.run(["bash", str(PACKAGING / "build.sh")], env=env, capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        print(proc.stdout.strip().splitlines()[-1])
        yield root / "dist" / "jcs-viewer"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_bundle_runs_version_demo_and_analyze(bundle, tmp_path):
    exe = bundle / "jcs-viewer"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (bundle / "_internal" / "resources" / "icons" / "jcs-viewer-256.png").is_file()
    assert (bundle / "_internal" / "weights" / "manifest.json").is_file()
    # A clean environment: no venv on PATH, no source tree on sys.path, offscreen Qt.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = lambda *args: subprocess.run([str(exe), *args], env=env, cwd=tmp_path, capture_output=True,  # noqa: E731
                                       text=True, timeout=600)
    from jcs_viewer import __version__

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"jcs-viewer {__version__}", proc.stderr

    proc = run("demo", "--out", str(tmp_path / "demo"), "--slices", "16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = tmp_path / "demo" / "dicom"
    assert len(list(study.iterdir())) == 16

    weight_args: list[str] = []
    if not shipped_weights_complete():
        make_tiny_weights(tmp_path / "weights")
        weight_args = ["--weights", str(tmp_path / "weights")]
    args = ["analyze", str(study), "--device", "cpu", "--quiet", *weight_args]
    proc = run(*args, "--out", str(tmp_path / "frozen"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    frozen = json.loads((tmp_path / "frozen" / "results.json").read_text())
    assert (tmp_path / "frozen" / "lesion_mask.nii.gz").is_file()
    # The same analysis by the installed package: the bundle must compute the same numbers.
    source = subprocess.run([sys.executable, "-c", "from jcs_viewer.cli import main; raise SystemExit(main())",
                             *args, "--out", str(tmp_path / "source")], env=dict(os.environ, **{
                                 k: v for k, v in env.items() if k.startswith("XDG")}),
                            capture_output=True, text=True, timeout=600)
    assert source.returncode == 0, source.stderr[-3000:]
    expected = json.loads((tmp_path / "source" / "results.json").read_text())
    assert frozen["n_slices"] == expected["n_slices"] == 16
    assert frozen["app_version"] == __version__
    assert (frozen["decision"], frozen["positive_slices"]) == (expected["decision"], expected["positive_slices"])
    assert [r["probability"] for r in frozen["per_slice"]] == pytest.approx(
        [r["probability"] for r in expected["per_slice"]], abs=1e-4)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No venv on PATH, no source tree on sys.path, private settings and data folders."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


def pixels(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


@pytest.mark.slow
def test_bundle_paints_before_loading_torch_and_vtk(bundle, tmp_path):
    """The frozen start-up path shows the window before any heavy package is imported."""
    proc = subprocess.run([str(bundle / "jcs-viewer")], env=clean_env(tmp_path, JCS_VIEWER_FIRST_PAINT="1"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stderr.splitlines() if line.startswith("first-paint-s:"))
    seconds, heavy = line.split()[1], line.split()[3]
    assert 0 < float(seconds) < 30 and heavy == "-", line


@pytest.mark.slow
def test_bundle_renders_the_3d_view(bundle, tmp_path):
    """Bundled VTK (stripped by build.sh) renders the lungs and lesions on a real X display."""
    command = [str(bundle / "jcs-viewer"), "gui", "--demo", "--view", "3d", "--screenshot", str(tmp_path / "3d.png"),
               "--quit-after-analysis"]
    env = clean_env(tmp_path, QT_QPA_PLATFORM="xcb")
    if os.environ.get("DISPLAY"):
        # The display and its cookie (xvfb-run -a writes one to a private XAUTHORITY file).
        env.update({k: os.environ[k] for k in ("DISPLAY", "XAUTHORITY") if k in os.environ})
    elif shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *command]
    else:
        pytest.skip("no X display and no xvfb-run: VTK's Qt widget needs X")
    if not shipped_weights_complete():
        make_tiny_weights(tmp_path / "weights")
        env["JCS_VIEWER_WEIGHTS"] = str(tmp_path / "weights")
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    # Exit 2 with "the 3-D view shows nothing: <why>" when VTK fell back or built no surfaces.
    assert proc.returncode == 0, proc.stderr[-3000:]
    import numpy as np

    from jcs_viewer.gui.vtk_scene import BACKGROUND_RGB

    image = pixels(tmp_path / "3d.png")
    assert image.shape[:2] == (900, 1440)
    scene = image[120:850, 20:1000]  # the 3-D tab's picture, left of the side panels
    r, g, b = scene[..., 0], scene[..., 1], scene[..., 2]
    background = np.all(abs(scene - np.round(np.array(BACKGROUND_RGB) * 255)) <= 3, axis=-1)
    # VTK's background around the lungs (the slice view's is black, the fallback a text label).
    assert 0.3 < background.mean() < 0.95, f"{background.mean():.3f} of the area is VTK's background"
    lung = ~background & (abs(r - g) < 30) & (b >= r) & (r > 60) & (r < 220)  # translucent grey-blue
    assert lung.mean() > 0.05, f"no lung surface drawn ({lung.mean():.3f} of the area)"
    if shipped_weights_complete():  # the shipped models find the demo's lesions: solid orange-red blobs
        lesion = (r > 150) & (r - g > 60) & (r - b > 90)
        assert lesion.sum() > 2000, f"no lesion surface drawn ({lesion.sum()} pixels)"
    # The tool row above the picture (Reset view, Lungs, Export, status) is painted in the window's
    # light colour: native X windows once left stale slice-view pixels there.
    row = image[76:98, 280:800]
    assert (row.min(axis=-1) > 200).mean() > 0.9, "the 3-D tool row shows stale pixels"


@pytest.mark.slow
def test_bundle_opens_the_viewer(bundle, tmp_path):
    """The frozen GUI starts: Qt platform plugins, pyqtgraph, DICOM loading of the demo study."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    shot = tmp_path / "viewer.png"
    proc = subprocess.run([str(bundle / "jcs-viewer"), "gui", "--demo", "--no-analysis", "--screenshot", str(shot),
                           "--quit-after-analysis"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] >= 800 and len(im.convert("L").getcolors(im.size[0] * im.size[1])) > 50
