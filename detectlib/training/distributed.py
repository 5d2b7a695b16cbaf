"""What ``fit`` needs under ``torchrun``: where this process stands, its share of the data, sums and gathers
over processes, and the DDP wrapper. Every helper is the identity in a single process, so the loop reads the same
either way:

    torchrun --standalone --nproc_per_node 4 -m detectlib.train --data_dir data/raw/ALL_full

(``--batch_size`` is per process; only rank 0 prints and writes.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


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


def shard(loader: DataLoader, ctx: DistContext, *, train: bool, seed: int) -> DataLoader:
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


def all_reduce_sum(values: list[float], device: torch.device, ctx: DistContext) -> list[float]:
    """``values`` summed over every process."""
    if ctx.world_size == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_cat(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Every process's ``tensor``, concatenated in rank order (the whole validation set's outputs)."""
    if ctx.world_size == 1:
        return tensor
    import torch.distributed as dist

    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """A sharded training loader reshuffles by epoch (``DistributedSampler.set_epoch``); others need nothing."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def wrap_model(model: torch.nn.Module, device: torch.device, ctx: DistContext) -> torch.nn.Module:
    """``model`` under ``DistributedDataParallel`` in a multi-process run, so gradients are averaged; itself
    otherwise. Checkpoints keep saving ``model``, never the wrapper."""
    if ctx.world_size == 1:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # Depthwise (C, 1, k, k) grads come back with a different but equivalent stride on size-1 dims: benign.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def wait_for_main(ctx: DistContext) -> None:
    """Every process returns once rank 0's checkpoints are on disk."""
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
