"""Evaluation: score labelled folders with any detector, then measure honestly (reference §4, notebook 04).

* ``score_folder``: p(ai) for every image of ``data_dir/<split>/{ai,nature}`` through the whole pipeline.
* ``per_generator_table``: each detector on each generator of a GenImage-style tree, with its false-positive
  rate on the resampling control (real photos upscaled bicubically) beside it.
* ``cross_generator_matrix``: train on generator i, test on generator j.
* ``robustness_sweep``: accuracy and AUC under JPEG, downscaling and blur.
* ``threshold_report``: a threshold chosen on validation and applied to test, next to the leak of choosing it
  on test.
* ``python -m detectlib.evaluate --model_path models/saved_models/epoch_5.pth``: the reference's evaluation
  (per-class report, confusion matrix, ``results/figures/confusion_matrix.png``) for either detector.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from . import metrics
from .cli import add_strict, command
from .config import AI_INDEX, CLASSES, Profile, get_paths, get_profile
from .data import LayoutError, check_layout, discover_generators, extra_class_folders, list_class_images
from .features import embedding_cache
from .infer import score_paths
from .labels import DEFAULT_THRESHOLD
from .models import CheckpointError, Detector, load_checkpoint, load_detector

DEFAULT_DATA_DIR = "data/raw/ADM"  # the reference's default dataset, used when the checkpoint names none
CONTROL_NAME = "BICUBIC"


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
        cm = metrics.confusion_matrix(self.y_true, self.p_ai, threshold)
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

    def take(self, indices: Sequence[int], split: str | None = None) -> Scores:
        """The images at ``indices``, optionally renamed as another split."""
        idx = np.asarray(indices, dtype=int)
        return replace(self, y_true=self.y_true[idx], p_ai=self.p_ai[idx], paths=[self.paths[i] for i in idx],
                       split=split or self.split, skipped=[])


def labelled_files(folder: Path | str, max_per_class: int | None = None,
                   seed: int | None = None) -> tuple[list[Path], list[int]]:
    """Images of ``folder/ai`` and ``folder/nature`` with their class index: the first ``max_per_class`` of each,
    sorted, or with ``seed`` a seeded random sample of that many (in a merged folder such as ``ALL_full``, whose
    names start with the generator, the first N sorted would all be one generator). One class may be absent (a
    control set of real photos only), not both."""
    folder = Path(folder)
    present = [c for c in CLASSES if (folder / c).is_dir()]
    if not present:
        raise LayoutError(f"{folder}: no ai/ or nature/ folder in it; expected {folder}/{{ai,nature}}/ with images")
    extra = extra_class_folders(folder)
    if extra:
        warnings.warn(f"{folder}: ignoring unexpected folder(s) {', '.join(extra)}; only ai/ and nature/ are scored",
                      stacklevel=3)
    files, labels = [], []
    rng = np.random.default_rng(seed) if seed is not None else None
    for index, name in enumerate(CLASSES):
        found = list_class_images(folder / name)
        if rng is not None and max_per_class is not None and len(found) > max_per_class:
            found = [found[i] for i in sorted(rng.choice(len(found), max_per_class, replace=False))]
        found = found[:max_per_class]
        files += found
        labels += [index] * len(found)
    return files, labels


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
    files, labels = labelled_files(folder, max_per_class, seed)
    pred = score_paths(detector, files, batch_size=batch_size, workers=workers, perturb=perturb, progress=progress,
                       strict=strict, cache_dir=embedding_cache() if use_cache else None)
    y_true = np.asarray(labels, dtype=int)[pred.kept] if pred.kept else np.zeros(0, dtype=int)
    return Scores(y_true, pred.p_ai, pred.paths, split or folder.name, name or str(folder), pred.skipped)


def control_dir(profile: Profile | str | None = None) -> Path:
    """The resampling control of the demo dataset: bicubic-upscaled real photos, ``controls/BICUBIC/val/nature``."""
    return get_paths(profile).data / "controls" / CONTROL_NAME


def score_control(detector: Detector, control: Path | str, split: str = "val", batch_size: int = 64) -> Scores:
    """The resampling control scored: real photos that were only resampled (bicubic upscaling). A detector that
    flags them learned "was resampled", which an upscaling generator such as ESRGAN also leaves, not "was
    generated"; its false-positive rate here belongs beside every accuracy it reports."""
    return score_folder(detector, control, split, batch_size=batch_size, name=Path(control).name)


