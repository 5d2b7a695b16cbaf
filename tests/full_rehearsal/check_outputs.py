"""After ``make test-full``'s notebooks: the reference's shapes on what the lessons wrote, one line per check.

Every cell running is not enough: a lesson could run in ``full`` on the wrong model and still pass. So this reads
the files the lessons leave under ``$DETECTLIB_ROOT`` (the rehearsal root) and asserts what the reference's users
rely on: the CLIP head's ``modelo_final.pth`` is a Linear 1024 -> 1 that loads in ``grpClasificador`` over the
``full`` encoder (ViT-L/14, 1024-d), and the ConvNeXt checkpoints are ``convnext_tiny`` with a 2-class head at
224 px. A file whose lesson was not in this run (``make test-full NOTEBOOKS=...``) is skipped, not failed.

    python tests/full_rehearsal/check_outputs.py [--cli-checkpoint PATH] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

CLIP_DIM = 1024  # CLIP ViT-L/14's pooled output, the reference head's input


CONVNEXT_FEATURES = 768  # convnext_tiny's last stage, the input of its head.fc


def first_val_image(raw: Path) -> Path:
    """An image the checks feed through each detector: the first ``ai`` image of the first generator's val."""
    from detectlib.data.layout import discover_generators, list_class_images

    return list_class_images(raw / discover_generators(raw)[0] / "val" / "ai")[0]


def check_clip_head(weights: Path, image: Path) -> str:
    """``modelo_final.pth`` holds the reference's head (Linear 1024 -> 1) and loads as the reference uses it,
    ``grpClasificador(weights_path=...)`` with the profile's encoder; one image gives one score in [-1, 1]."""
    from detectlib.config import get_profile
    from detectlib.data.images import load_image
    from detectlib.models import grpClasificador

    state = torch.load(weights, map_location="cpu", weights_only=True)
    head = {key: tuple(value.shape) for key, value in state.items() if key.startswith("head.")}
    assert head == {"head.1.weight": (1, CLIP_DIM), "head.1.bias": (1,)}, f"head tensors {head}, not a Linear 1024->1"
    model = grpClasificador(weights_path=weights).eval()
    encoder = model.encoder
    assert encoder.spec == get_profile().encoder and encoder.dim == CLIP_DIM, f"encoder {encoder.spec}, {encoder.dim}-d"
    assert torch.equal(model.head[1].weight, state["head.1.weight"].to(model.head[1].weight.dtype)), "weights not loaded"
    with torch.no_grad():
        score = model([load_image(image)])
    assert score.shape == (1,) and -1.0 <= float(score) <= 1.0, f"score {score}"
    return (f"Linear {CLIP_DIM}->1, loads in grpClasificador over {encoder.spec} ({encoder.dim}-d, "
            f"{encoder.input_size} px); score {float(score):+.3f} (meaningless)")


def check_convnext(checkpoint: Path, image: Path) -> str:
    """A ConvNeXt checkpoint is the reference's model: ``convnext_tiny`` (no custom depths), classes ai/nature,
    224 px, a 2 x 768 head; it loads as a detector and scores one image."""
    from detectlib.config import CLASSES
    from detectlib.data.images import load_image
    from detectlib.models import load_checkpoint, load_detector

    ckpt = load_checkpoint(checkpoint)
    described = {"arch": ckpt["arch"], "model_kwargs": ckpt.get("model_kwargs") or {},
                 "classes": tuple(ckpt["classes"]), "img_size": ckpt["img_size"],
                 "head": tuple(ckpt["state_dict"]["head.fc.weight"].shape)}
    expected = {"arch": "convnext_tiny", "model_kwargs": {}, "classes": CLASSES, "img_size": 224,
                "head": (len(CLASSES), CONVNEXT_FEATURES)}
    assert described == expected, f"{described}, expected {expected}"
    p_ai = load_detector(checkpoint).score_images([load_image(image)])
    assert p_ai.shape == (1,), f"p(ai) shape {p_ai.shape}"
    return f"convnext_tiny, classes {'/'.join(CLASSES)}, 224 px, head 2x{CONVNEXT_FEATURES}; p(ai) {float(p_ai[0]):.3f} (meaningless)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="the notebooks run (default: all, so every file is required)")
    parser.add_argument("--cli-checkpoint", type=Path, help="best.pth of `python -m detectlib.train --weights ...`")
    parser.add_argument("--cli-clip-head", type=Path, help="modelo_final.pth of `python -m detectlib.train_clip_head`")
    args = parser.parse_args(argv)
    from detectlib.config import get_paths, get_profile
    from detectlib.models.clip_head import REFERENCE_WEIGHTS

    profile = get_profile()
    if profile.name != "full":
        print(f"error: run under DETECTLIB_PROFILE=full (got {profile.name})", file=sys.stderr)
        return 2
    paths = get_paths(profile)
    image = first_val_image(paths.raw)
    ran = {Path(notebook).stem for notebook in args.notebooks}
    # (what, file, the lesson that writes it (None: the Makefile always does), check); paths as the lessons write
    # them (``workflows.ensure_detectors`` reads the same two).
    checks: list[tuple[str, Path | None, str | None, Callable[[Path, Path], str]]] = [
        ("CLIP head modelo_final.pth", paths.models.parent / "clip_head" / REFERENCE_WEIGHTS, "03_train_clip_head",
         check_clip_head),
        ("ConvNeXt best.pth", paths.models / "best.pth", "02_train_convnext", check_convnext),
        ("ConvNeXt via --weights", args.cli_checkpoint, None, check_convnext),
        ("CLIP head via train_clip_head", args.cli_clip_head, None, check_clip_head),
    ]
    failed = 0
    for what, path, lesson, check in checks:
        if path is None:
            continue
        if not path.is_file() and args.notebooks and lesson is not None and lesson not in ran:
            print(f"skip  {what}: {path} not written; lesson {lesson} was not in this run")
            continue
        try:
            assert path.is_file(), f"{path} not written"
            print(f"ok    {what}: {check(path, image)}")
        except Exception as err:  # one line per check, whatever broke, and the other checks still run
            failed += 1
            print(f"FAIL  {what}: {type(err).__name__}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
