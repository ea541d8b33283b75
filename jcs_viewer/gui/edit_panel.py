"""The editing panel: tool buttons, brush size, HU limit, 3-D brush, slice tools, notes, save status."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from jcs_viewer.gui.editing import DEFAULT_HU_RANGE, MAX_RADIUS_MM, MIN_RADIUS_MM, EditController

NOTES_DELAY_MS = 400  # notes are stored once typing pauses


def slice_ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3–5, 9"``."""
    runs: list[list[int]] = []
    for z in indices:
        if runs and z == runs[-1][1] + 1:
            runs[-1][1] = z
        else:
            runs.append([z, z])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


def _button(text: str, tip: str, slot: Any) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the viewer
    button.clicked.connect(lambda *_: slot())
    return button


class EditPanel(QWidget):
    """Controls for :class:`EditController`; mirrors its state (keys change it too)."""

    def __init__(self, controller: EditController, parent: Any = None) -> None:
        super().__init__(parent)
        self.controller = controller
        c = controller

        self.tool_buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        group.setExclusive(True)
        self._tool_group = group
        tools_row = QHBoxLayout()
        for tool, text, tip in (("none", "Navigate", "No tool: the mouse navigates (as set in Settings)"),
                                ("brush", "Brush", "Paint lesion (B): left-drag; hold Ctrl to erase"),
                                ("eraser", "Eraser", "Erase lesion (E): left-drag"),
                                ("grow", "Grow", "Grow a lesion (G): click; paints the connected region whose HU lie "
                                 "in the range below, inside the lungs")):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, t=tool: c.set_tool(t))
            group.addButton(button)
            tools_row.addWidget(button)
            self.tool_buttons[tool] = button

        self.radius = QDoubleSpinBox()
        self.radius.setRange(MIN_RADIUS_MM, MAX_RADIUS_MM)
        self.radius.setDecimals(1)
        self.radius.setSingleStep(0.5)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush radius ([ and ], or Shift+wheel)")
        self.radius.valueChanged.connect(c.set_radius)

        self.hu_box = QCheckBox("Only HU from")
        self.hu_box.setToolTip("Paint only voxels inside this HU range (e.g. lung lesions −800…+100)")
        self.hu_low, self.hu_high = QSpinBox(), QSpinBox()
        for box, value in ((self.hu_low, DEFAULT_HU_RANGE[0]), (self.hu_high, DEFAULT_HU_RANGE[1])):
            box.setRange(-1024, 3071)
            box.setSingleStep(50)
            box.setValue(int(value))
            box.valueChanged.connect(self._hu_changed)
        self.hu_box.toggled.connect(self._hu_changed)

        self.sphere_box = QCheckBox("3-D brush (ball across slices)")
        self.sphere_box.toggled.connect(c.set_sphere)
        self.ai_box = QCheckBox("Show AI outline (yellow) for comparison")
        self.ai_box.toggled.connect(c.set_show_ai_outline)

        self.island_area = QDoubleSpinBox()
        self.island_area.setRange(0.5, 5000.0)
        self.island_area.setValue(20.0)
        self.island_area.setSuffix(" mm²")
        self.island_area.setDecimals(1)

        # Compact rows: the right column also holds the summary, the review list and the layers.
        tools_row.addWidget(QLabel("Radius"))
        tools_row.addWidget(self.radius)
        options = QHBoxLayout()
        options.addWidget(self.hu_box)
        options.addWidget(self.hu_low)
        options.addWidget(QLabel("to"))
        options.addWidget(self.hu_high)
        options.addStretch(1)
        options2 = QHBoxLayout()
        options2.addWidget(self.sphere_box)
        options2.addWidget(self.ai_box)
        options2.addStretch(1)
        self.sphere_box.setText("3-D brush")
        self.sphere_box.setToolTip("Each dab is a ball of the brush radius across neighbouring slices")
        self.ai_box.setText("AI outline (yellow)")
        self.ai_box.setToolTip("Show the AI's lesion outline for comparison with your edits")

        self.fill_button = _button("Fill holes", "Fill enclosed holes on this slice", c.fill_holes)
        self.islands_button = _button("Remove islands <", "Erase pieces smaller than this area on this slice",
                                      lambda: c.remove_islands(self.island_area.value()))
        self.clear_button = _button("Clear slice", "Erase every lesion pixel on this slice", c.clear_slice)
        self.reset_button = _button("Reset slice to AI", "This slice takes the AI's mask again", c.reset_slice)
        self.interpolate_button = _button("Interpolate", "Fill the slices between your edited slices from their "
                                          "shapes (Ctrl+I; up to 20 slices apart)", c.interpolate)
        self.accept_button = _button("Accept AI (all slices)", "The edited mask becomes the AI's mask on every "
                                     "slice (undoable)", c.accept_ai)
        self.undo_button = _button("Undo", "Ctrl+Z", c.undo)
        self.redo_button = _button("Redo", "Ctrl+Y / Ctrl+Shift+Z", c.redo)
        self.fill_button.setText("Fill holes")
        self.islands_button.setText("Islands <")
        self.reset_button.setText("Reset to AI")
        self.accept_button.setText("Accept AI")
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for widget in (self.fill_button, self.islands_button, self.island_area, self.clear_button,
                       self.interpolate_button):
            row1.addWidget(widget)
        for widget in (self.reset_button, self.accept_button, self.undo_button, self.redo_button):
            row2.addWidget(widget)

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Reviewer notes (saved with the session)")
        self.notes.setMaximumHeight(46)
        self._notes_timer = QTimer(self)
        self._notes_timer.setSingleShot(True)
        self._notes_timer.setInterval(NOTES_DELAY_MS)
        self._notes_timer.timeout.connect(self._store_notes)
        self.notes.textChanged.connect(self._notes_timer.start)
        self.save_label = QLabel()
        self.save_label.setStyleSheet("color: #888;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for row in (tools_row, options, options2, row1, row2):
            layout.addLayout(row)
        layout.addWidget(self.info)
        layout.addWidget(self.notes)
        layout.addWidget(self.save_label)

        c.tool_changed.connect(self._mirror_tool)
        c.radius_changed.connect(self._mirror_radius)
        c.session_changed.connect(self._on_session)
        c.history_changed.connect(self.refresh_info)
        self._mirror_tool(c.tool)
        self._mirror_radius(c.radius_mm)
        self._on_session(c.session)

    # ------------------------------------------------------------------ mirrors
    def _mirror_tool(self, tool: str) -> None:
        if tool in self.tool_buttons:
            self.tool_buttons[tool].setChecked(True)
            return
        # A measuring tool (the Measurements tab's): none of the editing tools is on.
        self._tool_group.setExclusive(False)
        for button in self.tool_buttons.values():
            button.setChecked(False)
        self._tool_group.setExclusive(True)

    def _mirror_radius(self, radius: float) -> None:
        if abs(self.radius.value() - radius) > 1e-6:
            self.radius.blockSignals(True)
            self.radius.setValue(radius)
            self.radius.blockSignals(False)

    def _hu_changed(self, *_: Any) -> None:
        self.controller.set_hu_limit(self.hu_box.isChecked(), self.hu_low.value(), self.hu_high.value())

    def _on_session(self, session: Any) -> None:
        enabled = session is not None
        for widget in (self.fill_button, self.islands_button, self.clear_button, self.reset_button,
                       self.accept_button, self.notes):
            widget.setEnabled(enabled)
        self.notes.blockSignals(True)
        self.notes.setPlainText(session.notes if session is not None else "")
        self.notes.blockSignals(False)
        self.refresh_info()

    def _store_notes(self) -> None:
        if self.controller.session is not None:
            self.controller.session.set_notes(self.notes.toPlainText())

    def refresh_info(self) -> None:
        """Undo/redo availability and the edited-vs-AI line."""
        session = self.controller.session
        if session is None:
            self.info.setText("Editing starts once the study is analysed.")
            self.undo_button.setEnabled(False)
            self.redo_button.setEnabled(False)
            return
        labels = session.labels
        self.undo_button.setEnabled(labels.can_undo)
        self.redo_button.setEnabled(labels.can_redo)
        self.undo_button.setToolTip(f"Undo {labels.next_undo_label()} (Ctrl+Z)" if labels.can_undo else "Ctrl+Z")
        self.redo_button.setToolTip(f"Redo {labels.next_redo_label()} (Ctrl+Y)" if labels.can_redo else "Ctrl+Y")
        edited = session.edited_slices()
        ai_ml = float(session.ai_result.quant.lesion_volume_ml["total"])
        now_ml = float(session.quant.lesion_volume_ml["total"])
        where = f" ({slice_ranges([z + 1 for z in edited])})" if edited else ""
        self.info.setText(f"Edited slices: {len(edited)}{where}. Lesions {now_ml:.1f} mL (AI {ai_ml:.1f} mL).")

    def set_save_status(self, text: str) -> None:
        self.save_label.setText(text)
