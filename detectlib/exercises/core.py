"""Self-checking exercises for the five lessons, in the style of Kaggle's learntools, with no grading server.

Used by ``notebooks/exercises/`` (the student notebooks) and ``notebooks/exercises/solutions/`` (the teachers'
copies, run by nbval). Each lesson is a namespace of questions (``dl.exercises.lesson01.q1`` ...), and each
question offers:

* ``q.check(answer, ...)``: prints ✅ when the answer is right, ❌ with what exactly is wrong, or 💡 a nudge while
  the answer is still the TODO placeholder (``...`` or ``None``). A learner's exception is explained, never shown
  as a traceback. ``strict=True`` (the solutions notebooks, run by nbval) raises ``AssertionError`` unless the
  answer is right, so CI notices a wrong reference solution.
* ``q.hint()``: two tiers, an idea first, then (called again) a pointer to the tools, never the solution's code.
* ``q.solution()`` (the reference solution's code) and ``q.measured()`` (a prediction's measured answer) answer
  only in teacher mode (``teacher_mode(True)`` or ``DETECTLIB_TEACHER=1``): a student gets a line saying so.
* ``q.data()``: the question's inputs, made fresh on every call from a fixed seed.

Why the checkers compute every expected answer with the library itself (``dl.data``, ``dl.evaluation``,
``dl.explain`` ...) on small seeded data: a hard-coded number would drift the day the library changes, and an
exercise that disagrees with its lesson teaches the wrong thing. The same reason makes a shortcut possible, so a
question lists what it forbids (``forbidden``): the library functions it is checked against, whole kit modules
(``"detectlib.evaluation.metrics.*"``: private helpers included) and the scikit-learn or SciPy equivalents of what
it asks to compute by hand. While the learner's function runs, a profiler (``sys.setprofile``, and
``threading.setprofile`` for threads it starts) watches every Python call and refuses one whose *code object* is
forbidden, so an alias, a reference captured before the check, or a private helper is refused like the public
name. Every answer is a function, called on inputs the learner never saw, so no number can be typed in.

The inputs are tiny and made on the spot, so every question works in every profile (Colab's ``full`` included) in
a second or less, without the demo dataset. The exception is each lesson's last question, a *prediction*: the
learner commits to what the lesson's own run will show, and the check then reads that run's results (its
checkpoints, its dataset) and says what it measured. The first prediction a kernel checks is the one that counts:
changing it after the check has shown the measurement earns no ✅. ``setup``, ``todo`` and ``solution_code`` hold the code the
exercise notebooks show, so the notebooks and the tests run the same code.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
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
    """Raised by the profiler; a BaseException, so a learner's ``except Exception`` cannot hide it."""


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


def _code_of(dotted: str) -> types.CodeType:
    """The code object behind a dotted name: a property's getter, a method's function, a decorated function's
    innermost one (scikit-learn's ``validate_params`` wrapper is shared by all its functions, the inner one is not)."""
    owner, attr = _owner(dotted)
    # a package's re-export loads on first access (getattr); a class keeps its descriptors (getattr_static)
    found = getattr(owner, attr) if isinstance(owner, types.ModuleType) else inspect.getattr_static(owner, attr)
    found = found.fget if isinstance(found, property) else getattr(found, "__func__", found)
    code = getattr(inspect.unwrap(found), "__code__", None)
    if code is None:
        raise ValueError(f"{dotted} is not a Python function: the profiler cannot recognise it")
    return code


@dataclass(frozen=True)
class _Watch:
    """What one question forbids, as the profiler matches it: code objects, and the files (or package folders) of
    modules forbidden whole."""

    codes: dict[types.CodeType, str]  # code -> how a notebook spells the function
    files: dict[str, str]  # a forbidden module's file -> its dotted name
    folders: tuple[str, ...]  # a forbidden package's folder, with a trailing separator

    def name_of(self, code: types.CodeType) -> str | None:
        """The forbidden function ``code`` belongs to, or None when it is allowed."""
        if code in self.codes:
            return self.codes[code]
        module = self.files.get(code.co_filename)
        if module is None and self.folders and code.co_filename.startswith(self.folders):
            module = _module_of(code.co_filename)
        return None if module is None else _public_name(_exported(module, code))


