"""detectlib.models.training_free: RIGID's noise sensitivity of a frozen CLIP as a detector kind that needs no
training data, on the tiny random CLIP (its numbers mean nothing; the plumbing and the arithmetic are checked)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from detectlib import infer
from detectlib.models.checkpoints import CheckpointError, load_checkpoint
from detectlib.models.detector import load_detector
from detectlib.models.encoders import TINY_CLIP, make_encoder
from detectlib.models.training_free import (
    NoiseSensitivity,
    TrainingFreeDetector,
    clip_encoder,
    noise_sensitivity,
    save_training_free,
    tune_noise_sensitivity,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {"encoder": TINY_CLIP, "sigma": 0.1, "k": 3, "layer": -1, "seed": 7, "threshold": 4e-5, "scale": 1e-5}


def noise_images(n: int, seed: int = 0, size: tuple[int, int] = (48, 60)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def smooth_images(n: int, seed: int = 0, side: int = 64) -> list[Image.Image]:
    """Gentle colour gradients: no texture at all."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, side)[None, :, None] * np.ones((side, 1, 3))
    return [Image.fromarray(np.uint8(255 * (0.2 + 0.6 * ramp * rng.uniform(0.3, 1.0, 3)))) for _ in range(n)]


@pytest.fixture(scope="module")
def encoder():
    return make_encoder(TINY_CLIP)


@pytest.fixture(scope="module")
def pixels(encoder) -> torch.Tensor:
    return encoder.preprocess(noise_images(5))


