"""Study discovery and loading, the :class:`Volume` type, the demo phantom and exports.

Imports numpy, pydicom, SimpleITK and highdicom only (never Qt, VTK or torch).
"""

from jcs_viewer.io.volume import StudyInfo, Volume

__all__ = ["StudyInfo", "Volume"]
