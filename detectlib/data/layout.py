"""The reference's folder layout, and the one way the kit lists it.

A dataset is ``root/{train,val}/{ai,nature}/`` (one generator, or several side by side under ``raw/``). Listing goes
in layers, all here: ``list_class_images`` (one class folder), ``class_samples`` (a split folder, ``ai`` = 0),
``split_samples`` (each split of one or more dataset folders), ``dataset_samples`` (a split folder or a whole
tree, flat). Every reader of labelled images (training, scoring, embedding) starts from one of these.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import CLASSES, BadInputError, Profile, get_paths
from .images import is_image_file

SPLITS = ("train", "val")

DataDirs = Path | str | Sequence[Path | str]  # one reference-layout folder, or several pooled
Sample = tuple[Path, int]  # an image file and its class index


class LayoutError(ValueError, BadInputError):
    """A dataset folder that does not follow ``root/{train,val}/{ai,nature}``."""


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


def class_samples(folder: Path | str, limit: int | None = None, seed: int | None = None) -> list[Sample]:
    """(path, class index) of the images of ``folder/ai`` and ``folder/nature``: the first ``limit`` of each,
    sorted, or with ``seed`` a seeded random sample of that many (in a merged folder such as ``ALL_full``, whose
    names start with the generator, the first N sorted would all be one generator). One class may be absent (a
    control set of real photos only), not both; other folders beside them are ignored with a warning."""
    folder = Path(folder)
    if not any((folder / c).is_dir() for c in CLASSES):
        raise LayoutError(f"{folder}: no ai/ or nature/ folder in it; expected {folder}/{{ai,nature}}/ with images")
    extra = extra_class_folders(folder)
    if extra:
        warnings.warn(f"{folder}: ignoring unexpected folder(s) {', '.join(extra)}; only ai/ and nature/ are read",
                      stacklevel=3)
    rng = np.random.default_rng(seed) if seed is not None else None
    samples = []
    for index, name in enumerate(CLASSES):
        found = list_class_images(folder / name)
        if rng is not None and limit is not None and len(found) > limit:
            found = [found[i] for i in sorted(rng.choice(len(found), limit, replace=False))]
        samples += [(path, index) for path in found[:limit]]
    return samples


def dataset_dirs(data_dir: DataDirs) -> list[Path]:
    """``DataDirs`` as a list of folders."""
    return [Path(data_dir)] if isinstance(data_dir, str | Path) else [Path(d) for d in data_dir]


def split_samples(data_dir: DataDirs, limit: int | None = None) -> dict[str, list[Sample]]:
    """``class_samples`` per split of a reference-layout folder, or of several pooled (e.g. every generator
    folder: the images ``create_full_all`` would copy into one, without copying); ``limit`` keeps the first N of
    each class in each folder."""
    roots = [check_layout(d) for d in dataset_dirs(data_dir)]
    return {split: [s for root in roots for s in class_samples(root / split, limit)] for split in SPLITS}


def dataset_samples(folder: Path | str, limit: int | None = None) -> list[Sample]:
    """``class_samples`` of a split folder ``{ai,nature}``, or of every split of a tree ``{train,val}/{ai,nature}``
    in turn; ``limit``: the first N of each class of each split. Anything else is a one-line ``LayoutError``."""
    folder = Path(folder)
    if all((folder / c).is_dir() for c in CLASSES):
        return class_samples(folder, limit)
    splits = [folder / s for s in SPLITS if all((folder / s / c).is_dir() for c in CLASSES)]
    if not splits:
        raise LayoutError(f"{folder}: neither a split folder ({'/, '.join(CLASSES)}/) nor a split tree "
                          f"({'|'.join(SPLITS)}/{{{','.join(CLASSES)}}}); point it at one of those")
    return [sample for split in splits for sample in class_samples(split, limit)]


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


CONTROL_NAME = "BICUBIC"


def control_dir(profile: Profile | str | None = None, raw_root: Path | str | None = None) -> Path:
    """The resampling control (real photos shrunk ×4 and regrown bicubically, labelled ``nature``): a split tree
    like a generator's, with ``val/nature`` only, kept beside ``raw/`` so it is never taken for a generator.
    ``<raw_root>/../controls/BICUBIC``, for the profile's ``raw/`` unless ``raw_root`` is given."""
    raw = Path(raw_root) if raw_root is not None else get_paths(profile).raw
    return raw.parent / "controls" / CONTROL_NAME
