"""Every matplotlib figure the notebooks and the command-line tools show or save.

Functions import matplotlib inside, so importing detectlib never pulls it in; each returns its ``Figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .files import atomic_write
from .labels import figure_text as _t


def save_figure(fig, path: Path | str) -> Path:
    """Save ``fig`` as an image (120 dpi, tight box; the format from the suffix), atomically, and return the path."""
    path = Path(path)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120,
                                                      bbox_inches="tight"))


def _saved(fig, path: Path | str | None):
    """``fig``, saved first when a path is given: how every plot function ends."""
    if path is not None:
        save_figure(fig, path)
    return fig


def _heading(text: str, detector: str = "", data: str = "") -> str:
    """A figure's title that names what was measured, by which detector(s) and on which images
    (``"Reliability: ConvNeXt, CLIP head\ndemo validation"``): a figure copied out of its notebook still says so."""
    return text + (f": {detector}" if detector else "") + (f"\n{data}" if data else "")


# ------------------------------------------------------------------ training curves (train.py, notebook 02)


def _training_rows(history) -> list[dict]:
    """Per-epoch rows from a ``training.History``, its ``as_dict()``, or a plain list of rows."""
    if hasattr(history, "epochs"):
        return list(history.epochs)
    if isinstance(history, dict):
        return list(history["epochs"])
    return list(history)


def plot_loss_curve(history, path: Path | str | None = None, title: str | None = None):
    """Training and validation loss per epoch (the reference's ``loss_curve.png``); a widening gap between
    the two is what over-fitting looks like."""
    import matplotlib.pyplot as plt

    rows = _training_rows(history)
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label=_t("training loss"))
    ax.plot(epochs, [r["val_loss"] for r in rows], "s-", label=_t("validation loss"))
    ax.set(xlabel=_t("epoch"), ylabel=_t("loss"), title=title or _t("Loss per epoch"))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    ax.grid(alpha=0.3)
    return _saved(fig, path)


def plot_val_accuracy_curve(history, path: Path | str | None = None, title: str | None = None):
    """Validation accuracy per epoch (the reference's ``val_accuracy_curve.png``), training accuracy dashed."""
    import matplotlib.pyplot as plt

    rows = _training_rows(history)
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [r["val_acc"] for r in rows], "o-", label=_t("validation accuracy"))
    if all("train_acc" in r for r in rows):
        ax.plot(epochs, [r["train_acc"] for r in rows], "--", color="grey", label=_t("training accuracy"))
    ax.set(xlabel=_t("epoch"), ylabel=_t("accuracy"), ylim=(0, 1.02), title=title or _t("Accuracy per epoch"))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _saved(fig, path)


def save_training_curves(history, figures_dir: Path | str) -> list[Path]:
    """Write the reference's ``loss_curve.png`` and ``val_accuracy_curve.png`` (matplotlib loads only here)."""
    import matplotlib.pyplot as plt

    figures_dir = Path(figures_dir)
    written = []
    for name, draw in (("loss_curve.png", plot_loss_curve), ("val_accuracy_curve.png", plot_val_accuracy_curve)):
        fig = draw(history, figures_dir / name)
        plt.close(fig)  # saved, not shown: a notebook shows the curves when it asks for them
        written.append(figures_dir / name)
    return written


def plot_accuracy_comparison(histories: dict, path: Path | str | None = None,
                             title: str | None = None):
    """Validation-accuracy curves of several runs on one axis, e.g. pretrained vs from scratch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, history in histories.items():
        rows = _training_rows(history)
        ax.plot([r["epoch"] for r in rows], [r["val_acc"] for r in rows], "o-", label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label=_t("chance"))
    ax.set(xlabel=_t("epoch"), ylabel=_t("validation accuracy"), ylim=(0.4, 1.02),
           title=title or _t("Validation accuracy per epoch"))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(len(histories) + 1, 3), fontsize=8,
              frameon=False)  # below the axes: a legend inside would cover a curve
    ax.grid(alpha=0.3)
    return _saved(fig, path)


# ------------------------------------------------------------- evaluation (metrics.py, evaluate.py, notebook 04)


def plot_confusion_matrix(cm, classes=None, title: str | None = None,
                          path: Path | str | None = None):
    """The reference's ``confusion_matrix.png``: counts with row percentages; rows true, columns predicted.

    Class names default to the words of ``$DETECTLIB_LANG`` (Generada / Real, or AI-generated / Real).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from .labels import class_labels

    classes = class_labels() if classes is None else classes

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count}\n{share[i, j]:.0%}", ha="center", va="center",
                color="white" if share[i, j] > 0.6 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel=_t("predicted"), ylabel=_t("true"), title=title or _t("Confusion matrix"))
    return _saved(fig, path)


