"""WILD: real text-to-image outputs of current models against real photographs, processed alike.

Used by the evaluation lessons. The demo dataset's fakes come from small generators trained here; WILD asks the
question a user cares about: does a detector catch what FLUX, SDXL, Qwen-Image or GPT-image make, without calling
real photos fake? Everything is read offline from installed packages and listed, one row per source considered,
in the committed table ``wild_sources.csv`` (what each file is, which model made it, its licence, and why a file
was left out).

* **ai**: the preview images that Comfy Org ships with its workflow templates (the pip packages
  ``comfyui-workflow-templates-media-image`` and ``-media-api``, MIT, data only). Only genuine text-to-image
  outputs are kept: audio, 3D and video workflows, animated previews, and every workflow that takes an image in
  (edit, ControlNet, inpaint, outpaint, upscale, image-to-image) are dropped, because their pictures may be the
  *inputs* (depth or edge maps, or real photos). A look at every candidate dropped a few more: provider logos
  pasted on the preview (a label leak), vector art, and a workflow whose model is not documented.
* **nature**: ordinary photographs of scenes taken by a camera, from scikit-image, scikit-learn and matplotlib,
  and from Debian's wallpaper packages (``mate-backgrounds``, ``plasma-workspace-wallpapers``,
  ``lomiri-wallpapers-16.04`` and ``-20.04``). A Debian package is read where it is installed; otherwise
  ``apt-get download`` fetches it into a cache (``~/.cache/detectlib/debs`` or ``$DETECTLIB_DEBS``) and
  ``dpkg-deb -x`` unpacks it there, never system-wide. Where neither works the build says what is missing and
  goes on with what there is.

**One processing for both classes** (``process_source``). The fakes arrive as lossy WebP previews of 300 to 1024 px,
the photos as JPEGs and PNGs of 300 to 5300 px: left as they are, a detector learns the file, not the generator.
So every kept source, real or AI, goes through the same steps:

1. decode (a big JPEG is decoded near the size needed with ``Image.draft``), EXIF orientation applied, RGB;
2. cut a square: the centre square of the whole image (crop 0). Photos large enough also give four detail squares
   (crops 1-4) in the corners of that centre square, each 1/``DETAIL_ZOOM`` (2/3) of its side;
3. resize the square to ``PRESCALE`` x ``wild_size`` (280 px for 224) with Lanczos: the same pre-scale for both
   classes, and never an upscale (a source too small for it is left out, and said);
4. a WebP round trip at quality ``MID_QUALITY`` (90, about the quality of the previews): every image, real or
   fake, now carries the same lossy history at the same scale, so WebP's smoothing and 4:2:0 colour cannot mark
   the fakes;
5. resize to ``wild_size`` with Lanczos (one filter, the same 1.25x shrink for every image), and save as JPEG
   quality ``OUT_QUALITY`` (90, 4:2:0, no metadata): the codec most real-world images meet last (social media,
   messengers), which puts the same 8x8 grid on both classes. (WebP as the last codec would be the fakes' own.)

Why a fixed pre-scale and a small zoom. A 2560 px photo shrunk to 224 px in one step loses 11 pixels in 12 and
comes out cleaner than a 400 px preview shrunk 1.8x: how much an image was shrunk becomes the label. Through
steps 3-5 the last resampling and the last two codecs are identical for every image. The detail crops zoom in
only 1.5x: at 2x (quadrants) the photos' own softness (focus, optics) showed. Measured on the demo build (medians
over images): 8x8 blockiness 1.08 for fakes, 1.09 for whole photos, 1.09 at 1.5x zoom, 1.14 at 2x; share of
spectral energy above a quarter of the sampling rate 0.069, 0.069, 0.066, 0.055.

Both classes then have one size, one codec, one quality and one resampling history; ``audit_wild`` checks it with
the dataset audit. What is left differs by source, not by file: content (previews are portraits, posters and
product shots; the photos are nature, objects and landscapes, with less fine texture), which a probe trained on
few photos can learn. The ``style`` column marks photoreal fakes against illustrations and posters so that an
evaluation can report both, and ``group`` keeps every crop of one photo together when splitting.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import CLASSES, Profile, get_paths, get_profile
from ..files import read_json
from .images import check_file, is_image_file, load_image
from .layout import LayoutError, swap_in_folder

BUILD_VERSION = 1  # bump when a change to this module changes the images it writes


SOURCES_CSV = Path(__file__).with_name("wild_sources.csv")


MANIFEST = "manifest.csv"


SETTINGS = "wild_build.json"


MANIFEST_COLUMNS = ("file", "label", "generator", "model", "family", "release_year", "style", "group", "crop", "source")


PRESCALE = 1.25  # every square is first resized to PRESCALE x wild_size, the same for both classes


DETAIL_CROPS = (1, 2, 3, 4)  # the corners of the centre square: top-left, top-right, bottom-left, bottom-right


DETAIL_ZOOM = 1.5  # a detail square's side is the centre square's divided by this


RESAMPLE = Image.Resampling.LANCZOS  # the one resampling filter


MID_FORMAT, MID_QUALITY = "WEBP", 90  # the compression equaliser at the pre-scale


OUT_FORMAT, OUT_QUALITY, OUT_SUBSAMPLING, OUT_EXT = "JPEG", 90, "4:2:0", ".jpg"


DRAFT_HEADROOM = 2  # a JPEG is decoded at no less than twice the size its squares need


COMFY_MODULES = ("comfyui_workflow_templates_media_image", "comfyui_workflow_templates_media_api")


DEBS_ENV = "DETECTLIB_DEBS"


APT_TIMEOUT_S = 900


# ------------------------------------------------------------------------------------------ the fakes' filter
_AUDIO = {"audio", "speech", "voice", "music", "song", "sound", "elevenlabs", "dialogue"}


_VIDEO = {"video", "i2v", "t2v", "v2v", "r2v", "flf2v", "flf", "wan2", "ltxv", "veo2", "veo3", "hailuo", "pixverse",
          "vidu", "runway_gen3a", "animate"}


_THREE_D = {"3d", "hunyuan3d", "multiview", "model", "mesh", "meshy", "tripo", "rodin", "trellis"}


_IMAGE_IN = {"edit", "editing", "i2i", "controlnet", "control", "canny", "depth", "blur", "inpaint", "inpainting",
             "outpaint", "outpainting", "fill", "expand", "upscale", "upscaler", "enhance", "fix", "relight",
             "redux", "revision", "kontext", "remix", "reference", "ref", "style", "transfer", "migration", "swap",
             "layered", "lotus", "angles", "patch", "uso", "multi", "inputs", "effects", "variations", "combine",
             "photo", "e1"}  # a photo goes in; HiDream-E1 is HiDream's edit model


_IMAGE_IN_PREFIXES = ("edit", "upscal", "enhanc", "inpaint", "outpaint", "control")


_VECTOR = {"vector", "svg"}


def _tokens(workflow: str) -> list[str]:
    return [t for t in re.split(r"[_\-.\s]+", workflow.lower()) if t]


def workflow_name(filename: str) -> str:
    """``flux_schnell-1.webp`` -> ``flux_schnell``: a template preview is named ``<workflow>-<n>.<ext>``."""
    return re.sub(r"-\d+$", "", Path(filename).stem)


def template_verdict(filename: str, image: Image.Image | None = None) -> tuple[bool, str]:
    """``(keep, reason)`` for one template preview, from its name and (when given) the opened image.

    The rule that decides which previews can be genuine text-to-image outputs. A workflow that takes an image in
    is dropped even when its name also says text-to-image: one of its previews may be the input (a depth map, an
    edge map, a real photo). Animated previews are video or 3D turntables. What the rule keeps is a *candidate*:
    ``wild_sources.csv`` records the final decision after a look at each one.
    """
    if not is_image_file(filename):
        return False, "not an image file (audio or data)"
    name = workflow_name(filename)
    tokens = set(_tokens(name))
    low = name.lower()
    if image is not None and (getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1):
        return False, "animated: a video or 3D turntable thumbnail, not one generated image"
    if low.startswith("audio_") or tokens & _AUDIO:
        return False, "audio workflow: the picture is a cover, not a generation of interest"
    if low.startswith(("3d_", "api_hunyuan3d", "api_tripo", "api_meshy", "api_rodin")) or tokens & _THREE_D:
        return False, "3D workflow: the picture is a render of a mesh or its input"
    if low.startswith("video_") or tokens & _VIDEO:
        return False, "video workflow: the still is a frame or an input"
    if low.startswith(("template", "utility")) or ".app" in low:
        return False, "an app or utility template: a multi-step pipeline whose pictures are inputs and steps"
    if tokens & _VECTOR:
        return False, "vector graphics, not a raster generation"
    words = _tokens(name)
    to_target = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "to"]
    if (tokens & _IMAGE_IN or any(t.startswith(_IMAGE_IN_PREFIXES) for t in tokens)
            or any(t not in ("image", "img") for t in to_target)):
        return False, "image-conditioned (edit / ControlNet / inpaint / outpaint / upscale / image-to-X): " \
                      "its pictures may be inputs"
    return True, "text-to-image candidate (by name)"


def templates_folder(module: str) -> Path | None:
    """The ``templates/`` folder of an installed Comfy template package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "templates"
    return folder if folder.is_dir() else None


