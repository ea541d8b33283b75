"""Per-slice RGBA overlay builders (numpy only, so they are cheap to test and benchmark), and the one rule that
shows or hides a view's overlay items (:func:`show_layers`).

Every builder returns a ``(y, x, 4)`` uint8 array for ONE slice; the viewer calls them
on slice change only, so no whole-volume float RGBA ever exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jcs_viewer.gui.state import LayerSettings

# Anchor colours of the two colour maps offered for activation maps (value 0..1 -> RGB 0..255).
_COLORMAP_ANCHORS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "jet": [
        (0.0, (0, 0, 128)),
        (0.11, (0, 0, 255)),
        (0.36, (0, 255, 255)),
        (0.61, (255, 255, 0)),
        (0.86, (255, 0, 0)),
        (1.0, (128, 0, 0)),
    ],
    "inferno": [
        (0.0, (0, 0, 4)),
        (0.25, (87, 16, 110)),
        (0.5, (188, 55, 84)),
        (0.75, (249, 142, 9)),
        (1.0, (252, 255, 164)),
    ],
}
COLORMAPS = tuple(_COLORMAP_ANCHORS)


def colormap_lut(name: str, floor: int = 40) -> np.ndarray:
    """A 256x4 uint8 RGBA lookup table; alpha ramps up from ``floor`` so weak activations fade out.

    Args:
        name: one of :data:`COLORMAPS`.
        floor: activation value (0..255) below which the overlay is fully transparent.
    """
    if name not in _COLORMAP_ANCHORS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    anchors = _COLORMAP_ANCHORS[name]
    pos = np.array([a[0] for a in anchors]) * 255.0
    rgb = np.array([a[1] for a in anchors], dtype=float)
    values = np.arange(256, dtype=float)
    lut = np.empty((256, 4), dtype=np.uint8)
    for channel in range(3):
        lut[:, channel] = np.round(np.interp(values, pos, rgb[:, channel])).astype(np.uint8)
    ramp = np.clip((values - floor) / max(1.0, 128.0 - floor), 0.0, 1.0)
    lut[:, 3] = np.round(255 * ramp).astype(np.uint8)
    return lut


def activation_rgba(cam: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Colour one activation map (uint8 ``(h, w)``, any resolution) with an RGBA LUT.

    The map stays at its own resolution: the view stretches it over the slice with bilinear
    smoothing when drawing, which is cheaper than upsampling it to 512² in numpy per slice.
    """
    return np.take(lut, cam, axis=0)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D label image whose 4-neighbourhood holds a different label (inner outline)."""
    m = np.asarray(mask)
    edge = np.zeros(m.shape, dtype=bool)
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    edge[:-1, :] |= m[:-1, :] != m[1:, :]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    return edge & (m > 0)


def _paint(out: np.ndarray, where: np.ndarray, color: tuple[int, int, int], alpha: int) -> None:
    """Write one RGBA value into ``out`` at the True pixels of ``where`` (one indexed assignment)."""
    flat = np.flatnonzero(where)
    if flat.size:
        out.reshape(-1, 4)[flat] = (*color, alpha)


def mask_rgba(mask: np.ndarray, color: tuple[int, int, int], outline: bool = False,
              fill_alpha: int = 255) -> np.ndarray:
    """RGBA for a binary slice mask: filled (``fill_alpha``) or outlined (opaque edge pixels)."""
    m = np.asarray(mask) > 0
    out = np.zeros(m.shape + (4,), dtype=np.uint8)
    _paint(out, boundary(m) if outline else m, color, 255 if outline else fill_alpha)
    return out


def masks_rgba(shape: tuple[int, int], lesion: np.ndarray | None, lung: np.ndarray | None, *,
               lesion_color: tuple[int, int, int], lesion_alpha: float, lesion_outline: bool,
               lung_colors: dict[int, tuple[int, int, int]], lung_alpha: float) -> np.ndarray:
    """Lung outlines and lesions of one slice composed into ONE RGBA image (lesions on top).

    Opacities (0..1) are baked into the alpha channel so the view draws a single overlay item.
    """
    out = np.zeros(tuple(shape) + (4,), dtype=np.uint8)
    if lung is not None and lung_alpha > 0:
        edge = boundary(lung)
        for value, color in lung_colors.items():
            _paint(out, edge & (lung == value), color, int(round(255 * lung_alpha)))
    if lesion is not None and lesion_alpha > 0:
        m = np.asarray(lesion) > 0
        _paint(out, boundary(m) if lesion_outline else m, lesion_color, int(round(255 * lesion_alpha)))
    return out


def show_layers(cam_item: Any, mask_item: Any, layers: LayerSettings) -> None:
    """Show or hide a view's activation-map and mask items as the layer settings say (the map's opacity too)."""
    on = layers.overlays_visible
    cam_item.setVisible(on and layers.cam_visible)
    cam_item.setOpacity(layers.cam_opacity)
    mask_item.setVisible(on and (layers.lesion_visible or layers.lung_visible))
