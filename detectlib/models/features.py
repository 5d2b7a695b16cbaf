"""The embedding cache: a frozen encoder's embedding of each image is computed once, then read from disk.

Introduced in notebook 03. A frozen encoder maps an image to the same vector every epoch, so the head can train on
stored vectors: an epoch costs milliseconds instead of a pass through the encoder.

Keys are the image's *content* (SHA-256 of the file's bytes) within one store per encoder ``cache_key`` (name,
library version, preprocessing, decode mode, precision, weights fingerprint). Content rather than path + size +
mtime because the kit copies images around (``create_full_all`` / ``create_samples`` prefix and copy generator
folders; a git checkout or ``cp`` resets mtimes): a copy hits the cache, a touched file stays valid, and an edited
file misses even when its size and mtime resolution hide the edit. Hashing reads the file once, far cheaper than
decoding and encoding it.

A store is a set of shard files ``<encoder>-<key hash>.<id>.pt`` (``EmbeddingStore``): each call that encodes
something adds one, written atomically, so concurrent writers (``torchrun -m detectlib.embed``) never collide.
Shards are read memory-mapped (``torch.load(mmap=True)``): a head trained on millions of cached vectors reads them
from the page cache, and when the requested images are one shard's consecutive rows (a folder embedded by
``python -m detectlib.embed``) ``EmbeddedSet.embeddings`` *is* that mapping, never a second copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import BadInputError, Profile, get_paths
from ..data.datasets import load_sample_or_next
from ..data.images import (
    ImageLoadError,
    check_file,
    decode_side_of,
    load_image,
    skip_bad_file,
    warn_skipped,
)
from ..data.layout import class_samples
from ..files import atomic_write

CACHE_FORMAT = "detectlib-embeddings/2"  # 2: memory-mapped shards; 1 was one torch file rewritten on every call


SHARD_SUFFIX = ".pt"


class CacheFormatError(ValueError, BadInputError):
    """An embedding-cache file written by an incompatible version of the kit; the message names it and the fix."""


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
        """A ``TensorDataset`` for ``training.fit``: the head trains on these vectors."""
        return torch.utils.data.TensorDataset(self.embeddings, self.labels)

    def take(self, indices: Sequence[int]) -> EmbeddedSet:
        """The rows at ``indices`` (a train or test part of one embedded set; no cache statistics)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return EmbeddedSet(self.embeddings[idx], self.labels[idx], [self.paths[i] for i in idx.tolist()])


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes: the cache key of one image."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def embedding_cache(profile: Profile | str | None = None) -> Path:
    """The profile's embedding cache folder, shared by training (notebook 03, ``train_clip_head``), scoring (04,
    05) and ``python -m detectlib.embed``."""
    return get_paths(profile).cache / "embeddings"


