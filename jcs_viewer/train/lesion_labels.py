"""LA-DNN auxiliary lesion-attribute labels for COVID-CT images.

The LA-DNN CSVs (``la_dnn_lesion_labels/{train,val,test}_meta.csv``, columns
``imgname, CVD19, GGO, Csld, CrPa, AirBr, InSepThi``) mark a lesion by a non-empty
cell. LA-DNN's own code binarised them with the names ``Aibr`` / ``InSep``, which
do not match the CSV spelling, so air bronchogram and septal thickening were
silently always 0. Here every column is read by its real header name.
"""

from __future__ import annotations

import csv
from pathlib import Path

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.vocabulary import ATTRIBUTE_CODES

# LA-DNN's CSV columns in the order of the classifier's attribute outputs (models' contract).
ATTRIBUTES = ATTRIBUTE_CODES
META_FILES = ("train_meta.csv", "val_meta.csv", "test_meta.csv")


def load_lesion_labels(label_dir: Path) -> dict[str, tuple[int, ...]]:
    """Five 0/1 attribute labels per image name, for images with at least one lesion mentioned.

    Images without any lesion text (all non-COVID and some COVID images) are
    absent: their attributes are unknown, not negative, and are not trained on.

    Args:
        label_dir: the ``la_dnn_lesion_labels`` folder.
    """
    labels: dict[str, tuple[int, ...]] = {}
    for name in META_FILES:
        path = Path(label_dir) / name
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in ("imgname", *ATTRIBUTES) if c not in (reader.fieldnames or [])]
                if missing:
                    raise StudyLoadError(f"The label file {path} lacks the columns {', '.join(missing)}.")
                for row in reader:
                    values = tuple(int(bool((row[c] or "").strip())) for c in ATTRIBUTES)
                    if any(values):
                        labels[row["imgname"].strip()] = values
        except OSError as exc:
            raise StudyLoadError(f"Cannot read the label file {path}: {exc}.") from exc
    return labels
