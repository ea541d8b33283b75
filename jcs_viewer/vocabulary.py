"""The words and numbers every layer shares, spelled once. Standard library only (every layer imports it).

- The five LA-DNN lesion attributes: the network's outputs, the training labels, ``results.json``, the summary
  panel and the report.
- The lung window the models read HU studies through and the viewer and report show them in.
- The ImageNet input normalisation of the networks trained on 8-bit images.
- DICOM values as a reader reads them (names, dates, sex, age) and the plane of a slice normal.
- Counts of things in sentences (``1 slice``, ``3 slices``) and lists of slice numbers (``3-5, 9``).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def person_name(name: str) -> str:
    """A DICOM person name as a reader writes it.

    Each component group (alphabetic ``=`` ideographic ``=`` phonetic, PS3.5 6.2.1.2) is
    ``Family^Given^Middle^Prefix^Suffix``, written ``Family, Given Middle``; a group in an East Asian script is
    written ``Family Given``, without the comma. The ideographic group follows the alphabetic one in brackets
    (``Yamada, Tarou (山田 太郎)``); the phonetic group is shown only where it is the only one.
    """
    groups = ((name or "") + "==").split("=")[:3]
    shown = [_name_group(g) for g in groups[:2] if _name_group(g)] or [_name_group(groups[2])]
    return f"{shown[0]} ({shown[1]})" if len(shown) == 2 else shown[0]


def _name_group(group: str) -> str:
    parts = [p.strip() for p in group.split("^")]
    given = " ".join(p for p in parts[1:3] if p)
    if not given:
        return parts[0]
    return f"{parts[0]} {given}" if is_east_asian(group) else f"{parts[0]}, {given}"


def is_east_asian(text: str) -> bool:
    """Whether the text holds CJK ideographs, kana or hangul (names in them are written family name first, with no
    comma)."""
    return any(0x1100 <= ord(c) <= 0x11FF or 0x2E80 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF
               or 0xF900 <= ord(c) <= 0xFAFF or 0x20000 <= ord(c) <= 0x3FFFF for c in text)


def dicom_date(value: str) -> str:
    """DICOM ``YYYYMMDD`` -> ``YYYY-MM-DD``; anything else as it is."""
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def sex_word(value: str) -> str:
    """DICOM Patient's Sex code -> a word ("O" printed alone reads like a zero)."""
    value = (value or "").strip()
    return {"M": "male", "F": "female", "O": "other"}.get(value.upper(), value)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and its noun in the right number: ``counted(1, "slice")`` -> ``1 slice``, ``counted(2, "study",
    "studies")`` -> ``2 studies``."""
    return f"{n} {noun if abs(n) == 1 else plural or noun + 's'}"


def age_words(value: str) -> str:
    """DICOM age string ``045Y`` -> ``45 years`` (``D``/``W``/``M`` likewise); anything else unchanged."""
    value = (value or "").strip()
    units = {"D": "day", "W": "week", "M": "month", "Y": "year"}
    if 2 <= len(value) <= 4 and value[:-1].isdigit() and value[-1].upper() in units:
        return counted(int(value[:-1]), units[value[-1].upper()])
    return value


def plane_of_normal(normal: Sequence[float]) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"``: the patient plane whose normal is nearest ``normal``
    (an LPS vector along which the slices are stacked)."""
    magnitudes = [abs(float(c)) for c in normal]
    return ("sagittal", "coronal", "axial")[magnitudes.index(max(magnitudes))]


def compress_ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (slice lists stay short in the report)."""
    if not indices:
        return "none"
    parts = []
    start = prev = indices[0]
    for z in indices[1:] + [None]:  # type: ignore[list-item]
        if z is not None and z == prev + 1:
            prev = z
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if z is not None:
            start = prev = z
    return ", ".join(parts)
