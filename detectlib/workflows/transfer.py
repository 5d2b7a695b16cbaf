"""Does a detector transfer to generators it never saw? The cross-generator matrix (train a head on generator i,
test on j) and leave-generators-out, both on cached embeddings, with a content control (notebooks 03 and 05)."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import AI_INDEX, Profile, get_paths, get_profile, seed_of
from ..data.layout import LayoutError, discover_generators
from ..evaluation import metrics
from ..labels import DEFAULT_THRESHOLD
from ..models.clip_head import head_p_ai
from ..models.features import embedding_cache

# -------------------------------------------------------------------------------------- cross-generator


@dataclass
class CrossGenerator:
    """Train on generator i (row), test on generator j (column). The diagonal is the familiar in-distribution
    number; the rest is what a detector does on a generator it never saw (GenImage: ResNet-50 trained on one
    generator averages 72 % over eight)."""

    train_generators: list[str]
    test_generators: list[str]
    auc: np.ndarray  # (train, test)
    accuracy: np.ndarray
    control_fpr: np.ndarray  # per row: real photos that were only resampled, flagged ai (NaN without control)
    encoder: str

    def _mean(self, metric: str, same: bool) -> float:
        mask = np.array([[(a == b) == same for b in self.test_generators] for a in self.train_generators])
        return float(np.nanmean(getattr(self, metric)[mask])) if mask.any() else float("nan")

    def diagonal(self, metric: str = "auc") -> float:
        """Mean over pairs tested on their own training generator: the in-distribution number."""
        return self._mean(metric, same=True)

    def off_diagonal(self, metric: str = "auc") -> float:
        """Mean over pairs whose test generator differs from the training one: the generalisation number."""
        return self._mean(metric, same=False)

    def rows(self, metric: str = "auc") -> list[dict]:
        """One table row per training generator: the metric on each test generator, then the control's FPR."""
        values = getattr(self, metric)
        return [{"trained on": name, **{f"{metric} {t}": float(v) for t, v in zip(self.test_generators, row,
                                                                                   strict=True)},
                 "control FPR": float(fpr)}
                for name, row, fpr in zip(self.train_generators, values, self.control_fpr, strict=True)]


def _head_p_ai(head, embeddings) -> np.ndarray:
    return head_p_ai(head, embeddings).double().numpy()


def cross_generator_matrix(
    raw_root: Path | str,
    *,
    generators: Sequence[str] | None = None,
    encoder=None,
    profile: Profile | str | None = None,
    control: Path | str | None = None,
    split: str = "val",
    epochs: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    out_dir: Path | str | None = None,
    limit: int | None = None,
) -> CrossGenerator:
    """Train one CLIP-style head per generator of ``raw_root`` (demo families or any GenImage-style tree) and
    test it on every generator's ``split``. ``limit`` keeps the first N images per class and split of each
    generator, for training and testing alike (notebook 03's ``LIMIT`` reuses its cached embeddings).

    Why the frozen-encoder head rather than N ConvNeXt runs: each image is encoded once (``features`` caches the
    embeddings, shared with notebook 03), so a head trains in seconds and the N x N tests are matrix products;
    N ConvNeXt trainings plus N^2 passes over the images would take the whole lesson. ``encoder`` is a spec or a
    built ``FrozenEncoder`` (default: the profile's); heads are saved under ``out_dir/<GEN>`` (default
    ``models/cross_generator``).
    """
    from ..models.encoders import FrozenEncoder, make_encoder
    from ..models.features import embed_folder
    from ..training.clip_head import train_clip_head

    prof = get_profile(profile)
    paths = get_paths(prof)
    raw_root = Path(raw_root)
    names = list(generators or discover_generators(raw_root))
    if len(names) < 2:
        raise LayoutError(f"{raw_root}: a cross-generator matrix needs two or more generator folders, found {names}")
    enc = encoder if isinstance(encoder, FrozenEncoder) else make_encoder(encoder or prof.encoder)
    cache = embedding_cache(prof)
    tests = {name: embed_folder(enc, raw_root / name / split, cache, limit=limit) for name in names}
    control_set = (embed_folder(enc, Path(control) / split, cache)
                   if control is not None and (Path(control) / split).is_dir() else None)
    out_dir = Path(out_dir) if out_dir is not None else paths.models.parent / "cross_generator"
    auc, acc = np.full((len(names), len(names)), np.nan), np.full((len(names), len(names)), np.nan)
    fpr = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        with contextlib.redirect_stdout(io.StringIO()):  # the matrix is the output, not N training logs
            head = train_clip_head(raw_root / name, encoder=enc, epochs=epochs, profile=prof,
                                   out_dir=out_dir / name, progress=False, limit=limit).detector.head
        for j, test in enumerate(tests.values()):
            y, p = test.labels.numpy(), _head_p_ai(head, test.embeddings)
            auc[i, j], acc[i, j] = metrics.roc_auc(y, p), metrics.accuracy(y, p, threshold)
        if control_set is not None and len(control_set.paths):
            p = _head_p_ai(head, control_set.embeddings)
            fpr[i] = metrics.rates_at(control_set.labels.numpy(), p, threshold).fpr
    return CrossGenerator(names, names, auc, acc, fpr, enc.spec)


