"""Self-checking exercises for the five lessons, in the style of Kaggle's learntools, with no grading server.

Used by ``notebooks/exercises/`` (the student notebooks) and ``notebooks/exercises/solutions/`` (the teachers'
copies, run by nbval). Each lesson is a namespace of questions (``dl.exercises.lesson01.q1`` ...), and each
question offers:

* ``q.check(answer, ...)``: prints ✅ when the answer is right, ❌ with what exactly is wrong, or 💡 a nudge while
  the answer is still the TODO placeholder (``...`` or ``None``). A learner's exception is explained, never shown
  as a traceback. ``strict=True`` (the solutions notebooks, run by nbval) raises ``AssertionError`` unless the
  answer is right, so CI notices a wrong reference solution.
* ``q.hint()``: two tiers, an idea first, then (called again) a pointer to the tools; ``q.solution()``: the
  reference solution's code.
* ``q.data()``: the question's inputs, made fresh on every call from a fixed seed.

Why the checkers compute every expected answer with the library itself (``dl.audit``, ``dl.metrics``,
``dl.explain`` ...) on small seeded data: a hard-coded number would drift the day the library changes, and an
exercise that disagrees with its lesson teaches the wrong thing. The same reason makes a shortcut possible, so a
question lists the library functions it is checked against (``forbidden``): while the learner's function runs,
each is replaced by a tripwire, and an answer that merely calls one is told to write the steps itself.

The inputs are tiny and made on the spot, so every question works in every profile (Colab's ``full`` included) in
a second or less, without the demo dataset. The exception is each lesson's last question, a *prediction*: the
learner commits to what the lesson's own run will show, and the check then reads that run's results (its
checkpoints, its dataset) and says what it measured. ``setup``, ``todo`` and ``solution_code`` hold the code the
exercise notebooks show, so the notebooks and the tests run the same code.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import io
import itertools
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the heavy imports happen inside the questions that need them
    import torch
    from PIL import Image

    from .clip_head import ClipHeadDetector
    from .evaluate import CrossGenerator
    from .explain import CamResult
    from .train import History

PLACEHOLDERS = (None, Ellipsis)
NOT_ATTEMPTED = "replace the `...` in the TODO cell with your answer, run that cell, then run this check again."


class NotAttempted(Exception):
    """The answer is still the TODO placeholder: a nudge, not a failure."""


class Wrong(Exception):
    """A wrong answer; the message says, in plain words, what is wrong."""


_FORBIDDEN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("forbidden", default=())


class _ShortcutTaken(BaseException):
    """Raised by a tripwire; a BaseException, so a learner's ``except Exception`` cannot hide it."""


def _owner(dotted: str) -> tuple[Any, str]:
    """``"detectlib.train.History.best"`` -> (the History class, "best"): the object holding the attribute."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise ValueError(f"{dotted}: no module in this dotted name")


@contextlib.contextmanager
def _tripwires(targets: Iterable[str]) -> Iterator[list[str]]:
    """While inside, each named function raises ``_ShortcutTaken`` when called; yields the names called."""
    taken: list[str] = []
    patched = []
    for target in targets:
        owner, attr = _owner(target)

        def wire(*args: Any, _target: str = target, **kwargs: Any) -> Any:
            taken.append(_target)
            raise _ShortcutTaken(_target)

        patched.append((owner, attr, inspect.getattr_static(owner, attr)))
        setattr(owner, attr, wire)
    try:
        yield taken
    finally:
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)


def _public_name(dotted: str) -> str:
    """How a notebook spells it: ``dl.audit.blockiness``, ``History.best``, ``sklearn.metrics.roc_auc_score``."""
    return "dl." + dotted.removeprefix("detectlib.") if dotted.startswith("detectlib.") else dotted


@dataclass(frozen=True)
class Measured:
    """What a lesson's run shows, for a prediction question: the matching choice and the numbers behind it."""

    choice: str
    evidence: str


class LessonNotRun(Exception):
    """A prediction question needs the lesson's results, and they are not there yet."""


@dataclass(frozen=True)
class Result:
    """What ``Question.check`` found; truthy only when the answer is right."""

    status: str  # "correct", "wrong" or "not attempted"
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def _ipython_display_(self) -> None:
        """Show nothing: the printed feedback is the answer, a ``Result(...)`` echo under it would be noise."""


@dataclass
class Question:
    """One exercise: its checker and the code the notebook shows around it."""

    label: str  # "q1"
    title: str
    answers: tuple[str, ...]  # the names the learner's code defines, passed to check() in this order
    checker: Callable[..., str | None]  # raises Wrong / NotAttempted; returns an optional remark on success
    hints: tuple[str, str]  # an idea, then a pointer to the tools
    solution_code: str
    todo: str  # code with the placeholder
    setup: str = ""  # code that makes the inputs (run before the TODO cell)
    data_fn: Callable[[], Any] | None = None
    forbidden: tuple[str, ...] = ()  # dotted names of the library functions the checker compares with
    measure: Callable[[], Measured] | None = None  # a prediction question: what the lesson's run shows
    hints_shown: int = field(default=0, repr=False)

    @property
    def call(self) -> str:
        """How the notebook calls the check, e.g. ``ex.q1.check(leaked)``."""
        return f"ex.{self.label}.check({', '.join(self.answers)})"

    def data(self) -> Any:
        """The question's inputs, fresh from a fixed seed (change them freely: the checker makes its own)."""
        if self.data_fn is None:
            raise AttributeError(f"{self.label} has no data: its inputs are made in the notebook cell")
        return self.data_fn()

    def measured(self) -> str:
        """A prediction question's answer as the lesson's run gives it (the teachers' notebooks use it)."""
        if self.measure is None:
            raise AttributeError(f"{self.label} is not a prediction: it has a fixed answer, see solution()")
        return self.measure().choice

    def check(self, *args: Any, strict: bool = False, **kwargs: Any) -> Result:
        """Print ✅ / ❌ / 💡 feedback on the learner's answer and return it; ``strict`` raises unless right."""
        try:
            bound = inspect.signature(self.checker).bind(*args, **kwargs)
        except TypeError:
            result = Result("wrong", f"pass your answer to the check, like this: {self.call}")
        else:
            token = _FORBIDDEN.set(self.forbidden)
            try:
                result = Result("correct", self.checker(*bound.args, **bound.kwargs) or "")
            except NotAttempted as err:
                result = Result("not attempted", str(err) or NOT_ATTEMPTED)
            except Wrong as err:
                result = Result("wrong", str(err))
            except Exception as err:  # a checker that trips on an unexpected answer must not show a traceback
                if strict:
                    raise
                result = Result("wrong", f"could not check this answer ({type(err).__name__}: {err}); is it the "
                                         f"kind of value the question asks for?")
            finally:
                _FORBIDDEN.reset(token)
        print(self._render(result))
        if strict and not result:
            raise AssertionError(f"{self.label} ({self.title}) {result.status}: {result.message}")
        return result

    def _render(self, result: Result) -> str:
        head, message = f"{self.label} · {self.title}", _sentence(result.message)
        if result.status == "correct":
            return f"✅ {head}: correct! {message}".rstrip()
        if result.status == "not attempted":
            return f"💡 {head}: not attempted yet. {message}"
        return (f"❌ {head}: {message}\n"
                f"💡 Stuck? ex.{self.label}.hint() gives a hint, ex.{self.label}.solution() an answer.")

    def hint(self, tier: int | None = None) -> None:
        """The next hint: first the idea, then (called again) a pointer; ``tier`` picks one (1 or 2)."""
        tier = tier if tier is not None else min(self.hints_shown + 1, len(self.hints))
        if tier not in range(1, len(self.hints) + 1):
            raise ValueError(f"{self.label} has hints 1 to {len(self.hints)}, not {tier}")
        self.hints_shown = max(self.hints_shown, tier)
        kind = ("an idea", "a pointer")[tier - 1]
        more = f" Run ex.{self.label}.hint() again for a pointer." if tier < len(self.hints) else ""
        print(f"💡 Hint {tier} of {len(self.hints)}, {kind} ({self.label}): {self.hints[tier - 1]}{more}")

    def solution(self) -> None:
        print(f"💡 A solution ({self.label}):\n\n{self.solution_code}")


class Lesson:
    """The questions of one lesson, as attributes ``q1``, ``q2`` ...; iterating yields them in order."""

    def __init__(self, notebook: str, title: str, questions: Iterable[Question]):
        self.notebook, self.title = notebook, title
        self.questions = {q.label: q for q in questions}

    def __getattr__(self, name: str) -> Question:
        try:
            return self.__dict__["questions"][name]
        except KeyError:
            raise AttributeError(f"{self.notebook} has no question {name!r}; it has "
                                 f"{', '.join(self.__dict__.get('questions', {}))}") from None

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions.values())

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.questions]

    def __repr__(self) -> str:
        return f"<exercises for {self.notebook} ({self.title}): {', '.join(self.questions)}>"


# ----------------------------------------------------------------------------------------------- helpers


def _sentence(text: str) -> str:
    """Capitalise a message's first word, unless it is code (``p(ai)``, ``model.head``, ``split_by_photo``)."""
    first = text.split(" ", 1)[0]
    return text[0].upper() + text[1:] if first.isalpha() else text


