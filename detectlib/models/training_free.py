"""A detector that needs no training data: noise sensitivity of a frozen encoder (RIGID, He et al. 2024,
arXiv 2405.20112).

Real photos carry sensor noise and texture, so a frozen encoder's embedding of a real photo barely moves when a
little Gaussian noise is added to its pixels; a generated image's moves more. The score is

    d(x) = mean over k draws of 1 − cos(f(x), f(x + σ·ε)),   ε ~ N(0, I) in the processor's normalised pixel units,

with ``f`` the CLS token of one layer of a frozen CLIP vision encoder; a higher d means more likely AI. Nothing is
trained: σ, k and the layer are chosen on validation images (``tune_noise_sensitivity``), and the threshold and
scale that turn d into p(ai) too. The detector's file is a small JSON (``save_training_free``) naming the encoder
by its spec; ``load_detector`` reads it like any checkpoint (``checkpoints.load_checkpoint`` accepts it).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..config import AI_INDEX, CLASSES, seed_of
from ..files import atomic_write
from .checkpoints import CHECKPOINT_FORMAT, CheckpointError
from .detector import Detector, register
from .encoders import ClipVisionEncoder, FrozenEncoder, make_encoder

POOLER = "pooler"  # the layer name of CLIP's pooled output (the last CLS token after the final layer norm)


MAX_BATCH = 64  # images per encoder forward (clean and noisy copies together): bounds the hidden states kept


def clip_encoder(encoder: str | FrozenEncoder) -> FrozenEncoder:
    """The CLIP encoder a spec names (built by ``make_encoder``), or the encoder given. A timm spec or encoder is
    refused in one line before anything loads: noise sensitivity reads a CLIP CLS token, which timm models lack."""
    spec = encoder if isinstance(encoder, str) else getattr(encoder, "spec", type(encoder).__name__)
    if spec.startswith("timm:") or not isinstance(encoder, str | ClipVisionEncoder):
        raise ValueError(f"encoder '{spec}': the training-free detector reads a CLIP encoder's CLS token, and timm "
                         "encoders have none; use a CLIP name (e.g. openai/clip-vit-base-patch16)")
    return make_encoder(encoder) if isinstance(encoder, str) else encoder


def check_layer(layer: Any) -> int | str:
    """``"pooler"`` or an int hidden-state index, as stored in the detector's file; anything else is refused."""
    if layer == POOLER or (isinstance(layer, int | np.integer) and not isinstance(layer, bool)):
        return layer if layer == POOLER else int(layer)
    raise ValueError(f"layer {layer!r}: give 'pooler' or an int hidden-state index (negative counts from the end)")


def noise_directions(k: int, shape: Sequence[int], seed: int) -> torch.Tensor:
    """The k noise draws ε (k, *shape), from a CPU ``torch.Generator`` seeded with ``seed``, one draw at a time, so
    the first j draws are the same whatever k is (tuning takes prefixes) and on any device."""
    generator = torch.Generator().manual_seed(int(seed))
    draws = [torch.randn(tuple(shape), generator=generator) for _ in range(int(k))]
    return torch.stack(draws) if draws else torch.zeros((0, *shape))