def trained_on(checkpoint: Detector | Mapping) -> list[Path]:
    """The dataset folder(s) a checkpoint says it was trained on (``config.data_dir`` or ``config.data_dirs``);
    empty for a bare state dict."""
    meta = checkpoint.meta if isinstance(checkpoint, Detector) else checkpoint
    config = meta.get("config") or {}
    return [Path(d) for d in (config.get("data_dirs") or [config.get("data_dir")]) if d]


@dataclass(frozen=True)
class TrainingData:
    """What a detector learned from, in words, and whether its score on a real-world image means anything:
    ``real_world`` is True for data of your own (trained in ``full``), False for the kit's own fakes (trained in
    ``smoke`` or ``demo``), None when the checkpoint does not say (a bare reference state dict)."""

    text: str
    real_world: bool | None


def training_data(checkpoint: Detector | Mapping) -> TrainingData:
    """A checkpoint's training data as ``TrainingData``, read from what training recorded in it."""
    meta = checkpoint.meta if isinstance(checkpoint, Detector) else checkpoint
    config = meta.get("config") or {}
    names = ", ".join(p.name for p in trained_on(meta)) or "?"
    if config.get("profile") in ("smoke", "demo"):
        return TrainingData(f"{names}: the kit's own fakes (autoencoder, DCGAN and Real-ESRGAN images made from a "
                            "few photos)", False)
    if not config:
        return TrainingData("not recorded in the checkpoint", None)
    return TrainingData(f"{names} (your data)", True)


TRANSFER_DETECTOR = "EfficientNet-Lite0 (pretrained)"


def ensure_detectors(profile: Profile | str | None = None) -> dict[str, Path]:
    """``{"ConvNeXt": best.pth, "CLIP head": clip_head.pth}``: the checkpoints notebooks 02 and 03 write, each
    trained first with the profile's defaults on the demo dataset's first generator when missing, so notebooks 04
    and 05 also run on their own. Notebook 02's fine-tuned pretrained EfficientNet-Lite0 joins them when it is
    there (it is never trained here: that is notebook 02's lesson)."""
    from .synth import ensure_demo_dataset
    from .train import train_convnext
    from .train_clip_head import train_clip_head

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    models = get_paths(profile).models
    convnext, head = models / "best.pth", models.parent / "clip_head" / "clip_head.pth"
    if not (convnext.is_file() and head.is_file()):
        raw = ensure_demo_dataset(profile)
        folder = raw / discover_generators(raw)[0]
        if not convnext.is_file():
            convnext = train_convnext(folder, profile=profile, progress=False).best_checkpoint
        if not head.is_file():
            head = train_clip_head(folder, profile=profile, progress=False).checkpoint_path
    found = {"ConvNeXt": convnext, "CLIP head": head}
    transfer = finetuned_checkpoint(profile)
    return found | ({TRANSFER_DETECTOR: transfer} if transfer.is_file() else {})


def finetuned_checkpoint(profile: Profile | str | None = None) -> Path:
    """Where notebook 02 saves its ImageNet-pretrained EfficientNet-Lite0 fine-tuned end to end: the fair opponent
    of the frozen head (notebook 03), since both start from pretrained features."""
    return get_paths(profile).models.parent / "transfer" / "pretrained" / "best.pth"


