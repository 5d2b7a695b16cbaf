"""The dataset audit: what a detector could learn from the files instead of from the generator.

Introduced in notebook 01. The most common failure reported against public detectors is a dataset whose two
classes differ in something other than their origin: real photos as JPEG and fakes as PNG, or fakes all
512x512 and photos of every size. A detector then learns the file format, not the generator. The audit counts,
per generator x split x class, the files, their formats, sizes and JPEG qualities (read from the quantization
tables), measures the 8x8 JPEG-block grid left in the pixels, and warns when the classes differ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import CLASSES, seed_of
from ..files import atomic_write
from .images import ImageLoadError, check_file, load_image, skip_bad_file, warn_skipped
from .layout import SPLITS, LayoutError, discover_generators, extra_class_folders, list_class_images

SHARE_GAP = 0.10  # a format whose share differs by more than this between the classes triggers a warning


BLOCKINESS_GAP = 0.10  # a mean 8x8 blockiness differing by more than this share triggers a warning


LOSSY_FORMATS = ("JPEG", "WEBP")  # block codecs: only there is a blockiness gap a compression history


SIZE_GAP = 0.10  # a median width or height differing by more than this triggers a warning


QUALITY_GAP = 5  # JPEG quality points


# The IJG (libjpeg) luminance table at quality 50, natural order: every "quality" setting scales it.
_IJG_LUMA = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ]
)  # fmt: skip


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_LUMA * scale + 50) // 100, 1, 255)


_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])


def jpeg_quality(image: Image.Image) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is nearest to the file's; ``None`` for a non-JPEG.

    Introduced in notebook 01. Exact for files written by libjpeg (PIL, OpenCV, most cameras' software); an
    estimate for encoders with their own tables.
    """
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    luma = np.asarray(tables[min(tables)], dtype=np.int64)
    return int(np.abs(_IJG_TABLES - luma).sum(axis=1).argmin()) + 1


def blockiness(image: np.ndarray, block: int = 8) -> float:
    """Mean absolute step across ``block``-pixel boundaries divided by the mean step elsewhere.

    Introduced in notebook 01. JPEG codes 8x8 blocks separately, so a JPEG has larger steps at block
    boundaries: a ratio above 1 means a visible grid, about 1.0 means none. ``nan`` for images too small.
    Colour images (H, W, 3) are averaged to grey first.
    """
    grey = np.asarray(image, dtype=np.float64)
    grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
    ratios = []
    for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T):
        at_edge = np.arange(steps.shape[1]) % block == block - 1
        if at_edge.sum() == 0 or steps[:, ~at_edge].mean() == 0:
            continue
        ratios.append(steps[:, at_edge].mean() / steps[:, ~at_edge].mean())
    return float(np.mean(ratios)) if ratios else float("nan")


@dataclass
class AuditReport:
    """One row per generator x split x class, the warnings, and every unreadable file with its reason."""

    root: Path
    rows: list[dict]
    warnings: list[str] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def table(self) -> str:
        """The rows as an aligned text table."""
        header = (
            "generator",
            "split",
            "class",
            "files",
            "formats",
            "sizes",
            "JPEG q",
            "blockiness",
            "unreadable",
        )
        lines = [header] + [
            (
                r["generator"], r["split"], r["class"], str(r["files"]), _counts(r["formats"]), _sizes(r["sizes"]),
                _quality(r["jpeg_quality"]), f"{r['blockiness']:.3f}", str(len(r["unreadable"])),
            )
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
        )

    def print(self) -> None:
        """Print the table, then every warning (or that there is none)."""
        print(self.table())
        print()
        for warning in self.warnings or ["no warnings: within each generator and split, ai and nature match"]:
            print(f"WARNING: {warning}" if self.warnings else warning)


