"""Exercises of lesson 04, measuring a detector: TPR and TNR, a threshold chosen on validation, AUC by pairs, the
expected calibration error, and the prediction read against the lesson's own run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .core import (
    Lesson,
    Measured,
    Question,
    Wrong,
    _code,
    _function,
    _needs,
    _number,
    _prediction_question,
    _run,
    _short,
)

# scikit-learn's ways to TPR and TNR, refused where they are to be counted by hand; what builds on them
# (classification_report, balanced_accuracy_score ...) calls one of them, so it is refused too.
_BY_HAND_RATES = ("sklearn.metrics.confusion_matrix", "sklearn.metrics.recall_score",
                  "sklearn.metrics.precision_recall_fscore_support", "sklearn.metrics.roc_curve")


def _fraction(value: Any, name: str, expected: float) -> float:
    """A rate in [0, 1]; a percentage is named as such."""
    got = _number(value, name)
    if got > 1 and np.isclose(got / 100, expected, atol=1e-6):
        raise Wrong(f"`{name}` = {got:g} looks like a percentage; give the fraction ({got / 100:g}).")
    return got


def _pct(x: float) -> str:
    return f"{x:.1%}"


# ======================================================================== lesson 04 · measuring a detector


def _scored(seed: int, n: int = 40, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (ai = 0 first) and p(ai) of an imperfect detector; ``shift`` moves every score."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([0, 1], n // 2))
    p = np.where(y == 0, rng.beta(4, 2, n), rng.beta(2, 4, n))
    return y, np.clip(p + shift, 0.0, 1.0)


def _rates_data() -> tuple[np.ndarray, np.ndarray]:
    y, p = _scored(10)
    p[[np.flatnonzero(y == 0)[0], np.flatnonzero(y == 1)[0]]] = 0.5  # a fake and a photo exactly at the threshold
    return y, p


def _check_rates(rates: Any) -> str:
    from ..evaluation.metrics import rates_at

    fn = _function(rates, "rates")
    y, p = _rates_data()
    y2, p2 = _scored(11, n=30)
    for on, yy, pp, t in (("question 1's data at 0.5", y, p, 0.5), ("30 other scores at 0.3", y2, p2, 0.3)):
        out = _run(fn, "rates", on, yy.copy(), pp.copy(), t)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise Wrong(f"rates should return two numbers, (tpr, tnr); got {_short(out)} (on {on}).")
        r = rates_at(yy, pp, t)
        got_tpr, got_tnr = _fraction(out[0], "tpr", r.tpr), _fraction(out[1], "tnr", r.tnr)
        ok = np.isclose([got_tpr, got_tnr], [r.tpr, r.tnr], atol=1e-9)
        if ok.all():
            continue
        if np.isclose([got_tpr, got_tnr], [r.tnr, r.tpr]).all():
            raise Wrong("you swapped them: ai is the positive class, so TPR is the share of *ai* images flagged ai.")
        if np.isclose([got_tpr, got_tnr], [r.fpr, 1 - r.tpr]).all():
            raise Wrong("you took label 1 as ai; in ImageFolder order ai = 0 and nature = 1 (dl.CLASSES).")
        strict = rates_at(yy, np.where(pp == t, t - 1e-6, pp), t)
        if np.isclose([got_tpr, got_tnr], [strict.tpr, strict.tnr]).all():
            raise Wrong("some images have p(ai) exactly at the threshold; the kit calls them ai (p_ai >= threshold), "
                        "you used '>'.")
        if np.isclose([got_tpr, got_tnr], [rates_at(yy, pp, 0.5).tpr, rates_at(yy, pp, 0.5).tnr]).all():
            raise Wrong(f"on {on} you get the rates at 0.5: use the threshold argument.")
        if not ok[0]:
            raise Wrong(f"tpr = {got_tpr:.4f} is not the share of ai images (label 0) with p_ai >= {t} (on {on}).")
        raise Wrong(f"tnr = {got_tnr:.4f} is not the share of nature images (label 1) with p_ai < {t} (on {on}).")
    r = rates_at(y, p, 0.5)
    return f"at 0.5: TPR {_pct(r.tpr)} of fakes caught ({r.tp}/{r.tp + r.fn}), TNR {_pct(r.tnr)} of photos kept."


def _threshold_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validation and test scores of a detector whose scores run low: the best threshold is well below 0.5."""
    y_val, p_val = _scored(20, n=60, shift=-0.2)
    y_test, p_test = _scored(21, n=60, shift=-0.2)
    return y_val, p_val, y_test, p_test


