"""One atomic-write helper for every file the app writes: whole or nothing, shared or private."""

from __future__ import annotations

import os
import stat

import pytest

from jcs_viewer.atomic import atomic_path, atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_shared_files_follow_the_umask_private_files_are_owner_only(tmp_path):
    old = os.umask(0o027)
    try:
        import importlib

        import jcs_viewer.atomic as atomic

        importlib.reload(atomic)  # the umask is read once, at import
        shared = atomic.atomic_write_bytes(tmp_path / "report.pdf", b"x")
        private = atomic.atomic_write_bytes(tmp_path / "study.jcssession", b"y", private=True)
    finally:
        os.umask(old)
        importlib.reload(atomic)
    assert _mode(shared) == 0o640 and _mode(private) == 0o600
    assert shared.read_bytes() == b"x" and private.read_bytes() == b"y"


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_the_temporary_name_keeps_the_target_ending(tmp_path):
    with atomic_path(tmp_path / "lesion_mask.nii.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".lesion_mask.nii.gz.")
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"n")
    assert (tmp_path / "lesion_mask.nii.gz").read_bytes() == b"n"
