"""The report's key images: lesion overlay and activation map of each key slice side by side, cropped to the lungs,
with scale bar, orientation letters and legend drawn as vectors on top."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.platypus import CondPageBreak, Flowable, Paragraph, Spacer

from jcs_viewer.report import images as img
from jcs_viewer.report.content import ReportContent
from jcs_viewer.report.fonts import Fonts
from jcs_viewer.report.layout import CONTENT_W, GRID

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult


class KeyImageRow(Flowable):
    """One key slice: caption, lesion-overlay image and activation-map image side by side.

    The scale bar, orientation letters and labels are vector drawing on top of the images.
    """

    CAPTION_W = 36 * mm
    GAP = 3 * mm
    LABEL_H = 10
    MAX_IMAGE_H = 52 * mm  # four rows fit on a page

    def __init__(self, caption: list[str], left_png: bytes, right_png: bytes | None, crop: img.Crop,
                 orientation: tuple[str, str], fonts: Fonts, width: float) -> None:
        super().__init__()
        self.caption = caption
        self.left_png, self.right_png = left_png, right_png
        self.crop, self.orientation, self.fonts = crop, orientation, fonts
        self.width = width
        aspect = crop.out_h / crop.out_w
        self.img_w = (width - self.CAPTION_W - self.GAP) / 2
        self.img_h = self.img_w * aspect
        if self.img_h > self.MAX_IMAGE_H:
            self.img_h = self.MAX_IMAGE_H
            self.img_w = self.img_h / aspect
        self.height = self.img_h + self.LABEL_H + 4

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def _scale_bar(self, c: Any, x: float, y: float) -> None:
        mm_per_pt = self.crop.mm_per_px * self.crop.out_w / self.img_w
        length_mm = next((v for v in (50, 20, 10, 5) if v / mm_per_pt <= 0.4 * self.img_w), 5)
        length = length_mm / mm_per_pt
        # White bar inside a black frame: visible on dark lung and bright tissue alike.
        c.setFillColor(colors.white)
        c.setStrokeColor(colors.black)
        c.setLineWidth(0.8)
        c.rect(x + 6, y + 6, length, 3.5, stroke=1, fill=1)
        c.setFont(self.fonts.bold, 7)
        text = f"{length_mm} mm"
        tw = c.stringWidth(text, self.fonts.bold, 7)
        c.setFillColor(colors.black)
        c.rect(x + 6, y + 12, tw + 4, 9, stroke=0, fill=1)
        c.setFillColor(colors.white)
        c.drawString(x + 8, y + 14.5, text)

    def _orientation(self, c: Any, x: float, y: float) -> None:
        c.setFont(self.fonts.bold, 8)
        for text, tx in ((self.orientation[0], x + 3), (self.orientation[1], x + self.img_w - 10)):
            c.setFillColor(colors.black)
            c.rect(tx - 1, y + self.img_h / 2 - 4, 9, 10, stroke=0, fill=1)
            c.setFillColor(colors.white)
            c.drawString(tx + 1, y + self.img_h / 2 - 1.5, text)

    def draw(self) -> None:
        c = self.canv
        top = self.height
        c.setFillColor(colors.black)
        y = top - 9
        for i, line in enumerate(self.caption):
            font, size = (self.fonts.bold, 9) if i == 0 else (self.fonts.regular, 7.5)
            c.setFont(font, size)
            for part in simpleSplit(line, font, size, self.CAPTION_W - 4):
                c.drawString(0, y, part)
                y -= 11 if i == 0 else 9
        x = self.CAPTION_W
        for label, png in (("Lesion overlay", self.left_png), ("Activation map (Grad-CAM)", self.right_png)):
            c.setFillColor(colors.black)
            c.setFont(self.fonts.regular, 7.5)
            c.drawString(x, top - 8, label)
            iy = top - self.LABEL_H - self.img_h
            if png is None:
                c.setStrokeColor(GRID)
                c.rect(x, iy, self.img_w, self.img_h, stroke=1, fill=0)
                c.setFont(self.fonts.regular, 8)
                c.drawCentredString(x + self.img_w / 2, iy + self.img_h / 2, "no activation map in this result")
            else:
                c.drawImage(ImageReader(io.BytesIO(png)), x, iy, self.img_w, self.img_h)
                self._scale_bar(c, x, iy)
                self._orientation(c, x, iy)
            x += self.img_w + self.GAP


class ImageLegend(Flowable):
    """Explains the overlay marks: the hatched lesion with its double edge and the activation ramp."""

    def __init__(self, fonts: Fonts, width: float) -> None:
        super().__init__()
        self.fonts, self.width, self.height = fonts, width, 22
        gray = np.full((40, 60), 90, np.uint8)
        yy, xx = np.indices(gray.shape)
        blob = ((yy - 20) / 13.0) ** 2 + ((xx - 30) / 22.0) ** 2 <= 1
        self.swatch = img.png_bytes(img.lesion_overlay(gray, blob))
        self.ramp = img.png_bytes(img.colour_bar())

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c = self.canv
        c.drawImage(ImageReader(io.BytesIO(self.swatch)), 0, 0, 30, 20)
        c.setFont(self.fonts.regular, 7.5)
        c.setFillColor(colors.black)
        text = "lesion: hatched fill, white/black edge"
        c.drawString(35, 7, text)
        x = 35 + c.stringWidth(text, self.fonts.regular, 7.5) + 18
        for part in ("activation: low", None, "high (outlined from 50 %)"):
            if part is None:
                c.drawImage(ImageReader(io.BytesIO(self.ramp)), x, 4, 80, 9)
                x += 86
                continue
            c.drawString(x, 7, part)
            x += c.stringWidth(part, self.fonts.regular, 7.5) + (6 if part != "high" else 18)


def orientation_letters(direction: np.ndarray) -> tuple[str, str]:
    """Which patient side lies at the image's left and right edge (LPS: +x points to patient left)."""
    x_axis = np.asarray(direction, dtype=float).reshape(3, 3)[:, 0]
    return ("R", "L") if x_axis[0] >= 0 else ("L", "R")


