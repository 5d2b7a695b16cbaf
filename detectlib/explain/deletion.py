"""The deletion check: is a heatmap evidence or decoration? Hide the hottest pixels and, for comparison, regions of
the same shape elsewhere; a faithful map's region lowers the prediction more (notebook 05)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .cam import explain, probability

# ---------------------------------------------------------------------------------------- faithfulness


@dataclass(frozen=True)
class DeletionResult:
    """How much p(target) falls when the hottest ``k`` of the pixels is masked, against random regions.

    A faithful heatmap points at evidence the model uses: ``drop_hot`` should exceed ``drop_random``.
    """

    k: float  # fraction of pixels masked
    fill: str  # "mean" (the image's mean colour) or "blur" (a blurred copy)
    p_original: float
    p_hot: float  # p(target) with the hottest k masked
    p_random: float  # mean p(target) over the random regions
    random_drops: tuple[float, ...]  # one drop per random region

    @property
    def drop_hot(self) -> float:
        return self.p_original - self.p_hot

    @property
    def drop_random(self) -> float:
        return self.p_original - self.p_random

    def as_dict(self) -> dict[str, float | str]:
        return {"k": self.k, "fill": self.fill, "p_original": self.p_original, "p_hot": self.p_hot,
                "p_random": self.p_random, "drop_hot": self.drop_hot, "drop_random": self.drop_random}


def hottest_mask(cam: torch.Tensor, k: float) -> torch.Tensor:
    """Boolean ``(H, W)`` mask of the ``round(k * H * W)`` hottest pixels of a heatmap."""
    flat = cam.reshape(-1)
    count = max(1, round(k * flat.numel()))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.topk(count).indices] = True
    return mask.reshape(cam.shape)


def deletion_check(
    probability: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    cam: np.ndarray | torch.Tensor,
    k: float = 0.1,
    draws: int = 8,
    fill: str = "mean",
    seed: int = 0,
) -> DeletionResult:
    """Mask the hottest ``k`` of one image's pixels, and ``draws`` random regions of the same shape and size.

    A random region is the hot mask shifted (with wrap-around) by a random offset of a quarter to three quarters
    of the image each way, so it has the same size and shape but sits elsewhere. ``probability`` maps a batch to
    p(target) (``cam.probability``); ``inputs`` is ``(1, C, H, W)`` or ``(C, H, W)``; ``cam`` is ``(H, W)``.
    """
    from torchvision.transforms.v2 import functional as F

    image = (inputs if inputs.ndim == 4 else inputs[None])[:1]
    height, width = image.shape[-2:]
    cam = torch.as_tensor(np.asarray(cam), dtype=torch.float32)
    hot = hottest_mask(cam, k).to(image.device)
    rng = torch.Generator().manual_seed(seed)
    shifts = [
        (int(torch.randint(height // 4, max(height // 4 + 1, 3 * height // 4), (1,), generator=rng)),
         int(torch.randint(width // 4, max(width // 4 + 1, 3 * width // 4), (1,), generator=rng)))
        for _ in range(draws)
    ]
    masks = torch.stack([torch.zeros_like(hot), hot, *[hot.roll(s, dims=(0, 1)) for s in shifts]])
    if fill == "mean":
        filler = image.mean(dim=(2, 3), keepdim=True).expand_as(image)
    elif fill == "blur":
        side = max(3, (min(height, width) // 8) | 1)
        filler = F.gaussian_blur(image, [side, side])
    else:
        raise ValueError(f"unknown fill {fill!r}; choose 'mean' or 'blur'")
    batch = torch.where(masks[:, None], filler, image)
    with torch.no_grad():
        p = probability(batch).float().cpu()
    drops = tuple(float(p[0] - q) for q in p[2:])
    return DeletionResult(k, fill, float(p[0]), float(p[1]), float(p[2:].mean()), drops)


def deletion_checks(detector, images: Sequence[Image.Image], names: Sequence[str], layer: str | None = None,
                    k: float = 0.1, fill: str = "mean", draws: int = 8) -> dict[str, DeletionResult]:
    """``{name: DeletionResult}``: each image's heatmap for the class the detector predicts, checked by deletion
    (notebook 05). Explaining the predicted class means a faithful map's region should lower the confidence."""
    from ..labels import predicted_class

    results = {}
    for name, image in zip(names, images, strict=True):
        heat = explain(detector, image, layer, "ai")
        target = predicted_class(float(heat.p_ai[0]))
        if target != heat.target:
            heat = explain(detector, image, layer, target)
        results[name] = deletion_check(probability(detector, target), heat.inputs.to(detector.device),
                                       heat.cams[0], k, draws, fill)
    return results


def deletion_faithful(results: Mapping[str, DeletionResult], min_drop: float = 0.05) -> bool:
    """The deletion check's rule: hiding the hot region lowers the prediction by at least ``min_drop`` somewhere,
    and more than hiding random regions in at least two images out of three."""
    beats = sum(r.drop_hot > r.drop_random for r in results.values())
    largest = max((r.drop_hot for r in results.values()), default=float("nan"))
    return beats * 3 >= 2 * len(results) and largest >= min_drop


def deletion_verdict(results: Mapping[str, DeletionResult], min_drop: float = 0.05) -> str:
    """The deletion check in words (``deletion_faithful``): "faithful" or "decoration". The counts and the largest
    drop are printed beside the word, so a reader can disagree with the rule."""
    n = len(results)
    beats = sum(r.drop_hot > r.drop_random for r in results.values())
    largest = max((r.drop_hot for r in results.values()), default=float("nan"))
    word = ("faithful: the hot regions hold evidence the model uses" if deletion_faithful(results, min_drop) else
            "decoration, not explanation: hiding the hot regions changes the prediction no more than hiding others")
    return (f"{word} (the hot region beats a random one in {beats} of {n} images; the largest drop of the "
            f"predicted class's probability is {largest:.3f}, the rule asks for {min_drop:.2f})")