def plot_roc_pr(scores: dict, path: Path | str | None = None, data: str = "", title: str | None = None):
    """ROC and precision-recall curves of several detectors (``{name: object with y_true, p_ai}``), ai positive,
    with AUC and average precision in the legend and the 5 % false-positive line marked.

    The PR panel draws the share of ai images as a dashed horizontal line: a detector that guesses has that
    precision at every recall, so a PR curve is only read against it (unlike ROC's diagonal, it moves with the
    data). The suptitle is ``title``, by default the detectors' names and ``data``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from .evaluation import metrics

    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(9, 4.2))
    prevalences = {}
    for name, s in scores.items():
        roc, pr = metrics.roc(s.y_true, s.p_ai), metrics.precision_recall(s.y_true, s.p_ai)
        ax_roc.plot(roc.x, roc.y, label=f"{name} (AUC {roc.area:.3f})")
        line, = ax_pr.step(pr.x, pr.y, where="post", label=f"{name} (AP {pr.area:.3f})")
        prevalences[name] = (float(np.mean(metrics.is_ai(s.y_true))), line.get_color())
    if len({round(share, 6) for share, _ in prevalences.values()}) == 1:  # the usual case: one image set
        share = next(iter(prevalences.values()))[0]
        ax_pr.axhline(share, color="grey", lw=1, ls="--", label=_t("no skill: share of {ai} ({share})",
                                                                     share=f"{share:.2f}"))
    else:  # detectors scored on different images: each has its own no-skill line, in its colour
        for name, (share, colour) in prevalences.items():
            ax_pr.axhline(share, color=colour, lw=1, ls="--",
                          label=f"{name}: " + _t("no skill: share of {ai} ({share})", share=f"{share:.2f}"))
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax_roc.axvline(0.05, color="red", lw=0.8, ls="--", label=_t("5 % false positives"))
    ax_roc.set(xlabel=_t("false-positive rate (real photos flagged)"), ylabel=_t("true-positive rate (fakes caught)"),
               title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    ax_pr.set(xlabel=_t("recall ({ai})"), ylabel=_t("precision ({ai})"), title=_t("Precision-recall"), xlim=(0, 1),
              ylim=(0, 1.02))
    fig.suptitle(title or _heading(_t("ROC and precision-recall"), ", ".join(scores), data))
    for ax in (ax_roc, ax_pr):
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _saved(fig, path)


def plot_noise_drift(sigmas, drift: dict, path: Path | str | None = None, data: str = ""):
    """The training-free detector's idea in one picture: embedding drift (1 − cos) against the noise σ, one thin
    line per image and a thick mean per class (``drift``: ``{class name: [[drift at each σ] per image]}``)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (name, curves), colour in zip(drift.items(), ("tab:red", "tab:green", "tab:blue"), strict=False):
        curves = np.asarray(curves, dtype=float)
        for curve in curves:
            ax.plot(sigmas, curve, color=colour, lw=0.6, alpha=0.35)
        ax.plot(sigmas, curves.mean(axis=0), color=colour, lw=2.2, marker="o",
                label=f"{name} ({_t('mean of {n} images', n=len(curves))})")
    ax.set(xscale="log", xlabel=_t("noise σ (normalised pixel units)"), ylabel=_t("embedding drift 1 − cos"),
           title=_t("How far the embedding moves under noise") + (f"\n{data}" if data else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _saved(fig, path)


def plot_reliability(scores: dict, n_bins: int = 10, path: Path | str | None = None, data: str = "",
                     title: str | None = None):
    """Reliability diagram: observed share of ai against mean p(ai) per bin, one line per detector, with ECE;
    points on the diagonal mean "p(ai) = 0.8 is right 80 % of the time".

    A panel underneath counts the images in each bin (bars, one colour per detector, log scale so a bin of 3
    images still shows): a point far off the diagonal that rests on 3 images says little, one on 300 says a lot.
    The title is ``title``, by default the detectors' names and ``data``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    from .evaluation import metrics

    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(4.8, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label=_t("perfectly calibrated"))
    width = 1 / n_bins / max(len(scores), 1)
    for k, (name, s) in enumerate(scores.items()):
        rel = metrics.reliability(s.y_true, s.p_ai, n_bins)
        full = rel.counts > 0
        line, = ax.plot(rel.mean_p[full], rel.frac_ai[full], "o-", label=f"{name} (ECE {rel.ece:.3f})")
        ax_n.bar(rel.edges[:-1] + (k + 0.5) * width, rel.counts, width, color=line.get_color(), label=name)
    ax.set(ylabel=_t("observed share of {ai}"), title=title or _heading(_t("Reliability"), ", ".join(scores), data),
           xlim=(0, 1), ylim=(0, 1))
    ax_n.set(xlabel=_t("mean predicted p(ai)"), ylabel=_t("images\nper bin"), yscale="log")
    ax_n.set_ylim(bottom=0.7)  # a bin of one image still shows a bar
    ax_n.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_n.yaxis.set_major_formatter(ScalarFormatter())  # 1, 2, 5, 10: counts, not powers of ten
    ax_n.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper left", fontsize=8)
    for a in (ax, ax_n):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return _saved(fig, path)


def plot_cross_generator(matrix, metric: str = "auc", path: Path | str | None = None, data: str = ""):
    """Heatmap of a cross-generator matrix (rows: trained on, columns: tested on); the diagonal is the usual
    in-distribution number, the rest is what happens on a generator the detector never saw. The colour scale runs
    over the whole 0-1 range (an AUC of 0.07 must look like one: worse than chance, not near it), every cell
    prints its value, and a last column shows each row's false-positive rate on the resampling control (lower
    is better, so its colours run the other way). ``data`` names the images under the title."""
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.asarray(getattr(matrix, metric))
    control = np.asarray(matrix.control_fpr, dtype=float).reshape(-1, 1)
    has_control = bool(np.isfinite(control).any())
    width = 1.2 * len(matrix.test_generators) + 2 + (1.4 if has_control else 0)
    fig, axes = plt.subplots(1, 2 if has_control else 1, figsize=(width, 1.0 * len(matrix.train_generators) + 1.6),
                             squeeze=False, gridspec_kw={"width_ratios": [len(matrix.test_generators), 1]}
                             if has_control else None)
    ax = axes[0][0]
    image = ax.imshow(values, cmap="RdYlGn", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set(xticks=range(len(matrix.test_generators)), xticklabels=matrix.test_generators,
           yticks=range(len(matrix.train_generators)), yticklabels=matrix.train_generators,
           xlabel=_t("tested on"), ylabel=_t("trained on"),
           title=_t("Cross-generator {metric}\nhead on {encoder}", metric=metric.upper() if metric == "auc" else metric,
                    encoder=matrix.encoder) + (f"\n{data}" if data else ""))
    fig.colorbar(image, ax=ax, fraction=0.046, label=metric)
    if has_control:
        side = axes[0][1]
        side.imshow(control, cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
        for i, v in enumerate(control[:, 0]):
            side.text(0, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=9)
        side.set(xticks=[], yticks=[], title=_t("control FPR\n(upscaled real\nphotos flagged)"))
    fig.tight_layout()
    return _saved(fig, path)


def plot_robustness(rows, path: Path | str | None = None, data: str = ""):
    """Accuracy and AUC under JPEG, downscaling and blur (rows from ``evaluation.robustness_sweep``): one panel per
    perturbation family, the unperturbed value as each curve's first point, the dotted line at chance; ``data``
    names the images in the title. One legend for all panels, below them, so it hides no curve."""
    import matplotlib.pyplot as plt

    families = [("jpeg", _t("JPEG quality"), True), ("downscale", _t("downscale factor"), True),
                ("blur", _t("blur σ"), False)]
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharey="row")
    for col, (kind, xlabel, descending) in enumerate(families):
        for metric, ax in zip(("accuracy", "auc"), axes[:, col], strict=True):
            for name in detectors:
                base = [r for r in rows if r["detector"] == name and r["kind"] == "none"]
                points = [r for r in rows if r["detector"] == name and r["kind"] == kind]
                origin = {"jpeg": 100, "downscale": 1, "blur": 0}[kind]
                xs = [origin] * len(base) + [r["value"] for r in points]
                ax.plot(xs, [r[metric] for r in base + points], "o-", label=name)
            if descending:
                ax.invert_xaxis()
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set(xlabel=xlabel, ylabel=_t(metric), ylim=(0.0, 1.02))
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.suptitle(_t("Robustness to everyday edits (first point: the original image; dotted: chance)")
                 + (f"\n{data}" if data else ""))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _saved(fig, path)


# --------------------------------------------------------------------- Grad-CAM heatmaps (explain.py, notebook 06)


def plot_heatmap_grid(images, rows, col_titles=None, title: str | None = None, alpha: float = 0.45,
                      path: Path | str | None = None, *, p_ai: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                      row_notes: Mapping[str, str] | None = None, columns: Sequence[int] | None = None,
                      detector: str = "", data: str = ""):
    """Images on top, then one row of heatmap overlays per entry of ``rows`` (name -> one map per image).

    One figure for every comparison of notebook 06: rows are layers (layer by layer), detectors (CLIP vs
    ConvNeXt) or CAM methods; columns are images (fakes next to reals). Maps are drawn on ``images`` as given:
    pass ``Explanation.views`` (what each detector saw, e.g. the CLIP head's centre crop).

    A colour bar reads the overlay's colours: every map is min-max normalised per image, so red means "hottest
    in this image", not a fixed amount of evidence. A heatmap is read next to the score it explains, so
    ``p_ai`` prints "p(ai)=0.83" in titles: one value per image (under the column title) or, when the rows are
    different detectors, ``{row name: one value per image}`` (in each panel of that row). ``row_notes`` adds a
    line under a row's name (e.g. ``"r=0.62 vs ours"``, an agreement number); ``columns`` keeps only those image
    indices, so a many-row figure stays readable. ``title`` defaults to "Grad-CAM" with ``detector`` and ``data``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from .explain.cam import overlay

    images = list(images)
    keep = list(range(len(images))) if columns is None else list(columns)
    images = [images[i] for i in keep]
    rows = {name: [maps[i] for i in keep] for name, maps in dict(rows).items()}
    titles = None if col_titles is None else [col_titles[i] for i in keep]
    per_row = p_ai if isinstance(p_ai, Mapping) else {}
    if p_ai is not None and not isinstance(p_ai, Mapping):
        scored = [f"p(ai)={p_ai[i]:.2f}" for i in keep]
        titles = scored if titles is None else [f"{t}\n{p}" for t, p in zip(titles, scored, strict=True)]
    n_rows, n_cols = 1 + len(rows), len(images)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 1.4, 1.9 * n_rows + 0.6), squeeze=False,
                             layout="constrained")
    for col, image in enumerate(images):
        axes[0, col].imshow(image)
        if titles is not None:
            axes[0, col].set_title(titles[col], fontsize=8)
    for row, (name, maps) in enumerate(rows.items(), start=1):
        for col, image in enumerate(images):
            axes[row, col].imshow(overlay(image, maps[col], alpha))
            if name in per_row:
                axes[row, col].set_title(f"p(ai)={per_row[name][keep[col]]:.2f}", fontsize=7, pad=2)
        note = (row_notes or {}).get(name)
        axes[row, 0].set_ylabel(_row_label(name) + (f"\n{note}" if note else ""), fontsize=9, rotation=0,
                                ha="right", va="center")
    axes[0, 0].set_ylabel(_t("image"), fontsize=9, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if rows:  # the overlays use OpenCV's JET map, which matplotlib's "jet" matches
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), ax=axes[1:, :].ravel().tolist(),
                     shrink=0.9 if len(rows) == 1 else 0.6,
                     fraction=0.03, label=_t("relevance (normalised 0–1)"))
    fig.suptitle(title or _heading("Grad-CAM", detector, data))
    return _saved(fig, path)


