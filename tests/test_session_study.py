"""StudySession: live quantification of the edited mask, AI/edited layers apart, re-run guard,
autosave and restore (no Qt)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from jcs_viewer.io.volume import StudyInfo, Volume
from jcs_viewer.pipeline.decision import patient_decision, slice_threshold
from jcs_viewer.pipeline.quantify import quantify
from jcs_viewer.pipeline.result import StudyResult
from jcs_viewer.session.live_quant import LiveQuantifier
from jcs_viewer.session.store import SessionError, load_session, session_path
from jcs_viewer.session.study_session import StudySession


def make_study(n: int = 24, size: int = 96, seed: int = 0, lesion_shift: int = 0):
    """A small chest-like HU volume with lungs and two lesions, and its StudyResult."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:n, 0:size, 0:size]
    hu = np.full((n, size, size), 40, np.int16)
    lung = np.zeros((n, size, size), np.uint8)
    for label, cx in ((1, 0.3), (2, 0.7)):
        inside = ((xx / size - cx) / 0.16) ** 2 + ((yy / size - 0.5) / 0.3) ** 2 <= 1 - ((zz - n / 2) / (n / 1.8)) ** 2
        lung[inside] = label
    hu[lung > 0] = -850
    lesion = np.zeros_like(lung)
    for cz, cy, cx, r in ((n // 2 + lesion_shift, 40, 28, 6), (n // 3, 50, 68, 4)):
        ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        lesion[ball & (lung > 0)] = 1
    hu[lesion > 0] = -450
    hu += rng.normal(0, 20, hu.shape).astype(np.int16)
    volume = Volume(array=hu, spacing=(2.0, 0.8, 0.7), origin=(0.0, 0.0, 0.0), is_hu=True,
                    info=StudyInfo(series_uid=f"1.2.3.{n}.{size}"), source_format="dicom")
    return volume, result_for(volume, lung, lesion)


def result_for(volume, lung, lesion):
    n = volume.array.shape[0]
    area = lesion.reshape(n, -1).sum(axis=1)
    prob = (area > 0).astype(np.float32) * 0.9
    positive = prob >= 0.5
    threshold, rule = slice_threshold(n, volume.spacing[0])
    decision, count = patient_decision(positive, threshold)
    return StudyResult(
        n_slices=n, spacing=volume.spacing, origin=volume.origin, direction=volume.direction,
        slice_probability=prob, slice_cutoff=0.5, slice_positive=positive, positive_slices=count,
        threshold=threshold, threshold_rule=rule, decision=decision, cams=None, lesion_probability=None,
        lesion_mask=lesion, segmented_slices=positive.copy(), lung_mask=lung, attributes=None,
        quant=quantify(volume, lung, lesion))


def assert_quant_matches_full(session: StudySession) -> None:
    full = quantify(session.volume, session.ai_result.lung_mask, session.labels.data)
    live = session.result.quant
    a, b = live.to_dict(), full.to_dict()
    assert a.pop("mean_hu") == pytest.approx(b.pop("mean_hu"), abs=1e-9)
    assert a == b


@pytest.fixture
def study():
    return make_study()


def test_edited_layer_starts_as_ai_and_stays_apart(study):
    volume, ai = study
    ai_mask, ai_quant = ai.lesion_mask, ai.quant
    ai_before = ai_mask.copy()
    session = StudySession(volume, ai)
    np.testing.assert_array_equal(session.labels.data, ai_before)
    # The AI result stays a value: the session's edited view is a separate object beside it.
    assert session.result is not ai and ai.lesion_mask is ai_mask and ai.quant is ai_quant
    assert session.result.lesion_mask is session.labels.data
    assert np.shares_memory(session.ai_result.lesion_mask, ai_mask) and session.ai_result.quant is ai_quant
    assert not session.ai_result.lesion_mask.flags.writeable  # the session cannot write the AI layer
    assert session.ai_result.slice_probability is ai.slice_probability  # shared, not copied
    with session.labels.stroke("brush"):
        session.labels.paint_disk(5, (30, 40), 5, 1)
    np.testing.assert_array_equal(session.ai_result.lesion_mask, ai_before)  # the AI layer is untouched
    np.testing.assert_array_equal(ai.lesion_mask, ai_before)  # ... and so is the caller's result
    assert ai.quant is ai_quant and ai.quant.lesion_volume_ml == session.ai_result.quant.lesion_volume_ml
    assert session.ai_result.quant is ai_quant and session.result.quant is not ai_quant
    assert session.edited_slices() == [5] and session.has_edits


def test_live_quant_equals_full_quantify_after_each_step(study):
    volume, ai = study
    session = StudySession(volume, ai)
    seen = []
    session.add_listener(seen.append)
    before = session.quant.lesion_volume_ml["total"]
    with session.labels.stroke("brush"):
        for x in range(20, 60, 3):  # a stroke across both lungs and outside them
            session.labels.paint_disk(8, (48, x), 4, 1)
    assert session.quant.lesion_volume_ml["total"] > before
    assert_quant_matches_full(session)
    with session.labels.stroke("eraser"):
        session.labels.paint_disk(ai.n_slices // 2, (40, 28), 4, 0)
    assert_quant_matches_full(session)
    from jcs_viewer.session import tools
    tools.clear_slice(session.labels, ai.n_slices // 3)
    assert_quant_matches_full(session)
    # Two lesions become three after a separate blob on another slice.
    with session.labels.stroke("brush"):
        session.labels.paint_disk(3, (50, 30), 3, 1)
    assert session.quant.lesion_count == quantify(volume, ai.lung_mask, session.labels.data).lesion_count
    session.labels.undo()
    session.labels.undo()
    assert_quant_matches_full(session)
    assert len(seen) == 6 and all(isinstance(zs, slice) for zs in seen)


def test_accept_ai_and_reset_slice_are_undoable(study):
    volume, ai = study
    session = StudySession(volume, ai)
    z = ai.n_slices // 2
    with session.labels.stroke("eraser"):
        session.labels.paint_disk(z, (40, 28), 8, 0)
    with session.labels.stroke("brush"):
        session.labels.paint_disk(2, (40, 28), 3, 1)
    assert session.edited_slices() == [2, z]
    assert session.reset_slice_to_ai(z)
    assert session.edited_slices() == [2]
    assert session.labels.next_undo_label() == "reset slice to AI"
    assert session.accept_ai()
    assert session.edited_slices() == [] and np.array_equal(session.labels.data, session.ai_result.lesion_mask)
    assert session.labels.undo() == "accept AI result"
    assert session.edited_slices() == [2]
    assert session.labels.undo() == "reset slice to AI"
    assert session.edited_slices() == [2, z]
    assert_quant_matches_full(session)


def test_rerun_replace_is_undoable_and_keep_merges(study):
    volume, ai = study
    session = StudySession(volume, ai)
    session.review.confirm(int(ai.n_slices // 2))
    with session.labels.stroke("brush"):
        session.labels.paint_disk(4, (50, 30), 4, 1)
    edited = session.labels.data.copy()
    _, ai2 = make_study(lesion_shift=2)  # the re-run finds the big lesion two slices higher
    ai2_mask = ai2.lesion_mask.copy()

    session.apply_new_ai_result(ai2, keep_edits=False)
    np.testing.assert_array_equal(session.labels.data, ai2_mask)
    assert session.result is not ai2 and session.result.lesion_mask is session.labels.data
    np.testing.assert_array_equal(ai2.lesion_mask, ai2_mask)  # the new AI result is not written either
    assert session.edited_slices() == []
    assert session.review.decision(ai.n_slices // 2) is not None  # review decisions survive
    assert session.labels.next_undo_label() == "re-run analysis"
    session.labels.undo()
    np.testing.assert_array_equal(session.labels.data, edited)
    assert 4 in session.edited_slices()
    assert_quant_matches_full(session)

    # Keeping the edits: the reader's slices stay, every other slice takes the new AI mask.
    volume, ai = make_study()
    _, ai2 = make_study(lesion_shift=2)
    session = StudySession(volume, ai)
    with session.labels.stroke("brush"):
        session.labels.paint_disk(4, (50, 30), 4, 1)
    session.apply_new_ai_result(ai2, keep_edits=True)
    assert session.labels.next_undo_label() == "re-run analysis (edits kept)"
    kept = session.edited_slices()
    assert kept == [4]
    for z in range(ai.n_slices):
        expected = edited[z] if z in kept else ai2_mask[z]
        np.testing.assert_array_equal(session.labels.data[z], expected)
    assert_quant_matches_full(session)


def test_autosave_and_restore_bring_back_every_stroke(study, tmp_path):
    volume, ai = study
    path = session_path(volume, tmp_path)
    session = StudySession(volume, ai, autosave_path=path, autosave_delay_s=0.2, reviewer="Dr B")
    session.close()
    assert not path.exists()  # nothing changed: no file
    session = StudySession(volume, ai, autosave_path=path, autosave_delay_s=0.2, reviewer="Dr B")
    for i in range(5):
        with session.labels.stroke("brush"):
            session.labels.paint_disk(3 + i, (30 + 5 * i, 50), 3, 1)
    session.review.reject(ai.n_slices // 3)
    session.set_notes("patchy GGO")
    deadline = time.monotonic() + 2.0
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    saved = load_session(path)
    np.testing.assert_array_equal(saved.edited_mask, session.labels.data)
    assert saved.notes == "patchy GGO" and saved.reviewer == "Dr B"
    session.close()

    fresh = StudySession(*make_study())  # the same study opened again, analysed again
    fresh.restore(saved)
    np.testing.assert_array_equal(fresh.labels.data, session.labels.data)
    assert fresh.edited_slices() == [3, 4, 5, 6, 7]
    assert fresh.review.decision(ai.n_slices // 3).value == "rejected"
    assert not fresh.labels.can_undo  # a restored session starts a fresh history
    assert_quant_matches_full(fresh)


def test_restore_rejects_another_study(study, tmp_path):
    volume, ai = study
    other_volume, other_ai = make_study(n=20)
    state = StudySession(other_volume, other_ai).snapshot()
    with pytest.raises(SessionError, match="different study"):
        StudySession(volume, ai).restore(state)
    state.study_key = ""  # a hand-made or damaged file: it would fit any study of the same size
    with pytest.raises(SessionError, match="names no study"):
        StudySession(volume, ai).restore(state)
    state.study_key = StudySession(volume, ai).study_key
    with pytest.raises(SessionError, match="does not fit"):
        StudySession(volume, ai).restore(state)


def test_large_lesion_count_is_deferred_and_job_fills_it():
    n, size = 20, 512
    image = np.full((n, size, size), -800, np.int16)
    lung = np.ones((n, size, size), np.uint8)
    mask = np.zeros((n, size, size), np.uint8)
    mask[:, 10:500, 10:500] = 1  # 20 x 490 x 490 > the inline budget
    mask[:, 200, :] = 0
    q = LiveQuantifier(image, lung, (1.0, 1.0, 1.0))
    q.update(mask)
    assert not q.recount(mask) and q.count_stale
    assert q.count_job(mask)() == 2
    assert q.recount(mask, force=True) and q.lesion_count == 2
