"""``python -m detectlib.readme``: write the README's in-the-wild block from the last run's ``results/wild.json``
(``make demo`` runs it last), and keep a copy beside the figures of the same run, ``figures/wild.json``, which the
test suite reads to check that the README still says what that run measured."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence

from .cli import command
from .config import get_paths
from .evaluation.wild_report import WILD_JSON, read_wild_json, replace_readme_block, wild_markdown
from .files import atomic_write


@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.readme [--check]``: fill (or, with ``--check``, compare) the README's WILD block."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when README.md differs from figures/wild.json instead of writing")
    args = parser.parse_args(argv)
    paths = get_paths()
    readme = paths.root / "README.md"
    source = paths.figures / WILD_JSON if args.check else paths.results / WILD_JSON
    report = read_wild_json(source)
    if report is None:
        raise FileNotFoundError(f"{source}: no WILD results; run notebook 04 (make demo) first")
    text = readme.read_text(encoding="utf-8")
    updated = replace_readme_block(text, wild_markdown(report))
    if args.check:
        print("README's WILD block is current" if updated == text else f"README's WILD block differs from {source}")
        return 0 if updated == text else 1
    atomic_write(readme, lambda tmp: tmp.write_text(updated, encoding="utf-8"))
    atomic_write(paths.figures / WILD_JSON, lambda tmp: shutil.copyfile(source, tmp))
    print(f"README.md's WILD block written from {source}; copy kept as {paths.figures / WILD_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
