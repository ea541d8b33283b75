"""The annotated PDF report and the export bundle (headless: reportlab, numpy, Pillow; never Qt).

Public entry points (imported lazily so that ``import jcs_viewer.report`` stays cheap):

- :func:`write_report` (``jcs_viewer.report.pdf``): the PDF.
- :func:`suggest_report_name`: a file name that never identifies an anonymised patient.
- :func:`export_all` (``jcs_viewer.report.bundle``): report.pdf, lesion_seg.dcm, the NIfTI
  masks and per_slice.csv in one folder.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_all", "suggest_report_name", "write_report"]


def __getattr__(name: str) -> Any:
    if name in ("write_report", "suggest_report_name"):
        from jcs_viewer.report import pdf

        return getattr(pdf, name)
    if name == "export_all":
        from jcs_viewer.report.bundle import export_all

        return export_all
    raise AttributeError(f"module 'jcs_viewer.report' has no attribute {name!r}")
