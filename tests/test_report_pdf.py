"""The PDF report: valid PDF, the right numbers in its text, anonymisation everywhere, layout facts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jcs_viewer import RESEARCH_USE_NOTICE
from jcs_viewer.errors import ExportError
from jcs_viewer.pipeline.quantify import quantify
from jcs_viewer.report import suggest_report_name, write_report
from jcs_viewer.report import key_images
from jcs_viewer.report import pdf as pdf_module
from jcs_viewer.report.fonts import Fonts
from test_export_support import PATIENT, make_study, needs_tools, require_tools

needs_poppler = needs_tools("pdftotext", "pdfinfo", "pdfimages", "qpdf")

IDENTIFIERS = [
    *PATIENT["name"].split("^"),
    PATIENT["id"],
    PATIENT["birth"],
    f"{PATIENT['birth'][:4]}-{PATIENT['birth'][4:6]}-{PATIENT['birth'][6:]}",
    PATIENT["accession"],
]


def pdf_text(path: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(path), "-"], capture_output=True, text=True, check=True).stdout


def n_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def uncompressed_bytes(path: Path, tmp_path: Path) -> bytes:
    """The PDF with every stream decompressed and no object streams, so metadata and text are greppable."""
    out = tmp_path / f"{path.stem}_qdf.pdf"
    subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(path), str(out)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"), n_slices=16, size=64)


@needs_poppler
def test_report_is_valid_and_states_decision_volumes_and_patient(study, tmp_path):
    volume, result = study
    path = write_report(result, volume, tmp_path / "report.pdf", reviewer="Dr. Ada Reader")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = pdf_text(path)
    assert f"COVID-19 {result.decision.upper()}" in text
    # The lesion volume, counted here independently of the quantification code.
    voxel_ml = np.prod(volume.spacing) / 1000
    assert f"{result.lesion_mask.sum() * voxel_ml:.1f}" in text
    right = np.count_nonzero(result.lesion_mask & (result.lung_mask == 1)) * voxel_ml
    assert f"{right:.1f}" in text
    assert f"{result.positive_slices} of {result.n_slices} slices flagged" in re.sub(r"\s+", " ", text)
    assert "Qwertyson, Zelda" in text and PATIENT["id"] in text
    assert "1947-03-12" in text and PATIENT["accession"] in text
    assert "Dr. Ada Reader" in text
    assert result.models["classifier"]["sha256"] in text.replace("\n", "").replace(" ", "")
    # a consolidated slice read consolidation p 0.38: the attributes say what they are beside the measured densities
    assert "reading of each whole slice" in re.sub(r"\s+", " ", text)
    pages = n_pages(path)
    assert pages >= 2
    for page in range(1, pages + 1):
        page_text = re.sub(r"\s+", " ", pdf_text(path, page))
        assert RESEARCH_USE_NOTICE in page_text
        assert f"Page {page} of {pages}" in page_text


@needs_poppler
@pytest.mark.parametrize("standard_fonts", [False, True], ids=["embedded-font", "standard-font"])
def test_anonymised_report_has_no_identifier_anywhere(study, tmp_path, monkeypatch, standard_fonts):
    volume, result = study
    if standard_fonts:
        # With a standard font the text is plain in the content stream, so the raw-byte check
        # below is known to see a name when one is there (the control before the real check).
        monkeypatch.setattr(pdf_module, "report_fonts", lambda: Fonts("Helvetica", "Helvetica-Bold", "Courier", False))
        named = write_report(result, volume, tmp_path / "named.pdf")
        assert b"Qwertyson" in uncompressed_bytes(named, tmp_path)
    name = suggest_report_name(volume.info, anonymize=True)
    path = write_report(result, volume, tmp_path / name, anonymize=True)
    raw = path.read_bytes() + uncompressed_bytes(path, tmp_path)
    text = pdf_text(path)
    # The document information dictionary (pdfinfo) and the XMP metadata stream (pdfinfo -meta).
    info = "".join(subprocess.run(["pdfinfo", *flag, str(path)], capture_output=True, text=True, check=True).stdout
                   for flag in ([], ["-meta"]))
    assert "Title:" in info  # the control: the dictionary was read
    for ident in IDENTIFIERS:
        assert ident.encode() not in raw, ident
        assert ident.lower() not in text.lower(), ident
        assert ident not in info and ident not in name, ident
    assert "anonymised" in text
    assert "COVID-19" in text and f"{result.quant.lesion_volume_ml['total']:.1f}" in text


@needs_poppler
def test_an_overlong_or_control_character_header_field_still_gives_a_report(study, tmp_path):
    """A 6,000-character patient name (malformed: PN holds 64 per group) made a header cell taller than a page:
    reportlab's LayoutError stopped the report. Control characters reached the PDF as they were."""
    from dataclasses import replace

    volume, result = study
    odd = replace(volume, info=replace(volume.info, patient_name="Long^" + "Name" * 1500,
                                       study_description="CT\x07 CHEST\x00"))
    path = write_report(result, odd, tmp_path / "report.pdf")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = re.sub(r"\s+", " ", pdf_text(path))
    assert "NameName" in text and "…" in text and "Name" * 60 not in text.replace(" ", "")
    assert "CT CHEST" in text and "\x07" not in text