def test_a_score_repeats_exactly_and_ignores_its_batch_mates(encoder, pixels):
    first = noise_sensitivity(encoder, pixels, sigma=0.1, k=3, layer="pooler", seed=0)
    assert first.shape == (5,) and torch.equal(first, noise_sensitivity(encoder, pixels, 0.1, 3, "pooler", 0))
    torch.testing.assert_close(noise_sensitivity(encoder, pixels[[3, 0]], 0.1, 3, "pooler", 0), first[[3, 0]],
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(noise_sensitivity(encoder, pixels[2:3], 0.1, 3, "pooler", 0), first[2:3],
                               rtol=1e-5, atol=0)
    chunked = noise_sensitivity(encoder, pixels, 0.1, 3, "pooler", 0, max_batch=4)  # one image per forward
    torch.testing.assert_close(chunked, first, rtol=1e-5, atol=0)
    assert not torch.equal(noise_sensitivity(encoder, pixels, 0.1, 3, "pooler", seed=1), first)


def test_no_noise_moves_nothing_and_more_noise_moves_more(encoder, pixels):
    for layer in ("pooler", 1, -1, 0):
        assert torch.equal(noise_sensitivity(encoder, pixels, sigma=0.0, k=2, layer=layer), torch.zeros(5))
    means = [noise_sensitivity(encoder, pixels, sigma=s, k=2, layer=-1).mean().item() for s in (0.01, 0.1, 1.0)]
    assert 0 < means[0] < means[1] < means[2]


def test_cls_tokens_at_the_pooler_and_at_a_layer(encoder, pixels):
    with torch.no_grad():
        out = encoder.model(pixel_values=pixels, output_hidden_states=True)
        torch.testing.assert_close(encoder.cls_tokens(pixels, "pooler"), encoder.embed(pixels))
        torch.testing.assert_close(encoder.cls_tokens(pixels, 1), out.hidden_states[1][:, 0])
        torch.testing.assert_close(encoder.cls_tokens(pixels, -1), out.hidden_states[-1][:, 0])
    assert encoder.cls_tokens(pixels, 0).shape == (5, encoder.dim)
    with pytest.raises(ValueError, match=r"layer 3: encoder 'clip-tiny-random' has hidden states 0\.\.2"):
        encoder.cls_tokens(pixels, 3)


def test_a_timm_encoder_is_refused_in_one_line(tmp_path):
    for call in (lambda: clip_encoder("timm:tf_efficientnet_lite0"),
                 lambda: save_training_free(tmp_path / "t.json", **(SETTINGS | {"encoder": "timm:resnet18"}))):
        with pytest.raises(ValueError, match="timm encoders have none") as err:
            call()
        assert "\n" not in str(err.value)
    assert not (tmp_path / "t.json").exists()


def test_the_file_is_small_json_and_loads_as_a_detector(tmp_path, encoder):
    sweep = [{"sigma": 0.1, "k": 3, "layer": -1, "auc": 0.75}]
    path = save_training_free(tmp_path / "training_free" / "rigid.json", **SETTINGS, sweep=sweep,
                              tuned_on="five noise images", config={"profile": "smoke"})
    raw = json.loads(path.read_text())
    assert raw["format"] == "detectlib-checkpoint/1" and raw["kind"] == "training_free"
    assert raw["classes"] == ["ai", "nature"] and raw["sweep"] == sweep and path.stat().st_size < 2000
    assert [p.name for p in path.parent.iterdir()] == ["rigid.json"]  # atomic: no temporary file left
    detector = load_detector(path, device="cpu")
    assert isinstance(detector, TrainingFreeDetector) and isinstance(detector.model, NoiseSensitivity)
    model = detector.model
    assert (model.sigma, model.k, model.layer, model.seed) == (0.1, 3, -1, 7)
    assert (model.threshold, model.scale) == (4e-5, 1e-5) and detector.frozen_encoder is None
    assert detector.trained_in() == ", trained in the smoke profile"
    text = detector.describe()
    assert "training-free noise sensitivity of a tiny CLIP" in text and "σ=0.1, k=3, layer -1" in text
    assert "tuned on five noise images" in text
    images = noise_images(3, seed=1)
    p_ai = detector.score_images(images)
    d = noise_sensitivity(encoder, torch.stack([detector.transform(im) for im in images]), 0.1, 3, -1, seed=7)
    np.testing.assert_allclose(p_ai, torch.sigmoid((d - 4e-5) / 1e-5).numpy(), rtol=1e-5)
    assert detector.view(images[0]).size == (48, 48)


def test_p_ai_is_one_half_at_the_threshold_and_rises_with_d():
    detector = TrainingFreeDetector.from_checkpoint(SETTINGS | {"classes": ["ai", "nature"]})
    d = torch.tensor([0.0, 2e-5, 4e-5, 6e-5, 1e-3])
    scores = detector.scores_from_distance(d)
    torch.testing.assert_close(scores[:, 0], (d - 4e-5) / 1e-5)
    assert torch.equal(scores[:, 1], -scores[:, 0])
    p_ai = detector.p_ai_from_scores(scores)
    assert p_ai[2].item() == 0.5 and bool((p_ai.diff() > 0).all())
    with pytest.raises(ValueError, match="scale > 0"):
        TrainingFreeDetector.from_checkpoint(SETTINGS | {"scale": 0.0})


def test_other_json_and_text_files_are_still_refused_in_one_line(tmp_path):
    files = {"other.json": json.dumps({"format": "something-else", "kind": "training_free"}),
             "nokind.json": json.dumps({"format": "detectlib-checkpoint/1"}),
             "list.json": "[1, 2, 3]", "broken.json": '{"format": "detectlib-checkpoint/1", ',
             "notes.txt": "weights: see the shared drive"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        message = str(err.value)
        assert str(tmp_path / name) in message and "not a checkpoint, it is a text file" in message, message
        assert "\n" not in message


def test_tuning_scores_every_setting_and_keeps_the_best(encoder):
    images = {"ai": smooth_images(4), "nature": noise_images(4, size=(64, 64))}
    chosen, sweep = tune_noise_sensitivity(encoder, images, sigmas=[0.05, 0.5], ks=[1, 2], layers=["pooler", 1],
                                           seed=3)
    assert [(r["sigma"], r["k"], r["layer"]) for r in sweep] == [
        (s, k, layer) for s in (0.05, 0.5) for k in (1, 2) for layer in ("pooler", 1)]
    assert all(0.0 <= r["auc"] <= 1.0 for r in sweep)
    best = max(sweep, key=lambda r: r["auc"])
    assert (chosen["sigma"], chosen["k"], chosen["layer"]) == (best["sigma"], best["k"], best["layer"])
    assert set(chosen) == {"sigma", "k", "layer", "threshold", "scale"} and chosen["scale"] > 0
    # the same numbers from pixel values and labels (ai = 0, nature = 1), and a k prefix is the smaller k itself
    pixels = torch.cat([encoder.preprocess(images["ai"]), encoder.preprocess(images["nature"])])
    again, rows = tune_noise_sensitivity(encoder, pixels, [0] * 4 + [1] * 4, sigmas=[0.05, 0.5], ks=[1, 2],
                                         layers=["pooler", 1], seed=3)
    assert again == chosen and rows == sweep
    d = noise_sensitivity(encoder, pixels, chosen["sigma"], chosen["k"], chosen["layer"], seed=3).double().numpy()
    assert math.isclose(chosen["scale"], float(np.std(d)), rel_tol=1e-5)
    with pytest.raises(ValueError, match="both classes"):
        tune_noise_sensitivity(encoder, {"ai": smooth_images(2)}, sigmas=[0.1], ks=[1])


def test_infer_takes_the_json_file(tmp_path, capsys):
    path = save_training_free(tmp_path / "rigid.json", **(SETTINGS | {"threshold": 0.0, "scale": 1.0}),
                              tuned_on="nothing", config={"profile": "smoke"})
    noise_images(1)[0].save(tmp_path / "x.png")
    code = infer.main(["--image_path", str(tmp_path / "x.png"), "--model_path", str(path), "--lang", "en"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "training-free noise sensitivity" in err and out.count("\n") == 2
    assert out.startswith("🔍 Prediction: AI-generated")  # d > 0 = threshold: p(ai) just above 0.5
