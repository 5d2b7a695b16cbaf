"""detectlib.explain: the hand-written Grad-CAM agrees with pytorch-grad-cam, reaches a frozen ViT, picks and
checks layers, and its deletion check tells a faithful heatmap from a random region.

The models are seeded and random: a custom-depth ConvNeXt (the smoke profile's, which lacks
``stages.2.blocks.4``) and the tiny random CLIP behind a frozen head. ``convnext_detector`` and ``clip_detector``
live in ``builders`` and are shared with the CLI and widget tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import clip_detector, convnext_detector
from PIL import Image
from torch import nn

from detectlib import explain
from detectlib.config import CLASSES
from detectlib.models.classifier import create_timm_model
from detectlib.models.detector import Detector


def noise_images(n: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def correlations(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(a, b, strict=True)]


@pytest.fixture(scope="module")
def convnext() -> Detector:
    return convnext_detector()


@pytest.fixture(scope="module")
def clip() -> Detector:
    return clip_detector()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return noise_images(3)


# ------------------------------------------------------------------------------ agreement with grad-cam


@pytest.mark.parametrize(("layer", "target"), [("stages.2.blocks.1.conv_dw", "ai"),
                                               ("stages.1.blocks.0.conv_dw", "nature"), ("stages.0", "ai")])
def test_convnext_heatmaps_match_pytorch_grad_cam(convnext, images, layer, target):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ours = explain.explain(convnext, images, layer=layer, target=target)
    module = convnext.model.get_submodule(layer)
    with GradCAM(convnext.model, [module]) as cam:
        theirs = cam(ours.inputs, [ClassifierOutputTarget(CLASSES.index(target))] * len(images))
    assert theirs.shape == ours.cams.shape
    assert min(correlations(ours.cams, theirs)) >= 0.99


class _ClipScores(nn.Module):
    """The CLIP head as pytorch-grad-cam needs it: a module returning a tensor. The input requires grad because
    the encoder is frozen (pytorch-grad-cam only hooks outputs that require grad)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.head.logit(x.detach().requires_grad_(True))
        return torch.stack([-logit, logit], dim=1)  # log-odds of ai, of nature


def _vit_grid(tokens: torch.Tensor) -> torch.Tensor:
    """Written independently of ``cam.tokens_to_grid``: 64 px / patch 8 = an 8 x 8 grid after the CLS token."""
    return tokens[:, 1:].reshape(tokens.shape[0], 8, 8, tokens.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("layer", "target"), [("encoder.layers.1.layer_norm1", "ai"),
                                               ("encoder.layers.0", "nature")])
def test_frozen_clip_vit_heatmaps_match_pytorch_grad_cam(clip, images, layer, target):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ours = explain.explain(clip, images, layer=layer, target=target)
    module = clip.model.encoder.model.get_submodule(layer)
    with GradCAM(_ClipScores(clip.model), [module], reshape_transform=_vit_grid) as cam:
        theirs = cam(ours.inputs, [ClassifierOutputTarget(CLASSES.index(target))] * len(images))
    assert min(correlations(ours.cams, theirs)) >= 0.99


def test_compare_cam_methods_puts_ours_first_and_agrees_with_gradcam(convnext, images):
    maps = explain.compare_cam_methods(convnext, images, methods=("GradCAM", "EigenCAM"))
    assert list(maps) == ["ours", "GradCAM", "EigenCAM"]
    assert all(m.shape == (3, 64, 64) for m in maps.values())
    assert min(correlations(maps["ours"], maps["GradCAM"])) >= 0.99


# ------------------------------------------------------------------------------------- shapes, layers


def test_explanation_heatmaps_are_normalised_maps_at_the_input_size(convnext, clip, images):
    for detector in (convnext, clip):
        result = explain.explain(detector, images)
        assert result.cams.shape == (3, 64, 64)
        assert np.isfinite(result.cams).all()
        assert np.allclose(result.cams.min(axis=(1, 2)), 0) and np.allclose(result.cams.max(axis=(1, 2)), 1)
        np.testing.assert_allclose(result.p_ai, detector.score_images(images), atol=1e-5)
        overlays = result.overlays()
        assert overlays[0].size == (40, 40) if detector.kind == "clip_head" else (48, 40)  # CLIP: centre square


