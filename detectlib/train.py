"""``python -m detectlib.train``: the reference's training command for the ConvNeXt detector (notebook 02).

    python -m detectlib.train --data_dir data/raw/ADM
    torchrun --standalone --nproc_per_node 4 -m detectlib.train --data_dir data/raw/ALL_full

The model, size and weights follow ``DETECTLIB_PROFILE`` (``full`` is exactly the reference's) and one line says
which. The recipe is ``training.convnext``, the loop ``training.loop``.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from .cli import add_reference_training_args, add_strict, command, profile_line
from .config import Profile, get_profile
from .data.layout import check_layout
from .data.transforms import INPUTS
from .models.classifier import weights_source
from .training.convnext import train_convnext
from .training.distributed import distributed_context

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
