"""View layouts of the main window: axial only or axial + coronal + sagittal (1×3), and the "3-D" tab.

:func:`install_views` wraps the window's existing axial view and score strip without rebuilding
them: the axial view moves into an :class:`MprPanel` (a horizontal splitter that adds the coronal
and sagittal views, built the first time the 1×3 layout is chosen), and the image area becomes the
"Slices" page of a tab widget whose second page is the lazily built 3-D view.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint
from PySide6.QtGui import QAction, QActionGroup, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QFileDialog, QMainWindow, QSplitter, QTabWidget, QWidget

from jcs_viewer.gui.mpr import AxialCrosshair, PlaneView
from jcs_viewer.gui.state import ViewerState
from jcs_viewer.gui.view3d_tab import ThreeDTab

LAYOUTS: dict[str, str] = {"axial": "Axial only", "1x3": "Axial + coronal + sagittal (1×3)"}


def default_layout(settings) -> str:
    """The reader's ``default_layout`` setting ("axial" or "1x3"); unknown values mean "axial"."""
    value = str(settings.default_layout).strip().lower()
    return value if value in LAYOUTS else "axial"


class MprPanel(QSplitter):
    """The axial view, plus coronal and sagittal views in the 1×3 layout; a double-click on one of the three shows
    it alone (:meth:`toggle_maximised`), another brings the three back."""

    def __init__(self, state: ViewerState, slice_view: QWidget, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = state
        self.slice_view = slice_view
        self.addWidget(slice_view)
        self.setChildrenCollapsible(False)
        self.axial_crosshair = AxialCrosshair(slice_view, state)
        self.coronal: PlaneView | None = None
        self.sagittal: PlaneView | None = None
        self.mode = "axial"
        self.maximised: QWidget | None = None
        self._sizes_before: list[int] = []
        self._equal_pending = False
        slice_view.view.sigDoubleClicked.connect(lambda: self.toggle_maximised(slice_view))

    def set_layout(self, mode: str) -> None:
        """Show the axial view alone (``"axial"``) or with the coronal and sagittal views (``"1x3"``)."""
        if mode not in LAYOUTS:
            raise ValueError(f"unknown layout {mode!r}; choose one of {', '.join(LAYOUTS)}")
        multi = mode == "1x3"
        if self.maximised is not None:
            self.toggle_maximised(self.maximised)  # a layout change starts from the three panes
        if multi and self.coronal is None:
            self.coronal = PlaneView(self.viewer, "coronal")
            self.sagittal = PlaneView(self.viewer, "sagittal")
            for view in (self.coronal, self.sagittal):
                self.addWidget(view)
                view.view.sigDoubleClicked.connect(lambda v=view: self.toggle_maximised(v))
            for i in range(3):
                self.setStretchFactor(i, 1)  # a growing window widens the three columns alike
            for view in (self.coronal, self.sagittal):
                if self.viewer.volume is not None:
                    view._on_volume(self.viewer.volume)
        for view in (self.coronal, self.sagittal):
            if view is not None:
                view.setVisible(multi)
        self._equal_pending = multi
        self._equalise()
        self.axial_crosshair.set_lines_visible(multi)
        self.mode = mode

    def toggle_maximised(self, pane: QWidget) -> None:
        """In the 1×3 layout, show ``pane`` alone; called again (or for another pane), the three come back with
        the widths they had."""
        if self.mode != "1x3":
            return
        panes = [self.slice_view, self.coronal, self.sagittal]
        if self.maximised is None:
            self._sizes_before = self.sizes()
            for view in panes:
                view.setVisible(view is pane)
            self.maximised = pane
            return
        for view in panes:
            view.setVisible(True)
        self.maximised = None
        if self._sizes_before:
            self.setSizes(self._sizes_before)

    def _equalise(self) -> None:
        # Three equal columns once the panel has its real width (not at construction time);
        # afterwards the reader's own splitter positions are kept.
        if self._equal_pending and self.isVisible() and self.width() > 100:
            self._equal_pending = False
            self.setSizes([self.width() // 3] * 3)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        self._equalise()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._equalise()


class ViewsController(QObject):
    """Owns the layout panel, the tabs, the View-menu/toolbar actions and the 3-D tab of one window."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        state: ViewerState = window.state
        split: QSplitter = window.image_split
        # 1. The axial view moves into the layout panel, in its place in the image/strip splitter.
        index, sizes = split.indexOf(window.slice_view), split.sizes()
        self.panel = MprPanel(state, window.slice_view)
        split.insertWidget(index, self.panel)
        split.setStretchFactor(index, 5)
        split.setSizes(sizes)
        # 2. The image area becomes the "Slices" tab; "3-D" is the second tab.
        self.three_d = ThreeDTab(state)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        host = split.parentWidget().layout()
        host.replaceWidget(split, self.tabs)
        self.tabs.addTab(split, "Slices")
        self.tabs.addTab(self.three_d, "3-D")
        self.tabs.setVisible(state.volume is not None)
        state.on("volume", lambda volume: self.tabs.setVisible(volume is not None))
        self._build_actions()
        self.set_layout(default_layout(window.settings.values))
        window.installEventFilter(self)  # releases OpenGL when the window closes

    # --- actions -----------------------------------------------------------------------
    def _build_actions(self) -> None:
        window = self.window
        view_menu = next((a.menu() for a in window.menuBar().actions()
                          if a.menu() is not None and a.text().replace("&", "") == "View"), None)
        if view_menu is None:
            view_menu = window.menuBar().addMenu("&Layout")
        view_menu.addSeparator()
        group = QActionGroup(self)
        group.setExclusive(True)
        self.layout_actions: dict[str, QAction] = {}
        for mode, text in LAYOUTS.items():
            action = QAction(text, window, checkable=True)
            action.triggered.connect(lambda _=False, m=mode: self.set_layout(m))
            group.addAction(action)
            view_menu.addAction(action)
            self.layout_actions[mode] = action
        self.show_3d_action = QAction("Show &3-D view", window)
        self.show_3d_action.triggered.connect(lambda: self.tabs.setCurrentWidget(self.three_d))
        self.export_3d_action = QAction("Export 3-D &PNG…", window)
        self.export_3d_action.triggered.connect(self.choose_export_path)
        self.three_d.export_button.clicked.connect(self.choose_export_path)
        view_menu.addAction(self.show_3d_action)
        view_menu.addAction(self.export_3d_action)
        # Toolbar toggle: checked = 1×3.
        self.toggle_action = QAction("1×3", window, checkable=True)
        self.toggle_action.setToolTip("Axial + coronal + sagittal views with a linked crosshair (Shift+move)")
        self.toggle_action.toggled.connect(lambda on: self.set_layout("1x3" if on else "axial"))
        toolbar = getattr(window, "toolbar", None)
        if toolbar is not None:
            toolbar.addSeparator()
            toolbar.addAction(self.toggle_action)

    def set_layout(self, mode: str) -> None:
        """Switch layout ("axial" or "1x3"); the menu items and the toolbar toggle follow."""
        self.panel.set_layout(mode)
        self.layout_actions[mode].setChecked(True)
        if self.toggle_action.isChecked() != (mode == "1x3"):
            self.toggle_action.setChecked(mode == "1x3")
        if mode == "1x3":
            self.tabs.setCurrentIndex(0)

    @property
    def layout_mode(self) -> str:
        return self.panel.mode

    def show_3d(self) -> ThreeDTab:
        self.tabs.setCurrentWidget(self.three_d)
        return self.three_d

    def choose_export_path(self) -> None:
        if self.window.state.result is None:
            self.window.show_status("Analyse the study first; the 3-D view has nothing to export.")
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export 3-D view", str(Path.home() / "lungs_3d.png"),
                                              "PNG image (*.png)")
        if path:
            self.export_3d(Path(path) if path.lower().endswith(".png") else Path(path + ".png"))

    def export_3d(self, path: str | os.PathLike[str]) -> Path | None:
        """Write the 3-D PNG; a failure is shown as one sentence (never a traceback)."""
        from jcs_viewer.errors import JCSError

        try:
            written = self.three_d.export_png(path)
        except JCSError as exc:
            self.window.show_error(str(exc))
            return None
        self.window.show_status(f"Saved the 3-D view to {written}.")
        return written

    # --- screenshots and closing ---------------------------------------------------------
    def grab_window(self) -> QPixmap:
        """The window as a pixmap, with the VTK area filled in (``QWidget.grab`` leaves it black)."""
        pixmap = self.window.grab()
        view = self.three_d.view
        widget = getattr(view, "_vtk_widget", None)
        if widget is None or not widget.isVisible() or not view.available:
            return pixmap
        try:
            pixels = np.ascontiguousarray(view.snapshot())
        except Exception:  # noqa: BLE001 - a screenshot without the 3-D picture beats none
            return pixmap
        height, width, _ = pixels.shape
        image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        target = widget.mapTo(self.window, QPoint(0, 0))
        ratio = pixmap.devicePixelRatio()
        painter = QPainter(pixmap)
        painter.drawImage(target, image.scaled(int(widget.width() * ratio), int(widget.height() * ratio))
                          if ratio != 1 else image)
        painter.end()
        return pixmap

    def shutdown(self) -> None:
        self.three_d.shutdown()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False


def install_views(window: QMainWindow) -> ViewsController:
    """Add the layouts, the linked crosshair and the 3-D tab to a :class:`MainWindow`."""
    return ViewsController(window)
