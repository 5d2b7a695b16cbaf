"""Exercises of lesson 06, Grad-CAM: the channel weights, the map, min-max normalisation, the hottest pixels, and
the prediction read against the lesson's own run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ..explain.cam import CamResult
from .core import (
    Lesson,
    Measured,
    Question,
    Wrong,
    _array,
    _code,
    _function,
    _needs,
    _prediction_question,
    _run,
    _torch_seeded,
)

if TYPE_CHECKING:
    import torch


# ============================================================================ lesson 06 · Grad-CAM


_CAM_SEEDS = (3, 13, 23)  # the pass questions 1 and 2 show, then two they never show


@lru_cache(maxsize=len(_CAM_SEEDS))
def _cam_pass(seed: int = _CAM_SEEDS[0]) -> CamResult:
    """One ``dl.explain.grad_cam`` pass on a tiny seeded CNN: the numbers lesson 06's questions start from."""
    import torch
    from torch import nn

    from ..explain.cam import grad_cam

    with _torch_seeded(seed):
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)).eval()
        inputs = torch.randn(1, 3, 16, 16)
    return grad_cam(net, net[2], inputs, lambda scores: scores[:, 0])


@dataclass(frozen=True)
class CamInputs:
    """What questions 1 and 2 start from: a layer's activations A and the gradients dY/dA, and nothing computed
    from them (the weights and the map are the questions)."""

    activations: torch.Tensor
    gradients: torch.Tensor


def _cam_data() -> CamInputs:
    steps = _cam_pass()
    return CamInputs(steps.activations.clone(), steps.gradients.clone())


def _on(seed: int) -> str:
    return "questions 1 and 2's A and G" if seed == _CAM_SEEDS[0] else f"another network's A and G (seed {seed})"


