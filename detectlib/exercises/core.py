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

Why the checkers compute every expected answer with the library itself (``dl.data``, ``dl.evaluation``,
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
import sys
import textwrap
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    """``"detectlib.training.History.best"`` -> (the History class, "best"): the object holding the attribute."""
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


def _holders(owner: Any, attr: str, original: Any) -> list[Any]:
    """Every place a learner can reach ``original`` under ``attr``: a function defined in one module is also
    re-exported by its package (``dl.data.blockiness`` is ``detectlib.data.audit.blockiness``), so each holder is
    wired; an attribute of a class has one holder, the class."""
    if not isinstance(owner, types.ModuleType):
        return [owner]
    kit = [module for name, module in list(sys.modules.items())
           if (name == "detectlib" or name.startswith("detectlib.")) and vars(module).get(attr) is original]
    return [owner, *(module for module in kit if module is not owner)]


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

        # a package's re-export loads on first access (getattr); a class keeps its descriptors (getattr_static)
        original = getattr(owner, attr) if isinstance(owner, types.ModuleType) else inspect.getattr_static(owner, attr)
        for holder in _holders(owner, attr, original):
            patched.append((holder, attr, original))
            setattr(holder, attr, wire)
    try:
        yield taken
    finally:
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)


def _public_name(dotted: str) -> str:
    """How a notebook spells it: ``dl.data.blockiness``, ``History.best``, ``sklearn.metrics.roc_auc_score``."""
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


@contextlib.contextmanager
def _torch_seeded(seed: int) -> Iterator[None]:
    """Torch's global RNG seeded inside, restored afterwards: the learner's random state is left alone."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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
