"""Surface meshes of the lung and lesion masks for the 3-D view (no Qt here; runs in a worker thread).

Pipeline per mask (:func:`build_surface`): crop to the non-zero bounding box -> block-downsample
to a partial-volume count image (lungs: ~1.5 mm voxels, at least 2 in-plane) -> pad with zeros so
the surface closes at the volume's edges -> optional Gaussian blur (lesions) -> ``vtkFlyingEdges3D``
at half the block size -> decimation (``vtkQuadricClustering`` for big meshes, fast;
``vtkQuadricDecimation`` for small ones) and ``vtkWindowedSincPolyDataFilter`` smoothing ->
rotate/translate into LPS millimetres with the study's direction and origin -> normals.

Lesions are meshed per separable box (:func:`split_boxes`), so scattered lesions cost little more
than their own voxels. The lung surface is pushed out by half a block so lesions touching the
pleura sit inside the translucent wall rather than z-fighting with it.

Measured on the 300 x 512² phantom (2 shared, heavily loaded cores; ``jcs-viewer bench view3d``):
lungs ~0.6 s (92k triangles), lesions ~0.3 s (48k triangles), ~1 s for a new study.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkImagingCore import vtkImageCast
from vtkmodules.vtkImagingGeneral import vtkImageGaussianSmooth
from vtkmodules.vtkFiltersCore import (
    vtkAppendPolyData,
    vtkFlyingEdges3D,
    vtkPolyDataNormals,
    vtkQuadricClustering,
    vtkQuadricDecimation,
    vtkWindowedSincPolyDataFilter,
)

# Lungs are large and smooth: ~1.5 mm voxels are plenty and keep the build near a second.
LUNG_TARGET_VOXEL_MM = 1.5
LUNG_MAX_FACTOR = 4
LUNG_INFLATE_BLOCKS = 0.5
# Meshes above this many triangles are decimated by clustering (fast) rather than edge collapse.
CLUSTER_ABOVE_TRIANGLES = 20_000
# Lesion loads above this many voxels are downsampled like the lungs (a severe case's
# full-resolution surface has millions of triangles and takes seconds).
LESION_FULL_RES_MAX_VOXELS = 1_500_000
LESION_BLUR_VOXELS = 0.8
# Across slices the blur is at most this many slices: a lesion or a brush stroke one slice thick
# must keep most of its thickness (a Gaussian of 0.8 slices across a one-slice layer peaks at 0.47,
# just under the 0.5 iso-value: such lesions became paper-thin sheets, 0.5 mm of a 2.5 mm slice).
# 0.5 still rounds off the slice terraces of thicker lesions.
MAX_SLICE_BLUR_VOXELS = 0.5


@dataclass(frozen=True)
class Geometry:
    """Voxel-to-LPS mapping of a ``(z, y, x)`` mask, as in :class:`jcs_viewer.io.volume.Volume`.

    Attributes:
        spacing: voxel size in mm, ``(z, y, x)``.
        origin: LPS position in mm of voxel ``[0, 0, 0]``'s centre, ``(x, y, z)``.
        direction: 3x3 matrix whose columns are the LPS directions of the x, y, z index axes.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray

    @classmethod
    def create(cls, spacing, origin=(0.0, 0.0, 0.0), direction=None) -> "Geometry":
        """Validates and normalises the three parts; raises ``ValueError`` on a bad one."""
        spacing_t = tuple(float(s) for s in spacing)
        origin_t = tuple(float(o) for o in origin)
        if len(spacing_t) != 3 or not all(np.isfinite(spacing_t)) or min(spacing_t) <= 0:
            raise ValueError(f"spacing must be three positive numbers (z, y, x), got {spacing!r}")
        if len(origin_t) != 3 or not all(np.isfinite(origin_t)):
            raise ValueError(f"origin must be three finite numbers (x, y, z), got {origin!r}")
        matrix = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        if not np.all(np.isfinite(matrix)) or abs(abs(np.linalg.det(matrix)) - 1.0) > 1e-3:
            raise ValueError("direction must be a 3x3 orthonormal matrix")
        return cls(spacing_t, origin_t, matrix)  # type: ignore[arg-type]

    @property
    def spacing_xyz(self) -> np.ndarray:
        return np.asarray(self.spacing[::-1], dtype=float)

    def index_to_lps(self, xyz_index: np.ndarray) -> np.ndarray:
        """LPS mm of continuous voxel indices given as rows ``(x, y, z)``."""
        return np.asarray(self.origin) + (np.asarray(xyz_index, float) * self.spacing_xyz) @ self.direction.T