# ----------------------------------------------------------------------------------------------- tables


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """Rows of dicts as an aligned text table (floats rounded, NaN shown as '-'); the notebooks print these."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    body = [[cell(row.get(c, float("nan"))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) if v[:1].isdigit() or v[:1] in "-." else v.ljust(w)
                        for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def score_generators(detector: Detector, raw_root: Path | str, split: str = "val",
                     batch_size: int = 64) -> dict[str, Scores]:
    """``{generator: Scores}`` for every generator folder of a GenImage-style tree ``raw_root/<GEN>``."""
    generators = discover_generators(raw_root)
    if not generators:
        raise LayoutError(f"{raw_root}: no generator folders <GEN>/{{train,val}}/{{ai,nature}} in it")
    return {g: score_folder(detector, Path(raw_root) / g, split, batch_size=batch_size, name=g) for g in generators}


def per_generator_table(
    scores: Mapping[str, Mapping[str, Scores]],
    control: Mapping[str, Scores] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[dict]:
    """Rows ``detector, generator, n, accuracy, TPR, TNR, FPR, AUC, ...`` from ``scores[detector][generator]``
    (``score_generators``), each detector's resampling-control row beside them (``control[detector]``): real
    photos only, so there only the false-positive rate means anything."""
    rows = []
    for name, sets in scores.items():
        rows += [{"detector": name, "generator": gen, **s.summary(threshold)} for gen, s in sets.items()]
        if control is not None and name in control:
            c = control[name]
            rates = metrics.rates_at(c.y_true, c.p_ai, threshold)
            rows.append({"detector": name, "generator": f"{c.name} (control)", "n": len(c),
                         "accuracy": rates.accuracy, "tnr": rates.tnr, "fpr": rates.fpr})
    return rows


# ------------------------------------------------------------------------------------------- thresholds


def split_val_test(scores: Scores, test_fraction: float = 0.5, seed: int = 0) -> tuple[Scores, Scores]:
    """Two disjoint, class-stratified parts of one scored set, named ``val`` and ``test``: a held-out test set
    when a dataset has only train/val (the demo's does)."""
    from sklearn.model_selection import train_test_split

    val_idx, test_idx = train_test_split(np.arange(len(scores)), test_size=test_fraction, random_state=seed,
                                         stratify=scores.y_true)
    return scores.take(np.sort(val_idx), "val"), scores.take(np.sort(test_idx), "test")


def unchosen_scores(checkpoints: Mapping[str, Path], raw_root: Path | str,
                    scored: Mapping[str, Scores]) -> dict[str, Scores]:
    """Validation scores that nothing was chosen on, for the threshold lesson. A ``best.pth`` was picked by its
    validation accuracy, so those images are not a fair test of it: its run's last epoch (``epoch_{N}.pth``,
    which nothing chose) is scored instead. Other checkpoints (the heads keep their last epoch) keep their
    ``scored`` pooled validation scores."""
    from .train import latest_checkpoint

    out = {}
    for name, path in checkpoints.items():
        last = latest_checkpoint(Path(path).parent) if Path(path).name == "best.pth" else None
        if last is None:
            out[name] = scored[name]
        else:
            parts = score_generators(load_detector(last), raw_root)
            out[name] = Scores.pooled(list(parts.values()), f"{name} ({last.name})")
    return out


def honest_threshold(val: Scores, test: Scores, rule: str = "youden",
                     max_fpr: float = 0.05) -> tuple[metrics.ThresholdChoice, metrics.Rates]:
    """Choose the threshold on ``val`` only, then measure it once on ``test``.

    Refuses a ``val`` that is a test split, or the two sets sharing an image: either would let test data shape
    the threshold. Test scores are read only after the choice is frozen.
    """
    if val.split == "test":
        raise ValueError("the threshold must be chosen on validation scores, not on a split named 'test'")
    shared = set(map(str, val.paths)) & set(map(str, test.paths))
    if shared:
        raise ValueError(f"validation and test share {len(shared)} image(s), e.g. {sorted(shared)[0]}")
    choice = metrics.choose_threshold(val.y_true, val.p_ai, rule, max_fpr)
    return choice, choice.rates(test.y_true, test.p_ai)


def threshold_report(val: Scores, test: Scores, rule: str = "accuracy") -> list[dict]:
    """Test accuracy of the threshold chosen on validation (honest) and of one chosen on test itself (the leak,
    computed only to show how it flatters: it is a number nobody could reproduce on new images)."""
    honest, on_test = honest_threshold(val, test, rule)
    leaked = metrics.choose_threshold(test.y_true, test.p_ai, rule)  # deliberately wrong, for the lesson
    return [
        {"chosen on": "val (honest)", "threshold": honest.threshold,
         "val accuracy": honest.val_rates.accuracy, "test accuracy": on_test.accuracy},
        {"chosen on": "test (leak)", "threshold": leaked.threshold,
         "val accuracy": metrics.accuracy(val.y_true, val.p_ai, leaked.threshold),
         "test accuracy": metrics.accuracy(test.y_true, test.p_ai, leaked.threshold)},
    ]


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
    from .clip_head import head_p_ai

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
    from .clip_head import FrozenEncoder, make_encoder
    from .features import embed_folder
    from .train_clip_head import train_clip_head

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
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

    def tpr_by_generator(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
        """Share of each generator's images flagged ai at ``threshold``."""
        flagged: dict[str, list[bool]] = {}
        for image, p in zip(self.images, self.scores.p_ai, strict=True):
            if image.label == AI_INDEX:
                flagged.setdefault(image.generator, []).append(bool(p >= threshold))
        return {gen: float(np.mean(v)) for gen, v in flagged.items()}


def score_wild(detector: Detector, wild_dir: Path | str, *, batch_size: int = 32, progress: bool = False,
               name: str = "WILD") -> WildScores:
    """Every WILD image (its ``manifest.csv``) scored by ``detector`` through the whole pipeline."""
    from .wild import load_wild

    images = load_wild(wild_dir)
    pred = score_paths(detector, [im.path for im in images], batch_size=batch_size, progress=progress,
                       cache_dir=embedding_cache())
    kept = [images[i] for i in pred.kept]
    y = np.asarray([im.label for im in kept], dtype=int)
    return WildScores(Scores(y, pred.p_ai, pred.paths, "wild", name, pred.skipped), kept)


def validation_threshold(val: Scores, rule: str = "youden") -> float:
    """The threshold a detector's own validation set chooses (``metrics.choose_threshold``): what a user who tuned
    it on its training distribution would deploy on new images."""
    return metrics.choose_threshold(val.y_true, val.p_ai, rule).threshold


def compare_detectors(checkpoints: Mapping[str, Path], raw_root: Path | str, wild_dir: Path | str | None = None,
                      control: Path | str | None = None) -> list[dict]:
    """One row per checkpoint, the comparisons a lesson makes in one table: accuracy and AUC on the pooled
    validation images of every generator of ``raw_root``, the false-positive rate on the resampling ``control``
    (when given and built), and the AUC on WILD with its verdict (when ``wild_dir`` is given)."""
    rows = []
    for name, path in checkpoints.items():
        detector = load_detector(path)
        val = Scores.pooled(list(score_generators(detector, raw_root).values()), name)
        row = {"detector": name, "val accuracy": metrics.accuracy(val.y_true, val.p_ai),
               "val auc": metrics.roc_auc(val.y_true, val.p_ai)}
        if control is not None and (Path(control) / "val").is_dir():
            c = score_control(detector, control)
            row["control fpr"] = metrics.rates_at(c.y_true, c.p_ai).fpr
        if wild_dir is not None:
            summary = score_wild(detector, wild_dir).summary()
            row["wild auc"] = summary["auc"]
            row["wild verdict"] = describe_auc(summary["auc"], summary["n_ai"], summary["n_real"])
        rows.append(row)
    return rows


def auc_band(auc: float, n_ai: int, n_real: int) -> str:
    """"chance" when the AUC is within two standard errors (``metrics.auc_standard_error``) of 0.5, else "above" or
    "below": the verdict ``describe_auc`` words, as a value a check can compare."""
    if math.isnan(auc):
        return "unmeasurable"
    if abs(auc - 0.5) <= 2 * metrics.auc_standard_error(auc, n_ai, n_real):
        return "chance"
    return "below" if auc < 0.5 else "above"


def describe_auc(auc: float, n_ai: int, n_real: int) -> str:
    """An AUC in words, from the number and its sampling noise (``auc_band``): what a lesson prints after a run
    instead of a verdict typed in before it."""
    band = auc_band(auc, n_ai, n_real)
    if band == "unmeasurable":
        return "not measurable (one class missing)"
    sentence = f"AUC {auc:.3f} ± {2 * metrics.auc_standard_error(auc, n_ai, n_real):.3f} on {n_ai} AI images and " \
               f"{n_real} photos"
    if band == "chance":
        return f"no better than chance ({sentence})"
    if band == "below":
        return f"worse than chance: it ranks real photos as more AI-like than the fakes ({sentence})"
    return ("strong" if auc >= 0.9 else "useful" if auc >= 0.75 else "weak, but better than chance") + f" ({sentence})"


def wild_table(wild: Mapping[str, WildScores], thresholds: Mapping[str, float]) -> list[dict]:
    """One row per detector: its AUC on WILD with a verdict, and at the threshold its validation set chose, the
    share of fakes caught (TPR) and of real photos flagged (FPR)."""
    rows = []
    for name, ws in wild.items():
        summary = ws.summary(thresholds.get(name, DEFAULT_THRESHOLD))
        rows.append({"detector": name, **summary,
                     "verdict": describe_auc(summary["auc"], summary["n_ai"], summary["n_real"])})
    return rows


def wild_generator_table(wild: Mapping[str, WildScores], thresholds: Mapping[str, float]) -> list[dict]:
    """One row per WILD generator (oldest model first): family, year, images, then each detector's TPR at its
    validation threshold; a last row with each detector's FPR on WILD's real photos."""
    first = next(iter(wild.values()))
    info: dict[str, tuple[str, str, int]] = {}
    for image in first.images:
        if image.label == AI_INDEX:
            family, year, n = info.get(image.generator, (image.family, str(image.year), 0))
            info[image.generator] = (family, year, n + 1)
    tprs = {name: ws.tpr_by_generator(thresholds.get(name, DEFAULT_THRESHOLD)) for name, ws in wild.items()}
    rows = [{"generator": gen, "family": family, "year": year, "n": n,
             **{f"TPR {name}": tprs[name].get(gen, float("nan")) for name in wild}}
            for gen, (family, year, n) in sorted(info.items(), key=lambda kv: (kv[1][1], kv[1][0], kv[0]))]
    real = sum(1 for im in first.images if im.label != AI_INDEX)
    rows.append({"generator": "real photos (FPR)", "family": "photo", "year": "", "n": real,
                 **{f"TPR {name}": ws.summary(thresholds.get(name, DEFAULT_THRESHOLD))["fpr"]
                    for name, ws in wild.items()}})
    return rows


@dataclass
class LeaveGeneratorsOut:
    """The frozen-encoder head trained on some WILD generators and tested on the others, over repeated random
    splits. Reals are split by photo (all crops of one photo fall on one side), so a test photo was never seen."""

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
    seed: int = 0,
    perturb: Callable[[Image.Image], Image.Image] | None = None,
) -> LeaveGeneratorsOut:
    """The field's test of generalisation, on real generators: for each of ``repeats`` random splits, hold out a
    ``held_out`` share of WILD's generators (all their images) and of its real photos (all their crops), train the
    reference's head on the embeddings of the rest, and measure it on the held-out part only.

    Every image is encoded once through the cache (``features``), so each split trains a head in a second.
    Repeating the split gives a spread, not one lucky draw. Returns per-split AUC, and TPR/FPR at the reference's
    threshold (score 0, p(ai) = 0.5), in ``LeaveGeneratorsOut``.

    ``perturb`` edits every image before it is encoded (encoded afresh, outside the cache). The *content control*
    is ``Perturbation("downscale", 0.125)``: at 28 px no generation trace survives, only what the picture shows;
    an AUC that stays as high there was earned by content (portraits against landscapes), not by detection.
    """
    from .clip_head import FrozenEncoder, make_encoder
    from .features import embed_samples
    from .train_clip_head import train_head
    from .wild import load_wild

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    enc = encoder if isinstance(encoder, FrozenEncoder) else make_encoder(encoder or prof.encoder)
    images = load_wild(wild_dir)
    embedded = embed_samples(enc, [(im.path, im.label) for im in images],
                             embedding_cache(prof) if perturb is None else None, perturb=perturb)
    by_path = {str(im.path): im for im in images}
    kept = [by_path[str(p)] for p in embedded.paths]
    # One unit per held-out decision: a generator for fakes, a photo for reals.
    units = [(im.label, im.generator if im.label == AI_INDEX else im.group) for im in kept]
    fakes = sorted({u for lab, u in units if lab == AI_INDEX})
    photos = sorted({u for lab, u in units if lab != AI_INDEX})
    if len(fakes) < 2 or len(photos) < 2:
        raise LayoutError(f"{wild_dir}: leave-generators-out needs two or more generators and photos, found "
                          f"{len(fakes)} and {len(photos)}")
    rng = np.random.default_rng(seed)
    epochs = epochs if epochs is not None else 4 * prof.epochs
    splits = []
    for repeat in range(repeats):
        out_fakes = set(rng.choice(fakes, size=max(1, round(held_out * len(fakes))), replace=False).tolist())
        out_photos = set(rng.choice(photos, size=max(1, round(held_out * len(photos))), replace=False).tolist())
        test = [i for i, (lab, u) in enumerate(units) if u in (out_fakes if lab == AI_INDEX else out_photos)]
        train = sorted(set(range(len(units))) - set(test))
        seen = embedded.take(train)
        head = train_head(seen, seen, epochs=epochs, lr=lr, batch_size=prof.batch_size, seed=seed + repeat)
        part = embedded.take(test)
        y, p = part.labels.numpy(), _head_p_ai(head, part.embeddings)
        rates = metrics.rates_at(y, p)
        # Photoreal fakes only (no illustrations or posters) against the same photos: what content alone can't do.
        real_look = np.asarray([kept[i].label != AI_INDEX or kept[i].style == "photoreal" for i in test])
        splits.append({"split": repeat, "held_out": sorted(out_fakes), "train images": len(train),
                       "test ai": rates.tp + rates.fn, "test real": rates.tn + rates.fp,
                       "auc": metrics.roc_auc(y, p), "auc photoreal": metrics.roc_auc(y[real_look], p[real_look]),
                       "tpr": rates.tpr, "fpr": rates.fpr})
    return LeaveGeneratorsOut(enc.spec, splits, getattr(perturb, "label", "original") if perturb else "original")


# ------------------------------------------------------------------------------------------- robustness


@dataclass(frozen=True)
class Perturbation:
    """One everyday degradation applied to the decoded image before the detector's own preprocessing:
    ``jpeg`` (quality), ``downscale`` (factor; the detector's resize brings it back up), ``blur`` (Gaussian σ)."""

    kind: str = "none"
    value: float = 0.0

    @property
    def label(self) -> str:
        return {"none": "original", "jpeg": f"JPEG q={self.value:g}", "downscale": f"downscale x{self.value:g}",
                "blur": f"blur σ={self.value:g}"}[self.kind]

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.kind == "jpeg":
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=int(self.value))
            buffer.seek(0)
            return Image.open(buffer).convert("RGB")
        if self.kind == "downscale":
            size = (max(1, round(image.width * self.value)), max(1, round(image.height * self.value)))
            return image.resize(size, Image.Resampling.BICUBIC)  # antialiased when shrinking
        if self.kind == "blur":
            return image.filter(ImageFilter.GaussianBlur(radius=self.value))  # Pillow's radius is σ
        if self.kind == "none":
            return image
        raise ValueError(f"unknown perturbation {self.kind!r}; use none, jpeg, downscale or blur")


