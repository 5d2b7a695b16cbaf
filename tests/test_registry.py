"""The registry of detector kinds owns both directions of a checkpoint: each kind describes what its checkpoints
carry (``checkpoint_meta``), rebuilds itself from one (``from_checkpoint``), and recognises its own bare state dict
(``recognise_state_dict``); ``models.checkpoints`` only asks the registered kinds. So a new kind is one class with
one ``@register``, and the files the kinds write keep their keys and values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import SMOKE
from torch import nn

from detectlib.config import CLASSES
from detectlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from detectlib.models import checkpoints
from detectlib.models.checkpoints import (
    DETECTORS,
    CheckpointError,
    describe_bare_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from detectlib.models.classifier import TimmDetector, create_timm_model
from detectlib.models.clip_head import CLIP_BY_WIDTH, ClipHeadDetector, FrozenHeadDetector
from detectlib.models.detector import Detector, load_detector, register
from detectlib.models.encoders import TINY_CLIP, make_encoder
from detectlib.models.training_free import TrainingFreeDetector, save_training_free, training_free_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


# -- a kind the kit does not know, registered by this test alone ------------------------------------------------------
class ToyNet(nn.Module):
    """Mean colour of a 2 x 2 thumbnail -> two logits."""

    def __init__(self, hidden: int = 12):
        super().__init__()
        self.toy = nn.Linear(hidden, len(CLASSES))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.toy(batch.flatten(1))


def toy_transform(image) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(image.convert("RGB").resize((2, 2)), dtype=np.float32) / 255).permute(2, 0, 1)


class ToyDetector(Detector):
    kind = "toy_linear"

    @classmethod
    def checkpoint_meta(cls, model: nn.Module | None = None, **settings: Any) -> dict[str, Any]:
        return {"kind": cls.kind, "hidden": model.toy.in_features, "classes": list(CLASSES), **settings}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> ToyDetector:
        model = ToyNet(int(ckpt["hidden"]))
        model.load_state_dict(ckpt["state_dict"])
        return cls(model, toy_transform, tuple(ckpt["classes"]), dict(ckpt))

    @classmethod
    def recognise_state_dict(cls, state_dict):
        weight = state_dict.get("toy.weight")
        if set(state_dict) != {"toy.weight", "toy.bias"} or weight.ndim != 2:
            return None
        return {"kind": cls.kind, "hidden": int(weight.shape[1]), "classes": list(CLASSES)}

    def class_scores(self, batch):
        return self.model(batch)

    def p_ai_from_scores(self, scores):
        return scores.float().softmax(dim=1)[:, 0]

    def model_text(self):
        return "a toy"


@pytest.fixture
def toy_kind():
    register(ToyDetector)
    try:
        yield ToyDetector
    finally:
        DETECTORS.pop(ToyDetector.kind, None)  # unregistered: other tests see the kit's kinds only
    assert ToyDetector.kind not in DETECTORS


def test_a_new_kind_saves_loads_and_recognises_its_bare_state_dict_through_the_registry(toy_kind, tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    model = ToyNet().eval()
    images = [Image.new("RGB", (9, 7), colour) for colour in ("red", "navy", "gray")]
    expected = model(torch.stack([toy_transform(im) for im in images])).softmax(dim=1)[:, 0].detach().numpy()

    saved = save_checkpoint(tmp_path / "toy.pth", model.state_dict(), **toy_kind.checkpoint_meta(model, note="x"))
    raw = torch.load(saved, weights_only=True)
    assert (raw["kind"], raw["hidden"], raw["note"]) == ("toy_linear", 12, "x")
    detector = load_detector(saved, device="cpu")
    assert isinstance(detector, ToyDetector)
    assert detector.score_images(images) == pytest.approx(expected, abs=1e-6)

    torch.save(model.state_dict(), tmp_path / "bare.pth")  # weights alone: the kind recognises them
    described = load_checkpoint(tmp_path / "bare.pth")
    assert (described["format"], described["kind"], described["hidden"]) == ("bare-state-dict", "toy_linear", 12)
    assert load_detector(tmp_path / "bare.pth", device="cpu").score_images(images) == pytest.approx(expected, abs=1e-6)


def test_the_checkpoints_module_names_no_kind():
    source = Path(checkpoints.__file__).read_text()
    assert not [kind for kind in DETECTORS if f'"{kind}"' in source or f"'{kind}'" in source]


def test_a_kind_needs_a_name_of_its_own():
    class Nameless(Detector):
        pass

    class Twin(ToyDetector):
        kind = TimmDetector.kind

    for cls in (Nameless, Twin):
        with pytest.raises(ValueError, match="a name no other kind has"):
            register(cls)
    assert DETECTORS[TimmDetector.kind] is TimmDetector


# -- the kit's kinds: metadata as the recipes wrote it, through a file and back ---------------------------------------
def test_convnext_metadata_is_what_the_recipe_wrote_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs).eval()
    config = {"data_dir": "data/x", "profile": "smoke", "epochs": 1}
    meta = TimmDetector.checkpoint_meta(model, arch=SMOKE.convnext_model, model_kwargs=SMOKE.convnext_kwargs,
                                        img_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, input="rgb",
                                        config=config)
    before = {"kind": "convnext", "arch": SMOKE.convnext_model, "model_kwargs": dict(SMOKE.convnext_kwargs),
              "classes": list(CLASSES), "img_size": 32, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
              "input": "rgb", "config": config}  # the dict train_convnext spelled out before the registry
    assert list(meta.items()) == list(before.items())
    assert TimmDetector.checkpoint_meta(model, img_size=32, model_kwargs=SMOKE.convnext_kwargs,
                                        config=config) == before  # arch and normalisation from the model
    path = save_checkpoint(tmp_path / "c.pth", model.state_dict(), **meta)
    loaded = load_checkpoint(path)
    assert {k: loaded[k] for k in meta} == json.loads(json.dumps(meta))  # tuples stored as lists
    detector = load_detector(path, device="cpu")
    assert type(detector) is TimmDetector and detector.transform.img_size == 32
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(detector.p_ai(images), model(images).softmax(dim=1)[:, 0].detach())
    with pytest.raises(ValueError, match="3 outputs"):
        TimmDetector.checkpoint_meta(create_timm_model(SMOKE.convnext_model, num_classes=3,
                                                       **SMOKE.convnext_kwargs), img_size=32)


def test_clip_head_metadata_is_what_the_recipe_wrote_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = ClipHeadDetector(encoder=make_encoder(TINY_CLIP), dropout=0.25, weights_path=None).eval()
    enc = model.encoder
    run = {"epoch": 2, "metrics": {"val_acc": 0.5}, "history": [{"epoch": 1}, {"epoch": 2}], "config": {"seed": 0}}
    meta = FrozenHeadDetector.checkpoint_meta(model, **run)
    before = {"kind": "clip_head", "arch": enc.spec, "encoder": enc.spec, "encoder_description": enc.description,
              "cache_key": enc.cache_key, "dim": enc.dim, "dropout": 0.25, "freeze": True, "classes": list(CLASSES),
              "img_size": enc.input_size, **run, "score": "2*sigmoid(logit)-1 in [-1, 1]; > 0 nature (real)"}
    assert list(meta.items()) == list(before.items())  # the keyword arguments train_clip_head passed before
    path = save_checkpoint(tmp_path / "clip_head.pth", model.weights_state_dict(), **meta)
    detector = load_detector(path, device="cpu")
    assert type(detector) is FrozenHeadDetector
    assert FrozenHeadDetector.checkpoint_meta(detector.model, **run) == meta  # the loaded model says the same
    pixels = torch.rand(2, 3, enc.input_size, enc.input_size)
    with torch.no_grad():
        torch.testing.assert_close(detector.model.logit(pixels), model.logit(pixels))


def test_training_free_metadata_is_its_json_file_and_round_trips(tmp_path):
    settings = {"encoder": TINY_CLIP, "sigma": 0.1, "k": 3, "layer": -1, "seed": 7, "threshold": 4e-5, "scale": 1e-5}
    record = {"tuned_on": "six images", "sweep": [{"sigma": 0.1, "auc": 0.5}], "config": {"profile": "smoke"}}
    meta = TrainingFreeDetector.checkpoint_meta(**settings, **record)
    assert training_free_checkpoint(**settings, **record) == {"format": checkpoints.CHECKPOINT_FORMAT, **meta}
    assert list(meta)[:2] == ["kind", "classes"] and meta["kind"] == "training_free"
    path = save_training_free(tmp_path / "rigid.json", **settings, **record)
    assert json.loads(path.read_text()) == {"format": checkpoints.CHECKPOINT_FORMAT, **meta}
    detector = load_detector(path, device="cpu")
    assert type(detector) is TrainingFreeDetector
    assert TrainingFreeDetector.checkpoint_meta(detector.model, **record) == meta  # settings read off the model
    assert TrainingFreeDetector.recognise_state_dict(detector.model.state_dict()) is None  # no weights of its own


# -- bare state dicts: recognised as before -----------------------------------------------------------------------
@pytest.mark.parametrize(("width", "arch"), [(1024, "openai/clip-vit-large-patch14"),
                                             (768, "openai/clip-vit-base-patch16"),
                                             (512, "openai/clip-vit-large-patch14")])
def test_a_bare_modelo_final_head_is_a_clip_head_over_the_clip_its_width_names(tmp_path, width, arch):
    torch.save({"head.1.weight": torch.zeros(1, width), "head.1.bias": torch.zeros(1)}, tmp_path / "modelo_final.pth")
    ckpt = load_checkpoint(tmp_path / "modelo_final.pth")
    assert (ckpt["format"], ckpt["kind"], ckpt["arch"], ckpt["classes"]) == ("bare-state-dict", "clip_head", arch,
                                                                            list(CLASSES))
    assert CLIP_BY_WIDTH.get(width, CLIP_BY_WIDTH[1024]) == arch
    assert set(ckpt["state_dict"]) == {"head.1.weight", "head.1.bias"}


def test_the_reference_whole_module_state_dict_is_a_clip_head():
    encoder = make_encoder(TINY_CLIP)
    state = {f"clip.vision_model.{k}": v for k, v in encoder.model.state_dict().items()}
    state |= {"classifier.1.weight": torch.zeros(1, 1024), "classifier.1.bias": torch.zeros(1)}
    assert describe_bare_state_dict(state)["kind"] == "clip_head"


def test_a_bare_timm_state_dict_is_the_references_convnext_tiny_as_before(tmp_path):
    torch.manual_seed(0)
    state = create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs).state_dict()
    torch.save(state, tmp_path / "epoch_5.pth")
    ckpt = load_checkpoint(tmp_path / "epoch_5.pth")
    assert list(ckpt) == ["format", "kind", "arch", "model_kwargs", "classes", "img_size", "mean", "std", "state_dict"]
    assert {k: v for k, v in ckpt.items() if k != "state_dict"} == {
        "format": "bare-state-dict", "kind": "convnext", "arch": "convnext_tiny", "model_kwargs": {},
        "classes": list(CLASSES), "img_size": 224, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def test_a_bare_state_dict_no_kind_recognises_is_refused_in_one_line(tmp_path):
    torch.save({"layer.weight": torch.zeros(3, 4)}, tmp_path / "mystery.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "mystery.pth")
    message = str(err.value)
    assert "mystery.pth" in message and "no detector kind recognises" in message and "\n" not in message
    assert all(kind in message for kind in DETECTORS)
