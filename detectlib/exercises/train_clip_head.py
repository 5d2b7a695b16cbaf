"""Exercises of lesson 03, the frozen-encoder head: what is trained, the cache key, p(ai) from the CLIP score, the
reference's decision, and the prediction read against the lesson's own run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..models.clip_head import ClipHeadDetector
from .core import (
    Lesson,
    Measured,
    Question,
    Wrong,
    _array,
    _code,
    _function,
    _needs,
    _number,
    _prediction_question,
    _run,
)

# ============================================================================ lesson 03 · the CLIP head


def _probe() -> ClipHeadDetector:
    """The reference's head behind a frozen EfficientNet-Lite0 with random weights (no download, no CLIP)."""
    from ..models.clip_head import ClipHeadDetector
    from ..models.encoders import make_encoder

    return ClipHeadDetector(encoder=make_encoder("timm:tf_efficientnet_lite0:random"), weights_path=None)


def _probe_dims() -> list[int]:
    """Embedding widths to check ``probe_size`` on: the probe's own, CLIP ViT-L/14's, and two drawn from a seed."""
    return [_probe().encoder.dim, 1024, *(int(d) for d in np.random.default_rng(8).integers(16, 4096, 2))]


def _check_probe_size(probe_size: Any) -> str:
    from ..models.clip_head import make_head

    fn = _function(probe_size, "probe_size")
    for dim in _probe_dims():
        on = f"{dim}-d embeddings"
        got = _number(_run(fn, "probe_size", on, dim), "probe_size(...)")
        expected = sum(p.numel() for p in make_head(dim).parameters() if p.requires_grad)
        if got == expected:
            continue
        if got == dim:
            raise Wrong(f"for {on} you return {got:g}, the embedding width: the Linear layer has one weight per "
                        "dimension, plus a bias.")
        if got == 2:
            raise Wrong("2 is the number of trainable *tensors* (weight and bias); count the numbers in them.")
        raise Wrong(f"for {on} you return {got:,g}, but the head trains {expected:,}. Look at detector.head: "
                    "Dropout has nothing to learn, the Linear layer has one output.")
    probe = _probe()
    total = sum(p.numel() for p in probe.parameters())
    return (f"{probe.encoder.dim + 1:,} of the probe's {total:,} numbers train; with CLIP ViT-L/14 (1024-d) the "
            "reference trains 1,025. A head this small cannot learn to see: it can only find the direction along "
            "which the frozen embeddings already separate.")


def _check_image_key(image_key: Any) -> str:
    from PIL import Image

    fn = _function(image_key, "image_key")
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    edited = pixels.copy()
    edited[3, 4] ^= 1  # one bit of one pixel: same size, same format
    with tempfile.TemporaryDirectory() as tmp:
        original, copy = Path(tmp) / "AE_ai_00001.bmp", Path(tmp) / "ALL_full_AE_ai_00001.bmp"
        changed = Path(tmp) / "edited.bmp"
        Image.fromarray(pixels).save(original)
        Image.fromarray(edited).save(changed)
        shutil.copyfile(original, copy)
        stamp = original.stat().st_mtime
        os.utime(changed, (stamp, stamp))
        os.utime(copy, (stamp + 3600, stamp + 3600))
        keys = {name: _run(fn, "image_key", f"the file {path.name}", path)
                for name, path in (("original", original), ("again", original), ("copy", copy), ("edited", changed))}
    try:
        same = {name: key == keys["original"] for name, key in keys.items()}
    except Exception as err:
        raise Wrong(f"your keys cannot be compared ({type(err).__name__}): return a string.") from None
    if not same["again"]:
        raise Wrong("two calls on the same file gave different keys: a key must depend only on the file.")
    if not same["copy"]:
        raise Wrong("a byte-for-byte copy under another name (and date) got a different key. The kit copies "
                    "images around (create_full_all prefixes names), so the key must come from the bytes, not "
                    "from the path, name or date.")
    if same["edited"]:
        raise Wrong("an edited image with the same size and date got the same key, so the cache would serve it a "
                    "stale embedding. Hash the file's bytes (hashlib.sha256).")
    return "a content key: copies hit, edits miss. The kit uses the SHA-256 hex digest (dl.models.file_digest)."


def _clip_scores() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([[-1.0, 0.0, 1.0], rng.uniform(-1, 1, 9)])