def _short(value: Any, width: int = 70) -> str:
    """A learner's value as feedback quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _given(value: Any, name: str) -> Any:
    """``value`` unless it is the TODO placeholder."""
    if any(value is p for p in PLACEHOLDERS):
        raise NotAttempted(f"`{name}` is still `{'...' if value is Ellipsis else None}`: {NOT_ATTEMPTED}")
    return value


def _function(fn: Any, name: str) -> Callable:
    fn = _given(fn, name)
    if not callable(fn):
        raise Wrong(f"`{name}` should be a function (def {name}(...): ...), but it is of type {type(fn).__name__}.")
    return fn


def _run(fn: Callable, name: str, on: str, *args: Any) -> Any:
    """Call the learner's function; its exception or a missing ``return`` becomes plain words, and a call to a
    function the question is checked against (``Question.forbidden``) is refused."""
    with _tripwires(_FORBIDDEN.get()) as taken:
        try:
            out = fn(*args)
        except _ShortcutTaken:
            out = None
        except Exception as err:
            if not taken:
                raise Wrong(f"your {name}() raised {type(err).__name__}: {err} (called on {on}).") from None
    if taken:
        raise Wrong(f"your {name}() calls {_public_name(taken[0])}, the very function this check compares with, so "
                    "it would only check the library against itself. Write the steps yourself (the hint gives an "
                    "idea).")
    if any(out is p for p in PLACEHOLDERS):
        raise NotAttempted(f"your {name}() returned {out!r} (on {on}): finish the TODO and `return` the result.")
    return out


def _array(value: Any, name: str) -> np.ndarray:
    """Numbers, lists, numpy arrays or torch tensors as a float numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise Wrong(f"{name} should hold numbers, but it is of type {type(value).__name__}: {_short(value)}") from None


def _number(value: Any, name: str) -> float:
    arr = _array(_given(value, name), f"`{name}`")
    if arr.size != 1:
        raise Wrong(f"`{name}` should be one number, got {arr.size} values of shape {arr.shape}.")
    return float(arr.reshape(-1)[0])


def _fraction(value: Any, name: str, expected: float) -> float:
    """A rate in [0, 1]; a percentage is named as such."""
    got = _number(value, name)
    if got > 1 and np.isclose(got / 100, expected, atol=1e-6):
        raise Wrong(f"`{name}` = {got:g} looks like a percentage; give the fraction ({got / 100:g}).")
    return got


def _pct(x: float) -> str:
    return f"{x:.1%}"


@contextlib.contextmanager
def _torch_seeded(seed: int) -> Iterator[None]:
    """Torch's global RNG seeded inside, restored afterwards: the learner's random state is left alone."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ============================================================================ lesson 01 · build the dataset


def _photo_of(name: str) -> str:
    return name.rsplit("_", 1)[0]


def _leaky_split(seed: int = 1) -> dict[str, list[str]]:
    """Patch files of every demo photo, dealt into train/val patch by patch: the leak lesson 01 avoids."""
    from .synth import PHOTO_SPLIT

    rng = np.random.default_rng(seed)
    split: dict[str, list[str]] = {"train": [], "val": []}
    for photo in PHOTO_SPLIT:
        for i in range(int(rng.integers(3, 7))):
            split["val" if rng.random() < 0.25 else "train"].append(f"{photo}_{i:02d}.png")
    return {name: sorted(files) for name, files in split.items()}


def _check_leak(leaked: Any) -> str:
    from .synth import PHOTO_SPLIT

    leaked = _given(leaked, "leaked")
    if isinstance(leaked, str) or not isinstance(leaked, Iterable):
        raise Wrong(f"`leaked` should be a set of photo names such as {{'chelsea', 'coffee'}}, got {_short(leaked)}.")
    given = {str(x) for x in leaked}
    split = _leaky_split()
    expected = {_photo_of(n) for n in split["train"]} & {_photo_of(n) for n in split["val"]}
    files = [g for g in given if g.endswith(".png")]
    if files:
        raise Wrong(f"your answer holds file names such as {sorted(files)[0]!r}; give photo names "
                    f"({_photo_of(sorted(files)[0])!r}): several files come from one photo.")
    cut = sorted(g for g in given - set(PHOTO_SPLIT) if any(p.startswith(g + "_") for p in PHOTO_SPLIT))
    if cut:
        full = next(p for p in PHOTO_SPLIT if p.startswith(cut[0] + "_"))
        raise Wrong(f"{cut[0]!r} is not a photo: names such as {full!r} contain underscores themselves. Cut each "
                    f"file name at its *last* underscore (name.rsplit('_', 1)[0]).")
    unknown = sorted(given - set(PHOTO_SPLIT))
    if unknown:
        raise Wrong(f"{unknown[0]!r} is not one of the photos ({', '.join(PHOTO_SPLIT)}).")
    extra = sorted(given - expected)
    if extra:
        only = "train" if any(_photo_of(n) == extra[0] for n in split["train"]) else "val"
        raise Wrong(f"{extra[0]!r} has patches in {only} only, so it does not leak"
                    + (f" (and {len(extra) - 1} more like it)." if len(extra) > 1 else "."))
    if expected - given:
        raise Wrong(f"you found {len(given)} of the {len(expected)} leaking photos; look for the others.")
    return (f"{len(expected)} of {len(PHOTO_SPLIT)} photos sit on both sides: a val score on this split partly "
            "measures how well the model remembers those photos. dl.synth.PHOTO_SPLIT gives every photo one split.")


def _split_cases() -> list[tuple[list[str], set[str]]]:
    """(files, val photos) pairs: lesson 01's own val photos, and another seeded draw (no hard-coding pays)."""
    from .synth import PHOTO_SPLIT

    files = sorted(sum(_leaky_split().values(), []))
    other = sorted(sum(_leaky_split(seed=7).values(), []))
    val_photos = {p for p, s in PHOTO_SPLIT.items() if s == "val"}
    return [(files, val_photos), (other, {"hubble_deep_field", "chelsea", "grace_hopper"})]


def _check_split_by_photo(split_by_photo: Any) -> str:
    fn = _function(split_by_photo, "split_by_photo")
    for files, val_photos in _split_cases():
        on = f"{len(files)} files with val_photos={sorted(val_photos)}"
        out = _run(fn, "split_by_photo", on, list(files), set(val_photos))
        if not isinstance(out, dict) or set(out) != {"train", "val"}:
            raise Wrong(f"split_by_photo should return a dict with keys 'train' and 'val', got {_short(out)}.")
        placed = [str(f) for part in ("train", "val") for f in out[part]]
        missing, twice = sorted(set(files) - set(placed)), sorted({f for f in placed if placed.count(f) > 1})
        if twice:
            raise Wrong(f"{twice[0]} is placed twice; every file belongs to exactly one split.")
        if missing:
            raise Wrong(f"{len(missing)} file(s) are in neither split, e.g. {missing[0]}.")
        photos = {part: {_photo_of(str(f)) for f in out[part]} for part in ("train", "val")}
        both = sorted(photos["train"] & photos["val"])
        if both:
            raise Wrong(f"photo {both[0]!r} still has files in both splits ({on}).")
        wanted = {_photo_of(f) for f in files} & val_photos
        if photos["val"] != wanted:
            wrong = sorted(photos["val"] ^ wanted)[0]
            side = "val" if wrong in wanted else "train"
            raise Wrong(f"the files of {wrong!r} belong in {side} ({on}): val holds exactly the photos in "
                        "val_photos. Compare whole photo names (cut at the last underscore), not substrings.")
    return "no photo feeds both splits any more: the val score now measures detection on unseen photos."


_FORMAT_CASES: tuple[tuple[dict[str, int], dict[str, int]], ...] = (
    ({"PNG": 10}, {"PNG": 10}),
    ({"PNG": 10}, {"JPEG": 10}),
    ({"PNG": 5, "JPEG": 5}, {"PNG": 10, "JPEG": 10}),  # equal shares, different counts
    ({"PNG": 9, "JPEG": 1}, {"PNG": 10}),  # a gap of exactly SHARE_GAP: no warning
    ({"PNG": 8, "JPEG": 2}, {"PNG": 10}),
    ({"PNG": 3, "JPEG": 1}, {"PNG": 6, "JPEG": 1}),
)


@lru_cache(maxsize=1)
def _audit_verdicts() -> tuple[bool, ...]:
    """For each format case: does ``dl.audit.audit_dataset`` warn about formats? (Tiny images in a temp dir.)"""
    from PIL import Image

    from .audit import audit_dataset

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, counts in enumerate(_FORMAT_CASES):
            root = Path(tmp) / f"case{i}"
            for cls, per_format in zip(("ai", "nature"), counts, strict=True):
                folder = root / "train" / cls
                folder.mkdir(parents=True)
                n = 0
                for fmt, count in per_format.items():
                    for _ in range(count):
                        n += 1
                        extra = {"quality": 90} if fmt == "JPEG" else {}
                        Image.fromarray(pixels).save(folder / f"{n:03d}.{fmt.lower()}", fmt, **extra)
            verdicts.append(any("formats differ" in w for w in audit_dataset(root).warnings))
    return tuple(verdicts)


def _shares(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{fmt} {n / total:.0%}" for fmt, n in counts.items())


def _check_formats_warn(formats_warn: Any) -> str:
    from .audit import SHARE_GAP

    fn = _function(formats_warn, "formats_warn")
    for (ai, nature), audit_warns in zip(_FORMAT_CASES, _audit_verdicts(), strict=True):
        on = f"ai={ai}, nature={nature}"
        out = _run(fn, "formats_warn", on, dict(ai), dict(nature))
        if not isinstance(out, bool | np.bool_):
            raise Wrong(f"formats_warn should return True or False, got {_short(out)} (on {on}).")
        if bool(out) == audit_warns:
            continue
        verdict = "warns" if audit_warns else "does not warn"
        if sum(ai.values()) != sum(nature.values()) and _shares(ai) == _shares(nature):
            why = "the shares are the same, only the counts differ: compare shares (count / total), not counts."
        else:
            gap = max(abs(ai.get(f, 0) / sum(ai.values()) - nature.get(f, 0) / sum(nature.values()))
                      for f in set(ai) | set(nature))
            rule = "more than" if audit_warns else "only when it is *more than*"
            why = (f"shares ai: {_shares(ai)}; nature: {_shares(nature)}. The largest gap is {gap:.0%}, and the "
                   f"audit warns {rule} dl.audit.SHARE_GAP = {SHARE_GAP:.0%}.")
        raise Wrong(f"for ai {ai} and nature {nature} your function says {bool(out)}, but the audit {verdict}: "
                    f"{why}")
    return ("your rule agrees with dl.audit.audit_dataset on all six cases. On real data this is the first "
            "warning to read: GenImage's fakes are PNG, its photos JPEG.")


def _grey_images() -> dict[str, np.ndarray]:
    """Grey test images: noise (no grid), a JPEG at quality 15 (a grid), an odd size."""
    from PIL import Image

    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:64, 0:64]
    smooth = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 7.0) + rng.normal(0, 6, (64, 64))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8), mode="L").save(buffer, "JPEG", quality=15)
    buffer.seek(0)
    return {
        "noise": rng.uniform(0, 255, (32, 32)),
        "jpeg": np.asarray(Image.open(buffer), dtype=float),
        "odd size": smooth[:30, :45].copy(),
    }


