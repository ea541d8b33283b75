"""Study discovery and loading, the :class:`Volume` type, the demo phantom and exports.

Imports numpy, pydicom, SimpleITK and highdicom only (never Qt, VTK or torch);
SimpleITK is imported only when a NIfTI/MHA/NRRD file or an image folder is opened.
"""

from jcs_viewer.io.dicom_scan import SeriesEntry, scan_folder
from jcs_viewer.io.loader import load_study
from jcs_viewer.io.phantom import Phantom, demo_study_path, make_phantom, write_demo_study
from jcs_viewer.io.volume import StudyInfo, Volume

__all__ = [
    "Phantom",
    "SeriesEntry",
    "StudyInfo",
    "Volume",
    "demo_study_path",
    "load_study",
    "make_phantom",
    "scan_folder",
    "write_demo_study",
]
