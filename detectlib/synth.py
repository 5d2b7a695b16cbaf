"""``python -m detectlib.synth``: build the embedded demo dataset of the profile (``make demo`` runs it first).
What it builds and why is ``data.demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import command
from .data.demo import build_demo_dataset


# ------------------------------------------------------------------------------------------------------ CLI
@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.synth [--profile demo] [--force] [--seed 0] [--root DIR]``: build the demo set."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.synth", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default=None, help="smoke, demo or full (default: $DETECTLIB_PROFILE or demo)"
    )
    parser.add_argument(
        "--root", default=None, help="where the generator folders go (default: the profile's raw/)"
    )
    parser.add_argument("--seed", type=int, default=None, help="default: $DETECTLIB_SEED, else 0")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when a build with these settings exists"
    )
    args = parser.parse_args(argv)
    try:
        build_demo_dataset(args.profile, args.root, seed=args.seed, force=args.force)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
