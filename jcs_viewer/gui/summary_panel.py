"""The per-patient summary: decision, quantification, attributes, models, timings, research notice."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from jcs_viewer import RESEARCH_USE_NOTICE
from jcs_viewer.gui.state import ViewerState
from jcs_viewer.pipeline.result import lesions_measured
from jcs_viewer.session.review import ReviewDecision, ReviewState
from jcs_viewer.vocabulary import ATTRIBUTE_TITLES, LESION_ATTRIBUTES

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    try:
        if value is None or not np.isfinite(float(value)):
            return "—"
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return "—"


def slice_attributes_text(result: StudyResult, z: int) -> str:
    """One line with the current slice's lesion-attribute probabilities ("" without attributes).

    Attributes describe lesions: only a flagged slice shows them.
    """
    attributes = _get(result, "attributes", None)
    if attributes is None or not 0 <= z < len(attributes):
        return ""
    flagged = _get(result, "slice_positive", None)
    if flagged is not None and not bool(np.asarray(flagged)[z]):
        return f"Slice {z + 1}: not flagged, no lesion attributes."
    values = ", ".join(f"{a.short} {float(v):.2f}" for a, v in zip(LESION_ATTRIBUTES, attributes[z]))
    return f"Slice {z + 1} attributes: {values}"


def summary_html(result: StudyResult, volume: Volume | None = None, review: ReviewState | None = None) -> str:
    """HTML for the summary panel (also handy for tests: plain text is in it); ``review``: the reader's
    confirmations and rejections, said beside the AI's count they do not change."""
    notice = f"<p style='color:#b06000'><i>{html.escape(RESEARCH_USE_NOTICE)}</i></p>"
    if result is None:
        study = ""
        if volume is not None:
            info = getattr(volume, "info", None)
            desc = html.escape(str(_get(info, "series_description", "") or _get(info, "study_description", "")))
            shape = "×".join(str(s) for s in volume.array.shape[::-1])
            study = f"<p>Study loaded: {shape} voxels {desc}</p><p>Analysis has not run yet.</p>"
        return f"{study or '<p>No study open.</p>'}{notice}"

    decision = str(_get(result, "decision", "")).lower()
    color = {"positive": "#d03030", "negative": "#2a9d4a"}.get(decision, "#7a7a7a")
    reason = str(_get(result, "decision_reason", "") or "")
    positive = int(_get(result, "positive_slices", int(np.sum(_get(result, "slice_positive", [])))))
    threshold = _get(result, "threshold", None)
    n = int(_get(result, "n_slices", 0))
    from jcs_viewer.pipeline.assess import blurred_slices_note  # not before the first paint: io imports pydicom

    # slices with lung left unread for their blur: said under the count they change, not among the notes
    blurred = blurred_slices_note(_get(result, "blurred_slices", None), _get(result, "spacing", None))
    # The panel's box is titled "Summary": the decision comes first, then the numbers a reader
    # acts on; the threshold's derivation is small print below them.
    parts = [
        f"<p style='font-size:14pt; margin-top:0'><b>Decision: <span style='color:{color}'>"
        f"{html.escape(decision.upper() or '—')}</span></b></p>",
        *([f"<p style='color:{color}'><b>{html.escape(reason)}</b></p>"] if reason else []),
        f"<p><b>{positive}</b> of {n} slice{'' if n == 1 else 's'} positive "
        f"(cutoff {_num(_get(result, 'slice_cutoff', 0.5), '{:.2f}')})"
        f"; {_threshold_phrase(threshold, n)}.</p>",
        *_review_line(review),
        *([f"<p style='color:#b06000'><b>{html.escape(blurred)}</b></p>"] if blurred else []),
    ]
    rule = _get(result, "threshold_rule", "")

    quant = _get(result, "quant", None)
    if quant is not None:
        vol = _get(quant, "lesion_volume_ml", {}) or {}
        inv = _get(quant, "involvement_percent", {}) or {}
        zones = _get(quant, "zones", {}) or {}
        rows = [
            ("Lesion volume", f"{_num(vol.get('total'))} mL (R {_num(vol.get('right'))}, L {_num(vol.get('left'))})"),
            ("Involvement", f"R {_num(inv.get('right'))} %, L {_num(inv.get('left'))} %, "
                            f"total {_num(inv.get('total'))} %"),
            ("Lesions", str(_get(quant, "lesion_count", "—"))),
            ("Zones (mL)", ", ".join(f"{k} {_num(v)}" for k, v in zones.items()) or "—"),
            ("Cranio-caudal extent", f"{_num(_get(quant, 'extent_mm'))} mm"),
        ]
        mean_hu = _get(quant, "mean_hu", None)
        if mean_hu is not None:
            rows.append(("Mean lesion HU", _num(mean_hu, "{:.0f}")))
        ggo, cons = _get(quant, "ggo_ml", None), _get(quant, "consolidation_ml", None)
        if ggo is not None or cons is not None:
            rows.append(("GGO / consolidation", f"{_num(ggo)} / {_num(cons)} mL"))
        segmented = _get(result, "segmented_slices", None)
        if segmented is not None and not lesions_measured(segmented, float(vol.get("total") or 0.0)):
            rows = [("Lesions", "not measured: the models ran on no slice")]
        elif not _get(result, "has_voxel_size", True):  # what mL and mm mean for a PNG/JPEG stack
            rows.append(("Units", "mL and mm at the 1 mm voxels assumed for images without a voxel size (not "
                                  "measured); the involvement holds"))
        parts.append(_table(rows))
    small_print = [str(text) for text in (_get(result, "slice_rule", ""), rule) if text]
    if small_print:
        parts.append(f"<p style='color:#888; font-size:small'>{html.escape(' '.join(small_print))}</p>")

    attributes = _get(result, "attributes", None)
    if attributes is not None:
        att = np.asarray(attributes, dtype=float)
        flagged = np.asarray(_get(result, "slice_positive", np.zeros(len(att), bool)), dtype=bool)
        if flagged.any():  # attributes describe lesions: shown for flagged slices only
            study_level = att[flagged].mean(axis=0)
            rows = [(name, f"{study_level[i]:.2f}") for i, name in enumerate(ATTRIBUTE_TITLES[: att.shape[1]])]
            parts.append("<p><b>Lesion attributes</b> (the classifier's reading of the whole slice, mean over flagged "
                         "slices)</p>" + _table(rows))

    models = _get(result, "models", {}) or {}
    if models:
        rows = []
        for task, meta in models.items():
            name = _get(meta, "name", "") or ""
            arch = _get(meta, "arch", "") or ""
            sha = str(_get(meta, "sha256", "") or "")[:10]
            rows.append((str(task), f"{name} ({arch}) {sha}".strip()))
        parts.append("<p><b>Models</b></p>" + _table(rows))
    timings = _get(result, "timings", {}) or {}
    if timings:
        parts.append("<p><b>Timings</b></p>" + _table([(k, f"{float(v):.2f} s") for k, v in timings.items()]))
    messages = [m for m in _get(result, "messages", []) or [] if m != blurred]
    if messages:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(m))}</li>" for m in messages) + "</ul>")
    parts.append(notice)
    return "".join(parts)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td style='color:#999;padding-right:8px'>{html.escape(k)}</td>"
                   f"<td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table cellspacing='0' cellpadding='1'>{body}</table>"