def draw_distances(encoder: FrozenEncoder, pixel_values: torch.Tensor, sigma: float, k: int,
                   layers: Sequence[int | str], seed: int = 0, max_batch: int = MAX_BATCH) -> list[torch.Tensor]:
    """``1 − cos(f(x), f(x + σ·ε_j))`` for each image and draw, one (N, k) tensor per layer of ``layers``, all
    layers from the same forward passes. Each forward takes as many images with their k noisy copies as fit in
    ``max_batch`` (at least one image), under ``torch.inference_mode``."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma {sigma!r}: the noise scale must be a finite number >= 0")
    if int(k) < 1:
        raise ValueError(f"k {k!r}: at least one noise draw is needed")
    encoder, layers = clip_encoder(encoder), [check_layer(layer) for layer in layers]
    device = next(encoder.parameters()).device
    pixel_values = pixel_values if pixel_values.ndim == 4 else pixel_values.unsqueeze(0)
    eps = noise_directions(k, pixel_values.shape[1:], seed).to(device)
    copies = int(k) + 1
    step = max(1, max_batch // copies)
    found: list[list[torch.Tensor]] = [[] for _ in layers]
    with torch.inference_mode():
        for start in range(0, len(pixel_values), step):
            clean = pixel_values[start:start + step].to(device, torch.float32)
            views = torch.cat([clean[:, None], clean[:, None] + sigma * eps[None]], dim=1).flatten(0, 1)
            for i, tokens in enumerate(encoder.cls_tokens_by_layer(views, layers)):
                # 1 − cos(a, b) = ½·|â − b̂|², in float64: no cancellation for tiny moves, exactly 0 for none
                unit = nn.functional.normalize(tokens.double().reshape(len(clean), copies, -1), dim=-1)
                found[i].append((0.5 * (unit[:, :1] - unit[:, 1:]).pow(2).sum(dim=-1)).float())
    return [torch.cat(parts) if parts else torch.zeros((0, int(k)), device=device) for parts in found]


def noise_sensitivity(encoder: FrozenEncoder, pixel_values: torch.Tensor, sigma: float, k: int,
                      layer: int | str = POOLER, seed: int = 0, max_batch: int = MAX_BATCH) -> torch.Tensor:
    """d(x) = mean over k draws of 1 − cos(f(x), f(x + σ·ε)) for preprocessed pixel values (N, 3, H, W) -> (N,),
    ``f`` the CLS token of ``layer`` (``"pooler"`` or a hidden-state index) of a CLIP encoder.

    The noise is a fixed pattern: ε (k, 3, H, W) comes from a generator seeded with ``seed``, and the SAME ε is
    added to every image of every batch. So a score repeats exactly, and does not depend on which other images
    share the batch. One forward of N·(k+1) images where ``max_batch`` allows, else a few."""
    return draw_distances(encoder, pixel_values, sigma, k, [layer], seed, max_batch)[0].mean(dim=1)


def _checked(sigma: float, k: int, layer: Any, threshold: float, scale: float) -> tuple:
    """The settings as stored, or a one-line ValueError: sigma >= 0, k >= 1, a layer, a finite threshold, scale > 0."""
    sigma, k, layer, threshold, scale = float(sigma), int(k), check_layer(layer), float(threshold), float(scale)
    if not (math.isfinite(sigma) and sigma >= 0) or k < 1:
        raise ValueError(f"sigma {sigma!r}, k {k!r}: need sigma >= 0 and k >= 1")
    if not math.isfinite(threshold) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"threshold {threshold!r}, scale {scale!r}: need a finite threshold and a scale > 0")
    return sigma, k, layer, threshold, scale


class NoiseSensitivity(nn.Module):
    """The training-free detector's model: a frozen CLIP encoder and its settings; ``forward`` gives d (N,) for
    preprocessed pixel values. ``threshold`` and ``scale`` turn d into p(ai) (``TrainingFreeDetector``)."""

    def __init__(self, encoder: FrozenEncoder, sigma: float, k: int, layer: int | str = POOLER, seed: int = 0,
                 threshold: float = 0.0, scale: float = 1.0):
        super().__init__()
        self.encoder = clip_encoder(encoder)
        self.encoder.requires_grad_(False)
        self.sigma, self.k, self.layer, self.threshold, self.scale = _checked(sigma, k, layer, threshold, scale)
        self.seed = int(seed)
        self.eval()

    def train(self, mode: bool = True) -> NoiseSensitivity:
        """Nothing here trains: the encoder stays in eval mode (no dropout) whatever ``mode`` says."""
        super().train(mode)
        self.encoder.eval()
        return self

    def transform(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> the pixel values ``forward`` accepts (3, H, W): the encoder's own preprocessing."""
        return self.encoder.preprocess([image])[0]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return noise_sensitivity(self.encoder, pixel_values, self.sigma, self.k, self.layer, self.seed)


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays, tensors and paths as JSON values."""
    if isinstance(value, np.generic | torch.Tensor) and getattr(value, "ndim", 0) == 0:
        return value.item()
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    return str(value)


def _settings(*, encoder: str | FrozenEncoder, sigma: float, k: int, layer: int | str, seed: int, threshold: float,
              scale: float, tuned_on: str = "", sweep: Sequence[Mapping] = (), config: Mapping[str, Any] | None = None,
              **extra: Any) -> dict[str, Any]:
    """The training-free detector's settings as its file stores them, checked (``training_free_checkpoint``)."""
    spec = encoder if isinstance(encoder, str) else encoder.spec
    if spec.startswith("timm:"):
        clip_encoder(spec)  # the one-line refusal, before anything loads
    sigma, k, layer, threshold, scale = _checked(sigma, k, layer, threshold, scale)
    if config is None:
        from ..config import get_profile

        config = {"profile": get_profile().name}
    return {"classes": list(CLASSES), "encoder": spec, "sigma": sigma, "k": k, "layer": layer,
            "seed": int(seed), "threshold": threshold, "scale": scale, "tuned_on": str(tuned_on),
            "sweep": [dict(row) for row in sweep], "config": dict(config), **extra}


