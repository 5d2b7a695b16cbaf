"""``python -m detectlib.create_full_all``: the reference's ``scripts/create_full_all.py`` (§7.2).

Introduced in notebook 01. Merges every generator folder of ``--raw_dir`` (default ``data/raw``) into
``--out_dir`` (default ``data/raw/ALL_full``), files prefixed ``<GEN>_``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cli import run_cli
from .data.tools import create_full_all


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(create_full_all, argv, "python -m detectlib.create_full_all")


if __name__ == "__main__":
    raise SystemExit(main())
