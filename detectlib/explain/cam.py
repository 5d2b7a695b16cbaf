"""Grad-CAM written by hand: where in the image does a detector find its evidence?

Introduced in notebook 06. Grad-CAM needs two tensors from one layer of the network:

* the layer's activations ``A`` (channels x grid), caught by a *forward hook* as the image flows through;
* the gradients ``dY/dA`` of the target score ``Y`` (the ``ai`` logit) with respect to them, caught by a
  *backward hook* on ``A`` when ``Y`` is back-propagated.

Each channel's weight is its gradient averaged over the grid ("how much does more of this channel raise Y?"); the
heatmap is the ReLU of the channel-weighted sum of activations, min-max normalised, upsampled to the input
size and normalised again (as pytorch-grad-cam does, so the two agree). Works for any named layer of a timm
model (ConvNeXt, EfficientNet) and for the CLIP ViT, whose tokens (without CLS) are reshaped to the patch grid.
A frozen encoder gives no gradients by itself: the hooked activation is made to require grad.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..config import AI_INDEX, CLASSES, BadInputError

DEFAULT_CONVNEXT_LAYER = "stages.2.blocks.4.conv_dw"  # the reference's recommendation (§6)


CONVNEXT_MARKER = "stages.2.blocks.0.conv_dw"  # present in every timm ConvNeXt


VIT_MARKER = "encoder.layers.0.layer_norm1"  # present in every transformers CLIP vision model


class LayerError(ValueError, BadInputError):
    """A layer name the model does not have; the message lists the names it does have."""


# ---------------------------------------------------------------------------------------------- layers


def available_layers(model: nn.Module) -> list[str]:
    """Every named submodule, in forward order: what ``--target_layer`` accepts (listed in error messages)."""
    return [name for name, _ in model.named_modules() if name]


def suggested_layers(model: nn.Module) -> list[str]:
    """The layers worth comparing, shallow to deep: each ConvNeXt block's depthwise conv, each ViT layer's
    first LayerNorm, else timm's feature stages. Used by the layer dropdown and the layer-by-layer grid."""
    names = available_layers(model)
    if CONVNEXT_MARKER in names:
        return [n for n in names if n.startswith("stages.") and n.endswith(".conv_dw")]
    if VIT_MARKER in names:
        return [n for n in names if n.startswith("encoder.layers.") and n.endswith(".layer_norm1")]
    info = getattr(model, "feature_info", None)
    if info:
        return [stage["module"] for stage in info]
    raise LayerError(f"no default layers known for {type(model).__name__}; pick one of: {', '.join(names)}")


def default_layer(model: nn.Module) -> tuple[str, str | None]:
    """The layer to explain when none is named, and a note when it is not the reference's default.

    ConvNeXt: ``stages.2.blocks.4.conv_dw``, else (a smaller ConvNeXt) the last block of stage 2. CLIP ViT: the
    last layer's ``layer_norm1`` (the last layer's *output* gets no gradient on patch tokens: only CLS is read).
    Other timm models (EfficientNet): the deepest feature stage.
    """
    names = available_layers(model)
    if CONVNEXT_MARKER in names:
        if DEFAULT_CONVNEXT_LAYER in names:
            return DEFAULT_CONVNEXT_LAYER, None
        last = len(model.stages[2].blocks) - 1
        fallback = f"stages.2.blocks.{last}.conv_dw"
        return fallback, f"{DEFAULT_CONVNEXT_LAYER} is absent in this smaller ConvNeXt; using {fallback}"
    return suggested_layers(model)[-1], None


def resolve_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module, str | None]:
    """``(name, module, note)`` for a layer name (``None``: the default); an unknown name lists the valid ones."""
    note = None
    if name is None:
        name, note = default_layer(model)
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise LayerError(f"unknown layer {name!r}; available layers: {', '.join(available_layers(model))}")
    return name, modules[name], note


# -------------------------------------------------------------------------------------------- Grad-CAM


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens ``(B, 1 + h*w, D)`` -> ``(B, D, h, w)``: drop the CLS token, lay patches out row by row.
    A 4-D conv map passes through unchanged."""
    if tokens.ndim == 4:
        return tokens
    n = tokens.shape[1]
    side = math.isqrt(n - 1)
    if side * side == n - 1:
        tokens = tokens[:, 1:]
    else:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"cannot lay {n} tokens out on a square grid (with or without a CLS token)")
    return tokens.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max each map of a ``(B, H, W)`` batch to [0, 1]; a flat map becomes zeros.

    Scale-free on purpose: a random-init ConvNeXt (layer scale 1e-6) gives CAM values near 1e-8, which a fixed
    epsilon such as pytorch-grad-cam's 1e-7 would squash.
    """
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1.0), 0.0)