ROBUSTNESS_SWEEP: tuple[Perturbation, ...] = (
    Perturbation(),
    *(Perturbation("jpeg", q) for q in (95, 75, 50, 30)),
    *(Perturbation("downscale", f) for f in (0.5, 0.25)),
    *(Perturbation("blur", s) for s in (1, 2, 3)),
)


def robustness_sweep(
    detectors: Mapping[str, Detector],
    data_dir: Path | str,
    split: str = "val",
    perturbations: Sequence[Perturbation] = ROBUSTNESS_SWEEP,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    max_per_class: int | None = None,
    seed: int | None = 0,
) -> list[dict]:
    """Accuracy and AUC of every detector under every perturbation of ``data_dir/<split>``: a seeded random sample
    of ``max_per_class`` images per class (ten passes over a folder add up), the same images for every detector
    and perturbation (``seed=None``: the first ones, sorted).

    Detectors that key on invisible high-frequency traces (upsampling grids, noise) lose them to exactly these
    everyday edits: a social network re-encodes and resizes every upload.
    """
    rows = []
    for name, detector in detectors.items():
        for perturbation in perturbations:
            scores = score_folder(detector, data_dir, split, perturb=perturbation, batch_size=batch_size,
                                  max_per_class=max_per_class, seed=seed)
            rows.append({"detector": name, "perturbation": perturbation.label, "kind": perturbation.kind,
                         "value": perturbation.value,
                         "accuracy": metrics.accuracy(scores.y_true, scores.p_ai, threshold),
                         "auc": metrics.roc_auc(scores.y_true, scores.p_ai)})
    return rows