@needs_poppler
def test_names_in_chinese_japanese_and_korean_are_printed_in_an_embedded_cjk_font(study, tmp_path):
    """DejaVu Sans has no CJK ideographs, kana or hangul: a Chinese hospital's header printed them as empty boxes.
    They are set in the system's CJK TrueType font (CI installs WenQuanYi Micro Hei), embedded as a subset; the
    name's groups (alphabetic = ideographic) are written as a reader writes them."""
    from dataclasses import replace

    from jcs_viewer.report.fonts import report_fonts

    if report_fonts().fallback is None:
        pytest.skip("no CJK TrueType font on this system (apt-get install fonts-wqy-microhei)")
    volume, result = study
    names = replace(volume, info=replace(volume.info, patient_name="Wang^Xiaoming=\u738b^\u5c0f\u660e",
                                         institution="\u5317\u4eac\u534f\u548c\u533b\u9662",
                                         study_description="\u80f8\u90e8 CT \ud749\ubd80 \u3080\u306d"))
    path = write_report(result, names, tmp_path / "report.pdf", reviewer="\u5c71\u7530 \u592a\u90ce")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = re.sub(r"\s+", " ", pdf_text(path))
    assert "Wang, Xiaoming (\u738b \u5c0f\u660e)" in text
    assert "\u5317\u4eac\u534f\u548c\u533b\u9662" in text and "\u80f8\u90e8 CT \ud749\ubd80 \u3080\u306d" in text
    assert "\u5c71\u7530 \u592a\u90ce" in text
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    embedded = [line for line in fonts.splitlines()[2:] if line.split()[-5:-4] == ["yes"]]
    assert any("DejaVuSans" in line for line in embedded), fonts
    assert len(embedded) >= 3 and any("DejaVu" not in line for line in embedded), fonts  # the CJK font, embedded


def test_markup_sets_only_what_the_regular_font_lacks_in_the_cjk_font():
    fonts = Fonts("R", "B", "M", True, "CJK", frozenset(map(ord, "Wang, ()&<>")), frozenset(map(ord, "\u738b\u5c0f")))
    assert fonts.markup("Wang (\u738b\u5c0f) & <b>") == ('Wang (<font name="CJK">\u738b\u5c0f</font>) &amp; '
                                                           '&lt;b&gt;')
    assert Fonts("R", "B", "M", True).markup("\u738b <b>") == "\u738b &lt;b&gt;"  # no CJK font: escaped only


def test_suggested_name_keeps_accession_only_when_not_anonymised(study):
    volume, _ = study
    assert PATIENT["accession"] in suggest_report_name(volume.info)
    assert PATIENT["accession"] not in suggest_report_name(volume.info, anonymize=True)
    assert suggest_report_name(volume.info, anonymize=True).endswith(".pdf")


