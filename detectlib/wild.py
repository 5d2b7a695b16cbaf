"""``python -m detectlib.wild``: build WILD, real text-to-image outputs against real photographs, offline
(``make demo`` runs it). What goes in and how both classes are processed alike is ``data.wild``."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence

from .cli import command
from .data.images import is_image_file
from .data.wild import audit_wild, build_wild, load_wild, read_sources, scan_installed


# ------------------------------------------------------------------------------------------------------- CLI
@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.wild [--profile demo] [--root DIR] [--force] [--no-fetch] [--scan]``: build WILD."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.wild", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke, demo or full (default: $DETECTLIB_PROFILE or demo)")
    parser.add_argument("--root", default=None, help="project root to build under (default: this project)")
    parser.add_argument("--seed", type=int, default=0, help="which images a per-class limit keeps (default: 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a build with these settings exists")
    parser.add_argument("--no-fetch", action="store_true",
                        help="never run apt-get: read only installed or cached Debian packages")
    parser.add_argument("--scan", action="store_true",
                        help="list what the name rule keeps in the installed template packages, and files the "
                             "source table does not know, then exit")
    args = parser.parse_args(argv)
    if args.scan:
        known = {s.member.rsplit("/", 1)[-1] for s in read_sources()}
        for module, verdicts in scan_installed().items():
            if verdicts is None:
                print(f"{module}: not installed")
                continue
            for path, keep, reason in verdicts:
                flag = "" if path.name in known or not is_image_file(path) else "  (not in wild_sources.csv)"
                print(f"{'keep' if keep else 'drop'}  {path.name}: {reason}{flag}")
        return 0
    out = build_wild(args.profile, args.root, seed=args.seed, force=args.force, fetch_debs=not args.no_fetch)
    images = load_wild(out)
    by_family: dict[str, int] = defaultdict(int)
    for image in images:
        if image.label == 0:
            by_family[image.family] += 1
    print(f"{len(images)} images; fakes per family: " + ", ".join(f"{k} {v}" for k, v in sorted(by_family.items())))
    audit = audit_wild(out)
    print("audit: " + ("; ".join(audit.warnings) if audit.warnings else "no format, size or quality difference "
                       "between the classes"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