def _weights_feedback(got: np.ndarray, steps: CamResult, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not ``grad_cam``'s channel weights."""
    batch, channels, h, w = steps.gradients.shape
    expected = steps.weights.numpy()
    if got.size != channels * batch:
        if got.shape == (batch, h, w):
            raise Wrong(f"your weights have shape {got.shape}: one per grid cell. Grad-CAM needs one weight per "
                        f"channel, shape ({batch}, {channels}): average over the grid, dims 2 and 3, not dim 1.")
        raise Wrong(f"on {on} your weights have shape {got.shape}; expected one per channel, ({batch}, {channels}).")
    got = got.reshape(expected.shape)
    if np.allclose(got, expected, atol=1e-7):
        return
    if np.allclose(got, expected * h * w, rtol=1e-5):
        raise Wrong(f"your weights are {h * w} = h·w times too large: average over the grid, don't sum.")
    raise Wrong(f"on {on} your weights differ from the gradients averaged over the grid (dims 2 and 3).")


def _check_weights(channel_weights: Any) -> str:
    fn = _function(channel_weights, "channel_weights")
    for seed in _CAM_SEEDS:
        steps = _cam_pass(seed)
        got = _array(_run(fn, "channel_weights", _on(seed), steps.gradients.clone()), "channel_weights' output")
        _weights_feedback(got, steps, _on(seed))
    return "each α_c says how much more of channel c would raise the ai score."


def _cam_feedback(got: np.ndarray, steps: CamResult, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not ``grad_cam``'s raw map."""
    import torch

    expected = steps.raw.numpy()
    if got.size != expected.size:
        raise Wrong(f"on {on} your map has shape {got.shape}; expected one value per grid cell, "
                    f"{tuple(expected.shape)}: sum the weighted activations over the channels (dim 1).")
    got = got.reshape(expected.shape)
    if np.allclose(got, expected, atol=1e-6):
        return
    weighted = (steps.weights[:, :, None, None] * steps.activations).sum(dim=1).numpy()
    if got.min() < 0 and np.allclose(got, weighted, atol=1e-6):
        raise Wrong("your map has negative values: Grad-CAM keeps only evidence *for* the class, apply a ReLU.")
    if np.allclose(got, torch.relu(steps.activations.sum(dim=1)).numpy(), atol=1e-6):
        raise Wrong("you summed the channels unweighted: multiply each channel by its weight α_c first.")
    if np.allclose(got, torch.relu((steps.activations.mean(dim=(2, 3))[:, :, None, None] * steps.activations)
                                   .sum(dim=1)).numpy(), atol=1e-6):
        raise Wrong("you weighed the channels by the averaged activations A; the weights come from the gradients "
                    "G = dY/dA.")
    raise Wrong(f"on {on} your map differs from ReLU(Σ_c α_c A_c) with α_c = G averaged over the grid.")


def _check_cam(raw_cam: Any) -> str:
    fn = _function(raw_cam, "raw_cam")
    for seed in _CAM_SEEDS:
        steps = _cam_pass(seed)
        out = _run(fn, "raw_cam", _on(seed), steps.activations.clone(), steps.gradients.clone())
        _cam_feedback(_array(out, "raw_cam's output"), steps, _on(seed))
    zero = float((_cam_pass().raw == 0).float().mean())
    return (f"{zero:.0%} of the cells of question 2's map are 0: the ReLU dropped the evidence *against* ai. "
            "dl.explain then normalises this map and stretches it to the image.")


def _rand_map(seed: int, *shape: int) -> torch.Tensor:
    """Seeded uniform noise standing in for heatmaps."""
    import torch

    with _torch_seeded(seed):
        return torch.rand(*shape)


def _heatmaps() -> torch.Tensor:
    maps = _rand_map(6, 3, 4, 5)
    maps[1] *= 0.4  # a weaker map: normalised on its own, it still reaches 1
    maps[2] = 0.25  # a flat map
    return maps


def _check_minmax(minmax: Any) -> str:
    from ..explain.cam import normalise

    fn = _function(minmax, "minmax")
    maps = _heatmaps()
    got = _array(_run(fn, "minmax", "a (3, 4, 5) batch of maps, the last one flat", maps.clone()), "minmax's output")
    expected = normalise(maps).numpy()
    if got.shape != expected.shape:
        raise Wrong(f"for a (3, 4, 5) batch you return shape {got.shape}; keep the shape.")
    if np.isnan(got).any():
        raise Wrong("a flat map (all values equal) gives NaN: its max - min is 0. Make a flat map all zeros.")
    if np.allclose(got, expected, atol=1e-6):
        return "the same as dl.explain.normalise: each map uses the whole colour scale, so compare shapes, not heat."
    low, high = float(maps.min()), float(maps.max())
    if np.allclose(got[:2], ((maps[:2] - low) / (high - low)).numpy(), atol=1e-6):
        raise Wrong(f"you used the batch's min and max: the second map only reaches {got[1].max():.2f}. "
                    "Normalise each map on its own (amin/amax over dims 1 and 2).")
    raise Wrong("some values differ from (map - min) / (max - min), computed per map.")


def _check_hottest(hottest: Any) -> str:

    from ..explain.deletion import hottest_mask

    fn = _function(hottest, "hottest")
    for cam, k in ((_rand_map(8, 16, 16), 0.1), (_rand_map(9, 7, 9), 0.25)):
        on = f"a {cam.shape[0]} x {cam.shape[1]} heatmap with k = {k}"
        got = _array(_run(fn, "hottest", on, cam.clone(), k), "hottest's output")
        expected = hottest_mask(cam, k).numpy()
        if got.shape != expected.shape:
            raise Wrong(f"on {on} you return shape {got.shape}; return a mask with the heatmap's shape "
                        f"{tuple(cam.shape)}, True on the hottest pixels.")
        got = got != 0
        if np.array_equal(got, expected):
            continue
        count, want = int(got.sum()), int(expected.sum())
        if count != want:
            fix = ("round, don't truncate" if count == int(k * cam.numel())
                   else "pick them by rank (topk), not by a value threshold")
            raise Wrong(f"on {on} your mask has {count} pixels; the hottest {k:.0%} of {cam.numel()} is "
                        f"round({k} · {cam.numel()}) = {want}: {fix}.")
        raise Wrong(f"on {on} your mask has the right number of pixels but not the hottest ones.")
    return "these are the pixels the deletion check hides; it compares that drop with random regions of equal size."


def _measure_deletion() -> Measured:
    """Lesson 06: the deletion check of the ConvNeXt's heatmaps of the ai score on the lesson's 20 images, by the
    rule the lesson states (``explain.DeletionCheck``)."""
    from ..config import get_paths
    from ..data.images import load_image
    from ..explain.cam import sample_images
    from ..explain.deletion import deletion_checks
    from ..models.detector import load_detector

    paths = get_paths()
    detector = load_detector(_needs(paths.models / "best.pth", "02_train_convnext"))
    samples = sample_images(_needs(paths.raw, "01_build_dataset"), "val", per_class=10)
    files = samples["ai"] + samples["nature"]
    checks = deletion_checks(detector, [load_image(f) for f in files], [str(f) for f in files], k=0.1, fill="mean")
    return Measured(checks.verdict, checks.describe())


lesson06 = Lesson("06_gradcam_explorer", "Where does the detector look?", [
    Question(
        "q1", "Channel weights", ("channel_weights",), _check_weights,
        hints=("Grad-CAM gives each channel one number: how much, on average over the grid, the score would rise "
               "with more of that channel.",
               "G has shape (batch, channels, h, w): the grid is its last two dims. Tensor.mean takes a dim argument, "
               "and a tuple of dims reduces several at once (torch.mean's docs)."),
        setup=_code("""
            steps = ex.q1.data()  # a layer's activations A and the gradients dY/dA, from one pass of a tiny network
            A, G = steps.activations, steps.gradients  # (batch, channels, h, w)
            print("A", tuple(A.shape), "  G", tuple(G.shape))
        """),
        todo=_code('''
            def channel_weights(G):
                """One weight per channel, alpha_c, shape (batch, channels): the gradients G averaged over the grid."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def channel_weights(G):
                """One weight per channel, alpha_c, shape (batch, channels): the gradients G averaged over the grid."""
                return G.mean(dim=(2, 3))
        '''),
        data_fn=_cam_data,
        forbidden=("detectlib.explain.cam.*", "pytorch_grad_cam.*"),
    ),
    Question(
        "q2", "The raw heatmap", ("raw_cam",), _check_cam,
        hints=("Weigh every channel's map by its weight, add the channels up, and keep only the evidence *for* the "
               "class.",
               "Your channel_weights of question 1 gives α; indexing with None adds the dims that let α broadcast "
               "against A (PyTorch's broadcasting semantics); Tensor.sum takes a dim, and torch.relu zeroes the "
               "negative values."),
        setup=_code("""
            steps = ex.q2.data()  # the same pass as question 1
            A, G = steps.activations, steps.gradients
        """),
        todo=_code('''
            import torch

            def raw_cam(A, G):
                """ReLU of the channel-weighted sum of the activations A, shape (batch, h, w)."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import torch

            def raw_cam(A, G):
                """ReLU of the channel-weighted sum of the activations A, shape (batch, h, w)."""
                weights = G.mean(dim=(2, 3))
                return torch.relu((weights[:, :, None, None] * A).sum(dim=1))
        '''),
        data_fn=_cam_data,
        forbidden=("detectlib.explain.cam.*", "pytorch_grad_cam.*"),
    ),
    Question(
        "q3", "Normalise each map", ("minmax",), _check_minmax,
        hints=("Each map gets its own lowest value sent to 0 and its own highest to 1; a map with no contrast has "
               "nothing to stretch.",
               "Tensor.amin and Tensor.amax take dims and keepdim=True, so the result broadcasts against the batch. "
               "torch.where(condition, x, y) picks per element: use it to avoid dividing by a span of 0."),
        setup=_code("""
            maps = ex.q3.data()  # three 4 x 5 heatmaps; the second is weak, the third is flat
            print(maps.amin(dim=(1, 2)), maps.amax(dim=(1, 2)))
        """),
        todo=_code('''
            import torch

            def minmax(maps):
                """Each (H, W) map of a (B, H, W) batch scaled to [0, 1] on its own; a flat map becomes zeros."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import torch

            def minmax(maps):
                """Each (H, W) map of a (B, H, W) batch scaled to [0, 1] on its own; a flat map becomes zeros."""
                low = maps.amin(dim=(1, 2), keepdim=True)
                span = maps.amax(dim=(1, 2), keepdim=True) - low
                return (maps - low) / torch.where(span > 0, span, 1.0)
        '''),
        data_fn=_heatmaps,
        forbidden=("detectlib.explain.cam.*", "pytorch_grad_cam.*"),
    ),
    Question(
        "q4", "What the deletion check hides", ("hottest",), _check_hottest,
        hints=("Rank the pixels by heat and take the top share k of them: a count, so the rank decides, not a value.",
               "Python's round() and Tensor.numel() give the count; torch.topk on the flattened map "
               "(Tensor.reshape(-1)) gives the positions of the largest values; a boolean tensor from torch.zeros "
               "can be set at those positions and reshaped back."),
        setup=_code("""
            cam = ex.q4.data()  # a 6 x 6 heatmap
            print(cam.round(decimals=2))
        """),
        todo=_code('''
            import torch

            def hottest(cam, k):
                """Boolean (H, W) mask of the round(k * H * W) hottest pixels of a heatmap."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import torch

            def hottest(cam, k):
                """Boolean (H, W) mask of the round(k * H * W) hottest pixels of a heatmap."""
                count = round(k * cam.numel())
                mask = torch.zeros(cam.numel(), dtype=torch.bool)
                mask[cam.reshape(-1).topk(count).indices] = True
                return mask.reshape(cam.shape)
        '''),
        data_fn=lambda: _rand_map(1, 6, 6),
        forbidden=("detectlib.explain.deletion.*",),
    ),
    _prediction_question(
        "q5", "Predict, then read the deletion check",
        {"faithful": "hiding the hot region lowers p(ai) more than hiding random regions, in most images",
         "decoration": "it lowers p(ai) no more than hiding random regions",
         "unclear": "beyond chance in a minority of images, or too few images to tell"}, _measure_deletion,
        hints=("A heatmap always has a hottest region, whether or not the model relies on it. How good is this "
               "ConvNeXt at its task to begin with (lesson 02)?",
               "help(dl.explain.deletion_check) states the rule the check applies. Recall how well lesson 02's "
               "ConvNeXt did on validation: a detector near chance has little evidence to point at."),
        todo='prediction = ...  # TODO: "faithful", "decoration" or "unclear", written down before you run the check',
        solution_code=_code("""
            # A network near chance has little evidence to point at, so its maps tend to be decoration; a strong
            # detector's maps are more often faithful. The deletion check on this run decides.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
