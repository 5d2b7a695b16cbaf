"""One training loop for both detectors, and the ConvNeXt command line ``python -m detectlib.train``.

Introduced in notebook 02 (ConvNeXt); notebook 03 reuses ``fit`` for the frozen-encoder head with its own loss and
prediction rule. The loop is the reference's (§3): AdamW, and after every epoch the training loss, the validation
loss and the validation accuracy, with a checkpoint ``epoch_{N}.pth``. Around it, what a class and a lab need:
progress bars, a ``best.pth``, exact resume, mixed precision on a GPU, and DDP under ``torchrun``:

    torchrun --standalone --nproc_per_node 4 -m detectlib.train --data_dir data/raw/ALL_full

(``--batch_size`` is per process; only rank 0 prints and writes.)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from .cli import add_reference_training_args, add_strict, command, profile_line
from .config import CLASSES, Profile, get_paths, get_profile
from .data import INPUTS, LayoutError, check_layout, image_datasets, list_class_images
from .models import (
    CheckpointError,
    check_compatible,
    create_timm_model,
    load_checkpoint,
    normalisation_of,
    save_checkpoint,
    weights_source,
)

# Decode every image once into memory when the uint8 tensors fit in this budget; bigger sets stream from disk.
PRELOAD_LIMIT_BYTES = 2 * 1024**3

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


def latest_checkpoint(checkpoint_dir: Path | str) -> Path | None:
    """The ``epoch_{N}.pth`` with the highest N, or None."""
    found = []
    for path in Path(checkpoint_dir).glob("epoch_*.pth"):
        number = path.stem.removeprefix("epoch_")
        if number.isdigit():
            found.append((int(number), path))
    return max(found)[1] if found else None


def _clear_checkpoints(checkpoint_dir: Path) -> None:
    """A fresh run owns its folder: checkpoints of an earlier run would otherwise be resumed from, or mixed in."""
    old = [p for p in checkpoint_dir.glob("*.pth") if p.name == "best.pth" or p.stem.removeprefix("epoch_").isdigit()]
    for path in old:
        path.unlink()
    if old:
        print(f"New run in {checkpoint_dir}: removed {len(old)} checkpoint(s) of an earlier run "
              "(resume=True / --resume continues a run instead)", flush=True)


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


# ---------------------------------------------------------------------------------------------- ConvNeXt


@dataclass
class TrainResult:
    """``train_convnext``'s answer: the model after the last epoch, its history and its checkpoints."""

    model: nn.Module
    history: History
    best_checkpoint: Path
    last_checkpoint: Path


def make_loaders(datasets: Mapping[str, Dataset], batch_size: int, workers: int = 0) -> dict[str, DataLoader]:
    """Shuffled training and ordered validation loaders; ``fit`` seeds the shuffle of every epoch."""
    return {
        split: DataLoader(ds, batch_size=batch_size, shuffle=(split == "train"), num_workers=workers,
                          pin_memory=torch.cuda.is_available())
        for split, ds in datasets.items()
    }


def _fits_in_memory(data_dir: Path, img_size: int) -> bool:
    count = sum(len(list_class_images(data_dir / split / c)) for split in ("train", "val") for c in CLASSES)
    return count * 3 * img_size * img_size <= PRELOAD_LIMIT_BYTES


