"""Train the CLIP reference's head on a frozen encoder (notebook 03, ``python -m detectlib.train_clip_head``).

The head (dropout -> Linear(dim, 1)) learns from cached embeddings (``models.features``) through the shared loop
``loop.fit``, with BCE on its logit; the target is the ImageFolder label, so the logit is the log-odds of *real*
(``nature`` = 1) and the reference's score ``2·sigmoid(logit) − 1`` is > 0 for real photos.

The reference's validation printout, and which class is "positive" in it. Its numbers only add up one way:
TNR 94 / 98, TPR 99 / 99 and F1 0.9792 = 2·94 / (2·94 + 4 + 0), the F1 of the class in the *TNR* row. The kit's
rates put ``ai`` as the positive class (``evaluation.metrics.Rates``, as notebook 04 prints them): TPR = fakes
caught, TNR = real photos let through. So the F1 printed here is the F1 of ``nature``, which is also
scikit-learn's default (``pos_label=1`` on ImageFolder labels) and the head's training target. AUC-ROC is the same
for either class.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CLASSES, Profile, get_paths, get_profile, seed_of
from ..data.layout import SPLITS, DataDirs, LayoutError, dataset_dirs, split_samples
from ..models.clip_head import ClipHeadDetector, p_ai_from_score, score_from_logit
from ..models.encoders import FrozenEncoder
from ..models.features import CacheStats, EmbeddedSet
from .loop import History

if TYPE_CHECKING:
    import torch


def reference_metrics(scores: Sequence[float] | torch.Tensor, labels: Sequence[int] | torch.Tensor) -> dict:
    """The reference's validation numbers from scores in [-1, 1] at threshold 0 (score <= 0 counts as ai):
    ``tn``/``n_nature``/``tnr`` (real photos kept), ``tp``/``n_ai``/``tpr`` (fakes caught), ``f1`` (of nature, see
    the module docstring) and ``auc``."""
    import numpy as np
    from sklearn.metrics import f1_score

    from ..evaluation import metrics

    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels, dtype=int).reshape(-1)
    p_ai = np.clip(p_ai_from_score(s), 0.0, 1.0)  # the kit's common scale, the head's own formula
    rates = metrics.rates_at(y, p_ai)
    return {
        "tn": rates.tn, "n_nature": rates.tn + rates.fp, "tnr": rates.tnr,
        "tp": rates.tp, "n_ai": rates.tp + rates.fn, "tpr": rates.tpr,
        "f1": float(f1_score(y, metrics.predict_labels(p_ai), pos_label=1, zero_division=0)),
        "auc": metrics.roc_auc(y, p_ai),
    }


def format_reference_metrics(m: Mapping[str, float]) -> str:
    """The reference's printout: rates with counts and %, F1, AUC-ROC."""
    from ..evaluation.metrics import Rates

    rates = Rates(0.5, int(m["tp"]), int(m["n_ai"] - m["tp"]), int(m["tn"]), int(m["n_nature"] - m["tn"]))
    return (f"Classification results by class (threshold = 0)\n{rates}\n"
            f"F1 score: {m['f1']:.4f}\nAUC-ROC: {m['auc']:.4f}")


