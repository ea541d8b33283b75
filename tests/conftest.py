"""Shared fixtures. Qt runs offscreen here; tests that need a real X display start a
subprocess with ``QT_QPA_PLATFORM=xcb`` (see ``tests/helpers.py``)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
# Torch's intra-op pool would otherwise take every core: two threads for a single-process run; a pytest-xdist
# worker (which inherits the controller's setting) takes its share of the cores, the workers keep them all busy.
if "PYTEST_XDIST_WORKER" in os.environ:
    _WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")

# Never touch the tester's own settings, sessions or caches, and never stop on a modal
# "restore session?" question: every test run gets private folders.
# One folder per run: pytest-xdist's workers (and the CLI / GUI subprocesses) inherit the controller's; the process
# that made it removes it when it ends (a run left 220 KB behind in /tmp before, hundreds of runs 100 MB).
if "JCS_VIEWER_TESTS_PRIVATE" in os.environ:
    _PRIVATE = Path(os.environ["JCS_VIEWER_TESTS_PRIVATE"])
else:
    _PRIVATE = Path(tempfile.mkdtemp(prefix="jcs-viewer-tests-"))
    os.environ["JCS_VIEWER_TESTS_PRIVATE"] = str(_PRIVATE)
    atexit.register(shutil.rmtree, _PRIVATE, ignore_errors=True)
for _var, _sub in (("JCS_VIEWER_DATA", "data"), ("JCS_VIEWER_CONFIG", "config"),
                   ("XDG_CONFIG_HOME", "xdg-config"), ("XDG_DATA_HOME", "xdg-data")):
    os.environ.setdefault(_var, str(_PRIVATE / _sub))
os.environ.setdefault("JCS_VIEWER_CACHE", str(Path(tempfile.gettempdir()) / "jcs-viewer-test-cache"))
os.environ.setdefault("JCS_VIEWER_RESTORE_SESSION", "never")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JCS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


from jcs_viewer.pipeline.assess import MAX_PIXEL_MM as _READING_MAX_PIXEL_MM  # noqa: E402


def shared_data_path(*parts: str) -> Path:
    """Path under ``../shared/data``; skips the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public data not present: {path} (clone with ../shared beside the repo to run this)")
    return path


#: The longest modules, longest first (seconds of a run on the 2-core machine, ``--durations=0`` summed per module).
LONGEST_MODULES = ("test_batch.py", "test_train_weights.py", "test_train_smoke.py", "test_real_studies.py",
                   "test_gui_xvfb.py", "test_compare.py", "test_analyze_report.py", "test_pacs_results.py",
                   "test_fuzz_dicom.py", "test_gui_editing.py", "test_wheel.py")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores, at most one per 3 GB of memory. A worker spends about a
    third of its time waiting (on a subprocess, a live Orthanc, a Ray runtime, an autosave timer) rather than
    computing; the extra worker fills that time. A worker peaks near 3 GB (the real-CT and training modules)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): by the cores alone
        memory_gb = 3.0 * (cores + 1)
    return max(1, min(cores + 1, int(memory_gb // 3)))


def pytest_configure(config):
    # pytest-xdist's --dist loadfile hands out whole modules, by default those with the most tests first; the
    # longest first instead (below) keeps both workers busy to the end: none starts a long module when the
    # other is nearly done.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist), before any worker starts
        _compile_the_package()


def _compile_the_package() -> None:
    """Byte-compile ``jcs_viewer`` once, before the run. The run starts about fifty Python processes (xdist
    workers, CLI and GUI subprocesses, Ray workers); where bytecode is not written (``PYTHONDONTWRITEBYTECODE``,
    as on the machine these tests are timed on) each of them compiled the package from source, 0.4 s of CPU apiece."""
    import compileall

    import jcs_viewer

    compileall.compile_dir(Path(jcs_viewer.__file__).parent, quiet=2, workers=1)


def pytest_collection_modifyitems(config, items):
    """The longest modules first, in :data:`LONGEST_MODULES` order (the rest keep their collection order)."""
    rank = {name: k for k, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


@pytest.fixture
def ctrl_c_handled():
    """Python's Ctrl+C handler for the test, as a terminal starts a program: a test run started in the background
    by a non-interactive shell (``pytest ... &``) has SIGINT ignored in every worker."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c_while_models_load(ctrl_c_handled, monkeypatch):
    """Ctrl+C arrives while :func:`jcs_viewer.pipeline.runner.load_models` runs; the returned list gets the models
    each call finished loading (an interrupt raised inside the call leaves it empty)."""
    from jcs_viewer.pipeline import runner

    real, loaded = runner.load_models, []

    def interrupted_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python's handler would raise here
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(runner, "load_models", interrupted_while_loading)
    return loaded


@pytest.fixture
def shared_data():
    return shared_data_path


@pytest.fixture(scope="session", autouse=True)
def _phantoms_stand_for_full_size_chests():
    """The test phantoms are downscaled (48-128 px across, up to 7.5 mm pixels) to keep the run short; they
    stand for full-size chests, so the pixel-size gate of :mod:`jcs_viewer.pipeline.assess` is lifted for
    them. Tests of the gate itself, and every run on real CT, use the ``pixel_size_rule`` fixture."""
    from jcs_viewer.pipeline import assess

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assess, "MAX_PIXEL_MM", 8.0)
        yield


@pytest.fixture
def pixel_size_rule(monkeypatch):
    """The app's own pixel-size gate (see ``_phantoms_stand_for_full_size_chests``); returns its limit in mm."""
    from jcs_viewer.pipeline import assess

    monkeypatch.setattr(assess, "MAX_PIXEL_MM", _READING_MAX_PIXEL_MM)
    return _READING_MAX_PIXEL_MM


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory):
    """A weights folder with tiny random lite networks and their manifest (``test-cls``, ``test-seg``)."""
    from test_pipeline_support import register_tiny_weights

    folder = tmp_path_factory.mktemp("weights")
    register_tiny_weights(folder)
    return folder


@pytest.fixture
def registered(tiny_weights_dir, monkeypatch):
    """Make the tiny weights the only (and default) weights the registry sees."""
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(tiny_weights_dir))
    monkeypatch.setenv("XDG_DATA_HOME", str(tiny_weights_dir / "no-user-weights"))
    return tiny_weights_dir