def _kit_p_ai(scores: np.ndarray) -> np.ndarray:
    """p(ai) of CLIP-head scores as the kit computes it: the head's own formula (``models.clip_head``)."""
    from ..models.clip_head import p_ai_from_score

    return np.asarray(p_ai_from_score(np.asarray(scores, dtype=np.float64)))


def _check_p_ai(p_ai_from_score: Any) -> str:
    fn = _function(p_ai_from_score, "p_ai_from_score")
    scores = _clip_scores()
    got = _array(_run(fn, "p_ai_from_score", "a numpy array of 12 scores", scores.copy()),
                 "p_ai_from_score's output")
    expected = _kit_p_ai(scores)
    if got.shape != expected.shape:
        raise Wrong(f"for 12 scores you return shape {got.shape}; expected one p(ai) per score, {expected.shape}.")
    if np.allclose(got, expected, atol=1e-6):
        return "p(ai) = (1 - score) / 2, as models.Detector.p_ai: both detectors now share one scale and threshold."
    if np.allclose(got, 1 - expected, atol=1e-6):
        raise Wrong("that is p(real): the score is > 0 for *real* photos (score = 2 p(real) - 1).")
    if np.allclose(got, scores):
        raise Wrong("you returned the score itself; it lies in [-1, 1], a probability in [0, 1].")
    if np.allclose(got, 1 / (1 + np.exp(-scores)), atol=1e-6):
        raise Wrong("the score is already squashed (2 sigmoid(logit) - 1); don't apply a sigmoid again: invert "
                    "score = 2 p(real) - 1.")
    low = scores.argmin()
    raise Wrong(f"for score {scores[low]:+.2f} you give {got[low]:.3f}, expected {expected[low]:.3f}.")


def _check_label(label_from_score: Any) -> str:
    from ..config import CLASSES
    from ..labels import predicted_class

    fn = _function(label_from_score, "label_from_score")
    for score in (-0.9, -1e-6, 0.0, 1e-6, 0.7):
        got = _run(fn, "label_from_score", f"score {score:g}", score)
        expected = predicted_class(float(_kit_p_ai(np.array([score]))[0]))
        if isinstance(got, str) and got == expected:
            continue
        if not isinstance(got, str):
            raise Wrong(f"for score {score:g} you return {got!r}; return a class name, 'ai' or 'nature'.")
        if got not in CLASSES:
            raise Wrong(f"for score {score:g} you return {got!r}; use the class folder names {CLASSES}.")
        if score == 0.0:
            raise Wrong("a score of exactly 0 is AI in the reference (score <= 0 -> AI): p(ai) = 0.5, and the "
                        "kit flags p(ai) >= 0.5.")
        raise Wrong(f"for score {score:g} you say {got!r}: a score > 0 means real (nature), <= 0 means ai.")
    return "the reference's rule, and the kit's p(ai) >= 0.5 in other words."


def _measure_random_encoder() -> Measured:
    """Lesson 03: validation AUC lost when the head's encoder has random weights, from the comparison's runs."""
    from ..config import get_profile
    from ..models.checkpoints import load_checkpoint
    from ..models.encoders import random_counterpart
    from ..training.clip_head import comparison_folder

    profile = get_profile()
    specs = (profile.encoder, random_counterpart(profile.encoder))
    auc = [load_checkpoint(_needs(comparison_folder(spec) / "clip_head.pth", "03_train_clip_head"))["metrics"]["auc"]
           for spec in specs]
    lost = auc[0] - auc[1]
    choice = "little" if lost < 0.05 else "some" if lost < 0.2 else "most"
    same = " (in this profile the encoder is itself random, so both runs are the same)" if specs[0] == specs[1] else ""
    return Measured(choice, f"validation AUC {auc[0]:.3f} with {specs[0]}, {auc[1]:.3f} with random weights: "
                            f"{lost:+.3f} lost{same}")


