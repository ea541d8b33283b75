"""Splits, LA-DNN label mapping, image/mask pairing and the HU-window estimate."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.train import splits
from jcs_viewer.train.evaluate import mask_candidates, pair_images_masks
from jcs_viewer.train.lesion_labels import ATTRIBUTES, load_lesion_labels
from jcs_viewer.train.window import apply_window, fit_window, grey_histogram, tissue_peaks


def test_medseg_split_is_disjoint_contiguous_blocks():
    parts = {name: splits.medseg_split(name) for name in ("train", "val", "test")}
    all_ids = sorted(i for ids in parts.values() for i in ids)
    assert all_ids == list(range(80))  # disjoint and complete
    for name, ids in parts.items():
        blocks = {i // splits.BLOCK for i in ids}
        # Every block a split touches lies entirely inside it: no patient block is cut.
        assert sorted(ids) == sorted(i for b in blocks for i in range(b * splits.BLOCK, (b + 1) * splits.BLOCK))
    assert len(parts["test"]) == 16 and len(parts["val"]) == 8
    with pytest.raises(ValueError):
        splits.medseg_split("holdout")


def test_lesion_labels_read_every_column_by_its_header(tmp_path):
    header = "imgname,CVD19,GGO,Csld,CrPa,AirBr,InSepThi\n"
    (tmp_path / "train_meta.csv").write_text(header + "a.png,CVD19,,,,AirBr,InSepThi\nb.png,,,,,,\n")
    (tmp_path / "val_meta.csv").write_text(header + "c.png,CVD19,GGO,Csld,CrPa,,\n")
    (tmp_path / "test_meta.csv").write_text(header)
    labels = load_lesion_labels(tmp_path)
    assert labels == {"a.png": (0, 0, 0, 1, 1), "c.png": (1, 1, 1, 0, 0)}  # b.png: no lesion text, unknown
    (tmp_path / "test_meta.csv").write_text("imgname,CVD19,GGO,Csld,CrPa,Aibr,InSep\n")
    with pytest.raises(StudyLoadError, match="AirBr"):
        load_lesion_labels(tmp_path)


def test_lesion_labels_on_the_real_file_have_all_five_attributes(shared_data):
    labels = load_lesion_labels(shared_data("ucsd_covid_ct", "la_dnn_lesion_labels"))
    sums = np.array(list(labels.values())).sum(axis=0)
    assert dict(zip(ATTRIBUTES, sums.tolist())) == {"GGO": 211, "Csld": 79, "CrPa": 15, "AirBr": 11, "InSepThi": 12}


def test_masks_pair_by_name(tmp_path):
    assert mask_candidates("tr_im_0007.png")[0] == "tr_mask_0007.png"
    images, masks = tmp_path / "im", tmp_path / "gt"
    images.mkdir()
    masks.mkdir()
    for name in ("tr_im_0007.png", "12.jpg"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / name)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "tr_mask_0007.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "12.png")
    pairs = pair_images_masks(images, masks)
    assert [(a.name, b.name) for a, b in pairs] == [("12.jpg", "12.png"), ("tr_im_0007.png", "tr_mask_0007.png")]
    with pytest.raises(StudyLoadError, match="missing.png"):
        pair_images_masks(images, masks, ["missing.png"])
    (masks / "12.png").unlink()
    with pytest.raises(StudyLoadError, match="12.jpg"):
        pair_images_masks(images, masks)


def test_window_fit_recovers_a_known_window():
    # A synthetic slice of air, fat and soft tissue (+ noise) rendered through W1200/L-500.
    rng = np.random.default_rng(0)
    hu = np.concatenate([rng.normal(-1000, 15, 4000), rng.normal(-100, 15, 3000), rng.normal(40, 15, 5000)])
    grey = apply_window(hu, -500, 1200)
    peaks = tissue_peaks(grey_histogram([grey]))
    center, width = fit_window(peaks)
    assert abs(center - (-500)) < 25 and abs(width - 1200) < 60


def test_window_estimate_on_the_medseg_slices(shared_data):
    from jcs_viewer.train.window import TRAINING_WINDOW, load_grey_images

    images = load_grey_images(shared_data("medseg_covid19_ct100_jcs", "tr_im"))
    center, width = fit_window(tissue_peaks(grey_histogram(images)))
    assert abs(center - TRAINING_WINDOW[0]) < 50 and abs(width - TRAINING_WINDOW[1]) < 100