@dataclass
class CamResult:
    """What one Grad-CAM pass computed, kept so notebook 06 can show every step."""

    cam: torch.Tensor  # (B, H, W) in [0, 1] at the input size: the heatmap
    raw: torch.Tensor  # (B, h, w) ReLU of the weighted sum, before normalising
    activations: torch.Tensor  # A: (B, C, h, w)
    gradients: torch.Tensor  # dY/dA: (B, C, h, w)
    weights: torch.Tensor  # (B, C): gradients averaged over the grid
    outputs: torch.Tensor  # the model's raw output for the batch
    score: torch.Tensor  # (B,) the target Y that was back-propagated


def grad_cam(
    forward: Callable[[torch.Tensor], torch.Tensor],
    layer: nn.Module,
    inputs: torch.Tensor,
    target: Callable[[torch.Tensor], torch.Tensor],
) -> CamResult:
    """Grad-CAM of ``target(forward(inputs))`` (one score per image) at ``layer``, with two hooks.

    ``forward`` is the whole network (a model, or ``Detector.class_scores``); ``layer`` any module it runs, whose output
    is a conv map ``(B, C, h, w)`` or ViT tokens ``(B, 1 + h*w, D)``. Must not run under ``torch.inference_mode``:
    gradients are the point (``torch.no_grad`` around it is overridden).
    """
    caught: dict[str, torch.Tensor] = {}

    def keep_gradient(grad: torch.Tensor) -> None:  # backward hook on A
        caught["gradients"] = grad.detach()

    def keep_activation(module: nn.Module, args: tuple, output):  # forward hook on the layer
        act = output[0] if isinstance(output, tuple) else output  # older transformers layers return tuples
        if not act.requires_grad:  # frozen encoder: start the graph here so dY/dA exists
            act = act.detach().requires_grad_(True)
            output = (act, *output[1:]) if isinstance(output, tuple) else act
        act.register_hook(keep_gradient)
        caught["activations"] = act
        return output

    handle = layer.register_forward_hook(keep_activation)
    try:
        with torch.enable_grad():
            outputs = forward(inputs)
            score = target(outputs)
            score.sum().backward(inputs=[caught["activations"]])  # only dY/dA: parameters' .grad stay untouched
    finally:
        handle.remove()
    activations = tokens_to_grid(caught["activations"].detach())
    gradients = tokens_to_grid(caught["gradients"])
    weights = gradients.mean(dim=(2, 3))
    raw = torch.relu((weights[:, :, None, None] * activations).sum(dim=1))
    upsampled = nn.functional.interpolate(normalise(raw)[:, None], size=inputs.shape[-2:], mode="bilinear",
                                          align_corners=False)[:, 0]
    return CamResult(normalise(upsampled), raw, activations, gradients, weights, outputs.detach(), score.detach())


# ------------------------------------------------------------------------------------------ detectors


def class_index(target: str) -> int:
    """Column of ``target`` (``ai`` / ``nature``) in the class scores; anything else is a one-line error."""
    if target not in CLASSES:
        raise ValueError(f"unknown target class {target!r}; choose one of {', '.join(CLASSES)}")
    return CLASSES.index(target)


def probability(detector, target: str = "ai") -> Callable[[torch.Tensor], torch.Tensor]:
    """inputs -> p(target) on the scale of ``Detector.p_ai``, with gradients: what the deletion check watches."""
    index = class_index(target)

    def p_target(inputs: torch.Tensor) -> torch.Tensor:
        p_ai = detector.p_ai_from_scores(detector.class_scores(inputs))
        return p_ai if index == AI_INDEX else 1.0 - p_ai

    return p_target


@dataclass
class Explanation:
    """Heatmaps for a batch of images: the answer of ``explain``."""

    images: list[Image.Image]  # the originals
    inputs: torch.Tensor  # what the model saw, (B, C, H, W)
    cams: np.ndarray  # (B, H, W) in [0, 1] at the model's input size
    p_ai: np.ndarray  # (B,) the detector's p(ai)
    layer: str
    target: str
    views: list[Image.Image]  # the part of each original the model saw (``Detector.view``), at full resolution
    note: str | None = None  # e.g. the ConvNeXt layer fallback
    result: CamResult | None = field(default=None, repr=False)

    def overlays(self, alpha: float = 0.45) -> list[Image.Image]:
        """Each heatmap blended on the part of its original image the model saw."""
        return [overlay(view, cam, alpha) for view, cam in zip(self.views, self.cams, strict=True)]