def train_convnext(
    data_dir: Path | str,
    *,
    model_name: str | None = None,
    img_size: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    pretrained: bool | None = None,
    weights: Path | str | None = None,
    out_dir: Path | str | None = None,
    figures_dir: Path | str | None = None,
    seed: int = 0,
    resume: bool = False,
    workers: int | None = None,
    profile: Profile | str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    strict: bool = False,
    input: str = "rgb",
) -> TrainResult:
    """Train a timm classifier (ConvNeXt by default) on a reference-layout folder (notebook 02, the CLI).

    Every ``None`` takes the profile's value (``model_kwargs`` only when the model is the profile's own).
    Checkpoints go to ``out_dir`` (default ``paths.models``), ``loss_curve.png`` and ``val_accuracy_curve.png``
    to ``figures_dir`` (default ``paths.results / "figures"``). A bad layout raises ``LayoutError`` before any
    model is built; unobtainable weights raise ``PretrainedWeightsError``. Unreadable images are skipped with a
    warning each and a summary (``strict``: the first one raises ``ImageLoadError``, before any model is built);
    a split left without a readable image of some class raises ``LayoutError``. ``input="residual"`` trains on
    each image's high-pass residual (``data.residual``, NPR-style) instead of its pixels; the checkpoint records it.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    paths = get_paths(prof)
    data_dir = check_layout(data_dir)
    model_name = model_name or prof.convnext_model
    if model_kwargs is None:
        model_kwargs = prof.convnext_kwargs if model_name == prof.convnext_model else {}
    img_size = img_size if img_size is not None else prof.img_size
    epochs = epochs if epochs is not None else prof.epochs
    batch_size = batch_size if batch_size is not None else prof.batch_size
    lr = lr if lr is not None else prof.lr
    pretrained = prof.convnext_pretrained if pretrained is None else pretrained
    workers = prof.workers if workers is None else workers
    out_dir = Path(out_dir) if out_dir is not None else paths.models
    figures_dir = Path(figures_dir) if figures_dir is not None else paths.results / "figures"
    ctx = distributed_context()

    mean, std = normalisation_of(model_name)
    datasets = image_datasets(data_dir, img_size, mean, std, preload=_fits_in_memory(data_dir, img_size),
                              strict=strict, input=input)  # read before the model is built: bad data fails fast
    for split, dataset in datasets.items():
        missing = [c for i, c in enumerate(CLASSES) if i not in set(dataset.targets)]
        if missing:
            raise LayoutError(f"{data_dir / split}: no readable image of class {', '.join(missing)}; a detector "
                              "cannot learn or be measured on a class it never sees")
    torch.manual_seed(seed)  # the new head (and a from-scratch network) starts from a known draw
    model = create_timm_model(model_name, pretrained=pretrained, weights=weights, **model_kwargs)
    loaders = make_loaders(datasets, batch_size, workers)
    source = f"weights from {weights}" if weights else ("pretrained" if pretrained else "random init")
    if ctx.is_main:
        print(f"Training {model_name} ({source}) on {len(datasets['train'])} train / {len(datasets['val'])} val "
              f"images at {img_size} px{' (their residual)' if input == 'residual' else ''}: {epochs} epochs, batch {batch_size} x {ctx.world_size} process(es), "
              f"lr {lr:g} -> {out_dir}", flush=True)
    config = {"data_dir": str(data_dir), "profile": prof.name, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "pretrained": bool(pretrained or weights), "seed": seed, "world_size": ctx.world_size}
    meta = {"kind": "convnext", "arch": model_name, "model_kwargs": dict(model_kwargs), "classes": list(CLASSES),
            "img_size": img_size, "mean": list(mean), "std": list(std), "input": input, "config": config}
    history = fit(model, loaders["train"], loaders["val"], epochs=epochs, lr=lr, checkpoint_dir=out_dir,
                  checkpoint_meta=meta, resume=resume, seed=seed, progress=progress)
    if ctx.is_main:
        save_training_curves(history, figures_dir)
    return TrainResult(model, history, out_dir / "best.pth", out_dir / f"epoch_{history.epochs[-1]['epoch']}.pth")


def save_training_curves(history: History, figures_dir: Path | str) -> list[Path]:
    """Write the reference's ``loss_curve.png`` and ``val_accuracy_curve.png`` (matplotlib loads only here)."""
    import matplotlib.pyplot as plt

    from . import plots

    figures_dir = Path(figures_dir)
    written = []
    for name, draw in (("loss_curve.png", plots.plot_loss_curve), ("val_accuracy_curve.png",
                                                                   plots.plot_val_accuracy_curve)):
        fig = draw(history, figures_dir / name)
        plt.close(fig)  # saved, not shown: a notebook shows the curves when it asks for them
        written.append(figures_dir / name)
    return written


def fit_kind(history: History, gap: float = 0.1, floor: float = 0.8) -> str:
    """"under-fits" (training accuracy itself below ``floor``), "over-fits" (training accuracy ``gap`` or more above
    validation) or "fits", at the last epoch: the rule ``fit_verdict`` words, as a value a check can compare."""
    last = history.epochs[-1]
    if last["train_acc"] < floor:
        return "under-fits"
    return "over-fits" if last["train_acc"] - last["val_acc"] >= gap else "fits"


def fit_verdict(history: History, gap: float = 0.1, floor: float = 0.8) -> str:
    """A run in words, from its numbers (``fit_kind``). The epoch of the lowest validation loss says whether more
    epochs were still helping. The thresholds are rules of thumb for a lesson, not a test; the numbers beside the
    verdict are what to read."""
    last = history.epochs[-1]
    lowest = min(history.epochs, key=lambda row: row["val_loss"])
    rising = lowest is not last
    numbers = f"training accuracy {last['train_acc']:.2f}, validation {last['val_acc']:.2f} at the last epoch"
    kind = fit_kind(history, gap, floor)
    if kind == "under-fits":
        verdict = f"under-fitting: it does not even get its own training images right ({numbers})"
        verdict += (f"; validation loss lowest at epoch {lowest['epoch']} of {last['epoch']}, so more epochs alone "
                    "would not help: it needs more to learn from (images, or pretrained features)" if rising else
                    "; validation loss still falling at the last epoch, so it stopped before it was done")
    elif kind == "over-fits":
        verdict = f"over-fitting: it learns these images more than the task ({numbers})"
        verdict += (f"; validation loss lowest at epoch {lowest['epoch']} of {last['epoch']} and rising after it"
                    if rising else "; validation loss still lowest at the last epoch")
    else:
        verdict = f"fits and generalises ({numbers})"
    return verdict


