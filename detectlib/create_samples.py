"""``python -m detectlib.create_samples``: the reference's ``scripts/create_samples.py`` (§7.1).

Introduced in notebook 01. Samples ``--n_per_class`` images per generator, split and class from ``--raw_dir``
(default ``data/raw``) into ``--out_dir`` (default ``data/samples/ALL``), files prefixed ``<GEN>_``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cli import run_cli
from .data.tools import create_samples


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(create_samples, argv, "python -m detectlib.create_samples")


if __name__ == "__main__":
    raise SystemExit(main())
