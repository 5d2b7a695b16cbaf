"""One training loop for every detector: ``fit``, readable in one screen.

Introduced in notebook 02 (ConvNeXt); notebook 03 reuses ``fit`` for the frozen-encoder head with its own loss and
prediction rule. The loop is the reference's: AdamW, and after every epoch the training loss, the validation
loss and the validation accuracy, with a checkpoint ``epoch_{N}.pth``. Around it, what a class and a lab need, each
in a named helper: progress bars, a ``best.pth`` and exact resume (``checkpointing``), mixed precision on a GPU,
and DDP under ``torchrun`` (``distributed``).
"""

from __future__ import annotations

import math
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
from tqdm.auto import tqdm

from ..config import seed_of
from ..models.memory import GpuTooSmallError
from .checkpointing import EpochCheckpoints
from .distributed import (
    all_gather_cat,
    all_reduce_sum,
    distributed_context,
    set_epoch,
    shard,
    wait_for_main,
    wrap_model,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------- history


def _rank(row: Mapping[str, Any], key: str = "val_acc") -> tuple[float, float, int]:
    """Sort key, smaller is better."""
    value = float(row[key])
    return (value if key.endswith("loss") else -value, float(row.get("val_loss", 0.0)), int(row["epoch"]))


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

    def learned_nothing(self, tolerance: float = 0.02) -> bool:
        """True when the last epoch's training loss is still within ``tolerance`` of ln 2, the cross-entropy of
        answering 50/50 for every image: the run found nothing to learn from its inputs (a degenerate baseline,
        not evidence about what those inputs contain)."""
        return abs(self.epochs[-1]["train_loss"] - math.log(2)) <= tolerance


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


def autocast_dtype(device: torch.device, amp: bool | None = None) -> torch.dtype | None:
    """bf16 where the GPU computes it natively (Ampere and later), else fp16 (with a GradScaler); None (full
    precision, deterministic) on the CPU or with ``amp=False``. Why not ``is_bf16_supported()``'s default: it counts
    the emulated bf16 of a T4 (Colab's free GPU), which runs several times slower than its fp16."""
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


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


def _epoch_row(epoch: int, train: list[float], outputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn,
               predict_fn: Callable, val_metrics_fn: Callable | None, seconds: float, world_size: int) -> dict:
    """One ``History`` row from the summed training pass (``_train_epoch``) and all validation outputs."""
    loss_sum, correct, count, wait, train_s = train
    return {
        "epoch": epoch,
        "train_loss": loss_sum / count,
        "train_acc": correct / count,
        "val_loss": float(loss_fn(outputs, targets)),
        "val_acc": float(_correct(predict_fn(outputs), targets).float().mean()),
        **{k: float(v) for k, v in (val_metrics_fn(outputs, targets) if val_metrics_fn else {}).items()},
        "train_images": int(count),
        "val_images": len(targets),
        "seconds": seconds,
        "images_per_s": count / (train_s / world_size),
        "data_wait": wait / train_s,
    }


def _epoch_line(row: dict, epochs: int) -> str:
    """The reference's line after each epoch, with its speed."""
    return (f"Epoch {row['epoch']}/{epochs} - Train Loss: {row['train_loss']:.4f} - Val Loss: {row['val_loss']:.4f}"
            f" - Val Acc: {row['val_acc']:.4f} ({row['seconds']:.1f}s, {row['images_per_s']:.0f} img/s, "
            f"data wait {row['data_wait']:.0%})")


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
    seed: int | None = None,
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
    seed = seed_of(seed)
    ctx = distributed_context()
    device = torch.device(device) if device is not None else (
        torch.device("cuda", ctx.local_rank) if torch.cuda.is_available() else torch.device("cpu"))
    loss_fn, predict_fn, dtype = loss_fn or nn.CrossEntropyLoss(), predict_fn or _argmax, autocast_dtype(device, amp)
    train_loader, val_loader = shard(train_loader, ctx, train=True, seed=seed), shard(val_loader, ctx, train=False,
                                                                                      seed=seed)
    from timm.optim import param_groups_weight_decay  # no decay on norms and biases, as timm trains ConvNeXt

    model.to(device)
    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, weight_decay), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    saver = EpochCheckpoints(Path(checkpoint_dir), checkpoint_meta or {}, seed) if checkpoint_dir else None
    rows, start = saver.start(model, optimizer, scaler, resume, epochs, ctx.is_main) if saver else ([], 1)
    history, net = History(rows), wrap_model(model, device, ctx)

    for epoch in range(start, epochs + 1):
        epoch_start = time.perf_counter()
        _reseed(epoch_seed(seed, epoch, ctx.rank))
        set_epoch(train_loader, epoch)
        show = progress and ctx.is_main
        try:
            train = all_reduce_sum(_train_epoch(net, _bar(train_loader, f"epoch {epoch}/{epochs} train", show),
                                                optimizer, scaler, loss_fn, predict_fn, device, dtype), device, ctx)
        except torch.OutOfMemoryError:  # one line naming the way out, not a CUDA allocator dump
            raise GpuTooSmallError(f"{device} ran out of memory training at batch {train_loader.batch_size}: pass "
                                   f"a smaller batch_size (--batch_size {max(1, (train_loader.batch_size or 2) // 2)})"
                                   ) from None
        outputs, targets = _predict(net, _bar(val_loader, f"epoch {epoch}/{epochs} val", show), device, dtype)
        outputs, targets = all_gather_cat(outputs, ctx), all_gather_cat(targets, ctx)
        row = _epoch_row(epoch, train, outputs, targets, loss_fn, predict_fn, val_metrics_fn,
                         time.perf_counter() - epoch_start, ctx.world_size)
        is_best = not history.epochs or _rank(row) < _rank(history.best())
        history.epochs.append(row)
        if ctx.is_main:
            print(_epoch_line(row, epochs), flush=True)
            if saver:
                saver.save(model, optimizer, scaler, history.epochs, is_best)
    wait_for_main(ctx)
    return history