@dataclass
class SurfaceStats:
    """Figures about one built surface (for the status line and benchmarks)."""

    seconds: float = 0.0
    points: int = 0
    triangles: int = 0
    downsample: tuple[int, int, int] = (1, 1, 1)


def lung_factors(spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    """Block-downsampling factors ``(z, y, x)`` that bring lung voxels near 1.5 mm (at least 2 in-plane)."""
    factors = []
    for axis, size in enumerate(spacing):
        factor = int(max(1, min(LUNG_MAX_FACTOR, round(LUNG_TARGET_VOXEL_MM / size))))
        if axis > 0:
            factor = max(2, factor)
        factors.append(factor)
    return tuple(factors)  # type: ignore[return-value]


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Tight ``(z, y, x)`` slices around the non-zero voxels, or ``None`` when there are none."""
    z_any = np.flatnonzero(mask.any(axis=(1, 2)))
    if z_any.size == 0:
        return None
    z0, z1 = z_any[0], z_any[-1] + 1
    sub = mask[z0:z1]
    y_any = np.flatnonzero(sub.any(axis=(0, 2)))
    x_any = np.flatnonzero(sub.any(axis=(0, 1)))
    return slice(z0, z1), slice(y_any[0], y_any[-1] + 1), slice(x_any[0], x_any[-1] + 1)


def _block_count(binary: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Number of set voxels in each ``factors`` block (uint8; a partial-volume image)."""
    fz, fy, fx = factors
    if factors == (1, 1, 1):
        return binary.astype(np.uint8)
    nz, ny, nx = binary.shape
    padded = np.zeros((-(-nz // fz) * fz, -(-ny // fy) * fy, -(-nx // fx) * fx), dtype=np.uint8)
    padded[:nz, :ny, :nx] = binary
    blocks = padded.reshape(padded.shape[0] // fz, fz, padded.shape[1] // fy, fy, padded.shape[2] // fx, fx)
    return blocks.sum(axis=(1, 3, 5), dtype=np.uint8)


def _empty_polydata() -> vtkPolyData:
    return vtkPolyData()


def crop_to_mask(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Copy of the mask's non-zero bounding box and its ``(z, y, x)`` offset in ``mask``.

    Lets a worker thread build from a private copy while the GUI thread keeps editing the mask;
    an empty mask gives a ``(0, 0, 0)``-shaped array.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D (z, y, x), got shape {mask.shape}")
    box = _bounding_box(mask)
    if box is None:
        return np.zeros((0, 0, 0), dtype=np.uint8), (0, 0, 0)
    return np.array(mask[box], dtype=np.uint8, copy=True), (box[0].start, box[1].start, box[2].start)


def build_surface(
    mask: np.ndarray,
    geometry: Geometry,
    *,
    offset: tuple[int, int, int] = (0, 0, 0),
    factors: tuple[int, int, int] = (1, 1, 1),
    smoothing_iterations: int = 20,
    pass_band: float = 0.05,
    decimate: float = 0.8,
    inflate_mm: float = 0.0,
    blur_voxels: float = 0.0,
    cluster_above: int = CLUSTER_ABOVE_TRIANGLES,
) -> tuple[vtkPolyData, SurfaceStats]:
    """Closed surface of the non-zero voxels of ``mask``, in LPS mm.

    Args:
        mask: ``(z, y, x)`` array; every non-zero voxel is inside.
        geometry: the voxel-to-LPS mapping of the full volume.
        offset: ``(z, y, x)`` index of ``mask[0, 0, 0]`` in the full volume (see :func:`crop_to_mask`).
        factors: block-downsampling ``(z, y, x)`` applied before extraction (1 = full resolution).
        smoothing_iterations: windowed-sinc iterations (0 = no smoothing).
        pass_band: windowed-sinc pass band (smaller = smoother).
        decimate: fraction of triangles to remove (0 = keep all).
        inflate_mm: move every point this far outwards along its normal.
        blur_voxels: Gaussian standard deviation (voxels of the extraction image) applied before
            extraction, at most ``MAX_SLICE_BLUR_VOXELS`` across slices so that one-slice-thin layers
            keep their thickness; removes the voxel terraces that smoothing the mesh alone leaves on
            flat faces.
        cluster_above: meshes with more triangles are decimated by clustering, smaller ones by
            quadric edge collapse (better shape, ~10x slower).

    Returns:
        The polygon mesh with point normals (empty when the mask is empty) and its figures.
    """
    start = time.perf_counter()
    stats = SurfaceStats(downsample=tuple(int(f) for f in factors))  # type: ignore[arg-type]
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D (z, y, x), got shape {mask.shape}")
    box = _bounding_box(mask) if mask.size else None
    if box is None:
        stats.seconds = time.perf_counter() - start
        return _empty_polydata(), stats
    counts = _block_count(mask[box] != 0, factors)
    fz, fy, fx = factors
    block_xyz = np.array([fx, fy, fz], dtype=float)
    sigmas = None
    if blur_voxels > 0:
        sigmas = np.array([blur_voxels, blur_voxels, min(blur_voxels, MAX_SLICE_BLUR_VOXELS)])  # x, y, z
    # Empty voxels on every side close the surface where the mask touches the volume's edge
    # (and leave room for the blur's tails).
    pad = 1 + (int(np.ceil(2 * sigmas.max())) if sigmas is not None else 0)
    counts = np.pad(counts, pad)
    # Centre of block 0 of the padded image, in voxel indices of the full mask.
    start_zyx = np.array([b.start for b in box]) + np.asarray(offset)
    first_xyz = start_zyx[::-1].astype(float) + (block_xyz - 1) / 2 - pad * block_xyz

    image = vtkImageData()
    image.SetDimensions(counts.shape[2], counts.shape[1], counts.shape[0])
    # Scaled voxel space (index * spacing, no rotation); the rigid part is applied to the few final points.
    image.SetSpacing(*(block_xyz * geometry.spacing_xyz))
    image.SetOrigin(*(first_xyz * geometry.spacing_xyz))
    scalars = numpy_support.numpy_to_vtk(counts.ravel(), deep=False)
    image.GetPointData().SetScalars(scalars)

    contour = vtkFlyingEdges3D()
    if sigmas is not None:
        as_float = vtkImageCast()
        as_float.SetInputData(image)
        as_float.SetOutputScalarTypeToFloat()
        blur = vtkImageGaussianSmooth()
        blur.SetInputConnection(as_float.GetOutputPort())
        blur.SetStandardDeviations(*(float(v) for v in sigmas))  # x, y, z, in voxels
        blur.SetRadiusFactors(2.0, 2.0, 2.0)
        blur.Update()
        contour.SetInputData(blur.GetOutput())
    else:
        contour.SetInputData(image)
    contour.SetValue(0, float(fz * fy * fx) / 2.0)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    polydata = contour.GetOutput()
    # ``counts`` backs the image's scalars without a copy: it must outlive the contour's update.
    del scalars, counts

    voxel_mm = float(np.prod(block_xyz * geometry.spacing_xyz)) ** (1 / 3)
    if polydata.GetNumberOfPolys() > cluster_above:
        # Big meshes: grid clustering is ~10x faster than quadric decimation; smoothing after it
        # removes the grid's faint facets.
        polydata = _cluster(polydata, decimate, voxel_mm)
        polydata = _smooth(polydata, smoothing_iterations, pass_band)
    else:
        # Small meshes (lesions): smooth the voxel staircase first, else quadric decimation stalls on it.
        polydata = _smooth(polydata, smoothing_iterations, pass_band)
        polydata = _quadric(polydata, decimate)

    polydata = _to_lps(polydata, geometry)
    normals = vtkPolyDataNormals()
    normals.SetInputData(polydata)
    normals.SplittingOff()
    # Flying edges orders every triangle consistently; the consistency pass would cost ~0.3 s per 500k.
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    # A left-handed direction matrix mirrors the mesh, which turns its triangles inside out.
    normals.SetFlipNormals(bool(np.linalg.det(geometry.direction) < 0))
    normals.Update()
    result = vtkPolyData()
    result.ShallowCopy(normals.GetOutput())
    if inflate_mm and result.GetNumberOfPoints():
        _inflate(result, inflate_mm)

    stats.points = result.GetNumberOfPoints()
    stats.triangles = result.GetNumberOfPolys()
    stats.seconds = time.perf_counter() - start
    return result, stats


def _smooth(polydata: vtkPolyData, iterations: int, pass_band: float) -> vtkPolyData:
    """Windowed-sinc smoothing (keeps volume, unlike Laplacian smoothing)."""
    if iterations <= 0 or polydata.GetNumberOfPoints() == 0:
        return polydata
    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetInputData(polydata)
    smoother.SetNumberOfIterations(iterations)
    smoother.SetPassBand(pass_band)
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    smoother.Update()
    return smoother.GetOutput()


def _quadric(polydata: vtkPolyData, reduction: float) -> vtkPolyData:
    """Quadric edge-collapse decimation removing ``reduction`` of the triangles."""
    if reduction <= 0 or polydata.GetNumberOfPolys() < 100:
        return polydata
    decimator = vtkQuadricDecimation()
    decimator.SetInputData(polydata)
    decimator.SetTargetReduction(reduction)
    decimator.VolumePreservationOn()
    decimator.Update()
    return decimator.GetOutput()


def _cluster(polydata: vtkPolyData, reduction: float, voxel_mm: float) -> vtkPolyData:
    """Vertex clustering on a grid sized so that about ``reduction`` of the triangles go."""
    if reduction <= 0:
        return polydata
    # Surface triangle count falls with the square of the cell size; 0.9 is measured
    # (cell = 2 voxels removes ~78 % of a flying-edges mesh).
    cell_mm = 0.9 * voxel_mm / np.sqrt(max(1e-3, 1.0 - reduction))
    bounds = polydata.GetBounds()
    clustering = vtkQuadricClustering()
    clustering.AutoAdjustNumberOfDivisionsOff()
    clustering.SetNumberOfDivisions(
        *[max(2, int((bounds[2 * i + 1] - bounds[2 * i]) / cell_mm) + 1) for i in range(3)]
    )
    clustering.SetInputData(polydata)
    clustering.Update()
    return clustering.GetOutput()


def _inflate(polydata: vtkPolyData, distance_mm: float) -> None:
    """Moves the points of ``polydata`` (with outward point normals) ``distance_mm`` outwards, in place."""
    points = numpy_support.vtk_to_numpy(polydata.GetPoints().GetData())
    normals = numpy_support.vtk_to_numpy(polydata.GetPointData().GetNormals())
    moved = (points + distance_mm * normals).astype(np.float32)
    new_points = vtkPoints()
    new_points.SetData(numpy_support.numpy_to_vtk(moved, deep=True))
    polydata.SetPoints(new_points)


def _to_lps(polydata: vtkPolyData, geometry: Geometry) -> vtkPolyData:
    """Copy of ``polydata`` with points rotated by the direction matrix and moved to the origin."""
    out = vtkPolyData()
    out.ShallowCopy(polydata)
    if polydata.GetNumberOfPoints() == 0:
        return out
    local = numpy_support.vtk_to_numpy(polydata.GetPoints().GetData())
    lps = (np.asarray(geometry.origin) + local.astype(np.float64) @ geometry.direction.T).astype(np.float32)
    points = vtkPoints()
    points.SetData(numpy_support.numpy_to_vtk(lps, deep=True))
    out.SetPoints(points)
    return out


def build_lung_surface(
    lung_mask: np.ndarray, geometry: Geometry, offset: tuple[int, int, int] = (0, 0, 0)
) -> tuple[vtkPolyData, SurfaceStats]:
    """Both lungs (any non-zero label) as one surface, downsampled to ~1.5 mm voxels (at least 2 in-plane).

    The surface is pushed out by half an in-plane block: lesions reaching the pleura then sit just
    inside the translucent wall instead of sharing it (coincident surfaces z-fight into stripes).
    """
    factors = lung_factors(geometry.spacing)
    inflate = LUNG_INFLATE_BLOCKS * min(factors[1] * geometry.spacing[1], factors[2] * geometry.spacing[2])
    return build_surface(lung_mask, geometry, offset=offset, factors=factors, decimate=0.8, inflate_mm=inflate)


def build_lesion_surface(
    lesion_mask: np.ndarray, geometry: Geometry, offset: tuple[int, int, int] = (0, 0, 0)
) -> tuple[vtkPolyData, SurfaceStats]:
    """All lesions as one surface, at full resolution unless the load is large.

    Scattered lesions are meshed one separable box at a time (see :func:`split_boxes`): the blur,
    extraction and decimation then touch ~1/10 of the voxels of the lesions' common bounding box.
    """
    start = time.perf_counter()
    factors = (1, 1, 1)
    if lesion_mask.size and np.count_nonzero(lesion_mask) > LESION_FULL_RES_MAX_VOXELS:
        factors = lung_factors(geometry.spacing)
    boxes = split_boxes(lesion_mask) if lesion_mask.size else []
    append = vtkAppendPolyData()
    parts = []  # keep every part alive until the append has run
    for box in boxes:
        part_offset = tuple(int(o + b.start) for o, b in zip(offset, box))
        # A Gaussian blur of ~0.8 voxel before extraction removes the voxel terraces and pits that
        # mesh smoothing alone leaves; lighter decimation than the lungs keeps small blobs round.
        part, _ = build_surface(lesion_mask[box], geometry, offset=part_offset, factors=factors, decimate=0.7,
                                pass_band=0.08, blur_voxels=LESION_BLUR_VOXELS, cluster_above=2_000)
        if part.GetNumberOfPoints():
            parts.append(part)
            append.AddInputData(part)
    result = vtkPolyData()
    if parts:
        append.Update()
        result.ShallowCopy(append.GetOutput())
    stats = SurfaceStats(seconds=time.perf_counter() - start, points=result.GetNumberOfPoints(),
                         triangles=result.GetNumberOfPolys(), downsample=factors)
    return result, stats


def _runs(occupied: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], occupied.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def split_boxes(mask: np.ndarray, max_boxes: int = 48) -> list[tuple[slice, slice, slice]]:
    """Tight boxes around groups of non-zero voxels that empty planes separate.

    Recursively cuts the bounding box along any axis where a whole plane is empty, so scattered
    lesions get one small box each. Falls back to the single bounding box when the mask breaks
    into more than ``max_boxes`` pieces (speckle), where per-box overhead would dominate.
    """
    first = _bounding_box(mask)
    if first is None:
        return []
    done: list[tuple[slice, slice, slice]] = []
    todo = [first]
    while todo:
        box = todo.pop()
        sub = mask[box]
        for axis in range(3):
            others = tuple(a for a in range(3) if a != axis)
            runs = _runs(sub.any(axis=others))
            if len(runs) > 1:
                for run_start, run_stop in runs:
                    piece = list(box)
                    piece[axis] = slice(box[axis].start + run_start, box[axis].start + run_stop)
                    tight = _bounding_box(mask[tuple(piece)])
                    todo.append(tuple(slice(p.start + t.start, p.start + t.stop) for p, t in zip(piece, tight)))
                break
        else:
            done.append(box)
        if len(done) + len(todo) > max_boxes:
            return [first]
    return done


def polydata_bounds(polydata: vtkPolyData) -> np.ndarray | None:
    """``(xmin, xmax, ymin, ymax, zmin, zmax)`` in LPS mm, or ``None`` for an empty mesh."""
    if polydata.GetNumberOfPoints() == 0:
        return None
    return np.asarray(polydata.GetBounds(), dtype=float)


def mask_bounds_lps(mask: np.ndarray, geometry: Geometry) -> np.ndarray | None:
    """LPS ``(xmin, xmax, ymin, ymax, zmin, zmax)`` of the outer faces of the mask's voxels."""
    box = _bounding_box(mask)
    if box is None:
        return None
    corners = np.array(
        [[x, y, z] for z in (box[0].start - 0.5, box[0].stop - 0.5)
         for y in (box[1].start - 0.5, box[1].stop - 0.5)
         for x in (box[2].start - 0.5, box[2].stop - 0.5)]
    )
    lps = geometry.index_to_lps(corners)
    return np.column_stack([lps.min(axis=0), lps.max(axis=0)]).ravel()


def bench_surfaces(
    lung_mask: np.ndarray, lesion_mask: np.ndarray, geometry: Geometry, repeats: int = 3
) -> dict[str, float]:
    """Median seconds of the lung and lesion mesh builds (what the 3-D view's worker does per study)."""
    import statistics

    lung_s, lesion_s, total_s = [], [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        lung_crop, lung_offset = crop_to_mask(lung_mask)
        lesion_crop, lesion_offset = crop_to_mask(lesion_mask)
        _, lung_stats = build_lung_surface(lung_crop, geometry, lung_offset)
        _, lesion_stats = build_lesion_surface(lesion_crop, geometry, lesion_offset)
        total_s.append(time.perf_counter() - start)
        lung_s.append(lung_stats.seconds)
        lesion_s.append(lesion_stats.seconds)
    return {
        "surfaces_total_s": statistics.median(total_s),
        "lung_surface_s": statistics.median(lung_s),
        "lesion_surface_s": statistics.median(lesion_s),
        "lung_triangles": float(lung_stats.triangles),
        "lesion_triangles": float(lesion_stats.triangles),
    }