def _block_variant(grey: np.ndarray, edge: int, directions: int) -> float:
    """The two classic slips: boundary steps at ``% 8 == 0``, or horizontal steps only."""
    ratios = []
    for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T)[:directions]:
        at_edge = np.arange(steps.shape[1]) % 8 == edge
        ratios.append(steps[:, at_edge].mean() / steps[:, ~at_edge].mean())
    return float(np.mean(ratios))


def _check_block_ratio(block_ratio: Any) -> str:
    from .audit import blockiness

    fn = _function(block_ratio, "block_ratio")
    values = {}
    for name, grey in _grey_images().items():
        on = f"the {grey.shape[0]}x{grey.shape[1]} '{name}' image"
        got = _number(_run(fn, "block_ratio", on, grey.copy()), "block_ratio(...)")
        expected = blockiness(grey)
        values[name] = expected
        if np.isclose(got, expected, rtol=1e-6):
            continue
        if np.isclose(got, _block_variant(grey, 0, 2), rtol=1e-6):
            raise Wrong(f"on {on} you get {got:.3f}, expected {expected:.3f}. Your boundary steps are off by one: "
                        "np.diff(...)[:, 7] is the step from pixel 7 to pixel 8, so the boundary steps are those "
                        "with index % 8 == 7.")
        if np.isclose(got, _block_variant(grey, 7, 1), rtol=1e-6):
            raise Wrong(f"on {on} you get {got:.3f}, expected {expected:.3f}: you measured horizontal steps only; "
                        "average the ratio of horizontal steps with the ratio of vertical ones.")
        raise Wrong(f"on {on} your ratio is {got:.4f}, dl.audit.blockiness says {expected:.4f}.")
    return (f"noise {values['noise']:.2f}, JPEG {values['jpeg']:.2f}: the 8x8 grid of the JPEG shows as a ratio "
            "above 1. That is why lesson 01 downscales the photos before cutting patches.")


# ============================================================================ lesson 02 · train a ConvNeXt


def _imagenet_convnext(num_classes: int = 1000) -> torch.nn.Module:
    """The profile's ConvNeXt with random weights (the shapes are the lesson, not the weights)."""
    from .config import get_profile
    from .models import create_timm_model

    profile = get_profile()
    with _torch_seeded(0):
        return create_timm_model(profile.convnext_model, num_classes=num_classes, pretrained=False,
                                 **profile.convnext_kwargs)


def _check_swap_head(model: Any) -> str:
    import torch

    from .config import CLASSES

    model = _given(model, "model")
    if not isinstance(model, torch.nn.Module):
        raise Wrong(f"`model` should be the ConvNeXt (a torch.nn.Module), but it is of type {type(model).__name__}.")
    fc = getattr(getattr(model, "head", None), "fc", None)
    if fc is None:
        raise Wrong(f"model.head is now {type(getattr(model, 'head', None)).__name__} without a .fc: did you "
                    "replace the whole head (pooling, norm and fc)? Replace only its last layer, model.head.fc.")
    if not isinstance(fc, torch.nn.Linear):
        raise Wrong(f"model.head.fc is a {type(fc).__name__}; it should be one torch.nn.Linear layer.")
    features = model.num_features  # timm's width of the pooled features, whatever fc is now
    if fc.out_features == 1000:
        raise NotAttempted("model.head.fc still has ImageNet's 1000 outputs: replace it in the TODO cell, then run "
                           "this check again.")
    if fc.out_features != len(CLASSES):
        raise Wrong(f"your new layer has {fc.out_features} output(s); the detector needs one per class, "
                    f"len(dl.CLASSES) = {len(CLASSES)} ({', '.join(CLASSES)}), for a softmax over them.")
    if fc.in_features != features:
        raise Wrong(f"your new layer takes {fc.in_features} inputs, but the pooled features have {features}: "
                    "use model.head.fc.in_features.")
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(1, 3, 32, 32))
    except Exception as err:
        raise Wrong(f"running your model on a (1, 3, 32, 32) batch raised {type(err).__name__}: {err}") from None
    if tuple(out.shape) != (1, len(CLASSES)):
        raise Wrong(f"your model returns shape {tuple(out.shape)} for one image; expected (1, {len(CLASSES)}).")
    return (f"{features} pooled features -> {len(CLASSES)} class scores. Everything before fc keeps its "
            "(pretrained, in the reference) weights; only this layer starts from scratch.")


_TRANSFORM_SIZE = 32


def _transform_inputs() -> list[Image.Image]:
    """Seeded RGB PIL images: one to shrink (48 x 40) and one to enlarge (20 x 28), neither square."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(2)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))
            for w, h in ((48, 40), (20, 28))]


def _check_val_transform(val_transform: Any) -> str:
    from .data import build_transforms

    fn = _function(val_transform, "val_transform")
    size = _TRANSFORM_SIZE
    kit = build_transforms(size)["val"]
    for image in _transform_inputs():
        on = f"a {image.width} x {image.height} RGB image"
        with _torch_seeded(0):
            outs = [_run(fn, "val_transform", on, image.copy()) for _ in range(6)]
        if type(outs[0]).__module__.startswith("PIL"):
            raise Wrong("val_transform returns a PIL image: add transforms.ToTensor() after the resize.")
        arrays = [_array(out, "val_transform's output") for out in outs]
        got, expected = arrays[0], kit(image).numpy()
        if any(a.shape != got.shape or not np.array_equal(a, got) for a in arrays[1:]):
            raise Wrong("six calls on the same image gave different tensors: the val transform must be "
                        "deterministic. Random flips belong to the train transform only.")
        if got.shape != expected.shape:
            if got.shape == expected.shape[1:] + expected.shape[:1]:
                hint = "channels come last: torch wants (3, H, W), which ToTensor gives."
            elif got.ndim == 3 and size in got.shape[1:] and got.shape[1] != got.shape[2]:
                hint = (f"did you resize both sides? transforms.Resize({size}) only sets the shorter side; "
                        f"Resize(({size}, {size})) sets both.")
            else:
                hint = "resize to (IMG_SIZE, IMG_SIZE) and convert to a tensor."
            raise Wrong(f"on {on} your transform returns shape {got.shape}; expected {expected.shape}: {hint}")
        gap = float(np.abs(got - expected).max())
        if gap <= 0.05:  # PIL's and torch's antialiased resizes differ by about one grey level
            continue
        if np.abs(got - expected[:, :, ::-1]).max() <= 0.05:
            raise Wrong("your output is the kit's flipped left to right: the val transform has no flip.")
        if got.min() >= 0 and got.max() <= 1.0 + 1e-6:
            raise Wrong("your values lie in [0, 1]: add transforms.Normalize(mean, std) with ImageNet's "
                        "dl.data.IMAGENET_MEAN and dl.data.IMAGENET_STD.")
        if got.max() > 2.7:
            raise Wrong(f"your values reach {got.max():.0f}: scale pixels to [0, 1] (ToTensor) before "
                        "normalising.")
        raise Wrong(f"on {on} your values differ from dl.data.build_transforms({size})['val'] by up to {gap:.2f}: "
                    "check the mean and std (ImageNet's) and their order, mean first.")
    return "it matches dl.data.build_transforms(...)['val'], the transform that notebooks 02, 04 and 05 use."


def _check_freeze(model: Any, n_trainable: Any) -> str:
    import torch

    model = _given(model, "model")
    if not isinstance(model, torch.nn.Module):
        raise Wrong(f"`model` should be the ConvNeXt (a torch.nn.Module), but it is of type {type(model).__name__}.")
    params = dict(model.named_parameters())
    training = sorted(name for name, p in params.items() if p.requires_grad)
    head = sorted(name for name in params if name.startswith("head.fc."))
    total = sum(p.numel() for p in params.values())
    if len(training) == len(params) and any(n_trainable is p for p in PLACEHOLDERS):
        raise NotAttempted(f"every parameter still trains and `n_trainable` is not set yet: {NOT_ATTEMPTED}")
    if not training:
        raise Wrong("nothing trains any more: the new model.head.fc must keep requires_grad = True.")
    if len(training) == len(params):
        raise Wrong(f"every parameter still trains ({total:,} numbers): set requires_grad = False on all "
                    "parameters except those of model.head.fc.")
    extra, frozen_head = sorted(set(training) - set(head)), sorted(set(head) - set(training))
    if frozen_head:
        raise Wrong(f"{frozen_head[0]} is frozen, but the new layer is what we train: keep head.fc trainable.")
    if extra:
        raise Wrong(f"{len(extra)} backbone tensor(s) still train, e.g. {extra[0]}: only head.fc should.")
    got = _number(n_trainable, "n_trainable")
    expected = sum(params[name].numel() for name in head)
    if got == expected:
        return (f"{expected:,} of {total:,} numbers train ({expected / total:.2%}): an epoch only updates the "
                "head, which is why a frozen backbone (linear probing, lesson 03) trains so fast.")
    if got == len(head):
        raise Wrong(f"{got:g} is the number of trainable *tensors*; count the numbers in them: p.numel().")
    if got == total:
        raise Wrong(f"{got:,.0f} counts every parameter; count only those with p.requires_grad.")
    if got == params["head.fc.weight"].numel():
        raise Wrong(f"{got:,.0f} counts the weights of head.fc only; its bias trains too.")
    raise Wrong(f"n_trainable = {got:,g} is not the count of numbers with requires_grad in your model.")


def _history(val_loss: list[float], val_correct: list[int], n_val: int = 40) -> History:
    """A ``dl.train.History`` as ``fit`` returns it, from validation losses and counts (training loss falls)."""
    from .train import History

    return History([
        {"epoch": e + 1, "train_loss": round(0.69 * 0.75 ** e, 3), "train_acc": min(1.0, 0.5 + e * 0.07),
         "val_loss": vl, "val_acc": vc / n_val, "val_images": n_val}
        for e, (vl, vc) in enumerate(zip(val_loss, val_correct, strict=True))
    ])


def _overfit_history() -> History:
    """8 epochs that over-fit, two of them tied on validation accuracy: the input of question 4."""
    return _history([0.68, 0.60, 0.52, 0.47, 0.49, 0.48, 0.56, 0.63], [22, 27, 31, 33, 35, 35, 34, 33])


def _other_histories() -> list[History]:
    """Histories the learner never saw: a clear best, and a three-way tie on accuracy (no hard-coding pays)."""
    return [_history([0.70, 0.55, 0.41, 0.44, 0.52], [20, 28, 34, 31, 30]),
            _history([0.69, 0.50, 0.45, 0.46, 0.43, 0.47], [21, 30, 32, 32, 32, 29])]


def _overfit_start(history: History) -> int:
    """The first epoch whose validation loss rises above the epoch before while the training loss still falls."""
    rows = history.epochs
    return next(b["epoch"] for a, b in itertools.pairwise(rows) if b["val_loss"] > a["val_loss"]
                and b["train_loss"] < a["train_loss"])


def _check_best_epoch(pick_best: Any, overfit_from: Any) -> str:
    fn = _function(pick_best, "pick_best")
    for history in (_overfit_history(), *_other_histories()):
        rows = {row["epoch"]: row for row in history.epochs}
        on = f"a history of {len(rows)} epochs"
        got = _number(_run(fn, "pick_best", on, [dict(r) for r in history.epochs]), "pick_best(...)")
        best = history.best()
        if got == best["epoch"]:
            continue
        if got not in rows:
            raise Wrong(f"on {on} pick_best returns {got:g}, but the epochs run from 1 to {len(rows)}; return "
                        "row['epoch'], not a position in the list.")
        row = rows[int(got)]
        by = {key: min(rows.values(), key=lambda r: r[key])["epoch"] for key in ("train_loss", "val_loss")}
        if got == by["train_loss"] and got != by["val_loss"]:
            raise Wrong(f"on {on} you pick epoch {got:g}, the lowest *training* loss, which over-fits most: best.pth "
                        "is chosen on the validation accuracy.")
        if row["val_acc"] == best["val_acc"]:
            raise Wrong(f"on {on} epochs {got:g} and {best['epoch']} tie on validation accuracy "
                        f"({row['val_acc']:.3f}); a tie goes to the lower validation loss.")
        if got == by["val_loss"]:
            raise Wrong(f"on {on} you pick epoch {got:g}, the lowest validation loss, but best.pth is chosen by the "
                        "highest validation *accuracy*; the validation loss only breaks ties.")
        raise Wrong(f"on {on} epoch {got:g} has val acc {row['val_acc']:.3f}; another epoch has a higher one.")
    history = _overfit_history()
    start, best = _overfit_start(history), history.best()
    got = _number(overfit_from, "overfit_from")
    if got != start:
        later = [e for e in range(start + 1, len(history.epochs) + 1)
                 if history.epochs[e - 1]["val_loss"] > history.epochs[e - 2]["val_loss"]]
        if got in later:
            raise Wrong(f"the validation loss rises at epoch {got:g}, but it rose earlier already; look for the first "
                        "epoch whose validation loss is above the one before.")
        if got == best["epoch"]:
            raise Wrong(f"epoch {got:g} is the best checkpoint, not where over-fitting starts: compare each epoch's "
                        "validation loss with the epoch before.")
        raise Wrong(f"at epoch {got:g} the validation loss does not rise above the epoch before while the training "
                    "loss falls.")
    return (f"best.pth is epoch {best['epoch']} (val acc {best['val_acc']:.3f}), chosen by the same rule as "
            f"History.best(); the validation loss already rose at epoch {start}. Accuracy can still tie or climb "
            "while the loss worsens: the model grows over-confident on the images it gets wrong.")


# ============================================================================ lesson 03 · the CLIP head


def _probe() -> ClipHeadDetector:
    """The reference's head behind a frozen EfficientNet-Lite0 with random weights (no download, no CLIP)."""
    from .clip_head import ClipHeadDetector, make_encoder

    return ClipHeadDetector(encoder=make_encoder("timm:tf_efficientnet_lite0:random"), weights_path=None)


