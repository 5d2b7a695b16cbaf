"""Files the kit writes: one atomic writer for every file, one staged builder for every folder, and the reader of a
build's JSON record.

Every writer of the kit (checkpoints, embedding shards, CSVs, figures, overlays, dataset copies, manifests) goes
through ``atomic_write``: the bytes land under a temporary name in the destination's folder and one rename puts
them in place, so an interrupted run leaves the old file or the new one, never half of one. Every folder the kit
builds (the demo dataset's generators and control, WILD, the rebuilt CLIP, an unpacked archive) goes through
``build_folder`` for the same reason; ``move_file`` moves a finished file into place, across filesystems too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

BUILD_MARKER = "build.json"  # the default name of the record ``build_folder`` writes last into a folder


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


def move_file(src: Path | str, dst: Path | str) -> Path:
    """Move the file ``src`` to ``dst`` (replacing it); returns ``dst``. One rename where both are on one
    filesystem; across filesystems (a temporary folder on a tmpfs, ``EXDEV``) a copy under a temporary name beside
    ``dst`` renamed into place (``atomic_write``), then ``src`` removed: ``dst`` is never half a file."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        atomic_write(dst, lambda tmp: shutil.copy2(src, tmp))
        src.unlink()
    return dst


def read_json(path: Path) -> dict | None:
    """A build's JSON record, or None when it is missing or unreadable (the build is then not reused)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


Check = Callable[[Path, dict], object]  # (folder, its marker's record) -> whether every file of the build is there


def is_built(out: Path | str, settings: dict | None, *, marker: str = BUILD_MARKER,
             settings_key: str | None = "settings", complete: Check | None = None) -> bool:
    """True when ``out`` holds a finished ``build_folder`` build with these ``settings``.

    Its ``marker`` (a JSON record, written last) holds them under ``settings_key`` (``None``: at its top level, among
    the record's other entries), and ``complete(out, record)``, when given, agrees (e.g. every file the record
    counts is there; an error in it counts as no). With ``settings`` None there is no marker: a folder that
    exists is a finished build (it can only appear by a rename of a finished one).
    """
    out = Path(out)
    if settings is None:
        return out.is_dir()
    record = read_json(out / marker)
    if not isinstance(record, dict):
        return False
    if settings_key is None:
        if any(record.get(key) != value for key, value in settings.items()):
            return False
    elif record.get(settings_key) != settings:
        return False
    try:
        return complete is None or bool(complete(out, record))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def build_folder(out: Path | str, settings: dict | None, fill: Callable[[Path], dict | None], *, force: bool = False,
                 marker: str = BUILD_MARKER, settings_key: str | None = "settings", complete: Check | None = None,
                 owner: str | None = None, staging_in: Path | str | None = None) -> bool:
    """Build the folder ``out`` unless it is built already (``is_built``, same settings); True when this call's
    build was put in place. An interrupted build leaves the previous folder or none, never half of one.

    ``fill(staging)`` writes the folder's files into an empty staging folder (``.<name>.staging-<pid>``, per
    process, in ``staging_in``, default beside ``out``: one filesystem, so one rename puts it in place); the dict it
    returns is recorded in the ``marker`` beside the settings (``{settings_key: settings, **returned}``, or
    ``{**settings, **returned}`` with ``settings_key`` None), written last. Then the staging folder replaces
    ``out`` by renames. ``force`` rebuilds a finished folder. ``owner`` (e.g. ``"detectlib.wild"``): an ``out``
    without a readable marker was not built by the kit and is refused (``FileExistsError``), never replaced. A
    concurrent builder whose folder was put in place while this one was building is kept (False). The staging
    folder, and the parent folders this call made when they end up empty, are removed whatever happens.
    """
    out = Path(out)

    def check(folder: Path) -> bool:
        return is_built(folder, settings, marker=marker, settings_key=settings_key, complete=complete)

    if owner is not None and settings is not None and out.exists() and read_json(out / marker) is None:
        raise FileExistsError(f"{out} exists and was not built by {owner}; move it away or choose another root")
    if not force and check(out):
        return False
    marker_file = marker if settings is not None else None
    seen = _identity(out, marker_file)
    parent = Path(staging_in) if staging_in is not None else out.parent
    made = _make_dirs(parent)
    staging = parent / f".{out.name}.staging-{os.getpid()}"
    _remove(staging)  # what a killed process of the same id left
    try:
        staging.mkdir(parents=True)
        extra = fill(staging) or {}
        if settings is not None:
            record = {settings_key: settings, **extra} if settings_key is not None else {**settings, **extra}
            atomic_write(staging / marker, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
        made += _make_dirs(out.parent)
        return _swap_in(staging, out, check, marker_file, seen)
    finally:
        _remove(staging)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:  # not empty: something lives in it
                pass


def _swap_in(staging: Path, out: Path, check: Callable[[Path], bool], marker: str | None, seen: tuple | None) -> bool:
    """Replace ``out`` by the finished ``staging`` with renames; False (``staging`` unused) when a concurrent
    builder put a finished ``out`` in place since ``seen``. A failed rename puts the previous ``out`` back."""
    if check(out) and _identity(out, marker) != seen:
        return False
    stale = out.with_name(f".{out.name}.old-{os.getpid()}")
    _remove(stale)
    try:
        os.replace(out, stale)
    except FileNotFoundError:  # nothing to move aside
        pass
    try:
        os.replace(staging, out)
    except OSError:
        if check(out):  # a concurrent build was put in place in between: keep it
            return False
        if stale.exists() and not out.exists():
            os.replace(stale, out)
        raise
    finally:
        _remove(stale)
    return True


def _identity(out: Path, marker: str | None) -> tuple | None:
    """Which build ``out`` holds: its marker file's (or, without one, the folder's) device, inode and mtime."""
    try:
        st = os.stat(out / marker if marker is not None else out)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, outermost first."""
    made, path = [], folder
    while not path.exists() and path != path.parent:
        made.append(path)
        path = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made[::-1]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def slug(name: str) -> str:
    """A display name as a file-name part: ``"ConvNeXt, residual input"`` -> ``convnext_residual_input``. One file per
    detector *name*: two detectors of one kind (RGB and residual ConvNeXt) must not overwrite each other's figure."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unnamed"