def _counts(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "-"


def _sizes(sizes: dict[str, int]) -> str:
    if len(sizes) <= 2:
        return _counts(sizes)
    widths, heights = zip(*(_wh(s) for s in _expand(sizes)), strict=True)
    return f"{len(sizes)} sizes, median {int(np.median(widths))}x{int(np.median(heights))}"


def _quality(quality: dict | None) -> str:
    return "-" if not quality else f"{quality['median']:g} ({quality['min']}-{quality['max']})"


def _wh(size: str) -> tuple[int, int]:
    w, h = size.split("x")
    return int(w), int(h)


def _expand(sizes: dict[str, int]) -> list[str]:
    return [s for s, n in sizes.items() for _ in range(n)]


def _inspect(path: Path) -> tuple[str, str, int | None, float]:
    """(format, "WxH", JPEG quality, blockiness) of one file; ``ImageLoadError`` when it cannot be read."""
    pixels = load_image(path)
    with Image.open(path) as im:
        fmt, quality = im.format or "?", jpeg_quality(im)
    return fmt, f"{pixels.width}x{pixels.height}", quality, blockiness(np.asarray(pixels))


def _audit_folder(folder: Path, generator: str, split: str, cls: str, max_files: int, rng) -> dict:
    files = list_class_images(folder)
    checked = [files[i] for i in sorted(rng.permutation(len(files))[:max_files])]
    formats, sizes, qualities, blocks, unreadable = Counter(), Counter(), [], [], []
    for path in checked:
        try:
            fmt, size, quality, block = _inspect(path)
        except ImageLoadError as err:
            unreadable.append((path, str(err)))
            continue
        formats[fmt] += 1
        sizes[size] += 1
        blocks.append(block)
        if quality is not None:
            qualities.append(quality)
    return {
        "generator": generator,
        "split": split,
        "class": cls,
        "files": len(files),
        "checked": len(checked),
        "formats": dict(formats.most_common()),
        "sizes": dict(sizes.most_common()),
        "jpeg_quality": (
            {"min": min(qualities), "median": float(np.median(qualities)), "max": max(qualities)}
            if qualities
            else None
        ),
        "blockiness": float(np.nanmean(blocks)) if blocks and not np.isnan(blocks).all() else float("nan"),
        "unreadable": unreadable,
    }


def _compare(ai: dict, nature: dict) -> list[str]:
    """Warnings for one generator and split: the ways a detector could tell the classes apart by the files."""
    where, out = f"{ai['generator']}/{ai['split']}", []
    for fmt in sorted(set(ai["formats"]) | set(nature["formats"])):
        shares = [row["formats"].get(fmt, 0) / max(sum(row["formats"].values()), 1) for row in (ai, nature)]
        if abs(shares[0] - shares[1]) > SHARE_GAP:
            out.append(
                f"{where}: formats differ (ai: {_counts(ai['formats'])}; nature: {_counts(nature['formats'])}); "
                "a detector can learn the file format instead of the generator: re-encode both classes alike"
            )
            break
    if ai["sizes"] and nature["sizes"]:
        medians = [np.median([_wh(s) for s in _expand(row["sizes"])], axis=0) for row in (ai, nature)]
        fixed = [len(row["sizes"]) == 1 for row in (ai, nature)]
        if fixed[0] != fixed[1] or (np.abs(medians[0] - medians[1]) > SIZE_GAP * medians[1]).any():
            out.append(
                f"{where}: image sizes differ (ai: {_sizes(ai['sizes'])}; nature: {_sizes(nature['sizes'])}); "
                "a detector can learn the size or the resizing instead of the generator: crop or resize both alike"
            )
    blocks = [row["blockiness"] for row in (ai, nature)]
    sizes_differ = any("image sizes differ" in line for line in out)  # the 8x8 measure then compares scales too
    lossy = any(fmt in LOSSY_FORMATS for row in (ai, nature) for fmt in row["formats"])  # else 8x8 blocks are content
    if (lossy and not sizes_differ and not np.isnan(blocks).any()
            and abs(blocks[0] - blocks[1]) > BLOCKINESS_GAP * blocks[1]):
        out.append(
            f"{where}: 8x8 blockiness differs (ai {blocks[0]:.2f}, nature {blocks[1]:.2f}); one class carries "
            "another compression history: re-encode both classes alike"
        )
    if ai["jpeg_quality"] and nature["jpeg_quality"]:
        gap = abs(ai["jpeg_quality"]["median"] - nature["jpeg_quality"]["median"])
        if gap >= QUALITY_GAP:
            out.append(
                f"{where}: JPEG qualities differ by {gap:g} points; a detector can learn the compression"
            )
    return out


def _generator_folders(root: Path) -> dict[str, Path]:
    """Generator name -> folder; a reference-layout root counts as one generator named after the folder."""
    return {gen: root / gen for gen in discover_generators(root)} or {root.name: root}


def audit_dataset(root: Path | str, max_per_class: int = 200, seed: int | None = None) -> AuditReport:
    """Audit a GenImage-style tree ``root/<GEN>/{train,val}/{ai,nature}`` or one reference-layout root.

    Introduced in notebook 01. Every file is counted; up to ``max_per_class`` per folder (a seeded random
    sample) are opened, so the audit of a large real dataset stays quick. Unreadable files are named in the
    report and in its warnings, never a crash.
    """
    seed = seed_of(seed)
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: folder not found; expected <GEN>/{{train,val}}/{{ai,nature}}/ inside it")
    groups = _generator_folders(root)
    if not any((folder / split).is_dir() for folder in groups.values() for split in SPLITS):
        raise LayoutError(f"{root}: no {{train,val}}/{{ai,nature}} folders found, directly or one level down")
    rng = np.random.default_rng(seed)
    report = AuditReport(root, [])
    for gen, folder in groups.items():
        for split in SPLITS:
            if not (folder / split).is_dir():
                continue
            rows = [
                _audit_folder(folder / split / cls, gen, split, cls, max_per_class, rng) for cls in CLASSES
            ]
            report.rows += rows
            report.warnings += _compare(*rows)
            extra = extra_class_folders(folder / split)
            if extra:
                report.warnings.append(f"{gen}/{split}: unexpected folder(s) {', '.join(extra)} ignored; only ai/ "
                                       "and nature/ are read (rename a class folder that was meant as one)")
            for row in rows:
                if row["files"] == 0:
                    report.warnings.append(f"{gen}/{split}/{row['class']}: no image files; a detector cannot "
                                           "learn or be measured on a class it never sees")
                report.unreadable += row["unreadable"]
                if row["unreadable"]:
                    names = ", ".join(
                        f"{p.name} ({reason.split(': ', 1)[-1]})" for p, reason in row["unreadable"]
                    )
                    report.warnings.append(f"{gen}/{split}/{row['class']}: unreadable files: {names}")
    return report


def reencode_class(
    src: Path | str, dst: Path | str, cls: str = "nature", fmt: str = "JPEG", quality: int = 90
) -> Path:
    """A copy of the reference-layout folder ``src`` in ``dst`` with class ``cls`` re-saved as ``fmt``.

    Introduced in notebook 01, to watch the audit's warning fire: this is the biased dataset it exists for (one
    class JPEG, the other PNG). Sources are only read; the copy is a throwaway teaching example.
    """
    src, dst = Path(src), Path(dst)
    skipped: list[tuple[Path, str]] = []
    for split in SPLITS:
        for name in CLASSES:
            for path in list_class_images(src / split / name):
                target = dst / split / name / path.name
                try:
                    if name == cls:
                        image = load_image(path)
                        atomic_write(target.with_suffix(f".{fmt.lower()}"),
                                     lambda tmp, image=image: image.save(tmp, fmt, quality=quality))
                    else:
                        atomic_write(target, lambda tmp, path=path: tmp.write_bytes(check_file(path).read_bytes()))
                except ImageLoadError as err:
                    skip_bad_file(err, path, skipped, stacklevel=2)
    warn_skipped(skipped, src)
    return dst


def sample_thumbnails(
    root: Path | str, split: str = "val", n: int = 8, seed: int = 0, generators: Sequence[str] | None = None
) -> dict[str, list[np.ndarray]]:
    """``{"<GEN> ai": [...], "<GEN> nature": [...]}``: ``n`` random readable images per generator and class.

    Introduced in notebook 01; ``plots.plot_thumbnail_grid`` draws them.
    """
    rng, folders = np.random.default_rng(seed), _generator_folders(Path(root))
    groups: dict[str, list[np.ndarray]] = {}
    for gen in generators or folders:
        folder = folders[gen]
        for cls in CLASSES:
            files = list_class_images(folder / split / cls)
            images = []
            for i in rng.permutation(len(files)):
                try:
                    images.append(np.asarray(load_image(files[i])))
                except ImageLoadError:
                    continue
                if len(images) == n:
                    break
            groups[f"{gen} {cls}"] = images
    return groups