def _module_of(filename: str) -> str:
    """The loaded module whose file is ``filename`` (a package forbidden whole names its modules this way)."""
    return next((name for name, module in list(sys.modules.items()) if getattr(module, "__file__", None) == filename),
                Path(filename).stem)


def _exported(module: str, code: types.CodeType) -> str:
    """``detectlib.evaluation.metrics.roc_auc`` as the package re-exports it, ``detectlib.evaluation.roc_auc``,
    when it does: the name the learner most likely typed."""
    package = module.rpartition(".")[0]
    found = sys.modules.get(package)
    for part in code.co_qualname.split("."):
        found = getattr(found, part, None)
    where = package if getattr(found, "__code__", None) is code else module
    return f"{where}.{code.co_qualname}"


@cache
def _watch(forbidden: tuple[str, ...]) -> _Watch:
    """Resolve ``Question.forbidden``: ``"pkg.module.function"``, ``"pkg.Class.method"`` or ``"pkg.module.*"``."""
    codes, files, folders = {}, {}, []
    for spec in forbidden:
        if not spec.endswith(".*"):
            codes[_code_of(spec)] = _public_name(spec)
            continue
        module = importlib.import_module(spec[:-2])
        if hasattr(module, "__path__"):  # a package: every module under its folder
            folders.extend(str(Path(folder)) + os.sep for folder in module.__path__)
        else:
            files[module.__file__] = module.__name__
    return _Watch(codes, files, tuple(folders))


@contextlib.contextmanager
def _monitored(forbidden: tuple[str, ...]) -> Iterator[list[str]]:
    """While inside, a call to anything ``forbidden`` is noted (in this thread, or one started inside) and, in this
    thread, stopped with ``_ShortcutTaken``; yields the names called. Outside it nothing is watched, so the
    checker's own reference computation is never flagged."""
    watch, taken, checking = _watch(forbidden), [], threading.get_ident()

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        name = watch.name_of(frame.f_code) if event == "call" else None
        if name is None:
            return
        taken.append(name)
        if threading.get_ident() == checking:  # in a learner's thread, noting it is enough: no traceback there
            raise _ShortcutTaken(name)  # CPython then switches this profiler off: the learner's code runs on unwatched

    if not forbidden:
        yield taken
        return
    previous = sys.getprofile()
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield taken
        if not taken and sys.getprofile() is not profile:
            raise Wrong("your function switched off the check's watch (sys.setprofile), so its answer cannot be "
                        "trusted; leave the profiler alone.")
    finally:
        threading.setprofile(None)
        sys.setprofile(previous)


def _public_name(dotted: str) -> str:
    """How a notebook spells it: ``dl.data.blockiness``, ``History.best``, ``sklearn.metrics.roc_auc_score``."""
    return "dl." + dotted.removeprefix("detectlib.") if dotted.startswith("detectlib.") else dotted


_TEACHER_SWITCH: dict[str, bool] = {}  # "on": set by teacher_mode(); absent: DETECTLIB_TEACHER decides

TEACHER_ONLY = ("is for teachers: switch it on with dl.exercises.teacher_mode(True) (or DETECTLIB_TEACHER=1 in the "
                "environment).")


def teacher_mode(on: bool = True) -> None:
    """Let ``q.solution()`` and ``q.measured()`` answer (the solutions notebooks call this first). Off by default,
    so a student who asks for a solution meets a switch that only a teacher is meant to flip."""
    _TEACHER_SWITCH["on"] = bool(on)


