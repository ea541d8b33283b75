"""Overlay controls (activation map, lesions, lung outline) and a small legend."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QWidget)

from jcs_viewer.gui import overlays
from jcs_viewer.gui.reformat import SLAB_MODES
from jcs_viewer.gui.slice_view import LUNG_COLORS
from jcs_viewer.gui.state import LayerSettings, ViewerState


def _colorbar(name: str, width: int = 90, height: int = 10) -> QPixmap:
    lut = overlays.colormap_lut(name)
    gradient = QLinearGradient(0, 0, width, 0)
    for i in range(0, 256, 16):
        r, g, b, _ = (int(v) for v in lut[i])
        gradient.setColorAt(i / 255.0, QColor(r, g, b))
    image = QImage(width, height, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    painter.fillRect(0, 0, width, height, gradient)
    painter.end()
    return QPixmap.fromImage(image)


def _slider(value: float) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(int(round(value * 100)))
    slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    slider.setToolTip("Opacity")
    return slider


class LayersPanel(QWidget):
    """Writes :class:`LayerSettings` into the state and mirrors it back (e.g. after key ``s``)."""

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        layers = state.layers
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setVerticalSpacing(3)

        self.all_box = QCheckBox("Show overlays (S)")
        self.all_box.setToolTip("Toggle every overlay at once (key S)")
        self.cam_box = QCheckBox("Activation map")
        self.cam_box.setToolTip("Grad-CAM: where the classifier looked")
        self.cam_opacity = _slider(layers.cam_opacity)
        self.cam_cmap = QComboBox()
        self.cam_cmap.addItems(overlays.COLORMAPS)
        self.cam_cmap.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cam_flagged = QCheckBox("only on flagged slices")
        self.cam_flagged.setToolTip("Show the activation map only where the classifier flagged the slice")
        self.lesion_box = QCheckBox("Lesions")
        self.lesion_box.setToolTip("The AI's lesion segmentation")
        self.lesion_opacity = _slider(layers.lesion_opacity)
        self.lesion_outline = QCheckBox("Outline")
        self.lesion_outline.setToolTip("Draw lesion outlines instead of a filled mask")
        self.lesion_color = QPushButton()
        self.lesion_color.setToolTip("Lesion colour")
        self.lesion_color.setFixedWidth(28)
        self.lung_box = QCheckBox("Lung outline")
        self.lung_opacity = _slider(layers.lung_opacity)
        self.slab_mode = QComboBox()
        for key, name in SLAB_MODES.items():
            self.slab_mode.addItem(name, key)
        self.slab_mode.setToolTip("Slab: MIP for vessels against nodules, MinIP for airways and ground glass, "
                                  "average for a thicker, quieter slice (axial and reformatted views)")
        self.slab_mm = QDoubleSpinBox()
        self.slab_mm.setRange(2.0, 50.0)
        self.slab_mm.setSingleStep(1.0)
        self.slab_mm.setDecimals(0)
        self.slab_mm.setSuffix(" mm")
        self.slab_mm.setToolTip("Slab thickness, centred on the slice")
        for widget in (self.slab_mode, self.slab_mm):
            widget.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        for widget in (self.all_box, self.cam_box, self.cam_flagged, self.lesion_box, self.lesion_outline,
                       self.lung_box, self.lesion_color):
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        grid.addWidget(self.all_box, 0, 0, 1, 3)
        grid.addWidget(self.cam_box, 1, 0)
        grid.addWidget(self.cam_opacity, 1, 1)
        grid.addWidget(self.cam_cmap, 1, 2)
        grid.addWidget(self.cam_flagged, 2, 1, 1, 2)
        grid.addWidget(self.lesion_box, 3, 0)
        grid.addWidget(self.lesion_opacity, 3, 1)
        lesion_opts = QHBoxLayout()
        lesion_opts.addWidget(self.lesion_outline)
        lesion_opts.addWidget(self.lesion_color)
        grid.addLayout(lesion_opts, 3, 2)
        grid.addWidget(self.lung_box, 4, 0)
        grid.addWidget(self.lung_opacity, 4, 1)
        grid.addWidget(QLabel("Slab"), 5, 0)
        grid.addWidget(self.slab_mode, 5, 1)
        grid.addWidget(self.slab_mm, 5, 2)

        # Legend: one row of swatches and the activation colour bar.
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.cam_bar = QLabel()
        legend_row = QHBoxLayout()
        legend_row.setSpacing(6)
        legend_row.addWidget(QLabel("low"))
        legend_row.addWidget(self.cam_bar)
        legend_row.addWidget(QLabel("high activation"))
        legend_row.addStretch(1)
        grid.addLayout(legend_row, 6, 0, 1, 3)
        grid.addWidget(self.legend, 7, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(8, 1)  # in a tab taller than the controls, they stay at the top

        self.all_box.toggled.connect(lambda on: state.set_layers(overlays_visible=on))
        self.cam_box.toggled.connect(lambda on: state.set_layers(cam_visible=on))
        self.cam_flagged.toggled.connect(lambda on: state.set_layers(cam_flagged_only=on))
        self.lesion_box.toggled.connect(lambda on: state.set_layers(lesion_visible=on))
        self.lung_box.toggled.connect(lambda on: state.set_layers(lung_visible=on))
        self.lesion_outline.toggled.connect(lambda on: state.set_layers(lesion_outline=on))
        self.cam_opacity.valueChanged.connect(lambda v: state.set_layers(cam_opacity=v / 100.0))
        self.lesion_opacity.valueChanged.connect(lambda v: state.set_layers(lesion_opacity=v / 100.0))
        self.lung_opacity.valueChanged.connect(lambda v: state.set_layers(lung_opacity=v / 100.0))
        self.cam_cmap.currentTextChanged.connect(lambda name: state.set_layers(cam_colormap=name))
        self.lesion_color.clicked.connect(self._pick_color)
        self.slab_mode.currentIndexChanged.connect(lambda _: state.set_layers(slab_mode=self.slab_mode.currentData()))
        self.slab_mm.valueChanged.connect(lambda mm: state.set_layers(slab_mm=float(mm)))
        state.on("layers", self._mirror)
        self._mirror(layers)

    def _pick_color(self) -> None:
        current = QColor(*self.state.layers.lesion_color)
        color = QColorDialog.getColor(current, self, "Lesion colour")
        if color.isValid():
            self.state.set_layers(lesion_color=(color.red(), color.green(), color.blue()))

    def _mirror(self, layers: LayerSettings) -> None:
        """Show the state's settings without echoing them back."""
        pairs = ((self.all_box, layers.overlays_visible), (self.cam_box, layers.cam_visible),
                 (self.lesion_box, layers.lesion_visible), (self.lung_box, layers.lung_visible),
                 (self.lesion_outline, layers.lesion_outline), (self.cam_flagged, layers.cam_flagged_only))
        for box, value in pairs:
            box.blockSignals(True)
            box.setChecked(value)
            box.blockSignals(False)
        for detail in (self.cam_box, self.cam_flagged, self.lesion_box, self.lung_box, self.cam_opacity,
                       self.lesion_opacity,
                       self.lung_opacity, self.cam_cmap, self.lesion_outline, self.lesion_color):
            detail.setEnabled(layers.overlays_visible)
        if self.cam_cmap.currentText() != layers.cam_colormap:
            self.cam_cmap.blockSignals(True)
            self.cam_cmap.setCurrentText(layers.cam_colormap)
            self.cam_cmap.blockSignals(False)
        for widget in (self.slab_mode, self.slab_mm):
            widget.blockSignals(True)
        self.slab_mode.setCurrentIndex(max(0, self.slab_mode.findData(layers.slab_mode)))
        self.slab_mm.setValue(layers.slab_mm)
        for widget in (self.slab_mode, self.slab_mm):
            widget.blockSignals(False)
        self.slab_mm.setEnabled(layers.slab_mode != "off")
        r, g, b = layers.lesion_color
        self.lesion_color.setStyleSheet(f"background-color: rgb({r},{g},{b});")
        self.cam_bar.setPixmap(_colorbar(layers.cam_colormap))
        right, left = LUNG_COLORS[1], LUNG_COLORS[2]
        lesion_hex = "#%02x%02x%02x" % layers.lesion_color
        # Swatches on a dark chip, as the colours appear over lung tissue (pale green on the
        # panel's light grey was invisible).
        chip = "background-color:#202024; color:%s; font-weight:bold"
        self.legend.setText(
            f"<span style='{chip % lesion_hex}'>&nbsp;■&nbsp;</span> lesion &nbsp;&nbsp; "
            f"<span style='{chip % ('#%02x%02x%02x' % right)}'>&nbsp;□&nbsp;</span> right lung &nbsp;&nbsp; "
            f"<span style='{chip % ('#%02x%02x%02x' % left)}'>&nbsp;□&nbsp;</span> left lung")