def _row_label(name: str, width: int = 16) -> str:
    """A heatmap row's name on lines of about ``width`` characters, broken at dots and spaces
    (``encoder.layers.11.layer_norm1`` -> ``encoder.layers.\n11.layer_norm1``), so it stays readable at 9 pt."""
    import textwrap

    return "\n".join(line.replace(". ", ".") for part in name.split("\n")
                     for line in textwrap.wrap(part.replace(".", ". "), width, break_long_words=False))


def plot_deletion_check(results, path: Path | str | None = None, *, detector: str = "", data: str = "",
                        title: str | None = None):
    """Drop in p(target) when the hottest pixels are masked vs random regions of the same size, per image
    (name -> ``explain.DeletionResult``): a faithful heatmap gives the taller orange bars. The title says how
    much was masked, then ``detector`` and ``data`` (``title`` replaces it)."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.2))
    ax.bar(x - 0.2, [results[n].drop_hot for n in names], 0.4, color="tab:orange", label=_t("hottest region masked"))
    ax.bar(x + 0.2, [results[n].drop_random for n in names], 0.4, color="tab:grey", label=_t("random region masked"))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    first = results[names[0]]
    heading = _t("Deletion check: {k} of the pixels masked ({fill})", k=f"{first.k:.0%}", fill=first.fill)
    ax.set(ylabel=_t("drop in p(target)"), title=title or _heading(heading, data=" — ".join(filter(None, (detector, data)))))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _saved(fig, path)


# -------------------------------------------------------------- frozen-encoder embeddings (features, notebook 03)


def plot_embedding_pca(sets, path: Path | str | None = None, title: str | None = None, *, encoder: str = "",
                       data: str = ""):
    """The embeddings of several generators' images (``{generator: features.EmbeddedSet}``) projected on their
    first two principal components: if the classes already separate here, a linear head on these vectors has an
    easy job.

    One channel, one meaning: colour is the class, the marker is the folder (generator) an image comes from, so a
    cluster of one marker within one colour shows a folder's own look (its photos too, whose source differs by
    folder). The axes give each component's share of the variance (scikit-learn's ``explained_variance_ratio_``):
    two components that explain 5 % of it hide most of the geometry. ``title`` defaults to one naming
    ``encoder`` and ``data``.
    """
    import itertools

    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from matplotlib.lines import Line2D
    from sklearn.decomposition import PCA

    from .config import CLASSES
    from .labels import class_label

    names = list(sets)
    pca = PCA(n_components=2, random_state=0)  # as features.pca_2d, keeping the fit for its variance ratios
    points = pca.fit_transform(torch.cat([sets[n].embeddings for n in names]).double().numpy())
    labels = np.concatenate([sets[n].labels.numpy() for n in names])
    groups = np.concatenate([[i] * len(sets[n].labels) for i, n in enumerate(names)]).astype(int)
    colours = dict(zip(range(len(CLASSES)), ("tab:red", "tab:green"), strict=True))
    markers = dict(zip(names, itertools.cycle("os^DvPX*<>"), strict=False))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for (index, name), (label, colour) in itertools.product(enumerate(names), colours.items()):
        mask = (groups == index) & (labels == label)
        ax.scatter(points[mask, 0], points[mask, 1], s=14, alpha=0.6, color=colour, marker=markers[name],
                   linewidths=0)
    ratio = pca.explained_variance_ratio_
    ax.set(xlabel=_t("PC{k} ({share} of variance)", k=1, share=f"{100 * ratio[0]:.0f} %"),
           ylabel=_t("PC{k} ({share} of variance)", k=2, share=f"{100 * ratio[1]:.0f} %"))
    by_class = ax.legend([Line2D([], [], ls="", marker="o", color=c) for c in colours.values()],
                         [class_label(CLASSES[i]) for i in colours], title=_t("colour: class"), fontsize=8,
                         title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.add_artist(by_class)  # a second legend would otherwise replace the first
    ax.legend([Line2D([], [], ls="", marker=markers[n], color="dimgrey") for n in names], names,
              title=_t("marker: folder"), fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 0.6))
    ax.grid(alpha=0.3)
    fig.suptitle(title or _heading(_t("Frozen-encoder embeddings, PCA"), encoder, data))
    fig.tight_layout()
    return _saved(fig, path)


# ------------------------------------------------------------------ dataset figures (synth.py, audit.py, notebook 01)


def plot_thumbnail_grid(groups: dict, path: Path | str | None = None, title: str | None = None, *,
                        data: str = ""):
    """One row of thumbnails per group (e.g. ``"AE ai"``, ``"AE nature"``): look before you train.

    ``groups`` maps a row label to a list of uint8 images (H, W, 3); rows may be shorter than the longest.
    ``title`` defaults to "A few images of each group" and ``data`` (which set, which split).
    """
    import matplotlib.pyplot as plt

    labels = list(groups)
    cols = max((len(images) for images in groups.values()), default=0) or 1
    fig, axes = plt.subplots(len(labels), cols, figsize=(1.1 * cols + 1.2, 1.15 * len(labels)), squeeze=False)
    for row, label in enumerate(labels):
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(groups[label]):
                ax.imshow(groups[label][col], interpolation="nearest")
        axes[row][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title or _heading(_t("A few images of each group"), data=data))
    fig.tight_layout()
    return _saved(fig, path)


def plot_spectra(spectra: dict, path: Path | str | None = None, reference: str = "real", *,
                 title: str | None = None, data: str = ""):
    """Mean log-amplitude spectra (top) and their difference from ``reference`` (bottom), one column each.

    ``spectra`` maps a name to a 2-D spectrum with zero frequency in the centre (``data.demo.mean_log_spectrum``).
    Upsampling by 2 prints a pattern of period 2, 4, ... pixels: bright dots at ±1/2, ±1/4 ... cycles/pixel.
    Both axes are frequencies in cycles/pixel, positive up and right as on any plot; each pixel of the picture
    sits on its frequency (``numpy.fft.fftfreq``), so a peak's position reads off as a period. ``title``
    defaults to one naming ``data``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(spectra)
    base = spectra.get(reference)
    rows = 2 if base is not None and len(names) > 1 else 1
    fig, axes = plt.subplots(
        rows, len(names), figsize=(2.6 * len(names) + 1, 2.7 * rows + 0.5), squeeze=False, layout="constrained"
    )
    extent = (*_frequency_edges(spectra[names[0]].shape[1]), *_frequency_edges(spectra[names[0]].shape[0]))
    low = min(float(np.percentile(s, 1)) for s in spectra.values())
    high = max(float(s.max()) for s in spectra.values())
    if rows == 2:
        spread = max(float(np.abs(s - base).max()) for s in spectra.values()) or 1.0
    for col, name in enumerate(names):
        top = axes[0][col].imshow(spectra[name], cmap="viridis", vmin=low, vmax=high, extent=extent, origin="lower")
        axes[0][col].set_title(name)
        if rows == 2 and name == reference:
            axes[1][col].axis("off")
            note = _t("bottom row:\neach spectrum\nminus {reference}", reference=reference)
            axes[1][col].text(0.5, 0.5, note, ha="center", va="center", transform=axes[1][col].transAxes)
        elif rows == 2:
            diff = axes[1][col].imshow(
                spectra[name] - base, cmap="RdBu_r", vmin=-spread, vmax=spread, extent=extent, origin="lower"
            )
            axes[1][col].set_title(f"{name} − {reference}", fontsize=9)
    for row in axes:
        shown = [ax for ax in row if ax.axison]
        for ax in shown:
            ax.set_xticks([-0.5, -0.25, 0, 0.25, 0.5], ["−½", "−¼", "0", "¼", "½"])
            ax.set_yticks([-0.5, -0.25, 0, 0.25, 0.5], ["−½", "−¼", "0", "¼", "½"])
            ax.set(xlim=extent[:2], ylim=extent[2:])  # the ticks at ±1/2 must not widen the picture
            ax.tick_params(labelsize=7)
            ax.set_xlabel(_t("horizontal frequency (cycles / pixel)"), fontsize=7)
        shown[0].set_ylabel(_t("vertical frequency (cycles / pixel)"), fontsize=7)
    fig.colorbar(top, ax=axes[0].tolist(), shrink=0.8, label=_t("mean log amplitude"))
    if rows == 2:
        fig.colorbar(diff, ax=axes[1].tolist(), shrink=0.8,
                     label=_t("log-amplitude difference\nvs {reference}", reference=reference))
    fig.suptitle(title or _heading(_t("Mean Fourier spectra"), data=data))
    return _saved(fig, path)


def _frequency_edges(n: int) -> tuple[float, float]:
    """The outer edges, in cycles/pixel, of ``n`` centred FFT bins: pixel ``i`` of a ``fftshift``-ed spectrum is
    frequency ``fftshift(fftfreq(n))[i]``, so for even ``n`` the picture runs from −1/2 to just under +1/2."""
    import numpy as np

    freqs = np.fft.fftshift(np.fft.fftfreq(n))
    return float(freqs[0] - 0.5 / n), float(freqs[-1] + 0.5 / n)