def is_teacher() -> bool:
    """Whether teacher mode is on: the last ``teacher_mode()`` call, else ``DETECTLIB_TEACHER=1``."""
    return _TEACHER_SWITCH.get("on", os.environ.get("DETECTLIB_TEACHER", "") == "1")


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
    forbidden: tuple[str, ...] = ()  # what the learner may not call: "pkg.module.function", "pkg.Class.method", "pkg.module.*"
    measure: Callable[[], Measured] | None = None  # a prediction question: what the lesson's run shows
    hints_shown: int = field(default=0, repr=False)

    @property
    def call(self) -> str:
        """How the notebook calls the check, e.g. ``ex.q1.check(leaking_photos)``."""
        return f"ex.{self.label}.check({', '.join(self.answers)})"

    def data(self) -> Any:
        """The question's inputs, fresh from a fixed seed (change them freely: the checker makes its own)."""
        if self.data_fn is None:
            raise AttributeError(f"{self.label} has no data: its inputs are made in the notebook cell")
        return self.data_fn()

    def measured(self) -> str | None:
        """A prediction question's answer as the lesson's run gives it, in teacher mode (the solutions notebooks)."""
        if self.measure is None:
            raise AttributeError(f"{self.label} is not a prediction: its answer is a function, see solution()")
        if not is_teacher():
            print(f"🔒 ex.{self.label}.measured() {TEACHER_ONLY}")
            return None
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
                f"💡 Stuck? ex.{self.label}.hint() gives an idea; called again, a pointer to the tools.")

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
        """The reference solution's code, in teacher mode; a student gets one line saying how it is switched on."""
        if not is_teacher():
            print(f"🔒 ex.{self.label}.solution() {TEACHER_ONLY}")
            return
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
    """Call the learner's function; its exception or a missing ``return`` becomes plain words, and a call to
    anything the question forbids (``Question.forbidden``), however it was reached, is refused."""
    with _monitored(_FORBIDDEN.get()) as taken:
        try:
            out = fn(*args)
        except _ShortcutTaken:
            out = None
        except Exception as err:
            if not taken:
                raise Wrong(f"your {name}() raised {type(err).__name__}: {err} (called on {on}).") from None
    if taken:
        raise Wrong(f"your {name}() calls {taken[0]}, which does the very thing this question asks, so the check "
                    "would only compare the library with itself. Write the steps yourself (the hint gives an idea).")
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


@dataclass
class _Prediction:
    """The checker of a prediction question: the learner's choice against what the lesson's run measured.

    The first choice checked in this kernel is the prediction; a different one checked later is refused, since by
    then the check may have shown the measurement and copying it proves nothing. A kernel restart forgets it: this
    is a commitment, not a lock.
    """

    choices: dict[str, str]
    measure: Callable[[], Measured]
    committed: str | None = None

    def __call__(self, prediction: Any) -> str:
        prediction = _given(prediction, "prediction")
        if not isinstance(prediction, str) or prediction not in self.choices:
            raise Wrong(f"`prediction` should be one of {', '.join(map(repr, self.choices))}, not "
                        f"{_short(prediction)}.")
        first = self.committed = self.committed or prediction
        try:
            measured = self.measure()
        except LessonNotRun as err:
            raise NotAttempted(f"your prediction {first!r} is noted. This question reads the lesson's own run, "
                               f"which is not there yet: {err}") from None
        if prediction != first:
            raise Wrong(f"you first predicted {first!r}; a prediction changed after the check has run does not "
                        f"count. The run says {measured.choice!r} ({self.choices[measured.choice]}): "
                        f"{measured.evidence}. Write down what your first prediction had not taken into account.")
        if prediction == measured.choice:
            return f"you predicted {prediction!r} and the run agrees: {measured.evidence}."
        raise Wrong(f"you predicted {prediction!r} ({self.choices[prediction]}), but the run says "
                    f"{measured.choice!r} ({self.choices[measured.choice]}): {measured.evidence}. Before moving on, "
                    "write down what you had not taken into account.")


def _prediction_question(label: str, title: str, choices: dict[str, str], measure: Callable[[], Measured], *,
                         hints: tuple[str, str], todo: str, solution_code: str) -> Question:
    """A lesson's prediction question: the learner names one of ``choices``; ``measure`` reads the lesson's run."""
    return Question(label, title, ("prediction",), _Prediction(choices, measure), hints=hints,
                    solution_code=solution_code, todo=todo, measure=measure)


def _needs(path: Path, lesson: str) -> Path:
    if not path.exists():
        raise LessonNotRun(f"{path} is missing; run lesson {lesson} first (in this profile), then this check again.")
    return path
