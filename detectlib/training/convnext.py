"""The ConvNeXt recipe (notebook 02, ``python -m detectlib.train``): a timm classifier fine-tuned end to end on a
reference-layout folder through ``loop.fit``, its checkpoints self-describing, its two curves saved as the
reference saves them; and the words for what a run's history shows (``fit_kind``, ``fit_verdict``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import CLASSES, Profile, get_paths, get_profile
from ..data.datasets import image_datasets
from ..data.layout import LayoutError, check_layout, list_class_images
from ..models.classifier import create_timm_model, normalisation_of
from ..plots import save_training_curves
from .distributed import distributed_context
from .loop import History, fit

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
    prof = get_profile(profile)
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
