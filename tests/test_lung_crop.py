"""The classifier's lung square: boxes from lung masks, resampling there and back, the analysis using it."""

import dataclasses

import numpy as np
import pytest
import torch

from jcs_viewer.models.registry import WeightsEntry
from jcs_viewer.pipeline import AnalysisOptions, analyze
from jcs_viewer.pipeline.lung_crop import MARGIN, crop_boxes, crop_images, lung_boxes, paste_boxes
from jcs_viewer.pipeline.preprocess import entry_boxes, prepare_batch
from test_pipeline_support import small_phantom, tiny_models


def test_a_box_is_the_square_about_the_lungs_with_its_margin():
    masks = np.zeros((3, 100, 200), bool)
    masks[0, 30:70, 50:150] = True  # wide lungs: the square is as long as they are wide, plus the margin
    masks[1, 30:70, 50:150] = True
    masks[1, 2, 190] = True  # a speck far away does not stretch the box
    top, left, bottom, right = lung_boxes(masks)[0]
    side = 100 * (1 + 2 * MARGIN)
    assert right - left == pytest.approx(side / 200) and bottom - top == pytest.approx(side / 100)
    assert (top + bottom) / 2 == pytest.approx(0.5) and (left + right) / 2 == pytest.approx(0.5)
    assert np.allclose(lung_boxes(masks)[1], lung_boxes(masks)[0])
    assert np.array_equal(lung_boxes(masks)[2], [0, 0, 1, 1])  # no lung: the whole frame


def test_a_box_near_the_edge_shifts_into_the_frame():
    masks = np.zeros((1, 200, 200), bool)
    masks[0, 0:40, 0:60] = True
    top, left, bottom, right = lung_boxes(masks)[0]
    assert top == pytest.approx(0) and left == pytest.approx(0)
    assert right == pytest.approx(60 * (1 + 2 * MARGIN) / 200) and bottom == pytest.approx(right)


def test_crop_then_paste_gives_back_the_box_and_nothing_outside():
    torch.manual_seed(0)
    image = torch.rand(1, 1, 120, 160)
    box = np.array([[0.25, 0.25, 0.75, 0.625]], np.float32)  # rows 30..90, columns 40..100: 60 x 60 pixels
    crop = crop_boxes(image, box, (60, 60))
    assert torch.allclose(crop, image[..., 30:90, 40:100], atol=1e-5)  # 1:1 sampling reads the pixels
    back = paste_boxes(crop, box, (120, 160))
    assert torch.allclose(back[..., 30:90, 40:100], image[..., 30:90, 40:100], atol=1e-5)
    outside = torch.ones_like(back, dtype=torch.bool)
    outside[..., 30:90, 40:100] = False
    assert back[outside].abs().max() < 1e-5


def test_images_outside_the_frame_read_as_black():
    images = np.full((1, 50, 50), 200, np.uint8)
    out = crop_images(images, np.array([[-0.5, 0.0, 0.5, 1.0]], np.float32), 50)
    assert (out[0, :20] == 0).all() and (out[0, 30:] == 200).all()


def test_only_lung_square_entries_take_boxes_and_they_need_the_lungs():
    entry = WeightsEntry(name="c", task="cls", arch="jcs_cls_lite", file="c.safetensors", input_size=32,
                         window=(-600.0, 1500.0))
    lungs = np.zeros((2, 64, 64), bool)
    lungs[:, 16:48, 8:56] = True
    assert entry_boxes(entry, lungs) is None
    square = dataclasses.replace(entry, crop="lungs")
    with pytest.raises(ValueError, match="lung masks"):
        entry_boxes(square, None)
    boxes = entry_boxes(square, lungs)
    hu = np.full((2, 64, 64), -1000, np.int16)
    hu[:, 16:48, 8:56] = -600  # the lungs mid-grey, the rest air (black)
    x = prepare_batch(hu, square, True, "cpu", boxes)
    whole = prepare_batch(hu, entry, True, "cpu")
    assert x.shape == whole.shape == (2, 3, 32, 32)
    assert (x[:, 0] > x.min()).float().mean() > 2 * (whole[:, 0] > whole.min()).float().mean()  # lungs fill it


def test_the_manifest_keeps_the_crop_and_refuses_unknown_ones(tmp_path):
    entry = WeightsEntry(name="c", task="cls", arch="jcs_cls_lite", file="c.safetensors")
    assert "crop" not in entry.to_json()  # manifests without the field stay as they were
    record = dataclasses.replace(entry, crop="lungs").to_json()
    assert WeightsEntry.from_json(record, tmp_path).crop == "lungs"
    with pytest.raises(ValueError, match="crop must be one of"):
        WeightsEntry.from_json({**record, "crop": "heart"}, tmp_path)


def test_the_analysis_reads_lung_squares_and_lays_the_map_back_in_the_slice():
    volume = small_phantom(8, 96, seed=2).to_volume()
    models = tiny_models()
    square = dataclasses.replace(models, cls_entry=dataclasses.replace(models.cls_entry, crop="lungs"))
    result = analyze(volume, AnalysisOptions(device="cpu"), models=square)
    plain = analyze(volume, AnalysisOptions(device="cpu"), models=models)
    assert not np.allclose(result.classifier_probability, plain.classifier_probability)
    # The map is zero outside each scored slice's lung square, which the lungs fill.
    boxes = lung_boxes(result.lung_mask > 0)
    assert result.cams[result.scored_slices].any()
    rows, cols = np.arange(64)[:, None] + 0.5, np.arange(64)[None, :] + 0.5
    checked = 0
    for k in np.flatnonzero(result.scored_slices):
        top, left, bottom, right = boxes[k] * 64
        outside = (rows < top - 1) | (rows > bottom + 1) | (cols < left - 1) | (cols > right + 1)
        assert not result.cams[k][outside].any()
        checked += int(outside.sum())
    assert checked > 1000  # the squares leave enough of the slices outside for the check to mean something