def store_prefix(cache_dir: Path | str, cache_key: str) -> Path:
    """Where one encoder's shards live: a readable prefix of its spec plus a hash of its full cache key."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key.split("|", 1)[0])[:60]
    return Path(cache_dir) / f"{name}-{hashlib.sha1(cache_key.encode()).hexdigest()[:16]}"


def new_shard_id() -> str:
    """A shard name no other writer picks (time, then process), sorting in the order shards were written."""
    return f"{time.time_ns():016x}-{os.getpid()}"


def write_shard(prefix: Path, cache_key: str, digests: Sequence[str], vectors: torch.Tensor,
                shard_id: str | None = None) -> Path:
    """One shard file, written atomically: a reader sees all of it or nothing."""
    if len(digests) != len(vectors):
        raise ValueError(f"write_shard: {len(digests)} digests for {len(vectors)} vectors")
    path = prefix.with_name(f"{prefix.name}.{shard_id or new_shard_id()}{SHARD_SUFFIX}")
    payload = {"format": CACHE_FORMAT, "cache_key": cache_key, "hashes": list(digests),
               "embeddings": vectors.float().contiguous()}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_shard(path: Path, cache_key: str) -> tuple[list[str], torch.Tensor] | None:
    """A shard's digests and memory-mapped vectors; None for a shard gone meanwhile (merged by another process)
    or damaged (warned about and removed, so it is rebuilt, never trusted). Another version's file raises
    ``CacheFormatError``."""
    try:
        store = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        return None
    except Exception as err:
        warnings.warn(f"{path}: unreadable embedding cache ({type(err).__name__}), rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    found = store.get("format") if isinstance(store, dict) else None
    if found != CACHE_FORMAT:
        raise CacheFormatError(f"{path}: embedding cache written by another detectlib version (format {found!r}, "
                               f"this one reads {CACHE_FORMAT!r}); delete it and rerun, or rebuild the cache "
                               "with python -m detectlib.embed")
    if store.get("cache_key") != cache_key:  # a prefix-hash collision: another encoder's file
        return None
    return list(store["hashes"]), store["embeddings"]


class EmbeddingStore:
    """One encoder's cached embeddings, by content digest: every shard under ``store_prefix`` read memory-mapped,
    plus what ``add`` brings. ``cache_dir=None`` keeps everything in memory (nothing is written)."""

    def __init__(self, cache_dir: Path | str | None, cache_key: str):
        self.cache_key = cache_key
        self.prefix = store_prefix(cache_dir, cache_key) if cache_dir is not None else None
        self._tables: list[torch.Tensor] = []
        self._where: dict[str, tuple[int, int]] = {}  # digest -> (table, row); the first shard holding it wins
        for path in self.shard_files():
            shard = read_shard(path, cache_key)
            if shard is not None:
                self._index(*shard)

    def shard_files(self) -> list[Path]:
        """The shard files on disk, oldest first (none without a cache folder)."""
        if self.prefix is None or not self.prefix.parent.is_dir():
            return []
        return sorted(self.prefix.parent.glob(f"{self.prefix.name}*{SHARD_SUFFIX}"))

    def _index(self, digests: Sequence[str], vectors: torch.Tensor) -> None:
        table = len(self._tables)
        self._tables.append(vectors)
        for row, digest in enumerate(digests):
            self._where.setdefault(digest, (table, row))

    def __contains__(self, digest: str) -> bool:
        return digest in self._where

    def __len__(self) -> int:
        return len(self._where)

    def add(self, digests: Sequence[str], vectors: torch.Tensor, shard_id: str | None = None) -> Path | None:
        """New rows: one new shard on disk (its path), or in memory only without a cache folder (None)."""
        path = None
        if self.prefix is not None:
            path = write_shard(self.prefix, self.cache_key, digests, vectors, shard_id)
        self._index(digests, vectors.float())
        return path

    def get(self, digests: Sequence[str], dim: int) -> torch.Tensor:
        """The vectors (N, dim) of ``digests``, in order, every one present. One shard's consecutive rows come back
        as a view of its mapping (no copy); any other selection is gathered into a new tensor."""
        if not digests:
            return torch.zeros(0, dim)
        where = torch.tensor([self._where[d] for d in digests], dtype=torch.long)
        tables, rows = where[:, 0], where[:, 1]
        first = int(rows[0])
        if bool((tables == tables[0]).all()) and torch.equal(rows, torch.arange(first, first + len(rows))):
            return self._tables[int(tables[0])][first:first + len(rows)]
        out = torch.empty(len(digests), dim)
        for table in tables.unique().tolist():
            chosen = tables == table
            out[chosen] = self._tables[table][rows[chosen]].float()
        return out


def readable_samples(samples: Sequence[tuple[Path, int]], skip: Callable[[Path, ImageLoadError], None]
                     ) -> list[tuple[Path, int]]:
    """The samples that are readable files (``data.check_file``); ``skip`` hears about each other one first, so a
    FIFO or a link loop named x.png is refused before hashing would open it."""
    readable = []
    for path, label in samples:
        try:
            check_file(path)
        except ImageLoadError as err:
            skip(Path(path), err)
            continue
        readable.append((path, label))
    return readable


def encode_files(encoder: Any, items: Sequence[tuple[Path, str]], skip: Callable[[Path, ImageLoadError], None],
                 batch_size: int = 32, progress: bool = False, perturb: Any = None
                 ) -> tuple[list[str], torch.Tensor | None]:
    """Decode (at the encoder's ``decode_side``: ``data.load_image``), preprocess and encode (path, digest) pairs
    in batches; returns the digests encoded and their vectors (N, dim) on the CPU (None when nothing was). Files
    that fail to decode go to ``skip``. A ``perturb`` edits each image decoded whole, as a user's edit would."""
    from concurrent.futures import ThreadPoolExecutor

    target = None if perturb is not None else decode_side_of(encoder)
    device = next(encoder.parameters()).device
    batches = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]

    def decode(batch: Sequence[tuple[Path, str]]) -> list[tuple[Path, str, Any]]:
        decoded = []
        for path, digest in batch:
            try:
                image = load_image(path, target)
                decoded.append((Path(path), digest, perturb(image) if perturb is not None else image))
            except ImageLoadError as err:
                decoded.append((Path(path), digest, err))
        return decoded

    encoder.eval()
    digests: list[str] = []
    chunks: list[torch.Tensor] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches), desc=f"encoding with {encoder.spec}", unit="batch")
    # The next batch decodes in a thread (PIL releases the GIL) while this one is encoded; failures are reported
    # here, in order, so the skip policy (warnings, strict) runs where it always did.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decode, batches[0]) if batches else None
        for index in range(len(batches)):
            decoded = pending.result()
            pending = pool.submit(decode, batches[index + 1]) if index + 1 < len(batches) else None
            for path, _, image in decoded:
                if isinstance(image, ImageLoadError):
                    skip(path, image)
            good = [(digest, image) for _, digest, image in decoded if not isinstance(image, ImageLoadError)]
            if good:
                with torch.inference_mode():
                    pixels = encoder.preprocess([image for _, image in good]).to(device)
                    chunks.append(encoder.embed(pixels).float().cpu())
                digests += [digest for digest, _ in good]
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return digests, (torch.cat(chunks) if chunks else None)


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
    ``perturb`` (PIL image -> PIL image, e.g. ``evaluation.Perturbation``) edits each decoded image first; it needs
    ``cache_dir=None``, since the cache is keyed by the file's bytes, not by what was done to them."""
    if perturb is not None and cache_dir is not None:
        raise ValueError("embed_samples: a perturbed image must not enter the cache; pass cache_dir=None")
    stats = CacheStats()
    skipped: list[tuple[Path, str]] = []

    def skip(path: Path, err: ImageLoadError) -> None:
        skip_bad_file(err, path, skipped, strict, stacklevel=4)

    samples = readable_samples(samples, skip)
    not_files = len(skipped)
    digests = [file_digest(path) for path, _ in samples]
    store = EmbeddingStore(cache_dir, encoder.cache_key)
    first_index: dict[str, int] = {}  # each new content encoded once, even when copies sit in the list
    for index, digest in enumerate(digests):
        if digest not in store:
            first_index.setdefault(digest, index)
    stats.hits = sum(d in store for d in digests)
    began = time.perf_counter()
    new_digests, vectors = encode_files(encoder, [(samples[i][0], d) for d, i in first_index.items()], skip,
                                        batch_size, progress, perturb)
    stats.encode_seconds = time.perf_counter() - began
    if vectors is not None:
        store.add(new_digests, vectors)
    encoded = set(new_digests)
    stats.misses = sum(d in encoded for d in digests)
    stats.skipped = sum(d in first_index and d not in encoded for d in digests) + not_files
    warn_skipped(skipped, stacklevel=2)
    kept = [i for i, d in enumerate(digests) if d in store]
    return EmbeddedSet(
        embeddings=store.get([digests[i] for i in kept], encoder.dim),
        labels=torch.tensor([samples[i][1] for i in kept], dtype=torch.long),
        paths=[Path(samples[i][0]) for i in kept],
        stats=stats,
    )


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
        samples = class_samples(folder_or_dataset, limit)
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
    from ..data.layout import discover_generators

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
                skip_bad_file(err, path, self.skipped, strict, stacklevel=2)
        warn_skipped(self.skipped, stacklevel=2)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = load_sample_or_next(self.samples, index, self.strict,
                                           target=decode_side_of(self.preprocess))
        return self.preprocess([image])[0], label
