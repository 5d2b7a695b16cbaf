"""Images -> tensors: the reference's transforms (random crop and flip for training, resize for validation),
ImageNet normalisation, and the NPR-style high-pass residual a detector can be trained on instead of pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from .images import to_rgb
from .layout import SPLITS

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=16)
def _normalise_constants(mean: tuple[float, ...], std: tuple[float, ...]):
    """``(255 * mean, 1 / (255 * std))`` as (3, 1, 1) tensors, built once per normalisation."""
    import torch

    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return mean_t * 255.0, 1.0 / (std_t * 255.0)


INPUTS = ("rgb", "residual")  # what a classifier sees: the normalised image, or its high-pass residual


RESIDUAL_GAIN = 4.0  # the residual is small; scaled so its spread is closer to a normalised image's


def residual(tensor):
    """The image minus its ×2 nearest-neighbour down-and-up copy (NPR, Tan et al., CVPR 2024), times
    ``RESIDUAL_GAIN``: smooth content cancels and only pixel-level relations between neighbours survive, where
    upsampling layers leave their traces. Works on (C, H, W) and (N, C, H, W) float tensors; odd sides keep
    their last row or column's own value."""
    from torch.nn import functional as F

    batch = tensor.unsqueeze(0) if tensor.ndim == 3 else tensor
    height, width = batch.shape[-2:]
    coarse = F.interpolate(batch[..., ::2, ::2], scale_factor=2.0, mode="nearest")[..., :height, :width]
    out = RESIDUAL_GAIN * (batch - coarse)
    return out[0] if tensor.ndim == 3 else out


@dataclass(frozen=True)
class ImageTransform:
    """The reference's transforms (§2): train = resize, random horizontal flip, normalise; val = resize, normalise.

    Split in two so a small dataset can decode and resize each image once (``prepare``, deterministic) and
    only flip and normalise per epoch (``finish``). ``input="residual"`` feeds the model the high-pass residual
    of the normalised image instead (``residual``): the same for training and inference, and recorded in the
    checkpoint, so a detector always sees what it was trained on.
    """

    img_size: int
    train: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input: str = "rgb"

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"unknown input {self.input!r}; choose one of {', '.join(INPUTS)}")

    @property
    def decode_side(self) -> int:
        """What ``load_image`` needs to decode: ``prepare`` squashes to a square of ``img_size``."""
        return self.img_size

    def prepare(self, image: Image.Image):
        """PIL image -> uint8 tensor (3, size, size); any mode is made RGB as ``load_image`` does."""
        import torch
        from torchvision.transforms.v2 import functional as F

        # HWC pixels viewed as CHW: half the cost of torchvision's pil_to_tensor at 64 px (``make bench``).
        tensor = torch.from_numpy(np.array(to_rgb(image))).permute(2, 0, 1)
        if tensor.shape[-2:] != (self.img_size, self.img_size):
            tensor = F.resize(tensor, [self.img_size, self.img_size], antialias=True)
        return tensor

    def finish(self, tensor):
        """uint8 tensor -> normalised float tensor, flipped at random when training."""
        import torch
        from torchvision.transforms.v2 import functional as F

        if self.train and torch.rand(()) < 0.5:
            tensor = F.horizontal_flip(tensor)
        # (x / 255 - mean) / std as one subtraction and one multiplication with per-channel constants.
        offset, scale = _normalise_constants(self.mean, self.std)
        normalised = tensor.float().sub_(offset).mul_(scale)
        return residual(normalised) if self.input == "residual" else normalised

    def __call__(self, image: Image.Image):
        return self.finish(self.prepare(image))


def build_transforms(
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input: str = "rgb",
) -> dict[str, ImageTransform]:
    """``{"train": ..., "val": ...}`` transforms for one image size, normalisation and input."""
    return {
        split: ImageTransform(img_size, train=(split == "train"), mean=tuple(mean), std=tuple(std), input=input)
        for split in SPLITS
    }
