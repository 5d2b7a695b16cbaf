"""The embedding cache: a frozen encoder's embedding of each image is computed once, then read from disk.

Introduced in notebook 03. A frozen encoder maps an image to the same vector every epoch, so the head can train on
stored vectors: an epoch costs milliseconds instead of a pass through the encoder.

Keys are the image's *content* (SHA-256 of the file's bytes) within one file per encoder ``cache_key`` (name,
library version, preprocessing, weights fingerprint). Content rather than path + size + mtime because the kit copies
images around (``create_full_all`` / ``create_samples`` prefix and copy generator folders; a git checkout or ``cp``
resets mtimes): a copy hits the cache, a touched file stays valid, and an edited file misses even when its size and
mtime resolution hide the edit. Hashing reads the file once, far cheaper than decoding and encoding it.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import CLASSES
from .data import (
    ImageLoadError,
    SkippedFileWarning,
    check_file,
    list_class_images,
    load_image,
    load_sample_or_next,
    warn_skipped,
)
from .models import atomic_torch_save

CACHE_FORMAT = "detectlib-embeddings/1"


@dataclass
class CacheStats:
    """Hits, misses and time spent encoding, so a notebook can show the cache at work."""

    hits: int = 0
    misses: int = 0
    skipped: int = 0  # unreadable images, warned about and left out
    encode_seconds: float = 0.0

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(self.hits + other.hits, self.misses + other.misses, self.skipped + other.skipped,
                          self.encode_seconds + other.encode_seconds)

    def __str__(self) -> str:
        text = f"{self.hits} from cache, {self.misses} encoded in {self.encode_seconds:.1f} s"
        return text + (f", {self.skipped} unreadable skipped" if self.skipped else "")


@dataclass
class EmbeddedSet:
    """Embeddings (N, dim) with their labels (``ai`` = 0, ``nature`` = 1) and source files, in the same order."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    stats: CacheStats = field(default_factory=CacheStats)

    def dataset(self) -> torch.utils.data.TensorDataset:
        """A ``TensorDataset`` for ``train.fit``: the head trains on these vectors."""
        return torch.utils.data.TensorDataset(self.embeddings, self.labels)

    def take(self, indices: Sequence[int]) -> EmbeddedSet:
        """The rows at ``indices`` (a train or test part of one embedded set; no cache statistics)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return EmbeddedSet(self.embeddings[idx], self.labels[idx], [self.paths[i] for i in idx.tolist()])


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes: the cache key of one image."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cache_file(cache_dir: Path | str, cache_key: str) -> Path:
    """One file per encoder: a readable prefix of its spec plus a hash of its full cache key."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key.split("|", 1)[0])[:60]
    return Path(cache_dir) / f"{name}-{hashlib.sha1(cache_key.encode()).hexdigest()[:16]}.pt"


def _read_store(path: Path, cache_key: str) -> tuple[list[str], torch.Tensor | None]:
    if not path.is_file():
        return [], None
    try:
        store = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged cache is rebuilt, never trusted
        warnings.warn(f"{path}: unreadable embedding cache ({type(err).__name__}), rebuilding it", stacklevel=3)
        return [], None
    if store.get("format") != CACHE_FORMAT or store.get("cache_key") != cache_key:
        return [], None
    return list(store["hashes"]), store["embeddings"]


