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


def _rewritten(path, meta_changes=None, mask_bytes=None):
    """The session at ``path`` with fields of its session.json replaced, or its mask member replaced."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("session.json"))
        mask = zf.read("edited_mask.npy")
    if isinstance(meta_changes, dict):
        meta.update(meta_changes)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", json.dumps(meta) if meta_changes != "list" else "[1, 2]")
        zf.writestr("edited_mask.npy", mask if mask_bytes is None else mask_bytes)
    return path


@pytest.mark.parametrize("changes, said", [
    ({"review": ["confirmed"]}, "its review is not a slice-by-slice record"),
    ({"review": {"abc": "confirmed"}}, "its review names slice 'abc'"),
    ({"review": {"3": "maybe"}}, "its review is not a slice-by-slice record"),
    ({"notes": 12345}, "its notes is not text"),
    ({"reviewer": ["a"]}, "its reviewer is not text"),
    ({"saved_at": "yesterday"}, "saved_at 'yesterday' is not a time"),
    ({"measurements": 5}, "its measurements are not a list"),
    ({"schema_version": "2"}, "schema_version '2'"),
    ("list", "its session.json is not a record"),
])
def test_a_session_of_the_wrong_shape_is_one_sentence(tmp_path, changes, said):
    """Each of these once raised AttributeError, TypeError or ValueError from deep inside (or later, in the
    report: notes that are not text)."""
    path = save_session(SessionState(edited_mask=np.zeros((2, 4, 4), np.uint8), notes="n"), tmp_path / "s.jcssession")
    _rewritten(path, changes)
    with pytest.raises(SessionError) as exc:
        load_session(path)
    assert str(exc.value).startswith("The session file s.jcssession is damaged") and said in str(exc.value)


def test_a_mask_is_refused_by_its_declared_size_before_anything_is_allocated(tmp_path, monkeypatch):
    """A mask header declaring (1e5, 1e5, 1e5) over 16 bytes asked numpy for 909 TiB (MemoryError); a member
    inflating to gigabytes was read whole before it was refused."""
    import io

    import jcs_viewer.session.store as store

    path = save_session(SessionState(edited_mask=np.zeros((2, 4, 4), np.uint8)), tmp_path / "s.jcssession")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (100000, 100000, 100000)})
    _rewritten(path, mask_bytes=header.getvalue() + bytes(16))
    with pytest.raises(SessionError, match=r"declares shape \(100000, 100000, 100000\) but holds 16 bytes"):
        load_session(path)
    save_session(SessionState(edited_mask=np.zeros((2, 40, 40), np.uint8)), path)
    monkeypatch.setattr(store, "MAX_MASK_BYTES", 1000)  # the limit stands in for a 1 GiB bomb
    with pytest.raises(SessionError, match=r"edited_mask\.npy declares 3,328 bytes, more than a session holds"):
        load_session(path)


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


def test_a_measurement_off_any_slice_is_left_out_not_fatal():
    """``"z": 1e400`` reads as infinity; int() of it raised OverflowError past the damaged-entry guard."""
    from jcs_viewer.session.study_session import restored_measurements

    good = {"kind": "ruler", "z": 1, "p0": [0, 0], "p1": [3, 4]}
    state = SessionState(measurements=[good, {**good, "z": float("inf")}, {**good, "z": 9}])
    assert [m.z for m in restored_measurements(state, n_slices=5)] == [1]
