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


def test_method_agreement_reads_pearson_spearman_and_sign_from_the_maps():
    rng = np.random.default_rng(0)
    ours = rng.random((4, 8, 8))
    squashed = ours**3  # same ranking, other values: Spearman 1, Pearson below
    maps = {"ours": ours, "GradCAM": ours, "XGradCAM": squashed, "EigenCAM": 1 - ours,
            "LayerCAM": np.concatenate([ours[:1], 1 - ours[1:]]), "Flat": np.zeros_like(ours)}
    table = explain.cam.method_agreement(maps)
    assert list(table) == ["GradCAM", "XGradCAM", "EigenCAM", "LayerCAM", "Flat"]
    assert table["GradCAM"] == pytest.approx({"pearson": 1.0, "spearman": 1.0, "negative": 0.0})
    assert table["XGradCAM"]["spearman"] == pytest.approx(1.0) and table["XGradCAM"]["pearson"] < 0.99
    assert table["EigenCAM"] == pytest.approx({"pearson": -1.0, "spearman": -1.0, "negative": 1.0})
    assert table["LayerCAM"]["pearson"] == pytest.approx(-0.5) and table["LayerCAM"]["negative"] == 0.75
    assert np.isnan(table["Flat"]["pearson"])
    assert explain.agreement(maps) == pytest.approx({n: row["pearson"] for n, row in table.items()}, nan_ok=True)

    activations = torch.tensor([[-1.0, 2.0], [3.0, -4.0]])  # negative at half the values
    words = explain.cam.explain_disagreement(table, activations).splitlines()
    assert words[0].startswith("GradCAM: agrees (Pearson +1.00, Spearman +1.00, negative on 0% of the images)")
    assert words[2].startswith("EigenCAM: anti-correlated (Pearson -1.00") and "no gradient" in words[2]
    assert words[3].startswith("LayerCAM: anti-correlated (Pearson -0.50") and "negative on 75%" in words[3]
    assert words[4] == "Flat: no correlation (flat maps)"
    assert words[5].startswith("The layer's activations are negative at 50% of their values: LayerCAM treat")
    assert "sign is arbitrary" in words[6]
    quiet = explain.cam.explain_disagreement({"GradCAM": table["GradCAM"]}, torch.ones(2, 2)).splitlines()
    assert quiet[-1] == "The layer's activations are negative at 0% of their values."


def test_method_agreement_on_a_tiny_convnext(convnext, images):
    maps = explain.compare_cam_methods(convnext, images, methods=("GradCAM", "LayerCAM", "EigenCAM"))
    table = explain.cam.method_agreement(maps)
    assert set(table) == {"GradCAM", "LayerCAM", "EigenCAM"}
    assert table["GradCAM"]["pearson"] >= 0.99 and table["GradCAM"]["spearman"] >= 0.9
    assert all(-1 <= value <= 1 for row in table.values() for value in row.values())
    activations = explain.explain(convnext, images).result.activations
    words = explain.cam.explain_disagreement(table, activations)
    assert words.splitlines()[0].startswith("GradCAM: agrees") and "activations are negative at" in words


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


def corner_case(n: int = 20) -> tuple[CornerModel, torch.Tensor, torch.Tensor]:
    """The planted model, ``n`` random images and their Grad-CAM maps (hot in the top-left corner only)."""
    torch.manual_seed(0)
    model = CornerModel().eval()
    inputs = torch.rand(n, 3, 32, 32)
    return model, inputs, explain.grad_cam(model, model.gate, inputs, lambda scores: scores[:, 0]).cam


def corner_p_ai(model: CornerModel):
    return lambda x: model(x).softmax(dim=1)[:, 0]


def test_deletion_check_finds_the_planted_corner():
    model, inputs, cams = corner_case()
    assert cams[:, :8, :8].amax() == 1 and cams[:, 8:].max() == 0 and cams[:, :, 8:].max() == 0  # the corner only
    for fill in ("mean", "blur"):
        check = explain.deletion_check(corner_p_ai(model), inputs, cams, k=1 / 16, draws=4, fill=fill)
        assert len(check) == 20 and check.draws == 4 and check.target == "ai"
        assert all(r.p_original > 0.5 and r.drop_hot > 0.3 and abs(r.drop_random) < 0.02 for r in check.values())
        assert check.wins == 20 and check.p_value < 1e-10 and check.median_margin > 1.0
        assert check.verdict == "faithful" and explain.deletion_faithful(check)
        assert check.describe().startswith("faithful") and "in 20 of 20 images, chance 4.0" in check.describe()


def test_a_map_pointing_away_from_the_evidence_is_decoration():
    model, inputs, cams = corner_case()
    elsewhere = cams.flip(1, 2)  # hot in the bottom-right corner, which the model never reads
    check = explain.deletion_check(corner_p_ai(model), inputs, elsewhere, k=1 / 16, draws=4)
    assert check.wins == 0 and check.p_value == 1.0 and check.verdict == "decoration"
    assert explain.deletion_verdict(check).startswith("decoration")


