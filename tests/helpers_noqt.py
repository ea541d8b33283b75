"""Run Python code in a subprocess where chosen packages cannot be imported.

The core layers (io, pipeline, session, report) must work on a machine without Qt,
pyqtgraph or VTK. A ``sys.meta_path`` finder installed before the code runs makes
``import PySide6`` (and the others) raise ``ImportError``, exactly as if the package
were not installed, even though it is installed in this environment.

Usage::

    result = run_without(GUI_PACKAGES, "import jcs_viewer.io; ...")
    assert result.returncode == 0, result.stderr
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

GUI_PACKAGES = ("PySide6", "shiboken6", "pyqtgraph", "vtk", "vtkmodules")
TORCH_PACKAGES = ("torch", "torchvision")

_BLOCKER = '''
import sys
import importlib.abc

_BLOCKED = {blocked!r}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ImportError(f"{{name}} is blocked for this test (simulating a machine without it)")
        return None


sys.meta_path.insert(0, _Blocker())
for _name in list(sys.modules):
    if _name.split(".")[0] in _BLOCKED:
        del sys.modules[_name]
'''

_CHECK = '''
_loaded = sorted(n for n in sys.modules if n.split(".")[0] in _BLOCKED)
assert not _loaded, f"blocked packages ended up imported: {_loaded}"
print("NOQT-OK")
'''


def run_without(
    blocked: tuple[str, ...],
    code: str,
    *,
    cwd: Path | None = None,
    timeout: float = 120.0,
    extra_path: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``blocked`` top-level packages cannot be imported.

    The script ends by asserting that none of them got imported and printing ``NOQT-OK``;
    check ``returncode == 0`` and ``"NOQT-OK" in stdout``.

    Args:
        blocked: top-level package names, e.g. :data:`GUI_PACKAGES` + :data:`TORCH_PACKAGES`.
        code: Python source to run after the blocker is installed.
        cwd: working directory of the subprocess.
        timeout: seconds before the subprocess is killed.
        extra_path: folders put on ``PYTHONPATH`` (e.g. ``tests/`` to import helper modules).
    """
    script = _BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(code) + _CHECK
    env = dict(os.environ)
    paths = [str(p) for p in extra_path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