def embed_samples(
    encoder: Any,
    samples: Sequence[tuple[Path, int]],
    cache_dir: Path | str | None,
    batch_size: int = 32,
    progress: bool = False,
    strict: bool = False,
    perturb: Any = None,
) -> EmbeddedSet:
    """Embed (path, label) pairs with a frozen encoder, reading and extending the cache in ``cache_dir``
    (``None``: no cache, every image is encoded). Unreadable images are skipped with a warning each and a
    summary (``strict``: the first one raises ``ImageLoadError``); the cache only ever holds readable ones.
    ``perturb`` (PIL image -> PIL image, e.g. ``evaluate.Perturbation``) edits each decoded image first; it needs
    ``cache_dir=None``, since the cache is keyed by the file's bytes, not by what was done to them."""
    if perturb is not None and cache_dir is not None:
        raise ValueError("embed_samples: a perturbed image must not enter the cache; pass cache_dir=None")
    stats = CacheStats()
    skipped: list[tuple[Path, str]] = []

    def skip(path: Path, err: ImageLoadError) -> None:
        if strict:
            raise err
        warnings.warn(f"skipped {err}", SkippedFileWarning, stacklevel=3)
        skipped.append((Path(path), str(err)))

    readable = []
    for path, label in samples:  # hashing opens the file: a FIFO or a loop named x.png is refused first
        try:
            check_file(path)
        except ImageLoadError as err:
            skip(path, err)
            continue
        readable.append((path, label))
    not_files, samples = len(skipped), readable
    digests = [file_digest(path) for path, _ in samples]
    key = encoder.cache_key
    store_path = cache_file(cache_dir, key) if cache_dir is not None else None
    hashes, stored = _read_store(store_path, key) if store_path else ([], None)
    rows: dict[str, torch.Tensor] = dict(zip(hashes, stored, strict=True)) if stored is not None else {}
    first_index: dict[str, int] = {}  # each new content encoded once, even when copies sit in the list
    for index, digest in enumerate(digests):
        if digest not in rows:
            first_index.setdefault(digest, index)
    todo = list(first_index.items())
    stats.hits = sum(d in rows for d in digests)
    new_hashes, new_rows, unreadable = [], [], set()
    device = next(encoder.parameters()).device
    starts = range(0, len(todo), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"encoding with {encoder.spec}", unit="batch")
    began = time.perf_counter()
    encoder.eval()
    for start in starts:
        images, batch_hashes = [], []
        for digest, index in todo[start:start + batch_size]:
            try:
                image = load_image(samples[index][0])
                images.append(perturb(image) if perturb is not None else image)
                batch_hashes.append(digest)
            except ImageLoadError as err:
                skip(samples[index][0], err)
                unreadable.add(digest)
        if images:
            with torch.inference_mode():
                vectors = encoder.embed(encoder.preprocess(images).to(device)).float().cpu()
            new_hashes += batch_hashes
            new_rows += list(vectors)
    stats.encode_seconds = time.perf_counter() - began
    encoded = set(new_hashes)
    stats.misses = sum(d in encoded for d in digests)
    stats.skipped = sum(d in unreadable for d in digests) + not_files
    rows.update(zip(new_hashes, new_rows, strict=True))
    if store_path is not None and new_hashes:
        all_hashes = hashes + new_hashes
        all_rows = torch.cat([t for t in (stored, torch.stack(new_rows)) if t is not None])
        atomic_torch_save({"format": CACHE_FORMAT, "cache_key": key, "hashes": all_hashes,
                           "embeddings": all_rows}, store_path)
    warn_skipped(skipped, stacklevel=2)
    kept = [i for i, d in enumerate(digests) if d in rows]
    vectors = [rows[digests[i]] for i in kept]
    return EmbeddedSet(
        embeddings=torch.stack(vectors) if vectors else torch.zeros(0, encoder.dim),
        labels=torch.tensor([samples[i][1] for i in kept], dtype=torch.long),
        paths=[Path(samples[i][0]) for i in kept],
        stats=stats,
    )


def folder_samples(folder: Path | str, limit: int | None = None) -> list[tuple[Path, int]]:
    """(path, label) pairs of a split folder ``folder/{ai,nature}``, sorted, ``ai`` = 0; ``limit`` keeps the
    first N of each class."""
    return [(path, label) for label, cls in enumerate(CLASSES)
            for path in list_class_images(Path(folder) / cls)[:limit]]


def embed_folder(
    encoder: Any,
    folder_or_dataset: Path | str | Any,
    cache_dir: Path | str | None,
    batch_size: int = 32,
    progress: bool = False,
    limit: int | None = None,
    strict: bool = False,
) -> EmbeddedSet:
    """Embed a split folder (``<split>/{ai,nature}``, the first ``limit`` images of each class) or any dataset
    with ``.samples`` (e.g. ``data``'s ``ImageFolderDataset``) through the cache; ``result.stats`` says how many
    came from the cache. Unreadable images: skipped with a warning each and a summary (``strict``: raise)."""
    if isinstance(folder_or_dataset, str | Path):
        samples = folder_samples(folder_or_dataset, limit)
    else:
        samples = list(folder_or_dataset.samples)
    return embed_samples(encoder, samples, cache_dir, batch_size, progress, strict)


def embed_generators(
    encoder: Any,
    raw_root: Path | str,
    cache_dir: Path | str | None,
    split: str = "val",
    batch_size: int = 32,
    progress: bool = False,
    limit: int | None = None,
) -> dict[str, EmbeddedSet]:
    """One split of every generator folder ``raw_root/<GEN>`` embedded through the cache, keyed by generator:
    what the 2-D projection coloured by generator plots (notebook 03)."""
    from .data import discover_generators

    return {gen: embed_folder(encoder, Path(raw_root) / gen / split, cache_dir, batch_size, progress, limit)
            for gen in discover_generators(raw_root)}


def pca_2d(embeddings: torch.Tensor) -> Any:
    """Project embeddings to their first two principal components (numpy (N, 2)) for a scatter plot."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(embeddings.double().numpy())


class PixelDataset:
    """The same (path, label) pairs as pixel values through the encoder's preprocessing, decoded on every access:
    what training without the cache (fine-tuning, or the recompute baseline of ``cache_speedup``) reads.

    The policy without decoding everything up front: entries that are not readable files are left out at once
    with a warning; an image that fails to decode later is replaced by the next readable one, with a warning
    (``strict``: both raise ``ImageLoadError``)."""

    def __init__(self, samples: Sequence[tuple[Path, int]], preprocess: Any, strict: bool = False):
        self.preprocess, self.strict = preprocess, strict
        self.samples, self.skipped = [], []
        for path, label in samples:
            try:
                self.samples.append((check_file(path), label))
            except ImageLoadError as err:
                if strict:
                    raise
                warnings.warn(f"skipped {err}", SkippedFileWarning, stacklevel=2)
                self.skipped.append((Path(path), str(err)))
        warn_skipped(self.skipped, stacklevel=2)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = load_sample_or_next(self.samples, index, self.strict)
        return self.preprocess([image])[0], label