def _check_n_trained(n_trained: Any) -> str:
    probe = _probe()
    dim = probe.encoder.dim
    expected = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    total = sum(p.numel() for p in probe.parameters())
    got = _number(n_trained, "n_trained")
    if got == expected:
        return (f"{expected:,} of {total:,} numbers ({dim} weights and 1 bias); with CLIP ViT-L/14 (1024-d) the "
                "reference trains 1,025. A head this small cannot learn to see: it can only find the direction "
                "along which the frozen embeddings already separate.")
    if got == total:
        raise Wrong(f"{got:,.0f} counts the frozen encoder too; count only parameters with requires_grad.")
    if got == dim:
        raise Wrong(f"{got:g} is the embedding width: the Linear layer has one weight per dimension, plus a bias.")
    if got == 2:
        raise Wrong("2 is the number of trainable *tensors* (weight and bias); count the numbers: p.numel().")
    raise Wrong(f"{got:,g} is not it: count the numbers of the parameters with requires_grad. Look at "
                "detector.head: Dropout has none.")


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
    return "a content key: copies hit, edits miss. The kit uses the SHA-256 hex digest (dl.features.file_digest)."


def _clip_scores() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([[-1.0, 0.0, 1.0], rng.uniform(-1, 1, 9)])


def _kit_p_ai(scores: np.ndarray) -> np.ndarray:
    """p(ai) of CLIP-head scores as ``models.Detector.p_ai`` computes it, through a head that echoes them."""
    import torch

    from .models import Detector

    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # Detector reads its device from a parameter

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    return Detector("clip_head", Echo(), transform=None).p_ai(torch.as_tensor(scores, dtype=torch.float64)).numpy()


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
    from .config import CLASSES
    from .labels import predicted_class

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
    from .metrics import rates_at

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
    from .metrics import rates_at

    r = rates_at(y, p, threshold)
    return r.tpr - r.fpr


def _check_threshold(youden_threshold: Any, test_tpr: Any, test_tnr: Any) -> str:
    from .metrics import choose_threshold, rates_at

    fn = _function(youden_threshold, "youden_threshold")
    y_val, p_val, y_test, p_test = _threshold_data()
    y_other, p_other = _scored(22, n=50, shift=0.15)
    for on, y, p in (("y_test, p_test", y_test, p_test), ("50 other scores", y_other, p_other),
                     ("y_val, p_val", y_val, p_val)):
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
    t = float(fn(y_val.copy(), p_val.copy()))
    r = rates_at(y_test, p_test, t)
    got_tpr, got_tnr = _fraction(test_tpr, "test_tpr", r.tpr), _fraction(test_tnr, "test_tnr", r.tnr)
    v = rates_at(y_val, p_val, t)
    if np.isclose([got_tpr, got_tnr], [r.tpr, r.tnr]).all():
        return (f"threshold {t:.3f}: validation TPR {_pct(v.tpr)} / TNR {_pct(v.tnr)}, test TPR {_pct(r.tpr)} / "
                f"TNR {_pct(r.tnr)}. The test numbers are the ones to report: nothing about them was tuned.")
    on_test = rates_at(y_test, p_test, float(fn(y_test.copy(), p_test.copy())))
    if np.isclose([got_tpr, got_tnr], [on_test.tpr, on_test.tnr]).all():
        raise Wrong("those are the test rates at the threshold that is best *for the test set*: that's the leak of "
                    "lesson 04. Choose the threshold on y_val, p_val, then measure it on test.")
    if np.isclose([got_tpr, got_tnr], [v.tpr, v.tnr]).all():
        raise Wrong("those are the *validation* rates at your threshold; measure it on y_test, p_test.")
    if np.isclose([got_tpr, got_tnr], [r.tnr, r.tpr]).all():
        raise Wrong("you swapped TPR and TNR: TPR is the share of ai (label 0) flagged.")
    raise Wrong(f"your TPR {got_tpr:.4f} and TNR {got_tnr:.4f} are not those of the test set at the threshold "
                f"your function chooses on validation ({t:.3f}).")


def _auc_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    y, p = _scored(30)
    y2, p2 = _scored(31, n=30)
    return [("40 continuous scores", y, p), ("30 scores rounded to one decimal (many ties)", y2, p2.round(1)),
            ("a perfect detector", np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]))]


def _check_auc(auc_by_pairs: Any) -> str:
    from .metrics import roc_auc

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
        raise Wrong(f"on {on} your AUC is {got:.4f}; dl.metrics.roc_auc says {expected:.4f}.")
    return ("the area under the ROC curve *is* the chance that a random fake scores above a random real photo: "
            "no threshold involved.")


_CROSS_GENERATORS = ["ADM", "BigGAN", "GLIDE", "Midjourney"]
_CROSS_AUC = [[0.99, 0.62, 0.81, 0.58],
              [0.80, 1.00, 0.60, 0.52],
              [0.84, 0.66, 0.98, 0.71],
              [0.86, 0.57, 0.69, 0.96]]


def _cross_data() -> CrossGenerator:
    """A cross-generator result in ``dl.evaluate.CrossGenerator`` form (made-up AUCs in the range GenImage sees)."""
    from .evaluate import CrossGenerator

    auc = np.array(_CROSS_AUC)
    return CrossGenerator(list(_CROSS_GENERATORS), list(_CROSS_GENERATORS), auc, 0.5 + 0.8 * (auc - 0.5),
                          np.array([0.04, 0.38, 0.09, 0.12]), encoder="(made-up numbers for the exercise)")


