"""A whole dataset folder embedded into the embedding cache, on one process or many (``python -m detectlib.embed``).

Under ``torchrun`` every process (gloo, on the CPU, nothing beyond localhost) hashes its share of the files, then
encodes its contiguous share of the images the cache still lacks and writes it as a part shard; rank 0 then merges
the parts into one shard in the folder's order, so whoever reads the folder later (``models.features.embed_folder``, a
head's training) gets its vectors as one memory-mapped block. What is already cached is never encoded again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.images import ImageLoadError, skip_bad_file, warn_skipped
from ..data.layout import dataset_samples
from ..models.features import (
    EmbeddingStore,
    encode_files,
    file_digest,
    new_shard_id,
    read_shard,
    readable_samples,
    write_shard,
)


@dataclass
class EmbedReport:
    """What one run did: images listed, served from the cache, encoded, skipped; seconds and processes."""

    images: int
    hits: int
    encoded: int
    skipped: int
    seconds: float
    processes: int
    shard: Path | None  # the shard this run wrote (None: everything was cached already)

    def __str__(self) -> str:
        where = f" -> {self.shard}" if self.shard else ""
        skipped = f", {self.skipped} unreadable skipped" if self.skipped else ""
        return (f"{self.images} images: {self.hits} from cache, {self.encoded} encoded in {self.seconds:.2f} s on "
                f"{self.processes} process{'es' if self.processes != 1 else ''}{skipped}{where}")


def _share(items: Sequence[Any], rank: int, world: int) -> Sequence[Any]:
    """Rank ``rank``'s contiguous share of ``items``: concatenated in rank order they are ``items`` again."""
    step, extra = divmod(len(items), world)
    start = rank * step + min(rank, extra)
    return items[start:start + step + (rank < extra)]


class _Group:
    """The process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``); one process without."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            dist.init_process_group("gloo")

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def embed_dataset(folder: Path | str, encoder: Any, cache_dir: Path | str, *, batch_size: int = 32,
                  limit: int | None = None, strict: bool = False, progress: bool = False) -> EmbedReport:
    """Embed every image of ``folder`` (``dataset_samples``) missing from the cache of ``encoder`` in
    ``cache_dir``; under torchrun each rank does its share and rank 0 merges (see the module docstring).
    Unreadable images: the kit's policy (skip with a warning and a summary; ``strict``: raise). Entries that are
    not files are told by rank 0; an image that fails to decode, by the rank that tried."""
    group = _Group()
    try:
        began = time.perf_counter()
        not_files: list[tuple[Path, str]] = []
        failed: list[tuple[Path, str]] = []

        def skipper(into: list[tuple[Path, str]], warn: bool):
            def skip(path: Path, err: ImageLoadError) -> None:
                skip_bad_file(err, path, into, strict, warn, stacklevel=4)
            return skip

        samples = readable_samples(dataset_samples(folder, limit), skipper(not_files, group.rank == 0))
        mine = [file_digest(path) for path, _ in _share(samples, group.rank, group.world)]
        digests = [d for part in group.gather(mine) for d in part]
        store = EmbeddingStore(cache_dir, encoder.cache_key)
        todo: dict[str, Path] = {}  # each missing content once, in the folder's order
        for (path, _), digest in zip(samples, digests, strict=True):
            if digest not in store:
                todo.setdefault(digest, path)
        run_id = group.gather(new_shard_id())[0]  # rank 0's: every part and the merged shard are named by it
        work = [(path, digest) for digest, path in _share(list(todo.items()), group.rank, group.world)]
        done, vectors = encode_files(encoder, work, skipper(failed, True), batch_size, progress and group.rank == 0)
        part = None
        if vectors is not None:
            part = write_shard(store.prefix, encoder.cache_key, done, vectors,
                               run_id if group.world == 1 else f"{run_id}-part{group.rank:04d}")
        parts = [p for p in group.gather(part) if p is not None]
        failed = [f for rank_failed in group.gather(failed) for f in rank_failed]
        shard = parts[0] if parts and group.world == 1 else None
        if parts and group.world > 1 and group.rank == 0:
            shard = _merge(parts, store.prefix, encoder.cache_key, run_id)
        group.barrier()  # no rank returns before the merged shard exists
        if group.rank == 0:
            warn_skipped(not_files + failed, folder, stacklevel=2)
        return EmbedReport(images=len(samples) + len(not_files), hits=len(samples) - sum(
            d in todo for d in digests), encoded=len(todo) - len(failed), skipped=len(not_files) + len(failed),
            seconds=time.perf_counter() - began, processes=group.world, shard=shard)
    finally:
        group.close()


def _merge(parts: list[Path], prefix: Path, cache_key: str, run_id: str) -> Path:
    """The ranks' part shards (rank order = the folder's order) as one shard; the parts are then removed. The
    merged shard is complete on disk before any part goes, so a reader never misses a vector."""
    import torch

    read = [read_shard(p, cache_key) for p in parts]
    merged = write_shard(prefix, cache_key, [d for digests, _ in read for d in digests],
                         torch.cat([vectors for _, vectors in read]), run_id)
    for p in parts:
        p.unlink()
    return merged
