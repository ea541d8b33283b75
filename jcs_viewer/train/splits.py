"""Data splits used to train and evaluate the shipped weights.

MedSeg COVID-19 CT100 (``medseg_covid19_ct100_jcs``): the shipped ``train.txt`` /
``test.txt`` overlap (all 20 test slices are also in train), so we make our own.
Neighbouring ids come from the same patient, so the split is made of contiguous
blocks of ``BLOCK`` ids, never of single slices: ids 0–79 form ten blocks of 8;
two blocks spread over the range are the held-out test set (16 slices, 20 %), one
block is the validation set used for model selection (8 slices, 10 %), the other
seven blocks (56 slices) are for training. Ids 80–99 are reserved by the data
provider and absent here.

COVID-CT (``ucsd_covid_ct``): the official patient-level 3-way split
(``Data-split/{COVID,NonCOVID}/{train,val,test}CT_*.txt``).
"""

from __future__ import annotations

from pathlib import Path

from jcs_viewer.errors import StudyLoadError

MEDSEG_IDS = range(0, 80)
BLOCK = 8
MEDSEG_TEST_BLOCKS = (2, 7)  # ids 16-23 and 56-63
MEDSEG_VAL_BLOCKS = (5,)  # ids 40-47
SPLITS = ("train", "val", "test")


def medseg_split(split: str) -> list[int]:
    """Slice ids of one MedSeg split ("train", "val", "test" or "all")."""
    return split_by_group(list(MEDSEG_IDS), lambda i: i // BLOCK, split, MEDSEG_TEST_BLOCKS, MEDSEG_VAL_BLOCKS)


def split_by_group(items: list[int], group_of, split: str, test: tuple[int, ...], val: tuple[int, ...]) -> list[int]:
    """The ``items`` of one split ("train", "val", "test" or "all") when whole groups go to test and val."""
    if split == "all":
        return list(items)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS + ('all',)}")
    if split == "train":
        held = set(test) | set(val)
        return [i for i in items if group_of(i) not in held]
    return [i for i in items if group_of(i) in (test if split == "test" else val)]


def medseg_image_name(slice_id: int) -> str:
    """File name of a MedSeg slice image (``tr_im_0007.png``)."""
    return f"tr_im_{slice_id:04d}.png"


def medseg_mask_name(slice_id: int) -> str:
    """File name of a MedSeg mask (``tr_mask_0007.png``)."""
    return f"tr_mask_{slice_id:04d}.png"


def covid_ct_split(root: Path, split: str) -> tuple[list[str], list[str]]:
    """COVID and non-COVID file names of one official COVID-CT split.

    Args:
        root: the ``ucsd_covid_ct`` folder.
        split: "train", "val" or "test".
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    covid = read_list(Path(root) / "Data-split" / "COVID" / f"{split}CT_COVID.txt")
    noncovid = read_list(Path(root) / "Data-split" / "NonCOVID" / f"{split}CT_NonCOVID.txt")
    return covid, noncovid


def read_list(path: Path) -> list[str]:
    """Names listed in a text file, one per line; blank lines and ``#`` comments skipped.

    A line with several fields (``tr_im/x.png tr_mask/x.png``) yields the base name of its first field.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyLoadError(f"Cannot read the list file {path}: {exc}.") from exc
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(Path(line.split()[0]).name)
    return names


# COVID-19-CT-Seg (``covid19_ct_seg20_slices``): slices 0000..1440 (every 2nd) in the source's volume
# order; the volume boundaries are not recorded, so the split is by the measured similarity drops the
# data README lists (approximate volume starts). Groups (one or more whole volumes) are never split.
CTSEG_GROUP_STARTS = (0, 159, 279, 397, 510, 626, 789, 970, 1081, 1247, 1376)
CTSEG_TEST_GROUPS = (2, 7)  # slices 279-396 and 970-1080: held out
CTSEG_VAL_GROUPS = (5,)  # slices 626-788: model selection


def ctseg_group(slice_number: int) -> int:
    """Index of the volume group a CT-Seg slice number belongs to."""
    return sum(1 for start in CTSEG_GROUP_STARTS if slice_number >= start) - 1


def ctseg_group_span(group: int) -> str:
    """The slice numbers a CT-Seg volume group spans, as the figures name it (``"0279-0396"``)."""
    last = CTSEG_GROUP_STARTS[group + 1] - 1 if group + 1 < len(CTSEG_GROUP_STARTS) else 1440
    return f"{CTSEG_GROUP_STARTS[group]:04d}-{last:04d}"


def ctseg_split(numbers: list[int], split: str) -> list[int]:
    """The slice numbers of one CT-Seg split ("train", "val", "test" or "all"), by whole volume groups."""
    return split_by_group(list(numbers), ctseg_group, split, CTSEG_TEST_GROUPS, CTSEG_VAL_GROUPS)