lesson03 = Lesson("03_train_clip_head", "Linear probing a frozen encoder", [
    Question(
        "q1", "How many numbers does the probe train?", ("probe_size",), _check_probe_size,
        hints=("The encoder is frozen; only the head learns. Dropout has nothing to learn.",
               "print(detector.head) shows its layers; torch.nn.Linear's docs say which tensors a Linear layer holds "
               "and their shapes. To check yourself, count the numbers of detector's parameters that have "
               "requires_grad (Tensor.numel)."),
        setup=_code("""
            detector = ex.q1.data()  # the reference's head behind a frozen encoder
            print(detector.encoder.description)
            print(detector.encoder.dim, "-d embeddings ->", detector.head)
        """),
        todo=_code('''
            def probe_size(dim):
                """How many numbers training changes in the reference's head behind a frozen dim-d encoder."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def probe_size(dim):
                """How many numbers training changes in the reference's head behind a frozen dim-d encoder."""
                return dim + 1  # one weight per embedding dimension, and one bias
        '''),
        data_fn=_probe,
        forbidden=("detectlib.models.clip_head.*",),
    ),
    Question(
        "q2", "A cache key from the content", ("image_key",), _check_image_key,
        hints=("A key must follow what the encoder sees, the image's content: a renamed copy must hit, an image "
               "edited in one pixel must miss. Names, sizes and dates do neither reliably.",
               "Python's open() has a binary mode that gives the file's bytes; the hashlib module's docs show how to "
               "turn bytes into a hex digest (SHA-256 is a good choice)."),
        todo=_code('''
            import hashlib

            def image_key(path):
                """A key equal for two files with the same bytes, and different as soon as one byte differs."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import hashlib

            def image_key(path):
                """A key equal for two files with the same bytes, and different as soon as one byte differs."""
                with open(path, "rb") as f:
                    return hashlib.sha256(f.read()).hexdigest()
        '''),
        forbidden=("detectlib.models.features.*",),
    ),
    Question(
        "q3", "p(ai) from the CLIP score", ("p_ai_from_score",), _check_p_ai,
        hints=("The head's score is a probability of *real* stretched to [-1, 1]. Undo the stretch, then take the "
               "other class.",
               "Write the two relations down: score = 2·p(real) − 1 and p(ai) = 1 − p(real). Solve them for p(ai) "
               "on paper; plain arithmetic (+, −, /) works on numbers and numpy arrays alike."),
        setup=_code("""
            scores = ex.q3.data()  # CLIP-head scores in [-1, 1]: > 0 real, <= 0 AI
            print(scores.round(2))
        """),
        todo=_code('''
            def p_ai_from_score(score):
                """p(ai) in [0, 1] from the CLIP head's score in [-1, 1]; works on numbers and numpy arrays."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def p_ai_from_score(score):
                """p(ai) in [0, 1] from the CLIP head's score in [-1, 1]; works on numbers and numpy arrays."""
                return (1 - score) / 2
        '''),
        data_fn=_clip_scores,
        forbidden=("detectlib.models.Detector.p_ai", "detectlib.models.clip_head.*"),
    ),
    Question(
        "q4", "The reference's decision", ("label_from_score",), _check_label,
        hints=("One comparison with 0 decides; the only question is which side 0 itself falls on.",
               "Python's conditional expression (x if condition else y) does it in one line; the names to return "
               "are the class folders, dl.CLASSES, and help(dl.models.p_ai_from_score) says which sign means real."),
        setup="print(dl.CLASSES)",
        todo=_code('''
            def label_from_score(score):
                """The reference's decision for one score: "ai" or "nature" (the class folder names)."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def label_from_score(score):
                """The reference's decision for one score: "ai" or "nature" (the class folder names)."""
                return "nature" if score > 0 else "ai"
        '''),
        forbidden=("detectlib.labels.*", "detectlib.evaluation.metrics.predict_labels", "detectlib.models.clip_head.*"),
    ),
    _prediction_question(
        "q5", "Predict, then read the encoder comparison",
        {"little": "random weights lose less than 0.05 of validation AUC",
         "some": "they lose 0.05 to 0.2", "most": "they lose more than 0.2"}, _measure_random_encoder,
        hints=("A head of d + 1 numbers can only find a direction in which the embeddings already separate. Would "
               "random features of a big network separate these fakes anyway?",
               "help(dl.models.random_counterpart) says what the comparison swaps. Think about what random "
               "convolutions still pass on (colour, noise, sharpness) and whether these fakes differ in those."),
        todo='prediction = ...  # TODO: "little", "some" or "most", written down before you run the check',
        solution_code=_code("""
            # Random projections keep some low-level statistics (colour, noise), so a head behind random weights
            # often beats chance on easy fakes; how much pretraining adds is what the run measures.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
