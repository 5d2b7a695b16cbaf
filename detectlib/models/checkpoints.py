"""Self-describing, safe checkpoints: weights plus what they are (kind, arch, classes, input size, normalisation,
training config), written atomically and read with ``torch.load(weights_only=True)``, so loading one never runs
code. A bare state dict (the reference's ``modelo_final.pth``, or a ConvNeXt's ``model.state_dict()``) is described
by the registered kind that recognises it (``describe_bare_state_dict``): this module names no kind.

``DETECTORS`` (kind -> ``detector.Detector`` subclass, filled by ``detector.register``) lives here, below
``detector``, because reading a bare state dict asks each registered kind in turn; ``detector`` imports it from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import CLASSES, BadInputError
from ..files import atomic_write

CHECKPOINT_FORMAT = "detectlib-checkpoint/1"

# The registry of detector kinds, in registration order: kind -> its ``detector.Detector`` subclass, which owns its
# checkpoint format both ways (``checkpoint_meta`` to write, ``from_checkpoint`` to load, ``recognise_state_dict``
# for its bare state dicts). ``detector.register`` fills it; ``detector.DETECTORS`` is this dict.
DETECTORS: dict[str, Any] = {}


class CheckpointError(ValueError, BadInputError):
    """A checkpoint that cannot be loaded safely or does not fit; the message names the file and the fix."""


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

    ``train_state`` (optimizer and grad-scaler state dicts, for ``training.fit(resume=True)``) is stored untouched
    apart from moving tensors to the CPU: torch's own state dicts hold only types ``weights_only`` accepts.
    """
    payload = {"format": CHECKPOINT_FORMAT, **_plain(meta)}
    if train_state is not None:
        payload["train_state"] = _to_cpu(train_state)
    payload["state_dict"] = {k: v.detach().cpu() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


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


def _json_checkpoint(path: Path) -> dict[str, Any] | None:
    """A detector described by a JSON file alone (no weights: e.g. a training-free detector, whose encoder is named
    by its spec): the dict when it says ``"format": "detectlib-checkpoint/1"`` and a ``kind``, else None. Parsing
    JSON runs no code."""
    import json

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT and isinstance(obj.get("kind"), str):
        return obj
    return None


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint without executing code; a bare state dict (as the reference saved it) is described by the
    registered kind that recognises it (``describe_bare_state_dict``). A ``.json`` file saying
    ``"format": "detectlib-checkpoint/1"`` and a ``kind`` (a detector with no weights of its own, e.g.
    ``training_free``) loads as its dict.

    Three different failures, three different messages: a file that is not a checkpoint at all (an image, text,
    an empty or cut-short file), a checkpoint whose pickle would import code (refused: that is how a shared
    ``.pth`` runs a payload; nothing in it runs), and a readable file that is neither a detectlib checkpoint nor
    a state dict."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one first or check --model_path")
    kind = _sniff(path)
    if kind is not None and path.suffix.lower() == ".json":
        described = _json_checkpoint(path)
        if described is not None:
            return described
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
        try:
            return describe_bare_state_dict(obj)
        except CheckpointError as err:
            raise CheckpointError(f"{path}: {err}") from None
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


def describe_bare_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Wrap a bare state dict (weights with no description) so it loads like any other checkpoint: each registered
    kind is asked in turn (``recognise_state_dict``) and the first that knows it as its own describes it with its
    reference's defaults (a ConvNeXt: ConvNeXt-Tiny at 224 px; a CLIP head: the CLIP its width says). A state dict
    no kind recognises raises ``CheckpointError``."""
    for kind in DETECTORS.values():
        meta = kind.recognise_state_dict(state_dict)
        if meta is not None:
            return {"format": "bare-state-dict", **meta, "state_dict": state_dict}
    raise CheckpointError(f"a bare state dict ({len(state_dict)} tensors, e.g. {next(iter(state_dict), '')!r}) that "
                          f"no detector kind recognises as its own (known kinds: {', '.join(DETECTORS)}); "
                          "load it with the code that saved it, or save it again as a detectlib checkpoint")


def latest_checkpoint(checkpoint_dir: Path | str) -> Path | None:
    """The ``epoch_{N}.pth`` with the highest N, or None."""
    found = []
    for path in Path(checkpoint_dir).glob("epoch_*.pth"):
        number = path.stem.removeprefix("epoch_")
        if number.isdigit():
            found.append((int(number), path))
    return max(found)[1] if found else None
