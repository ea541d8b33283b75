"""Measuring on the axial view: the ruler (L) and the ellipse ROI (O) tools, their drawing on the slice, and the
Measurements tab that lists them. The measurements belong to the study's session (saved with it, in the report)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QGraphicsEllipseItem, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from jcs_viewer.session.measurements import Measurement

MEASURE_TOOLS = {"ruler": "ruler", "ellipse": "ellipse"}
_COLOUR = QColor(255, 90, 255)  # magenta: apart from the lungs (cyan, green), lesions (red), AI outline (yellow)


class MeasureTool(QObject):
    """Draws the session's measurements of the current slice and makes new ones from left-drags.

    Signals:
        changed(): a measurement was added or removed (the panel lists them again).
    """

    changed = Signal()

    def __init__(self, state: Any, slice_view: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.state, self.slice_view = state, slice_view
        self.session: Any = None
        self._items: list[Any] = []
        self._start: tuple[float, float] | None = None
        self._preview: Measurement | None = None
        state.on("slice", lambda z: self.redraw())
        state.on("volume", lambda v: self.set_session(None))

    def set_session(self, session: Any) -> None:
        if self.session is not None:
            self.session.remove_measure_listener(self._on_measured)
        self.session = session
        if session is not None:
            session.add_measure_listener(self._on_measured)
        self._on_measured()

    def _on_measured(self) -> None:
        self.redraw()
        self.changed.emit()

    def lines(self) -> list[str]:
        """Each measurement as the panel and the report say it."""
        if self.session is None:
            return []
        volume = self.state.volume
        spacing = tuple(float(s) for s in volume.spacing[1:])
        return [m.describe(volume.array[m.z], spacing, bool(volume.is_hu)) for m in self.session.measurements]

    # ------------------------------------------------------------------ drawing
    def _pixel_to_view(self, x: float, y: float) -> QPointF:
        _, sy, sx = self.state.volume.spacing
        return QPointF((x + 0.5) * sx, (y + 0.5) * sy)

    def redraw(self) -> None:
        view = self.slice_view.view
        for item in self._items:
            view.removeItem(item)
        self._items = []
        if self.session is None or self.state.volume is None:
            return
        shown = [m for m in self.session.measurements if m.z == self.state.z]
        if self._preview is not None:
            shown.append(self._preview)
        volume = self.state.volume
        spacing = tuple(float(s) for s in volume.spacing[1:])
        pen = QPen(_COLOUR, 2)
        pen.setCosmetic(True)
        for m in shown:
            a, b = self._pixel_to_view(*m.p0), self._pixel_to_view(*m.p1)
            if m.kind == "ruler":
                shape = pg.PlotCurveItem([a.x(), b.x()], [a.y(), b.y()], pen=pen)
                text = f"{m.length_mm(spacing):.1f} mm"
            else:
                shape = QGraphicsEllipseItem(QRectF(a, b).normalized())
                shape.setPen(pen)
                s = m.stats(volume.array[m.z], spacing)
                unit = "HU" if volume.is_hu else ""
                text = f"{s['area_mm2']:.0f} mm²" + (f"\n{s['mean']:.0f} ± {s['sd']:.0f} {unit}" if s["n"] else "")
            label = pg.TextItem(text, color=_COLOUR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
            label.setPos(max(a.x(), b.x()), min(a.y(), b.y()))
            for item in (shape, label):
                item.setZValue(30)
                view.addItem(item)
                self._items.append(item)

    # ------------------------------------------------------------------ mouse
    def handle_drag(self, ev: Any, kind: str, pixel: Any) -> bool:
        """A left-drag draws a ``kind`` measurement from press to release; ``pixel(view_point)`` maps to pixels."""
        view = self.slice_view.view
        ev.accept()
        if ev.isStart():
            self._start = pixel(view.mapToView(ev.buttonDownPos()))
        if self._start is None:
            return True
        end = pixel(view.mapToView(ev.pos()))
        self._preview = Measurement(kind, self.state.z, self._start, end)
        if ev.isFinish():
            done, self._preview, self._start = self._preview, None, None
            if done.p0 != done.p1:
                self.session.add_measurement(done)
                return True
        self.redraw()
        return True


class MeasurePanel(QWidget):
    """The Measurements tab: the two tools, the list (double-click: go to the slice), delete."""

    def __init__(self, tool: MeasureTool, set_tool: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.tool = tool
        row = QHBoxLayout()
        self.ruler_button = QPushButton("Ruler (L)")
        self.ellipse_button = QPushButton("Ellipse ROI (O)")
        self.ruler_button.setToolTip("Left-drag a distance on the axial slice")
        self.ellipse_button.setToolTip("Left-drag a box: the ellipse inside it gives area and HU mean, SD, min, max")
        self.ruler_button.clicked.connect(lambda *_: set_tool("ruler"))
        self.ellipse_button.clicked.connect(lambda *_: set_tool("ellipse"))
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        for button in (self.ruler_button, self.ellipse_button, self.delete_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(button)
        self.list = QListWidget()
        self.list.itemDoubleClicked.connect(self._go_to)
        self.hint = QLabel("Analyse the study, then measure: saved with the session and listed in the report.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #777;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 6, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        tool.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for line in self.tool.lines():
            self.list.addItem(QListWidgetItem(line))
        self.delete_button.setEnabled(self.list.count() > 0)

    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if self.tool.session is not None and 0 <= row < len(self.tool.session.measurements):
            self.tool.session.remove_measurement(row)

    def _go_to(self, item: QListWidgetItem) -> None:
        row = self.list.row(item)
        if self.tool.session is not None and 0 <= row < len(self.tool.session.measurements):
            self.tool.state.set_slice(self.tool.session.measurements[row].z)
