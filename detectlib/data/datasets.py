"""What training reads: an ImageFolder-style dataset of one split folder, preloaded when it fits in memory, that
skips unreadable files by the one rule of ``images`` and refuses a class left without a readable image."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..config import CLASSES
from .images import ImageLoadError, SkippedFileWarning, check_file, load_image, skip_bad_file, warn_skipped
from .layout import SPLITS, LayoutError, check_layout, extra_class_folders, list_class_images
from .transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, build_transforms


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
        skip_bad_file(err, path, self.skipped, self.strict, stacklevel=4)

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
            skip_bad_file(err, strict=strict, note=" (the next image is used in its place)", stacklevel=3)
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
