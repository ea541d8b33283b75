"""Reader's measurements on the axial slices: rulers (length in mm) and ellipse ROIs (area and HU statistics).

Points are continuous pixel coordinates ``(x, y)`` = (column, row) of the slice, pixel centres on whole numbers
(as the brush's). A measurement is a value; the numbers come from the slice it lies on, so they follow the
study's spacing and intensities. No Qt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("ruler", "ellipse")


@dataclass(frozen=True)
class Measurement:
    """One ruler (``p0``-``p1``) or ellipse (inscribed in the box with corners ``p0``, ``p1``) on slice ``z``."""

    kind: str
    z: int
    p0: tuple[float, float]
    p1: tuple[float, float]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement {self.kind!r}; choose one of {', '.join(KINDS)}")

    def length_mm(self, spacing_yx: tuple[float, float]) -> float:
        """The ruler's length (the ellipse's: its box diagonal)."""
        dy = (self.p1[1] - self.p0[1]) * spacing_yx[0]
        dx = (self.p1[0] - self.p0[0]) * spacing_yx[1]
        return math.hypot(dx, dy)

    def ellipse(self) -> tuple[float, float, float, float]:
        """Centre ``(cx, cy)`` and semi-axes ``(rx, ry)`` in pixels."""
        (x0, y0), (x1, y1) = self.p0, self.p1
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0, abs(x1 - x0) / 2.0, abs(y1 - y0) / 2.0

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The ellipse's pixels on a slice of ``shape`` (centres inside)."""
        cx, cy, rx, ry = self.ellipse()
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        return ((xx - cx) / max(rx, 0.5)) ** 2 + ((yy - cy) / max(ry, 0.5)) ** 2 <= 1.0

    def stats(self, image: np.ndarray, spacing_yx: tuple[float, float]) -> dict[str, float]:
        """Area (mm², of the ellipse itself) and mean, SD, min, max of the pixels inside it."""
        cx, cy, rx, ry = self.ellipse()
        values = np.asarray(image)[self.mask(image.shape)].astype(np.float64)
        area = math.pi * rx * ry * spacing_yx[0] * spacing_yx[1]
        if values.size == 0:
            return {"area_mm2": area, "n": 0}
        return {"area_mm2": area, "n": int(values.size), "mean": float(values.mean()), "sd": float(values.std()),
                "min": float(values.min()), "max": float(values.max())}

    def describe(self, image: np.ndarray, spacing_yx: tuple[float, float], is_hu: bool = True) -> str:
        """One line, as the panel, the report and the overlay say it (slices numbered from 1)."""
        if self.kind == "ruler":
            return f"Slice {self.z + 1}: ruler {self.length_mm(spacing_yx):.1f} mm"
        s = self.stats(image, spacing_yx)
        if not s["n"]:
            return f"Slice {self.z + 1}: ellipse {s['area_mm2']:.0f} mm², no pixel inside"
        unit = "HU" if is_hu else "grey level"
        return (f"Slice {self.z + 1}: ellipse {s['area_mm2']:.0f} mm², {unit} {s['mean']:.0f} ± {s['sd']:.0f} "
                f"(min {s['min']:.0f}, max {s['max']:.0f})")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": int(self.z), "p0": [float(v) for v in self.p0],
                "p1": [float(v) for v in self.p1]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """Raises ValueError (or KeyError/TypeError) for a damaged entry."""
        p0, p1 = data["p0"], data["p1"]
        return cls(str(data["kind"]), int(data["z"]), (float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1])))
