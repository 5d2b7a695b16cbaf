"""``python -m detectlib.train_clip_head``: the CLIP reference's training command (notebook 03).

    python -m detectlib.train_clip_head --data_dir data/raw/ADM

The encoder follows ``DETECTLIB_PROFILE`` (ViT-L/14 in ``full``, as the reference) and one line says which; the
reference's validation printout follows each run. The training is ``training.clip_head``.
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_reference_training_args, add_strict, command, profile_line
from .config import get_profile
from .data.layout import check_layout
from .training.clip_head import train_clip_head

# ------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The train CLI's argument names and defaults, plus the encoder, output folder and seed."""
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.train_clip_head",
        description="Train the CLIP reference's head (dropout -> linear -> 2*sigmoid-1, > 0 real) on a frozen "
                    "encoder's cached embeddings; writes clip_head.pth and modelo_final.pth.",
    )
    add_reference_training_args(parser)
    parser.add_argument("--encoder", default=None,
                        help="openai/clip-vit-large-patch14 or another CLIP name / local folder, timm:<name> "
                             "(timm:<name>:random for random weights), clip-tiny-random (default: the profile's)")
    parser.add_argument("--out_dir", default=None, help="where clip_head.pth and modelo_final.pth go "
                        "(default: models/clip_head)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--no_cache", action="store_true", help="run the encoder every epoch instead of caching")
    add_strict(parser)
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m detectlib.train_clip_head``. Bad input (dataset, image with ``--strict``, weights) is one line
    and exit 2, through ``cli.command``."""
    args = build_parser().parse_args(argv)
    check_layout(args.data_dir)  # before torch loads: a wrong path answers at once (cli.command: one line)
    prof = get_profile()
    print(profile_line(prof, f"frozen encoder {args.encoder or prof.encoder} "
                             f"({'as given' if args.encoder else 'the profile' + chr(39) + 's'})",
                       "openai/clip-vit-large-patch14", "--encoder"), flush=True)
    result = train_clip_head(args.data_dir, encoder=args.encoder, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, out_dir=args.out_dir, seed=args.seed,
                             use_cache=not args.no_cache, strict=args.strict)
    print(result.report())
    print(f"Saved {result.checkpoint_path} and {result.weights_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
