"""The annotated PDF report (reportlab platypus).

Layout: header (study and patient, or an anonymised notice), decision and summary, the
per-slice score plot (vector), lesion table by lung and zone, lesion attributes, key
images, review summary, models and thresholds. Every page carries the research-use notice
and "page i of n" in the footer.

Anonymised reports hold no patient name, ID, birth date or accession number anywhere: not
in the text, not in the document information, not in the suggested file name.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from jcs_viewer import RESEARCH_USE_NOTICE, __version__
from jcs_viewer.errors import ExportError
from jcs_viewer.io.export import check_target, write_bytes_atomic
from jcs_viewer.pipeline.assess import blurred_slices_note
from jcs_viewer.report.content import ReportContent, build_content
from jcs_viewer.report.fonts import Fonts, report_fonts
from jcs_viewer.report.key_images import key_image_section, render_key_images
from jcs_viewer.report.layout import CONTENT_W, FOOTER_SPACE, GRID, HEAD_FILL, MARGIN, PAGE
from jcs_viewer.report.plots import score_plot
from jcs_viewer.vocabulary import (ATTRIBUTE_TITLES, age_words, compress_ranges, counted, dicom_date, person_name,
                                   sex_word)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.compare import Comparison
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.session.measurements import Measurement


# --------------------------------------------------------------------------- public API
def write_report(
    result: StudyResult,
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    anonymize: bool = False,
    reviewer: str = "",
    review: Any = None,
    edited_mask: np.ndarray | None = None,
    notes: str = "",
    measurements: Sequence[Measurement] = (),
    comparison: Comparison | None = None,
) -> Path:
    """Write the annotated PDF report of one analysed study.

    Args:
        result: the pipeline's ``StudyResult``.
        volume: the :class:`~jcs_viewer.io.volume.Volume` it was computed from.
        path: target ``.pdf`` file (written atomically).
        anonymize: leave out patient name, ID, birth date and accession number (and the
            study/series UIDs and institution, which can lead back to the patient).
        reviewer: the reader's name, printed with the report time.
        review: review states, a mapping slice -> "confirmed"/"rejected" or a ``ReviewState``.
        edited_mask: the reader's lesion mask; when it differs from the AI's, every lesion
            number is recomputed from it and the edited slices are listed.
        notes: free text printed in the review section.
        measurements: the reader's :class:`~jcs_viewer.session.measurements.Measurement` s, listed in the review
            section with their lengths, areas and HU statistics.
        comparison: a :class:`~jcs_viewer.pipeline.compare.Comparison` with a prior study: the report's
            "Comparison" section (lesion volume and involvement per lung then, now and the change).

    Returns:
        The written path.

    Raises:
        ExportError: inconsistent inputs or an unwritable target.
    """
    check_target(path)
    try:
        content = build_content(result, volume, review=review, edited_mask=edited_mask, reviewer=reviewer, notes=notes,
                                measurements=measurements, comparison=comparison)
    except ValueError as exc:
        raise ExportError(f"Cannot write {path}: {exc}.") from exc
    data = render_report(result, volume, content, anonymize=anonymize)
    return write_bytes_atomic(path, data)


def suggest_report_name(info: Any, *, anonymize: bool = False) -> str:
    """A file name for the report: study date and accession, never identifying when anonymised."""
    parts = ["JCS_report"]
    date = re.sub(r"[^0-9]", "", getattr(info, "study_date", "") or "")
    if date and not anonymize:  # a date is an identifier (PS3.15 E.1)
        parts.append(date)
    accession = re.sub(r"[^A-Za-z0-9_-]", "", getattr(info, "accession_number", "") or "")
    if accession and not anonymize:
        parts.append(accession)
    if anonymize:
        parts.append("anonymised")
    return "_".join(parts) + ".pdf"


# --------------------------------------------------------------------------- styles
def _styles(fonts: Fonts) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=fonts.regular, fontSize=8.5, leading=11)
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.2, leading=9),
        "mono": ParagraphStyle("mono", parent=base, fontName=fonts.mono, fontSize=6.3, leading=8),
        "title": ParagraphStyle("title", parent=base, fontName=fonts.bold, fontSize=15, leading=19),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=9, leading=12,
                                   textColor=colors.Color(0.25, 0.25, 0.25)),
        "h2": ParagraphStyle("h2", parent=base, fontName=fonts.bold, fontSize=11, leading=14,
                             spaceBefore=9, spaceAfter=4),
        "decision": ParagraphStyle("decision", parent=base, fontName=fonts.bold, fontSize=14, leading=18),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        "cellb": ParagraphStyle("cellb", parent=base, fontName=fonts.bold, fontSize=8, leading=10),
    }


def _table(rows: list[list[Any]], widths: list[float], *, header: bool = True, fonts: Fonts) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [
        ("FONT", (0, 0), (-1, -1), fonts.regular, 8),
        ("GRID", (0, 0), (-1, -1), 0.4, GRID),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL), ("FONT", (0, 0), (-1, 0), fonts.bold, 8)]
    table.setStyle(TableStyle(style))
    return table


def _fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


#: DICOM's name and description fields hold at most 64 characters (PN: 64 per component group): a longer one is
#: malformed, and a table cell cannot split across pages (a 6,000-character name stopped the report)
MAX_HEADER_TEXT = 200


def _header_text(value: Any) -> str:
    """A header field as one printable line: control characters as spaces, elided past MAX_HEADER_TEXT."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(value))
    return text if len(text) <= MAX_HEADER_TEXT else text[:MAX_HEADER_TEXT - 1] + "…"