def _threshold_phrase(threshold: Any, n_slices: int) -> str:
    if n_slices <= 1:
        return "no patient threshold (a single slice)"
    return f"patient threshold: more than <b>{threshold if threshold is not None else '—'}</b> slices"


def _review_line(review: ReviewState | None) -> list[str]:
    """Why the AI's count stays as it is after the reader rejected slices."""
    if review is None:
        return []
    rejected = len(review.slices_with(ReviewDecision.REJECTED))
    confirmed = len(review.slices_with(ReviewDecision.CONFIRMED))
    if not rejected and not confirmed:
        return []
    said = ", ".join(part for part in (confirmed and f"confirmed {confirmed}", rejected and f"rejected {rejected}")
                     if part)
    return [f"<p>The reader {said} of them. The count and the decision above are the AI's; the report lists the "
            "reader's review beside them.</p>"]


class SummaryPanel(QWidget):
    """Re-renders on a new result; per-slice attribute values follow the current slice."""

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        # Per-slice attributes live in a label: re-rendering the whole HTML per slice is too slow.
        self.slice_label = QLabel()
        self.slice_label.setWordWrap(True)
        self.slice_label.setStyleSheet("color: #555;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.browser, 1)
        layout.addWidget(self.slice_label)
        state.on("volume", lambda v: self.render())
        state.on("result", lambda r: self.render())
        state.on("quant", self.render)  # the reader edited the lesion mask: numbers are live
        state.on("review", lambda z, decision: self.render())
        state.on("slice", self._on_slice)
        self.render()

    def _on_slice(self, z: int) -> None:
        text = slice_attributes_text(self.state.result, z)
        self.slice_label.setVisible(bool(text))
        if text != self.slice_label.text():
            self.slice_label.setText(text)

    def render(self) -> None:
        self.browser.setHtml(summary_html(self.state.result, self.state.volume, self.state.review))
        self._on_slice(self.state.z)

    def text(self) -> str:
        return self.browser.toPlainText() + "\n" + self.slice_label.text()
