"""Labelled image sets scored by a detector (``Scores``): a split folder, each generator of a tree, the resampling
control, WILD. The per-file pipeline is ``predictions.score_paths``; the numbers on the scores are ``metrics``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..config import AI_INDEX
from ..data.layout import (
    LayoutError,
    class_samples,
    discover_generators,
)
from ..labels import DEFAULT_THRESHOLD, format_confusion
from ..models.detector import Detector
from ..models.features import embedding_cache
from . import metrics
from .predictions import score_paths

if TYPE_CHECKING:
    from PIL import Image


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class Scores:
    """True labels and p(ai) of one labelled image set scored by one detector; ``split`` says which set it is."""

    y_true: np.ndarray
    p_ai: np.ndarray
    paths: list[Path]
    split: str = "val"
    name: str = ""
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def summary(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
        return metrics.summary(self.y_true, self.p_ai, threshold)

    def report(self, threshold: float = DEFAULT_THRESHOLD) -> str:
        """The reference's evaluation printout (§4: per-class report, confusion matrix), then TNR/TPR with counts
        as the CLIP reference prints them, and the ROC-AUC."""
        cm = metrics.confusion_at_threshold(self.y_true, self.p_ai, threshold)
        return "\n".join([
            metrics.classification_report(self.y_true, self.p_ai, threshold),
            format_confusion(cm) + "\n",
            str(metrics.rates_at(self.y_true, self.p_ai, threshold)),
            f"ROC-AUC: {metrics.roc_auc(self.y_true, self.p_ai):.4f}",
        ])

    @classmethod
    def pooled(cls, parts: Sequence[Scores], name: str = "pooled") -> Scores:
        """Several scored sets as one (e.g. every generator's val split)."""
        if not parts:
            raise ValueError("nothing to pool")
        return cls(np.concatenate([s.y_true for s in parts]), np.concatenate([s.p_ai for s in parts]),
                   [p for s in parts for p in s.paths], parts[0].split, name, [x for s in parts for x in s.skipped])

    @property
    def groups(self) -> list[str]:
        """The source photo of each image (``data.source_groups``): what splits and intervals keep together."""
        from ..data.demo import source_groups

        return source_groups(self.paths)

    def take(self, indices: Sequence[int], split: str | None = None) -> Scores:
        """The images at ``indices``, optionally renamed as another split."""
        idx = np.asarray(indices, dtype=int)
        return replace(self, y_true=self.y_true[idx], p_ai=self.p_ai[idx], paths=[self.paths[i] for i in idx],
                       split=split or self.split, skipped=[])


def score_folder(
    detector: Detector,
    data_dir: Path | str,
    split: str | None = "val",
    *,
    batch_size: int = 64,
    workers: int = 0,
    perturb: Callable[[Image.Image], Image.Image] | None = None,
    progress: bool = False,
    name: str = "",
    max_per_class: int | None = None,
    strict: bool = False,
    use_cache: bool = True,
    seed: int | None = None,
) -> Scores:
    """Score ``data_dir/<split>/{ai,nature}`` (or ``data_dir/{ai,nature}`` with ``split=None``). Unreadable files
    are left out with a warning each and a summary, and listed in ``Scores.skipped`` (``strict``: the first one
    raises ``ImageLoadError``). A frozen-encoder head reads embeddings from the profile's cache (``use_cache``)."""
    folder = Path(data_dir) / split if split else Path(data_dir)
    samples = class_samples(folder, max_per_class, seed)
    files, labels = [path for path, _ in samples], [label for _, label in samples]
    pred = score_paths(detector, files, batch_size=batch_size, workers=workers, perturb=perturb, progress=progress,
                       strict=strict, cache_dir=embedding_cache() if use_cache else None)
    y_true = np.asarray(labels, dtype=int)[pred.kept] if pred.kept else np.zeros(0, dtype=int)
    return Scores(y_true, pred.p_ai, pred.paths, split or folder.name, name or str(folder), pred.skipped)


def score_control(detector: Detector, control: Path | str, split: str = "val", batch_size: int = 64) -> Scores:
    """The resampling control scored: real photos that were only resampled (bicubic upscaling). A detector that
    flags them learned "was resampled", which an upscaling generator such as ESRGAN also leaves, not "was
    generated"; its false-positive rate here belongs beside every accuracy it reports."""
    return score_folder(detector, control, split, batch_size=batch_size, name=Path(control).name)


def score_generators(detector: Detector, raw_root: Path | str, split: str = "val",
                     batch_size: int = 64) -> dict[str, Scores]:
    """``{generator: Scores}`` for every generator folder of a GenImage-style tree ``raw_root/<GEN>``."""
    generators = discover_generators(raw_root)
    if not generators:
        raise LayoutError(f"{raw_root}: no generator folders <GEN>/{{train,val}}/{{ai,nature}} in it")
    return {g: score_folder(detector, Path(raw_root) / g, split, batch_size=batch_size, name=g) for g in generators}


# ------------------------------------------------------------------------------------------------- WILD


@dataclass
class WildScores:
    """One detector on WILD (``wild``): its ``Scores`` and, for each scored image, where it came from (generator,
    model family and year for fakes; photo for reals), in the same order."""

    scores: Scores
    images: list  # wild.WildImage per scored path

    def summary(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
        """AUC, then the rates at ``threshold``: TPR on the fakes, FPR on the real photos."""
        rates = metrics.rates_at(self.scores.y_true, self.scores.p_ai, threshold)
        return {"n_ai": rates.tp + rates.fn, "n_real": rates.tn + rates.fp,
                "auc": metrics.roc_auc(self.scores.y_true, self.scores.p_ai), "threshold": threshold,
                "tpr": rates.tpr, "fpr": rates.fpr}

    def column(self, attribute: str) -> list:
        """One attribute of each scored image (``group``, ``category``, ``generator``...), in score order."""
        return [getattr(image, attribute) for image in self.images]

    def tpr_by_generator(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
        """Share of each generator's images flagged ai at ``threshold``."""
        flagged: dict[str, list[bool]] = {}
        for image, p in zip(self.images, self.scores.p_ai, strict=True):
            if image.label == AI_INDEX:
                flagged.setdefault(image.generator, []).append(bool(p >= threshold))
        return {gen: float(np.mean(v)) for gen, v in flagged.items()}


def score_wild(detector: Detector, wild_dir: Path | str, *, split: str | None = None, batch_size: int = 32,
               perturb: Callable[[Image.Image], Image.Image] | None = None, progress: bool = False,
               name: str = "WILD") -> WildScores:
    """WILD images (its ``manifest.csv``; only one ``split``, ``val`` or ``test``, when given) scored by
    ``detector`` through the whole pipeline; ``perturb`` edits each image first (the content control)."""
    from ..data.wild import load_wild

    images = [im for im in load_wild(wild_dir) if split is None or im.split == split]
    pred = score_paths(detector, [im.path for im in images], batch_size=batch_size, progress=progress,
                       perturb=perturb, cache_dir=embedding_cache())
    kept = [images[i] for i in pred.kept]
    y = np.asarray([im.label for im in kept], dtype=int)
    return WildScores(Scores(y, pred.p_ai, pred.paths, split or "wild", name, pred.skipped), kept)
