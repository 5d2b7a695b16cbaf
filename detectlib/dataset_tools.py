"""The reference's dataset tools (§7): a balanced sample of every generator, and all generators merged.

Introduced in notebook 01. Both read GenImage-style folders ``raw/<GEN>/{train,val}/{ai,nature}`` and write
the reference layout ``out/{train,val}/{ai,nature}``, each file renamed ``<GEN>_<name>`` so that files of two
generators never collide. They only ever copy: a source is never moved, modified or deleted. A re-run adds
nothing twice (the same bytes already there are skipped) and never overwrites a different file (a conflict is
reported and skipped).
"""

from __future__ import annotations

import argparse
import filecmp
import inspect
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import CLASSES
from .data import SPLITS, LayoutError, discover_generators, list_class_images


@dataclass
class CopySummary:
    """What a dataset tool did; ``conflicts`` are destinations that held a different file and were kept."""

    out_dir: Path
    copied: int = 0
    present: int = 0
    conflicts: list[Path] = field(default_factory=list)
    per_generator: dict[str, int] = field(default_factory=dict)  # files selected per generator

    def __str__(self) -> str:
        gens = ", ".join(f"{gen} {n}" for gen, n in self.per_generator.items())
        return (
            f"{self.out_dir}: {self.copied} copied, {self.present} already present, "
            f"{len(self.conflicts)} conflicts (kept, not overwritten) [{gens}]"
        )


def copy_file_safely(src: Path, dst: Path, summary: CopySummary) -> None:
    """Copy ``src`` to ``dst`` through a temporary name; skip identical bytes, never overwrite different ones.

    Introduced in notebook 01. The temporary name plus ``os.replace`` means an interrupted copy leaves no
    half-written image at ``dst``.
    """
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
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def _copy_plan(plan: list[tuple[Path, Path]], desc: str, summary: CopySummary) -> CopySummary:
    for src, dst in tqdm(plan, desc=desc, unit="img", mininterval=1.0):
        copy_file_safely(src, dst, summary)
    print(summary)
    return summary


def create_samples(
    raw_dir: Path | str = "data/raw",
    out_dir: Path | str = "data/samples/ALL",
    n_per_class: int = 100,
    seed: int = 42,
) -> CopySummary:
    """Reference §7.1: ``n_per_class`` random images per generator, split and class, copied into one dataset.

    Introduced in notebook 01. The draw is seeded and made from sorted file lists, so the same seed picks the
    same files; a folder with fewer images gives all it has.
    """
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0, got {n_per_class}")
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    rng = np.random.default_rng(seed)
    summary, plan = CopySummary(out_dir), []
    for gen in _generators(raw_dir):
        for split in SPLITS:
            for cls in CLASSES:
                files = list_class_images(raw_dir / gen / split / cls)
                picked = [files[i] for i in sorted(rng.permutation(len(files))[:n_per_class])]
                plan += [(f, out_dir / split / cls / f"{gen}_{f.name}") for f in picked]
                summary.per_generator[gen] = summary.per_generator.get(gen, 0) + len(picked)
    return _copy_plan(plan, "create_samples", summary)


def create_full_all(
    raw_dir: Path | str = "data/raw", out_dir: Path | str = "data/raw/ALL_full"
) -> CopySummary:
    """Reference §7.2: every generator folder merged into one dataset, each file prefixed ``<GEN>_``.

    Introduced in notebook 01. The output's name starts with ``ALL``, so generator discovery skips it even
    inside ``raw_dir``.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    summary, plan = CopySummary(out_dir), []
    for gen in _generators(raw_dir):
        files = [
            (f, out_dir / split / cls / f"{gen}_{f.name}")
            for split in SPLITS
            for cls in CLASSES
            for f in list_class_images(raw_dir / gen / split / cls)
        ]
        plan += files
        summary.per_generator[gen] = len(files)
    return _copy_plan(plan, "create_full_all", summary)


def run_cli(tool: Callable[..., CopySummary], argv: Sequence[str] | None, prog: str) -> int:
    """The command line of a tool: one ``--flag`` per keyword of its signature (the reference's names and
    defaults), a one-line error and exit code 2 for a missing or empty ``--raw_dir``."""
    parser = argparse.ArgumentParser(prog=prog, description=(tool.__doc__ or "").splitlines()[0])
    for name, param in inspect.signature(tool).parameters.items():
        kind = int if isinstance(param.default, int) else str
        parser.add_argument(f"--{name}", type=kind, default=param.default, help=f"default: {param.default}")
    try:
        tool(**vars(parser.parse_args(argv)))
    except (LayoutError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
