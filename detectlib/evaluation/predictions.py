"""p(ai) for image files through a detector's whole pipeline: what ``infer`` prints and every scorer runs.

Lean on purpose (no scikit-learn, no matplotlib): the ``infer`` command line imports this and nothing of the
metrics. A frozen encoder's embeddings come from the cache when one is given (``models.features``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..data.images import (
    ImageLoadError,
    decode_side_of,
    is_image_file,
    load_image,
    skip_bad_file,
    warn_skipped,
)
from ..models.detector import Detector

if TYPE_CHECKING:
    from PIL import Image


class _ImageFiles:
    """Map-style dataset of files -> (index, tensor or None, error or None): a bad file travels with its batch
    as a message instead of stopping the run."""

    def __init__(self, paths: Sequence[Path], transform: Callable, perturb: Callable | None = None):
        self.paths, self.transform, self.perturb = list(paths), transform, perturb
        # decoded for the size the transform needs; whole when perturbed, as a user's edit acts on the full image
        self.target = decode_side_of(transform) if perturb is None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.paths[index], self.target)
        except ImageLoadError as err:
            return index, None, str(err)
        if self.perturb is not None:
            image = self.perturb(image)
        return index, self.transform(image), None


@dataclass
class Predictions:
    """p(ai) for the files that could be read, in input order, and the ones skipped with the reason."""

    paths: list[Path]
    p_ai: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # index of each scored file in the input list


def score_paths(
    detector: Detector,
    paths: Sequence[Path | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
    perturb: Callable[[Image.Image], Image.Image] | None = None,
    progress: bool = False,
    strict: bool = False,
    warn: bool = True,
    cache_dir: Path | str | None = None,
) -> Predictions:
    """The whole pipeline, batched: decode each file, optionally perturb it (robustness), preprocess with the
    detector's own transform, and run the model under ``torch.inference_mode``.

    ``workers`` > 0 decodes in background processes while the model runs; unreadable files are skipped and
    listed in ``skipped``, each with a ``SkippedFileWarning`` and then a summary (``warn=False``: silently);
    ``strict``: the first one raises ``ImageLoadError``. With ``cache_dir``, a head over a *frozen* encoder
    reads each unperturbed image's embedding from the embedding cache (``features``) and runs only its head:
    the same numbers, without encoding an image twice across lessons.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    paths = [Path(p) for p in paths]
    if cache_dir is not None and perturb is None and detector.frozen_encoder is not None:
        return _score_through_cache(detector, paths, Path(cache_dir), batch_size, progress, strict)
    loader = DataLoader(_ImageFiles(paths, detector.transform, perturb), batch_size=batch_size,
                        num_workers=workers, collate_fn=list)
    kept: list[int] = []
    scores: list[torch.Tensor] = []
    skipped: list[tuple[Path, str]] = []
    with torch.inference_mode(), tqdm(total=len(paths), disable=not progress, unit="img", file=sys.stderr) as bar:
        for batch in loader:
            good = [(i, tensor) for i, tensor, _ in batch if tensor is not None]
            skipped += [(paths[i], err) for i, tensor, err in batch if tensor is None]
            for _, _, err in batch:
                if err is not None:
                    skip_bad_file(err, strict=strict, warn=warn, stacklevel=2)
            if good:
                scores.append(detector.p_ai(torch.stack([t for _, t in good])).float().cpu())
                kept += [i for i, _ in good]
            bar.update(len(batch))
    if warn:
        warn_skipped(skipped)
    p_ai = torch.cat(scores).numpy().astype(np.float64) if scores else np.zeros(0)
    return Predictions([paths[i] for i in kept], p_ai, skipped, kept)


def _score_through_cache(detector: Detector, paths: list[Path], cache_dir: Path, batch_size: int, progress: bool,
                         strict: bool) -> Predictions:
    """``score_paths`` for a detector with a frozen encoder: embeddings through the cache, then the rest alone."""
    from ..models.features import embed_samples

    embedded = embed_samples(detector.frozen_encoder, [(p, 0) for p in paths], cache_dir, batch_size, progress, strict)
    kept, pending = [], iter(enumerate(paths))
    for path in embedded.paths:  # embed_samples keeps the input order and leaves out unreadable files
        kept.append(next(i for i, candidate in pending if candidate == path))
    left_out = sorted(set(range(len(paths))) - set(kept))
    skipped = [(paths[i], "unreadable (see the warning above)") for i in left_out]
    p_ai = detector.p_ai_from_embeddings(embedded.embeddings).numpy().astype(np.float64)
    return Predictions([paths[i] for i in kept], p_ai, skipped, kept)


def find_images(folder: Path | str) -> list[Path]:
    """Every entry named like an image under ``folder`` (recursively, never following a link to a folder), sorted.
    Entries that are not regular files (a folder or FIFO named ``x.png``, a broken link) are kept, so that
    scoring skips them with a warning naming them rather than dropping them silently."""
    return sorted(p for p in Path(folder).rglob("*") if is_image_file(p))
