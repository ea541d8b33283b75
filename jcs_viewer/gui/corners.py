"""Image corners of the axial view, as on a PACS viewer: who and what (patient; study and series), where (slice,
position, thickness) and how it is shown (window/level, zoom). Key ``I`` hides them; View ▸ Anonymise view replaces
the patient's name, ID and birth date (and the study's date and description) by "Anonymised"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsDropShadowEffect, QGraphicsSimpleTextItem

from jcs_viewer.vocabulary import age_words, dicom_date, person_name, sex_word

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
_PAD = 6.0


def corner_texts(volume: Volume, z: int, window: tuple[float, float], preset: str, zoom: float,
                 anonymised: bool, slab: str = "") -> dict[str, str]:
    """The four corners' lines for slice ``z`` of ``volume`` (pure: what the view shows and the tests read).

    Args:
        volume: the study.
        z: the slice shown (0-based; shown from 1).
        window: (width, level).
        preset: the window's name ("lung", "custom", ...).
        zoom: screen pixels per image pixel.
        anonymised: leave out the identifying fields.
        slab: the slab shown instead of the slice ("MIP slab 10 mm"), or "".
    """
    info = volume.info
    if anonymised:
        patient = ["Anonymised"]
        study = [line for line in (info.modality,) if line]
    else:
        sex_age = ", ".join(v for v in (sex_word(info.sex), age_words(info.age)) if v)
        patient = [line for line in (person_name(info.patient_name), info.patient_id and f"ID {info.patient_id}",
                                     info.birth_date and f"born {dicom_date(info.birth_date)}", sex_age) if line]
        study = [line for line in (dicom_date(info.study_date), info.study_description, info.modality) if line]
    series = " ".join(v for v in (info.series_number and f"Series {info.series_number}", info.series_description)
                      if v)
    n = int(volume.array.shape[0])
    where = [f"Slice {z + 1} / {n}"]
    try:
        where.append(f"z {volume.slice_position_mm(z):.1f} mm")
    except Exception:  # noqa: BLE001 - a volume without geometry still shows its slices
        pass
    thickness = info.slice_thickness or float(volume.spacing[0])
    where.append(f"thickness {thickness:.3g} mm")
    if slab:
        where.append(slab)
    width, level = window
    unit = " (grey levels)" if not volume.is_hu else " (estimated HU)" if volume.hu_estimated else ""
    shown = [f"W {width:.0f}  L {level:.0f}{unit}" + (f"  {preset}" if preset else ""), f"Zoom {zoom * 100:.0f} %"]
    return {"top_left": "\n".join(patient), "top_right": "\n".join([*study, series] if series else study),
            "bottom_left": "\n".join(where), "bottom_right": "\n".join(shown)}


class ImageCorners:
    """Four text blocks pinned to the corners of a view box (they stay put while the image pans and zooms), light
    grey with a dark shadow so they read on bright and dark images alike."""

    def __init__(self, view: pg.ViewBox) -> None:
        self._view = view
        font = QFont()
        font.setPointSize(9)
        self.items: dict[str, QGraphicsSimpleTextItem] = {}
        for corner in CORNERS:
            item = QGraphicsSimpleTextItem("", view)  # a child of the box, not of the panned scene
            item.setBrush(QColor(235, 235, 235))
            item.setFont(font)
            item.setZValue(100)
            shadow = QGraphicsDropShadowEffect()
            shadow.setBlurRadius(3.0)
            shadow.setOffset(1.0, 1.0)
            shadow.setColor(QColor(0, 0, 0, 255))
            item.setGraphicsEffect(shadow)
            self.items[corner] = item
        view.sigResized.connect(lambda *_: self._place())

    def set_texts(self, texts: dict[str, str]) -> None:
        for corner, item in self.items.items():
            item.setText(texts.get(corner, ""))
        self._place()

    def set_visible(self, on: bool) -> None:
        for item in self.items.values():
            item.setVisible(on)

    def texts(self) -> dict[str, str]:
        return {corner: item.text() if item.isVisible() else "" for corner, item in self.items.items()}

    def _place(self) -> None:
        rect = self._view.boundingRect()
        w, h = rect.width(), rect.height()
        boxes = {corner: item.boundingRect() for corner, item in self.items.items()}
        pos: dict[str, tuple[float, float]] = {}
        for top, left, right in ((True, "top_left", "top_right"), (False, "bottom_left", "bottom_right")):
            lb, rb = boxes[left], boxes[right]
            y_left = _PAD if top else h - lb.height() - _PAD
            y_right = _PAD if top else h - rb.height() - _PAD
            if lb.width() + rb.width() + 3 * _PAD > w:  # a narrow pane (1×3): the right block goes under/over
                y_right = y_left + lb.height() if top else y_left - rb.height()
            pos[left], pos[right] = (_PAD, y_left), (w - rb.width() - _PAD, y_right)
        for corner, item in self.items.items():
            item.setPos(*pos[corner])
