"""Images on disk -> tensors: safe loading, the reference's transforms, ImageFolder datasets.

Introduced in notebook 01 (layouts) and used by every later notebook. The reference layout is
``root/{train,val}/{ai,nature}``; GenImage-style trees put one such root per generator under ``data/raw/<GEN>``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .config import CLASSES

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val")


class ImageLoadError(ValueError):
    """A file that is not a readable image; the message names the file and the fix."""


class LayoutError(ValueError):
    """A dataset folder that does not follow ``root/{train,val}/{ai,nature}``."""


def is_image_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white, 16-bit data is rescaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("RGB") if im.mode != "RGB" else im


def load_image(path: Path | str) -> Image.Image:
    """Open any image as RGB with its EXIF orientation applied; a bad file raises ``ImageLoadError`` naming it."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            im = ImageOps.exif_transpose(im)
            im.load()
            return _to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{path}: refused, its header claims more pixels than PIL's safety limit ({err}); "
            "downscale it before using it"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageLoadError(
            f"{path}: not a readable image ({reason}); re-save it as PNG or JPEG, or remove it from the folder"
        ) from None


@dataclass(frozen=True)
class ImageTransform:
    """The reference's transforms (§2): train = resize, random horizontal flip, normalise; val = resize, normalise.

    Split in two so a small dataset can decode and resize each image once (``prepare``, deterministic) and
    only flip and normalise per epoch (``finish``).
    """

    img_size: int
    train: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def prepare(self, image: Image.Image):
        """PIL image -> uint8 tensor (3, size, size)."""
        import torch
        from torchvision.transforms.v2 import functional as F

        tensor = F.pil_to_tensor(image)
        if tensor.shape[-2:] != (self.img_size, self.img_size):
            tensor = F.resize(tensor, [self.img_size, self.img_size], antialias=True)
        return tensor.to(torch.uint8)

    def finish(self, tensor):
        """uint8 tensor -> normalised float tensor, flipped at random when training."""
        import torch
        from torchvision.transforms.v2 import functional as F

        if self.train and torch.rand(()) < 0.5:
            tensor = F.horizontal_flip(tensor)
        return F.normalize(tensor.float().div_(255.0), list(self.mean), list(self.std))

    def __call__(self, image: Image.Image):
        return self.finish(self.prepare(image))


def build_transforms(
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, ImageTransform]:
    """``{"train": ..., "val": ...}`` transforms for one image size and normalisation."""
    return {
        split: ImageTransform(img_size, train=(split == "train"), mean=tuple(mean), std=tuple(std))
        for split in SPLITS
    }


def list_class_images(class_root: Path) -> list[Path]:
    """Image files directly inside one class folder, sorted, so every run sees the same order."""
    if not class_root.is_dir():
        return []
    return sorted(p for p in class_root.iterdir() if p.is_file() and is_image_file(p))


def check_layout(data_dir: Path | str, splits: Sequence[str] = SPLITS) -> Path:
    """Raise a one-line ``LayoutError`` unless ``data_dir`` has ``<split>/ai`` and ``<split>/nature`` folders."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LayoutError(f"{root}: folder not found; expected {root}/{{train,val}}/{{ai,nature}}/ with images")
    for split in splits:
        missing = [c for c in CLASSES if not (root / split / c).is_dir()]
        if missing:
            raise LayoutError(
                f"{root}: missing {', '.join(f'{split}/{c}/' for c in missing)}; "
                f"expected {root}/{{train,val}}/{{ai,nature}}/ with images (the reference layout)"
            )
    return root


class ImageFolderDataset:
    """``root/{ai,nature}/*`` as (tensor, label) pairs with ``ai`` = 0, ``nature`` = 1, like torchvision's ImageFolder.

    With ``preload`` every image is decoded and resized once into memory (small datasets: the demo set is a few
    MB), so an epoch costs only the flip and the normalisation. Unreadable files are skipped with a warning
    naming them, or raise with ``strict=True``.
    """

    def __init__(self, root: Path | str, transform: ImageTransform, preload: bool = True, strict: bool = False):
        self.root = Path(root)
        self.transform = transform
        self.classes = list(CLASSES)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        missing = [c for c in CLASSES if not (self.root / c).is_dir()]
        if missing:
            raise LayoutError(f"{self.root}: missing class folder(s) {', '.join(missing)}; expected ai/ and nature/")
        extra = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name not in CLASSES)
        if extra:
            warnings.warn(f"{self.root}: ignoring unexpected class folder(s) {', '.join(extra)}", stacklevel=2)
        self.samples: list[tuple[Path, int]] = [
            (path, self.class_to_idx[c]) for c in CLASSES for path in list_class_images(self.root / c)
        ]
        self.skipped: list[tuple[Path, str]] = []
        self._cache = None
        if preload:
            self._preload(strict)

    def _preload(self, strict: bool) -> None:
        kept, cache = [], []
        for path, label in self.samples:
            try:
                cache.append(self.transform.prepare(load_image(path)))
            except ImageLoadError as err:
                if strict:
                    raise
                warnings.warn(f"skipped {err}", stacklevel=3)
                self.skipped.append((path, str(err)))
                continue
            kept.append((path, label))
        self.samples, self._cache = kept, cache

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        prepared = self._cache[index] if self._cache is not None else self.transform.prepare(load_image(path))
        return self.transform.finish(prepared), label


def image_datasets(
    data_dir: Path | str,
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    splits: Sequence[str] = SPLITS,
    preload: bool = True,
    strict: bool = False,
) -> dict[str, ImageFolderDataset]:
    """One dataset per split of a reference-layout folder; the layout is checked first."""
    root = check_layout(data_dir, splits)
    transforms = build_transforms(img_size, mean, std)
    return {
        split: ImageFolderDataset(root / split, transforms.get(split, transforms["val"]), preload, strict)
        for split in splits
    }


def discover_generators(raw_root: Path | str) -> list[str]:
    """Generator folders ``raw_root/<GEN>/{train,val}`` (GenImage style), skipping combined ``ALL*`` sets."""
    raw = Path(raw_root)
    if not raw.is_dir():
        return []
    return sorted(
        d.name
        for d in raw.iterdir()
        if d.is_dir() and not d.name.startswith("ALL") and any((d / s).is_dir() for s in SPLITS)
    )