def training_free_checkpoint(*, encoder: str | FrozenEncoder, sigma: float, k: int, layer: int | str, seed: int,
                             threshold: float, scale: float, tuned_on: str = "", sweep: Sequence[Mapping] = (),
                             config: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The dict a training-free detector's file holds (what ``load_checkpoint`` returns for it), checked: a CLIP
    encoder spec, sigma >= 0, k >= 1, a layer, a finite threshold and a scale > 0. The format line, then the kind's
    own description (``TrainingFreeDetector.checkpoint_meta``)."""
    return {"format": CHECKPOINT_FORMAT, **TrainingFreeDetector.checkpoint_meta(
        encoder=encoder, sigma=sigma, k=k, layer=layer, seed=seed, threshold=threshold, scale=scale,
        tuned_on=tuned_on, sweep=sweep, config=config, **extra)}


def save_training_free(path: Path | str, **settings: Any) -> Path:
    """Write a training-free detector's file: small, human-readable JSON with no weights (the encoder is named by
    its spec), atomically. ``settings``: ``encoder``, ``sigma``, ``k``, ``layer``, ``seed``, ``threshold``,
    ``scale``, and optionally ``tuned_on`` (which images, which groups), ``sweep`` (the tuning rows), ``config``
    (default: the current profile) and anything else JSON can hold. Returns ``path``."""
    text = json.dumps(training_free_checkpoint(**settings), indent=2, ensure_ascii=False, default=_json_value)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _centre_square(image: Image.Image) -> Image.Image:
    if image.width == image.height:
        return image
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


@register
class TrainingFreeDetector(Detector):
    """Noise sensitivity as a ``Detector``: ``model`` is a ``NoiseSensitivity`` giving d per image. With
    z = (d − threshold) / scale the class scores are ``[z, −z]`` (``CLASSES`` = (ai, nature)) and
    p(ai) = sigmoid(z): exactly 0.5 at the threshold, rising with d."""

    kind = "training_free"

    @classmethod
    def checkpoint_meta(cls, model: NoiseSensitivity | None = None, **settings: Any) -> dict[str, Any]:
        """What the detector's JSON file holds besides its format line (``training_free_checkpoint``): the encoder's
        spec, ``sigma``, ``k``, ``layer``, ``seed``, ``threshold``, ``scale``, what it was tuned on, the sweep and
        the config. ``model``, a ``NoiseSensitivity`` (e.g. a loaded detector's), gives the settings it holds;
        ``settings`` give the rest, or replace them. Nothing to recognise in a bare state dict: the file holds no
        weights (``recognise_state_dict`` says None), the encoder is named by its spec."""
        if model is not None:
            settings = {"encoder": model.encoder, "sigma": model.sigma, "k": model.k, "layer": model.layer,
                        "seed": model.seed, "threshold": model.threshold, "scale": model.scale} | settings
        return {"kind": cls.kind, **_settings(**settings)}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], encoder: FrozenEncoder | None = None) -> TrainingFreeDetector:
        """From the file's dict (``load_checkpoint``); ``encoder``: one already built for the file's spec."""
        if encoder is not None and encoder.spec != ckpt["encoder"]:
            raise CheckpointError(f"the file names encoder '{ckpt['encoder']}', but encoder '{encoder.spec}' was given")
        model = NoiseSensitivity(clip_encoder(encoder or ckpt["encoder"]), sigma=ckpt["sigma"], k=ckpt["k"],
                                 layer=ckpt["layer"], seed=ckpt.get("seed", 0), threshold=ckpt["threshold"],
                                 scale=ckpt["scale"])
        return cls(model, model.transform, tuple(ckpt.get("classes") or CLASSES), dict(ckpt))

    def scores_from_distance(self, d: torch.Tensor) -> torch.Tensor:
        """(N, 2) class scores in ``CLASSES`` order from distances d (N,): ``[z, −z]``, z = (d − threshold)/scale."""
        z = (d.float().reshape(-1) - self.model.threshold) / self.model.scale
        return torch.stack([z, -z] if AI_INDEX == 0 else [-z, z], dim=1)

    def class_scores(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scores_from_distance(self.model(batch))

    def p_ai_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores[:, AI_INDEX].float())

    @property
    def cam_backbone(self) -> nn.Module:
        return self.model.encoder.model

    @property
    def frozen_encoder(self) -> FrozenEncoder | None:
        return None  # no embedding cache: the score needs the pixels, to add noise to them

    def view(self, image: Image.Image) -> Image.Image:
        """The central square: CLIP's processor resizes the short side and centre-crops."""
        return _centre_square(image)

    def model_text(self) -> str:
        m = self.model
        tuned = self.meta.get("tuned_on") or "nothing recorded"
        profile = (self.meta.get("config") or {}).get("profile")
        return (f"training-free noise sensitivity of {m.encoder.description} (σ={m.sigma:g}, k={m.k}, layer "
                f"{m.layer}, tuned on {tuned}{f', in the {profile} profile' if profile else ''})")


def _pixels_and_labels(encoder: FrozenEncoder, images: Any, labels: Sequence[int] | None,
                       batch_size: int) -> tuple[list[torch.Tensor], np.ndarray]:
    """Tuning input as preprocessed batches and labels (ai = 0, nature = 1): ``{label: [PIL images]}`` (label a
    class name or index), or pixel values (one (N, 3, H, W) tensor or a list of batches) with ``labels``."""
    if isinstance(images, Mapping):
        if labels is not None:
            raise ValueError("give images by label ({'ai': [...], 'nature': [...]}) or pixel values with labels, "
                             "not both")
        batches, found = [], []
        for label, ims in images.items():
            index = CLASSES.index(label) if isinstance(label, str) else int(label)
            ims = list(ims)
            for start in range(0, len(ims), batch_size):
                batches.append(encoder.preprocess(ims[start:start + batch_size]))
            found += [index] * len(ims)
        return batches, np.asarray(found, dtype=int)
    if labels is None:
        raise ValueError("pixel values need labels (ai = 0, nature = 1), one per image")
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    batches = [b if b.ndim == 4 else b.unsqueeze(0) for b in batches]
    labels = np.asarray(list(labels), dtype=int)
    if sum(len(b) for b in batches) != len(labels):
        raise ValueError(f"{sum(len(b) for b in batches)} images but {len(labels)} labels")
    return [b[start:start + batch_size] for b in batches for start in range(0, len(b), batch_size)], labels


def youden_threshold(d: np.ndarray, is_ai: np.ndarray) -> float:
    """The d at which tpr − fpr is largest (ai positive, ``d >= threshold`` called ai); the median of d when no
    cut beats chance."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(is_ai, d)
    best = int(np.argmax(tpr - fpr))
    return float(thresholds[best]) if np.isfinite(thresholds[best]) else float(np.median(d))


def tune_noise_sensitivity(encoder: str | FrozenEncoder, images: Any, labels: Sequence[int] | None = None, *,
                           sigmas: Sequence[float], ks: Sequence[int], layers: Sequence[int | str] = (POOLER,),
                           seed: int | None = None, batch_size: int = 32, max_batch: int = MAX_BATCH,
                           keep_scores: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose σ, k and the layer on labelled (validation) images, by ROC-AUC with ai as the positive class.

    ``images``: ``{label: [PIL images]}`` (``"ai"``/``"nature"`` or 0/1), or preprocessed pixel values (a tensor
    (N, 3, H, W) or a list of batches) with ``labels`` (ai = 0, nature = 1). Every setting of
    ``sigmas × ks × layers`` is scored, at the cost of one pass per σ: all layers come from the same forwards and
    each k is a prefix of the largest k's draws. Returns ``(chosen, sweep)``: ``chosen`` the best AUC's ``sigma``,
    ``k``, ``layer``, with ``threshold`` (the Youden point of its d on these images) and ``scale`` (the std of its
    d; 1 when all d are equal), ready for ``save_training_free(path, encoder=..., seed=..., **chosen)``;
    ``sweep`` one row ``{sigma, k, layer, auc}`` per setting, in the order swept (σ, then k, then layer), with
    ``scores`` (each image's d, in input order) when ``keep_scores``: what compares two settings image by image.
    The first best setting wins a tie."""
    seed = seed_of(seed)
    from sklearn.metrics import roc_auc_score

    encoder = clip_encoder(encoder)
    sigmas, ks = [float(s) for s in sigmas], [int(k) for k in ks]
    layers = [check_layer(layer) for layer in layers]
    if not (sigmas and ks and layers):
        raise ValueError("give at least one sigma, one k and one layer to sweep")
    batches, labels = _pixels_and_labels(encoder, images, labels, batch_size)
    is_ai = (labels == AI_INDEX).astype(int)
    if is_ai.min(initial=1) == is_ai.max(initial=0):
        raise ValueError(f"tuning needs images of both classes; got {len(labels)} images, {int(is_ai.sum())} ai")
    distances: dict[tuple, np.ndarray] = {}
    for sigma in sigmas:
        per_layer = [draw_distances(encoder, batch, sigma, max(ks), layers, seed, max_batch) for batch in batches]
        for i, layer in enumerate(layers):
            draws = torch.cat([found[i] for found in per_layer]).cpu().double().numpy()
            for k in ks:
                distances[sigma, k, layer] = draws[:, :k].mean(axis=1)
    sweep = [{"sigma": sigma, "k": k, "layer": layer, "auc": float(roc_auc_score(is_ai, distances[sigma, k, layer]))}
             | ({"scores": distances[sigma, k, layer]} if keep_scores else {})
             for sigma, k, layer in itertools.product(sigmas, ks, layers)]
    best = sweep[max(range(len(sweep)), key=lambda i: sweep[i]["auc"])]
    d = distances[best["sigma"], best["k"], best["layer"]]
    scale = float(np.std(d))
    chosen = {"sigma": best["sigma"], "k": best["k"], "layer": best["layer"], "threshold": youden_threshold(d, is_ai),
              "scale": scale if math.isfinite(scale) and scale > 0 else 1.0}
    return chosen, sweep