@needs_poppler
def test_edited_mask_is_requantified_and_review_summarised(study, tmp_path):
    volume, result = study
    edited = result.lesion_mask.copy()
    busiest = int(np.argmax(edited.reshape(len(edited), -1).sum(1)))
    edited[busiest] = 0  # the reader erased one slice
    edited[2, 20:26, 16:22] = 1  # and drew a lesion the AI missed
    expected = quantify(volume, result.lung_mask, edited)
    review = {busiest + 1: "confirmed", 2: "confirmed", busiest - 1: "rejected"}
    path = write_report(result, volume, tmp_path / "edited.pdf", reviewer="R. Eviewer", review=review,
                        edited_mask=edited, notes="Checked & corrected <basal> slices.")
    text = re.sub(r"\s+", " ", pdf_text(path))
    assert f"{expected.lesion_volume_ml['total']:.1f}" in text
    assert f"{result.quant.lesion_volume_ml['total']:.1f}" not in text  # the AI's total is not shown as the reader's
    assert "reader-edited lesion mask" in text
    edited_list = ", ".join(str(z + 1) for z in sorted({2, busiest}))  # numbered from 1, as in the viewer
    assert f"Edited lesion mask 2 slices: {edited_list}" in text
    assert "Confirmed slices 2:" in text and f"Rejected slices 1: {busiest}" in text  # index busiest - 1
    assert "Checked & corrected <basal> slices." in text
    # Reviewer-confirmed slices are key images, marked as such.
    assert f"Slice {busiest + 2}" in text and "reviewer-confirmed" in text  # index busiest + 1, numbered from 1


@needs_poppler
def test_score_plot_is_vector_and_key_images_are_embedded(study, tmp_path):
    volume, result = study
    path = write_report(result, volume, tmp_path / "report.pdf")
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    image_pages = {int(line.split()[0]) for line in listing.splitlines()[2:]}
    page_one = pdf_text(path, 1)
    assert "Per-slice score" in page_one and "slice" in page_one  # the plot's own labels are text
    assert 1 not in image_pages  # ... and the plot on page 1 is not a raster image
    assert image_pages  # the key images are


def test_report_without_cams_attributes_or_hu(tmp_path):
    volume, result = make_study(tmp_path, n_slices=8, size=48)
    volume.is_hu = False
    volume.source_format = "images"
    result.cams = None
    result.attributes = None
    path = write_report(result, volume, tmp_path / "plain.pdf")
    assert path.read_bytes().startswith(b"%PDF")
    require_tools("pdftotext", "qpdf")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = pdf_text(path)
    assert "no activation map in this result" in text and "activation peak" not in text
    assert "Lesion attributes" not in text
    assert "not in Hounsfield units" in text
    assert "edges blurred" not in text  # grey levels: not measured


@needs_poppler
def test_the_image_row_gives_the_blur_its_edges_show(tmp_path):
    volume, result = make_study(tmp_path, n_slices=8, size=48)
    result.edge_blur_mm = 0.64  # as the analysis measures it (jcs_viewer.pipeline.assess.edge_blur)
    text = re.sub(r"\s+", " ", pdf_text(write_report(result, volume, tmp_path / "report.pdf")))
    assert "2.50 mm, edges blurred 0.6 mm (sd)" in text, text[:600]
    result.noise_hu = 18.4  # as assess.image_noise measures it
    text = re.sub(r"\s+", " ", pdf_text(write_report(result, volume, tmp_path / "noise.pdf")))
    assert "noise 18 HU (sd)" in text, text[:600]


@needs_poppler
def test_a_single_slice_report_promises_no_patient_rule(tmp_path):
    """One slice: "not assessable", and the box and the thresholds table said "positive when more than 0 slices are
    flagged"."""
    volume, result = make_study(tmp_path, n_slices=1, size=48)
    result.decision = "not assessable"
    result.decision_reason = "A single slice cannot be judged."
    result.threshold = 0  # as decision.slice_threshold gives a single slice
    text = re.sub(r"\s+", " ", pdf_text(write_report(result, volume, tmp_path / "one.pdf")))
    assert "of 1 slice flagged" in text and "a single slice has no patient rule" in text, text[:1200]
    assert "more than 0 slices" not in text and "(threshold 0)" not in text and "1 slice of 48 x 48" in text
    assert "The slice is at" in text and "slice 1 at" not in text


