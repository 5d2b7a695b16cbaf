"""Images on disk -> tensors: safe loading, the reference's transforms, ImageFolder datasets.

Introduced in notebook 01 (layouts) and used by every later notebook. The reference layout is
``root/{train,val}/{ai,nature}``; GenImage-style trees put one such root per generator under ``data/raw/<GEN>``.

The bad-file policy, the same in every module and command line: a file that cannot be read as an image is
skipped with a warning naming it and the reason (``SkippedFileWarning``), and a summary follows
(``skipped N unreadable files: ...``); ``strict=True`` (``--strict``) raises on the first one instead.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

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


class SkippedFileWarning(UserWarning):
    """A file left out under the default policy (skip, warn, summarise); ``strict=True`` raises instead."""


def is_image_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def skip_summary(skipped: Sequence[tuple[Path, str]] | Sequence[Path], limit: int = 20) -> str:
    """``skipped N unreadable file(s): a.png, b.jpg, ...``: the last line of every run that skipped files."""
    names = [Path(item[0] if isinstance(item, tuple) else item).name for item in skipped]
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"skipped {len(names)} unreadable file{'s' if len(names) != 1 else ''}: {shown}"


def warn_skipped(skipped: Sequence[tuple[Path, str]], where: Path | str | None = None, stacklevel: int = 2) -> None:
    """The summary warning of the policy (nothing when nothing was skipped)."""
    if skipped:
        prefix = f"{where}: " if where is not None else ""
        warnings.warn(prefix + skip_summary(skipped), SkippedFileWarning, stacklevel=stacklevel + 1)


_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
_STAT_HINTS = {errno.ENOENT: "no such file, or a broken link; check the path",
               errno.ELOOP: "a symlink loop: following the link never reaches a file; fix the link or remove it",
               errno.EACCES: "permission denied; check its permissions or remove it from the folder"}


def check_file(path: Path | str) -> Path:
    """Raise ``ImageLoadError`` unless ``path`` is a non-empty regular file this process may read; never opens
    it, so a FIFO named ``x.png`` cannot block the caller. Symlink loops, broken links, directories and
    permissions are named as such. Every message reads ``<path>: not a readable image (<why>); <what to do>``."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        why = _STAT_HINTS.get(err.errno, f"{err.strerror or type(err).__name__}; fix it or remove it from the folder")
        raise ImageLoadError(f"{path}: not a readable image ({why.replace('; ', '); ', 1)}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise ImageLoadError(f"{path}: not a readable image (it is {kind}, not a file); remove it from the "
                             "image folder")
    if info.st_size == 0:
        raise ImageLoadError(f"{path}: not a readable image (an empty file, 0 bytes: a download cut short?); "
                             "download it again or remove it from the folder")
    if not os.access(path, os.R_OK):
        raise ImageLoadError(f"{path}: not a readable image (permission denied); check its permissions or "
                             "remove it from the folder")
    return path


def to_rgb(im: Image.Image) -> Image.Image:
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


_draft = {"enabled": True}  # switched off only by ``full_decode`` (the bench's before/after comparison)
DRAFT_FORMATS = ("JPEG", "MPO")  # MPO: the multi-picture JPEG of phone cameras, decoded by the same DCT


@contextmanager
def full_decode() -> Iterator[None]:
    """Within this block ``load_image`` decodes every file whole, whatever the target: the reference against which
    the reduced decode is measured (``bench.draft_wild_auc_shift``). Encoders' cache keys follow it
    (``decode_mode``), so the two decodes never share embedding-cache entries."""
    previous = _draft["enabled"]
    _draft["enabled"] = False
    try:
        yield
    finally:
        _draft["enabled"] = previous


def decode_mode(target: int | None) -> str:
    """How ``load_image`` decodes for a consumer needing ``target`` px: part of every encoder's cache key, since the
    reduced JPEG decode gives other pixels (the DCT's own downscaling) than the whole decode resized."""
    return f"jpeg-draft>={target}" if target and _draft["enabled"] else "full"


def decode_side_of(consumer: Any) -> int | None:
    """The short side (px) a transform or preprocessing needs from the decoder: its ``decode_side`` (a bound
    method's object's, e.g. ``ClipHeadDetector.transform``); None (decode whole) when it does not say."""
    return getattr(getattr(consumer, "__self__", consumer), "decode_side", None)


