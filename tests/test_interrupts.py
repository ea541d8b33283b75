"""Ctrl+C during a command's startup (imports, model loading) is held back and raised once startup is over."""

from __future__ import annotations

import os
import signal
import time

import pytest

from jcs_viewer.interrupts import interrupt_deferred


def test_ctrl_c_inside_the_block_is_raised_after_it(ctrl_c_handled):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # Python's handler would raise here
            done.append("finished")
    assert done == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_ctrl_c_the_block_runs_as_it_is(ctrl_c_handled):
    with interrupt_deferred():
        value = 1
    assert value == 1 and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(ValueError, match="its own"), interrupt_deferred():
        raise ValueError("its own error goes through")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_analyze_interrupted_while_its_models_load_stops_with_its_own_line(tmp_path, capsys,
                                                                          ctrl_c_while_models_load):
    from jcs_viewer.cli import main
    from jcs_viewer.io.phantom import demo_study_path

    study = demo_study_path(seed=0, n_slices=8) / "dicom"  # the batch tests' cached demo, read only
    assert main(["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert len(ctrl_c_while_models_load) == 1 and "Interrupted." in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()