@dataclass
class LeaveGeneratorsOut:
    """The frozen-encoder head trained on some WILD model families and tested on the others, over repeated random
    splits. Reals are split by group (a photo and its near-duplicates fall on one side), and no group of a test
    image is trained on, so a test image was never seen, not even as a near-duplicate."""

    encoder: str
    splits: list[dict]  # per split: held-out generators, counts, AUC, TPR and FPR at threshold 0 (score)
    images: str = "original"  # or the perturbation every image went through (the content control)

    @property
    def aucs(self) -> np.ndarray:
        return np.asarray([s["auc"] for s in self.splits], dtype=float)

    @property
    def mean_auc(self) -> float:
        return float(np.nanmean(self.aucs))

    @property
    def std_auc(self) -> float:
        return float(np.nanstd(self.aucs))

    def mean(self, key: str) -> float:
        """The mean of one per-split number (``auc``, ``auc photoreal``, ``tpr``, ``fpr``) over the splits."""
        return float(np.nanmean([s[key] for s in self.splits]))

    def rows(self) -> list[dict]:
        return [{k: v for k, v in s.items() if k != "held_out"} | {"held out": ", ".join(s["held_out"])}
                for s in self.splits]


def read_content_control(lgo: LeaveGeneratorsOut, content: LeaveGeneratorsOut) -> str:
    """The content control in words: how much of the leave-generators-out AUC survives when no generation trace
    can (``content``: the same splits on images shrunk first). Noise: the standard error of each mean over splits."""
    n = max(1, min(len(lgo.splits), len(content.splits)))
    noise = 2 * math.hypot(lgo.std_auc, content.std_auc) / math.sqrt(n)
    gap = lgo.mean_auc - content.mean_auc
    if gap <= noise:
        return (f"content explains it: with every image shrunk first ({content.images}), where no generation trace "
                f"survives, the head still reaches AUC {content.mean_auc:.3f} against {lgo.mean_auc:.3f}; "
                f"the traces add nothing measurable here (difference {gap:+.3f}, noise ±{noise:.3f})")
    return (f"generation traces add {gap:.3f} AUC beyond what content alone gives ({content.mean_auc:.3f} with "
            f"every image shrunk first, {content.images}; noise ±{noise:.3f})")