def test_estimated_hu_are_called_estimates_and_each_message_is_listed_once(tmp_path):
    """A study read back into HU from grey levels (jcs_viewer.io.hu_estimate) says so by its source and beside the
    density figures. Its load note was printed twice: the analysis's messages start with the volume's warnings."""
    volume, result = make_study(tmp_path, n_slices=8, size=48)
    volume.hu_estimated = True
    note = "The values of export.nii.gz (0..255) are not Hounsfield units: read back into HU."
    volume.warnings = [note]
    result.messages = [note, "Analysis ran on the CPU."]
    path = write_report(result, volume, tmp_path / "estimated.pdf")
    require_tools("pdftotext", "qpdf")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = re.sub(r"\s+", " ", pdf_text(path))
    assert "(HU estimated from its grey" in text and "density-based numbers are estimates" in text
    assert text.count("read back into HU.") == 1 and "Analysis ran on the CPU." in text


def test_a_study_no_slice_of_which_was_analysed_says_not_measured(tmp_path):
    """No lesion figure may read as "0 mL": a study the models did not run on (too coarse, no lungs)."""
    from jcs_viewer.pipeline.quantify import quantify

    volume, result = make_study(tmp_path, n_slices=8, size=48)  # a result stand-in: set what the runner sets
    result.lesion_mask = np.zeros_like(result.lesion_mask)
    result.segmented_slices = np.zeros(8, bool)
    result.slice_positive = np.zeros(8, bool)
    result.positive_slices = 0
    result.quant = quantify(volume, result.lung_mask, result.lesion_mask)
    result.decision, result.decision_reason = "not assessable", "The pixels are 4.2 mm wide, too coarse."
    path = write_report(result, volume, tmp_path / "coarse.pdf")
    require_tools("pdftotext", "qpdf")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = pdf_text(path)
    assert "Not measured: the models ran on no slice" in text
    assert "0.0 mL" not in text and "Lesion volume (mL)" in text  # n/a in its cells


