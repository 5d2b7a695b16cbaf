"""Seeded, offline builders shared by several test modules: small random detectors, checkpoints with a known
constant p(ai), and reference-layout folders of noise images. Nothing here downloads or trains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detectlib.config import CLASSES, get_profile
from detectlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from detectlib.models.checkpoints import save_checkpoint
from detectlib.models.classifier import TimmDetector, create_timm_model
from detectlib.models.clip_head import FrozenHeadDetector

SMOKE = get_profile("smoke")
CONVNEXT_SIZE = 64  # stage 2 on a 4 x 4 grid (at the smoke profile's 32 px it is 2 x 2)


def convnext_detector(seed: int = 0) -> TimmDetector:
    """The smoke profile's small random ConvNeXt, at 64 px."""
    torch.manual_seed(seed)
    model = create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs).eval()
    return TimmDetector(model, ImageTransform(CONVNEXT_SIZE))


def clip_detector(seed: int = 0) -> FrozenHeadDetector:
    """The tiny random CLIP ViT (frozen) behind a randomly initialised head."""
    from detectlib.models.clip_head import ClipHeadDetector
    from detectlib.models.encoders import make_encoder

    torch.manual_seed(seed)
    head = ClipHeadDetector(encoder=make_encoder("clip-tiny-random"), weights_path=None).eval()
    return FrozenHeadDetector(head, head.transform)


def constant_convnext(path: Path, p_ai: float) -> Path:
    """A smoke ConvNeXt checkpoint whose head ignores the image: every p(ai) is ``p_ai``."""
    torch.manual_seed(0)
    model = create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs)
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor([math.log(p_ai), math.log(1 - p_ai)]))
    return save_checkpoint(path, model.state_dict(), kind="convnext", arch=SMOKE.convnext_model,
                           model_kwargs=SMOKE.convnext_kwargs, classes=list(CLASSES), img_size=SMOKE.img_size,
                           mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


def constant_clip_head(path: Path, p_ai: float) -> Path:
    """A tiny random-CLIP head checkpoint whose score is ``1 - 2 p_ai`` for every image (zero weights, bias set)."""
    p_real = 1 - p_ai  # score = 2 sigmoid(bias) - 1 = 2 p_real - 1
    state = {"head.1.weight": torch.zeros(1, 64), "head.1.bias": torch.tensor([math.log(p_real / (1 - p_real))])}
    return save_checkpoint(path, state, kind="clip_head", arch="clip-tiny-random", encoder="clip-tiny-random",
                           classes=list(CLASSES), img_size=64, freeze=True, dropout=0.35)


def make_tree(root: Path, n_train: int = 6, n_val: int = 4, seed: int = 0, size: int | None = None) -> Path:
    """A reference-layout folder of noise images; ai ones lean red, nature ones green, so the task is learnable.
    ``size`` None: mixed sizes (40 or 48 by 48 px), which a reader must resize; else square ``size`` px images."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                shape = (40 + 8 * (i % 2), 48) if size is None else (size, size)
                pixels = rng.integers(0, 256, (*shape, 3))
                pixels[..., label] = pixels[..., label] // 4 + 190
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{i}.png")
    return root