def _intensity_note(volume) -> str:
    """What the Source row adds about the values: nothing for the scanner's HU."""
    if not volume.is_hu:
        return " (not Hounsfield units)"
    return " (HU estimated from its grey levels)" if volume.hu_estimated else ""


def _patient_rule(result: StudyResult) -> str:
    """When the study is called positive, in words (a single slice has no patient rule)."""
    if int(result.n_slices) <= 1:
        return "a single slice has no patient rule: one slice cannot speak for the lungs"
    threshold = int(result.threshold)
    flagged = "slice is flagged" if threshold == 1 else "slices are flagged"
    return f"the study is called positive when more than {threshold} {flagged}"


def _quality_note(result: StudyResult) -> str:
    """The blur the study's own edges show and the noise of its soft tissue, where they were measured (HU studies
    with a voxel size)."""
    blur, noise = getattr(result, "edge_blur_mm", None), getattr(result, "noise_hu", None)
    return ("" if blur is None else f", edges blurred {blur:.1f} mm (sd)") + (
        "" if noise is None else f", noise {noise:.0f} HU (sd)")


# --------------------------------------------------------------------------- sections
def _header(volume: Volume, result: StudyResult, anonymize: bool, st: dict[str, ParagraphStyle],
            fonts: Fonts) -> list[Any]:
    info = volume.info
    out: list[Any] = [
        Paragraph("JCS Viewer: COVID-19 chest CT analysis report", st["title"]),
        Paragraph("Joint classification and segmentation (JCS) with reader review. "
                  "<b>Research use only, not for diagnosis.</b>", st["subtitle"]),
        Spacer(1, 5),
    ]
    p = lambda text: Paragraph(fonts.markup(_header_text(text)) if text not in ("", None) else "-", st["cell"])  # noqa: E731
    b = lambda text: Paragraph(escape(str(text)), st["cellb"])  # noqa: E731
    sex_age = p(" / ".join(x for x in (sex_word(info.sex), age_words(info.age)) if x))
    if anonymize:
        # PS3.15 E.1: names, IDs, dates, institution, descriptions and age go; sex goes too (Z).
        removed = ("<i>anonymised report: name, ID, birth date, sex, age, accession number, institution, "
                   "study date and descriptions removed</i>")
        patient_rows = [[b("Patient"), Paragraph(removed, st["cell"]), "", ""]]
    else:
        patient_rows = [
            [b("Patient name"), p(person_name(info.patient_name)), b("Patient ID"), p(info.patient_id)],
            [b("Birth date"), p(dicom_date(info.birth_date)), b("Sex / age"), sex_age],
            [b("Accession"), p(info.accession_number), b("Institution"), p(info.institution)],
        ]
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing
    study_rows = [
        [b("Study date"), p(dicom_date(info.study_date)), b("Study"), p(info.study_description)],
        [b("Series"), p(" ".join(x for x in (info.series_number, info.series_description) if x)),
         b("Modality / scanner"), p(" ".join(x for x in (info.modality, info.manufacturer) if x))],
    ] if not anonymize else [
        [b("Series"), p(info.series_number), b("Modality / scanner"),
         p(" ".join(x for x in (info.modality, info.manufacturer) if x))],
    ]
    study_rows += [
        [b("Image"), p(f"{counted(nz, 'slice')} of {ny} x {nx}, voxel {sx:.2f} x {sy:.2f} x {sz:.2f} mm"
                       f"{_quality_note(result)}"),
         b("Source"), p(volume.source_format + _intensity_note(volume))],
    ]
    uid_row = None
    if not anonymize and info.study_uid:
        study_rows.append([b("Study UID"), Paragraph(escape(info.study_uid), st["small"]), "", ""])
        uid_row = len(patient_rows) + len(study_rows) - 1
    w = CONTENT_W
    widths = [27 * mm, w / 2 - 27 * mm, 30 * mm, w / 2 - 30 * mm]
    table = _table(patient_rows + study_rows, widths, header=False, fonts=fonts)
    if not anonymize:
        shade = colors.Color(0.95, 0.95, 0.95)
        table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, len(patient_rows) - 1), shade)]))
    else:  # the notice reads on one line across the row
        table.setStyle(TableStyle([("SPAN", (1, 0), (3, 0))]))
    if uid_row is not None:
        table.setStyle(TableStyle([("SPAN", (1, uid_row), (3, uid_row))]))
    out.append(table)
    return out


