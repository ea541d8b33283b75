"""A plain wheel install carries everything the app needs: weights, manifest, icons.

The wheel is built from a copy of this checkout, installed without ``-e`` into a fresh virtual environment (its
dependencies are made visible through a ``.pth`` line, so nothing is downloaded and this checkout's editable
install is not in it), and ``jcs-viewer analyze`` runs the shipped models on a demo study from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


#: What the wheel is built from (pyproject.toml names the packages; weights/ and resources/ are mapped into them).
BUILD_INPUTS = ("pyproject.toml", "README.md", "jcs_viewer", "weights", "resources")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the checkout's build inputs: setuptools builds inside the source folder (build/), which
    # two builds at once (parallel test runs) would share, and which would be left behind in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("jcs_viewer-*.whl")
    return path


def test_the_package_list_names_every_subpackage():
    """pyproject lists the packages (two are mapped folders): a new subpackage must not be left out."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "jcs_viewer").rglob("__init__.py")}
    assert found <= listed


def test_wheel_holds_the_weights_the_manifest_names_and_the_icons(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads(zipfile.ZipFile(wheel).read("jcs_viewer/_shipped_weights/manifest.json"))
    for entry in manifest["weights"]:
        assert f"jcs_viewer/_shipped_weights/{entry['file']}" in names, entry["name"]
    assert "jcs_viewer/_shipped_resources/icons/jcs-viewer.svg" in names
    assert "jcs_viewer/_shipped_resources/icons/jcs-viewer-256.png" in names
    assert not [n for n in names if n.startswith(("tests/", "weights/", "resources/"))]


def test_wheel_installed_without_e_analyzes_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies of this test run, as a plain path: .pth files in that folder (this checkout's editable
    # install among them) are not processed, so only the wheel provides jcs_viewer.
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("JCS_VIEWER_WEIGHTS", "PYTHONPATH")}
    where = subprocess.run([str(python), "-c", "import jcs_viewer.shipped as s; print(s.weights_dir())"],
                           capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(site) and where.endswith("_shipped_weights")

    cli = venv / "bin" / "jcs-viewer"
    demo = tmp_path / "demo"
    subprocess.run([str(cli), "demo", "--out", str(demo), "--slices", "24"], check=True, env=env, cwd=tmp_path,
                   capture_output=True, timeout=300)
    out = tmp_path / "out"
    done = subprocess.run([str(cli), "analyze", str(demo / "dicom"), "--out", str(out), "--device", "cpu",
                           "--quiet"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "results.json").read_text())
    shipped = json.loads((REPO / "weights" / "manifest.json").read_text())["weights"]
    defaults = {e["task"]: e["name"] for e in shipped if e.get("default")}
    assert doc["models"]["cls"]["name"] == defaults["cls"] and doc["models"]["seg"]["name"] == defaults["seg"]
    assert doc["models"]["lung"]["name"] == defaults["lung"]
    assert doc["decision"] in ("positive", "negative", "not assessable") and doc["lung_volume_ml"]["total"] > 0
