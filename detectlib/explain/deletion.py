"""The deletion check: is a heatmap evidence or decoration? Hide each image's hottest pixels and, for comparison,
regions of the same shape elsewhere; a faithful map's region lowers the explained score more (notebook 06).

One image proves nothing (a hot region can win by luck, and a margin of 0.01 is within what moving a region
changes anyway), so the check runs on many images and states a rule with a chance level:

* a **win** is an image where hiding the hot region lowers p(target) more than hiding *every one* of ``draws``
  random regions of the same size and shape. If the hot region were no better than any other (the null
  hypothesis), it would be one more random region and would come out on top with probability ``1 / (draws + 1)``;
  the random regions' own spread is the noise a win has to beat, with no margin to tune;
* the number of wins is compared with that chance level by a one-sided **binomial test** (``p_value``);
* the **margin** of an image is how much more the hot region lowers the score than the random regions do on
  average, in log-odds of p(target): the explained score, which a confident prediction cannot saturate (p(ai)
  0.02 -> 0.01 is as large a step as 0.50 -> 0.33). Its median over images must reach ``min_effect``, so a map
  that ranks pixels right but whose region barely moves the prediction (a random-weight network) is not called
  faithful.

Verdict (``DeletionCheck.verdict``): "faithful" when at least ``majority`` of the images are wins, the wins are
beyond chance (``p_value < alpha``) and the median margin reaches ``min_effect``; "decoration" when the wins are
within chance and not a majority, or the median margin is below ``min_effect``; "unclear" otherwise (beyond chance
in a minority of images only, or a majority of too few images to rule out chance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..config import seed_of
from .cam import Explanation, explain, probability

# --------------------------------------------------------------------------------------------- one image

_P_CLIP = 1e-6  # p(target) is clipped to [1e-6, 1 - 1e-6] before log-odds: float32 saturates beyond


def _log_odds(p: float | np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _P_CLIP, 1.0 - _P_CLIP)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class DeletionResult:
    """How much p(target) falls on one image when its hottest ``k`` of the pixels is masked, against random regions
    of the same shape. A faithful heatmap points at evidence the model uses: ``drop_hot`` should exceed every
    one of ``random_drops`` (``wins``)."""

    k: float  # fraction of pixels masked
    fill: str  # "mean" (the image's mean colour) or "blur" (a blurred copy)
    p_original: float
    p_hot: float  # p(target) with the hottest k masked
    p_random: float  # mean p(target) over the random regions
    random_drops: tuple[float, ...]  # one drop of p(target) per random region

    @property
    def drop_hot(self) -> float:
        return self.p_original - self.p_hot

    @property
    def drop_random(self) -> float:
        return self.p_original - self.p_random

    @property
    def wins(self) -> bool:
        """The hot region lowers p(target) more than every random region: by chance 1 in ``draws + 1``."""
        return self.drop_hot > max(self.random_drops)

    @property
    def margin(self) -> float:
        """How much more the hot region lowers the log-odds of p(target) than a random region does on average."""
        randoms = self.p_original - np.asarray(self.random_drops)
        return float(np.mean(_log_odds(randoms)) - _log_odds(self.p_hot))

    def as_dict(self) -> dict[str, float | str | bool]:
        return {"k": self.k, "fill": self.fill, "p_original": self.p_original, "p_hot": self.p_hot,
                "p_random": self.p_random, "drop_hot": self.drop_hot, "drop_random": self.drop_random,
                "margin": self.margin, "wins": self.wins}


# ------------------------------------------------------------------------------------------- many images


@dataclass(frozen=True)
class DeletionCheck(Mapping[str, DeletionResult]):
    """The deletion check over many images (the module docstring states the rule): a mapping ``{name:
    DeletionResult}`` in image order, so it tabulates and plots (``plots.plot_deletion_check``) as one, plus
    the counts, the test and the verdict."""

    results: Mapping[str, DeletionResult]
    target: str = "ai"  # the class whose heatmaps were checked
    majority: float = 0.6  # share of images that must be wins
    alpha: float = 0.05  # the binomial test's level
    min_effect: float = 0.1  # the median margin it needs, in log-odds of p(target)

    def __getitem__(self, name: str) -> DeletionResult:
        return self.results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def draws(self) -> int:
        return min(len(r.random_drops) for r in self.results.values())

    @property
    def wins(self) -> int:
        """Images where the hot region beats every random region."""
        return sum(r.wins for r in self.results.values())

    @property
    def chance(self) -> float:
        """Wins to expect if the hot regions were no better than random ones: ``n / (draws + 1)``."""
        return len(self) / (self.draws + 1)

    @property
    def p_value(self) -> float:
        """One-sided binomial test: the probability of this many wins or more if each image won by chance alone."""
        from scipy.stats import binomtest

        return float(binomtest(self.wins, len(self), 1.0 / (self.draws + 1), alternative="greater").pvalue)

    @property
    def median_margin(self) -> float:
        return float(np.median([r.margin for r in self.results.values()]))

    @property
    def verdict(self) -> str:
        """ "faithful", "decoration" or "unclear", by the rule of the module docstring."""
        majority = self.wins >= self.majority * len(self)
        beyond_chance = self.p_value < self.alpha
        if self.median_margin < self.min_effect or not (majority or beyond_chance):
            return "decoration"
        return "faithful" if majority and beyond_chance else "unclear"

    def describe(self) -> str:
        """One line: the verdict word, then the numbers it was read from and the rule, so a reader can disagree."""
        reading = {
            "faithful": "the hot regions hold evidence the model uses",
            "decoration": "hiding the hot regions changes the prediction no more than hiding others",
            "unclear": "the hot regions matter in some images, not in most",
        }[self.verdict]
        first = next(iter(self.results.values()))
        return (f"{self.verdict}: {reading} (hiding the hottest {first.k:.0%} of p({self.target})'s map beats all "
                f"{self.draws} random regions in {self.wins} of {len(self)} images, chance {self.chance:.1f}, "
                f"binomial p = {self.p_value:.2g}; median margin {self.median_margin:.3f} log-odds; the rule asks "
                f"for {self.majority:.0%} of the images, p < {self.alpha:g} and a margin of {self.min_effect:g})")


def hottest_mask(cam: torch.Tensor, k: float) -> torch.Tensor:
    """Boolean ``(H, W)`` mask of the ``round(k * H * W)`` hottest pixels of a heatmap."""
    flat = cam.reshape(-1)
    count = max(1, round(k * flat.numel()))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.topk(count).indices] = True
    return mask.reshape(cam.shape)


def deletion_masks(cam: torch.Tensor, k: float, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``(1 + draws, H, W)``: the hot mask, then ``draws`` random regions of its exact size and shape.

    A random region is the hot mask shifted (with wrap-around) by a random offset of a quarter to three quarters
    of the image each way, so it sits elsewhere; same shape, because a scattered mask and a blob hurt a model
    differently whatever they cover.
    """
    height, width = cam.shape
    hot = hottest_mask(cam, k)
    shifts = [
        (int(torch.randint(height // 4, max(height // 4 + 1, 3 * height // 4), (1,), generator=generator)),
         int(torch.randint(width // 4, max(width // 4 + 1, 3 * width // 4), (1,), generator=generator)))
        for _ in range(draws)
    ]
    return torch.stack([hot, *[hot.roll(s, dims=(0, 1)) for s in shifts]])


def _filler(images: torch.Tensor, fill: str) -> torch.Tensor:
    """What replaces hidden pixels: each image's mean colour, or a blurred copy (no new edges either way)."""
    from torchvision.transforms.v2 import functional as F

    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        side = max(3, (min(images.shape[-2:]) // 8) | 1)
        return F.gaussian_blur(images, [side, side])
    raise ValueError(f"unknown fill {fill!r}; choose 'mean' or 'blur'")


def deletion_check(
    probability: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    cams: np.ndarray | torch.Tensor,
    names: Sequence[str] | None = None,
    *,
    target: str = "ai",
    k: float = 0.1,
    draws: int = 4,
    fill: str = "mean",
    seed: int | None = None,
    batch_size: int = 64,
    majority: float = 0.6,
    alpha: float = 0.05,
    min_effect: float = 0.1,
) -> DeletionCheck:
    """The deletion check of given heatmaps, for any model: ``probability`` maps a batch to p(target)
    (``cam.probability``); ``inputs`` is ``(N, C, H, W)`` on the model's device, ``cams`` ``(N, H, W)`` (one image:
    ``(C, H, W)`` and ``(H, W)``). ``names`` default to ``"0"``, ``"1"``...

    Each image costs ``2 + draws`` forward passes (itself, hot region hidden, each random region hidden) and no
    backward; they run in batches of about ``batch_size``, without gradients. The random regions come from one
    generator seeded with ``seed``: the same call gives the same numbers.
    """
    seed = seed_of(seed)
    inputs = inputs if inputs.ndim == 4 else inputs[None]
    cams = torch.as_tensor(np.asarray(cams), dtype=torch.float32)
    cams = cams if cams.ndim == 3 else cams[None]
    if not len(inputs):
        raise ValueError("no images to check")
    if len(cams) != len(inputs):
        raise ValueError(f"{len(inputs)} images but {len(cams)} heatmaps; pass one heatmap per image")
    names = [str(i) for i in range(len(inputs))] if names is None else list(names)
    if len(names) != len(inputs):
        raise ValueError(f"{len(inputs)} images but {len(names)} names")
    generator = torch.Generator().manual_seed(seed)
    masks = torch.stack([deletion_masks(cam, k, draws, generator) for cam in cams]).to(inputs.device)
    per_chunk = max(1, batch_size // (2 + draws))  # images whose 2 + draws variants fill one batch
    p = []
    with torch.no_grad():
        for start in range(0, len(inputs), per_chunk):
            images, chunk_masks = inputs[start:start + per_chunk], masks[start:start + per_chunk]
            hidden = torch.where(chunk_masks[:, :, None], _filler(images, fill)[:, None], images[:, None])
            batch = torch.cat([images[:, None], hidden], dim=1).flatten(0, 1)  # per image: original, hot, randoms
            p.append(probability(batch).float().cpu().reshape(len(images), 2 + draws))
    p = torch.cat(p).double().numpy()
    results = {
        name: DeletionResult(k, fill, float(row[0]), float(row[1]), float(row[2:].mean()),
                             tuple(float(row[0] - q) for q in row[2:]))
        for name, row in zip(names, p, strict=True)
    }
    return DeletionCheck(results, target, majority, alpha, min_effect)


def deletion_checks(
    detector,
    images: Sequence[Image.Image] | Explanation,
    names: Sequence[str] | None = None,
    layer: str | None = None,
    k: float = 0.1,
    fill: str = "mean",
    draws: int = 4,
    *,
    target: str | None = None,
    seed: int | None = None,
    batch_size: int = 64,
    **rule: float,
) -> DeletionCheck:
    """The deletion check of a detector's Grad-CAM maps on many images (notebook 06; at least 20 make it a test).

    Pass the very ``Explanation`` a figure shows (``explain(detector, images, layer, target)``) and its maps are
    checked as they are; pass PIL images and they are explained here, at ``layer`` for ``target``. ``target``
    defaults to the explanation's, else "ai": p(ai) is what the detector reports, so a map of the ai score is
    what a reader looks at. ``rule`` sets ``majority``, ``alpha`` or ``min_effect`` (``deletion_check``).
    """
    seed = seed_of(seed)
    if isinstance(images, Explanation):
        if target is not None and target != images.target:
            raise ValueError(f"the explanation's maps are of {images.target!r}, not {target!r}; check the maps "
                             "the figure shows, or explain again with that target")
        heat = images
    else:
        heat = explain(detector, images, layer, target or "ai")
    return deletion_check(probability(detector, heat.target), heat.inputs.to(detector.device), heat.cams, names,
                          target=heat.target, k=k, draws=draws, fill=fill, seed=seed, batch_size=batch_size, **rule)


def deletion_faithful(check: DeletionCheck) -> bool:
    """Whether the deletion check calls the maps faithful (``DeletionCheck.verdict``)."""
    return check.verdict == "faithful"


def deletion_verdict(check: DeletionCheck) -> str:
    """The deletion check in one line, the word first and the numbers beside it (``DeletionCheck.describe``)."""
    return check.describe()

