"""Weights registry: manifest entries, safetensors loading with hash check, official .pth discovery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.models.factory import task_of
from jcs_viewer.models import (
    WeightsEntry,
    add_manifest_entry,
    build,
    default_weights,
    get_weights,
    list_weights,
    load,
    save_weights,
    sha256_of,
    weights_dirs,
)
from jcs_viewer.models.registry import official_entry, read_manifest, shipped_weights_dir


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """An empty weights folder standing in for the shipped one, and an empty user folder."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JCS_VIEWER_DATA", raising=False)  # the user folder then follows XDG_DATA_HOME
    return folder


def _trained_like(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(name, **overrides)
    with torch.no_grad():  # non-default BN statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _entry(name: str, arch: str, file: str, sha: str, task: str, **kw) -> WeightsEntry:
    return WeightsEntry(name=name, task=task, arch=arch, file=file, sha256=sha,
                        input_size=224 if task == "cls" else 256,
                        window=(-600.0, 1500.0), licence="CC BY 4.0 (test)", provenance="unit test",
                        training_data="synthetic", split="none", command="pytest", seed=0,
                        metrics={"auc": 0.5}, description="test entry", **kw)


def test_manifest_round_trip_load_and_tamper(weights_dir):
    cls = _trained_like("jcs_cls_lite", attributes=True)
    seg = _trained_like("jcs_seg_lite")
    sha_c = save_weights(cls, weights_dir / "cls.safetensors")
    sha_s = save_weights(seg, weights_dir / "seg.safetensors")
    assert sha_c == sha256_of(weights_dir / "cls.safetensors")
    add_manifest_entry(_entry("cls-test", "jcs_cls_lite", "cls.safetensors", sha_c, "cls",
                              config={"attributes": True}, default=True))
    add_manifest_entry(_entry("seg-test", "jcs_seg_lite", "seg.safetensors", sha_s, "seg"), weights_dir)
    add_manifest_entry(_entry("seg-test2", "jcs_seg_lite", "seg.safetensors", sha_s, "seg", default=True), weights_dir)

    data = json.loads((weights_dir / "manifest.json").read_text())
    assert data["schema_version"] == 1 and len(data["weights"]) == 3
    assert [e.name for e in list_weights("seg")] == ["seg-test", "seg-test2"]
    assert default_weights("cls").name == "cls-test"
    assert default_weights("seg").name == "seg-test2"  # a new default replaces the old one
    quick = {"medseg": {"dice": 0.7062329860390827}}
    add_manifest_entry(_entry("seg-test", "jcs_seg_lite", "seg.safetensors", sha_s, "seg", quick_check=quick),
                       weights_dir)  # replaced (the quick figures recorded): it keeps its place
    assert [r["name"] for r in json.loads((weights_dir / "manifest.json").read_text())["weights"]] == [
        "cls-test", "seg-test", "seg-test2"]
    assert get_weights("seg-test").quick_check == quick and get_weights("seg-test2").quick_check == {}
    entry = get_weights("cls-test")
    assert entry.window == (-600.0, 1500.0) and entry.mean == (0.485, 0.456, 0.406) and entry.seed == 0

    x = torch.randn(2, 3, 224, 224)
    model, loaded_entry = load("cls-test")
    assert loaded_entry == entry and not model.training
    with torch.no_grad():
        ref_logits, ref_attrs = cls.forward_with_attributes(x)
        logits, attrs = model.forward_with_attributes(x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(attrs, ref_attrs, rtol=1e-4, atol=1e-4)
    raw, _ = load(weights_dir / "seg.safetensors", fold_bn=False)  # by path, unfolded: the exact state_dict
    assert all(torch.equal(raw.state_dict()[k], v) for k, v in seg.state_dict().items())

    data = bytearray((weights_dir / "cls.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (weights_dir / "cls.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"cls\.safetensors does not match the SHA-256"):
        load("cls-test")


def test_weights_holding_nan_are_refused_not_run(weights_dir):
    """A lesion net whose tensors were NaN loaded and ran: no lesion anywhere, and a positive study read "negative"
    without a word. Its manifest entry gave no SHA-256 to catch it."""
    seg = _trained_like("jcs_seg_lite")
    with torch.no_grad():
        next(p for p in seg.parameters() if p.dim() == 4).fill_(float("nan"))
    add_manifest_entry(_entry("seg-nan", "jcs_seg_lite", "seg.safetensors",
                              save_weights(seg, weights_dir / "seg.safetensors"), "seg"), weights_dir)
    with pytest.raises(ModelLoadError, match=r"seg\.safetensors is damaged: 1 of its tensors hold NaN"):
        load("seg-nan")


def test_a_folder_named_as_weights_is_called_a_folder(weights_dir, tmp_path):
    """It said "No weights named '…' and no such file", though the folder was there."""
    with pytest.raises(ModelLoadError, match=r"is a folder: name one weights file in it"):
        load(tmp_path)


def test_registry_errors(weights_dir):
    assert list_weights() == [] and default_weights("seg") is None
    with pytest.raises(ModelLoadError, match="No weights named 'nothing'"):
        load("nothing")
    add_manifest_entry(_entry("gone", "jcs_seg_lite", "gone.safetensors", "0" * 64, "seg"), weights_dir)
    with pytest.raises(ModelLoadError, match="gone.safetensors.*missing"):
        load("gone")
    (weights_dir / "junk.safetensors").write_bytes(b"\x00" * 64)
    add_manifest_entry(_entry("junk", "jcs_seg_lite", "junk.safetensors", None, "seg"), weights_dir)
    with pytest.raises(ModelLoadError, match="junk.safetensors is not a readable safetensors"):
        load("junk")
    sha = save_weights(build("jcs_cls_lite"), weights_dir / "other.safetensors")
    add_manifest_entry(_entry("mismatch", "jcs_seg_lite", "other.safetensors", sha, "seg"), weights_dir)
    with pytest.raises(ModelLoadError, match="does not match the jcs_seg_lite architecture"):
        load("mismatch")
    (weights_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a valid weights manifest"):
        list_weights()


def test_official_files_in_user_folder_are_registered(weights_dir, tmp_path):
    user = tmp_path / "xdg" / "jcs-viewer" / "weights"
    user.mkdir(parents=True)
    assert user in weights_dirs()
    cls_sd = build("jcs_cls").state_dict()
    torch.save({"module." + k: v for k, v in cls_sd.items()}, user / "res2net_cls.pth")
    # An unknown file name is not opened to list the folder; asked for by its path, its keys tell its kind.
    torch.save({"vgg16.conv1_1.conv.weight": torch.zeros(1)}, user / "my_seg_model.pth")
    (user / "notes.pth").write_text("not a checkpoint")
    names = {e.name: e for e in list_weights()}
    assert set(names) == {"official:res2net_cls"}
    assert names["official:res2net_cls"].arch == "jcs_cls" and names["official:res2net_cls"].official
    by_path = official_entry(user / "my_seg_model.pth")
    assert by_path.task == "seg" and by_path.input_size == 512
    assert default_weights("cls").name == "official:res2net_cls"
    model, entry = load("official:res2net_cls")
    assert type(model).__name__ == "JCSClassifier" and entry.task == "cls"
    with pytest.raises(ModelLoadError, match="my_seg_model.pth does not match the jcs_seg architecture"):
        load(user / "my_seg_model.pth")
    with pytest.raises(ModelLoadError, match="notes.pth is neither"):
        load(user / "notes.pth")


def test_shipped_manifest_is_valid_and_its_files_match():
    """Every entry the repository ships names an existing file with the recorded hash and a real architecture."""
    folder = shipped_weights_dir()
    for entry in read_manifest(folder):
        assert entry.path.is_file(), entry.name
        assert entry.sha256 and sha256_of(entry.path) == entry.sha256, entry.name
        model = build(entry.arch, **entry.config)
        assert entry.task == task_of(entry.arch) and entry.licence and entry.training_data
        assert entry.intensity in ("window", "ctseg", "mixed")
        if entry.intensity == "ctseg":  # pretrained EfficientNet-Lite inputs
            assert entry.mean == entry.std == (0.5, 0.5, 0.5) and entry.window is None
        if entry.intensity == "mixed":  # 8-bit lung-window and CLAHE slices; HU studies windowed
            assert entry.mean == entry.std == (0.5, 0.5, 0.5) and entry.window == (-600.0, 1500.0)
        del model
    assert {e.task for e in read_manifest(folder) if e.default} == {"seg", "cls", "lung"}
    # One lesion net for HU studies, one for 8-bit stacks (both domains it was trained in); one lung net for HU
    # studies, one for 8-bit stacks (trained on consolidated lobes, which their grey levels cannot show).
    assert sorted((e.task, e.intensity) for e in read_manifest(folder) if e.default_grey) == [
        ("lung", "ctseg"), ("seg", "mixed")]


def _zip_bomb(path, inflated: int = 4 << 30) -> None:
    """A torch-like zip archive whose data.pkl inflates to ``inflated`` bytes (a few MB on disk)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as member:
            block = bytes(1 << 24)
            for _ in range(inflated // len(block)):
                member.write(block)


@pytest.fixture(scope="module")
def gib_bomb(tmp_path_factory):
    """One 1 GiB zip bomb for the module (deflating 1 GiB takes seconds); tests copy it under their own names."""
    bomb = tmp_path_factory.mktemp("bomb") / "bomb.pth"
    _zip_bomb(bomb, inflated=1 << 30)  # 1 GiB declared, about 1 MB on disk
    return bomb


@pytest.mark.parametrize("name", ["joint.pth", "anything.pth"])
def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, name, gib_bomb):
    import resource

    bomb = tmp_path / name
    shutil.copyfile(gib_bomb, bomb)
    assert bomb.stat().st_size < 8 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelLoadError, match=rf"{name} was refused: its archive declares 1,024 MB"):
        load(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # kB: nothing was inflated


def test_a_folder_is_listed_without_opening_unknown_files(tmp_path, monkeypatch, gib_bomb):
    """A bomb that only sits next to the weights asked for is never opened (names are not guessed from keys)."""
    from jcs_viewer.models import checkpoints

    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copyfile(gib_bomb, folder / "unrelated.pth")
    opened = []
    monkeypatch.setattr(checkpoints, "check_archive", lambda path: opened.append(path))
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **k: opened.append(a) or {})
    assert [e.name for e in list_weights(extra_dirs=(folder,)) if e.root == folder] == []
    assert opened == []


@pytest.mark.parametrize("file", ["../../../../etc/hostname", "/etc/hostname", "sub/w.safetensors", ".."])
def test_a_manifest_file_outside_its_folder_is_refused(tmp_path, capsys, monkeypatch, file):
    """Issue 15, item 11: a manifest's "file" escaping its folder was opened as weights."""
    from jcs_viewer.cli import main
    from jcs_viewer.models import registry

    monkeypatch.setattr(registry, "_EXTRA_DIRS", [])  # --weights DIR adds the bad folder for the process

    (tmp_path / "manifest.json").write_text(json.dumps({"weights": [
        {"name": "escape", "task": "seg", "arch": "jcs_seg_lite", "file": file}]}))
    with pytest.raises(ModelLoadError, match="inside the manifest's folder"):
        read_manifest(tmp_path)
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