def _check_cross(off_diagonal_mean: Any, most_general: Any) -> str:
    cross = _cross_data()
    names, auc = cross.train_generators, cross.auc
    off = ~np.eye(len(names), dtype=bool)
    fn = _function(off_diagonal_mean, "off_diagonal_mean")
    other = np.random.default_rng(12).uniform(0.4, 1.0, (3, 3))
    for on, matrix in (("question 4's 4 x 4 matrix", auc), ("another 3 x 3 matrix", other)):
        got = _number(_run(fn, "off_diagonal_mean", on, matrix.copy()), "off_diagonal_mean(...)")
        expected = float(matrix[~np.eye(len(matrix), dtype=bool)].mean())
        if np.isclose(got, expected, atol=1e-6):
            continue
        if np.isclose(got, matrix.mean()):
            raise Wrong(f"on {on} you return the mean of the whole matrix; leave out the diagonal (each head tested "
                        "on its own generator).")
        if np.isclose(got, np.diag(matrix).mean()):
            raise Wrong(f"on {on} you return the diagonal's mean, the in-distribution number; the question asks for "
                        "the pairs whose test generator differs from the training one.")
        raise Wrong(f"on {on} your mean is {got:.4f}; the mean over the off-diagonal pairs is {expected:.4f}.")
    expected = cross.off_diagonal("auc")
    general = _given(most_general, "most_general")
    if not isinstance(general, str):
        raise Wrong(f"give the generator's name (one of {names}), not {general!r}.")
    rows = np.array([auc[i][off[i]].mean() for i in range(len(names))])
    best = names[int(rows.argmax())]
    if general == best:
        return (f"{best}'s head averages {rows.max():.3f} on the others, over all {expected:.3f}, against "
                f"{np.diag(auc).mean():.3f} on their own generators: the gap GenImage reports.")
    if general not in names:
        raise Wrong(f"{general!r} is not one of the training generators {names}.")
    cols = np.array([auc[:, j][off[:, j]].mean() for j in range(len(names))])
    if general == names[int(np.diag(auc).argmax())]:
        i = names.index(general)
        raise Wrong(f"{general}'s head is best on its own generator (AUC {auc[i, i]:.2f}) but averages "
                    f"{rows[i]:.3f} on the others: that's a fingerprint, not generalisation. Read each row "
                    "without its diagonal.")
    if general == names[int(cols.argmax())]:
        raise Wrong(f"{general} is the *test* generator every other head finds easiest (its column); the question "
                    "asks about the training generator (the row).")
    raise Wrong(f"{general}'s head averages {rows[names.index(general)]:.3f} on the other generators; another "
                "row does better.")


# ============================================================================ lesson 05 · Grad-CAM


@lru_cache(maxsize=1)
def _cam_pass() -> CamResult:
    """One ``dl.explain.grad_cam`` pass on a tiny seeded CNN: the numbers lesson 05's questions start from."""
    import torch
    from torch import nn

    from .explain import grad_cam

    with _torch_seeded(3):
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)).eval()
        inputs = torch.randn(1, 3, 16, 16)
    return grad_cam(net, net[2], inputs, lambda scores: scores[:, 0])


@dataclass(frozen=True)
class CamInputs:
    """What questions 1 and 2 start from: a layer's activations A and the gradients dY/dA, and nothing computed
    from them (the weights and the map are the questions)."""

    activations: torch.Tensor
    gradients: torch.Tensor


def _cam_data() -> CamInputs:
    steps = _cam_pass()
    return CamInputs(steps.activations.clone(), steps.gradients.clone())


def _check_weights(weights: Any) -> str:
    steps = _cam_pass()
    batch, channels, h, w = steps.gradients.shape
    got = _array(_given(weights, "weights"), "`weights`")
    expected = steps.weights.numpy()
    if got.size != channels * batch:
        if got.shape == (batch, h, w):
            raise Wrong(f"your weights have shape {got.shape}: one per grid cell. Grad-CAM needs one weight per "
                        f"channel, shape ({batch}, {channels}): average over the grid, dims 2 and 3, not dim 1.")
        raise Wrong(f"your weights have shape {got.shape}; expected one per channel, ({batch}, {channels}).")
    got = got.reshape(expected.shape)
    if np.allclose(got, expected, atol=1e-7):
        return "each α_c says how much more of channel c would raise the ai score."
    if np.allclose(got, expected * h * w, rtol=1e-5):
        raise Wrong(f"your weights are {h * w} = h·w times too large: average over the grid, don't sum.")
    if np.allclose(got, steps.activations.mean(dim=(2, 3)).numpy(), atol=1e-7):
        raise Wrong("you averaged the activations A; the weights come from the gradients G = dY/dA.")
    raise Wrong("your weights differ from the gradients averaged over the grid (G.mean over dims 2 and 3).")


def _check_cam(cam: Any) -> str:
    import torch

    steps = _cam_pass()
    got = _array(_given(cam, "cam"), "`cam`")
    expected = steps.raw.numpy()
    if got.size != expected.size:
        raise Wrong(f"your map has shape {got.shape}; expected one value per grid cell, {tuple(expected.shape)}: "
                    "sum the weighted activations over the channels (dim 1).")
    got = got.reshape(expected.shape)
    if np.allclose(got, expected, atol=1e-6):
        zero = float((expected == 0).mean())
        return (f"{zero:.0%} of the cells are 0: the ReLU dropped the evidence *against* ai. dl.explain then "
                "normalises this map and stretches it to the image.")
    weighted = (steps.weights[:, :, None, None] * steps.activations).sum(dim=1).numpy()
    if got.min() < 0 and np.allclose(got, weighted, atol=1e-6):
        raise Wrong("your map has negative values: Grad-CAM keeps only evidence *for* the class, apply a ReLU.")
    if np.allclose(got, torch.relu(steps.activations.sum(dim=1)).numpy(), atol=1e-6):
        raise Wrong("you summed the channels unweighted: multiply each channel by its weight α_c first.")
    raise Wrong("your map differs from ReLU(Σ_c α_c A_c) with α_c = G averaged over the grid.")


def _rand_map(seed: int, *shape: int) -> torch.Tensor:
    """Seeded uniform noise standing in for heatmaps."""
    import torch

    with _torch_seeded(seed):
        return torch.rand(*shape)


def _heatmaps() -> torch.Tensor:
    maps = _rand_map(6, 3, 4, 5)
    maps[1] *= 0.4  # a weaker map: normalised on its own, it still reaches 1
    maps[2] = 0.25  # a flat map
    return maps


def _check_minmax(minmax: Any) -> str:
    from .explain import normalise

    fn = _function(minmax, "minmax")
    maps = _heatmaps()
    got = _array(_run(fn, "minmax", "a (3, 4, 5) batch of maps, the last one flat", maps.clone()), "minmax's output")
    expected = normalise(maps).numpy()
    if got.shape != expected.shape:
        raise Wrong(f"for a (3, 4, 5) batch you return shape {got.shape}; keep the shape.")
    if np.isnan(got).any():
        raise Wrong("a flat map (all values equal) gives NaN: its max - min is 0. Make a flat map all zeros.")
    if np.allclose(got, expected, atol=1e-6):
        return "the same as dl.explain.normalise: each map uses the whole colour scale, so compare shapes, not heat."
    low, high = float(maps.min()), float(maps.max())
    if np.allclose(got[:2], ((maps[:2] - low) / (high - low)).numpy(), atol=1e-6):
        raise Wrong(f"you used the batch's min and max: the second map only reaches {got[1].max():.2f}. "
                    "Normalise each map on its own (amin/amax over dims 1 and 2).")
    raise Wrong("some values differ from (map - min) / (max - min), computed per map.")


def _check_hottest(hottest: Any) -> str:

    from .explain import hottest_mask

    fn = _function(hottest, "hottest")
    for cam, k in ((_rand_map(8, 16, 16), 0.1), (_rand_map(9, 7, 9), 0.25)):
        on = f"a {cam.shape[0]} x {cam.shape[1]} heatmap with k = {k}"
        got = _array(_run(fn, "hottest", on, cam.clone(), k), "hottest's output")
        expected = hottest_mask(cam, k).numpy()
        if got.shape != expected.shape:
            raise Wrong(f"on {on} you return shape {got.shape}; return a mask with the heatmap's shape "
                        f"{tuple(cam.shape)}, True on the hottest pixels.")
        got = got != 0
        if np.array_equal(got, expected):
            continue
        count, want = int(got.sum()), int(expected.sum())
        if count != want:
            fix = ("round, don't truncate" if count == int(k * cam.numel())
                   else "pick them by rank (topk), not by a value threshold")
            raise Wrong(f"on {on} your mask has {count} pixels; the hottest {k:.0%} of {cam.numel()} is "
                        f"round({k} · {cam.numel()}) = {want}: {fix}.")
        raise Wrong(f"on {on} your mask has the right number of pixels but not the hottest ones.")
    return "these are the pixels the deletion check hides; it compares that drop with random regions of equal size."


# ======================================================================== predictions on the lessons' runs


def _prediction(choices: dict[str, str], measure: Callable[[], Measured]) -> Callable[[Any], str]:
    """The checker of a prediction question: the learner's choice against what the lesson's run measured."""

    def check(prediction: Any) -> str:
        prediction = _given(prediction, "prediction")
        if not isinstance(prediction, str) or prediction not in choices:
            raise Wrong(f"`prediction` should be one of {', '.join(map(repr, choices))}, not {_short(prediction)}.")
        try:
            measured = measure()
        except LessonNotRun as err:
            raise NotAttempted(f"this question reads the lesson's own run, which is not there yet: {err}") from None
        if prediction == measured.choice:
            return f"you predicted {prediction!r} and the run agrees: {measured.evidence}."
        raise Wrong(f"you predicted {prediction!r} ({choices[prediction]}), but the run says {measured.choice!r} "
                    f"({choices[measured.choice]}): {measured.evidence}. Before moving on, write down what you "
                    "had not taken into account.")

    check.choices = choices  # what the notebook and the tests offer
    return check