def render_key_images(
    result: StudyResult, volume: Volume, content: ReportContent
) -> tuple[img.Crop, dict[int, tuple[bytes, bytes | None]], dict[int, str]]:
    """PNG bytes of the lesion-overlay and activation images of every key slice (one shared crop).

    The crop holds the lungs and the activation maps' hot regions of the key slices, so an
    activation outside the lungs is shown, not cropped away. Returns the crop, the PNGs per
    slice and, per slice with an activation map, where its peak lies ("in the lungs" or
    "outside the lungs").
    """
    lungs = np.asarray(result.lung_mask) > 0
    cams = getattr(result, "cams", None)
    slice_shape = tuple(volume.shape[1:])
    full_cams: dict[int, np.ndarray] = {}
    hot = None
    if cams is not None:
        for key in content.key_slices:
            full = img.upsample_cam(cams[key.index], slice_shape)
            full_cams[key.index] = full
            hot = (full >= img.CAM_CONTOUR) if hot is None else hot | (full >= img.CAM_CONTOUR)
    crop = img.field_of_view(lungs, slice_shape, volume.spacing[1:], include=hot)
    window = img.display_window(volume.array, volume.is_hu)
    pngs: dict[int, tuple[bytes, bytes | None]] = {}
    peaks: dict[int, str] = {}
    for key in content.key_slices:
        z = key.index
        left, right = img.render_pair(volume.array[z], content.lesion_mask[z], full_cams.get(z), crop, window)
        pngs[z] = (img.png_bytes(left), None if right is None else img.png_bytes(right))
        if z in full_cams and full_cams[z].any():
            y, x = np.unravel_index(int(np.argmax(full_cams[z])), slice_shape)
            peaks[z] = "in the lungs" if lungs[z, y, x] else "outside the lungs"
    return crop, pngs, peaks


def key_image_section(volume: Volume, content: ReportContent, crop: img.Crop,
                      pngs: dict[int, tuple[bytes, bytes | None]],
                      peaks: dict[int, str], st: dict[str, ParagraphStyle], fonts: Fonts) -> list[Any]:
    if not content.key_slices:
        return []
    w = CONTENT_W
    letters = orientation_letters(volume.direction)
    intro = ("The most involved slices (spread along the study) and the slices the reader confirmed, cropped to the "
             "lungs and wherever the activation map is hot; R/L mark the patient's right and left; "
             + (f"lung window W{img.LUNG_WINDOW[0]:.0f}/L{img.LUNG_WINDOW[1]:.0f}." if volume.is_hu else
                "window from the image's intensity percentiles (not Hounsfield units)."))
    out: list[Any] = [CondPageBreak(90 * mm), Paragraph("Key images", st["h2"]), Paragraph(intro, st["small"]),
                      Spacer(1, 2), ImageLegend(fonts, w), Spacer(1, 4)]
    for key in content.key_slices:
        caption = [
            f"Slice {key.index + 1}",
            f"position {key.position_mm:.1f} mm",
            f"score {key.probability:.2f}",
            f"lesion {key.area_mm2:,.0f} mm\u00b2",
            key.reason,
            f"review: {key.review_state}",
        ]
        if key.index in peaks:
            caption.append(f"activation peak {peaks[key.index]}")
        left, right = pngs[key.index]
        out += [KeyImageRow(caption, left, right, crop, letters, fonts, w), Spacer(1, 5)]
    return out
