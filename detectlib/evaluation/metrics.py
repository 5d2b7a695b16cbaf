"""Metrics on (labels, p(ai)) pairs: the numbers that say how good a detector really is.

Introduced in notebook 04. Every function is pure and takes the same two arrays, so both detectors are measured
alike through ``Detector.p_ai``:

* ``y_true``: class indices as the datasets give them (ImageFolder order: ``ai`` = 0, ``nature`` = 1);
* ``p_ai``: the detector's probability of ``ai``, the **positive class** (a detection is a flagged fake).

An image is called ``ai`` when ``p_ai >= threshold``. The default 0.5 is the reference's rule for both
detectors: ConvNeXt's argmax (ties go to class 0, ``ai``) and the CLIP head's score threshold 0
(``p_ai = (1 - score) / 2``). A different threshold must be **chosen on validation** (``choose_threshold``) and
then applied, unchanged, to the test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from ..config import AI_INDEX, CLASSES, seed_of
from ..labels import DEFAULT_THRESHOLD

THRESHOLD_RULES = ("accuracy", "youden", "fpr")


def _arrays(y_true: Sequence[int], p_ai: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies: integer labels in {0, 1}, finite probabilities in [0, 1], same length."""
    y = np.asarray(y_true, dtype=int).reshape(-1)
    p = np.asarray(p_ai, dtype=float).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} labels but p_ai has {p.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be class indices 0 ({CLASSES[0]}) or 1 ({CLASSES[1]})")
    if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
        raise ValueError("p_ai must hold probabilities in [0, 1]")
    return y, p


def is_ai(y_true: Sequence[int]) -> np.ndarray:
    """1 where the label is ``ai`` (the positive class), else 0: the form scikit-learn's curves expect."""
    return (np.asarray(y_true, dtype=int) == AI_INDEX).astype(int)


def predict_labels(p_ai: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class indices: ``ai`` (0) where ``p_ai >= threshold``, else ``nature`` (1)."""
    return np.where(np.asarray(p_ai, dtype=float) >= threshold, AI_INDEX, 1 - AI_INDEX)


def accuracy(y_true: Sequence[int], p_ai: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> float:
    """Fraction of images whose predicted class is right."""
    y, p = _arrays(y_true, p_ai)
    return float(skm.accuracy_score(y, predict_labels(p, threshold)))


def classification_report(
    y_true: Sequence[int],
    p_ai: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    digits: int = 4,
    output_dict: bool = False,
) -> str | dict:
    """Per-class precision, recall and F1 as the reference's evaluation prints them (§4: scikit-learn's report)."""
    y, p = _arrays(y_true, p_ai)
    return skm.classification_report(
        y, predict_labels(p, threshold), labels=[0, 1], target_names=list(CLASSES),
        digits=digits, output_dict=output_dict, zero_division=0,
    )


def confusion_at_threshold(y_true: Sequence[int], p_ai: Sequence[float],
                           threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """2x2 counts at a threshold on p(ai): rows are the true class, columns the predicted class, both in ``CLASSES``
    order. scikit-learn's ``confusion_matrix(y_true, y_pred)`` takes labels; this takes scores and a threshold,
    hence another name."""
    y, p = _arrays(y_true, p_ai)
    return skm.confusion_matrix(y, predict_labels(p, threshold), labels=[0, 1])


@dataclass(frozen=True)
class Rates:
    """Counts at one threshold, ``ai`` positive; ``str()`` prints them as the CLIP reference does."""

    threshold: float
    tp: int  # ai flagged as ai
    fn: int  # ai missed
    tn: int  # real kept as real
    fp: int  # real flagged as ai: a false accusation

    @property
    def tpr(self) -> float:
        """Recall of ``ai``: the fraction of fakes caught (NaN without fakes)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def tnr(self) -> float:
        """Recall of ``nature``: the fraction of real photos let through (NaN without real photos)."""
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    @property
    def fpr(self) -> float:
        """1 - TNR: the fraction of real photos wrongly flagged."""
        return 1.0 - self.tnr

    @property
    def accuracy(self) -> float:
        n = self.tp + self.fn + self.tn + self.fp
        return (self.tp + self.tn) / n if n else float("nan")

    def __str__(self) -> str:
        def line(name: str, hit: int, total: int, rate: float) -> str:
            return f"{name}: {hit} / {total} ({rate * 100:.2f}%)"

        return "\n".join([
            line("True negative rate", self.tn, self.tn + self.fp, self.tnr),
            line("True positive rate", self.tp, self.tp + self.fn, self.tpr),
        ])


def rates_at(y_true: Sequence[int], p_ai: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> Rates:
    """TPR and TNR (with their counts) at one threshold."""
    (tp, fn), (fp, tn) = confusion_at_threshold(y_true, p_ai, threshold).tolist()  # ai row first, ai column first
    return Rates(float(threshold), tp, fn, tn, fp)


def _both_classes(y: np.ndarray) -> bool:
    return np.unique(y).size == 2


@dataclass(frozen=True)
class Curve:
    """A ROC or precision-recall curve: ``x`` and ``y`` to plot, the thresholds behind them, and its area."""

    x: np.ndarray  # ROC: false-positive rate; PR: recall
    y: np.ndarray  # ROC: true-positive rate; PR: precision
    thresholds: np.ndarray
    area: float  # ROC: AUC; PR: average precision


def roc(y_true: Sequence[int], p_ai: Sequence[float]) -> Curve:
    """ROC curve of ``ai`` against ``nature`` and its AUC (NaN when one class is missing)."""
    y, p = _arrays(y_true, p_ai)
    if not _both_classes(y):
        return Curve(np.array([]), np.array([]), np.array([]), float("nan"))
    fpr, tpr, thr = skm.roc_curve(is_ai(y), p)
    return Curve(fpr, tpr, thr, float(skm.auc(fpr, tpr)))


def precision_recall(y_true: Sequence[int], p_ai: Sequence[float]) -> Curve:
    """Precision-recall curve for ``ai`` and its average precision (NaN when one class is missing)."""
    y, p = _arrays(y_true, p_ai)
    if not _both_classes(y):
        return Curve(np.array([]), np.array([]), np.array([]), float("nan"))
    precision, recall, thr = skm.precision_recall_curve(is_ai(y), p)
    return Curve(recall, precision, thr, float(skm.average_precision_score(is_ai(y), p)))


def roc_auc(y_true: Sequence[int], p_ai: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random fake scores above a random real photo."""
    return roc(y_true, p_ai).area


def auc_standard_error(auc: float, n_ai: int, n_real: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC-AUC measured on ``n_ai`` fakes and ``n_real`` photos.

    Why: on a few dozen images an AUC of 0.60 can be chance. Two standard errors around 0.5 is the band a lesson
    calls "no better than chance" (``reports.describe_auc``).
    """
    if n_ai < 1 or n_real < 1 or np.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_ai - 1) * (q1 - auc**2) + (n_real - 1) * (q2 - auc**2)) / (n_ai * n_real)
    return float(np.sqrt(max(variance, 0.0)))


def _group_resamples(y: np.ndarray, groups: Sequence[str], n_boot: int, seed: int):
    """Index arrays of ``n_boot`` bootstrap resamples that draw whole **groups** with replacement, each holding
    both classes (a resample missing one is drawn again, up to 20 tries per resample kept)."""
    names, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    kept = 0
    for _ in range(20 * n_boot):
        if kept == n_boot:
            return
        take = np.concatenate([members[g] for g in rng.integers(len(members), size=len(members))])
        if _both_classes(y[take]):
            kept += 1
            yield take


def _percentile_interval(values: Sequence[float], level: float) -> tuple[float, float]:
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def group_bootstrap_ci(y_true: Sequence[int], p_ai: Sequence[float], groups: Sequence[str], *,
                       statistic=None, n_boot: int = 1000, level: float = 0.95, seed: int | None = None) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic`` (default ``roc_auc``) that resamples **groups**, not images.

    Why: crops of one photo, near-duplicates and one template's images are not independent draws; resampling
    images treats them as if they were and gives a band far too narrow (Hanley & McNeil's formula makes the same
    mistake). A resample missing a class is drawn again. Seeded: the same inputs give the same interval."""
    y, p = _arrays(y_true, p_ai)
    if not _both_classes(y):  # no resample can hold both classes (an empty set included)
        return float("nan"), float("nan")
    statistic = statistic or roc_auc
    return _percentile_interval([statistic(y[take], p[take])
                                 for take in _group_resamples(y, groups, n_boot, seed_of(seed))], level)


def auc_change_ci(y_true: Sequence[int], p_before: Sequence[float], p_after: Sequence[float], groups: Sequence[str],
                  *, n_boot: int = 1000, level: float = 0.95, seed: int | None = None) -> tuple[float, float]:
    """A group-bootstrap interval of AUC(``p_after``) − AUC(``p_before``): the same images scored twice (before
    and after an edit, or by two settings), each resample drawing the same groups for both.

    Why paired: the two AUCs share their images, so most of their sampling noise is shared too; two separate
    intervals (or two standard errors of one AUC) overstate the noise of the change and hide real ones."""
    y, before = _arrays(y_true, p_before)
    _, after = _arrays(y_true, p_after)
    if not _both_classes(y):
        return float("nan"), float("nan")
    return _percentile_interval([roc_auc(y[take], after[take]) - roc_auc(y[take], before[take])
                                 for take in _group_resamples(y, groups, n_boot, seed_of(seed))], level)


def category_aucs(y_true: Sequence[int], p_ai: Sequence[float], categories: Sequence[str]) -> dict[str, float]:
    """``{category: AUC}`` within each content category that holds both classes (the others have no AUC)."""
    y, p = _arrays(y_true, p_ai)
    cats = np.asarray(categories, dtype=str)
    return {c: roc_auc(y[cats == c], p[cats == c]) for c in sorted(set(cats)) if _both_classes(y[cats == c])}


def balanced_auc(y_true: Sequence[int], p_ai: Sequence[float], categories: Sequence[str]) -> float:
    """The mean of the per-category AUCs (``category_aucs``), each category weighted equally.

    Why: a pooled AUC rewards telling the categories apart when the classes differ in content (portraits of one
    class against landscapes of the other); within a category, only what differs between real and generated
    counts."""
    aucs = category_aucs(y_true, p_ai, categories)
    return float(np.mean(list(aucs.values()))) if aucs else float("nan")


def tpr_at_fpr(y_true: Sequence[int], p_ai: Sequence[float], max_fpr: float = 0.05) -> float:
    """The largest TPR any threshold reaches while flagging at most ``max_fpr`` of the real photos.

    A detector used on real traffic must rarely accuse a real photo, so this is the operating point that
    matters; no interpolation between ROC points (NaN when one class is missing).
    """
    curve = roc(y_true, p_ai)
    if np.isnan(curve.area):
        return float("nan")
    return float(curve.y[curve.x <= max_fpr + 1e-12].max())


# ------------------------------------------------------------------------------------ threshold choice


def _candidate_thresholds(p: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one above and one below them all."""
    values = np.unique(p)
    mids = (values[:-1] + values[1:]) / 2
    return np.concatenate([[np.nextafter(values[0], -np.inf)], mids, [np.nextafter(values[-1], np.inf)]])


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold fitted on validation scores, frozen, then applied as is to any other split.

    It keeps only the threshold and what validation said about it: nothing it offers can move the threshold
    after the fit, so test data can only be *measured* with it (``rates``, ``predict``), never used to choose it.
    """

    threshold: float
    rule: str
    max_fpr: float
    val_rates: Rates
    n_val: int

    def predict(self, p_ai: Sequence[float]) -> np.ndarray:
        """Class indices for new scores at the validation threshold."""
        return predict_labels(p_ai, self.threshold)

    def rates(self, y_true: Sequence[int], p_ai: Sequence[float]) -> Rates:
        """TPR/TNR on another split at the validation threshold."""
        return rates_at(y_true, p_ai, self.threshold)

    def accuracy(self, y_true: Sequence[int], p_ai: Sequence[float]) -> float:
        return accuracy(y_true, p_ai, self.threshold)


def choose_threshold(
    y_val: Sequence[int],
    p_val: Sequence[float],
    rule: str = "youden",
    max_fpr: float = 0.05,
) -> ThresholdChoice:
    """Fit a threshold on **validation** scores; apply the returned choice to test scores.

    Rules: ``accuracy`` (most images right), ``youden`` (largest TPR - FPR, i.e. best balanced accuracy),
    ``fpr`` (most fakes caught with at most ``max_fpr`` of real photos flagged). Candidates are the midpoints
    between consecutive validation scores; ties go to the candidate nearest the default 0.5, so the threshold
    moves only as far as validation asks.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}")
    y, p = _arrays(y_val, p_val)
    if not _both_classes(y):
        raise ValueError("choosing a threshold needs validation images of both classes")
    candidates = _candidate_thresholds(p)
    positive = is_ai(y).astype(bool)
    flagged = p[None, :] >= candidates[:, None]  # one row per candidate
    tpr = (flagged & positive).sum(1) / positive.sum()
    fpr = (flagged & ~positive).sum(1) / (~positive).sum()
    if rule == "accuracy":
        objective = (flagged == positive).mean(1)
    elif rule == "youden":
        objective = tpr - fpr
    else:
        objective = np.where(fpr <= max_fpr + 1e-12, tpr, -np.inf)
    best = np.flatnonzero(np.isclose(objective, objective.max()))
    threshold = float(candidates[best[np.argmin(np.abs(candidates[best] - DEFAULT_THRESHOLD))]])
    return ThresholdChoice(threshold, rule, max_fpr, rates_at(y, p, threshold), int(y.size))


