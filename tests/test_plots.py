"""detectlib.plots: every figure in one language (``$DETECTLIB_LANG``), legends that hide no curve, readable labels."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.text import Text

from detectlib import labels, plots
from detectlib.config import LANG_ENV
from detectlib.evaluation.scoring import Scores
from detectlib.explain.deletion import DeletionResult
from detectlib.models.features import EmbeddedSet
from detectlib.workflows.transfer import CrossGenerator

ENGLISH_WORDS = {text for text in labels.FIGURE_TEXT["es"] if labels.FIGURE_TEXT["es"][text] != text}


def _history(n: int = 4) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5 + e / 10, "val_acc": 0.5 + e / 12}
            for e in range(1, n + 1)]


def _scores(seed: int) -> Scores:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 20)
    return Scores(y, np.clip(np.where(y == 0, 0.65, 0.35) + rng.normal(0, 0.2, 40), 0, 1), [], "val", "det")


def _every_figure():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    cross = CrossGenerator(["AE", "DCGAN"], ["AE", "DCGAN"], np.array([[0.9, 0.6], [0.55, 0.95]]),
                           np.full((2, 2), 0.7), np.array([0.1, 0.4]), "clip-tiny-random")
    deletion = {n: DeletionResult(0.1, "mean", 0.8, 0.6, 0.75, (0.05, 0.05)) for n in ("a", "b")}
    sets = {"AE": EmbeddedSet(torch.randn(8, 5), torch.tensor([0, 1] * 4), [], None)}
    rows = [{"detector": "d", "kind": k, "value": v, "accuracy": 0.6, "auc": 0.7}
            for k, v in (("none", 0), ("jpeg", 50), ("downscale", 0.5), ("blur", 1.0))]
    return {
        "loss": plots.plot_loss_curve(_history()),
        "accuracy": plots.plot_val_accuracy_curve(_history()),
        "comparison": plots.plot_accuracy_comparison({"pretrained": _history(), "from scratch": _history(3)}),
        "confusion": plots.plot_confusion_matrix(np.array([[5, 1], [2, 4]])),
        "roc_pr": plots.plot_roc_pr({"det": _scores(1)}, data="demo validation"),
        "reliability": plots.plot_reliability({"det": _scores(2)}),
        "cross": plots.plot_cross_generator(cross),
        "robustness": plots.plot_robustness(rows),
        "heatmaps": plots.plot_heatmap_grid(images, {"encoder.layers.11.layer_norm1": [np.ones((4, 4))] * 2}),
        "deletion": plots.plot_deletion_check(deletion),
        "pca": plots.plot_embedding_pca(sets),
        "spectra": plots.plot_spectra({"real": rng.random((8, 8)), "AE": rng.random((8, 8))}),
        "noise_drift": plots.plot_noise_drift([0.01, 0.1], {"ai": [[0.1, 0.3]], "nature": [[0.05, 0.2]]},
                                              data="WILD v2 validation"),
    }


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_every_figure_speaks_one_language(lang, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv(LANG_ENV, lang)
    other = labels.class_labels("en" if lang == "es" else "es")
    for name, fig in _every_figure().items():
        texts = _texts(fig)
        if lang == "es":
            english = [t for t in texts if t in ENGLISH_WORDS]
            assert not english, f"{name}: English words in a Spanish figure: {english}"
        else:
            spanish = [t for t in texts if t in labels.FIGURE_TEXT["es"].values() and t not in ENGLISH_WORDS]
            assert not spanish, f"{name}: Spanish words in an English figure: {spanish}"
        mixed = [t for t in texts if any(re.search(rf"\b{re.escape(word)}\b", t) for word in other if word != "Real")]
        assert not mixed, f"{name}: the other language's class names: {mixed}"
        plt.close(fig)


def test_the_confusion_matrix_and_pca_name_the_classes_in_the_chosen_language(monkeypatch):
    monkeypatch.setenv(LANG_ENV, "es")
    figures = _every_figure()
    assert {"Generada", "Real"} <= set(_texts(figures["confusion"]))
    assert "Matriz de confusión" in _texts(figures["confusion"])
    assert "Generada" in _texts(figures["pca"]) and "Real (todas)" in _texts(figures["pca"])


def test_the_comparison_legend_sits_below_the_axes_and_hides_no_curve():
    fig = plots.plot_accuracy_comparison({"pretrained": _history(), "from scratch": _history()})
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0  # entirely under the plotting area


def test_a_long_layer_name_is_broken_at_dots_into_readable_lines():
    assert plots._row_label("encoder.layers.11.layer_norm1") == "encoder.layers.\n11.layer_norm1"
    assert plots._row_label("stages.2") == "stages.2"
    assert plots._row_label("CLIP head\nencoder.layers.11.layer_norm1") == "CLIP head\nencoder.layers.\n11.layer_norm1"