def _prediction_question(label: str, title: str, choices: dict[str, str], measure: Callable[[], Measured], *,
                         hints: tuple[str, str], todo: str, solution_code: str) -> Question:
    """A lesson's prediction question: the learner names one of ``choices``; ``measure`` reads the lesson's run."""
    return Question(label, title, ("prediction",), _prediction(choices, measure), hints=hints,
                    solution_code=solution_code, todo=todo, measure=measure)


def _needs(path: Path, lesson: str) -> Path:
    if not path.exists():
        raise LessonNotRun(f"{path} is missing; run lesson {lesson} first (in this profile), then this check again.")
    return path


def _measure_blockiness() -> Measured:
    """Lesson 01: blockiness of AE's validation fakes against its photos, from ``dl.audit.audit_dataset``."""
    from .audit import audit_dataset
    from .config import get_paths

    folder = _needs(get_paths().raw / "AE", "01_build_dataset (it builds the demo dataset)")
    rows = [r for r in audit_dataset(folder).rows if r["split"] == "val"]
    mean = {cls: float(np.mean([r["blockiness"] for r in rows if r["class"] == cls])) for cls in ("ai", "nature")}
    gap = mean["ai"] - mean["nature"]
    choice = "same" if abs(gap) <= 0.05 else "ai" if gap > 0 else "nature"
    return Measured(choice, f"AE's validation fakes have blockiness {mean['ai']:.3f}, its photos "
                            f"{mean['nature']:.3f} (a gap of {gap:+.3f}; within ±0.05 counts as the same)")


def _measure_fit() -> Measured:
    """Lesson 02: under-, over- or good fit of the ConvNeXt the lesson trained, from its last epoch's checkpoint
    (``best.pth`` holds the history only up to the best epoch; the lesson's verdict reads every epoch)."""
    from .config import get_paths
    from .models import load_checkpoint
    from .train import History, fit_kind, fit_verdict, latest_checkpoint

    models = get_paths().models
    ckpt = load_checkpoint(latest_checkpoint(models) or _needs(models / "epoch_1.pth", "02_train_convnext"))
    history = History(list(ckpt["history"]))
    return Measured(fit_kind(history), fit_verdict(history))


def _measure_random_encoder() -> Measured:
    """Lesson 03: validation AUC lost when the head's encoder has random weights, from the comparison's runs."""
    from .clip_head import random_counterpart
    from .config import get_profile
    from .models import load_checkpoint
    from .train_clip_head import comparison_folder

    profile = get_profile()
    specs = (profile.encoder, random_counterpart(profile.encoder))
    auc = [load_checkpoint(_needs(comparison_folder(spec) / "clip_head.pth", "03_train_clip_head"))["metrics"]["auc"]
           for spec in specs]
    lost = auc[0] - auc[1]
    choice = "little" if lost < 0.05 else "some" if lost < 0.2 else "most"
    same = " (in this profile the encoder is itself random, so both runs are the same)" if specs[0] == specs[1] else ""
    return Measured(choice, f"validation AUC {auc[0]:.3f} with {specs[0]}, {auc[1]:.3f} with random weights: "
                            f"{lost:+.3f} lost{same}")


def _measure_wild() -> Measured:
    """Lesson 04: the from-scratch ConvNeXt's WILD AUC, in bands two standard errors wide around 0.5."""
    from .config import get_paths
    from .evaluate import auc_band, describe_auc, score_wild
    from .models import load_detector

    paths = get_paths()
    detector = load_detector(_needs(paths.models / "best.pth", "02_train_convnext"))
    summary = score_wild(detector, _needs(paths.wild / "manifest.csv", "04_evaluate").parent).summary()
    return Measured(auc_band(summary["auc"], summary["n_ai"], summary["n_real"]),
                    "the ConvNeXt on WILD: " + describe_auc(summary["auc"], summary["n_ai"], summary["n_real"]))


def _measure_deletion() -> Measured:
    """Lesson 05: the deletion check of the ConvNeXt's heatmaps on the lesson's own six images."""
    from .config import get_paths
    from .data import load_image
    from .explain import deletion_checks, deletion_faithful, deletion_verdict, sample_images
    from .models import load_detector

    paths = get_paths()
    detector = load_detector(_needs(paths.models / "best.pth", "02_train_convnext"))
    samples = sample_images(_needs(paths.raw, "01_build_dataset"), "val", per_class=3)
    files = samples["ai"] + samples["nature"]
    checks = deletion_checks(detector, [load_image(f) for f in files], [str(f) for f in files], k=0.1, fill="mean")
    return Measured("faithful" if deletion_faithful(checks) else "decoration", deletion_verdict(checks))


# ================================================================================================ lessons