def scan_templates(folder: Path | str) -> list[tuple[Path, bool, str]]:
    """``(path, keep, reason)`` for every file of a templates folder under ``template_verdict``: the tool for
    reviewing a new package version against ``wild_sources.csv``."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        if not is_image_file(path):
            out.append((path, *template_verdict(path.name)))
            continue
        try:
            with Image.open(path) as im:
                out.append((path, *template_verdict(path.name, im)))
        except (OSError, ValueError) as err:
            out.append((path, False, f"unreadable ({err})"))
    return out


def scan_installed(modules: Sequence[str] = COMFY_MODULES) -> dict[str, list[tuple[Path, bool, str]] | None]:
    """``scan_templates`` of each installed template package (``None`` for one that is not installed)."""
    out: dict[str, list[tuple[Path, bool, str]] | None] = {}
    for module in modules:
        folder = templates_folder(module)
        out[module] = None if folder is None else scan_templates(folder)
    return out


# ------------------------------------------------------------------------------------------ the source table
@dataclass(frozen=True)
class Source:
    """One row of ``wild_sources.csv``: one source image considered, kept or not, and why."""

    source: str  # "pip:<distribution>:<path inside site-packages>" or "deb:<package>:<absolute path>"
    label: str  # "ai" or "nature"
    generator: str  # the workflow for fakes, the package for photos
    model: str
    family: str
    release_year: str  # the model's year (fakes) or the photo's (reals), or "unknown"
    year_basis: str  # model: the model's public release; template: the year Comfy added the template; copyright
    style: str  # photo, photoreal, illustration or poster
    text_to_image: str
    keep: str
    reason: str
    licence: str
    credit: str
    group: str  # the photo for reals (all its crops share it), the generator for fakes
    sha256: str

    @property
    def kind(self) -> str:
        return self.source.split(":", 2)[0]

    @property
    def package(self) -> str:
        return self.source.split(":", 2)[1]

    @property
    def member(self) -> str:
        return self.source.split(":", 2)[2]

    @property
    def kept(self) -> bool:
        return self.keep == "yes"

    @property
    def year(self) -> int | None:
        return int(self.release_year) if self.release_year.isdigit() else None


def read_sources(path: Path | str = SOURCES_CSV) -> list[Source]:
    """Every row of the source table; a malformed table is a one-line ``ValueError``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = [f.name for f in Source.__dataclass_fields__.values()]
    try:
        sources = [Source(**{k: row[k] for k in names}) for row in rows]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a WILD source table (missing column {err}); columns: "
                         f"{', '.join(names)}") from None
    bad = [s.source for s in sources if s.label not in CLASSES or s.kind not in ("pip", "deb")]
    if bad:
        raise ValueError(f"{path}: rows with an unknown label or source kind: {', '.join(bad[:5])}")
    return sources


