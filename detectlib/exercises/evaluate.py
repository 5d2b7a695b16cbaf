"""Exercises of lesson 04, evaluating honestly: TPR and TNR, a threshold chosen on validation, AUC by pairs, the
cross-generator matrix, and the prediction read against the lesson's own run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..workflows.transfer import CrossGenerator
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


# ============================================================================ lesson 04 · evaluate honestly


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


_CROSS_GENERATORS = ["ADM", "BigGAN", "GLIDE", "Midjourney"]


_CROSS_AUC = [[0.99, 0.62, 0.81, 0.58],
              [0.80, 1.00, 0.60, 0.52],
              [0.84, 0.66, 0.98, 0.71],
              [0.86, 0.57, 0.69, 0.96]]


def _cross_data() -> CrossGenerator:
    """A cross-generator result in ``dl.workflows.CrossGenerator`` form (made-up AUCs in the range GenImage sees)."""
    from ..workflows.transfer import CrossGenerator

    auc = np.array(_CROSS_AUC)
    return CrossGenerator(list(_CROSS_GENERATORS), list(_CROSS_GENERATORS), auc, 0.5 + 0.8 * (auc - 0.5),
                          np.array([0.04, 0.38, 0.09, 0.12]), encoder="(made-up numbers for the exercise)")


def _cross_cases() -> list[tuple[str, np.ndarray, list[str]]]:
    """Matrices to check on: question 4's, and two drawn from seeds, with generator names in another order."""
    cases = [("question 4's 4 x 4 matrix", np.array(_CROSS_AUC), list(_CROSS_GENERATORS))]
    for seed, n in ((12, 3), (13, 5)):
        rng = np.random.default_rng(seed)
        names = [str(name) for name in rng.permutation(["ADM", "BigGAN", "GLIDE", "Midjourney", "VQDM", "Wukong"])[:n]]
        cases.append((f"an unseen {n} x {n} matrix", rng.uniform(0.4, 1.0, (n, n)).round(3), names))
    return cases