def test_deletion_check_is_seeded_and_batching_does_not_change_it():
    model, inputs, cams = corner_case(7)
    names = [f"img{i}" for i in range(7)]
    check = explain.deletion_check(corner_p_ai(model), inputs, cams, names, k=0.2, draws=3, seed=3)
    assert list(check) == names and all(len(r.random_drops) == 3 for r in check.values())
    small = explain.deletion_check(corner_p_ai(model), inputs, cams, names, k=0.2, draws=3, seed=3, batch_size=5)
    for name in names:
        assert small[name].random_drops == pytest.approx(check[name].random_drops, abs=1e-6)
        assert small[name].p_hot == pytest.approx(check[name].p_hot, abs=1e-6)
    one = explain.deletion_check(corner_p_ai(model), inputs[0], cams[0], k=0.2, draws=3, seed=3)  # one image
    assert list(one) == ["0"] and one["0"].p_original == pytest.approx(check["img0"].p_original, abs=1e-6)
    with pytest.raises(ValueError, match="unknown fill"):
        explain.deletion_check(corner_p_ai(model), inputs, cams, fill="zeros")
    with pytest.raises(ValueError, match="7 images but 6 heatmaps"):
        explain.deletion_check(corner_p_ai(model), inputs, cams[:6])


def test_deletion_checks_use_the_maps_the_figure_shows(convnext):
    images = noise_images(6, seed=1)
    shown = explain.explain(convnext, images, target="ai")
    check = explain.deletion_checks(convnext, shown, [f"n{i}" for i in range(6)], k=0.2, draws=3)
    again = explain.deletion_checks(convnext, images, [f"n{i}" for i in range(6)], k=0.2, draws=3)  # explained here
    assert check.target == "ai" and check == again
    for name, p_ai in zip(check, shown.p_ai, strict=True):
        assert check[name].p_original == pytest.approx(float(p_ai), abs=1e-5)
        row = check[name].as_dict()
        assert row["drop_random"] == check[name].drop_random and row["wins"] == check[name].wins
    assert check.verdict in ("faithful", "decoration", "unclear") and check.describe().startswith(check.verdict)
    nature = explain.deletion_checks(convnext, images, k=0.2, draws=3, target="nature")
    assert nature.target == "nature" and nature["0"].p_original == pytest.approx(1 - check["n0"].p_original, abs=1e-5)
    with pytest.raises(ValueError, match="maps are of 'ai', not 'nature'"):
        explain.deletion_checks(convnext, shown, target="nature")


def check_of(margins: list[tuple[float, float]], draws: int = 4, **rule) -> explain.deletion.DeletionCheck:
    """A check from (hot drop, best random drop) pairs of p(ai), all from p = 0.5 (the other randoms drop 0)."""
    def result(hot: float, random: float) -> explain.DeletionResult:
        drops = (random, *[0.0] * (draws - 1))
        return explain.DeletionResult(0.1, "mean", 0.5, 0.5 - hot, 0.5 - float(np.mean(drops)), drops)

    return explain.deletion.DeletionCheck({f"img{i}": result(*m) for i, m in enumerate(margins)}, "ai", **rule)


def test_the_deletion_rule_needs_a_majority_beyond_chance_and_a_real_effect():
    faithful = check_of([(0.3, 0.05)] * 14 + [(0.0, 0.1)] * 6)  # 14 wins of 20, chance 4
    assert faithful.wins == 14 and faithful.p_value < 1e-4 and faithful.verdict == "faithful"
    line = faithful.describe()
    assert "in 14 of 20 images, chance 4.0" in line and f"margin {faithful.median_margin:.3f}" in line
    assert "60% of the images, p < 0.05 and a margin of 0.1" in line
    tiny = check_of([(0.011, 0.01)] * 20)  # beats every random region each time, by a hair
    assert tiny.wins == 20 and tiny.median_margin < 0.1 and tiny.verdict == "decoration"
    minority = check_of([(0.3, 0.05)] * 9 + [(0.25, 0.3)] * 11)  # 9 wins of 20: beyond chance, not most
    assert minority.p_value < 0.05 and minority.median_margin >= 0.1 and minority.verdict == "unclear"
    chance = check_of([(0.3, 0.05)] * 4 + [(0.25, 0.3)] * 16)  # what chance alone gives
    assert chance.p_value > 0.5 and chance.verdict == "decoration"
    few = check_of([(0.3, 0.05)] * 2 + [(0.25, 0.3)])  # 2 of 3: a majority, but 3 images cannot rule out chance
    assert few.p_value > 0.05 and few.verdict == "unclear"
    assert check_of([(0.3, 0.05)] * 14 + [(0.0, 0.1)] * 6, majority=0.8).verdict == "unclear"


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
