"""JCS Viewer: an explainable COVID-19 chest CT reading aid.

Research use only: not a medical device, not for diagnosis.

The package is layered so that data flows one way::

    io -> pipeline (models) -> session -> report
                       gui shows and edits these objects

Only :mod:`jcs_viewer.gui` imports Qt, pyqtgraph or VTK.
"""

__version__ = "0.1.0"

RESEARCH_USE_NOTICE = (
    "Research use only. JCS Viewer is not a medical device and must not be used "
    "for diagnosis or treatment decisions."
)
