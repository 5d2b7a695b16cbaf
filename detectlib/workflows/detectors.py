"""The detectors notebooks 04 to 07 use: those notebooks 02 and 03 saved, trained here first with the profile's
defaults when missing, so every lesson also runs on its own."""

from __future__ import annotations

from pathlib import Path

from ..config import Profile, get_paths, get_profile
from ..data.layout import discover_generators
from .wild_eval import training_free_path

TRANSFER_DETECTOR = "EfficientNet-Lite0 (pretrained)"


RESIDUAL_DETECTOR = "ConvNeXt, residual input"


TRAINING_FREE_DETECTOR = "training-free (noise sensitivity)"


def ensure_detectors(profile: Profile | str | None = None, *, training_free: bool = False) -> dict[str, Path]:
    """``{"ConvNeXt": best.pth, "CLIP head": clip_head.pth}``: the checkpoints notebooks 02 and 03 write, each
    trained first with the profile's defaults on the demo dataset's first generator when missing, so notebooks 04
    to 07 also run on their own. Notebook 02's residual-input ConvNeXt and fine-tuned pretrained
    EfficientNet-Lite0 join them when they are there, and with ``training_free`` so does notebook 05's tuned
    training-free detector (none of these is made here: each is its lesson's work; the training-free one costs a
    few forwards per image, so only the probe asks for it)."""
    from ..data.demo import ensure_demo_dataset
    from ..training.clip_head import train_clip_head
    from ..training.convnext import train_convnext

    profile = get_profile(profile)
    models = get_paths(profile).models
    convnext, head = models / "best.pth", models.parent / "clip_head" / "clip_head.pth"
    if not (convnext.is_file() and head.is_file()):
        raw = ensure_demo_dataset(profile)
        folder = raw / discover_generators(raw)[0]
        if not convnext.is_file():
            convnext = train_convnext(folder, profile=profile, progress=False).best_checkpoint
        if not head.is_file():
            head = train_clip_head(folder, profile=profile, progress=False).checkpoint_path
    found = {"ConvNeXt": convnext, "CLIP head": head}

    transfer, tuned = finetuned_checkpoint(profile), training_free_path(profile)
    residual = residual_checkpoint(profile)
    return (found | ({RESIDUAL_DETECTOR: residual} if residual.is_file() else {})
            | ({TRANSFER_DETECTOR: transfer} if transfer.is_file() else {})
            | ({TRAINING_FREE_DETECTOR: tuned} if training_free and tuned.is_file() else {}))


def residual_checkpoint(profile: Profile | str | None = None) -> Path:
    """Where notebook 02 saves the same ConvNeXt trained on the residual input (NPR-style high-pass)."""
    return get_paths(profile).models.parent / "residual" / "best.pth"


def finetuned_checkpoint(profile: Profile | str | None = None) -> Path:
    """Where notebook 02 saves its ImageNet-pretrained EfficientNet-Lite0 fine-tuned end to end: the frozen head's
    pretrained opponent (notebook 03); both start from pretrained features, though not from the same images or sizes."""
    return get_paths(profile).models.parent / "transfer" / "pretrained" / "best.pth"
