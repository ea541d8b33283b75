"""The layers hold: import-linter's contracts (pyproject.toml) on the real import graph.

io -> models -> pipeline -> session -> report -> gui | train -> cli, each importing only below it, and no
module outside ``jcs_viewer.gui`` (and the CLI above it) imports Qt, pyqtgraph or VTK, lazily or not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).is_file():
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    proc = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.stdout.count("KEPT") == 2 and "BROKEN" not in proc.stdout


def test_a_broken_layer_would_be_caught(tmp_path):
    """The contract is not vacuous: a core module importing the GUI breaks it."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).is_file():
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "jcs_viewer", copy / "jcs_viewer",
                    ignore=shutil.ignore_patterns("_shipped_*", "__pycache__"))
    (copy / "jcs_viewer" / "io" / "bad_idea.py").write_text("from jcs_viewer.gui import main_window\n")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    proc = subprocess.run([lint, "--config", str(copy / "pyproject.toml")], cwd=copy, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and "jcs_viewer.io.bad_idea" in proc.stdout, proc.stdout[-3000:] + proc.stderr


def test_ruff_finds_nothing():
    """pycodestyle errors and warnings and pyflakes (undefined names, unused imports) over code and tests."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        pytest.skip("ruff is not installed (pip install '.[test]')")
    proc = subprocess.run([ruff, "check", "jcs_viewer", "tests"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


#: Short modules: a file that grows past this is split by what its parts do.
MAX_MODULE_LINES = 600


def test_no_module_is_over_the_line_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (ROOT / "jcs_viewer").rglob("*.py") if "_shipped_" not in str(p)}
    assert len(sizes) > 50  # the package was found
    too_long = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_the_shared_vocabulary_is_spelled_once():
    """The lesion attributes, the lung window and the ImageNet normalisation live in ``jcs_viewer.vocabulary``:
    no other module spells them out again (a manifest example in a docstring may)."""
    repeated = {
        "an attribute title list": '"Interlobular septal thickening"',
        "the LA-DNN codes": '"InSepThi"',
        "the ImageNet mean": "(0.485, 0.456, 0.406)",
        "the lung window": "(-600.0, 1500.0)",
    }
    found = [f"{what} in {p.relative_to(ROOT)}" for p in (ROOT / "jcs_viewer").rglob("*.py")
             if p.name != "vocabulary.py" and "_shipped_" not in str(p)
             for what, text in repeated.items() if text in p.read_text(encoding="utf-8")]
    assert not found, found
