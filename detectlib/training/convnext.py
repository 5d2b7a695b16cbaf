"""The ConvNeXt recipe (notebook 02, ``python -m detectlib.train``): a timm classifier fine-tuned end to end on a
reference-layout folder through ``loop.fit``, its checkpoints self-describing, its two curves saved as the
reference saves them; the words for what a run's history shows (``fit_kind``, ``fit_verdict``), and the settings
that make over-fitting visible (``overfit_recipe``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import CLASSES, Profile, get_paths, get_profile, seed_of
from ..data.datasets import image_datasets
from ..data.layout import LayoutError, check_layout, list_class_images
from ..models.classifier import TimmDetector, create_timm_model, normalisation_of
from ..models.memory import batch_for_gpu, gpu_memory_bytes, training_need
from ..plots import save_training_curves
from .distributed import distributed_context
from .loop import History, autocast_dtype, fit

# Decode every image once into memory when the uint8 tensors fit in this budget; bigger sets stream from disk.
PRELOAD_LIMIT_BYTES = 2 * 1024**3


# ---------------------------------------------------------------------------------------------- ConvNeXt


@dataclass
class TrainResult:
    """``train_convnext``'s answer: the model after the last epoch, its history and its checkpoints."""

    model: nn.Module
    history: History
    best_checkpoint: Path
    last_checkpoint: Path