def _slice_rule(result: StudyResult) -> str:
    """What made a slice positive, in one sentence (older results carry none: the classifier's)."""
    from jcs_viewer.pipeline.slice_score import rule

    saved = str(getattr(result, "slice_rule", "") or "")
    return saved or rule(str(getattr(result, "slice_score", "classifier")), float(result.slice_cutoff))


def _decision(result: StudyResult, content: ReportContent, st: dict[str, ParagraphStyle], fonts: Fonts) -> list[Any]:
    decision = str(result.decision).lower()
    positive = decision == "positive"
    verdict = {"positive": "COVID-19 POSITIVE", "negative": "COVID-19 NEGATIVE"}.get(decision, "NOT ASSESSABLE")
    reason = str(getattr(result, "decision_reason", "") or "")
    # Not assessable: the reason comes right under the verdict, before any number.
    why = [[Paragraph(f"<b>{escape(reason)}</b>", st["base"])]] if reason else []
    # Slices with lung left unread for their blur: said beside the count they change.
    note = blurred_slices_note(getattr(result, "blurred_slices", None), getattr(result, "spacing", None))
    box = Table(
        [[Paragraph(f"AI decision: {verdict}", st["decision"])],
         *why,
         [Paragraph(
             f"{int(result.positive_slices)} of {counted(int(result.n_slices), 'slice')} flagged (slice score "
             f"{fonts.ge()} {float(result.slice_cutoff):.2f}); {_patient_rule(result)}.", st["base"])],
         *([[Paragraph(escape(note), st["base"])]] if note else []),
         [Paragraph(f"<i>Slice score:</i> {escape(_slice_rule(result))} <i>Threshold rule:</i> "
                    f"{escape(str(result.threshold_rule))}", st["small"])]],
        colWidths=[CONTENT_W],
    )
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 2.0 if positive else 1.0, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.88, 0.88) if positive else colors.white),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    out: list[Any] = [Spacer(1, 8), box]
    if content.edited:
        out.append(Spacer(1, 3))
        out.append(Paragraph(
            "Lesion numbers below use the <b>reader-edited lesion mask</b> "
            f"({counted(len(content.edited_slices), 'slice')} edited); "
            "the AI decision above comes from the classifier and does not change with edits.", st["small"]))
    return out


