"""What a person reads: the two classes and the prediction words, in the reference's Spanish and in English.

Introduced in notebook 04 with the ``infer`` command; one small table so the command-line tools, figures and
widgets say the same words, and a translation is one new entry. Standard library only: the lean ``infer`` CLI
imports it.
"""

from __future__ import annotations

from .config import AI_INDEX, CLASSES, get_language

# Both detectors' reference rule on p(ai): ConvNeXt's argmax and the CLIP head's score threshold 0.
DEFAULT_THRESHOLD = 0.5

LABELS: dict[str, dict[str, str]] = {
    # The reference's words (§5): classes ["Generada", "Real"], "🔍 Predicción: Real", "📊 Confianza: 97.32%".
    "es": {"ai": "Generada", "nature": "Real", "prediction": "Predicción", "confidence": "Confianza",
           "layer": "Capa", "saved": "Grad-CAM guardado en"},
    "en": {"ai": "AI-generated", "nature": "Real", "prediction": "Prediction", "confidence": "Confidence",
           "layer": "Layer", "saved": "Grad-CAM saved to"},
}


def predicted_class(p_ai: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """``"ai"`` when ``p_ai >= threshold``, else ``"nature"`` (the rule ``metrics.predict_labels`` vectorises)."""
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
