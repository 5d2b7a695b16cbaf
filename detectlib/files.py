"""Files the kit writes: one atomic writer for every file, and the reader of a build's JSON record.

Every writer of the kit (checkpoints, embedding shards, CSVs, figures, overlays, dataset copies, manifests) goes
through ``atomic_write``: the bytes land under a temporary name in the destination's folder and one rename puts
them in place, so an interrupted run leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path | str, fill: Callable[[Path], object]) -> Path:
    """Write ``path`` by calling ``fill`` on a temporary path beside it, then rename; returns ``path``.

    The temporary name ends in ``.tmp``, so a ``fill`` whose library picks the format from the suffix (PIL,
    matplotlib) must name the format. Parents are created; on any failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fill(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_json(path: Path) -> dict | None:
    """A build's JSON record, or None when it is missing or unreadable (the build is then not reused)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def slug(name: str) -> str:
    """A display name as a file-name part: ``"ConvNeXt, residual input"`` -> ``convnext_residual_input``. One file per
    detector *name*: two detectors of one kind (RGB and residual ConvNeXt) must not overwrite each other's figure."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unnamed"