def load_image(path: Path | str, target: int | None = None) -> Image.Image:
    """Open any image as RGB with its EXIF orientation applied; a bad file raises ``ImageLoadError`` naming it.

    ``target``: the short side the consumer resizes to (``decode_side_of`` its transform). A JPEG at least twice
    as large is then decoded at 1/2, 1/4 or 1/8 scale in the DCT (``Image.draft``, 3-7x faster on photos), never
    below ``target``: PIL picks the largest reduction that keeps both sides at or above the size asked for, and
    the size asked for keeps the image's aspect with its short side at ``target``, so a later resize (square
    squash or shortest-edge-then-crop) still only shrinks. The short side is the same before and after the EXIF
    rotation. Other formats are decoded whole: PNG, WebP and the rest have no cheaper exact path."""
    path = check_file(path)
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            if target and _draft["enabled"] and im.format in DRAFT_FORMATS and min(im.size) >= 2 * target:
                scale = target / min(im.size)
                im.draft("RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))
            im = ImageOps.exif_transpose(im)
            im.load()
            return to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{path}: not a readable image (refused: its header claims more pixels than PIL's safety limit, "
            f"a possible decompression bomb: {err}); downscale it before using it"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # the OS refused (permissions, I/O), not the decoder
            raise ImageLoadError(f"{path}: not a readable image ({err.strerror}); check its permissions or "
                                 "remove it from the folder") from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        reason = reason.replace(f" {str(path)!r}", "").replace(str(path), "the file")
        raise ImageLoadError(
            f"{path}: not a readable image ({reason}); re-save it as PNG or JPEG, or remove it from the folder"
        ) from None


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


def list_class_images(class_root: Path) -> list[Path]:
    """Entries named like images directly inside one class folder, sorted, so every run sees the same order.

    Every such entry is listed, not only regular files: a directory, FIFO or broken link named ``x.png`` is
    then skipped by the reader with a warning naming it (the policy), instead of vanishing silently.
    """
    class_root = Path(class_root)
    if not class_root.is_dir():
        return []
    return sorted(p for p in class_root.iterdir() if is_image_file(p))


def extra_class_folders(split_root: Path | str) -> list[str]:
    """Folders beside ``ai/`` and ``nature/`` that a reader ignores (``fake/``, ``AI/``, ``maybe/`` ...)."""
    root = Path(split_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in CLASSES)


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
    naming them and a summary (listed in ``skipped``), or raise ``ImageLoadError`` with ``strict=True``; a class
    with no readable image warns, or raises ``LayoutError`` with ``strict=True``. Without ``preload`` a file
    that fails when read is replaced by the next readable one, with a warning (``strict``: it raises).
    """

    def __init__(self, root: Path | str, transform: ImageTransform, preload: bool = True, strict: bool = False):
        self.root = Path(root)
        self.transform = transform
        self.classes = list(CLASSES)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        missing = [c for c in CLASSES if not (self.root / c).is_dir()]
        if missing:
            raise LayoutError(f"{self.root}: missing class folder(s) {', '.join(missing)}; expected ai/ and nature/")
        extra = extra_class_folders(self.root)
        if extra:
            warnings.warn(f"{self.root}: ignoring unexpected class folder(s) {', '.join(extra)}", stacklevel=2)
        self.strict = strict
        self.samples: list[tuple[Path, int]] = [
            (path, self.class_to_idx[c]) for c in CLASSES for path in list_class_images(self.root / c)
        ]
        self.skipped: list[tuple[Path, str]] = []
        self._cache = None
        if preload:
            self._preload(strict)
        else:  # what can be told without decoding: directories, FIFOs, broken links, empty files
            self.samples = [(p, label) for p, label in self.samples if self._file_ok(p)]
            warn_skipped(self.skipped, self.root, stacklevel=2)
        empty = [c for c in CLASSES if self.class_to_idx[c] not in set(self.targets)]
        if empty:
            message = (f"{self.root}: no readable image of class {', '.join(empty)}; "
                       "a detector cannot learn or be measured on a class it never sees")
            if strict:
                raise LayoutError(message)
            warnings.warn(message, SkippedFileWarning, stacklevel=2)

    def _skip(self, path: Path, err: ImageLoadError) -> None:
        if self.strict:
            raise err
        warnings.warn(f"skipped {err}", SkippedFileWarning, stacklevel=4)
        self.skipped.append((path, str(err)))

    def _file_ok(self, path: Path) -> bool:
        try:
            check_file(path)
        except ImageLoadError as err:
            self._skip(path, err)
            return False
        return True

    def _preload(self, strict: bool) -> None:
        kept, cache = [], []
        for path, label in self.samples:
            try:
                cache.append(self.transform.prepare(load_image(path, self.transform.decode_side)))
            except ImageLoadError as err:
                self._skip(path, err)
                continue
            kept.append((path, label))
        self.samples, self._cache = kept, cache
        warn_skipped(self.skipped, self.root, stacklevel=3)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        if self._cache is not None:
            return self.transform.finish(self._cache[index]), self.samples[index][1]
        image, label = load_sample_or_next(self.samples, index, self.strict, where=str(self.root),
                                           target=self.transform.decode_side)
        return self.transform.finish(self.transform.prepare(image)), label


def load_sample_or_next(samples: Sequence[tuple[Path, int]], index: int, strict: bool = False,
                        where: str = "dataset", target: int | None = None) -> tuple[Image.Image, int]:
    """Sample ``index`` decoded (for a consumer of ``target`` px, see ``load_image``); when streaming, a file that
    fails now gives way to the next one (with a warning), so one bad file in an epoch never stops training.
    ``strict`` raises instead."""
    for step in range(len(samples)):
        path, label = samples[(index + step) % len(samples)]
        try:
            return load_image(path, target), label
        except ImageLoadError as err:
            if strict:
                raise
            warnings.warn(f"skipped {err} (the next image is used in its place)", SkippedFileWarning, stacklevel=3)
    raise ImageLoadError(f"{where}: none of its {len(samples)} images can be read")


def image_datasets(
    data_dir: Path | str,
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    splits: Sequence[str] = SPLITS,
    preload: bool = True,
    strict: bool = False,
    input: str = "rgb",
) -> dict[str, ImageFolderDataset]:
    """One dataset per split of a reference-layout folder; the layout is checked first."""
    root = check_layout(data_dir, splits)
    transforms = build_transforms(img_size, mean, std, input)
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


def read_json(path: Path) -> dict | None:
    """A build's JSON record, or None when it is missing or unreadable (the build is then not reused)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def swap_in_folder(staging: Path, final: Path) -> None:
    """Replace ``final`` by the finished ``staging`` folder with renames, so readers never see half a build
    (the dataset builders of ``synth`` and ``wild``)."""
    old = staging.with_name(staging.name + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)
