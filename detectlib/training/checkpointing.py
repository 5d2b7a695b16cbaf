"""How ``fit`` keeps its epochs: ``epoch_{N}.pth`` after every epoch, with the optimizer state so a run can resume
exactly, and ``best.pth`` for the best epoch so far; all self-describing through ``models.checkpoints``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import CLASSES
from ..models.checkpoints import (
    CheckpointError,
    check_compatible,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def clear_checkpoints(checkpoint_dir: Path) -> None:
    """A fresh run owns its folder: checkpoints of an earlier run would otherwise be resumed from, or mixed in."""
    old = [p for p in checkpoint_dir.glob("*.pth") if p.name == "best.pth" or p.stem.removeprefix("epoch_").isdigit()]
    for path in old:
        path.unlink()
    if old:
        print(f"New run in {checkpoint_dir}: removed {len(old)} checkpoint(s) of an earlier run "
              "(resume=True / --resume continues a run instead)", flush=True)


@dataclass
class EpochCheckpoints:
    """The checkpoints of one run in ``folder``. ``meta`` (kind, arch, classes, img_size, mean, std, config...)
    goes into each, so any of them loads on its own."""

    folder: Path
    meta: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def start(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              resume: bool, epochs: int, is_main: bool) -> tuple[list[dict], int]:
        """The rows of the epochs already run and the first epoch to run: with ``resume``, the latest
        ``epoch_{N}.pth``'s weights, optimizer and scaler state are loaded into the run's own; without, an
        earlier run's checkpoints are cleared (by rank 0)."""
        last = latest_checkpoint(self.folder) if resume else None
        if last is None:
            if is_main:
                clear_checkpoints(self.folder)
            return [], 1
        ckpt = load_checkpoint(last)
        if "train_state" not in ckpt:
            raise CheckpointError(f"{last}: holds no optimizer state, so training cannot resume from it")
        if "arch" in self.meta:
            check_compatible(ckpt, self.meta["arch"], self.meta.get("classes") or CLASSES, last)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise CheckpointError(f"{last}: its weights do not fit the model of this run ({lines[-1]}); was it "
                                  "trained with other --model options?") from None
        optimizer.load_state_dict(ckpt["train_state"]["optimizer"])
        scaler.load_state_dict(ckpt["train_state"]["scaler"])
        if is_main:
            print(f"Resuming from {last} (epoch {ckpt['epoch']} of {epochs})", flush=True)
        return list(ckpt["history"]), int(ckpt["epoch"]) + 1

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
             rows: list[dict], is_best: bool) -> None:
        """``epoch_{N}.pth`` for the epoch just recorded (the last of ``rows``), and ``best.pth`` when it is."""
        epoch = rows[-1]["epoch"]
        meta = {**self.meta, "epoch": epoch, "metrics": rows[-1], "history": rows, "seed": self.seed}
        save_checkpoint(self.folder / f"epoch_{epoch}.pth", model.state_dict(), **meta,
                        train_state={"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()})
        if is_best:
            save_checkpoint(self.folder / "best.pth", model.state_dict(), **meta)
