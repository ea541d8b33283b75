"""jcs_viewer.io imports and loads a study on a machine without Qt, pyqtgraph, VTK or torch."""

from __future__ import annotations

from pathlib import Path

from helpers_noqt import GUI_PACKAGES, TORCH_PACKAGES, run_without

TESTS = Path(__file__).resolve().parent


def test_io_works_without_gui_and_torch(tmp_path):
    code = f"""
        from pathlib import Path
        import jcs_viewer.errors
        import jcs_viewer.io
        from helpers_dicom import hu_slice, write_series

        folder = Path({str(tmp_path)!r})
        write_series(folder, n=3, size=16)
        vol = jcs_viewer.io.load_study(folder)
        assert vol.shape == (3, 16, 16), vol.shape
        assert (vol.array[1] == hu_slice(16, 1)).all()
        assert len(jcs_viewer.io.scan_folder(folder)) == 1
        try:
            import PySide6  # noqa: F401
        except ImportError:
            pass
        else:
            raise AssertionError("the blocker did not block PySide6")
    """
    result = run_without(GUI_PACKAGES + TORCH_PACKAGES, code, extra_path=(TESTS,))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOQT-OK" in result.stdout