lesson01 = Lesson("01_build_dataset", "Build the dataset", [
    Question(
        "q1", "Find the leak", ("leaked",), _check_leak,
        hints=("A photo leaks when it has patches on both sides. Collect the photos behind the train files, the "
               "photos behind the val files, and compare the two collections.",
               "A patch file is named <photo>_<index>.png: name.rsplit('_', 1)[0] is its photo (some photo names "
               "contain underscores themselves). Build one set per split and intersect them with &."),
        setup=_code("""
            patches = ex.q1.data()  # {"train": [...], "val": [...]}: patch files, split patch by patch at random
            print(len(patches["train"]), "train files, e.g.", patches["train"][:3])
            print(len(patches["val"]), "val files, e.g.", patches["val"][:3])
        """),
        todo="leaked = ...  # TODO: the set of photo names that have patches in both splits",
        solution_code=_code("""
            def photo_of(name):
                return name.rsplit("_", 1)[0]  # "hubble_deep_field_03.png" -> "hubble_deep_field"

            leaked = {photo_of(n) for n in patches["train"]} & {photo_of(n) for n in patches["val"]}
        """),
        data_fn=_leaky_split,
    ),
    Question(
        "q2", "Split by photo", ("split_by_photo",), _check_split_by_photo,
        hints=("Decide per photo, not per file: every file follows its photo to the side the photo belongs to.",
               "Loop over the files; the photo is the name cut at its last underscore; append the file to "
               "out['val'] when its photo is in val_photos, else to out['train']."),
        setup=_code("""
            files = ex.q2.data()  # the files of question 1, in one list
            val_photos = {photo for photo, split in dl.synth.PHOTO_SPLIT.items() if split == "val"}
            print(len(files), "files; val photos:", sorted(val_photos))
        """),
        todo=_code('''
            def split_by_photo(files, val_photos):
                """{"train": [...], "val": [...]}: the files of photos in val_photos go to val, all others to train."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def split_by_photo(files, val_photos):
                """{"train": [...], "val": [...]}: the files of photos in val_photos go to val, all others to train."""
                out = {"train": [], "val": []}
                for name in files:
                    photo = name.rsplit("_", 1)[0]
                    out["val" if photo in val_photos else "train"].append(name)
                return out
        '''),
        data_fn=lambda: sorted(sum(_leaky_split().values(), [])),
    ),
    Question(
        "q3", "Will the audit warn?", ("formats_warn",), _check_formats_warn,
        hints=("Two classes of different sizes can still look alike: compare what *share* of each class a format "
               "takes, not how many files it has, and warn only above a gap.",
               "Turn each dict of counts into shares (count / total of that class). For every format seen in either "
               "class, compare the two shares (a missing format has share 0). Warn when any gap is greater than "
               "dl.audit.SHARE_GAP."),
        setup='print("the audit warns when a format\'s share differs by more than", dl.audit.SHARE_GAP)',
        todo=_code('''
            def formats_warn(ai_formats, nature_formats):
                """True when the audit would warn. Each argument counts files per format, e.g. {"PNG": 8, "JPEG": 2}."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def formats_warn(ai_formats, nature_formats):
                """True when the audit would warn. Each argument counts files per format, e.g. {"PNG": 8, "JPEG": 2}."""
                ai_total, nature_total = sum(ai_formats.values()), sum(nature_formats.values())
                return any(
                    abs(ai_formats.get(f, 0) / ai_total - nature_formats.get(f, 0) / nature_total) > dl.audit.SHARE_GAP
                    for f in set(ai_formats) | set(nature_formats)
                )
        '''),
        forbidden=("detectlib.audit.audit_dataset",),
    ),
    Question(
        "q4", "Measure the JPEG grid", ("block_ratio",), _check_block_ratio,
        hints=("JPEG codes 8 x 8 blocks separately, so the step between two neighbouring pixels is larger where a "
               "block ends than inside a block. Compare the two kinds of step, across columns and across rows.",
               "np.abs(np.diff(grey, axis=1)) holds the horizontal steps; column c is the step from pixel c to c + 1, "
               "so the block-boundary columns are those with c % 8 == 7. Do the same with axis=0 for the vertical "
               "steps (transpose them), then average the two ratios."),
        setup=_code("""
            images = ex.q4.data()  # grey images as 2-D float arrays
            for name, grey in images.items():
                print(f"{name:9s} {grey.shape}  dl.audit.blockiness: {dl.audit.blockiness(grey):.3f}")
        """),
        todo=_code('''
            import numpy as np

            def block_ratio(grey):
                """Mean |step| across 8-pixel block boundaries / mean |step| elsewhere, for the horizontal and the
                vertical steps separately; returns the mean of the two ratios."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def block_ratio(grey):
                """Mean |step| across 8-pixel block boundaries / mean |step| elsewhere, for the horizontal and the
                vertical steps separately; returns the mean of the two ratios."""
                ratios = []
                for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T):
                    at_edge = np.arange(steps.shape[1]) % 8 == 7  # from pixel 7 to 8, 15 to 16, ...
                    ratios.append(steps[:, at_edge].mean() / steps[:, ~at_edge].mean())
                return float(np.mean(ratios))
        '''),
        data_fn=_grey_images,
        forbidden=("detectlib.audit.blockiness",),
    ),
    _prediction_question(
        "q5", "Predict, then read the audit",
        {"ai": "AE's fakes show more of an 8 x 8 grid", "same": "no difference worth the name",
         "nature": "the photos show more of a grid"}, _measure_blockiness,
        hints=("Where could a grid come from in each class? The photos were JPEGs once; the AE fakes never were, "
               "but ask how an autoencoder builds an image.",
               "The lesson printed the photos' blockiness as shipped and after downscaling, then the audit's "
               "blockiness column per generator and class; the AE rows are the ones to read."),
        todo='prediction = ...  # TODO: "ai", "same" or "nature", written down before you run the check',
        solution_code=_code("""
            # The photos' JPEG grid is erased by the downscale before the patches are cut, while the AE decoder
            # upsamples from a coarse grid of its own, so its fakes can show a block pattern without any JPEG.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])

lesson02 = Lesson("02_train_convnext", "Train a ConvNeXt detector", [
    Question(
        "q1", "Swap the head", ("model",), _check_swap_head,
        hints=("Keep everything the network has learnt and replace only the very last layer, the one that maps "
               "features to ImageNet's classes, by one that maps them to ours.",
               "model.head.fc is a torch.nn.Linear(in_features, 1000). Assign a new "
               "torch.nn.Linear(model.head.fc.in_features, len(dl.CLASSES)) to model.head.fc."),
        setup=_code("""
            model = ex.q1.data()  # the profile's ConvNeXt with ImageNet's 1000-class head (random weights)
            print(model.head)
        """),
        todo=_code("""
            import torch

            ...  # TODO: replace the last layer, model.head.fc, by one with an output per class (dl.CLASSES)
        """),
        solution_code=_code("""
            import torch

            model.head.fc = torch.nn.Linear(model.head.fc.in_features, len(dl.CLASSES))
        """),
        data_fn=_imagenet_convnext,
    ),
    Question(
        "q2", "The validation transform", ("val_transform",), _check_val_transform,
        hints=("Three steps, always the same for one image: give it the network's size, turn it into numbers, and "
               "scale those numbers the way the pretrained network saw them. Nothing random.",
               "transforms.Compose([...]) chains transforms.Resize((IMG_SIZE, IMG_SIZE)) (a tuple: both sides), "
               "transforms.ToTensor() (floats in [0, 1], channels first) and "
               "transforms.Normalize(dl.data.IMAGENET_MEAN, dl.data.IMAGENET_STD)."),
        setup=f"IMG_SIZE = {_TRANSFORM_SIZE}  # the reference uses 224",
        todo=_code("""
            from torchvision import transforms

            val_transform = ...  # TODO: PIL image -> (3, IMG_SIZE, IMG_SIZE) float tensor, ImageNet-normalised
        """),
        solution_code=_code("""
            from torchvision import transforms

            val_transform = transforms.Compose([
                transforms.Resize((IMG_SIZE, IMG_SIZE)),
                transforms.ToTensor(),
                transforms.Normalize(dl.data.IMAGENET_MEAN, dl.data.IMAGENET_STD),
            ])
        """),
        forbidden=("detectlib.data.build_transforms", "detectlib.data.ImageTransform.__call__"),
    ),
    Question(
        "q3", "Freeze the backbone", ("model", "n_trainable"), _check_freeze,
        hints=("The optimiser only changes parameters that ask for a gradient; switch that off everywhere but in "
               "the new layer, then count numbers, not tensors.",
               "Loop over model.named_parameters() and set p.requires_grad = name.startswith('head.fc.'). Then add "
               "up p.numel() over the parameters whose requires_grad is True."),
        setup=_code("""
            model = ex.q3.data()  # a fresh 2-class ConvNeXt
            print(f"{sum(p.numel() for p in model.parameters()):,} numbers in all")
        """),
        todo=_code("""
            ...  # TODO: freeze every parameter except those of model.head.fc
            n_trainable = ...  # TODO: how many numbers will the optimiser still change?
        """),
        solution_code=_code("""
            for name, p in model.named_parameters():
                p.requires_grad = name.startswith("head.fc.")
            n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        """),
        data_fn=lambda: _imagenet_convnext(num_classes=2),
    ),
    Question(
        "q4", "Which epoch becomes best.pth, and when does over-fitting start?", ("pick_best", "overfit_from"),
        _check_best_epoch,
        hints=("best.pth is chosen by one number measured on images the model does not train on; a second number "
               "breaks ties. Over-fitting shows first in the validation *loss*, while the training loss still falls.",
               "pick_best: max over the rows with the key (row['val_acc'], -row['val_loss']), return its 'epoch'. "
               "overfit_from: walk the rows in pairs and stop at the first whose val_loss is above the previous one."),
        setup=_code("""
            history = ex.q4.data()  # what dl.train.fit returned after 8 epochs
            for row in history.epochs:
                print(f"epoch {row['epoch']}: train loss {row['train_loss']:.2f}   val loss {row['val_loss']:.2f}   "
                      f"val acc {row['val_acc']:.3f}")
        """),
        todo=_code('''
            def pick_best(epochs):
                """The epoch number dl.train.fit saves as best.pth, from a list of rows like history.epochs."""
                ...  # TODO

            overfit_from = ...  # TODO: the first epoch whose val loss rises above the epoch before (train loss falling)
        '''),
        solution_code=_code('''
            def pick_best(epochs):
                """The epoch number dl.train.fit saves as best.pth, from a list of rows like history.epochs."""
                return max(epochs, key=lambda row: (row["val_acc"], -row["val_loss"]))["epoch"]

            rows = history.epochs
            overfit_from = next(b["epoch"] for a, b in zip(rows, rows[1:]) if b["val_loss"] > a["val_loss"])
        '''),
        data_fn=_overfit_history,
        forbidden=("detectlib.train.History.best",),
    ),
    _prediction_question(
        "q5", "Predict, then read the training curves",
        {"under-fits": "it does not even get its training images right",
         "over-fits": "training accuracy well above validation",
         "fits": "training and validation accuracy both high and close"}, _measure_fit,
        hints=("Ask what the network starts from (random weights or pretrained?) and how many images it sees. Few "
               "images and a big network over-fit; a task it cannot yet see under-fits.",
               "The lesson's loss and accuracy curves (loss_curve.png, val_accuracy_curve.png) show the last "
               "epoch's training and validation accuracy; dl.train.fit_verdict puts the rule in words."),
        todo='prediction = ...  # TODO: "under-fits", "over-fits" or "fits", written down before you run the check',
        solution_code=_code("""
            # From scratch on a few hundred small images, a ConvNeXt usually cannot yet tell these fakes apart: its
            # training accuracy stays low, close to validation (under-fitting), rather than memorising the images.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])

lesson03 = Lesson("03_train_clip_head", "Linear probing a frozen encoder", [
    Question(
        "q1", "How many numbers does the probe train?", ("n_trained",), _check_n_trained,
        hints=("The encoder is frozen; only the head learns. Dropout has nothing to learn.",
               "Sum p.numel() over the parameters of detector with p.requires_grad; by hand, one weight per "
               "embedding dimension plus one bias."),
        setup=_code("""
            detector = ex.q1.data()  # the reference's head behind a frozen encoder
            print(detector.encoder.description)
            print(detector.encoder.dim, "-d embeddings ->", detector.head)
        """),
        todo="n_trained = ...  # TODO: how many numbers does training change?",
        solution_code="n_trained = sum(p.numel() for p in detector.parameters() if p.requires_grad)",
        data_fn=_probe,
    ),
    Question(
        "q2", "A cache key from the content", ("image_key",), _check_image_key,
        hints=("A key must follow what the encoder sees, the image's content: a renamed copy must hit, an image "
               "edited in one pixel must miss. Names, sizes and dates do neither reliably.",
               "Open the file in binary mode ('rb'), read its bytes and return hashlib.sha256(data).hexdigest()."),
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
        forbidden=("detectlib.features.file_digest",),
    ),
    Question(
        "q3", "p(ai) from the CLIP score", ("p_ai_from_score",), _check_p_ai,
        hints=("The head's score is a probability of *real* stretched to [-1, 1]. Undo the stretch, then take the "
               "other class.",
               "score = 2·p(real) − 1 and p(ai) = 1 − p(real); solve for p(ai) with plain arithmetic, which works "
               "on numbers and numpy arrays alike."),
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
        forbidden=("detectlib.models.Detector.p_ai",),
    ),
    Question(
        "q4", "The reference's decision", ("label_from_score",), _check_label,
        hints=("One comparison with 0 decides; the only question is which side 0 itself falls on.",
               "A score > 0 is a real photo ('nature'); anything else, 0 included, is 'ai' (the folder names, "
               "dl.CLASSES)."),
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
        forbidden=("detectlib.labels.predicted_class",),
    ),
    _prediction_question(
        "q5", "Predict, then read the encoder comparison",
        {"little": "random weights lose less than 0.05 of validation AUC",
         "some": "they lose 0.05 to 0.2", "most": "they lose more than 0.2"}, _measure_random_encoder,
        hints=("A head of d + 1 numbers can only find a direction in which the embeddings already separate. Would "
               "random features of a big network separate these fakes anyway?",
               "Lesson 03's comparison table trains the same head behind the profile's encoder and behind the same "
               "architecture with random weights; compare their AUC-ROC."),
        todo='prediction = ...  # TODO: "little", "some" or "most", written down before you run the check',
        solution_code=_code("""
            # Random projections keep some low-level statistics (colour, noise), so a head behind random weights
            # often beats chance on easy fakes; how much pretraining adds is what the run measures.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])

lesson04 = Lesson("04_evaluate", "Evaluating detectors honestly", [
    Question(
        "q1", "TPR and TNR by hand", ("rates",), _check_rates,
        hints=("ai is the positive class: TPR asks how many of the fakes were caught, TNR how many photos were left "
               "alone. An image exactly at the threshold is called ai.",
               "flagged = p_ai >= threshold; is_ai = y_true == 0. TPR = (flagged & is_ai).sum() / is_ai.sum(), and "
               "TNR the same with ~flagged and ~is_ai."),
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
        forbidden=("detectlib.metrics.rates_at", "detectlib.metrics.confusion_matrix"),
    ),
    Question(
        "q2", "A threshold from validation", ("youden_threshold", "test_tpr", "test_tnr"), _check_threshold,
        hints=("Try every score seen on validation as a threshold and keep the one with the largest TPR − FPR. Then "
               "freeze it: the test set only measures.",
               "For t in np.unique(p): flagged = p >= t; compute TPR − FPR; keep the best t. Then test_tpr, test_tnr "
               "= rates(y_test, p_test, youden_threshold(y_val, p_val)) with your function of question 1."),
        setup=_code("""
            y_val, p_val, y_test, p_test = ex.q2.data()
            print(len(y_val), "validation and", len(y_test), "test images")
        """),
        todo=_code('''
            import numpy as np

            def youden_threshold(y_true, p_ai):
                """The threshold with the largest TPR - FPR on these labels and scores (ai = 0 positive)."""
                ...  # TODO

            test_tpr = ...  # TODO: TPR on the test set at the threshold chosen on validation
            test_tnr = ...  # TODO: TNR on the test set at that threshold
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

            threshold = youden_threshold(y_val, p_val)
            flagged, is_ai = p_test >= threshold, y_test == 0
            test_tpr = (flagged & is_ai).sum() / is_ai.sum()
            test_tnr = (~flagged & ~is_ai).sum() / (~is_ai).sum()
        '''),
        data_fn=_threshold_data,
        forbidden=("detectlib.metrics.choose_threshold",),
    ),
    Question(
        "q3", "What AUC means", ("auc_by_pairs",), _check_auc,
        hints=("Forget thresholds: pair every fake with every photo and ask, in how many pairs does the fake get the "
               "higher p(ai)? A tie is worth half a pair.",
               "fakes = p_ai[y_true == 0], reals = p_ai[y_true == 1]; fakes[:, None] > reals[None, :] compares every "
               "pair at once; take its mean, and add half the mean of the ties (==)."),
        setup=_code("""
            y_true, p_ai = ex.q1.data()
            print("dl.metrics.roc_auc:", dl.metrics.roc_auc(y_true, p_ai))
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
        forbidden=("detectlib.metrics.roc_auc", "sklearn.metrics.roc_auc_score"),
    ),
    Question(
        "q4", "Read a cross-generator matrix", ("off_diagonal_mean", "most_general"), _check_cross,
        hints=("The diagonal is each head on its own generator, the number everyone reports; the rest is the "
               "question that matters: a generator the head never saw. Read rows for training generators.",
               "np.eye(n, dtype=bool) marks the diagonal; auc[~mask].mean() averages the rest. For each row i, "
               "average cross.auc[i] without column i; the best row's name is cross.train_generators[i]."),
        setup=_code("""
            cross = ex.q4.data()  # cross.auc[i, j]: head trained on generator i, tested on generator j
            print(dl.evaluate.format_table(cross.rows("auc")))
        """),
        todo=_code('''
            import numpy as np

            def off_diagonal_mean(auc):
                """Mean AUC over the (train, test) pairs with different generators of a square matrix."""
                ...  # TODO

            most_general = ...  # TODO: name of the training generator whose head does best on the *other* ones
        '''),
        solution_code=_code('''
            import numpy as np

            def off_diagonal_mean(auc):
                """Mean AUC over the (train, test) pairs with different generators of a square matrix."""
                return auc[~np.eye(len(auc), dtype=bool)].mean()

            others = ~np.eye(len(cross.train_generators), dtype=bool)  # True off the diagonal
            row_means = [cross.auc[i][others[i]].mean() for i in range(len(cross.train_generators))]
            most_general = cross.train_generators[int(np.argmax(row_means))]
        '''),
        data_fn=_cross_data,
        forbidden=("detectlib.evaluate.CrossGenerator.off_diagonal",),
    ),
    _prediction_question(
        "q5", "Predict, then read WILD",
        {"above": "the ConvNeXt ranks WILD's fakes above its photos, beyond noise",
         "chance": "within two standard errors of AUC 0.5",
         "below": "it ranks the photos as more AI-like, beyond noise"}, _measure_wild,
        hints=("The ConvNeXt only ever met the kit's three small generators, at the kit's own size. WILD's fakes "
               "come from dozens of text-to-image models, its photos from other cameras.",
               "Lesson 04's WILD table prints each detector's AUC with ± two standard errors (dl.evaluate."
               "describe_auc); the ConvNeXt's row is the one to read."),
        todo='prediction = ...  # TODO: "above", "chance" or "below", written down before you run the check',
        solution_code=_code("""
            # A detector trained on three small generators learns their fingerprints; text-to-image models leave
            # others, so expect little transfer. Which side of chance it lands on is what the run measures.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])

lesson05 = Lesson("05_gradcam_explorer", "Where does the detector look?", [
    Question(
        "q1", "Channel weights", ("weights",), _check_weights,
        hints=("Grad-CAM gives each channel one number: how much, on average over the grid, the score would rise "
               "with more of that channel.",
               "α_c is the mean of G over the grid: G.mean(dim=(2, 3)) gives shape (batch, channels)."),
        setup=_code("""
            steps = ex.q1.data()  # a layer's activations A and the gradients dY/dA, from one pass of a tiny network
            A, G = steps.activations, steps.gradients  # (batch, channels, h, w)
            print("A", tuple(A.shape), "  G", tuple(G.shape))
        """),
        todo="weights = ...  # TODO: one weight per channel, alpha_c: the gradients averaged over the grid",
        solution_code="weights = G.mean(dim=(2, 3))",
        data_fn=_cam_data,
    ),
    Question(
        "q2", "The raw heatmap", ("cam",), _check_cam,
        hints=("Weigh every channel's map by its weight, add the channels up, and keep only the evidence *for* the "
               "class.",
               "weights[:, :, None, None] * A weighs every channel; .sum(dim=1) adds the channels up; torch.relu "
               "keeps the positive evidence."),
        setup=_code("""
            steps = ex.q2.data()  # the same pass as question 1
            A, G = steps.activations, steps.gradients
        """),
        todo="cam = ...  # TODO: ReLU of the channel-weighted sum of A, shape (batch, h, w)",
        solution_code=_code("""
            import torch

            weights = G.mean(dim=(2, 3))
            cam = torch.relu((weights[:, :, None, None] * A).sum(dim=1))
        """),
        data_fn=_cam_data,
    ),
    Question(
        "q3", "Normalise each map", ("minmax",), _check_minmax,
        hints=("Each map gets its own lowest value sent to 0 and its own highest to 1; a map with no contrast has "
               "nothing to stretch.",
               "low = maps.amin(dim=(1, 2), keepdim=True); span = maps.amax(...) - low; divide (maps - low) by span, "
               "but where span is 0 divide by 1 instead (torch.where), so a flat map gives zeros."),
        setup=_code("""
            maps = ex.q3.data()  # three 4 x 5 heatmaps; the second is weak, the third is flat
            print(maps.amin(dim=(1, 2)), maps.amax(dim=(1, 2)))
        """),
        todo=_code('''
            import torch

            def minmax(maps):
                """Each (H, W) map of a (B, H, W) batch scaled to [0, 1] on its own; a flat map becomes zeros."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import torch

            def minmax(maps):
                """Each (H, W) map of a (B, H, W) batch scaled to [0, 1] on its own; a flat map becomes zeros."""
                low = maps.amin(dim=(1, 2), keepdim=True)
                span = maps.amax(dim=(1, 2), keepdim=True) - low
                return (maps - low) / torch.where(span > 0, span, 1.0)
        '''),
        data_fn=_heatmaps,
        forbidden=("detectlib.explain.normalise",),
    ),
    Question(
        "q4", "What the deletion check hides", ("hottest",), _check_hottest,
        hints=("Rank the pixels by heat and take the top share k of them: a count, so the rank decides, not a value.",
               "count = round(k * cam.numel()); cam.reshape(-1).topk(count).indices are the hottest pixels; set them "
               "True in a flat boolean mask and reshape it to cam.shape."),
        setup=_code("""
            cam = ex.q4.data()  # a 6 x 6 heatmap
            print(cam.round(decimals=2))
        """),
        todo=_code('''
            import torch

            def hottest(cam, k):
                """Boolean (H, W) mask of the round(k * H * W) hottest pixels of a heatmap."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import torch

            def hottest(cam, k):
                """Boolean (H, W) mask of the round(k * H * W) hottest pixels of a heatmap."""
                count = round(k * cam.numel())
                mask = torch.zeros(cam.numel(), dtype=torch.bool)
                mask[cam.reshape(-1).topk(count).indices] = True
                return mask.reshape(cam.shape)
        '''),
        data_fn=lambda: _rand_map(1, 6, 6),
        forbidden=("detectlib.explain.hottest_mask",),
    ),
    _prediction_question(
        "q5", "Predict, then read the deletion check",
        {"faithful": "hiding the hot region lowers the ConvNeXt's confidence more than a random region",
         "decoration": "it changes the prediction no more than hiding a random region"}, _measure_deletion,
        hints=("A heatmap always has a hottest region, whether or not the model relies on it. How good is this "
               "ConvNeXt at its task to begin with (lesson 02)?",
               "Lesson 05's deletion table compares, per image, the drop from hiding the hottest 10 % with the drop "
               "from random regions; dl.explain.deletion_verdict states the rule."),
        todo='prediction = ...  # TODO: "faithful" or "decoration", written down before you run the check',
        solution_code=_code("""
            # A network near chance has little evidence to point at, so its maps tend to be decoration; a strong
            # detector's maps are more often faithful. The deletion check on this run decides.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])

LESSONS: dict[str, Lesson] = {lesson.notebook: lesson for lesson in (lesson01, lesson02, lesson03, lesson04, lesson05)}
