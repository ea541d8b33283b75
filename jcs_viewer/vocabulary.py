"""The words and numbers every layer shares, spelled once. Standard library only (every layer imports it).

- The five LA-DNN lesion attributes: the network's outputs, the training labels, ``results.json``, the summary
  panel and the report.
- The lung window the models read HU studies through and the viewer and report show them in.
- The ImageNet input normalisation of the networks trained on 8-bit images.
"""

from __future__ import annotations

from typing import NamedTuple


class LesionAttribute(NamedTuple):
    """One attribute and its spellings.

    Attributes:
        key: the key in ``results.json`` (per-slice attribute probabilities).
        title: as the summary panel and the report name it.
        short: as the per-slice line of the viewer names it.
        code: the column of LA-DNN's label CSVs.
    """

    key: str
    title: str
    short: str
    code: str


#: In the order of the classifier's attribute logits (the models' contract).
LESION_ATTRIBUTES: tuple[LesionAttribute, ...] = (
    LesionAttribute("ground_glass_opacity", "Ground-glass opacity", "GGO", "GGO"),
    LesionAttribute("consolidation", "Consolidation", "consolidation", "Csld"),
    LesionAttribute("crazy_paving", "Crazy paving", "crazy paving", "CrPa"),
    LesionAttribute("air_bronchogram", "Air bronchogram", "air bronchogram", "AirBr"),
    LesionAttribute("interlobular_septal_thickening", "Interlobular septal thickening", "septal thickening",
                    "InSepThi"),
)
ATTRIBUTE_KEYS = tuple(a.key for a in LESION_ATTRIBUTES)
ATTRIBUTE_TITLES = tuple(a.title for a in LESION_ATTRIBUTES)
ATTRIBUTE_CODES = tuple(a.code for a in LESION_ATTRIBUTES)

#: The standard lung window (W1500/L-600): the models' HU -> 8-bit transform and the viewer's "lung" preset.
LUNG_WINDOW_CENTER, LUNG_WINDOW_WIDTH = -600.0, 1500.0
#: (center, width), the order of the weights manifest's ``window``.
LUNG_WINDOW = (LUNG_WINDOW_CENTER, LUNG_WINDOW_WIDTH)
#: ImageNet normalisation of 8-bit inputs scaled to [0, 1] (mean, std per RGB channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
