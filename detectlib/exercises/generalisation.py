"""Exercises of lesson 05, generalisation: the cross-generator matrix, a category-balanced AUC by hand, and the
prediction read against the lesson's own WILD run."""

from __future__ import annotations

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

# ============================================================================ lesson 05 · generalisation


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
    """Matrices to check on: question 1's, and two drawn from seeds, with generator names in another order."""
    cases = [("question 1's 4 x 4 matrix", np.array(_CROSS_AUC), list(_CROSS_GENERATORS))]
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
            f"against {np.diag(cross.auc).mean():.3f} on their own generators: the gap cross-generator benchmarks such as "
            "GenImage measure.")


def _balanced_cases() -> list[tuple[str, np.ndarray, np.ndarray, list[str]]]:
    """WILD-like scored sets: labels (ai = 0), p(ai) and a content category per image. In question 2's set the fakes
    are mostly portraits and portraits score high whatever their class, so the pooled AUC flatters; the unseen sets
    add a category with one class only, which the balanced AUC must skip."""
    rng = np.random.default_rng(50)
    cats = np.array(["people"] * 50 + ["landscape"] * 50)
    y = np.r_[np.zeros(40, int), np.ones(10, int), np.zeros(10, int), np.ones(40, int)]
    p = np.clip(rng.normal(0.5, 0.12, 100) + 0.25 * (cats == "people") + 0.04 * (y == 0), 0, 1)
    cases = [("question 2's scores", y, p, list(cats))]
    for seed in (51, 52):
        rng = np.random.default_rng(seed)
        n = 90
        cats = rng.choice(["animals", "indoor", "people", "art"], n)
        y = np.where(cats == "art", 0, rng.integers(0, 2, n))  # art: fakes only
        p = np.clip(rng.normal(0.5, 0.15, n) + 0.1 * (y == 0), 0, 1)
        cases.append((f"90 unseen scores (seed {seed}), one category with fakes only", y, p, list(cats)))
    return cases


def _balanced_data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Question 2's labels, scores and categories."""
    _, y, p, cats = _balanced_cases()[0]
    return y, p, cats


def _check_balanced(balanced_auc: Any) -> str:
    from ..evaluation.metrics import balanced_auc as reference
    from ..evaluation.metrics import roc_auc

    fn = _function(balanced_auc, "balanced_auc")
    for on, y, p, cats in _balanced_cases():
        got = _number(_run(fn, "balanced_auc", on, y.copy(), p.copy(), list(cats)), "balanced_auc(...)")
        expected = reference(y, p, cats)
        if np.isclose(got, expected, atol=1e-9):
            continue
        if np.isclose(got, roc_auc(y, p)):
            raise Wrong(f"on {on} you return the pooled AUC; compute the AUC within each category and average.")
        if np.isnan(got):
            raise Wrong(f"on {on} you get nan: a category with one class has no AUC; leave it out of the mean.")
        raise Wrong(f"on {on} your balanced AUC is {got:.4f}; the mean of the per-category AUCs is {expected:.4f}.")
    y, p, cats = _balanced_data()
    return (f"pooled AUC {roc_auc(y, p):.3f}, category-balanced {reference(y, p, cats):.3f}: the pooled number was "
            "telling portraits from landscapes.")


def _measure_wild() -> Measured:
    """Lesson 05: the from-scratch ConvNeXt on WILD v2's test groups, as ``results/wild.json`` recorded it: above,
    at or below chance by its group-bootstrap interval."""
    from ..config import get_paths
    from ..evaluation.wild_report import WILD_JSON, describe_entry, entry_for, read_wild_json

    paths = get_paths()
    report = read_wild_json(_needs(paths.results / WILD_JSON, "05_generalisation"))
    entry = entry_for(report, _needs(paths.models / "best.pth", "02_train_convnext"), paths.root)
    if entry is None:
        raise FileNotFoundError(f"{paths.results / WILD_JSON} has no entry for the ConvNeXt; run lesson 05 again")
    return Measured(entry["band"], "the ConvNeXt on WILD v2: " + describe_entry(entry))


lesson05 = Lesson("05_generalisation", "Does it generalise?", [
    Question(
        "q1", "Read a cross-generator matrix", ("off_diagonal_mean", "most_general"), _check_cross,
        hints=("The diagonal is each head on its own generator, the number everyone reports; the rest is the "
               "question that matters: a generator the head never saw. Read rows for training generators.",
               "numpy.eye(n, dtype=bool) marks a diagonal, and ~ flips a mask; boolean indexing keeps the values a "
               "mask marks. numpy.argmax gives the position of the largest value, and names[i] its name."),
        setup=_code("""
            cross = ex.q1.data()  # cross.auc[i, j]: head trained on generator i, tested on generator j
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
    Question(
        "q2", "A category-balanced AUC", ("balanced_auc",), _check_balanced,
        hints=("Within one content category, the AUC compares fakes and photos of the same kind of picture; the mean "
               "over categories then cannot be raised by telling categories apart. A category with one class only has "
               "no AUC.",
               "dl.evaluation.roc_auc gives one category's AUC (numpy boolean masks pick its images); numpy.unique "
               "lists the categories, and a category counts only when both labels occur in it."),
        setup=_code("""
            y_true, p_ai, categories = ex.q2.data()  # labels (ai = 0), p(ai), and each image's content category
            print("pooled AUC:", round(dl.evaluation.roc_auc(y_true, p_ai), 3))
        """),
        todo=_code('''
            import numpy as np

            def balanced_auc(y_true, p_ai, categories):
                """Mean of the AUCs within each category that holds both classes."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def balanced_auc(y_true, p_ai, categories):
                """Mean of the AUCs within each category that holds both classes."""
                categories = np.asarray(categories)
                aucs = [dl.evaluation.roc_auc(y_true[categories == c], p_ai[categories == c])
                        for c in np.unique(categories) if len(set(y_true[categories == c])) == 2]
                return float(np.mean(aucs))
        '''),
        data_fn=_balanced_data,
        forbidden=("detectlib.evaluation.metrics.balanced_auc", "detectlib.evaluation.metrics.category_aucs"),
    ),
    _prediction_question(
        "q3", "Predict, then read WILD",
        {"above": "the ConvNeXt ranks WILD's fakes above its photos, beyond noise",
         "chance": "its 95 % interval (a bootstrap over groups) covers AUC 0.5",
         "below": "it ranks the photos as more AI-like, beyond noise"}, _measure_wild,
        hints=("The ConvNeXt only ever met the kit's three small generators, at the kit's own size. WILD's fakes "
               "come from dozens of text-to-image models, its photos from other cameras.",
               "help(dl.evaluation.group_bootstrap_ci) explains the interval the check reads. Compare what the "
               "ConvNeXt saw in training (lesson 02's generators and size) with how WILD was made (lessons 01 and 05)."),
        todo='prediction = ...  # TODO: "above", "chance" or "below", written down before you run the check',
        solution_code=_code("""
            # A detector trained on three small generators learns their fingerprints; text-to-image models leave
            # others, so expect little transfer. Which side of chance it lands on is what the run measures.
            prediction = ex.q3.measured()  # what this run measured: the check reads it
        """),
    ),
])
