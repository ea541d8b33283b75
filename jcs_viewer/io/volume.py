"""The in-memory study: one int16 volume plus the geometry and metadata to export it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StudyInfo:
    """Patient, study and series fields (empty string when absent).

    These are identifying data: the report's anonymise switch removes
    ``patient_name``, ``patient_id``, ``birth_date`` and ``accession_number``.
    """

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    age: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    manufacturer: str = ""
    institution: str = ""
    frame_of_reference_uid: str = ""
    slice_thickness: float | None = None
    kvp: float | None = None
    convolution_kernel: str = ""

    IDENTIFYING = ("patient_name", "patient_id", "birth_date", "accession_number")

    def anonymised(self) -> "StudyInfo":
        from dataclasses import replace

        return replace(self, **{name: "" for name in self.IDENTIFYING})


@dataclass
class Volume:
    """A 3-D image in the project's convention.

    Attributes:
        array: ``int16`` array ``(z, y, x)``; Hounsfield units when ``is_hu`` else the
            source intensities (0..255 for 8-bit slice stacks). z ascends along the
            slice normal (for axial DICOM: feet -> head, i.e. increasing patient z).
        spacing: voxel size in mm, ``(z, y, x)``.
        origin: LPS position in mm of the centre of voxel ``[0, 0, 0]``, ``(x, y, z)``
            as in ITK/DICOM.
        direction: 3x3 matrix whose columns are the LPS unit vectors of the array's
            x (column), y (row) and z (slice) index axes, as in ITK's ``GetDirection``
            reshaped row-major.
        is_hu: whether values are Hounsfield units.
        hu_estimated: the values are HU estimated from a file without them (a CT exported through a window,
            :mod:`jcs_viewer.io.hu_estimate`), not the scanner's.
        intensity_reason: why the models cannot read these values (a volume file or CT series without HU whose
            window was not found), or "" (the analysis calls it not assessable).
        info: patient/study/series fields.
        source_files: the file each slice came from (one entry for a single-file volume).
        warnings: human-readable sentences about problems found while loading.
        source_format: ``"dicom"``, ``"nifti"``, ``"mha"``, ``"nrrd"``, ``"images"`` or ``"synthetic"``
            (made in memory: no source files).
        source_orientation: the DICOM orientation code (ITK convention, e.g. ``"RAS"``) of the source
            file's own voxel grid when the array was permuted/flipped from it on loading (None: the array
            is on the source grid). Exports turn masks back onto that grid.
        voxel_size_assumed: a side of ``spacing`` is 1 mm standing in for a size the source did not give (a DICOM
            series without PixelSpacing, a NIfTI whose pixdim is 0): see :attr:`has_voxel_size`.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    is_hu: bool = True
    hu_estimated: bool = False
    intensity_reason: str = ""
    info: StudyInfo = field(default_factory=StudyInfo)
    source_files: tuple[Path, ...] = ()
    warnings: list[str] = field(default_factory=list)
    source_format: str = "dicom"
    source_orientation: str | None = None
    voxel_size_assumed: bool = False

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3-D (z, y, x), got shape {self.array.shape}")
        if self.array.dtype != np.int16:
            raise ValueError(f"Volume array must be int16, got {self.array.dtype}")
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def n_slices(self) -> int:
        return self.array.shape[0]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def has_voxel_size(self) -> bool:
        """Whether ``spacing`` was read from the source: a folder of PNG/JPEG images carries none (1 mm is
        assumed), nor a file whose header lacks a side (:attr:`voxel_size_assumed`), so their volumes in mL are
        not the patient's."""
        return self.source_format != "images" and not self.voxel_size_assumed

    def slice_position_mm(self, z: int) -> float:
        """Position of slice ``z`` along the slice normal (mm), as shown to the reader."""
        normal = self.direction[:, 2]
        return float(np.dot(np.asarray(self.origin), normal) + z * self.spacing[0])

    def index_to_lps(self, zyx: tuple[float, float, float]) -> np.ndarray:
        """LPS position (mm) of a continuous voxel index ``(z, y, x)``."""
        z, y, x = zyx
        ijk = np.array([x * self.spacing[2], y * self.spacing[1], z * self.spacing[0]])
        return np.asarray(self.origin) + self.direction @ ijk

    def lps_to_index(self, lps: tuple[float, float, float]) -> np.ndarray:
        """Continuous voxel index ``(z, y, x)`` of an LPS position (mm): the inverse of :meth:`index_to_lps`."""
        ijk = np.linalg.solve(np.asarray(self.direction, dtype=float), np.asarray(lps, dtype=float) - self.origin)
        return np.array([ijk[2] / self.spacing[0], ijk[1] / self.spacing[1], ijk[0] / self.spacing[2]])
