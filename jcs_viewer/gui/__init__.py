"""The desktop viewer (PySide6 + pyqtgraph): the only package that imports Qt, pyqtgraph or VTK.

Views observe a plain-Python :class:`~jcs_viewer.gui.state.ViewerState`; study loading and
analysis run in worker threads (:mod:`jcs_viewer.gui.workers`). Start it with
:func:`jcs_viewer.gui.app.run_viewer` or ``jcs-viewer [STUDY]``.
"""