# ------------------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class Reliability:
    """Reliability-diagram data: per equal-width bin of ``p_ai``, the mean predicted and the observed ai rate."""

    edges: np.ndarray  # n_bins + 1 bin edges over [0, 1]
    mean_p: np.ndarray  # mean p_ai in each bin (NaN where empty)
    frac_ai: np.ndarray  # fraction of images that are ai in each bin (NaN where empty)
    counts: np.ndarray  # images per bin

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean gap between predicted and observed."""
        full = self.counts > 0
        return float(np.sum(self.counts[full] * np.abs(self.mean_p[full] - self.frac_ai[full])) / self.counts.sum())


def reliability(y_true: Sequence[int], p_ai: Sequence[float], n_bins: int = 10) -> Reliability:
    """Bin ``p_ai`` as ``sklearn.calibration.calibration_curve(strategy="uniform")`` does, keeping the counts.

    A calibrated detector's ``p_ai = 0.8`` images are ai 80 % of the time; argmax accuracy cannot see this.
    """
    y, p = _arrays(y_true, p_ai)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)  # scikit-learn's binning: a value on an inner edge goes below it
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / counts
        frac_ai = np.bincount(bins, weights=is_ai(y), minlength=n_bins) / counts
    return Reliability(edges, mean_p, frac_ai, counts)


def expected_calibration_error(y_true: Sequence[int], p_ai: Sequence[float], n_bins: int = 10) -> float:
    """ECE of ``p_ai`` over ``n_bins`` equal-width bins (0 = perfectly calibrated)."""
    return reliability(y_true, p_ai, n_bins).ece


# -------------------------------------------------------------------------------------------- summaries


def summary(
    y_true: Sequence[int],
    p_ai: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    max_fpr: float = 0.05,
) -> dict[str, float]:
    """One row of a results table: size, accuracy, TPR, TNR, FPR, ROC-AUC, AP, TPR at ``max_fpr``, ECE."""
    y, p = _arrays(y_true, p_ai)
    rates = rates_at(y, p, threshold)
    return {
        "n": int(y.size),
        "accuracy": rates.accuracy,
        "tpr": rates.tpr,
        "tnr": rates.tnr,
        "fpr": rates.fpr,
        "auc": roc_auc(y, p),
        "ap": precision_recall(y, p).area,
        f"tpr@{max_fpr:.0%}fpr": tpr_at_fpr(y, p, max_fpr),
        "ece": expected_calibration_error(y, p),
    }