def comparison_table(runs: Mapping[str, History]) -> str:
    """A Markdown table of the best epoch of each run, e.g. pretrained vs from scratch (notebook 02)."""
    lines = ["| run | best val acc | at epoch | final val acc | final train loss | s / epoch |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, history in runs.items():
        best, final = history.best(), history.epochs[-1]
        seconds = sum(history.column("seconds")) / len(history.epochs)
        lines.append(f"| {name} | {best['val_acc']:.3f} | {best['epoch']} | {final['val_acc']:.3f} | "
                     f"{final['train_loss']:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def build_parser(profile: Profile | str | None = None) -> argparse.ArgumentParser:
    """The reference's arguments and defaults (§3.2), then detectlib's optional ones. The model, image size and
    weights default to the profile's (``DETECTLIB_PROFILE``): in ``full`` exactly the reference's, convnext_tiny
    ImageNet-pretrained at 224 px; in ``demo`` what runs offline on a laptop."""
    prof = get_profile(profile)
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.train",
        description="Train a ConvNeXt (any timm model) to tell AI-generated images (ai) from real photos "
                    "(nature). Run it under `torchrun --nproc_per_node N` to train on N processes.",
    )
    add_reference_training_args(parser, batch_help="batch size per process")
    parser.add_argument("--model", default=None,
                        help=f"any timm model name (default: the {prof.name} profile's, {prof.convnext_model})")
    parser.add_argument("--img_size", type=int, default=prof.img_size,
                        help=f"input side in pixels (default: the {prof.name} profile's, %(default)s)")
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=prof.convnext_pretrained,
                        help=f"start from ImageNet weights (default: the {prof.name} profile's, %(default)s)")
    parser.add_argument("--weights", default=None, help="local .pth/.safetensors backbone weights (offline)")
    parser.add_argument("--input", choices=INPUTS, default="rgb",
                        help="what the network sees: the image (rgb) or its high-pass residual, the image minus its "
                             "x2 down-and-up copy (NPR-style; default: %(default)s)")
    parser.add_argument("--out_dir", default="models/saved_models", help="checkpoints (default: %(default)s)")
    parser.add_argument("--figures_dir", default="results/figures", help="curves (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from the last epoch_{N}.pth in --out_dir")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-loading processes (default: 4 with a GPU, 0 on the CPU)")
    add_strict(parser)
    return parser


def cli_model(args: argparse.Namespace, profile: Profile) -> tuple[str, dict]:
    """The model ``--model`` names, else the profile's with its overrides (the smoke profile's custom depths)."""
    if args.model is None:
        return profile.convnext_model, dict(profile.convnext_kwargs)
    return args.model, {}


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m detectlib.train``: the reference's training command. Errors are one line, exit code 2;
    unreadable images are skipped with a warning each and a summary (``--strict``: the first is an error)."""
    prof = get_profile()
    args = build_parser(prof).parse_args(argv)
    check_layout(args.data_dir)  # a wrong path answers before anything is printed or built
    model_name, model_kwargs = cli_model(args, prof)
    workers = args.workers if args.workers is not None else (min(4, os.cpu_count() or 1)
                                                              if torch.cuda.is_available() else 0)
    if distributed_context().is_main:
        print(profile_line(prof, f"{model_name} at {args.img_size} px, "
                                 f"{weights_source(model_name, args.pretrained, args.weights)}",
                           "convnext_tiny, ImageNet-pretrained, at 224 px", "--model, --img_size, --[no-]pretrained"),
              flush=True)
    try:
        result = train_convnext(
            args.data_dir, model_name=model_name, img_size=args.img_size, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, pretrained=args.pretrained, weights=args.weights,
            out_dir=args.out_dir, figures_dir=args.figures_dir, seed=args.seed, resume=args.resume,
            workers=workers, strict=args.strict, model_kwargs=model_kwargs, input=args.input,
        )
        if distributed_context().is_main:
            best = result.history.best()
            print(f"Best: epoch {best['epoch']}, val acc {best['val_acc']:.4f} -> {result.best_checkpoint}")
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
