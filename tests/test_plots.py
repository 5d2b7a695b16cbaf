"""detectlib.plots: every figure in one language (``$DETECTLIB_LANG``), legends that hide no curve, readable labels."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.legend import Legend
from matplotlib.text import Text

from detectlib import labels, plots
from detectlib.config import LANG_ENV
from detectlib.evaluation import metrics
from detectlib.evaluation.scoring import Scores
from detectlib.explain.deletion import DeletionResult
from detectlib.models.features import EmbeddedSet
from detectlib.workflows.transfer import CrossGenerator

ENGLISH_WORDS = {text for text in labels.FIGURE_TEXT["es"] if labels.FIGURE_TEXT["es"][text] != text}


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test's figures closed after it: pyplot keeps every figure it made until told."""
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


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


def _title(fig) -> str:
    """The figure's suptitle, else its first axes title: what a reader sees first."""
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return suptitle or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")


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


# Lookups whose text is a variable, not a literal: the variable's name and every value it takes in ``plots``.
DYNAMIC_TEXTS = {"metric": {"accuracy", "auc"}}
# Texts that read the same in both languages, so they need no Spanish entry.
SAME_IN_SPANISH = {"auc"}


def _looked_up_texts() -> set[str]:
    """Every text ``plots`` passes to ``labels.figure_text`` (under whatever name it imports it), read from the source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(plots))
    names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.module or "").endswith("labels") for alias in node.names if alias.name == "figure_text"}
    assert names, "plots no longer imports labels.figure_text: update this test"
    texts: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names):
            continue
        text = node.args[0]
        if isinstance(text, ast.Constant) and isinstance(text.value, str):
            texts.add(text.value)
        else:
            assert isinstance(text, ast.Name) and text.id in DYNAMIC_TEXTS, (
                f"line {node.lineno}: figure text {ast.unparse(text)} is not a literal: list its values in DYNAMIC_TEXTS")
            texts |= DYNAMIC_TEXTS[text.id]
    return texts


def test_every_figure_text_has_a_spanish_entry_and_every_entry_is_used():
    used = _looked_up_texts()
    spanish = labels.FIGURE_TEXT["es"]
    missing = sorted(used - SAME_IN_SPANISH - spanish.keys())
    assert not missing, f"figure texts with no Spanish entry in labels.FIGURE_TEXT['es']: {missing}"
    unused = sorted(spanish.keys() - used)
    assert not unused, f"Spanish entries no figure uses: {unused}"
    for text in used & spanish.keys():  # the same placeholders in both languages, so format() fills both
        fields = set(re.findall(r"{(\w*)}", text))
        assert set(re.findall(r"{(\w*)}", spanish[text])) == fields, f"placeholders differ: {text!r}"


def test_the_confusion_matrix_and_pca_name_the_classes_in_the_chosen_language(monkeypatch):
    monkeypatch.setenv(LANG_ENV, "es")
    figures = _every_figure()
    assert {"Generada", "Real"} <= set(_texts(figures["confusion"]))
    assert "Matriz de confusión" in _texts(figures["confusion"])
    assert {"Generada", "Real"} <= set(_texts(figures["pca"]))


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


def test_every_figure_has_a_title():
    import matplotlib.pyplot as plt

    for name, fig in _every_figure().items():
        assert _title(fig).strip(), f"{name}: no title"
        plt.close(fig)


def test_roc_pr_names_detectors_and_data_and_draws_the_no_skill_precision():
    scores = {"det": _scores(1), "other": _scores(3)}
    fig = plots.plot_roc_pr(scores, data="demo validation")
    assert "det" in _title(fig) and "other" in _title(fig) and "demo validation" in _title(fig)
    ax_pr = fig.axes[1]
    share = float(np.mean(metrics.is_ai(scores["det"].y_true)))
    flat = [line for line in ax_pr.get_lines() if np.allclose(line.get_ydata(), share) and len(line.get_ydata()) == 2]
    assert len(flat) == 1  # one line: both detectors were scored on the same images
    labels = ax_pr.get_legend_handles_labels()[1]
    assert flat[0].get_label() in labels and f"{share:.2f}" in flat[0].get_label()


def test_roc_pr_draws_one_no_skill_line_per_image_set_when_they_differ():
    skewed = _scores(1)
    skewed = Scores(skewed.y_true[5:], skewed.p_ai[5:], [], "val", "det")  # fewer ai images: another share
    fig = plots.plot_roc_pr({"det": _scores(1), "skewed": skewed})
    flat = {round(float(line.get_ydata()[0]), 3) for line in fig.axes[1].get_lines() if len(line.get_ydata()) == 2}
    assert flat == {0.5, round(15 / 35, 3)}


def test_pca_axes_give_sklearns_explained_variance_and_one_meaning_per_channel():
    from sklearn.decomposition import PCA

    torch.manual_seed(0)
    sets = {g: EmbeddedSet(torch.randn(10, 6) * torch.arange(1, 7), torch.tensor([0, 1] * 5), [], None)
            for g in ("AE", "DCGAN")}
    fig = plots.plot_embedding_pca(sets, encoder="clip-tiny", data="demo validation")
    ax = fig.axes[0]
    ratio = PCA(n_components=2, random_state=0).fit(
        torch.cat([s.embeddings for s in sets.values()]).double().numpy()).explained_variance_ratio_
    for label, expected in zip((ax.get_xlabel(), ax.get_ylabel()), ratio, strict=True):
        assert "%" in label
        assert int(re.search(r"\((\d+) %", label).group(1)) == round(100 * expected)
    colours = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    markers = {tuple(c.get_paths()[0].vertices.ravel().round(3)) for c in ax.collections}
    assert len(colours) == 2 and len(markers) == 2  # colour: class, marker: folder, nothing else
    assert all(len(legend.get_texts()) == 2 for legend in ax.findobj(Legend))
    assert "clip-tiny" in _title(fig) and "demo validation" in _title(fig)


def test_spectra_axes_are_labelled_frequencies_with_positive_up(monkeypatch):
    monkeypatch.setenv(LANG_ENV, "en")
    rng = np.random.default_rng(0)
    spectrum = rng.random((8, 8))
    spectrum[7, 4] = 10  # last row: the highest vertical frequency
    fig = plots.plot_spectra({"real": rng.random((8, 8)), "AE": spectrum}, data="demo validation")
    shown = [ax for ax in fig.axes if ax.axison and ax.images]
    assert len(shown) == 3  # real, AE, AE - real
    for ax in shown:
        assert ax.get_xlabel() and ax.get_ylim()[0] < ax.get_ylim()[1]
        assert ax.get_xlim() == pytest.approx((-0.5 - 1 / 16, 0.5 - 1 / 16))  # bins centred on fftfreq(8)
    assert all(row[0].get_ylabel() for row in (shown[:2], shown[2:]))
    ax = shown[1]
    image = ax.images[0]
    peak_row = np.unravel_index(np.argmax(image.get_array()), spectrum.shape)[0]
    assert image.origin == "lower" and peak_row == 7  # row 7 drawn at the top: +y is up
    bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()]
    assert any("vs real" in ax.get_ylabel() for ax in bars)  # the difference colour bar says what it shows
    assert "demo validation" in _title(fig)


def test_reliability_shows_how_many_images_each_bin_holds():
    scores = {"det": _scores(2), "other": _scores(4)}
    fig = plots.plot_reliability(scores, n_bins=5, data="demo validation")
    _, counts_ax = fig.axes
    bars = counts_ax.patches
    for k, s in enumerate(scores.values()):
        expected = metrics.reliability(s.y_true, s.p_ai, 5).counts
        assert [bar.get_height() for bar in bars[5 * k: 5 * (k + 1)]] == list(expected)
    assert "det" in _title(fig) and "demo validation" in _title(fig)


def test_heatmap_grid_has_a_colour_bar_p_ai_in_titles_row_notes_and_chosen_columns(monkeypatch):
    monkeypatch.setenv(LANG_ENV, "en")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    maps = {"ours": [rng.random((4, 4)) for _ in range(3)], "GradCAM": [rng.random((4, 4)) for _ in range(3)]}
    fig = plots.plot_heatmap_grid(images, maps, ["a", "b", "c"], p_ai=[0.1, 0.83, 0.5],
                                  row_notes={"GradCAM": "r=0.42 vs ours"}, columns=[0, 1], detector="ConvNeXt",
                                  data="demo validation")
    colourbars = [ax for ax in fig.axes if "relevance" in ax.get_ylabel()]
    assert len(colourbars) == 1
    panels = [ax for ax in fig.axes if ax not in colourbars]
    assert len(panels) == 3 * 2  # image row and two map rows, two of the three columns
    assert [ax.get_title() for ax in panels[:2]] == ["a\np(ai)=0.10", "b\np(ai)=0.83"]
    assert panels[4].get_ylabel().endswith("r=0.42 vs ours")
    assert _title(fig) == "Grad-CAM: ConvNeXt\ndemo validation"


def test_heatmap_grid_prints_each_detectors_own_p_ai_in_its_row():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    maps = {"CLIP head": [rng.random((4, 4))] * 2, "ConvNeXt": [rng.random((4, 4))] * 2}
    fig = plots.plot_heatmap_grid(images, maps, p_ai={"CLIP head": [0.2, 0.3], "ConvNeXt": [0.9, 0.8]})
    assert [ax.get_title() for ax in fig.axes[2:6]] == ["p(ai)=0.20", "p(ai)=0.30", "p(ai)=0.90", "p(ai)=0.80"]


def test_deletion_check_title_names_detector_and_data():
    deletion = {n: DeletionResult(0.1, "mean", 0.8, 0.6, 0.75, (0.05, 0.05)) for n in ("a", "b")}
    fig = plots.plot_deletion_check(deletion, detector="ConvNeXt", data="demo validation")
    assert "ConvNeXt" in _title(fig) and "demo validation" in _title(fig)
