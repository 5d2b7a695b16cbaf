"""What a person reads: the two classes and the prediction words, in the reference's Spanish and in English.

Introduced in notebook 04 with the ``infer`` command; one small table so the command-line tools, figures and
widgets say the same words, and a translation is one new entry. The text tables every notebook and command
prints (``format_table``, ``format_confusion``) live here too, so there is one formatter. Standard library only:
the lean ``infer`` CLI imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .config import AI_INDEX, CLASSES, get_language

if TYPE_CHECKING:
    import numpy as np


# Both detectors' reference rule on p(ai): ConvNeXt's argmax and the CLIP head's score threshold 0.
DEFAULT_THRESHOLD = 0.5


LABELS: dict[str, dict[str, str]] = {
    # The reference's words (§5): classes ["Generada", "Real"], "🔍 Predicción: Real", "📊 Confianza: 97.32%".
    "es": {"ai": "Generada", "nature": "Real", "prediction": "Predicción", "confidence": "Confianza",
           "layer": "Capa", "saved": "Grad-CAM guardado en"},
    "en": {"ai": "AI-generated", "nature": "Real", "prediction": "Prediction", "confidence": "Confidence",
           "layer": "Layer", "saved": "Grad-CAM saved to"},
}


# The words of the figures (``plots``), written in English in the code and shown in ``$DETECTLIB_LANG``: one
# language per figure. A text missing here is shown as written, so a new figure word is one new entry.
FIGURE_TEXT: dict[str, dict[str, str]] = {
    "es": {
        "Loss per epoch": "Pérdida por época", "epoch": "época", "loss": "pérdida",
        "noise σ (normalised pixel units)": "ruido σ (unidades de píxel normalizadas)",
        "embedding drift 1 − cos": "deriva del embedding 1 − cos",
        "How far the embedding moves under noise": "Cuánto se mueve el embedding con ruido",
        "mean of {n} images": "media de {n} imágenes",
        "training loss": "pérdida de entrenamiento", "validation loss": "pérdida de validación",
        "Accuracy per epoch": "Exactitud por época", "accuracy": "exactitud",
        "validation accuracy": "exactitud de validación", "training accuracy": "exactitud de entrenamiento",
        "Validation accuracy per epoch": "Exactitud de validación por época", "chance": "azar",
        "Confusion matrix": "Matriz de confusión", "predicted": "predicha", "true": "verdadera",
        "false-positive rate (real photos flagged)": "tasa de falsos positivos (fotos reales marcadas)",
        "true-positive rate (fakes caught)": "tasa de verdaderos positivos (generadas detectadas)",
        "Precision-recall": "Precisión-exhaustividad", "recall ({ai})": "exhaustividad ({ai})",
        "precision ({ai})": "precisión ({ai})", "5 % false positives": "5 % de falsos positivos",
        "perfectly calibrated": "calibración perfecta", "mean predicted p(ai)": "p(ai) media predicha",
        "observed share of {ai}": "proporción observada de {ai}", "Reliability": "Fiabilidad",
        "tested on": "evaluado en", "trained on": "entrenado en",
        "Cross-generator {metric}\nhead on {encoder}": "{metric} entre generadores\ncabeza sobre {encoder}",
        "control FPR\n(upscaled real\nphotos flagged)": "FPR de control\n(fotos reales\nreescaladas marcadas)",
        "JPEG quality": "calidad JPEG", "downscale factor": "factor de reducción", "blur σ": "desenfoque σ",
        "Robustness to everyday edits (first point: the original image; dotted: chance)":
            "Robustez ante ediciones cotidianas (primer punto: la imagen original; punteado: azar)",
        "image": "imagen", "hottest region masked": "región más caliente tapada",
        "random region masked": "región aleatoria tapada", "drop in p(target)": "caída de p(clase predicha)",
        "Deletion check: {k} of the pixels masked ({fill})": "Prueba de borrado: {k} de los píxeles tapados ({fill})",
        "ROC and precision-recall": "ROC y precisión-exhaustividad",
        "no skill: share of {ai} ({share})": "sin capacidad: proporción de {ai} ({share})",
        "images\nper bin": "imágenes\npor intervalo", "relevance (normalised 0–1)": "relevancia (normalizada 0–1)",
        "Frozen-encoder embeddings, PCA": "Embeddings del codificador congelado, PCA",
        "PC{k} ({share} of variance)": "CP{k} ({share} de la varianza)",
        "colour: class": "color: clase", "marker: folder": "marcador: carpeta",
        "A few images of each group": "Algunas imágenes de cada grupo",
        "bottom row:\neach spectrum\nminus {reference}": "fila inferior:\ncada espectro\nmenos {reference}",
        "horizontal frequency (cycles / pixel)": "frecuencia horizontal (ciclos / píxel)",
        "vertical frequency (cycles / pixel)": "frecuencia vertical (ciclos / píxel)",
        "mean log amplitude": "amplitud log media",
        "log-amplitude difference\nvs {reference}": "diferencia de amplitud log\nfrente a {reference}",
        "Mean Fourier spectra": "Espectros de Fourier medios",
    },
    "en": {},
}


def figure_text(text: str, lang: str | None = None, **fields: object) -> str:
    """A figure's word or sentence in ``lang`` (default ``$DETECTLIB_LANG``), its ``{fields}`` filled in; ``{ai}``
    and ``{nature}`` default to the class names in the same language."""
    lang = lang or get_language()
    fields = {"ai": class_label("ai", lang), "nature": class_label("nature", lang), **fields}
    return FIGURE_TEXT[lang].get(text, text).format(**fields)


def predicted_class(p_ai: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """``"ai"`` when ``p_ai >= threshold``, else ``"nature"`` (the rule ``evaluation.metrics.predict_labels`` vectorises)."""
    return CLASSES[AI_INDEX] if p_ai >= threshold else CLASSES[1 - AI_INDEX]


def class_label(class_name: str, lang: str | None = None) -> str:
    """The display name of a class folder name (``ai`` / ``nature``) in ``lang`` (default ``$DETECTLIB_LANG``)."""
    return LABELS[lang or get_language()][class_name]


def class_labels(lang: str | None = None) -> tuple[str, ...]:
    """Both classes' display names in ImageFolder order, for figure axes and tables."""
    return tuple(class_label(name, lang) for name in CLASSES)


def format_prediction(p_ai: float, lang: str | None = None, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The reference's two lines: the predicted class, and the confidence (the probability of that class)."""
    name = predicted_class(p_ai, threshold)
    confidence = p_ai if name == CLASSES[AI_INDEX] else 1.0 - p_ai
    words = LABELS[lang or get_language()]
    return f"🔍 {words['prediction']}: {words[name]}\n📊 {words['confidence']}: {confidence * 100:.2f}%"


# ------------------------------------------------------------------ text tables (notebooks and commands)


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


def format_confusion(cm: np.ndarray) -> str:
    """The confusion matrix with its class names: rows are the true class, columns the prediction."""
    width = max(len(c) for c in CLASSES) + 2
    lines = ["Confusion matrix (rows: true class, columns: predicted):", " " * width + "".join(
        c.rjust(width) for c in CLASSES)]
    lines += [name.ljust(width) + "".join(str(v).rjust(width) for v in row) for name, row in zip(CLASSES, cm,
                                                                                                 strict=True)]
    return "\n".join(lines)