def test_unwritable_target_raises_export_error_and_leaves_nothing(study, tmp_path):
    volume, result = study
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=r"a_file is a file, not a folder"):
        write_report(result, volume, blocker / "report.pdf")
    with pytest.raises(ExportError, match="a folder with that name exists"):
        write_report(result, volume, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_mismatched_edited_mask_is_an_export_error(study, tmp_path):
    volume, result = study
    with pytest.raises(ExportError, match="edited mask has shape"):
        write_report(result, volume, tmp_path / "r.pdf", edited_mask=np.zeros((2, 2, 2), np.uint8))


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, a folder even root cannot write")
def test_report_into_a_folder_nobody_may_write(study):
    volume, result = study
    with pytest.raises(ExportError, match=r"^Cannot write /sys/jcs_report\.pdf: .+\.$"):
        write_report(result, volume, "/sys/jcs_report.pdf")


@needs_poppler
def test_activation_outside_the_lungs_is_shown_and_said(tmp_path):
    """A classifier that looks at the table, not the lungs, must be visible in the key images:
    the crop widens to the hot region and the caption says where the peak is."""
    volume, result = make_study(tmp_path, n_slices=12, size=64)
    cams = np.full(result.cams.shape, 20, np.uint8)
    cams[:, 15, 6:10] = 255  # bottom edge of the 16x16 map: below the lungs, outside the body
    result.cams = cams
    content = pdf_module.build_content(result, volume)
    crop, pngs, peaks = pdf_module.render_key_images(result, volume, content)
    lung_rows = np.flatnonzero((result.lung_mask > 0).any(axis=(0, 2)))
    assert crop.y1 == 64 > lung_rows[-1] + 8  # far beyond the lungs' own margin
    assert set(peaks) == {k.index for k in content.key_slices} and set(peaks.values()) == {"outside the lungs"}
    path = write_report(result, volume, tmp_path / "r.pdf")
    assert "activation peak outside the lungs" in re.sub(r"\s+", " ", pdf_text(path))

    result.cams = None  # without maps the lung crop stays as it was
    crop_lungs, _, peaks = pdf_module.render_key_images(result, volume, content)
    assert crop_lungs.y1 < 64 and peaks == {}


def test_scale_bar_matches_the_image_scale():
    """The bar's drawn length in points equals its label in mm at the key image's scale."""
    from jcs_viewer.report import images as img

    crop = img.Crop(y0=0, y1=200, x0=0, x1=300, out_h=280, out_w=420, mm_per_px=300 * 0.8 / 420)  # 240 mm wide
    fonts = Fonts("Helvetica", "Helvetica-Bold", "Courier", False)
    row = key_images.KeyImageRow(["Slice 1"], b"", None, crop, ("R", "L"), fonts, pdf_module.CONTENT_W)

    class Recorder:
        def __init__(self):
            self.rects, self.texts = [], []

        def rect(self, x, y, w, h, stroke=1, fill=0):
            self.rects.append((x, y, w, h))

        def drawString(self, x, y, text):
            self.texts.append(text)

        def stringWidth(self, text, font, size):
            return 5.0 * len(text)

        def __getattr__(self, name):  # colours, fonts, line widths
            return lambda *a, **k: None

    canvas = Recorder()
    row._scale_bar(canvas, 0.0, 0.0)
    label = next(t for t in canvas.texts if t.endswith(" mm"))
    length_mm = float(label.split()[0])
    bar = canvas.rects[0]
    points_per_mm = row.img_w / 240.0
    assert bar[2] == pytest.approx(length_mm * points_per_mm, rel=1e-6)
    assert 0.1 * row.img_w < bar[2] <= 0.4 * row.img_w


@needs_poppler
def test_models_table_keeps_names_whole_and_patient_fields_in_words(study, tmp_path):
    volume, result = study
    long_name = "jcs_cls_lite-covidct-v1"
    result_models = dict(result.models)
    try:
        result.models = {"cls": {"name": long_name, "arch": "jcs_cls_lite", "sha256": "ef" * 32},
                         "seg": {"name": "jcs_seg_lite-medseg-v1", "arch": "jcs_seg_lite", "sha256": ""}}
        path = write_report(result, volume, tmp_path / "r.pdf")
    finally:
        result.models = result_models
    text = pdf_text(path)
    assert long_name in text and "jcs_seg_lite-medseg-v1" in text  # not broken inside the name
    assert "ef" * 32 in text  # the hash on one line
    assert "classification" in text and "segmentation" in text and "not recorded" in text
    assert re.search(r"Sex / age\s+female", text)  # "F" spelled out


def test_dicom_sex_and_age_are_spelled_out():
    from jcs_viewer.vocabulary import age_words, sex_word

    assert sex_word("O") == "other" and sex_word("M") == "male" and sex_word("") == ""
    assert age_words("045Y") == "45 years" and age_words("001M") == "1 month"
    assert age_words("about 40") == "about 40" and age_words("Y") == "Y"


def test_person_names_are_written_group_by_group():
    """PS3.5's examples: the alphabetic group, then the ideographic one in brackets (family name first, no comma);
    the phonetic group only where it is the only one. ``Yamada^Tarou=山田^太郎=...`` printed as
    ``Yamada, Tarou=山田 太郎=やまだ`` before the groups were told apart."""
    from jcs_viewer.vocabulary import person_name

    assert person_name("Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046") == (
        "Yamada, Tarou (\u5c71\u7530 \u592a\u90ce)")
    assert person_name("Hong^Gildong=\u6d2a^\u5409\u6d1e=\ud64d^\uae38\ub3d9") == "Hong, Gildong (\u6d2a \u5409\u6d1e)"
    assert person_name("=\u5c71\u7530^\u592a\u90ce") == "\u5c71\u7530 \u592a\u90ce"
    assert person_name("\u738b^\u5c0f\u660e") == "\u738b \u5c0f\u660e"  # GB18030: Chinese in the alphabetic group
    assert person_name("==\u3084\u307e\u3060^\u305f\u308d\u3046") == "\u3084\u307e\u3060 \u305f\u308d\u3046"
    assert person_name("Doe^John^Q^Dr^Jr") == "Doe, John Q" and person_name("Doe") == "Doe"
    assert person_name("") == "" and person_name("Doe^John=") == "Doe, John"


def test_counts_take_the_noun_in_the_right_number():
    from jcs_viewer.vocabulary import counted

    assert counted(1, "slice") == "1 slice" and counted(0, "slice") == "0 slices" and counted(3, "slice") == "3 slices"
    assert counted(-1, "day") == "-1 day" and counted(-2, "day") == "-2 days"
    assert counted(1, "study", "studies") == "1 study" and counted(2, "study", "studies") == "2 studies"