def _summary(
    result: StudyResult, volume: Volume, content: ReportContent, st: dict[str, ParagraphStyle], fonts: Fonts
) -> list[Any]:
    q = content.quant
    lv, lu, inv = q.lesion_volume_ml, q.lung_volume_ml, q.involvement_percent
    measured = _lesions_measured(result, content)
    if not measured:  # "n/a", not 0 mL of lesion
        lv = inv = {"right": None, "left": None, "total": None}
    rows = [
        ["", "Right lung", "Left lung", "Total"],
        ["Lesion volume (mL)", _fmt(lv["right"]), _fmt(lv["left"]), _fmt(lv["total"])],
        ["Lung volume (mL)", _fmt(lu["right"], 0), _fmt(lu["left"], 0), _fmt(lu["total"], 0)],
        ["Involvement (% of lung)", _fmt(inv["right"]), _fmt(inv["left"]), _fmt(inv["total"])],
    ]
    w = CONTENT_W
    out: list[Any] = [Paragraph("Summary", st["h2"]), _table(rows, [50 * mm] + [(w - 50 * mm) / 3] * 3, fonts=fonts)]
    outside = float(getattr(q, "lesion_outside_lungs_ml", 0.0) or 0.0)
    bins = getattr(q, "hu_bins", {}) or {}

    def hu_label(name: str, key: str) -> str:
        lo_hi = bins.get(key)
        return f"{name} ({lo_hi[0]} to {lo_hi[1]} HU)" if lo_hi else name

    b = lambda text: Paragraph(escape(text), st["cellb"])  # noqa: E731
    value = (lambda x: x) if measured else (lambda x: None)  # noqa: E731
    more = [
        [b("Flagged slices"), f"{int(result.positive_slices)} ("
         f"{'no threshold' if int(result.n_slices) <= 1 else f'threshold {int(result.threshold)}'})",
         b("Lesion count (3-D)"), str(int(q.lesion_count)) if measured else "n/a"],
        [b("Craniocaudal extent"), _fmt(value(q.extent_mm), 0, "mm"), b("Mean lesion density"),
         _fmt(value(q.mean_hu), 0, "HU")],
        [b(hu_label("Ground-glass", "ggo")), _fmt(value(q.ggo_ml), 1, "mL"),
         b(hu_label("Consolidation", "consolidation")), _fmt(value(q.consolidation_ml), 1, "mL")],
    ]
    if outside >= 0.05:  # shown with one decimal: float dust would print as "0.0 mL"
        more.append([b("Lesion outside lungs"), _fmt(outside, 1, "mL"), "", ""])
    t = _table(more, [50 * mm, w / 2 - 50 * mm, 50 * mm, w / 2 - 50 * mm], header=False, fonts=fonts)
    out += [Spacer(1, 4), t]
    if not volume.is_hu:
        out.append(Paragraph("The image is not in Hounsfield units: density-based numbers are not available.",
                             st["small"]))
    elif volume.hu_estimated:
        out.append(Paragraph("The image was not stored in Hounsfield units: its HU were estimated from its air, fat "
                             "and soft tissue (within about 50 HU), and the density-based numbers are estimates.",
                             st["small"]))
    if not volume.has_voxel_size:
        out.append(Paragraph("The images carry no voxel size: the volumes are counted at the 1 mm voxels assumed "
                             "for them, not measured; the involvement (% of lung) holds.", st["small"]))
    return out


def _comparison_section(content: ReportContent, st: dict[str, ParagraphStyle], fonts: Fonts) -> list[Any]:
    """Then, now and the change per lung against the prior study (the reader's edited mask for "now")."""
    c = content.comparison
    if c is None:
        return []
    rows = [["", "Prior", "Current", "Change"]] + [list(row) for row in c.rows()]
    w = CONTENT_W
    out = [Paragraph("Comparison", st["h2"]),
           Paragraph(escape(f"{c.interval()}; registered by the lungs: {c.registration()}."), st["small"]),
           _table(rows, [62 * mm] + [(w - 62 * mm) / 3] * 3, fonts=fonts)]
    out += [Paragraph(escape(note), st["small"]) for note in c.notes]
    return [KeepTogether(out)]