def explain(detector, images: Image.Image | Sequence[Image.Image], layer: str | None = None,
            target: str = "ai") -> Explanation:
    """Grad-CAM of ``target`` for PIL images with a loaded detector (any kind); ``layer=None`` picks the default.

    The workhorse of notebook 06, the CLI and the probe widget.
    """
    images = [images] if isinstance(images, Image.Image) else list(images)
    name, module, note = resolve_layer(detector.cam_backbone, layer)
    inputs = torch.stack([detector.transform(im) for im in images]).to(detector.device)
    index = class_index(target)
    result = grad_cam(detector.class_scores, module, inputs, lambda scores: scores[:, index])
    p_ai = detector.p_ai_from_scores(result.outputs).cpu().numpy()
    return Explanation(images, inputs.cpu(), result.cam.cpu().numpy(), p_ai, name, target,
                       [detector.view(im) for im in images], note, result)


class _ScoresModule(nn.Module):
    """A detector as the module pytorch-grad-cam expects: returns the ``(B, 2)`` class scores tensor. The
    input is made to require grad so its hooks see gradients through a frozen encoder too."""

    def __init__(self, detector):
        super().__init__()
        self.backbone, self.detector = detector.cam_backbone, detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector.class_scores(x if x.requires_grad else x.detach().requires_grad_(True))


CAM_METHODS = ("GradCAM", "GradCAMPlusPlus", "HiResCAM", "XGradCAM", "LayerCAM", "EigenCAM")


