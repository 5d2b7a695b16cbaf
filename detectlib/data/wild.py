"""WILD v2: real text-to-image outputs against real photographs of the same content, processed alike, grouped.

Used by notebooks 01 and 04. The demo dataset's fakes come from small generators trained here; WILD asks the
question a user cares about: does a detector catch what FLUX, SDXL, Qwen-Image or GPT-image make, without calling
real photos fake? This module processes, groups and writes the images; which images go in (the committed table
``wild_sources.csv``: ComfyUI template previews and InvokeAI presets as **ai**, photographs from Debian, pip and npm
packages as **nature**) and reading each one out of its package is ``data.wild_sources``.

**Content.** Each image has a category (people, indoor, objects_food, animals, street_arch, landscape, art).
Metrics are reported per category and as a category-balanced AUC, so a split of landscapes against portraits
cannot score.

**One processing history** (``give_preview_history``, then ``common_steps``). The previews were rendered at about 1024 px, shrunk to about
400 px and saved as lossy WebP; the photos are camera files of 300 to 5000 px. Left as they are, a detector learns
the file and its resampling, not the generator. So:

1. *history* (photos only, to give them the previews' past): the photo is shrunk (Lanczos) so its short side is
   drawn from the AI side's short sides (seeded per photo, never an upscale), then WebP-encoded at the previews'
   estimated quality (``estimate_webp_quality``, the median over the previews used);
2. *the common steps* (every image, real or AI): the centre square, resized to ``wild_size`` with Lanczos, saved
   as JPEG quality 90, 4:2:0, no metadata. No crop kind belongs to one class only.

``audit_wild`` then checks format, size, JPEG quality, blockiness and the short side before the common steps.

**Groups.** One photo, its near-duplicates (listed, or found by a perceptual hash across the whole build) and one
template's images form one group; ``split`` (``val`` or ``test``) is drawn per group, and every split, fold and
interval of the kit resamples groups, never images. The previews are thumbnails: whatever low-level trace a
generator leaves is mostly gone after the shrink and WebP, so WILD measures what survives that; say so where it
matters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import CLASSES, Profile, get_paths, get_profile, seed_of
from ..files import atomic_write, build_folder
from .images import load_image
from .layout import LayoutError
from .packages import PackageFetcher, PackageRef, missing_hint, packages_cache
from .wild_sources import RCC_SEPARATOR, Source, installed_file, read_source_bytes, read_sources

BUILD_VERSION = 2  # bump when a change to this module changes the images it writes


MANIFEST = "manifest.csv"


SETTINGS = "wild_build.json"


MANIFEST_COLUMNS = ("file", "label", "category", "style", "generator", "model", "family", "release_year", "group",
                    "split", "use", "history_side", "source")


RESAMPLE = Image.Resampling.LANCZOS  # the one resampling filter


OUT_FORMAT, OUT_QUALITY, OUT_SUBSAMPLING, OUT_EXT = "JPEG", 90, "4:2:0", ".jpg"


VAL_SHARE = 0.3  # the share of groups in the validation split (where a detector may tune anything)


NEAR_DUPLICATE_BITS = 6  # difference hashes (64 bits) this close put two images in one group


QUALITY_SAMPLE = 40  # previews whose WebP quality is estimated for the photos' history step


# ----------------------------------------------------------------------------------------- the one processing
def decode(data: bytes, name: str) -> Image.Image:
    """RGB pixels of a source's bytes, EXIF orientation applied, through the kit's one loader."""
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".img") as tmp:
        tmp.write(data)
        tmp.flush()
        return load_image(tmp.name)


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _webp_round_trip(image: Image.Image, quality: int) -> Image.Image:
    with Image.open(io.BytesIO(_encode(image, "WEBP", quality=quality, method=4))) as im:
        return im.convert("RGB")


def estimate_webp_quality(data: bytes) -> int | None:
    """The quality a lossy WebP was saved at, estimated: the quality at which re-encoding its decoded pixels gives
    the same file size (a re-encode at the original quality changes little). None for a file that is not WebP."""
    with Image.open(io.BytesIO(data)) as im:
        if im.format != "WEBP":
            return None
        im.seek(0)
        pixels = im.convert("RGB")
    candidates = list(range(40, 101, 5))
    sizes = [len(_encode(pixels, "WEBP", quality=q, method=4)) for q in candidates]
    return candidates[int(np.argmin([abs(s - len(data)) for s in sizes]))]


def history_side(key: str, short_side: int, ai_sides: Sequence[int], size: int) -> int | None:
    """The short side a photo is shrunk to before its WebP step: drawn (seeded by the photo, so a build repeats
    and a photo keeps its draw whatever else is built) from the AI side's short sides that need no upscale.
    None for a photo smaller than every preview (or than ``size``): it cannot be given the previews' past, so it
    is left out rather than resampled less than the previews were."""
    choices = sorted(s for s in ai_sides if size <= s <= short_side)
    if not choices:
        return None
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    return int(choices[rng.integers(len(choices))])


def give_preview_history(image: Image.Image, side: int, quality: int) -> Image.Image:
    """Step 1 for photos: shrink so the short side is ``side`` (Lanczos; never an upscale), then a WebP round trip
    at ``quality``: the past the previews have."""
    scale = side / min(image.size)
    if scale < 1:
        image = image.resize((max(side, round(image.width * scale)), max(side, round(image.height * scale))),
                             RESAMPLE)
    return _webp_round_trip(image, quality)


def common_steps(image: Image.Image, size: int) -> bytes:
    """Step 2, the same for every image: centre square, Lanczos to ``size``, JPEG q90 4:2:0 without metadata."""
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    square = image.resize((size, size), RESAMPLE, box=(left, top, left + short, top + short))
    return _encode(square, OUT_FORMAT, quality=OUT_QUALITY, subsampling=OUT_SUBSAMPLING, optimize=False)


def difference_hash(image_bytes: bytes) -> int:
    """A 64-bit difference hash (9 x 8 grey, left > right) of an image: near-duplicates differ in few bits."""
    with Image.open(io.BytesIO(image_bytes)) as im:
        grey = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).reshape(-1)
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def merge_near_duplicates(groups: list[str], hashes: list[int], max_bits: int = NEAR_DUPLICATE_BITS) -> list[str]:
    """Each image's group after joining every two groups holding images whose hashes differ in at most
    ``max_bits`` bits (union-find; the merged group takes the smallest name, so the result is order-free)."""
    parent = {g: g for g in groups}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            if (hashes[i] ^ hashes[j]).bit_count() <= max_bits:
                a, b = sorted((root(groups[i]), root(groups[j])))
                parent[b] = a
    return [root(g) for g in groups]


def split_of(group: str, val_share: float = VAL_SHARE, seed: int = 0) -> str:
    """``val`` or ``test`` for a group, from a hash of its name (and of ``seed`` when not 0, so another seed draws
    another split): stable whatever else is built."""
    key = group if seed == 0 else f"{seed}/{group}"
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") / 2 ** 32
    return "val" if draw < val_share else "test"


# ------------------------------------------------------------------------------------------------- the build
def _round_robin(items: list[Source], levels: Sequence, rng: np.random.Generator) -> list[Source]:
    """``items`` ordered so that any prefix spreads over the first level's values, then the next level's, ...
    (shuffled with ``rng``)."""
    if not levels:
        return [items[i] for i in rng.permutation(len(items))]
    buckets: dict[str, list[Source]] = defaultdict(list)
    for item in items:
        buckets[levels[0](item)].append(item)
    names = sorted(buckets)
    ordered = [_round_robin(buckets[names[i]], levels[1:], rng) for i in rng.permutation(len(names))]
    return [seq[i] for i in range(max(map(len, ordered), default=0)) for seq in ordered if i < len(seq)]


def category_quotas(wanted: dict[str, float], available: dict[str, int], total: int) -> dict[str, int]:
    """How many photos to take per category: ``total`` shared in proportion to ``wanted`` (the AI side's
    categories), never more than a category has, the rest shared again among categories that have more."""
    quota = {c: 0 for c in available}
    left = min(total, sum(available.values()))
    while left > 0:
        open_ = [c for c in available if quota[c] < available[c]]
        weights = {c: wanted.get(c, 0.0) for c in open_}
        if not sum(weights.values()):
            weights = {c: 1.0 for c in open_}
        norm = sum(weights.values())
        given = 0
        for c in sorted(open_, key=lambda c: -weights[c]):
            share = min(available[c] - quota[c], max(1, round(left * weights[c] / norm)) if weights[c] else 0,
                        left - given)
            quota[c] += share
            given += share
        if not given:
            break
        left -= given
    return quota


def select(sources: list[Source], max_per_class: int, seed: int | None = None) -> list[Source]:
    """At most ``max_per_class`` sources per class (0: all), the same for the same seed. Fakes are spread over
    categories, then templates. Photos are **matched in content**: each category gets a share of the photos in
    proportion to the fakes' share of it (categories only fakes have, such as art, aside), then spread over
    packages and groups."""
    seed = seed_of(seed)
    fakes = sorted((s for s in sources if s.is_ai), key=lambda s: s.key)
    photos = sorted((s for s in sources if not s.is_ai), key=lambda s: s.key)
    rng = np.random.default_rng([seed, 0])
    if 0 < max_per_class < len(fakes):
        fakes = _round_robin(fakes, (lambda s: s.category, lambda s: s.group), rng)[:max_per_class]
    if not 0 < max_per_class < len(photos):
        return fakes + photos
    by_category: dict[str, list[Source]] = defaultdict(list)
    for src in photos:
        by_category[src.category].append(src)
    wanted = {c: float(sum(1 for f in fakes if f.category == c)) for c in by_category}
    quota = category_quotas(wanted, {c: len(v) for c, v in by_category.items()}, max_per_class)
    rng = np.random.default_rng([seed, 1])
    chosen = []
    for category in sorted(by_category):
        spread = _round_robin(by_category[category], (lambda s: s.package, lambda s: s.group), rng)
        chosen += spread[:quota[category]]
    return fakes + chosen


@dataclass
class _Processed:
    """One written image, before the manifest: its source, its bytes, and the short side before step 2."""

    source: Source
    jpeg: bytes
    history_side: int


def _process_all(sources: list[Source], fetcher: PackageFetcher, size: int,
                 log: list[str]) -> tuple[list[_Processed], dict]:
    """Read, decode and process every source (steps 1-2); returns the images and what the history step used."""
    decoded: list[tuple[Source, Image.Image, bytes]] = []
    changed, too_small = [], []
    for src in sources:
        data = read_source_bytes(src, fetcher)
        if data is None:
            continue
        if src.sha256 and hashlib.sha256(data).hexdigest() != src.sha256:
            changed.append(src.key)
            continue
        image = decode(data, src.member)
        if min(image.size) < size:
            too_small.append(f"{src.key} ({min(image.size)} px)")
            continue
        decoded.append((src, image, data))
    previews = [(s, im, d) for s, im, d in decoded if s.is_ai]
    ai_sides = sorted(min(im.size) for _, im, _ in previews)
    sample = previews[:: max(1, len(previews) // QUALITY_SAMPLE)][:QUALITY_SAMPLE]
    estimates = [q for _, _, d in sample if (q := estimate_webp_quality(d)) is not None]
    quality = int(np.median(estimates)) if estimates else 80
    out = []
    for src, image, _ in decoded:
        if src.is_ai:
            out.append(_Processed(src, common_steps(image, size), min(image.size)))
            continue
        side = history_side(src.key, min(image.size), ai_sides, size)
        if side is None:
            too_small.append(f"{src.key} ({min(image.size)} px, below every preview)")
            continue
        out.append(_Processed(src, common_steps(give_preview_history(image, side, quality), size), side))
    if changed:
        log.append(f"differ from wild_sources.csv, left out: {', '.join(changed[:10])}"
                   + (f" (+{len(changed) - 10} more)" if len(changed) > 10 else ""))
    if too_small:
        log.append(f"too small for the previews' history (or below {size} px), left out: {len(too_small)}")
    history = {"preview_webp_quality": quality, "quality_estimates": len(estimates),
               "ai_short_sides": {"min": min(ai_sides, default=0), "median": float(np.median(ai_sides or [0])),
                                  "max": max(ai_sides, default=0)}}
    return out, history


def _file_name(src: Source, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(src.member.split(RCC_SEPARATOR)[-1]).stem)[:60]
    name, n = f"{src.label}/{stem}{OUT_EXT}", 1
    while name in taken:
        n += 1
        name = f"{src.label}/{stem}_{n}{OUT_EXT}"
    taken.add(name)
    return name


def manifest_rows(images: list[_Processed], seed: int = 0) -> list[dict]:
    """The manifest: one row per image, its group joined with its near-duplicates and its split drawn per group."""
    groups = merge_near_duplicates([im.source.group for im in images],
                                   [difference_hash(im.jpeg) for im in images])
    rows, taken = [], set()
    for im, group in zip(images, groups, strict=True):
        src = im.source
        rows.append({"file": _file_name(src, taken), "label": src.label, "category": src.category,
                     "style": src.style, "generator": src.generator, "model": src.model, "family": src.family,
                     "release_year": src.release_year, "group": group, "split": split_of(group, seed=seed), "use": src.use,
                     "history_side": im.history_side, "source": src.key})
    return rows


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    def fill(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, fill)


def _settings(profile: Profile, seed: int, sources: list[Source]) -> dict:
    return {"builder": "detectlib.wild", "version": BUILD_VERSION, "wild_size": profile.wild_size,
            "wild_max_per_class": profile.wild_max_per_class, "seed": seed, "val_share": VAL_SHARE,
            "sources": sorted(s.key for s in sources)}


def _has_every_file(folder: Path, record: dict) -> bool:
    """Every file the manifest names is in ``folder``, as many as the build recorded (``build_folder``'s check)."""
    with open(folder / MANIFEST, newline="", encoding="utf-8") as f:
        files = [row["file"] for row in csv.DictReader(f)]
    return len(files) == record.get("count") and all((folder / name).is_file() for name in files)


def build_wild(profile: Profile | str | None = None, root: Path | str | None = None, *, seed: int | None = None,
               force: bool = False, fetch: bool | None = None, sources: Iterable[Source] | None = None,
               cache: Path | None = None, verbose: bool = True) -> Path:
    """Build (or reuse) WILD v2 in ``paths.wild``: ``{ai,nature}/*.jpg``, ``manifest.csv`` and ``wild_build.json``.

    Packages are read where installed, else from the cache, else fetched into it (``fetch``, default the
    profile's ``wild_fetch``); a package that cannot be had is one line of the report and the rest is built.
    The folder is written beside its final place and renamed in when complete; a re-run with the same settings
    reuses it (``force`` rebuilds). Sources are only read. Returns the folder.
    """
    seed = seed_of(seed)
    profile = get_profile(profile)
    out = get_paths(profile, root).wild
    start = time.perf_counter()
    fetcher = PackageFetcher(cache or packages_cache(), profile.wild_fetch if fetch is None else fetch)
    kept = [s for s in (read_sources() if sources is None else sources) if s.kept]
    here = [s for s in kept if installed_file(s) is not None or fetcher.root(s.ref) is not None]
    lost: dict[tuple[PackageRef, str], int] = defaultdict(int)
    for src in kept:
        if src.ref in fetcher.failed and installed_file(src) is None:
            lost[(src.ref, src.label)] += 1
    missing = [missing_hint(ref, f"{n} {'AI image' if label == 'ai' else 'photo'}{'s' * (n != 1)}",
                            fetcher.failed[ref], fetcher.cache) for (ref, label), n in sorted(lost.items(), key=str)]
    chosen = select(here, profile.wild_max_per_class, seed)  # chosen among the sources this machine can read
    settings = _settings(profile, seed, chosen)
    done: dict = {}

    def fill(staging: Path) -> dict:
        log: list[str] = []
        images, history = _process_all(chosen, fetcher, profile.wild_size, log)
        if {im.source.label for im in images} != set(CLASSES):
            raise LayoutError("WILD needs images of both classes and found " + summarise_sources(
                [im.source for im in images]) + (f"; {len(missing)} package(s) could not be had, first: {missing[0]}"
                                                 if missing else "; no source is large enough"))
        rows = manifest_rows(images, seed)
        by_key = {im.source.key: im for im in images}
        for row in rows:
            atomic_write(staging / row["file"], lambda tmp, data=by_key[row["source"]].jpeg: tmp.write_bytes(data))
        _write_csv(staging / MANIFEST, rows, MANIFEST_COLUMNS)
        done.update(images=images, history=history, log=log, seconds=round(time.perf_counter() - start, 1))
        return {"count": len(rows), "seconds": done["seconds"], "history": history, "missing": missing, "notes": log}

    if not build_folder(out, settings, fill, force=force, marker=SETTINGS, complete=_has_every_file,
                        owner="detectlib.wild"):
        if verbose:
            print(f"Reusing WILD in {out} (same settings and sources; force=True or --force rebuilds)")
        return out
    images, history, log, seconds = done["images"], done["history"], done["log"], done["seconds"]
    if verbose:
        print(f"Built WILD v2 in {out}: {summarise_sources([im.source for im in images])}; photos given the "
              f"previews' history (WebP q{history['preview_webp_quality']}), then every image {profile.wild_size} px "
              f"{OUT_FORMAT} q{OUT_QUALITY}; {seconds} s")
        shown = missing if len(missing) <= 3 else [*missing[:2], f"... and {len(missing) - 2} more packages "
                                                    f"not had (listed in {out / SETTINGS})"]
        for line in shown + log:
            print(line)
    return out


def summarise_sources(sources: Sequence[Source]) -> str:
    """``N fakes from T templates (F families), M photos from P packages, in C categories``."""
    ai = [s for s in sources if s.is_ai]
    real = [s for s in sources if not s.is_ai]
    return (f"{len(ai)} fakes from {len({s.generator for s in ai})} templates ({len({s.family for s in ai})} "
            f"families), {len(real)} photos from {len({s.package for s in real})} packages, in "
            f"{len({s.category for s in sources})} categories")


# ------------------------------------------------------------------------------------------------ reading it
@dataclass(frozen=True)
class WildImage:
    """One WILD image: where it is, its class (``ai`` = 0, ``nature`` = 1) and where it came from."""

    path: Path
    label: int
    generator: str  # the template for fakes, the package for photos
    family: str  # model family (FLUX.1, SDXL, ...) or "photo"
    year: int | None  # the model's (or photo's) year, when known
    group: str  # near-duplicates, one photo, one template: split by this, never by image
    category: str = ""
    split: str = "test"  # val (where anything may be tuned) or test (reported)
    style: str = ""
    model: str = ""
    use: str = "show"
    history_side: int = 0
    source: str = ""


def load_wild(folder: Path | str | None = None) -> list[WildImage]:
    """The images of a WILD build (default: the profile's ``paths.wild``), in manifest order."""
    folder = Path(folder) if folder is not None else get_paths().wild
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise LayoutError(f"{folder}: no {MANIFEST}; build WILD first: python -m detectlib.wild "
                          "(or detectlib.data.build_wild())")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [WildImage(path=folder / row["file"], label=CLASSES.index(row["label"]), generator=row["generator"],
                      family=row["family"], year=int(row["release_year"]) if row["release_year"].isdigit() else None,
                      group=row["group"], category=row.get("category", ""), split=row.get("split", "test"),
                      style=row.get("style", ""), model=row.get("model", ""), use=row.get("use", "show"),
                      history_side=int(row.get("history_side") or 0), source=row.get("source", ""))
            for row in rows]


def category_table(images: Sequence[WildImage]) -> list[dict]:
    """One row per content category: AI images, photos, and their groups; the table to read before trusting a
    pooled number (a category with one class only cannot be matched)."""
    rows = []
    for category in sorted({im.category for im in images}):
        mine = [im for im in images if im.category == category]
        rows.append({"category": category, "ai": sum(im.label == 0 for im in mine),
                     "nature": sum(im.label == 1 for im in mine), "groups": len({im.group for im in mine})})
    return rows


def history_warnings(images: Sequence[WildImage], gap: float = 0.10) -> list[str]:
    """A warning when the classes' short sides before the common steps differ by more than ``gap`` (median): the
    resampling factor would then mark a class."""
    sides = [[im.history_side for im in images if im.label == label and im.history_side] for label in (0, 1)]
    if not all(sides):
        return []
    medians = [float(np.median(s)) for s in sides]
    if abs(medians[0] - medians[1]) > gap * medians[1]:
        return [f"WILD: short side before the common steps differs (ai median {medians[0]:.0f} px, nature "
                f"{medians[1]:.0f} px): the resampling factor can mark a class"]
    return []


def audit_wild(folder: Path | str | None = None, max_per_class: int = 1000):
    """The dataset audit (``audit.audit_dataset``: format, size, JPEG quality, blockiness) of a WILD build, plus
    the short side each class had before the common steps. WILD is one ``{ai,nature}`` folder; the audit reads it
    as the ``val`` split."""
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
    report.warnings += history_warnings(load_wild(folder))
    return report
