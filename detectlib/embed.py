"""``python -m detectlib.embed``: a dataset folder embedded into the embedding cache once, on one process or many.

    python -m detectlib.embed data/raw/GEN                 # a split tree GEN/{train,val}/{ai,nature}
    python -m detectlib.embed data/raw/GEN/val             # one split folder {ai,nature}
    torchrun --standalone --nproc_per_node 2 -m detectlib.embed data/raw/GEN

What is already cached is never encoded again; the sharding and the merge are ``workflows.embedding``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import add_strict, command
from .config import get_profile
from .data.layout import dataset_samples
from .models.features import embedding_cache
from .workflows.embedding import embed_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detectlib.embed", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("folder", help="a split folder {ai,nature} or a split tree {train,val}/{ai,nature}")
    parser.add_argument("--encoder", default=None, help="encoder spec (default: the profile's)")
    parser.add_argument("--cache", default=None, help="cache folder (default: the profile's cache/embeddings)")
    parser.add_argument("--batch_size", type=int, default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of each class of each split")
    add_strict(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = get_profile()
    folder = Path(args.folder)
    dataset_samples(folder, 0)  # a wrong folder fails here, before the encoder is loaded
    from .models.encoders import make_encoder

    encoder = make_encoder(args.encoder or profile.encoder)
    cache = Path(args.cache) if args.cache else embedding_cache(profile)
    report = embed_dataset(folder, encoder, cache, batch_size=args.batch_size, limit=args.limit,
                           strict=args.strict, progress=True)  # another version's cache: cli.command says one line
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{folder} with {encoder.spec}: {report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