def compare_cam_methods(detector, images: Sequence[Image.Image], layer: str | None = None, target: str = "ai",
                        methods: Sequence[str] = CAM_METHODS) -> dict[str, np.ndarray]:
    """``{method: (B, H, W) heatmaps}`` from pytorch-grad-cam's methods on the same layer and target, with this
    module's hand-written Grad-CAM first as ``"ours"`` (notebook 06's side-by-side). Needs the ``grad-cam`` package.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ours = explain(detector, images, layer, target)
    module = dict(detector.cam_backbone.named_modules())[ours.layer]
    wrapper = _ScoresModule(detector).eval()
    targets = [ClassifierOutputTarget(class_index(target))] * len(ours.images)
    maps = {"ours": ours.cams}
    for method in methods:
        with getattr(pytorch_grad_cam, method)(wrapper, [module], reshape_transform=tokens_to_grid) as cam:
            maps[method] = cam(ours.inputs.to(next(wrapper.parameters()).device), targets)
    return maps


# What each method computes: facts from the methods' papers and pytorch-grad-cam's code, no measured numbers.
CAM_METHOD_TRAITS: dict[str, str] = {
    "GradCAM": "uses the same rule as ours: gradients averaged over the grid weigh whole channels",
    "GradCAMPlusPlus": "weighs each position's positive gradients with terms that divide by the activations' sum",
    "HiResCAM": "multiplies gradients and activations position by position, without averaging",
    "XGradCAM": "weighs gradients by the activations divided by their sum",
    "LayerCAM": "keeps positive gradients times activations, position by position",
    "EigenCAM": "uses no gradient: the activations' first principal component, the same map for either class",
}


# Methods whose weights multiply or divide by the activations as if they were ReLU outputs (>= 0).
ASSUME_NONNEGATIVE = ("GradCAMPlusPlus", "XGradCAM", "LayerCAM")


def method_agreement(maps: dict[str, np.ndarray], reference: str = "ours") -> dict[str, dict[str, float]]:
    """``{method: {"pearson", "spearman", "negative"}}``: each method's heatmaps against ``reference``'s, as the
    mean over images of the Pearson correlation (do the values agree?), of the Spearman one (do the rankings of
    pixels agree? what a hottest-k region depends on), and the share of images where Pearson's r is below 0.
    Flat maps (no spread, no correlation) are skipped; a method with none left gets NaN."""
    from scipy.stats import rankdata

    def correlations(a: np.ndarray, b: np.ndarray, rank: bool) -> list[float]:
        pairs = [(x.ravel(), y.ravel()) for x, y in zip(a, b, strict=True) if x.std() and y.std()]
        if rank:
            pairs = [(rankdata(x), rankdata(y)) for x, y in pairs]
        return [float(np.corrcoef(x, y)[0, 1]) for x, y in pairs]

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    table = {}
    for name, cams in maps.items():
        if name == reference:
            continue
        pearson = correlations(maps[reference], cams, rank=False)
        table[name] = {"pearson": mean(pearson), "spearman": mean(correlations(maps[reference], cams, rank=True)),
                       "negative": mean([float(r < 0) for r in pearson])}
    return table


def agreement(maps: dict[str, np.ndarray], reference: str = "ours") -> dict[str, float]:
    """Mean Pearson correlation, over images, of each method's heatmaps with ``reference``'s (flat maps skipped):
    how far the CAM variants of ``compare_cam_methods`` agree (``method_agreement`` adds Spearman)."""
    return {name: row["pearson"] for name, row in method_agreement(maps, reference).items()}


def explain_disagreement(table: dict[str, dict[str, float]], activations: torch.Tensor | np.ndarray | None = None,
                         agree: float = 0.5) -> str:
    """Why the CAM methods' maps disagree with Grad-CAM, in words read from ``method_agreement``'s numbers.

    Each method is called agreeing (mean Pearson ``agree`` or more), partly agreeing, or anti-correlated (below 0:
    its hottest pixels tend to be Grad-CAM's coldest, so the two cannot both be right about where the evidence
    is), beside what it computes (``CAM_METHOD_TRAITS``). With the layer's ``activations`` (``Explanation.result
    .activations``) it also says how often they are negative: Grad-CAM++, XGrad-CAM and LayerCAM were designed
    for ReLU outputs, and a ConvNeXt's depthwise convolution has no ReLU after it, so their weights can flip sign.
    """
    lines = []
    for name, row in table.items():
        r, rho, negative = row["pearson"], row["spearman"], row["negative"]
        if math.isnan(r):
            lines.append(f"{name}: no correlation (flat maps)")
            continue
        word = "agrees" if r >= agree else ("anti-correlated" if r < 0 else "agrees only partly")
        traits = CAM_METHOD_TRAITS.get(name, "")
        lines.append(f"{name}: {word} (Pearson {r:+.2f}, Spearman {rho:+.2f}, negative on {negative:.0%} of the "
                     f"images){'; it ' + traits if traits else ''}")
    if activations is not None:
        share = float((torch.as_tensor(np.asarray(activations)) < 0).float().mean())
        flagged = [n for n in ASSUME_NONNEGATIVE if n in table and not math.isnan(table[n]["pearson"])
                   and table[n]["pearson"] < agree]
        lines.append(f"The layer's activations are negative at {share:.0%} of their values"
                     + (f": {', '.join(flagged)} treat activations as if they were >= 0, so there their weights can "
                        "change sign, one reason for the disagreement" if share > 0 and flagged else "."))
    eigen = table.get("EigenCAM", {}).get("pearson", math.nan)
    if eigen < agree:  # NaN compares False: nothing to explain
        lines.append("EigenCAM does not look at the class: it shows what the layer responds to most, not the evidence "
                     "for it" + ("; and a principal component's sign is arbitrary, so its map can be Grad-CAM's "
                                 "turned inside out." if eigen < 0 else "."))
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- overlays


def heatmap_rgb(cam: np.ndarray) -> np.ndarray:
    """A [0, 1] map as an RGB uint8 image through OpenCV's JET colour map (blue = cold, red = hot)."""
    import cv2

    jet = cv2.applyColorMap(np.uint8(np.clip(cam, 0.0, 1.0) * 255.0 + 0.5), cv2.COLORMAP_JET)
    return cv2.cvtColor(jet, cv2.COLOR_BGR2RGB)


def overlay(image: Image.Image | np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heatmap resized to the image (bilinear) and blended on it: ``alpha`` heatmap, ``1 - alpha`` image."""
    import cv2

    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    cam = cv2.resize(np.float32(cam), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    blended = cv2.addWeighted(heatmap_rgb(cam), alpha, rgb, 1.0 - alpha, 0.0)
    return Image.fromarray(blended)


# ------------------------------------------------------------------------------- models for the lesson


def sample_images(raw_root: Path | str, split: str = "val", per_class: int = 2) -> dict[str, list[Path]]:
    """``{"ai": [...], "nature": [...]}``: ``per_class`` images of each class, taken from each generator folder
    in turn, so a handful of examples covers several generators (notebook 06's fakes vs reals, the probe)."""
    from ..data.layout import discover_generators, list_class_images

    generators = discover_generators(raw_root)
    picked = {}
    for name in CLASSES:
        groups = [list_class_images(Path(raw_root) / gen / split / name) for gen in generators]
        interleaved = [path for row in itertools.zip_longest(*groups) for path in row if path is not None]
        picked[name] = interleaved[:per_class]
    return picked
