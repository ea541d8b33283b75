"""Session files: atomic save, restore, damage handling, debounced autosave, survival of SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from jcs_viewer.session.store import Autosaver, SessionError, SessionState, load_session, save_session


def test_round_trip(tmp_path):
    mask = np.zeros((5, 32, 32), np.uint8)
    mask[2, 5:9, 5:9] = 1
    state = SessionState(edited_mask=mask, review={3: "confirmed", 1: "rejected"}, notes="GGO RLL", reviewer="Dr A")
    path = save_session(state, tmp_path / "s.jcssession")
    back = load_session(path)
    np.testing.assert_array_equal(back.edited_mask, mask)
    assert back.review == {1: "rejected", 3: "confirmed"}
    assert (back.notes, back.reviewer) == ("GGO RLL", "Dr A")
    assert [p.name for p in tmp_path.iterdir()] == ["s.jcssession"]  # no temp files left


def test_damaged_file_gives_one_sentence(tmp_path):
    bad = tmp_path / "x.jcssession"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SessionError, match="x.jcssession is damaged"):
        load_session(bad)


def test_unwritable_target(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SessionError, match="Could not save the session"):
        save_session(SessionState(), blocker / "sub" / "s.jcssession")


def test_autosave_is_debounced(tmp_path):
    state = SessionState(notes="a")
    saver = Autosaver(lambda: state, tmp_path / "s.jcssession", delay_s=0.2)
    for _ in range(5):
        saver.changed()
        time.sleep(0.05)
    time.sleep(0.5)
    assert saver.saves == 1
    assert load_session(saver.path).notes == "a"


def test_steady_editing_cannot_postpone_the_autosave_and_the_snapshot_is_taken_by_the_owner(tmp_path):
    """Changes every 0.2 s with a 0.5 s debounce: without a maximum wait no save would ever happen."""
    import queue

    owner, jobs, taken_on = threading.get_ident(), queue.Queue(), []
    notes = {"text": ""}

    def snapshot():
        taken_on.append(threading.get_ident())
        return SessionState(notes=notes["text"])

    saver = Autosaver(snapshot, tmp_path / "s.jcssession", delay_s=0.5, max_wait_s=1.0, call_in_owner=jobs.put)
    start = time.monotonic()
    first_saved = None
    for i in range(20):  # 4 s of steady editing; the owner runs the jobs the timer hands it between edits
        notes["text"] = f"edit {i}"
        saver.changed()
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                jobs.get(timeout=0.02)()
            except queue.Empty:
                pass
            if first_saved is None and saver.path.is_file():
                first_saved = time.monotonic() - start
    assert first_saved is not None and first_saved < 1.6  # max wait 1 s plus the write
    assert saver.saves >= 3
    assert taken_on and set(taken_on) == {owner}
    assert load_session(saver.path).notes.startswith("edit ")


def test_edits_survive_sigkill(tmp_path):
    """A process paints strokes with autosave on and is killed without warning."""
    path = tmp_path / "k.jcssession"
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        from jcs_viewer.session.labels import LabelLayer
        from jcs_viewer.session.store import Autosaver, SessionState
        layer = LabelLayer(np.zeros((8, 64, 64), np.uint8))
        saver = Autosaver(lambda: SessionState(edited_mask=layer.data.copy()), {str(path)!r}, delay_s=0.3)
        layer.add_listener(lambda zs: saver.changed())
        for i in range(6):
            with layer.stroke():
                layer.paint_disk(i, (10 + 6 * i, 20), 3, 1)
        print("painted", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "painted"
        time.sleep(2.0)  # the autosave promise: within 2 s of the last change
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    restored = load_session(path).edited_mask
    for i in range(6):
        assert restored[i, 10 + 6 * i, 20] == 1
    assert restored.sum() > 6 * 20