def _youden(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    from ..evaluation.metrics import rates_at

    r = rates_at(y, p, threshold)
    return r.tpr - r.fpr


def _threshold_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Score sets to check ``youden_threshold`` on: question 2's test scores, two unseen sets, and its validation."""
    y_val, p_val, y_test, p_test = _threshold_data()
    y_other, p_other = _scored(22, n=50, shift=0.15)
    y_more, p_more = _scored(23, n=44, shift=-0.1)
    return [("y_test, p_test", y_test, p_test), ("50 other scores", y_other, p_other),
            ("44 other scores", y_more, p_more), ("y_val, p_val", y_val, p_val)]


def _check_youden(fn: Callable) -> None:
    """Raise ``Wrong`` unless ``fn`` finds a threshold as good as ``choose_threshold``'s on every case."""
    from ..evaluation.metrics import choose_threshold

    for on, y, p in _threshold_cases():
        t = _number(_run(fn, "youden_threshold", on, y.copy(), p.copy()), "youden_threshold(...)")
        best = choose_threshold(y, p, rule="youden")
        j_best, j_got = best.val_rates.tpr - best.val_rates.fpr, _youden(y, p, t)
        if j_got >= j_best - 1e-9:
            continue
        if t == 0.5:
            raise Wrong(f"on {on} you return 0.5, the default; Youden's rule does better there (TPR - FPR "
                        f"{j_best:.3f} against {j_got:.3f}). Try every observed score as a threshold.")
        if np.isclose(_youden(y, 1 - p, t), j_best):
            raise Wrong(f"on {on} your threshold is the best one for p(real): flag p_ai >= t, with ai (label 0) "
                        "as the positive class.")
        raise Wrong(f"on {on} your threshold {t:.3f} gives TPR - FPR = {j_got:.3f}; the best threshold gives "
                    f"{j_best:.3f}.")


def _rates_cases() -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """(val, test) score sets for ``test_rates``: question 2's, and two pairs drawn from seeds it never saw."""
    return [("question 2's scores", _threshold_data()),
            *((f"unseen scores (seed {seed})", (*_scored(seed, n=48, shift=0.1), *_scored(seed + 1, n=48, shift=0.1)))
              for seed in (24, 26))]


def _rates_feedback(got: tuple[float, float], chosen: float, split: tuple[np.ndarray, ...], on: str,
                    youden: Callable) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not (TPR, TNR) on test at the threshold ``chosen``."""
    from ..evaluation.metrics import rates_at

    y_val, p_val, y_test, p_test = split
    r, v = rates_at(y_test, p_test, chosen), rates_at(y_val, p_val, chosen)
    if np.isclose(got, [r.tpr, r.tnr]).all():
        return
    on_test = rates_at(y_test, p_test, _number(_run(youden, "youden_threshold", on, y_test.copy(), p_test.copy()),
                                               "youden_threshold(...)"))
    if np.isclose(got, [on_test.tpr, on_test.tnr]).all():
        raise Wrong(f"on {on} those are the test rates at the threshold that is best *for the test set*: that's "
                    "the leak of lesson 04. Choose the threshold on y_val, p_val, then measure it on test.")
    if np.isclose(got, [v.tpr, v.tnr]).all():
        raise Wrong(f"on {on} those are the *validation* rates at your threshold; measure it on y_test, p_test.")
    if np.isclose(got, [r.tnr, r.tpr]).all():
        raise Wrong("you swapped TPR and TNR: TPR is the share of ai (label 0) flagged.")
    raise Wrong(f"on {on} your TPR {got[0]:.4f} and TNR {got[1]:.4f} are not those of the test set at the "
                f"threshold your youden_threshold chooses on validation ({chosen:.3f}).")


def _check_threshold(youden_threshold: Any, test_rates: Any) -> str:
    from ..evaluation.metrics import rates_at

    youden = _function(youden_threshold, "youden_threshold")
    _check_youden(youden)
    fn = _function(test_rates, "test_rates")
    for on, split in _rates_cases():
        chosen = _number(_run(youden, "youden_threshold", on, split[0].copy(), split[1].copy()),
                         "youden_threshold(...)")
        out = _run(fn, "test_rates", on, *(a.copy() for a in split))
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise Wrong(f"test_rates should return two numbers, (tpr, tnr); got {_short(out)} (on {on}).")
        r = rates_at(split[2], split[3], chosen)
        got = (_fraction(out[0], "tpr", r.tpr), _fraction(out[1], "tnr", r.tnr))
        _rates_feedback(got, chosen, split, on, youden)
    y_val, p_val, y_test, p_test = _threshold_data()
    t = _number(_run(youden, "youden_threshold", "y_val, p_val", y_val.copy(), p_val.copy()), "youden_threshold")
    r, v = rates_at(y_test, p_test, t), rates_at(y_val, p_val, t)
    return (f"threshold {t:.3f}: validation TPR {_pct(v.tpr)} / TNR {_pct(v.tnr)}, test TPR {_pct(r.tpr)} / "
            f"TNR {_pct(r.tnr)}. The test numbers are the ones to report: nothing about them was tuned.")


def _auc_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    y, p = _scored(30)
    y2, p2 = _scored(31, n=30)
    return [("40 continuous scores", y, p), ("30 scores rounded to one decimal (many ties)", y2, p2.round(1)),
            ("a perfect detector", np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]))]


def _check_auc(auc_by_pairs: Any) -> str:
    from ..evaluation.metrics import roc_auc

    fn = _function(auc_by_pairs, "auc_by_pairs")
    for on, y, p in _auc_cases():
        got = _number(_run(fn, "auc_by_pairs", on, y.copy(), p.copy()), "auc_by_pairs(...)")
        expected = roc_auc(y, p)
        if np.isclose(got, expected, atol=1e-9):
            continue
        fakes, reals = p[y == 0][:, None], p[y == 1][None, :]
        if np.isclose(got, 1 - expected):
            raise Wrong(f"on {on} you get {got:.4f} = 1 - AUC: you compared nature against ai; ai (label 0) "
                        "should score higher.")
        if np.isclose(got, (fakes > reals).mean()):
            raise Wrong(f"on {on} you get {got:.4f}, expected {expected:.4f}: ties count half, you counted them as 0.")
        if np.isclose(got, (fakes >= reals).mean()):
            raise Wrong(f"on {on} you get {got:.4f}, expected {expected:.4f}: ties count half, you counted them as 1.")
        raise Wrong(f"on {on} your AUC is {got:.4f}; dl.evaluation.roc_auc says {expected:.4f}.")
    return ("the area under the ROC curve *is* the chance that a random fake scores above a random real photo: "
            "no threshold involved.")


def _calibration_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Score sets for ``ece``: question 4's (an over-confident detector), and two it never saw, one with scores on the
    bins' inner edges and empty bins."""
    y, p = _scored(40, n=80)
    y2, p2 = _scored(41, n=50, shift=0.1)
    y3 = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p3 = np.array([0.2, 0.4, 0.4, 0.2, 0.6, 0.0, 1.0, 0.8])  # values on inner edges go to the bin below
    return [("question 4's scores, 10 bins", y, np.clip(1.6 * (p - 0.5) + 0.5, 0, 1), 10),
            ("50 unseen scores, 5 bins", y2, p2, 5), ("8 scores on the bins' edges, 5 bins", y3, p3, 5)]


def _check_ece(ece: Any) -> str:
    from ..evaluation.metrics import expected_calibration_error, reliability

    fn = _function(ece, "ece")
    for on, y, p, bins in _calibration_cases():
        got = _number(_run(fn, "ece", on, y.copy(), p.copy(), bins), "ece(...)")
        expected = expected_calibration_error(y, p, bins)
        if np.isclose(got, expected, atol=1e-9):
            continue
        rel = reliability(y, p, bins)
        full = rel.counts > 0
        if np.isclose(got, np.mean(np.abs(rel.mean_p[full] - rel.frac_ai[full]))):
            raise Wrong(f"on {on} you averaged the bins' gaps equally; weight each bin by how many images it holds "
                        f"(expected {expected:.4f}).")
        if np.isclose(got, expected_calibration_error(1 - y, p, bins)):
            raise Wrong(f"on {on} you compared p(ai) with the share of *nature* images; ai is label 0.")
        raise Wrong(f"on {on} your ECE is {got:.4f}; dl.evaluation.expected_calibration_error says {expected:.4f}.")
    _, y, p, bins = _calibration_cases()[0]
    return (f"ECE {expected_calibration_error(y, p, bins):.3f} on question 4's scores: each bin's gap between mean "
            "p(ai) and the share of fakes, weighted by how many images it holds.")


def _calibration_data() -> tuple[np.ndarray, np.ndarray]:
    """Question 4's labels and scores."""
    _, y, p, _ = _calibration_cases()[0]
    return y, p


def _measure_calibration() -> Measured:
    """Lesson 04: which of the ConvNeXt and the CLIP head has the lower expected calibration error on the pooled
    validation images of every generator."""
    from ..config import get_paths
    from ..evaluation.metrics import expected_calibration_error
    from ..evaluation.scoring import Scores, score_generators
    from ..models.detector import load_detector

    paths = get_paths()
    found = {"ConvNeXt": _needs(paths.models / "best.pth", "02_train_convnext"),
             "CLIP head": _needs(paths.models.parent / "clip_head" / "clip_head.pth", "03_train_clip_head")}
    raw = _needs(paths.raw, "01_build_dataset")
    ece = {}
    for name, path in found.items():
        val = Scores.pooled(list(score_generators(load_detector(path), raw).values()))
        ece[name] = expected_calibration_error(val.y_true, val.p_ai)
    best = min(ece, key=ece.get)
    return Measured(best, ", ".join(f"{name} ECE {value:.3f}" for name, value in ece.items()))


lesson04 = Lesson("04_measuring_a_detector", "Measuring a detector", [
    Question(
        "q1", "TPR and TNR by hand", ("rates",), _check_rates,
        hints=("ai is the positive class: TPR asks how many of the fakes were caught, TNR how many photos were left "
               "alone. An image exactly at the threshold is called ai.",
               "Comparing a numpy array with a number (>=, ==) gives a boolean array; & and ~ combine such masks, "
               "and .sum() counts their True values. A rate is a count over the size of its class; dl.CLASSES says "
               "which label is ai."),
        setup=_code("""
            y_true, p_ai = ex.q1.data()  # labels (ai = 0, nature = 1) and each image's p(ai)
            print(y_true[:6], p_ai[:6].round(3))
        """),
        todo=_code('''
            import numpy as np

            def rates(y_true, p_ai, threshold):
                """(TPR, TNR) at threshold, ai (label 0) being the positive class; numpy arrays in."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def rates(y_true, p_ai, threshold):
                """(TPR, TNR) at threshold, ai (label 0) being the positive class; numpy arrays in."""
                flagged = p_ai >= threshold  # called ai
                is_ai = y_true == 0          # ai is class 0 (dl.CLASSES)
                return (flagged & is_ai).sum() / is_ai.sum(), (~flagged & ~is_ai).sum() / (~is_ai).sum()
        '''),
        data_fn=_rates_data,
        forbidden=("detectlib.evaluation.metrics.*", *_BY_HAND_RATES),
    ),
    Question(
        "q2", "A threshold from validation", ("youden_threshold", "test_rates"), _check_threshold,
        hints=("Try every score seen on validation as a threshold and keep the one with the largest TPR − FPR. Then "
               "freeze it: the test set only measures.",
               "numpy.unique lists the observed scores; Python's max() takes a key function. Your rates() of "
               "question 1 measures a threshold on any split: call it, don't copy it."),
        setup=_code("""
            y_val, p_val, y_test, p_test = ex.q2.data()
            print(len(y_val), "validation and", len(y_test), "test images")
        """),
        todo=_code('''
            import numpy as np

            def youden_threshold(y_true, p_ai):
                """The threshold with the largest TPR - FPR on these labels and scores (ai = 0 positive)."""
                ...  # TODO

            def test_rates(y_val, p_val, y_test, p_test):
                """(TPR, TNR) on the test scores at the threshold youden_threshold chooses on the validation ones."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def youden_threshold(y_true, p_ai):
                """The threshold with the largest TPR - FPR on these labels and scores (ai = 0 positive)."""
                is_ai = y_true == 0
                def j(t):
                    flagged = p_ai >= t
                    return (flagged & is_ai).sum() / is_ai.sum() - (flagged & ~is_ai).sum() / (~is_ai).sum()
                return max(np.unique(p_ai), key=j)

            def test_rates(y_val, p_val, y_test, p_test):
                """(TPR, TNR) on the test scores at the threshold youden_threshold chooses on the validation ones."""
                flagged, is_ai = p_test >= youden_threshold(y_val, p_val), y_test == 0
                return (flagged & is_ai).sum() / is_ai.sum(), (~flagged & ~is_ai).sum() / (~is_ai).sum()
        '''),
        data_fn=_threshold_data,
        forbidden=("detectlib.evaluation.metrics.*", *_BY_HAND_RATES),
    ),
    Question(
        "q3", "What AUC means", ("auc_by_pairs",), _check_auc,
        hints=("Forget thresholds: pair every fake with every photo and ask, in how many pairs does the fake get the "
               "higher p(ai)? A tie is worth half a pair.",
               "Boolean indexing (p_ai[mask]) splits the scores by class; numpy broadcasting (a column against a row, "
               "via [:, None] and [None, :]) compares every pair at once, and the mean of a boolean array is a "
               "share."),
        setup=_code("""
            y_true, p_ai = ex.q1.data()
            print("dl.evaluation.roc_auc:", dl.evaluation.roc_auc(y_true, p_ai))
        """),
        todo=_code('''
            import numpy as np

            def auc_by_pairs(y_true, p_ai):
                """The share of (ai, nature) pairs in which the ai image has the higher p(ai); a tie counts half."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def auc_by_pairs(y_true, p_ai):
                """The share of (ai, nature) pairs in which the ai image has the higher p(ai); a tie counts half."""
                y_true, p_ai = np.asarray(y_true), np.asarray(p_ai)
                fakes, reals = p_ai[y_true == 0][:, None], p_ai[y_true == 1][None, :]
                return (fakes > reals).mean() + (fakes == reals).mean() / 2
        '''),
        forbidden=("detectlib.evaluation.metrics.*", "sklearn.metrics.roc_auc_score", "sklearn.metrics.roc_curve",
                   "sklearn.metrics.auc", "scipy.stats.mannwhitneyu", "scipy.stats.rankdata"),
    ),
    Question(
        "q4", "Expected calibration error by hand", ("ece",), _check_ece,
        hints=("Sort the images into n_bins equal-width bins of p(ai). In each bin compare the mean p(ai) with the "
               "share of images that really are ai; the ECE averages those gaps, each bin counting by its size.",
               "numpy.linspace gives the bin edges and numpy.searchsorted (on the inner edges) each image's bin, as "
               "scikit-learn's calibration_curve does; numpy.bincount counts and sums per bin "
               "(help(numpy.bincount): its weights argument)."),
        setup=_code("""
            y_true, p_ai = ex.q4.data()  # an over-confident detector: labels (ai = 0) and p(ai)
            print(len(y_true), "images; p(ai) from", p_ai.min().round(3), "to", p_ai.max().round(3))
        """),
        todo=_code('''
            import numpy as np

            def ece(y_true, p_ai, n_bins):
                """Expected calibration error of p_ai over n_bins equal-width bins of [0, 1] (ai = label 0)."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def ece(y_true, p_ai, n_bins):
                """Expected calibration error of p_ai over n_bins equal-width bins of [0, 1] (ai = label 0)."""
                bins = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p_ai)  # a value on an edge goes below
                counts = np.bincount(bins, minlength=n_bins)
                full = counts > 0
                mean_p = np.bincount(bins, weights=p_ai, minlength=n_bins)[full] / counts[full]
                share_ai = np.bincount(bins, weights=(y_true == 0), minlength=n_bins)[full] / counts[full]
                return np.sum(counts[full] * np.abs(mean_p - share_ai)) / len(p_ai)
        '''),
        data_fn=_calibration_data,
        forbidden=("detectlib.evaluation.metrics.*", "sklearn.calibration.calibration_curve"),
    ),
    _prediction_question(
        "q5", "Predict, then read calibration",
        {"ConvNeXt": "the ConvNeXt's p(ai) is closer to the real share of fakes (lower ECE)",
         "CLIP head": "the CLIP head's p(ai) is closer to the real share of fakes (lower ECE)"}, _measure_calibration,
        hints=("The ConvNeXt's p(ai) is a softmax trained with cross-entropy for a few epochs; the CLIP head's is "
               "(1 − score) / 2 of a sigmoid, trained for more epochs on cached embeddings. Which is more likely to "
               "be over-confident on images like its training set?",
               "help(dl.evaluation.expected_calibration_error), and lesson 04's reliability diagram: how far from "
               "the diagonal does each detector's line run?"),
        todo='prediction = ...  # TODO: "ConvNeXt" or "CLIP head", written down before you run the check',
        solution_code=_code("""
            # Neither detector was trained to be calibrated; which one lands closer is what the run measures.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