def test_frozen_vit_still_gets_gradients_and_parameters_stay_untouched(images):
    clip = clip_detector()  # fresh: pytorch-grad-cam's backward() fills the shared fixture's head .grad
    assert not any(p.requires_grad for p in clip.model.encoder.parameters())
    result = explain.explain(clip, images[:1]).result
    assert result.activations.shape == (1, 64, 8, 8)  # 64 patch tokens on an 8 x 8 grid, CLS dropped
    assert result.gradients.abs().sum() > 0
    assert result.raw.max() > 0
    assert all(p.grad is None for p in clip.model.parameters())


class _TupleBlock(nn.Module):
    """Like a transformers-4 encoder layer (Colab): the output is a tuple."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.conv(x), None


def test_a_frozen_layer_returning_a_tuple_still_gets_gradients():
    torch.manual_seed(0)
    block, fc = _TupleBlock().requires_grad_(False), nn.Linear(4, 2).requires_grad_(False)
    forward = lambda x: fc(torch.relu(block(x)[0]).mean(dim=(2, 3)))  # noqa: E731
    result = explain.grad_cam(forward, block, torch.rand(2, 3, 8, 8), lambda scores: scores[:, 0])
    assert result.activations.shape == (2, 4, 8, 8) and result.gradients.abs().sum() > 0
    assert result.cam.shape == (2, 8, 8) and result.cam.amax(dim=(1, 2)).tolist() == [1.0, 1.0]


def test_convnext_tiny_random_cam_values_are_tiny_but_still_normalised(convnext, images):
    result = explain.explain(convnext, images[:1])
    assert result.result.raw.max() < 1e-5  # layer scale 1e-6 at init
    assert result.cams.max() == pytest.approx(1.0)


def test_tokens_are_laid_out_row_by_row_without_cls():
    tokens = torch.arange(1 + 6 * 6, dtype=torch.float32).reshape(1, 37, 1).expand(1, 37, 2)
    grid = explain.tokens_to_grid(tokens)
    assert grid.shape == (1, 2, 6, 6)
    assert grid[0, 0, 0, 0] == 1 and grid[0, 0, 0, 5] == 6 and grid[0, 0, 1, 0] == 7  # token 0 (CLS) dropped


def test_normalise_is_scale_free_and_flat_maps_become_zero():
    maps = torch.stack([torch.linspace(0, 1e-9, 16).reshape(4, 4), torch.full((4, 4), 3e-9)])
    out = explain.normalise(maps)
    assert out[0].min() == 0 and out[0].max() == pytest.approx(1.0)
    assert torch.count_nonzero(out[1]) == 0


def test_default_layer_falls_back_to_the_last_block_of_stage_2_and_says_so(convnext):
    name, note = explain.default_layer(convnext.model)
    assert name == "stages.2.blocks.1.conv_dw"
    assert "stages.2.blocks.4.conv_dw is absent" in note
    full = create_timm_model("convnext_atto")  # depths (2, 2, 6, 2): has the reference's layer
    assert explain.default_layer(full) == ("stages.2.blocks.4.conv_dw", None)


def test_default_layers_of_the_vit_and_of_efficientnet(clip):
    assert explain.default_layer(clip.model.encoder.model) == ("encoder.layers.1.layer_norm1", None)
    effnet = create_timm_model("tf_efficientnet_lite0")
    assert explain.default_layer(effnet) == ("blocks.6", None)


def test_unknown_layer_lists_the_available_names(convnext, images):
    with pytest.raises(explain.LayerError) as err:
        explain.explain(convnext, images, layer="stages.9.nope")
    message = str(err.value)
    assert "'stages.9.nope'" in message and "stages.2.blocks.1.conv_dw" in message and "head.fc" in message
    assert "\n" not in message


def test_overlay_uses_the_jet_colour_map(images):
    hot = np.asarray(explain.overlay(images[0], np.ones((8, 8)), alpha=1.0))
    cold = np.asarray(explain.overlay(images[0], np.zeros((8, 8)), alpha=1.0))
    assert hot.shape == (40, 48, 3)
    assert (hot[..., 0] > 100).all() and (hot[..., 2] < 10).all()  # JET at 1: dark red
    assert (cold[..., 2] > 100).all() and (cold[..., 0] < 10).all()  # JET at 0: dark blue


# ------------------------------------------------------------------------------------------ deletion


class CornerModel(nn.Module):
    """A planted signal: it only looks at the top-left quarter. Its ``gate`` zeroes every feature elsewhere, and
    its ai logit is the texture energy in that corner, so masking the corner with a flat fill erases it."""

    def __init__(self, size: int = 32):
        super().__init__()
        self.texture = nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate", bias=False)
        laplacian = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        with torch.no_grad():
            self.texture.weight.copy_(laplacian.expand(4, 3, 3, 3) * torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None,
                                                                                  None, None])
        mask = torch.zeros(1, 1, size, size)
        mask[..., : size // 4, : size // 4] = 1.0
        self.register_buffer("mask", mask)
        self.gate = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.gate(torch.relu(self.texture(x)) * self.mask)
        energy = features.mean(dim=(1, 2, 3)) * 64.0
        return torch.stack([energy - 2.0, torch.zeros_like(energy)], dim=1)  # (ai, nature) logits


def test_deletion_check_finds_the_planted_corner():
    torch.manual_seed(0)
    model = CornerModel().eval()
    inputs = torch.rand(1, 3, 32, 32)
    result = explain.grad_cam(model, model.gate, inputs, lambda scores: scores[:, 0])
    cam = result.cam[0]
    assert cam[:8, :8].max() == 1 and cam[8:].max() == 0 and cam[:, 8:].max() == 0  # only the corner is hot
    p_ai = lambda x: model(x).softmax(dim=1)[:, 0]  # noqa: E731
    for fill in ("mean", "blur"):
        check = explain.deletion_check(p_ai, inputs, cam, k=1 / 16, draws=6, fill=fill)
        assert check.p_original > 0.5  # the corner's texture reads as "ai"
        assert check.drop_hot > 0.3
        assert abs(check.drop_random) < 0.02
        assert check.drop_hot > check.drop_random + 0.3


def test_deletion_check_returns_the_documented_numbers(convnext, images):
    result = explain.explain(convnext, images[:1])
    probability = explain.probability(convnext, "ai")
    check = explain.deletion_check(probability, result.inputs, result.cams[0], k=0.2, draws=5, seed=3)
    assert len(check.random_drops) == 5
    assert check.p_original == pytest.approx(float(result.p_ai[0]), abs=1e-5)
    assert check.drop_hot == pytest.approx(check.p_original - check.p_hot)
    assert check.p_random == pytest.approx(check.p_original - np.mean(check.random_drops), abs=1e-6)
    assert check.as_dict()["drop_random"] == check.drop_random
    again = explain.deletion_check(probability, result.inputs, result.cams[0], k=0.2, draws=5, seed=3)
    assert again == check
    with pytest.raises(ValueError, match="unknown fill"):
        explain.deletion_check(probability, result.inputs, result.cams[0], fill="zeros")


def test_hottest_mask_takes_exactly_k_of_the_pixels():
    cam = torch.arange(100, dtype=torch.float32).reshape(10, 10)
    mask = explain.hottest_mask(cam, 0.1)
    assert mask.sum() == 10 and mask[9].all()


def test_sample_images_take_generators_in_turn(tmp_path):
    for gen in ("A", "B"):
        for name in CLASSES:
            folder = tmp_path / gen / "val" / name
            folder.mkdir(parents=True)
            for i in range(2):
                noise_images(1)[0].save(folder / f"{gen}{i}.png")
    picked = explain.sample_images(tmp_path, per_class=3)
    assert [p.name for p in picked["ai"]] == ["A0.png", "B0.png", "A1.png"]
    assert [p.parent.name for p in picked["nature"]] == ["nature"] * 3


def test_deletion_verdict_follows_the_measured_drops():
    def result(hot: float, random: float) -> explain.DeletionResult:
        return explain.DeletionResult(0.1, "mean", 0.9, 0.9 - hot, 0.9 - random, (random,))

    faithful = {f"img{i}": result(0.3, 0.05) for i in range(3)}
    assert explain.deletion_verdict(faithful).startswith("faithful")
    tiny = {f"img{i}": result(0.02, 0.01) for i in range(3)}  # beats random, but moves nothing
    assert explain.deletion_verdict(tiny).startswith("decoration")
    mixed = {"a": result(0.3, 0.05), "b": result(0.01, 0.2), "c": result(0.0, 0.1)}  # wins in 1 of 3 only
    verdict = explain.deletion_verdict(mixed)
    assert verdict.startswith("decoration") and "1 of 3 images" in verdict and "0.300" in verdict