# ------------------------------------------------------------------------------------------- benchmark


def pipeline_vs_model_throughput(
    detector: Detector,
    paths: Sequence[Path | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
    repeats: int = 3,
    min_seconds: float = 2.0,
) -> dict[str, float]:
    """Images per second of the whole pipeline (decode, preprocess, model) and of the model's forward alone on
    the same preprocessed batches; ``ratio`` near 1 means loading never starves the model (goal >= 0.85,
    ``make bench``).

    Decoding and preprocessing alone are timed too: when they share the cores with the model, the pipeline can at
    best reach ``serial_ceiling`` = model time / (model time + decode time). The three are timed in alternation,
    at least ``repeats`` rounds and until each has run ``min_seconds``, and compared by total time: on a shared
    machine a busy moment then hits all alike instead of one best case.
    """
    import torch

    from .data import decode_side_of, load_image

    paths = list(paths)
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    side = decode_side_of(detector.transform)  # decoded as score_paths decodes

    def decode() -> list[torch.Tensor]:
        return [torch.stack([detector.transform(load_image(p, side)) for p in chunk]) for chunk in chunks]

    batches = decode()
    for batch in batches:  # warm-up: first-call allocations for each batch shape are not throughput
        detector.p_ai(batch)

    def timed(run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    model_s = pipeline_s = decode_s = 0.0
    rounds = 0
    while rounds < repeats or min(model_s, pipeline_s, decode_s) < min_seconds:
        model_s += timed(lambda: [detector.p_ai(b) for b in batches])
        pipeline_s += timed(lambda: score_paths(detector, paths, batch_size=batch_size, workers=workers))
        decode_s += timed(decode)
        rounds += 1
    images = len(paths) * rounds
    return {"images": len(paths), "batch_size": batch_size, "rounds": rounds,
            "pipeline_img_s": images / pipeline_s, "model_img_s": images / model_s,
            "decode_img_s": images / decode_s, "serial_ceiling": model_s / (model_s + decode_s),
            "ratio": model_s / pipeline_s}


def infer_latency_vs_import_floor(image_path: Path | str, model_path: Path | str, *, runs: int = 3) -> dict[str, float]:
    """Seconds from process start to printed prediction of ``python -m detectlib.infer`` and of the floor
    ``python -c "import torch, timm"``, alternated ``runs`` times; medians and their ratio (goal <= 1.25,
    ``make bench``): the single-image command must import nothing its job does not need."""
    import os
    import statistics
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def seconds(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        return time.perf_counter() - start

    floor, infer = [], []
    for _ in range(runs):
        floor.append(seconds([sys.executable, "-c", "import torch, timm"]))
        infer.append(seconds([sys.executable, "-m", "detectlib.infer", "--image_path", str(image_path),
                              "--model_path", str(model_path)]))
    floor_s, infer_s = statistics.median(floor), statistics.median(infer)
    return {"floor_s": floor_s, "infer_s": infer_s, "ratio": infer_s / floor_s}


# ------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.evaluate",
        description="Evaluate a trained detector (ConvNeXt or CLIP head, recognised from the checkpoint) on one "
                    "split of a reference-layout dataset: per-class precision/recall/F1 and the confusion matrix.",
    )
    parser.add_argument("--model_path", required=True, help="checkpoint, e.g. models/saved_models/epoch_5.pth")
    parser.add_argument("--data_dir", default=None,
                        help="dataset root with <split>/ai and <split>/nature (default: the folder the checkpoint "
                             f"was trained on, else {DEFAULT_DATA_DIR})")
    parser.add_argument("--split", default="val", help="which split to evaluate (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="p(ai) at or above which an image counts as ai (default 0.5: argmax / CLIP score 0)")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size (default: %(default)s)")
    parser.add_argument("--figure", default="results/figures/confusion_matrix.png",
                        help="where to save the confusion matrix (default: %(default)s)")
    parser.add_argument("--wild", nargs="?", const="", default=None, metavar="DIR",
                        help="then score WILD, real text-to-image outputs against real photos (default folder: the "
                             "profile's data/wild, built by `python -m detectlib.wild`), at the threshold this "
                             "split chooses: AUC, TPR per generator, FPR on the photos")
    add_strict(parser)
    return parser


def _default_data_dir(model_path: Path) -> Path:
    """The (first) dataset the checkpoint was trained on, if it is still there, else the reference's default."""
    found = [d for d in trained_on(load_checkpoint(model_path)) if d.is_dir()]
    return found[0] if found else Path(DEFAULT_DATA_DIR)


def format_confusion(cm: np.ndarray) -> str:
    """The confusion matrix with its class names: rows are the true class, columns the prediction."""
    width = max(len(c) for c in CLASSES) + 2
    lines = ["Confusion matrix (rows: true class, columns: predicted):", " " * width + "".join(
        c.rjust(width) for c in CLASSES)]
    lines += [name.ljust(width) + "".join(str(v).rjust(width) for v in row) for name, row in zip(CLASSES, cm,
                                                                                                 strict=True)]
    return "\n".join(lines)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """The reference's evaluation (§4). Bad paths and checkpoints: a one-line error, exit code 2. Unreadable
    images are skipped with a warning each and a summary (``--strict``: the first one is an error, exit 2)."""
    args = build_parser().parse_args(argv)
    model_path = Path(args.model_path)
    if not model_path.is_file():
        raise CheckpointError(f"--model_path {model_path}: checkpoint not found; train one first "
                              "(python -m detectlib.train) or check the path")
    data_dir = Path(args.data_dir) if args.data_dir else _default_data_dir(model_path)
    check_layout(data_dir, [args.split])  # bad paths and checkpoints: cli.command prints one line, exit 2
    detector = load_detector(model_path)
    scores = score_folder(detector, data_dir, args.split, batch_size=args.batch_size, progress=True,
                          strict=args.strict)
    if not len(scores):
        print(f"error: {data_dir / args.split}: no readable images", file=sys.stderr)
        return 2
    print(f"Evaluating {detector.kind} checkpoint {model_path} on {data_dir / args.split} ({len(scores)} images, "
          f"threshold {args.threshold:g} on p(ai))\n{detector.describe()}\n")
    print(scores.report(args.threshold))

    import matplotlib.pyplot as plt

    from . import plots

    fig = plots.plot_confusion_matrix(metrics.confusion_matrix(scores.y_true, scores.p_ai, args.threshold),
                                      title=f"{detector.kind} on {data_dir.name}/{args.split}")
    print(f"Confusion matrix figure: {plots.save_figure(fig, args.figure)}")
    plt.close(fig)
    if args.wild is not None:
        print_wild_report(detector, Path(args.wild) if args.wild else get_paths().wild, scores)
    return 0


def print_wild_report(detector: Detector, wild_dir: Path, val: Scores) -> None:
    """``--wild``: the detector on WILD at the threshold its validation scores ``val`` choose."""
    from .wild import MANIFEST

    if not (wild_dir / MANIFEST).is_file():
        raise LayoutError(f"--wild {wild_dir}: no WILD set there (no {MANIFEST}); build it with "
                          "`python -m detectlib.wild` or pass its folder")
    threshold = validation_threshold(val)
    wild = {detector.kind: score_wild(detector, wild_dir, progress=True)}
    summary = wild[detector.kind].summary(threshold)
    print(f"\nWILD ({wild_dir}): {summary['n_ai']} AI images, {summary['n_real']} real photos. Threshold "
          f"{threshold:.3f} on p(ai), chosen on {val.name} ({val.split}).")
    print(f"ROC-AUC {summary['auc']:.4f} | fakes caught (TPR) {summary['tpr']:.1%} | real photos flagged (FPR) "
          f"{summary['fpr']:.1%}\n")
    print(format_table(wild_generator_table(wild, {detector.kind: threshold})))


if __name__ == "__main__":
    sys.exit(main())