def _plot_section(result: StudyResult, content: ReportContent, st: dict[str, ParagraphStyle],
                  fonts: Fonts) -> list[Any]:
    w = CONTENT_W
    scored = getattr(result, "scored_slices", None)
    scores = np.asarray(result.slice_probability, dtype=float)
    if scored is not None:
        scores = np.where(np.asarray(scored, dtype=bool), scores, np.nan)
    drawing = score_plot(
        scores,
        float(result.slice_cutoff),
        np.asarray(result.slice_positive, dtype=bool),
        np.asarray(content.quant.per_slice_area_mm2, dtype=float),
        [k.index for k in content.key_slices],
        width=w,
        font=fonts.regular,
        ge=fonts.ge(),
    )
    pos = content.positions_mm
    where = (f"The slice is at {pos[0]:.1f} mm" if len(pos) == 1
             else f"Slice 1 is at {pos[0]:.1f} mm and slice {len(pos)} at {pos[-1]:.1f} mm")
    caption = (f"{where} along the slice normal (patient z). Lesion area is per slice, from the "
               f"{'edited' if content.edited else 'AI'} lesion mask.")
    return [KeepTogether([Paragraph("Per-slice score", st["h2"]), drawing, Paragraph(caption, st["small"])])]


def _lesions_measured(result: StudyResult, content: ReportContent) -> bool:
    from jcs_viewer.pipeline.result import lesions_measured

    return lesions_measured(getattr(result, "segmented_slices", True), content.quant.lesion_volume_ml["total"])


def _zone_section(
    result: StudyResult, content: ReportContent, st: dict[str, ParagraphStyle], fonts: Fonts
) -> list[Any]:
    if not _lesions_measured(result, content):
        return [Paragraph("Lesions by lung and zone", st["h2"]),
                Paragraph("Not measured: the models ran on no slice of this study (see the decision above).",
                          st["small"])]
    rows = [["Zone", "Right lung (mL)", "Left lung (mL)", "Total (mL)", "Share of lesion"]]
    total = sum(r["total"] for r in content.zone_table.values())
    for zone in ("upper", "middle", "lower"):
        r = content.zone_table[zone]
        share = f"{100 * r['total'] / total:.0f} %" if total > 0 else "-"
        rows.append([zone.capitalize(), _fmt(r["right"]), _fmt(r["left"]), _fmt(r["total"]), share])
    rows.append(["All zones", _fmt(sum(r["right"] for r in content.zone_table.values())),
                 _fmt(sum(r["left"] for r in content.zone_table.values())), _fmt(total), "100 %" if total > 0 else "-"])
    w = CONTENT_W
    t = _table(rows, [30 * mm] + [(w - 30 * mm) / 4] * 4, fonts=fonts)
    t.setStyle(TableStyle([("FONT", (0, -1), (-1, -1), fonts.bold, 8),
                           ("LINEABOVE", (0, -1), (-1, -1), 1.0, colors.black)]))
    note = ("Zones: each lung's craniocaudal range in thirds (upper = cranial). Lesion voxels outside both lung masks "
            "are not in this table.")
    return [KeepTogether([Paragraph("Lesions by lung and zone", st["h2"]), t, Paragraph(note, st["small"])])]


#: The attributes are a guess about the whole slice; where the densities measure the same thing, they say which to
#: believe (a consolidated NY-SBU slice, 72 % of its lesion at consolidation density, reads consolidation p 0.38).
ATTRIBUTES_NOTE = ("The attributes are the classifier's reading of each whole slice, learned from the COVID-CT figure "
                   "crops and LA-DNN's labels; on a study in HU the ground-glass and consolidation volumes above are "
                   "measured from its densities.")


def _attribute_section(result: StudyResult, st: dict[str, ParagraphStyle], fonts: Fonts) -> list[Any]:
    attrs = getattr(result, "attributes", None)
    if attrs is None:
        return []
    attrs = np.asarray(attrs, dtype=float)
    flagged = np.asarray(result.slice_positive, dtype=bool)
    rows = [["Lesion attribute (LA-DNN head)", "Mean probability (flagged)", f"Flagged slices with p {fonts.ge()} 0.5"]]
    for i, name in enumerate(ATTRIBUTE_TITLES[: attrs.shape[1]]):
        col = attrs[:, i]
        mean = _fmt(float(col[flagged].mean()), 2) if flagged.any() else "-"
        count = str(int(np.count_nonzero(col[flagged] >= 0.5))) if flagged.any() else "-"
        rows.append([name, mean, count])
    w = CONTENT_W
    t = _table(rows, [70 * mm, (w - 70 * mm) / 2, (w - 70 * mm) / 2], fonts=fonts)
    return [KeepTogether([Paragraph("Lesion attributes", st["h2"]), t, Paragraph(ATTRIBUTES_NOTE, st["small"])])]


