"""TODO docstring for training.distributed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


def _rank(row: Mapping[str, Any], key: str = "val_acc") -> tuple[float, float, int]:
    """Sort key, smaller is better."""
    value = float(row[key])
    return (value if key.endswith("loss") else -value, float(row.get("val_loss", 0.0)), int(row["epoch"]))


# ----------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a ``torchrun`` job; rank 0 of 1 without one."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_context() -> DistContext:
    """Join the process group that torchrun describes in the environment (``WORLD_SIZE`` > 1): nccl on GPUs,
    gloo on the CPU. Without torchrun it does nothing, so notebooks and tests run the same code."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def _shard(loader: DataLoader, ctx: DistContext, *, train: bool, seed: int) -> DataLoader:
    """The same loader over this rank's share: a shuffling DistributedSampler for training; for validation
    every ``world_size``-th image (no padding, so each image counts exactly once)."""
    if ctx.world_size == 1 or isinstance(loader.sampler, DistributedSampler):
        return loader
    if loader.batch_size is None:
        raise ValueError("fit shards loaders built with batch_size=...; a custom batch_sampler cannot be sharded")
    sampler = (
        DistributedSampler(loader.dataset, ctx.world_size, ctx.rank, shuffle=True, seed=seed)
        if train
        else list(range(ctx.rank, len(loader.dataset), ctx.world_size))
    )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
    )


def _all_reduce_sum(values: list[float], device: torch.device, ctx: DistContext) -> list[float]:
    if ctx.world_size == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _all_gather_cat(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.world_size == 1:
        return tensor
    import torch.distributed as dist

    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)
