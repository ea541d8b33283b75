"""The score strip under the image: per-slice COVID probability, cutoff, flagged runs, review ticks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from jcs_viewer.gui.state import ViewerState
from jcs_viewer.session.review import ReviewDecision

if TYPE_CHECKING:
    from jcs_viewer.pipeline.result import StudyResult

CONFIRMED_BRUSH = (40, 200, 70)
#: Up to this many slices, every slice gets its numbered tick.
MAX_TICKED_SLICES = 12
REJECTED_BRUSH = (150, 150, 150)
FLAG_FILL = (255, 120, 0, 55)
_LEGEND_TAIL = ("<span style='color:#ffc800'>╌ cutoff</span> &nbsp; "
                "<span style='color:#ff6060'>▆ lesion area (edited, scaled)</span> &nbsp; "
                "<span style='color:#c87832'>▒ flagged</span> &nbsp; "
                "<span style='color:#28c846'>▼</span>/<span style='color:#969696'>▼</span> confirmed/rejected")
STRIP_LEGEND = "slice &nbsp;&nbsp; <span style='color:#5aaaff'>━ P(COVID)</span> &nbsp; " + _LEGEND_TAIL
JOINT_LEGEND = ("slice &nbsp;&nbsp; <span style='color:#5aaaff'>━ slice score</span> &nbsp; "
                "<span style='color:#b4b4ff'>┈ classifier P(COVID)</span> &nbsp; " + _LEGEND_TAIL)


def _unscored_as_gap(result: StudyResult, values: Any) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    scored = getattr(result, "scored_slices", None)
    if scored is not None and len(scored) == len(out):
        out[~np.asarray(scored, dtype=bool)] = np.nan
    return out


def lone_points(values: np.ndarray) -> np.ndarray:
    """``bool``: the finite values with no finite neighbour, which a line joining neighbours cannot draw (a single
    slice, a scored slice between slices without lung)."""
    finite = np.isfinite(np.asarray(values, dtype=float))
    before = np.concatenate(([False], finite[:-1]))
    after = np.concatenate((finite[1:], [False]))
    return finite & ~before & ~after


def flagged_runs(positive: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` slice index of each run of consecutive True values."""
    p = np.asarray(positive, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate(([0], p, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


class StripViewBox(pg.ViewBox):
    """Click or drag anywhere on the strip to move to that slice (no pan/zoom here)."""

    def __init__(self, state: ViewerState) -> None:
        super().__init__(enableMenu=False)
        self.viewer = state
        self.setMouseEnabled(x=False, y=False)

    def _go(self, ev: Any) -> None:
        # The strip shows 1-based slice numbers, like the status bar and the review list.
        self.viewer.set_slice(self.mapSceneToView(ev.scenePos()).x() - 1)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._go(ev)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._go(ev)

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self.viewer.step(1 if delta > 0 else -1)
        ev.accept()


class ScoreStrip(pg.PlotWidget):
    """Observes the state's result, slice and review; writes only the slice."""

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        self.viewer = state
        super().__init__(parent, viewBox=StripViewBox(state), background=(24, 24, 28))
        self.setToolTip("Per-slice score (the COVID probability, or with the joint score its mean with the "
                        "lesion evidence). Click or drag to go to a slice; "
                        "shaded: flagged runs; ticks: confirmed (green) / rejected (grey); "
                        "red: lesion area per slice (edited mask), scaled to the largest.")
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setLabel("left", "score")  # the default joint score's name, so the label does not change on a result
        # The axis title doubles as the legend: four marks share the strip and a tooltip is not enough.
        plot.setLabel("bottom", STRIP_LEGEND)
        plot.showGrid(x=False, y=True, alpha=0.2)
        plot.setYRange(0.0, 1.12, padding=0.0)
        plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])
        # Lesion area per slice (the edited mask, live), scaled to its largest slice, drawn under the curve.
        # Steps a slice wide: a slice's area is its own (a line between slices drew nothing for a single slice).
        self.area_curve = plot.plot([], [], pen=pg.mkPen((255, 90, 90, 170), width=1), fillLevel=0.0,
                                    brush=pg.mkBrush(255, 60, 60, 50), stepMode="center")
        self.area_curve.setZValue(-5)
        # With the joint score, the classifier's own probability as a faint dotted line under the score.
        self.classifier_curve = plot.plot([], [], pen=pg.mkPen((180, 180, 255, 150), width=1,
                                                               style=Qt.PenStyle.DotLine))
        self.curve = plot.plot([], [], pen=pg.mkPen((90, 170, 255), width=2))
        self.cutoff_line = pg.InfiniteLine(pos=0.5, angle=0, pen=pg.mkPen((255, 200, 0), style=Qt.PenStyle.DashLine))
        self.marker = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen((255, 255, 255), width=2))
        self.ticks = pg.ScatterPlotItem(size=9, symbol="t1", pen=None)
        # The lone points of both curves as dots, each in its curve's colour.
        self.lone = pg.ScatterPlotItem(symbol="o", pen=None)
        for item in (self.cutoff_line, self.marker, self.ticks, self.lone):
            plot.addItem(item)
        self.cutoff_line.setZValue(5)
        self.marker.setZValue(10)
        self._regions: list[pg.LinearRegionItem] = []
        self.setMinimumHeight(90)

        state.on("volume", lambda v: self._on_result(None))
        state.on("result", self._on_result)
        state.on("slice", lambda z: self.marker.setValue(z + 1))
        state.on("review", lambda z, d: self._update_ticks())
        state.on("quant", self._draw_area)

    def _on_result(self, result: StudyResult | None) -> None:
        plot = self.getPlotItem()
        for region in self._regions:
            plot.removeItem(region)
        self._regions = []
        n = max(1, self.viewer.n_slices)
        plot.setXRange(0.5, n + 0.5, padding=0.0)
        # Slice numbers are whole: a short study gets one tick a slice (pyqtgraph would label 0.6 ... 1.4).
        plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(1, n + 1)]] if n <= MAX_TICKED_SLICES else None)
        joint = result is not None and getattr(result, "slice_score", "classifier") == "joint"
        plot.setLabel("left", "P(COVID)" if result is not None and not joint else "score")
        plot.setLabel("bottom", JOINT_LEGEND if joint else STRIP_LEGEND)
        classifier = _unscored_as_gap(result, result.classifier_probability) if joint else np.zeros(0)
        self.classifier_curve.setData(np.arange(1, len(classifier) + 1), classifier, connect="finite")
        if result is None:
            self.curve.setData([], [])
            self.area_curve.setData([], [])
            self.lone.setData([], [])
            self.cutoff_line.hide()
            self._update_ticks()
            return
        # Slices without lung have no score: a gap in the curve, not a zero.
        prob = _unscored_as_gap(result, result.slice_probability)
        self.curve.setData(np.arange(1, len(prob) + 1), prob, connect="finite")
        self._draw_lone_points(prob, classifier)
        self._draw_area()
        self.cutoff_line.setValue(float(getattr(result, "slice_cutoff", 0.5)))
        self.cutoff_line.show()
        for first, last in flagged_runs(result.slice_positive):
            region = pg.LinearRegionItem((first + 0.5, last + 1.5), movable=False,
                                         brush=pg.mkBrush(*FLAG_FILL), pen=pg.mkPen(None))
            region.setZValue(-10)
            plot.addItem(region)
            self._regions.append(region)
        self._update_ticks()

    def _draw_lone_points(self, score: np.ndarray, classifier: np.ndarray) -> None:
        spots = []
        for values, colour, size in ((classifier, (180, 180, 255, 200), 6), (score, (90, 170, 255), 9)):
            for z in np.flatnonzero(lone_points(values)):
                spots.append({"pos": (z + 1, values[z]), "brush": pg.mkBrush(*colour), "size": size})
        self.lone.setData(spots)

    def _draw_area(self) -> None:
        """Per-slice lesion area of the shown (edited) mask, as a red filled curve scaled to 0..1."""
        quant = getattr(self.viewer.result, "quant", None)
        area = getattr(quant, "per_slice_area_mm2", None)
        if area is None or len(area) == 0:
            self.area_curve.setData([], [])
            return
        area = np.asarray(area, dtype=float)
        peak = float(area.max())
        # slice k (numbered from 1) spans k - 0.5 .. k + 0.5
        self.area_curve.setData(np.arange(len(area) + 1) + 0.5, area / peak if peak > 0 else area)

    def _update_ticks(self) -> None:
        decisions = self.viewer.review.decisions()
        if not decisions:
            self.ticks.setData([], [])
            return
        xs = [z + 1 for z in decisions]
        brushes = [pg.mkBrush(*(CONFIRMED_BRUSH if d == ReviewDecision.CONFIRMED else REJECTED_BRUSH))
                   for d in decisions.values()]
        self.ticks.setData(x=xs, y=[1.06] * len(xs), brush=brushes)

    @property
    def flagged_region_count(self) -> int:
        return len(self._regions)