def bce_on_logit(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE on the logit of *real*: the ImageFolder label (nature = 1) is the target."""
    from torch.nn import functional as F

    return F.binary_cross_entropy_with_logits(outputs.reshape(-1), targets.float())


def predict_class(outputs: torch.Tensor) -> torch.Tensor:
    """Class index at threshold 0: 1 (nature) when the logit (hence the score) is > 0."""
    return (outputs.reshape(-1) > 0).long()


def val_metrics(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """``fit``'s extra validation metrics: the reference's, from the logits."""
    return reference_metrics(score_from_logit(outputs.reshape(-1)), targets)


@dataclass
class ClipHeadResult:
    """What ``train_clip_head`` returns: the trained detector, its history, final metrics and files."""

    detector: ClipHeadDetector
    history: History
    metrics: dict  # the last epoch's validation row, reference metrics included
    checkpoint_path: Path  # self-describing, for models.load_detector
    weights_path: Path  # modelo_final.pth, for ClipHeadDetector(weights_path=...)
    cache_stats: CacheStats | None  # None when training read pixels (no cache, or fine-tuning)

    def report(self) -> str:
        return format_reference_metrics(self.metrics)


def _check_classes(labels: Mapping[str, Sequence[int]], data_dir: DataDirs) -> None:
    """Every split needs a readable image of every class: training on one class, or validating on none, is
    meaningless (and would divide by zero)."""
    for split, found in labels.items():
        missing = [c for i, c in enumerate(CLASSES) if i not in set(found)]
        if missing:
            raise LayoutError(f"{', '.join(str(d) for d in dataset_dirs(data_dir))}: no readable {split} image of class "
                              f"{', '.join(missing)}; a detector cannot learn or be measured on a class it never sees")


def _loaders(detector: ClipHeadDetector, samples: Mapping[str, list], *, batch_size: int, use_cache: bool,
             cache_dir: Path | None, progress: bool, strict: bool = False,
             data_dir: DataDirs = ()) -> tuple[Any, dict, CacheStats | None]:
    """The module ``fit`` trains and its loaders: the head over cached embeddings when the encoder is frozen and
    the cache is on, else the whole detector's logit over pixel values (each epoch runs the encoder).
    Unreadable images: the policy of ``data`` (skip with a warning and a summary; ``strict``: raise)."""
    from ..models.clip_head import LogitOutput
    from ..models.features import CacheStats, PixelDataset, embed_samples
    from .convnext import make_loaders

    if use_cache and detector.freeze:
        sets = {split: embed_samples(detector.encoder, samples[split], cache_dir, progress=progress, strict=strict)
                for split in SPLITS}
        _check_classes({split: s.labels.tolist() for split, s in sets.items()}, data_dir)
        stats = sum((s.stats for s in sets.values()), CacheStats())
        return detector.head, make_loaders({k: v.dataset() for k, v in sets.items()}, batch_size), stats
    datasets = {split: PixelDataset(samples[split], detector.preprocess, strict) for split in SPLITS}
    _check_classes({split: [label for _, label in d.samples] for split, d in datasets.items()}, data_dir)
    return LogitOutput(detector), make_loaders(datasets, batch_size), None


def _fit(model: Any, loaders: Mapping[str, Any], *, epochs: int, lr: float, seed: int, device: Any,
         progress: bool) -> History:
    from .loop import fit

    return fit(model, loaders["train"], loaders["val"], epochs=epochs, lr=lr, loss_fn=bce_on_logit,
               predict_fn=predict_class, val_metrics_fn=val_metrics, seed=seed, device=device, progress=progress)


def train_head(train: EmbeddedSet, val: EmbeddedSet, *, epochs: int, lr: float, batch_size: int,
               dropout: float = 0.35, seed: int = 0) -> torch.nn.Module:
    """The reference's head trained silently on embeddings already computed, on the CPU: what experiments that
    train many heads over one cache call (the leave-generators-out protocol). ``val`` is only measured by the
    loop, never used to choose anything (the head of the last epoch is returned, in eval mode): passing the
    training set itself is fine, and keeps every test image out of the run."""
    import torch

    from ..models.clip_head import make_head
    from .convnext import make_loaders

    torch.manual_seed(seed)  # the head's initial draw, as train_clip_head
    head = make_head(int(train.embeddings.shape[1]), dropout)
    loaders = make_loaders({"train": train.dataset(), "val": val.dataset()}, batch_size)
    with contextlib.redirect_stdout(io.StringIO()):
        _fit(head, loaders, epochs=epochs, lr=lr, seed=seed, device="cpu", progress=False)
    return head.eval()


def _resolve_encoder(encoder: str | FrozenEncoder | None, prof: Profile) -> FrozenEncoder:
    from ..models.encoders import FrozenEncoder, make_encoder

    return encoder if isinstance(encoder, FrozenEncoder) else make_encoder(encoder or prof.encoder)


def train_clip_head(
    data_dir: DataDirs,
    *,
    encoder: str | FrozenEncoder | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    dropout: float = 0.35,
    out_dir: Path | str | None = None,
    seed: int | None = None,
    profile: Profile | str | None = None,
    use_cache: bool = True,
    freeze: bool = True,
    limit: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    strict: bool = False,
) -> ClipHeadResult:
    """Train the reference's head on a frozen encoder over a reference-layout folder, or several pooled
    (notebook 03, the CLI).

    ``encoder`` is a spec for ``models.encoders.make_encoder`` or an encoder already built (default: the profile's);
    every other ``None`` takes the profile's value. Embeddings come from the cache in ``paths.cache``
    (``use_cache=False`` runs the encoder every epoch; ``freeze=False`` fine-tunes it, which bypasses the cache).
    ``limit`` keeps the first N images per class and split of each folder (a quick run).
    Writes ``clip_head.pth`` (self-describing) and ``modelo_final.pth`` (the reference's file) to ``out_dir``
    (default ``<models>/../clip_head``). The encoder runs on ``device`` (default: the GPU when there is one).
    ``progress=False`` trains silently (no bars, no per-epoch lines). A bad layout raises ``LayoutError`` before
    any model is built. Unreadable images are skipped with a warning each and a summary (``strict``: the first
    raises ``ImageLoadError``); a split left without an image of some class raises ``LayoutError``.
    """
    seed = seed_of(seed)
    prof = get_profile(profile)
    samples = split_samples(data_dir, limit)
    import torch

    from ..files import atomic_write
    from ..models.checkpoints import save_checkpoint
    from ..models.clip_head import ClipHeadDetector, FrozenHeadDetector
    from ..models.features import embedding_cache

    paths = get_paths(prof)
    epochs = epochs if epochs is not None else prof.epochs
    batch_size = batch_size if batch_size is not None else prof.batch_size
    lr = lr if lr is not None else prof.lr
    out_dir = Path(out_dir) if out_dir is not None else paths.models.parent / "clip_head"
    enc = _resolve_encoder(encoder, prof)
    torch.manual_seed(seed)  # the head's initial draw
    detector = ClipHeadDetector(encoder=enc, freeze=freeze, dropout=dropout, weights_path=None)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    detector.to(device)  # fit moves what it trains; the encoder must sit beside the head
    model, loaders, stats = _loaders(detector, samples, batch_size=batch_size, use_cache=use_cache,
                                     cache_dir=embedding_cache(prof), progress=progress, strict=strict,
                                     data_dir=data_dir)
    if progress:
        source = f"cached embeddings ({stats})" if stats is not None else "pixels (the encoder runs every epoch)"
        print(f"Encoder: {enc.description}.\nTraining the head ({enc.dim} -> 1) on {len(samples['train'])} train "
              f"/ {len(samples['val'])} val images from {source}: {epochs} epochs, batch {batch_size}, lr {lr:g}",
              flush=True)
    with contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO()):
        history = _fit(model, loaders, epochs=epochs, lr=lr, seed=seed, device=device, progress=progress)
    detector.eval()
    row = dict(history.epochs[-1])
    dirs = dataset_dirs(data_dir)
    config = {"data_dir": str(dirs[0]) if len(dirs) == 1 else None, "data_dirs": [str(d) for d in dirs],
              "profile": prof.name, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "seed": seed, "use_cache": use_cache, "limit": limit}
    weights = detector.weights_state_dict()
    meta = FrozenHeadDetector.checkpoint_meta(detector, epoch=epochs, metrics=row, history=history.epochs,
                                              config=config)
    checkpoint = save_checkpoint(out_dir / "clip_head.pth", weights, **meta)
    weights_path = atomic_write(out_dir / "modelo_final.pth", lambda tmp: torch.save(weights, tmp))
    return ClipHeadResult(detector, history, row, checkpoint, weights_path, stats)


def compare_encoders(
    data_dir: DataDirs,
    specs: Sequence[str | FrozenEncoder],
    *,
    out_dir: Path | str | None = None,
    profile: Profile | str | None = None,
    **kwargs: Any,
) -> dict[str, ClipHeadResult]:
    """One head per encoder on the same images with the same seed, keyed by encoder spec (duplicates run once):
    e.g. a frozen pretrained encoder vs the same architecture with random weights (notebook 03). Each run's files
    go to ``out_dir/<spec>`` (default ``<models>/../clip_head_compare``)."""
    prof = get_profile(profile)
    results: dict[str, ClipHeadResult] = {}
    for spec in specs:
        name = spec if isinstance(spec, str) else spec.spec
        if name not in results:
            folder = comparison_folder(name, prof, out_dir)
            results[name] = train_clip_head(data_dir, encoder=spec, out_dir=folder, profile=prof, **kwargs)
    return results


def comparison_folder(spec: str, profile: Profile | str | None = None, out_dir: Path | str | None = None) -> Path:
    """Where ``compare_encoders`` puts the run of one encoder: ``out_dir/<spec made a file name>``."""
    import re

    prof = get_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else get_paths(prof).models.parent / "clip_head_compare"
    return out_dir / re.sub(r"[^A-Za-z0-9._-]+", "_", spec)