def make_loaders(datasets: Mapping[str, Dataset], batch_size: int, workers: int = 0) -> dict[str, DataLoader]:
    """Shuffled training and ordered validation loaders; ``fit`` seeds the shuffle of every epoch. ``workers`` is
    capped at the CPUs this process may use: a free Colab runtime has 2, and more workers only compete for them."""
    workers = min(workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
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
    seed: int | None = None,
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
    seed = seed_of(seed)
    prof = get_profile(profile)
    paths = get_paths(prof)
    data_dir = check_layout(data_dir)
    model_name = model_name or prof.convnext_model
    if model_kwargs is None:
        model_kwargs = prof.convnext_kwargs if model_name == prof.convnext_model else {}
    img_size = img_size if img_size is not None else prof.img_size
    epochs = epochs if epochs is not None else prof.epochs
    asked_batch, batch_size = batch_size, batch_size if batch_size is not None else prof.batch_size
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
    if torch.cuda.is_available():  # a default batch too large for this GPU is lowered; an explicit one is refused
        batch_size = _batch_for_this_gpu(model, img_size, batch_size, explicit=asked_batch is not None,
                                         local_rank=ctx.local_rank, show=ctx.is_main)
    loaders = make_loaders(datasets, batch_size, workers)
    source = f"weights from {weights}" if weights else ("pretrained" if pretrained else "random init")
    if ctx.is_main:
        print(f"Training {model_name} ({source}) on {len(datasets['train'])} train / {len(datasets['val'])} val "
              f"images at {img_size} px{' (their residual)' if input == 'residual' else ''}: {epochs} epochs, batch {batch_size} x {ctx.world_size} process(es), "
              f"lr {lr:g} -> {out_dir}", flush=True)
    config = {"data_dir": str(data_dir), "profile": prof.name, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "pretrained": bool(pretrained or weights), "seed": seed, "world_size": ctx.world_size}
    meta = TimmDetector.checkpoint_meta(model, arch=model_name, model_kwargs=model_kwargs, img_size=img_size,
                                        mean=mean, std=std, input=input, config=config)
    history = fit(model, loaders["train"], loaders["val"], epochs=epochs, lr=lr, checkpoint_dir=out_dir,
                  checkpoint_meta=meta, resume=resume, seed=seed, progress=progress)
    if ctx.is_main:
        save_training_curves(history, figures_dir)
    return TrainResult(model, history, out_dir / "best.pth", out_dir / f"epoch_{history.epochs[-1]['epoch']}.pth")


def _batch_for_this_gpu(model: nn.Module, img_size: int, batch_size: int, *, explicit: bool, local_rank: int,
                        show: bool) -> int:
    """The batch ``batch_size`` becomes on this process's GPU (``models.memory.batch_for_gpu``), said when changed."""
    device = torch.device("cuda", local_rank)
    need = training_need(model, img_size, amp=autocast_dtype(device) is not None,
                         what=f"training {type(model).__name__} at {img_size} px")
    batch, note = batch_for_gpu(need, batch_size, gpu_memory_bytes(device), torch.cuda.get_device_name(device),
                                explicit=explicit)
    if note and show:
        print(f"note: {note}", flush=True)
    return batch


@dataclass(frozen=True)
class OverfitRecipe:
    """Settings under which a from-scratch network learns its training images by heart (notebook 02, section 5):
    ``n_per_class`` images per class, split and generator (``data.create_samples``), and ``train_kwargs`` for
    ``train_convnext``."""

    n_per_class: int
    epochs: int
    batch_size: int
    lr: float

    def train_kwargs(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}


def overfit_recipe(profile: Profile | str | None = None) -> OverfitRecipe:
    """The over-fitting demo's settings for a profile: few images (at most 10 per class, split and generator), many
    epochs (8 times the profile's), small batches, and a learning rate 0.3 times the profile's.

    Why these: with a few dozen images every weight update can serve one image, so the training loss can reach ~0;
    many epochs give it time to; the lower rate lets AdamW settle into that minimum instead of bouncing around it
    (at the profile's 1e-3 the demo's training loss stays noisy near 0.3 for 40 epochs); and the validation set is
    as small, so its loss, which rises as the network grows confident on what it memorised, is cheap to measure.
    Measured on the demo data (60 training images, seeds 0, 1, 2, about 1.5 s an epoch on one CPU thread): training
    loss 0.06, 0.001, 0.001 at epoch 40 while validation loss rose from its minimum (0.71, 0.72, 0.64, at epochs
    6, 2, 1) to 1.6, 2.4, 2.1; training accuracy 0.97-1.00, validation 0.48-0.62.
    """
    prof = get_profile(profile)
    n_per_class = min(10, prof.val_per_class) if prof.val_per_class else 10
    return OverfitRecipe(n_per_class=n_per_class, epochs=8 * prof.epochs, batch_size=8, lr=0.3 * prof.lr)


def _loss_turn(history: History, rise: float) -> tuple[dict, bool]:
    """The epoch of the lowest validation loss, and whether the curves have parted since: validation loss now at
    least ``rise`` (relative) above that minimum while training loss is below its value there."""
    last = history.epochs[-1]
    lowest = min(history.epochs, key=lambda row: row["val_loss"])
    parted = (last["val_loss"] >= (1.0 + rise) * lowest["val_loss"] and last["train_loss"] < lowest["train_loss"])
    return lowest, parted


def fit_kind(history: History, gap: float = 0.1, floor: float = 0.8, rise: float = 0.25) -> str:
    """"over-fits", "under-fits" or "fits", at the last epoch: the rule ``fit_verdict`` words, as a value a check
    can compare.

    Over-fitting is the gap between what a network does on its training images and on new ones, so the gap is read
    first: "over-fits" when training accuracy is ``gap`` or more above validation accuracy, or when the loss curves
    have parted (validation loss ``rise`` above its minimum while training loss kept falling: more confident on
    the training images, more confidently wrong on new ones). A low training accuracy alone says nothing: a
    network can learn its few training images half-way and still over-fit. "under-fits" only when training
    accuracy is below ``floor`` and neither sign of over-fitting is there: validation is about as good as
    training, and both are poor. "fits" otherwise.
    """
    last = history.epochs[-1]
    _, parted = _loss_turn(history, rise)
    if last["train_acc"] - last["val_acc"] >= gap or parted:
        return "over-fits"
    return "under-fits" if last["train_acc"] < floor else "fits"


def fit_verdict(history: History, gap: float = 0.1, floor: float = 0.8, rise: float = 0.25) -> str:
    """A run in words, from its numbers (``fit_kind``), with the signals that decided it. The epoch of the lowest
    validation loss says whether more epochs were still helping. The thresholds are rules of thumb for a lesson,
    not a test; the numbers beside the verdict are what to read."""
    last = history.epochs[-1]
    lowest, parted = _loss_turn(history, rise)
    rising = lowest is not last
    numbers = f"training accuracy {last['train_acc']:.2f}, validation {last['val_acc']:.2f} at the last epoch"
    kind = fit_kind(history, gap, floor, rise)
    if kind == "under-fits":
        verdict = (f"under-fitting: it does not even get its own training images right, and does about as well on new "
                   f"ones ({numbers})")
        verdict += (f"; validation loss lowest at epoch {lowest['epoch']} of {last['epoch']}, so more epochs alone "
                    "would not help: it needs more to learn from (images, or pretrained features)" if rising else
                    "; validation loss still falling at the last epoch, so it stopped before it was done")
    elif kind == "over-fits":
        verdict = f"over-fitting: it learns these images more than the task ({numbers}"
        verdict += (f", a gap of {last['train_acc'] - last['val_acc']:.2f})"
                    if last["train_acc"] - last["val_acc"] >= gap else ")")
        if parted:
            verdict += (f"; validation loss lowest at epoch {lowest['epoch']} of {last['epoch']} and rising after it "
                        f"({lowest['val_loss']:.3f} -> {last['val_loss']:.3f}) while training loss kept falling "
                        f"({lowest['train_loss']:.3f} -> {last['train_loss']:.3f})")
        else:
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
