"""``python -m detectlib.bench`` (``make bench``): the kit's speed and memory measured as ratios within one run.

Measures in the ``demo`` profile; ``--quick`` runs a tiny configuration (what the tests use); ``--full`` also times a
fresh clone's set-up, ``make demo`` and ``make test``. The measures themselves live in ``workflows.bench``; this
module is the command line and its printed table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .config import get_paths, get_profile
from .labels import format_table
from .workflows.bench import record_results, run_bench


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measure (value, goal, whether it is met) for ``labels.format_table``."""
    rows = []
    for key, entry in results.items():
        value = entry["value"]
        shown = (", ".join(f"{k}: {v:.1f}" for k, v in value.items()) if isinstance(value, dict)
                 else "skipped" if value is None else value)
        rows.append({"measure": key, "value": shown, "goal": entry.get("goal", ""),
                     "met": {True: "yes", False: "NO"}.get(entry.get("met"), "")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectlib.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="profile to measure (default: demo; smoke with --quick)")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (smoke profile) for the tests")
    parser.add_argument("--full", action="store_true", help="also time set-up, make demo and make test")
    parser.add_argument("--out", default=None, help="JSON output (default: <results>/bench.json)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile or ("smoke" if args.quick else "demo"))
    results = run_bench(profile, full=args.full, log=lambda m: print(f"[bench] {m}", flush=True))
    out = Path(args.out) if args.out else get_paths(profile).results / "bench.json"
    record_results(results, out, profile.name)
    print(format_table(result_rows(results)))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
