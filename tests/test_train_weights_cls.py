"""The shipped classifier's manifest figures, reproduced on the real test splits.

A module of its own beside ``test_train_weights.py`` (the lesion and lung nets): the two are the longest of the
release check (``pytest -m figures -n 2 --dist loadfile``), and pytest-xdist hands each module to one worker, so
the two run side by side.
"""

from __future__ import annotations

import pytest
from test_train_weights import _our_entries, reproduce_manifest_metrics


@pytest.mark.parametrize("entry", [e for e in _our_entries() if e["task"] == "cls"], ids=lambda e: e["name"])
@pytest.mark.figures
@pytest.mark.slow
def test_evaluate_reproduces_classifier_metrics(entry, shared_data, capsys):
    """``jcs-viewer evaluate cls|twins|cam|phantom ... --split test`` gives every manifest metric within ±0.5
    points."""
    reproduce_manifest_metrics(entry, shared_data, capsys)
