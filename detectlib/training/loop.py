"""One training loop for both detectors, and the ConvNeXt command line ``python -m detectlib.train``.

Introduced in notebook 02 (ConvNeXt); notebook 03 reuses ``fit`` for the frozen-encoder head with its own loss and
prediction rule. The loop is the reference's (§3): AdamW, and after every epoch the training loss, the validation
loss and the validation accuracy, with a checkpoint ``epoch_{N}.pth``. Around it, what a class and a lab need:
progress bars, a ``best.pth``, exact resume, mixed precision on a GPU, and DDP under ``torchrun``:

    torchrun --standalone --nproc_per_node 4 -m detectlib.train --data_dir data/raw/ALL_full

(``--batch_size`` is per process; only rank 0 prints and writes.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from ..config import CLASSES
from ..models.checkpoints import (
    CheckpointError,
    _clear_checkpoints,
    check_compatible,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .distributed import _all_gather_cat, _all_reduce_sum, _rank, _shard, distributed_context

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------- history


@dataclass
class History:
    """What ``fit`` measured: one dict per epoch with epoch, train_loss, train_acc, val_loss, val_acc (plus the
    extra validation metrics), train_images and val_images (over all processes), seconds, images_per_s (training)
    and data_wait (share of training time spent waiting for data)."""

    epochs: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"epochs": [dict(row) for row in self.epochs]}

    def column(self, key: str) -> list:
        """One metric across epochs, e.g. ``history.column("val_acc")`` for a curve."""
        return [row[key] for row in self.epochs]

    def best(self, key: str = "val_acc") -> dict:
        """The best epoch: highest ``key`` (lowest for a loss); ties go to the lower validation loss, then the
        earlier epoch. ``best.pth`` is chosen by the same rule."""
        if not self.epochs:
            raise ValueError("no epoch recorded yet")
        return min(self.epochs, key=lambda row: _rank(row, key))


# ------------------------------------------------------------------------------------------------- fit


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one rank: every epoch starts from a known random state, so a resumed run
    repeats exactly what an uninterrupted one would have done."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _reseed(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _argmax(outputs: torch.Tensor) -> torch.Tensor:
    return outputs.argmax(dim=1)


def _correct(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Element-wise hits. An (N, 1) prediction against (N,) targets would broadcast to N x N: refuse it."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predict_fn gave shape {tuple(predictions.shape)} for targets of shape "
                         f"{tuple(targets.shape)}; return one class index per sample")
    return predictions == targets


def _bar(loader: DataLoader, desc: str, show: bool):
    return tqdm(loader, desc=desc, leave=False, unit="batch", disable=not show)


def _autocast_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16; None (full precision, deterministic) on the CPU."""
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _train_epoch(model, batches, optimizer, scaler, loss_fn, predict_fn, device, dtype) -> list[float]:
    """One pass of optimisation; returns [loss sum, correct, count, seconds waiting for data, seconds]."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count, wait, start = 0, 0.0, time.perf_counter()
    ready = start
    for inputs, targets in batches:
        wait += time.perf_counter() - ready
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach().double() * len(targets)
        correct += _correct(predict_fn(outputs.detach()), targets).sum()
        count += len(targets)
        ready = time.perf_counter()
    return [loss_sum.item(), float(correct.item()), float(count), wait, time.perf_counter() - start]


@torch.no_grad()
def _predict(model, batches, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """All outputs (float32, CPU) and targets of one pass in eval mode."""
    model.eval()
    outputs, targets = [], []
    for inputs, target in batches:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(inputs.to(device, non_blocking=True))
        outputs.append(out.float().cpu())
        targets.append(target)
    return torch.cat(outputs), torch.cat(targets)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    epochs: int,
    lr: float,
    loss_fn: LossFn | None = None,
    predict_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    val_metrics_fn: Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]] | None = None,
    checkpoint_dir: Path | str | None = None,
    checkpoint_meta: Mapping[str, Any] | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    weight_decay: float = 0.05,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with AdamW and return its per-epoch ``History`` (notebooks 02 and 03).

    ``loss_fn(outputs, targets)`` defaults to cross-entropy and ``predict_fn(outputs)`` to the arg-max class;
    the frozen-encoder head passes BCE on its logit and ``(logit > 0).long()``. ``val_metrics_fn`` adds metrics
    computed on all validation outputs. With ``checkpoint_dir`` every epoch is saved as ``epoch_{N}.pth`` (with
    optimizer state, for ``resume``) and the best by validation accuracy as ``best.pth``; ``checkpoint_meta``
    (kind, arch, classes, img_size, mean, std, config...) makes them self-describing. Each epoch reseeds from
    ``(seed, epoch)``, so ``resume=True`` ends with exactly the weights of an uninterrupted run. ``amp``
    (default: on) only applies on CUDA; the CPU stays in float32. Under ``torchrun`` the loaders are sharded
    across processes, metrics are summed over them, and only rank 0 prints and writes.
    """
    ctx = distributed_context()
    device = torch.device(device) if device is not None else (
        torch.device("cuda", ctx.local_rank) if torch.cuda.is_available() else torch.device("cpu"))
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    predict_fn = predict_fn or _argmax
    dtype = _autocast_dtype(device, amp)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    train_loader = _shard(train_loader, ctx, train=True, seed=seed)
    val_loader = _shard(val_loader, ctx, train=False, seed=seed)

    from timm.optim import param_groups_weight_decay  # no decay on norms and biases, as timm trains ConvNeXt

    model.to(device)
    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, weight_decay), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    history, start = History(), 1
    last = latest_checkpoint(checkpoint_dir) if resume and checkpoint_dir is not None else None
    if last is not None:
        ckpt = load_checkpoint(last)
        if "train_state" not in ckpt:
            raise CheckpointError(f"{last}: holds no optimizer state, so training cannot resume from it")
        if checkpoint_meta and "arch" in checkpoint_meta:
            check_compatible(ckpt, checkpoint_meta["arch"], checkpoint_meta.get("classes") or CLASSES, last)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise CheckpointError(f"{last}: its weights do not fit the model of this run ({lines[-1]}); was it "
                                  "trained with other --model options?") from None
        optimizer.load_state_dict(ckpt["train_state"]["optimizer"])
        scaler.load_state_dict(ckpt["train_state"]["scaler"])
        history, start = History(list(ckpt["history"])), int(ckpt["epoch"]) + 1
        if ctx.is_main:
            print(f"Resuming from {last} (epoch {ckpt['epoch']} of {epochs})", flush=True)
    elif checkpoint_dir is not None and ctx.is_main:
        _clear_checkpoints(checkpoint_dir)

    net: nn.Module = model
    if ctx.world_size > 1:
        import warnings

        from torch.nn.parallel import DistributedDataParallel

        # Depthwise (C, 1, k, k) grads come back with a different but equivalent stride on size-1 dims: benign.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start, epochs + 1):
        epoch_start = time.perf_counter()
        _reseed(epoch_seed(seed, epoch, ctx.rank))
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)

        show = progress and ctx.is_main
        loss_sum, correct, count, wait, train_s = _all_reduce_sum(
            _train_epoch(net, _bar(train_loader, f"epoch {epoch}/{epochs} train", show), optimizer, scaler,
                         loss_fn, predict_fn, device, dtype),
            device, ctx)
        outputs, targets = _predict(net, _bar(val_loader, f"epoch {epoch}/{epochs} val", show), device, dtype)
        outputs, targets = _all_gather_cat(outputs, ctx), _all_gather_cat(targets, ctx)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / count,
            "train_acc": correct / count,
            "val_loss": float(loss_fn(outputs, targets)),
            "val_acc": float(_correct(predict_fn(outputs), targets).float().mean()),
            **{k: float(v) for k, v in (val_metrics_fn(outputs, targets) if val_metrics_fn else {}).items()},
            "train_images": int(count),
            "val_images": len(targets),
            "seconds": time.perf_counter() - epoch_start,
            "images_per_s": count / (train_s / ctx.world_size),
            "data_wait": wait / train_s,
        }
        is_best = not history.epochs or _rank(row) < _rank(history.best())
        history.epochs.append(row)
        if ctx.is_main:
            print(f"Epoch {epoch}/{epochs} - Train Loss: {row['train_loss']:.4f} - "
                  f"Val Loss: {row['val_loss']:.4f} - Val Acc: {row['val_acc']:.4f} ({row['seconds']:.1f}s, "
                  f"{row['images_per_s']:.0f} img/s, data wait {row['data_wait']:.0%})",
                  flush=True)
            if checkpoint_dir is not None:
                meta = {**(checkpoint_meta or {}), "epoch": epoch, "metrics": row, "history": history.epochs,
                        "seed": seed}
                save_checkpoint(checkpoint_dir / f"epoch_{epoch}.pth", model.state_dict(), **meta,
                                train_state={"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()})
                if is_best:
                    save_checkpoint(checkpoint_dir / "best.pth", model.state_dict(), **meta)
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()  # every rank returns once rank 0's checkpoints are on disk
    return history
