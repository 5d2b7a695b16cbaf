"""The one interface every detector is scored through, and the registry of detector kinds.

A checkpoint names its ``kind``; ``load_detector`` looks the kind up in ``DETECTORS`` and lets that class rebuild
itself. Each kind is a subclass of ``Detector`` that owns everything particular to it: how its model's output
becomes class scores and p(ai), which module Grad-CAM hooks, what part of an image it sees, and its checkpoint
format in both directions: ``checkpoint_meta`` (the description its checkpoints carry, which training recipes
save), ``from_checkpoint`` (the detector a checkpoint describes) and ``recognise_state_dict`` (its own bare state
dict, with no description, which ``checkpoints.describe_bare_state_dict`` asks every registered kind about). So
evaluation, explanations, widgets and checkpoints treat every detector alike, and another detector is one new module
with one ``@register`` (``classifier``, ``clip_head`` and ``training_free`` are; importing ``detectlib.models``
imports all three).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..config import CLASSES
from .checkpoints import DETECTORS, CheckpointError, load_checkpoint


@dataclass
class Detector:
    """A trained detector behind one interface: preprocessed images in, p(ai) out.

    A subclass per ``kind`` (the string its checkpoints carry) says how its model's output becomes the two class
    scores (``class_scores``, what Grad-CAM differentiates) and how those become p(ai) (``p_ai_from_scores``), the
    one scale metrics and thresholds use.
    """

    kind: ClassVar[str] = ""
    model: nn.Module
    transform: Any  # PIL image -> float tensor (C, H, W)
    classes: Sequence[str] = CLASSES
    meta: dict = field(default_factory=dict)

    @classmethod
    def checkpoint_meta(cls, model: nn.Module | None = None, **settings: Any) -> dict[str, Any]:
        """What a checkpoint of this kind carries besides its weights, from the trained ``model`` and the run's
        ``settings``: ``"kind"`` first, then every key ``from_checkpoint`` reads. Pass it to
        ``checkpoints.save_checkpoint`` with the weights (``save_checkpoint(path, weights, **meta)``)."""
        raise NotImplementedError(f"{cls.__name__}: kind {cls.kind!r} does not say how to describe its checkpoints")

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> Detector:
        """The detector a loaded checkpoint of this kind describes."""
        raise NotImplementedError

    @classmethod
    def recognise_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
        """When a bare state dict (weights saved with no description) is this kind's own, the description its
        checkpoint would carry, with the defaults of the kind's reference (the weights aside); else None. The
        default recognises nothing (a kind whose files hold no weights)."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def class_scores(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, 2)`` class logits in ``CLASSES`` order for a preprocessed batch."""
        raise NotImplementedError

    def p_ai_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """p(ai) from ``class_scores`` already computed."""
        raise NotImplementedError

    @property
    def cam_backbone(self) -> nn.Module:
        """The network whose named layers Grad-CAM may hook."""
        return self.model

    @property
    def frozen_encoder(self) -> nn.Module | None:
        """A frozen encoder in front of the rest, whose embeddings can be cached; None for a model trained whole."""
        return None

    def view(self, image: Image.Image) -> Image.Image:
        """The part of ``image`` the model sees, at full resolution (the whole image unless a kind crops)."""
        return image

    def reference_score(self, p_ai: float) -> float | None:
        """The score the kind's reference prints for this p(ai), when it has one of its own."""
        return None

    def model_text(self) -> str:
        """What the checkpoint holds, in words (for ``describe``)."""
        raise NotImplementedError

    def p_ai(self, batch: torch.Tensor) -> torch.Tensor:
        """Probability of the ``ai`` class for a preprocessed batch."""
        with torch.inference_mode():
            return self.p_ai_from_scores(self.class_scores(batch.to(self.device)))

    def describe(self) -> str:
        """One line for the command lines: what the checkpoint holds and where its weights come from. The model
        is the checkpoint's, whatever ``DETECTLIB_PROFILE`` says, and the line says so."""
        return f"model: {self.model_text()}; the checkpoint decides the model, not DETECTLIB_PROFILE"

    def trained_in(self) -> str:
        """``", trained in the demo profile"`` when the checkpoint records its profile, else empty."""
        config = self.meta.get("config") or {}
        return f", trained in the {config['profile']} profile" if config.get("profile") else ""

    def score_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        """p(ai) for a list of PIL images."""
        scores = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.transform(im) for im in images[start:start + batch_size]])
            scores.append(self.p_ai(batch).cpu())
        return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a ``Detector`` subclass loadable from checkpoints of its ``kind`` and asked, after the
    kinds registered before it, whether a bare state dict is its own (``DETECTORS``, kept in ``checkpoints``)."""
    if not cls.kind or cls.kind in DETECTORS:
        raise ValueError(f"{cls.__name__}: a detector kind needs a name no other kind has, got {cls.kind!r}")
    DETECTORS[cls.kind] = cls
    return cls


def load_detector(path: Path | str, device: str | torch.device | None = None) -> Detector:
    """Any detector from its checkpoint, recognised by the checkpoint's ``kind``. A checkpoint whose classes
    are not detectlib's (``ai``, ``nature``, in that order) is refused: its scores would mean something else."""
    ckpt = load_checkpoint(path)
    if list(ckpt.get("classes") or CLASSES) != list(CLASSES):
        raise CheckpointError(f"{path}: trained for classes {list(ckpt['classes'])}, but detectlib scores classes "
                              f"{list(CLASSES)} (ai = 0, nature = 1); retrain it on the reference layout")
    if ckpt["kind"] not in DETECTORS:
        raise CheckpointError(f"{path}: unknown detector kind {ckpt['kind']!r}; this detectlib knows "
                              f"{', '.join(sorted(DETECTORS))}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    detector = DETECTORS[ckpt["kind"]].from_checkpoint(ckpt)
    detector.model.to(device).eval()
    return detector