def _numbers(indices: list[int]) -> list[int]:
    """Slice numbers as the reader sees them (from 1, as in the viewer) of 0-based slice indices."""
    return [z + 1 for z in indices]


def _review_section(result: StudyResult, content: ReportContent, st: dict[str, ParagraphStyle],
                    fonts: Fonts) -> list[Any]:
    flagged = np.flatnonzero(np.asarray(result.slice_positive, dtype=bool)).tolist()
    unreviewed = [z for z in flagged if z not in content.review]
    b = lambda t: Paragraph(escape(t), st["cellb"])  # noqa: E731
    p = lambda t: Paragraph(fonts.markup(t), st["cell"])  # noqa: E731
    rows = [
        [b("Reviewer"), p(content.reviewer or "not given")],
        [b("Report time"), p(content.generated.strftime("%Y-%m-%d %H:%M %Z").strip())],
        [b("Confirmed slices"), p(f"{len(content.confirmed)}: {compress_ranges(_numbers(content.confirmed))}")],
        [b("Rejected slices"), p(f"{len(content.rejected)}: {compress_ranges(_numbers(content.rejected))}")],
        [b("Flagged, not reviewed"), p(f"{len(unreviewed)} of {counted(len(flagged), 'flagged slice')}")],
        [b("Edited lesion mask"),
         p(f"{counted(len(content.edited_slices), 'slice')}: {compress_ranges(_numbers(content.edited_slices))}"
           if content.edited else "no edits (AI segmentation)")],
    ]
    if content.measurements:
        rows.append([b("Measurements"), Paragraph("<br/>".join(fonts.markup(line) for line in content.measurements),
                                                  st["cell"])])
    if content.notes:
        rows.append([b("Notes"), Paragraph(fonts.markup(content.notes).replace("\n", "<br/>"), st["cell"])])
    w = CONTENT_W
    table = _table(rows, [40 * mm, w - 40 * mm], header=False, fonts=fonts)
    return [KeepTogether([Paragraph("Review", st["h2"]), table])]


_TASK_NAMES = {"cls": "classification", "classifier": "classification", "seg": "segmentation",
               "segmentation": "segmentation"}
HASH_COL_W = 91 * mm


def _technical_section(result: StudyResult, volume: Volume, content: ReportContent, st: dict[str, ParagraphStyle],
                       fonts: Fonts) -> list[Any]:
    w = CONTENT_W
    rows: list[list[Any]] = [["Task", "Model (architecture)", "Weights SHA-256"]]
    for task, m in (getattr(result, "models", None) or {}).items():
        model = escape(str(m.get("name", "") or "unnamed"))
        if m.get("arch"):
            model += f"<br/>({escape(str(m['arch']))})"
        rows.append([escape(_TASK_NAMES.get(str(task), str(task))), Paragraph(model, st["cell"]),
                     Paragraph(escape(str(m.get("sha256", "") or "not recorded")), st["mono"])])
    out: list[Any] = [Paragraph("Models and thresholds", st["h2"])]
    if len(rows) > 1:
        # The hash column is wide enough for 64 hex digits on one line (compare by eye, copy whole);
        # the model column for a weights name without a break inside it.
        out.append(_table(rows, [25 * mm, w - 25 * mm - HASH_COL_W, HASH_COL_W], fonts=fonts))
    thresholds = [
        ["Slice score", _slice_rule(result)],
        ["Patient threshold", _patient_rule(result)],
        ["Lesion count", f"3-D components of at least {int(getattr(content.quant, 'min_lesion_voxels', 1))} voxels"],
        ["Software", f"JCS Viewer {__version__}"],
    ]
    cutoff = getattr(result, "lesion_cutoff", None)
    if cutoff is not None:
        rule = f"a pixel is lesion when its probability is {fonts.ge()} {float(cutoff):.2f}"
        thresholds.insert(2, ["Lesion cutoff", rule])
    rows_t = [[Paragraph(escape(a), st["cellb"]), Paragraph(escape(b), st["cell"])] for a, b in thresholds]
    out += [Spacer(1, 4), _table(rows_t, [40 * mm, w - 40 * mm], header=False, fonts=fonts)]
    # The analysis starts its messages with the volume's warnings: each is listed once.
    messages = list(dict.fromkeys([*(getattr(result, "messages", []) or []), *(getattr(volume, "warnings", []) or [])]))
    # said in the decision box
    said = blurred_slices_note(getattr(result, "blurred_slices", None), getattr(result, "spacing", None))
    messages = [m for m in messages if m != said]
    if messages:
        out += [Spacer(1, 4), Paragraph("Messages from loading and analysis:", st["small"])]
        out += [Paragraph("- " + fonts.markup(str(m)), st["small"]) for m in messages[:12]]
    return [KeepTogether(out)]