def _off_feedback(got: float, matrix: np.ndarray, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not the mean off the diagonal."""
    from ..workflows.transfer import CrossGenerator

    names = [str(i) for i in range(len(matrix))]
    expected = CrossGenerator(names, names, matrix, matrix, np.zeros(len(matrix)), encoder="").off_diagonal("auc")
    if np.isclose(got, expected, atol=1e-6):
        return
    if np.isclose(got, matrix.mean()):
        raise Wrong(f"on {on} you return the mean of the whole matrix; leave out the diagonal (each head tested "
                    "on its own generator).")
    if np.isclose(got, np.diag(matrix).mean()):
        raise Wrong(f"on {on} you return the diagonal's mean, the in-distribution number; the question asks for "
                    "the pairs whose test generator differs from the training one.")
    raise Wrong(f"on {on} your mean is {got:.4f}; the mean over the off-diagonal pairs is {expected:.4f}.")


def _general_feedback(general: Any, auc: np.ndarray, names: list[str], on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``general`` is not the training generator with the best row off the
    diagonal."""
    off = ~np.eye(len(names), dtype=bool)
    rows = np.array([auc[i][off[i]].mean() for i in range(len(names))])
    if general == names[int(rows.argmax())]:
        return
    if not isinstance(general, str):
        raise Wrong(f"most_general should return the generator's name (one of {names}), not {_short(general)} "
                    f"(on {on}).")
    if general not in names:
        raise Wrong(f"on {on}, {general!r} is not one of the training generators {names}.")
    i = names.index(general)
    cols = np.array([auc[:, j][off[:, j]].mean() for j in range(len(names))])
    if i == int(np.diag(auc).argmax()):
        raise Wrong(f"on {on}, {general}'s head is best on its own generator (AUC {auc[i, i]:.2f}) but averages "
                    f"{rows[i]:.3f} on the others: that's a fingerprint, not generalisation. Read each row "
                    "without its diagonal.")
    if i == int(cols.argmax()):
        raise Wrong(f"on {on}, {general} is the *test* generator every other head finds easiest (its column); "
                    "the question asks about the training generator (the row).")
    raise Wrong(f"on {on}, {general}'s head averages {rows[i]:.3f} on the other generators; another row does "
                "better.")


def _check_cross(off_diagonal_mean: Any, most_general: Any) -> str:
    mean_fn = _function(off_diagonal_mean, "off_diagonal_mean")
    for on, matrix, _ in _cross_cases():
        _off_feedback(_number(_run(mean_fn, "off_diagonal_mean", on, matrix.copy()), "off_diagonal_mean(...)"),
                      matrix, on)
    general_fn = _function(most_general, "most_general")
    for on, matrix, names in _cross_cases():
        _general_feedback(_run(general_fn, "most_general", on, matrix.copy(), list(names)), matrix, names, on)
    cross = _cross_data()
    off = ~np.eye(len(cross.train_generators), dtype=bool)
    rows = np.array([cross.auc[i][off[i]].mean() for i in range(len(off))])
    best = cross.train_generators[int(rows.argmax())]
    return (f"{best}'s head averages {rows.max():.3f} on the others, over all {cross.off_diagonal('auc'):.3f}, "
            f"against {np.diag(cross.auc).mean():.3f} on their own generators: the gap GenImage reports.")


def _measure_wild() -> Measured:
    """Lesson 04: the from-scratch ConvNeXt on WILD v2's test groups, as ``results/wild.json`` recorded it: above,
    at or below chance by its group-bootstrap interval."""
    from ..config import get_paths
    from ..evaluation.wild_report import WILD_JSON, describe_entry, entry_for, read_wild_json

    paths = get_paths()
    report = read_wild_json(_needs(paths.results / WILD_JSON, "04_evaluate"))
    entry = entry_for(report, _needs(paths.models / "best.pth", "02_train_convnext"), paths.root)
    if entry is None:
        raise FileNotFoundError(f"{paths.results / WILD_JSON} has no entry for the ConvNeXt; run lesson 04 again")
    return Measured(entry["band"], "the ConvNeXt on WILD v2: " + describe_entry(entry))


lesson04 = Lesson("04_evaluate", "Evaluating detectors honestly", [
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
        "q4", "Read a cross-generator matrix", ("off_diagonal_mean", "most_general"), _check_cross,
        hints=("The diagonal is each head on its own generator, the number everyone reports; the rest is the "
               "question that matters: a generator the head never saw. Read rows for training generators.",
               "numpy.eye(n, dtype=bool) marks a diagonal, and ~ flips a mask; boolean indexing keeps the values a "
               "mask marks. numpy.argmax gives the position of the largest value, and names[i] its name."),
        setup=_code("""
            cross = ex.q4.data()  # cross.auc[i, j]: head trained on generator i, tested on generator j
            print(dl.labels.format_table(cross.rows("auc")))
        """),
        todo=_code('''
            import numpy as np

            def off_diagonal_mean(auc):
                """Mean AUC over the (train, test) pairs with different generators of a square matrix."""
                ...  # TODO

            def most_general(auc, names):
                """The name of the training generator (row) whose head does best on the *other* generators."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def off_diagonal_mean(auc):
                """Mean AUC over the (train, test) pairs with different generators of a square matrix."""
                return auc[~np.eye(len(auc), dtype=bool)].mean()

            def most_general(auc, names):
                """The name of the training generator (row) whose head does best on the *other* generators."""
                others = ~np.eye(len(names), dtype=bool)  # True off the diagonal
                row_means = [auc[i][others[i]].mean() for i in range(len(names))]
                return names[int(np.argmax(row_means))]
        '''),
        data_fn=_cross_data,
        forbidden=("detectlib.workflows.transfer.*",),
    ),
    _prediction_question(
        "q5", "Predict, then read WILD",
        {"above": "the ConvNeXt ranks WILD's fakes above its photos, beyond noise",
         "chance": "its 95 % interval (a bootstrap over groups) covers AUC 0.5",
         "below": "it ranks the photos as more AI-like, beyond noise"}, _measure_wild,
        hints=("The ConvNeXt only ever met the kit's three small generators, at the kit's own size. WILD's fakes "
               "come from dozens of text-to-image models, its photos from other cameras.",
               "help(dl.evaluation.group_bootstrap_ci) explains the interval the check reads. Compare what the "
               "ConvNeXt saw in training (lesson 02's generators and size) with how WILD was made (lesson 04)."),
        todo='prediction = ...  # TODO: "above", "chance" or "below", written down before you run the check',
        solution_code=_code("""
            # A detector trained on three small generators learns their fingerprints; text-to-image models leave
            # others, so expect little transfer. Which side of chance it lands on is what the run measures.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
