"""The reference's dataset tools: a balanced sample of every generator (``create_samples``), and all generators
merged into one folder (``create_full_all``). Introduced in notebook 01; the command lines are
``python -m detectlib.create_samples`` and ``python -m detectlib.create_full_all``. Sources are only ever read."""

from __future__ import annotations

import filecmp
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import CLASSES
from ..files import atomic_write
from .images import (
    ImageLoadError,
    check_file,
    load_image,
    skip_bad_file,
    skip_summary,
    warn_skipped,
)
from .layout import SPLITS, LayoutError, discover_generators, extra_class_folders, list_class_images


@dataclass
class CopySummary:
    """What a dataset tool did; ``conflicts`` are destinations that held a different file and were kept;
    ``skipped`` are sources that could not be read as files, with the reason."""

    out_dir: Path
    copied: int = 0
    present: int = 0
    conflicts: list[Path] = field(default_factory=list)
    per_generator: dict[str, int] = field(default_factory=dict)  # files selected per generator
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        gens = ", ".join(f"{gen} {n}" for gen, n in self.per_generator.items())
        text = (
            f"{self.out_dir}: {self.copied} copied, {self.present} already present, "
            f"{len(self.conflicts)} conflicts (kept, not overwritten) [{gens}]"
        )
        return text + (f"; {skip_summary(self.skipped)}" if self.skipped else "")


def copy_file_safely(src: Path, dst: Path, summary: CopySummary) -> None:
    """Copy ``src`` to ``dst`` through a temporary name; skip identical bytes, never overwrite different ones.

    Introduced in notebook 01. Copying through ``files.atomic_write`` means an interrupted copy leaves no
    half-written image at ``dst``. A source that cannot be read as a file (see ``data.check_file``) is skipped
    with a warning and listed in ``summary.skipped``; the source is only ever read.
    """
    try:
        check_file(src)
    except ImageLoadError as err:
        skip_bad_file(err, src, summary.skipped, stacklevel=3)
        return
    if dst.exists():
        if filecmp.cmp(src, dst, shallow=False):
            summary.present += 1
        else:
            summary.conflicts.append(dst)
            warnings.warn(
                f"{dst} exists and differs from {src}: kept, not overwritten "
                "(after rebuilding the sources, delete the output folder to copy them afresh)",
                stacklevel=3,
            )
        return
    atomic_write(dst, lambda tmp: shutil.copy2(src, tmp))
    summary.copied += 1


def _generators(raw_dir: Path) -> list[str]:
    if not raw_dir.is_dir():
        raise LayoutError(
            f"{raw_dir}: folder not found; expected generator folders <GEN>/{{train,val}}/{{ai,nature}}"
        )
    gens = discover_generators(raw_dir)
    if not gens:
        raise LayoutError(f"{raw_dir}: no generator folders <GEN>/{{train,val}}/{{ai,nature}} found")
    return gens


def _check_folders(raw_dir: Path, gen: str) -> None:
    """Warn about what a generator folder holds that the tools will not copy: a missing class folder or an
    unexpected one (``fake/`` for ``ai/``): a class must never vanish silently."""
    for split in SPLITS:
        folder = raw_dir / gen / split
        if not folder.is_dir():
            continue
        missing = [c for c in CLASSES if not (folder / c).is_dir()]
        extra = extra_class_folders(folder)
        if missing or extra:
            warnings.warn(
                f"{folder}: "
                + (f"no {', '.join(f'{c}/' for c in missing)} folder; " if missing else "")
                + (f"ignoring unexpected folder(s) {', '.join(extra)}; " if extra else "")
                + "only ai/ and nature/ are copied",
                stacklevel=3,
            )


def _verify_plan(plan: list[tuple[Path, Path]]) -> None:
    """``strict``: every source decodes as an image and no destination holds a different file; the first
    problem raises (``ImageLoadError`` or ``FileExistsError``) before anything is written."""
    for src, dst in tqdm(plan, desc="checking (strict)", unit="img", mininterval=1.0):
        load_image(src)
        if dst.exists() and not filecmp.cmp(src, dst, shallow=False):
            raise FileExistsError(f"{dst} exists and differs from {src}; strict mode never builds over a different "
                                  "file: delete the output folder or choose another --out_dir")


def _copy_plan(plan: list[tuple[Path, Path]], desc: str, summary: CopySummary, strict: bool = False) -> CopySummary:
    if strict:
        _verify_plan(plan)
    for src, dst in tqdm(plan, desc=desc, unit="img", mininterval=1.0):
        copy_file_safely(src, dst, summary)
    warn_skipped(summary.skipped, stacklevel=2)
    print(summary)
    return summary


def create_samples(
    raw_dir: Path | str = "data/raw",
    out_dir: Path | str = "data/samples/ALL",
    n_per_class: int = 100,
    seed: int = 42,
    strict: bool = False,
) -> CopySummary:
    """Reference §7.1: ``n_per_class`` random images per generator, split and class, copied into one dataset.

    Introduced in notebook 01. The draw is seeded and made from sorted file lists, so the same seed picks the
    same files; a folder with fewer images gives all it has. ``strict``: see the module docstring.
    """
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0, got {n_per_class}")
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    rng = np.random.default_rng(seed)
    summary, plan = CopySummary(out_dir), []
    for gen in _generators(raw_dir):
        _check_folders(raw_dir, gen)
        for split in SPLITS:
            for cls in CLASSES:
                files = list_class_images(raw_dir / gen / split / cls)
                picked = [files[i] for i in sorted(rng.permutation(len(files))[:n_per_class])]
                plan += [(f, out_dir / split / cls / f"{gen}_{f.name}") for f in picked]
                summary.per_generator[gen] = summary.per_generator.get(gen, 0) + len(picked)
    return _copy_plan(plan, "create_samples", summary, strict)


def create_full_all(
    raw_dir: Path | str = "data/raw", out_dir: Path | str = "data/raw/ALL_full", strict: bool = False
) -> CopySummary:
    """Reference §7.2: every generator folder merged into one dataset, each file prefixed ``<GEN>_``.

    Introduced in notebook 01. The output's name starts with ``ALL``, so generator discovery skips it even
    inside ``raw_dir``. ``strict``: see the module docstring.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    summary, plan = CopySummary(out_dir), []
    for gen in _generators(raw_dir):
        _check_folders(raw_dir, gen)
        files = [
            (f, out_dir / split / cls / f"{gen}_{f.name}")
            for split in SPLITS
            for cls in CLASSES
            for f in list_class_images(raw_dir / gen / split / cls)
        ]
        plan += files
        summary.per_generator[gen] = len(files)
    return _copy_plan(plan, "create_full_all", summary, strict)