def leave_generators_out(
    wild_dir: Path | str,
    *,
    encoder=None,
    profile: Profile | str | None = None,
    repeats: int = 10,
    held_out: float = 0.3,
    epochs: int | None = None,
    lr: float = 1e-3,
    seed: int | None = None,
    perturb: Callable[[Image.Image], Image.Image] | None = None,
) -> LeaveGeneratorsOut:
    """The field's test of generalisation, on real generators: for each of ``repeats`` random splits, hold out a
    ``held_out`` share of WILD's model families (all their images) and of its photo groups, train the reference's
    head on the embeddings of the rest (never on a group that has a test image), and measure it on the held-out
    part only, pooled and category-balanced.

    Every image is encoded once through the cache (``features``), so each split trains a head in a second.
    Repeating the split gives a spread, not one lucky draw. Returns per-split AUC, and TPR/FPR at the reference's
    threshold (score 0, p(ai) = 0.5), in ``LeaveGeneratorsOut``.

    ``perturb`` edits every image before it is encoded (encoded afresh, outside the cache). The *content control*
    is ``Perturbation("downscale", 0.125)``: at 28 px no generation trace survives, only what the picture shows and
    its global style (colours, lighting, composition); an AUC that stays as high there was earned by those
    (portraits against landscapes), not by detection.
    """
    seed = seed_of(seed)
    from ..data.wild import load_wild
    from ..models.encoders import FrozenEncoder, make_encoder
    from ..models.features import embed_samples
    from ..training.clip_head import train_head

    prof = get_profile(profile)
    enc = encoder if isinstance(encoder, FrozenEncoder) else make_encoder(encoder or prof.encoder)
    images = load_wild(wild_dir)
    embedded = embed_samples(enc, [(im.path, im.label) for im in images],
                             embedding_cache(prof) if perturb is None else None, perturb=perturb)
    by_path = {str(im.path): im for im in images}
    kept = [by_path[str(p)] for p in embedded.paths]
    # One unit per held-out decision: a model family for fakes, a group for reals; no group straddles the split.
    units = [(im.label, im.family if im.label == AI_INDEX else im.group) for im in kept]
    fakes = sorted({u for lab, u in units if lab == AI_INDEX})
    photos = sorted({u for lab, u in units if lab != AI_INDEX})
    if len(fakes) < 2 or len(photos) < 2:
        raise LayoutError(f"{wild_dir}: leave-generators-out needs two or more model families and photo groups, "
                          f"found {len(fakes)} and {len(photos)}")
    rng = np.random.default_rng(seed)
    epochs = epochs if epochs is not None else 4 * prof.epochs
    splits = []
    for repeat in range(repeats):
        out_fakes = set(rng.choice(fakes, size=max(1, round(held_out * len(fakes))), replace=False).tolist())
        out_photos = set(rng.choice(photos, size=max(1, round(held_out * len(photos))), replace=False).tolist())
        test = [i for i, (lab, u) in enumerate(units) if u in (out_fakes if lab == AI_INDEX else out_photos)]
        test_groups = {kept[i].group for i in test}
        train = [i for i in range(len(units)) if i not in set(test) and kept[i].group not in test_groups]
        seen = embedded.take(train)
        head = train_head(seen, seen, epochs=epochs, lr=lr, batch_size=prof.batch_size, seed=seed + repeat)
        part = embedded.take(test)
        y, p = part.labels.numpy(), _head_p_ai(head, part.embeddings)
        rates = metrics.rates_at(y, p)
        # Photoreal fakes only (no illustrations or posters) against the same photos: what content alone can't do.
        real_look = np.asarray([kept[i].label != AI_INDEX or kept[i].style == "photoreal" for i in test])
        splits.append({"split": repeat, "held_out": sorted(out_fakes), "train images": len(train),
                       "test ai": rates.tp + rates.fn, "test real": rates.tn + rates.fp,
                       "auc": metrics.roc_auc(y, p), "balanced auc": metrics.balanced_auc(
                           y, p, [kept[i].category for i in test]),
                       "auc photoreal": metrics.roc_auc(y[real_look], p[real_look]),
                       "tpr": rates.tpr, "fpr": rates.fpr})
    return LeaveGeneratorsOut(enc.spec, splits, getattr(perturb, "label", "original") if perturb else "original")