# ----------------------------------------------------------------------------------------- finding the files
def debs_cache() -> Path:
    """Where fetched Debian packages are unpacked: ``$DETECTLIB_DEBS``, else ``~/.cache/detectlib/debs``."""
    return Path(os.environ.get(DEBS_ENV) or Path.home() / ".cache" / "detectlib" / "debs")


def _pip_file(member: str) -> Path | None:
    """``skimage/data/astronaut.png`` -> its path under the installed top-level package (never imported)."""
    top, _, rest = member.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    return path if path.is_file() else None


@dataclass
class _DebFetcher:
    """Reads Debian packages where installed, else from the cache, else fetches them into it (once per build)."""

    cache: Path
    fetch: bool = True
    failed: dict[str, str] = field(default_factory=dict)  # package -> why it could not be had
    fetched: set[str] = field(default_factory=set)

    def file(self, package: str, member: str) -> Path | None:
        installed = Path(member)
        if installed.is_file():
            return installed
        cached = self.cache / package / member.lstrip("/")
        if cached.is_file():
            return cached
        if package in self.failed or package in self.fetched:
            return None
        if self._fetch(package):
            self.fetched.add(package)
        return cached if cached.is_file() else None

    def _fetch(self, package: str) -> bool:
        if not self.fetch:
            self.failed[package] = "not installed, not in the cache, and fetching is off"
            return False
        tools = [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]
        if tools:
            self.failed[package] = f"not installed and no {' or '.join(tools)} here (not Debian/Ubuntu?)"
            return False
        target = self.cache / package
        work = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=self._mkdir(self.cache)))
        try:
            run = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True,
                                 timeout=APT_TIMEOUT_S)
            debs = sorted(work.glob(f"{package}_*.deb"))
            if run.returncode != 0 or not debs:
                why = next((line for line in run.stderr.splitlines() if line.startswith("E:")), "") or "no .deb"
                self.failed[package] = f"apt-get download failed ({why.strip()})"
                return False
            unpacked = work / "tree"
            run = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], capture_output=True, text=True,
                                 timeout=APT_TIMEOUT_S)
            if run.returncode != 0:
                self.failed[package] = f"dpkg-deb -x failed ({run.stderr.strip().splitlines()[-1:]})"
                return False
            if target.exists():
                shutil.rmtree(target)
            os.replace(unpacked, target)  # a half-unpacked package never appears in the cache
            return True
        except (OSError, subprocess.SubprocessError) as err:
            self.failed[package] = f"fetching failed ({type(err).__name__}: {err})"
            return False
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _mkdir(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_hint(kind: str, package: str, n: int, label: str, why: str) -> str:
    what = f"{n} {'AI image' if label == 'ai' else 'photo'}{'s' if n != 1 else ''}"
    if kind == "pip":
        extra = " (in detectlib's demo extra)" if package.startswith("comfyui-") else ""
        return f"missing {package} ({what}): pip install {package}{extra}"
    return (f"missing {package} ({what}): {why}; on Debian/Ubuntu/Colab `apt-get install {package}`, or unpack its "
            f"files under {debs_cache() / package}/ (dpkg-deb -x {package}_*.deb there)")


# ----------------------------------------------------------------------------------------- the one processing
def pre_size(size: int) -> int:
    """The side every square is resized to before the last step: ``PRESCALE`` x ``size``, rounded up."""
    return int(np.ceil(PRESCALE * size))


def crops_for(width: int, height: int, size: int, details: bool) -> list[int]:
    """The crops a ``width`` x ``height`` source gives at ``size``: none when even its centre square would need an
    upscale, crop 0 otherwise, and the four details when they too need no upscale (``details``)."""
    short, need = min(width, height), pre_size(size)
    if short < need:
        return []
    return [0, *DETAIL_CROPS] if details and int(short / DETAIL_ZOOM) >= need else [0]


def _crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """The square of ``crop`` in a ``width`` x ``height`` image: 0 the centre square, 1-4 squares of its side
    divided by ``DETAIL_ZOOM`` in its four corners."""
    short = min(width, height)
    left, top = (width - short) // 2, (height - short) // 2
    if crop == 0:
        return left, top, left + short, top + short
    side = int(short / DETAIL_ZOOM)
    col, row = (crop - 1) % 2, (crop - 1) // 2
    x, y = left + col * (short - side), top + row * (short - side)
    return x, y, x + side, y + side


def _round_trip(image: Image.Image, fmt: str, **params) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    buffer.seek(0)
    with Image.open(buffer) as im:
        im.load()
        return im.convert("RGB")


def encode_output(image: Image.Image) -> bytes:
    """The final codec, the same for every WILD image: JPEG quality 90, 4:2:0, no EXIF or ICC profile."""
    buffer = io.BytesIO()
    image.save(buffer, OUT_FORMAT, quality=OUT_QUALITY, subsampling=OUT_SUBSAMPLING, optimize=False)
    return buffer.getvalue()


def process_image(image: Image.Image, size: int, crops: Sequence[int] = (0,)) -> dict[int, bytes]:
    """Steps 2-5 of the module docstring for an RGB image: ``{crop: JPEG bytes}`` at ``size`` x ``size``.

    A crop whose square is smaller than the pre-scale raises ``ValueError`` (this module never upscales)."""
    need, out = pre_size(size), {}
    for crop in crops:
        box = _crop_box(*image.size, crop)
        if box[2] - box[0] < need:
            raise ValueError(f"crop {crop} of a {image.width}x{image.height} image is {box[2] - box[0]} px, "
                             f"smaller than the pre-scale {need} px: it would need an upscale")
        square = image.resize((need, need), RESAMPLE, box=box)
        square = _round_trip(square, MID_FORMAT, quality=MID_QUALITY, method=4)
        out[crop] = encode_output(square.resize((size, size), RESAMPLE))
    return out


def process_source(path: Path | str, size: int, details: bool = False) -> dict[int, bytes]:
    """The one processing every WILD source goes through, real or AI: ``{crop: JPEG bytes}``.

    Fakes pass ``details=False`` (their whole square only: a preview is too small for details at any useful size),
    photos ``details=True``. Empty when the source is too small for ``size``."""
    with Image.open(check_file(path)) as im:
        width, height = im.size
    crops = crops_for(width, height, size, details)  # EXIF rotation swaps sides, never the short one
    if not crops:
        return {}
    need = int(np.ceil(pre_size(size) * (DETAIL_ZOOM if len(crops) > 1 else 1) * DRAFT_HEADROOM))
    return process_image(load_image(path, need), size, crops)  # a JPEG decoded reduced, never below need


# ------------------------------------------------------------------------------------------------- the build
@dataclass(frozen=True)
class _Unit:
    """One image to write: a source and one of its crops."""

    source: Source
    path: Path
    crop: int


def _round_robin(units: list[_Unit], levels: Sequence, rng: np.random.Generator) -> list[_Unit]:
    """``units`` ordered so that any prefix spreads over the first level's values, then the next level's, ...
    (shuffled with ``rng``); the innermost order puts crop 0 first."""
    if not levels:
        rest = [u for u in units if u.crop != 0]
        return [u for u in units if u.crop == 0] + [rest[i] for i in rng.permutation(len(rest))]
    groups: dict[str, list[_Unit]] = defaultdict(list)
    for unit in units:
        groups[levels[0](unit)].append(unit)
    names = sorted(groups)
    ordered = [_round_robin(groups[names[i]], levels[1:], rng) for i in rng.permutation(len(names))]
    return [seq[i] for i in range(max(map(len, ordered), default=0)) for seq in ordered if i < len(seq)]


def select(units: list[_Unit], max_per_class: int, seed: int = 0) -> list[_Unit]:
    """At most ``max_per_class`` units per class (0: all), spread over families and generators (fakes) or
    packages and photos (reals), the same for the same seed."""
    out = []
    for label in CLASSES:
        mine = [u for u in units if u.source.label == label]
        if max_per_class <= 0 or len(mine) <= max_per_class:
            out += mine
            continue
        rng = np.random.default_rng([seed, CLASSES.index(label)])
        levels = ((lambda u: u.source.family, lambda u: u.source.generator) if label == CLASSES[0]
                  else (lambda u: u.source.generator, lambda u: u.source.group))
        out += _round_robin(sorted(mine, key=lambda u: (u.source.source, u.crop)), levels, rng)[:max_per_class]
    return out


@dataclass
class WildPlan:
    """What a build will use: the units to write, and everything left out with its reason."""

    units: list[_Unit]
    missing: list[str]  # one line per package that could not be had
    changed: list[str]  # sources that differ from the table's SHA-256
    too_small: list[str]  # sources too small for the size


def plan_wild(size: int, max_per_class: int = 0, seed: int = 0, *, fetch_debs: bool = True,
              sources: Iterable[Source] | None = None, debs_dir: Path | None = None) -> WildPlan:
    """Find every kept source, check it against the table, and choose the crops a build at ``size`` writes.

    A pip file whose SHA-256 differs from the table is left out (the package changed: a preview may no longer be
    what the table says it is); a Debian file that differs is used and reported (distributions ship other sizes
    of the same photo)."""
    fetcher = _DebFetcher(debs_dir or debs_cache(), fetch_debs)
    kept = [s for s in (read_sources() if sources is None else sources) if s.kept]
    units, changed, too_small = [], [], []
    lost: dict[tuple[str, str, str], int] = defaultdict(int)
    for src in kept:
        path = _pip_file(src.member) if src.kind == "pip" else fetcher.file(src.package, src.member)
        if path is None:
            lost[(src.kind, src.package, src.label)] += 1
            continue
        if src.sha256 and _sha256(path) != src.sha256:
            changed.append(f"{src.source} ({'left out' if src.kind == 'pip' else 'used'})")
            if src.kind == "pip":
                continue
        with Image.open(path) as im:
            crops = crops_for(*im.size, size, details=src.label != CLASSES[0])
            if not crops:
                too_small.append(f"{src.group} ({min(im.size)} px < {pre_size(size)})")
        units += [_Unit(src, path, crop) for crop in crops]
    missing = [_missing_hint(kind, pkg, n, label, fetcher.failed.get(pkg, "not installed"))
               for (kind, pkg, label), n in sorted(lost.items())]
    return WildPlan(select(units, max_per_class, seed), missing, changed, too_small)


def _settings(profile: Profile, seed: int, units: list[_Unit]) -> dict:
    return {
        "builder": "detectlib.wild",
        "version": BUILD_VERSION,
        "wild_size": profile.wild_size,
        "wild_max_per_class": profile.wild_max_per_class,
        "seed": seed,
        "processing": {"prescale": PRESCALE, "resample": "lanczos", "mid": f"{MID_FORMAT} q{MID_QUALITY}",
                       "out": f"{OUT_FORMAT} q{OUT_QUALITY} {OUT_SUBSAMPLING}"},
        "units": sorted(f"{u.source.source}#{u.crop}" for u in units),
    }


def _is_complete(folder: Path, settings: dict) -> bool:
    """True when ``folder`` holds a finished build with these settings and every file its manifest names."""
    recorded = read_json(folder / SETTINGS)
    if recorded is None or recorded.get("settings") != settings:
        return False
    try:
        with open(folder / MANIFEST, newline="", encoding="utf-8") as f:
            files = [row["file"] for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return False
    return len(files) == recorded.get("count") and all((folder / name).is_file() for name in files)


def _file_name(unit: _Unit) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", unit.source.group.replace(":", "_"))
    if unit.source.label == CLASSES[0]:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(unit.source.member).stem)
    return f"{unit.source.label}/{stem}_c{unit.crop}{OUT_EXT}"


def _write_build(units: list[_Unit], size: int, staging: Path) -> list[dict]:
    """Process every unit's source once and write its crops under ``staging``; the manifest rows, in order."""
    by_source: dict[Path, list[_Unit]] = defaultdict(list)
    for unit in units:
        by_source[unit.path].append(unit)
    rows, taken = [], set()
    for cls in CLASSES:
        (staging / cls).mkdir(parents=True, exist_ok=True)
    for path, group in by_source.items():
        crops = process_source(path, size, details=group[0].source.label != CLASSES[0])
        for unit in sorted(group, key=lambda u: u.crop):
            name, src = _file_name(unit), unit.source
            while name in taken:  # the same file name in two packages
                name = name.replace(OUT_EXT, f"_{unit.source.package}{OUT_EXT}", 1)
            taken.add(name)
            (staging / name).write_bytes(crops[unit.crop])
            rows.append({"file": name, "label": src.label, "generator": src.generator, "model": src.model,
                         "family": src.family, "release_year": src.release_year, "style": src.style,
                         "group": src.group, "crop": unit.crop, "source": src.source})
    return sorted(rows, key=lambda r: r["file"])


def build_wild(profile: Profile | str | None = None, root: Path | str | None = None, *, seed: int = 0,
               force: bool = False, fetch_debs: bool = True, sources: Iterable[Source] | None = None,
               debs_dir: Path | None = None, verbose: bool = True) -> Path:
    """Build (or reuse) WILD in ``paths.wild``: ``{ai,nature}/*.jpg``, ``manifest.csv`` and ``wild_build.json``.

    The folder is written beside its final place and renamed in when complete, so an interrupted build leaves
    nothing half-written; a re-run with the same settings and sources reuses it (``force`` rebuilds). Sources are
    only read. ``fetch_debs=False`` never runs apt-get (only installed or cached Debian packages are read).
    Returns the folder.
    """
    profile = get_profile(profile)
    out = get_paths(profile, root).wild
    start = time.perf_counter()
    plan = plan_wild(profile.wild_size, profile.wild_max_per_class, seed, fetch_debs=fetch_debs, sources=sources,
                     debs_dir=debs_dir)
    if not any(u.source.label == CLASSES[0] for u in plan.units) or not any(
            u.source.label == CLASSES[1] for u in plan.units):
        raise LayoutError("WILD needs images of both classes and found "
                          f"{summarise(plan.units)}; " + ("; ".join(plan.missing) or "no source is large enough"))
    settings = _settings(profile, seed, plan.units)
    if out.exists() and read_json(out / SETTINGS) is None:
        raise FileExistsError(f"{out} exists and was not built by detectlib.wild; move it away or choose another root")
    if not force and _is_complete(out, settings):
        if verbose:
            print(f"Reusing WILD in {out} (same settings and sources; force=True or --force rebuilds)")
            _report(plan)
        return out
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        rows = _write_build(plan.units, profile.wild_size, staging)
        with open(staging / MANIFEST, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        seconds = round(time.perf_counter() - start, 1)
        (staging / SETTINGS).write_text(json.dumps(
            {"settings": settings, "count": len(rows), "seconds": seconds, "missing": plan.missing,
             "changed": plan.changed, "too_small": plan.too_small}, indent=2))
        out.parent.mkdir(parents=True, exist_ok=True)
        swap_in_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if verbose:
        print(f"Built WILD in {out}: {summarise(plan.units)}; {profile.wild_size} px {OUT_FORMAT} q{OUT_QUALITY}, "
              f"{seconds} s")
        _report(plan)
    return out


def summarise(units: Sequence[_Unit]) -> str:
    """``N fakes from G generators (F families), M photos from P sources, K crops``."""
    ai = [u for u in units if u.source.label == CLASSES[0]]
    real = [u for u in units if u.source.label != CLASSES[0]]
    return (f"{len(ai)} fakes from {len({u.source.generator for u in ai})} generators "
            f"({len({u.source.family for u in ai})} families), {len({u.source.group for u in real})} photos from "
            f"{len({u.source.generator for u in real})} sources, {len(real)} crops")


def _report(plan: WildPlan) -> None:
    """One line per missing package (what to install), then the sources left out or changed."""
    for line in plan.missing:
        print(line)
    if plan.too_small:
        print(f"too small at this size, left out: {', '.join(plan.too_small)}")
    if plan.changed:
        print(f"differ from wild_sources.csv: {', '.join(plan.changed)}")


# ------------------------------------------------------------------------------------------------ reading it
@dataclass(frozen=True)
class WildImage:
    """One WILD image: where it is, its class (``ai`` = 0, ``nature`` = 1) and where it came from."""

    path: Path
    label: int
    generator: str  # the workflow for fakes, the package for photos
    family: str  # model family (FLUX.1, SDXL, ...) or "photo"
    year: int | None  # the model's (or photo's) year, when known
    group: str  # the photo (shared by all its crops) or the generator: split by this, never by image
    crop: int  # 0 the whole centre square, 1-4 the detail squares in its corners
    style: str = ""  # photo, photoreal, illustration or poster
    model: str = ""
    source: str = ""


def load_wild(folder: Path | str | None = None) -> list[WildImage]:
    """The images of a WILD build (default: the profile's ``paths.wild``), in manifest order."""
    folder = Path(folder) if folder is not None else get_paths().wild
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise LayoutError(f"{folder}: no {MANIFEST}; build WILD first: python -m detectlib.wild "
                          "(or detectlib.wild.build_wild())")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [WildImage(path=folder / row["file"], label=CLASSES.index(row["label"]), generator=row["generator"],
                      family=row["family"], year=int(row["release_year"]) if row["release_year"].isdigit() else None,
                      group=row["group"], crop=int(row["crop"]), style=row.get("style", ""),
                      model=row.get("model", ""), source=row.get("source", ""))
            for row in rows]


def audit_wild(folder: Path | str | None = None, max_per_class: int = 1000):
    """The dataset audit (``audit.audit_dataset``) of a WILD build: format, size and JPEG-quality shortcuts
    between the classes. WILD is one ``{ai,nature}`` folder; the audit reads it as the ``val`` split."""
    from .audit import audit_dataset

    folder = Path(folder) if folder is not None else get_paths().wild
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp) / "WILD"
        view.mkdir()
        try:
            (view / "val").symlink_to(folder.resolve(), target_is_directory=True)
        except OSError:  # no symlinks (Windows without the privilege): a copy
            shutil.copytree(folder, view / "val", ignore=shutil.ignore_patterns(MANIFEST, SETTINGS))
        report = audit_dataset(view, max_per_class=max_per_class)
    report.root = folder
    return report
