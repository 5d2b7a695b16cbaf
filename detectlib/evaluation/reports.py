"""What the lessons print about scores: tables per generator, thresholds chosen honestly, verdicts in words.

* ``per_generator_table``: each detector on each generator of a GenImage-style tree, with its false-positive
  rate on the resampling control (real photos upscaled bicubically) beside it.
* ``threshold_report`` / ``honest_threshold``: a threshold chosen on validation and applied to test, next to the
  leak of choosing it on test.
* ``compare_detectors``, ``wild_table``, ``describe_auc``, ``auc_band``: the numbers a lesson's sentence reads,
  with intervals that resample source photos, never images.
* ``training_data``: what a checkpoint learned from, so no score is mistaken for evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import AI_INDEX, seed_of
from ..labels import DEFAULT_THRESHOLD
from ..models.detector import Detector, load_detector
from . import metrics
from .scoring import Scores, WildScores, score_control, score_generators, score_wild
from .wild_report import ci_band


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
    if meta.get("tuned_on"):  # a training-free detector learned nothing; a few settings were chosen on images
        return TrainingData(f"nothing (training-free); its settings were chosen on {meta['tuned_on']}", True)
    names = ", ".join(p.name for p in trained_on(meta)) or "?"
    if config.get("profile") in ("smoke", "demo"):
        return TrainingData(f"{names}: the kit's own fakes (autoencoder, DCGAN and Real-ESRGAN images made from a "
                            "few photos)", False)
    if not config:
        return TrainingData("not recorded in the checkpoint", None)
    return TrainingData(f"{names} (your data)", True)


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


def split_val_test(scores: Scores, test_fraction: float = 0.5, seed: int | None = None) -> tuple[Scores, Scores]:
    """Two disjoint parts of one scored set, named ``val`` and ``test``, split **by source photo**
    (``Scores.groups``): a held-out test set when a dataset has only train/val (the demo's does). Crops of one photo
    never sit on both sides (lesson 01's rule); scikit-learn's ``StratifiedGroupKFold`` keeps the classes as
    balanced as whole groups allow. ``test_fraction`` is rounded to one fold of ``round(1 / test_fraction)``."""
    from sklearn.model_selection import StratifiedGroupKFold

    seed = seed_of(seed)
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test_fraction)), shuffle=True, random_state=seed)
    val_idx, test_idx = next(folds.split(np.zeros(len(scores)), scores.y_true, scores.groups))
    return scores.take(np.sort(val_idx), "val"), scores.take(np.sort(test_idx), "test")


def unchosen_scores(checkpoints: Mapping[str, Path], raw_root: Path | str,
                    scored: Mapping[str, Scores]) -> dict[str, Scores]:
    """Validation scores that nothing was chosen on, for the threshold lesson. A ``best.pth`` was picked by its
    validation accuracy, so those images are not a fair test of it: its run's last epoch (``epoch_{N}.pth``,
    which nothing chose) is scored instead. Other checkpoints (the heads keep their last epoch) keep their
    ``scored`` pooled validation scores."""
    from ..models.checkpoints import latest_checkpoint

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
            wild = score_wild(detector, wild_dir)
            row["wild auc"] = wild.summary()["auc"]
            row["wild verdict"] = describe_auc(wild.scores.y_true, wild.scores.p_ai, wild.column("group"))
        rows.append(row)
    return rows


def auc_band(y_true: Sequence[int], p_ai: Sequence[float], groups: Sequence[str], *,
             seed: int | None = None) -> str:
    """"chance" when the AUC's group-bootstrap 95 % interval covers 0.5, else "above" or "below": the verdict
    ``describe_auc`` words, as a value a check can compare."""
    return ci_band(metrics.group_bootstrap_ci(y_true, p_ai, groups, seed=seed))


def describe_auc(y_true: Sequence[int], p_ai: Sequence[float], groups: Sequence[str], *,
                 seed: int | None = None) -> str:
    """An AUC in words, from the number and its group-bootstrap interval (``metrics.group_bootstrap_ci``): what a
    lesson prints after a run instead of a verdict typed in before it. The interval resamples source photos, not
    images, because crops of one photo are not independent evidence."""
    y = np.asarray(y_true)
    return auc_in_words(metrics.roc_auc(y, p_ai), metrics.group_bootstrap_ci(y, p_ai, groups, seed=seed),
                        int((y == AI_INDEX).sum()), int((y != AI_INDEX).sum()), len(set(groups)))


def auc_in_words(auc: float, ci: Sequence[float], n_ai: int, n_real: int, n_groups: int) -> str:
    """``describe_auc``'s sentence from numbers already measured (a row of ``robustness_sweep``)."""
    band = ci_band(ci)
    if band == "unmeasurable":
        return "not measurable (one class missing)"
    sentence = (f"AUC {auc:.3f}, 95 % interval [{ci[0]:.3f}, {ci[1]:.3f}] on {n_ai} AI images and {n_real} photos "
                f"from {n_groups} source groups")
    if band == "chance":
        return f"no better than chance ({sentence})"
    if band == "below":
        return f"worse than chance: it ranks real photos as more AI-like than the fakes ({sentence})"
    return ("strong" if auc >= 0.9 else "useful" if auc >= 0.75 else "weak, but better than chance") + f" ({sentence})"


CHANCE_WORDS = {"above": "better than chance", "chance": "no better than chance", "below": "worse than chance",
                "unmeasurable": "not measurable"}


def wild_judge(wild_dir: Path | str, split: str = "test") -> Callable[[Detector], tuple[str, float]]:
    """A judge for ``verdicts.repeat``: one detector on WILD's ``split`` groups, in words (``CHANCE_WORDS``, from
    the group-bootstrap interval) and its AUC."""
    def judge(detector: Detector) -> tuple[str, float]:
        wild = score_wild(detector, wild_dir, split=split)
        ci = metrics.group_bootstrap_ci(wild.scores.y_true, wild.scores.p_ai, wild.column("group"))
        return CHANCE_WORDS[ci_band(ci)], metrics.roc_auc(wild.scores.y_true, wild.scores.p_ai)

    return judge


def control_judge(raw_root: Path | str, control: Path | str, margin: float = 0.05,
                  threshold: float = DEFAULT_THRESHOLD) -> Callable[[Detector], tuple[str, float]]:
    """A judge for ``verdicts.repeat``: does the detector flag the resampling control (real photos that were only
    upscaled) more often than plain real validation photos? The value is the difference of the two false-positive
    rates; within ``margin`` it says "no more often"."""
    def judge(detector: Detector) -> tuple[str, float]:
        c = score_control(detector, control)
        val = Scores.pooled(list(score_generators(detector, raw_root).values()))
        gap = metrics.rates_at(c.y_true, c.p_ai, threshold).fpr - metrics.rates_at(val.y_true, val.p_ai, threshold).fpr
        word = ("flags upscaled photos more often than plain ones" if gap > margin else
                "flags upscaled photos less often than plain ones" if gap < -margin else
                "flags upscaled photos no more often than plain ones")
        return word, gap

    return judge


def wild_table(wild: Mapping[str, WildScores], thresholds: Mapping[str, float]) -> list[dict]:
    """One row per detector: its AUC on WILD with a verdict, and at the threshold its validation set chose, the
    share of fakes caught (TPR) and of real photos flagged (FPR)."""
    rows = []
    for name, ws in wild.items():
        summary = ws.summary(thresholds.get(name, DEFAULT_THRESHOLD))
        rows.append({"detector": name, **summary,
                     "verdict": describe_auc(ws.scores.y_true, ws.scores.p_ai, ws.column("group"))})
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