# --------------------------------------------------------------------------- assembly
class _Footer:
    """Draws the research-use notice and "page i of n" on every page."""

    def __init__(self, fonts: Fonts, total: int | None) -> None:
        self.fonts, self.total, self.pages = fonts, total, 0

    def __call__(self, canvas: Any, doc: Any) -> None:
        self.pages += 1
        canvas.saveState()
        width = PAGE[0]
        canvas.setStrokeColor(colors.black)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, FOOTER_SPACE - 2 * mm, width - MARGIN, FOOTER_SPACE - 2 * mm)
        canvas.setFont(self.fonts.bold, 7)
        canvas.setFillColor(colors.black)
        canvas.drawString(MARGIN, FOOTER_SPACE - 6 * mm, RESEARCH_USE_NOTICE)
        canvas.setFont(self.fonts.regular, 7)
        page = f"Page {doc.page}" + (f" of {self.total}" if self.total else "")
        canvas.drawRightString(width - MARGIN, FOOTER_SPACE - 9.5 * mm, page)
        canvas.drawString(MARGIN, FOOTER_SPACE - 9.5 * mm, f"JCS Viewer {__version__}")
        canvas.restoreState()


def render_report(result: StudyResult, volume: Volume, content: ReportContent, *, anonymize: bool = False) -> bytes:
    """Lay out the report and return the PDF bytes."""
    fonts = report_fonts()
    st = _styles(fonts)
    crop, pngs, peaks = render_key_images(result, volume, content)

    def story() -> list[Any]:
        return (
            _header(volume, result, anonymize, st, fonts)
            + _decision(result, content, st, fonts)
            + _summary(result, volume, content, st, fonts)
            + _comparison_section(content, st, fonts)
            + _plot_section(result, content, st, fonts)
            + _zone_section(result, content, st, fonts)
            + _attribute_section(result, st, fonts)
            + key_image_section(volume, content, crop, pngs, peaks, st, fonts)
            + _review_section(result, content, st, fonts)
            + _technical_section(result, volume, content, st, fonts)
        )

    def build(total: int | None) -> tuple[bytes, int]:
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer,
            pagesize=PAGE,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN,
            bottomMargin=FOOTER_SPACE + 2 * mm,
            # Document information: nothing that identifies the patient, anonymised or not.
            title="JCS Viewer COVID-19 chest CT analysis report",
            author="JCS Viewer",
            subject="Research use only: not for diagnosis",
            creator=f"JCS Viewer {__version__}",
            keywords="",
        )
        footer = _Footer(fonts, total)
        # Flowables keep layout state, so each pass builds its own story (images are rendered once).
        doc.build(story(), onFirstPage=footer, onLaterPages=footer)
        return buffer.getvalue(), footer.pages

    # ASCII85 on images costs seconds in reportlab's pure-Python encoder and 25 % in size;
    # a binary PDF is fine for files, so switch it off for this build only.
    saved_a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        # Two passes: the first counts the pages so that the footer can say "page i of n".
        _, pages = build(None)
        data, _ = build(pages)
    finally:
        rl_config.useA85 = saved_a85
    return data
