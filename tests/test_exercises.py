"""The exercises' self-checks: right on the reference solutions, specific on typical mistakes, kind to the TODO.

Each test runs the code the exercise notebooks show (``setup``, ``todo``, ``solution`` of every question) in a fresh
namespace, as a learner's notebook would, so what passes here passes there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import threading
from pathlib import Path

import pytest

import detectlib as dl
from detectlib import exercises
from detectlib.exercises import build_dataset, core, generalisation, gradcam_explorer, measuring_a_detector

ROOT = Path(__file__).resolve().parents[1]
TEACHER_SWITCH = "dl.exercises.teacher_mode(True)  # the solutions and measurements below are for teachers"
QUESTIONS = [(lesson, q) for lesson in exercises.LESSONS.values() for q in lesson]
IDS = [f"{lesson.notebook[:2]}-{q.label}" for lesson, q in QUESTIONS]


def _run(lesson: core.Lesson, question: core.Question, code: str) -> dict:
    """A namespace as the notebook has it at the check cell: the first cell, the question's setup, then ``code``."""
    ns = {"dl": dl, "ex": lesson}
    exec(question.setup, ns)
    exec(code, ns)
    return ns


def _check(capsys, lesson_name: str, label: str, code: str, strict: bool = False):
    lesson = getattr(exercises, f"lesson{lesson_name}")
    question = getattr(lesson, label)
    ns = _run(lesson, question, code)
    capsys.readouterr()  # the setup's prints
    result = question.check(*[ns.get(name) for name in question.answers], strict=strict)  # unset: None
    return result, capsys.readouterr().out


@pytest.fixture(scope="module")
def lesson_runs(tmp_path_factory):
    """What the five lessons leave behind, made for real in the smoke profile under a scratch root: the demo
    dataset, the from-scratch ConvNeXt, the encoder comparison, WILD and lesson 05's results/wild.json. The
    prediction questions read these."""
    root = tmp_path_factory.mktemp("lessons")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETECTLIB_ROOT", str(root))
        mp.setenv("DETECTLIB_PROFILE", "smoke")
        profile = dl.get_profile()
        raw = dl.data.ensure_demo_dataset(profile)
        full = dl.data.create_full_all(raw, raw / "ALL_full").out_dir
        dl.training.train_convnext(full, profile=profile, progress=False)
        dl.training.train_clip_head(full, profile=profile, progress=False)  # lesson 03's head, for lesson 04's q5
        generators = [raw / name for name in dl.data.discover_generators(raw)]
        dl.training.compare_encoders(generators, [profile.encoder,
                                                         dl.models.random_counterpart(profile.encoder)],
                                            profile=profile, progress=False)
        wild_dir = dl.data.build_wild(profile, verbose=False)
        convnext = dl.get_paths(profile).models / "best.pth"  # what lesson 05 writes for it, as lesson 05 does
        run = dl.workflows.evaluate_on_wild({"ConvNeXt": dl.models.load_detector(convnext)}, {"ConvNeXt": convnext},
                                            {}, wild_dir, content_control=False)
        dl.evaluation.write_wild_json(run.entries, dl.evaluation.built_summary(wild_dir))
        yield root


PREDICTIONS = [(lesson, q) for lesson, q in QUESTIONS if q.measure is not None]


@pytest.fixture(autouse=True)
def _student_kernel(monkeypatch):
    """Every test starts as a student's fresh kernel: teacher mode off, no prediction committed yet."""
    monkeypatch.delenv("DETECTLIB_TEACHER", raising=False)
    core._TEACHER_SWITCH.clear()
    for _, question in PREDICTIONS:
        question.checker.committed = None
    yield
    core._TEACHER_SWITCH.clear()


def _solution_lines(code: str) -> list[str]:
    """What would give a solution away: each statement of it, and the expression after its `=` or `return`, without
    comments; imports, defs and docstrings are left out, and so are fragments too short to mean anything."""
    lines = []
    for line in code.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(("#", "import ", "from ", "def ", '"""')):
            continue
        lines += [line, *(line.split(sep, 1)[1].strip() for sep in (" = ", "return ") if sep in line)]
    return [line for line in lines if len(line) >= 6]


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_the_reference_solution_passes_strictly(lesson, question, capsys, request, monkeypatch):
    if question.measure is not None:  # a prediction reads the lesson's run, in teacher mode as the solutions do
        monkeypatch.setenv("DETECTLIB_ROOT", str(request.getfixturevalue("lesson_runs")))
        exercises.teacher_mode(True)
    result, out = _check(capsys, lesson.notebook[:2], question.label, question.solution_code, strict=True)
    assert result and result.status == "correct"
    assert out.startswith(f"✅ {question.label}")


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_the_placeholder_gets_a_nudge_not_a_failure(lesson, question, capsys):
    result, out = _check(capsys, lesson.notebook[:2], question.label, question.todo)
    assert result.status == "not attempted" and not result
    assert out.startswith("💡") and "❌" not in out


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_a_check_without_the_answer_says_how_to_call_it(lesson, question, capsys):
    result = question.check()
    assert result.status == "wrong" and question.call in capsys.readouterr().out


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_hint_and_solution_print_without_running_anything(lesson, question, capsys):
    exercises.teacher_mode(True)
    question.hint()
    question.solution()
    out = capsys.readouterr().out
    assert out.startswith("💡 Hint") and question.solution_code in out


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_a_student_asking_for_the_solution_is_told_it_is_for_teachers(lesson, question, capsys):
    question.solution()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and question.solution_code not in out
    assert "for teachers" in out and "teacher_mode(True)" in out and "DETECTLIB_TEACHER=1" in out


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_student_asking_for_the_measurement_is_told_it_is_for_teachers(lesson, question, tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))  # nothing measured there: the gate answers before reading
    assert question.measured() is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "for teachers" in out and "teacher_mode(True)" in out


def test_teacher_mode_follows_the_environment_unless_switched_by_a_call(monkeypatch, capsys):
    question = measuring_a_detector.lesson04.q3
    monkeypatch.setenv("DETECTLIB_TEACHER", "1")
    question.solution()
    assert question.solution_code in capsys.readouterr().out
    exercises.teacher_mode(False)  # the call wins over the environment
    question.solution()
    assert question.solution_code not in capsys.readouterr().out
    monkeypatch.delenv("DETECTLIB_TEACHER")
    exercises.teacher_mode(True)
    question.solution()
    assert question.solution_code in capsys.readouterr().out and core.is_teacher()


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_hint_2_points_to_the_tools_without_the_solution_code(lesson, question):
    pointer = " ".join(question.hints[1].split())
    given_away = [line for line in _solution_lines(question.solution_code) if " ".join(line.split()) in pointer]
    assert not given_away, f"hint 2 of {question.label} holds solution code: {given_away}"


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_hints_come_in_two_tiers_an_idea_then_a_pointer(lesson, question, capsys):
    fresh = dataclasses.replace(question, hints_shown=0)
    fresh.hint()
    fresh.hint()
    fresh.hint()
    idea, pointer, again = capsys.readouterr().out.strip().split("\n")
    assert idea.startswith("💡 Hint 1 of 2, an idea") and question.hints[0] in idea and "again" in idea
    assert pointer.startswith("💡 Hint 2 of 2, a pointer") and question.hints[1] in pointer
    assert again == pointer
    assert question.hints[0] != question.hints[1]
    assert question.solution_code not in question.hints[0]  # the idea is not the answer


FUNCTION_QUESTIONS = [(lesson.notebook[:2], q.label) for lesson, q in QUESTIONS
                      if q.measure is None and q.answers[0] != "model"]


def test_every_answer_but_a_prediction_or_a_model_is_a_function_checked_on_unseen_inputs():
    """No number or name to type in: each answer is code, run by the check on inputs the learner never saw."""
    typed = [(lesson.notebook[:2], name) for lesson, q in QUESTIONS if q.measure is None for name in q.answers
             if name != "model" and f"def {name}(" not in q.solution_code]
    assert typed == [("02", "val_transform")]  # a torchvision transform: an object the check calls on its images


@pytest.mark.parametrize(("lesson", "label"), FUNCTION_QUESTIONS)
def test_a_learner_exception_is_explained_never_raised(lesson, label, capsys):
    name = getattr(getattr(exercises, f"lesson{lesson}"), label).answers[0]
    code = f"def {name}(*args):\n    return 1 / 0\n"
    result, out = _check(capsys, lesson, label, code)
    assert result.status == "wrong"
    assert "ZeroDivisionError" in out and "Traceback" not in out and out.startswith("❌")


# (lesson, question, a typical wrong answer, what the feedback must say)
LEAK = "def leaking_photos(split):\n    return {}\n"
WRONG = [
    ("01", "q1", LEAK.format('{n.split("_")[0] for n in split["train"]} & {n.split("_")[0] for n in split["val"]}'),
     "contain underscores themselves"),
    ("01", "q1", LEAK.format('set(split["val"])'), "give photo names"),
    ("01", "q1", LEAK.format('{n.rsplit("_", 1)[0] for n in split["train"]}'), "in train only"),
    ("01", "q1", LEAK.format("'chelsea'"), "set of photo names"),
    ("01", "q2", "def split_by_photo(files, val_photos):\n"
                 "    out = {'train': [], 'val': []}\n"
                 "    for f in files:\n"
                 "        out['val' if f.split('_')[0] in val_photos else 'train'].append(f)\n"
                 "    return out\n", "belong in val"),
    ("01", "q2", "def split_by_photo(files, val_photos):\n    return [f for f in files]\n", "keys 'train' and 'val'"),
    ("01", "q3", "def formats_warn(ai, nature):\n    return ai != nature\n", "compare shares"),
    ("01", "q3", "def formats_warn(ai, nature):\n"
                 "    fs = set(ai) | set(nature)\n"
                 "    return any(abs(ai.get(f, 0) / sum(ai.values()) - nature.get(f, 0) / sum(nature.values()))"
                 " >= 0.1 for f in fs)\n", "*more than*"),
    ("01", "q3", "def formats_warn(ai, nature):\n    return 0.5\n", "True or False"),
    ("01", "q4", "import numpy as np\n"
                 "def block_ratio(grey):\n"
                 "    r = []\n"
                 "    for s in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T):\n"
                 "        e = np.arange(s.shape[1]) % 8 == 0\n"
                 "        r.append(s[:, e].mean() / s[:, ~e].mean())\n"
                 "    return float(np.mean(r))\n", "off by one"),
    ("01", "q4", "import numpy as np\n"
                 "def block_ratio(grey):\n"
                 "    s = np.abs(np.diff(grey, axis=1))\n"
                 "    e = np.arange(s.shape[1]) % 8 == 7\n"
                 "    return s[:, e].mean() / s[:, ~e].mean()\n", "horizontal steps only"),
    ("02", "q1", "import torch\nmodel.head.fc = torch.nn.Linear(model.head.fc.in_features, 1)", "1 output(s)"),
    ("02", "q1", "import torch\nmodel.head = torch.nn.Linear(model.num_features, 2)", "replace the whole head"),
    ("02", "q2", "from torchvision import transforms as T\n"
                 "val_transform = T.Compose([T.Resize(IMG_SIZE), T.ToTensor(), "
                 "T.Normalize(dl.data.IMAGENET_MEAN, dl.data.IMAGENET_STD)])", "did you resize both sides?"),
    ("02", "q2", "from torchvision import transforms as T\n"
                 "val_transform = T.Compose([T.Resize((IMG_SIZE, IMG_SIZE)), T.ToTensor()])", "Normalize"),
    ("02", "q2", "from torchvision import transforms as T\n"
                 "val_transform = T.Compose([T.Resize((IMG_SIZE, IMG_SIZE)), T.RandomHorizontalFlip(), T.ToTensor(), "
                 "T.Normalize(dl.data.IMAGENET_MEAN, dl.data.IMAGENET_STD)])", "deterministic"),
    ("02", "q3", "FREEZE\ndef count_trainable(m):\n    return sum(p.numel() for p in m.parameters())\n",
     "every parameter"),
    ("02", "q3", "FREEZE\ndef count_trainable(m):\n    return sum(1 for p in m.parameters() if p.requires_grad)\n",
     "*tensors*"),
    ("02", "q3", "FREEZE\ndef count_trainable(m):\n"
                 "    return sum(p.numel() for n, p in m.named_parameters() if p.requires_grad and 'weight' in n)\n",
     "biases train too"),
    ("02", "q3", "for p in model.parameters():\n    p.requires_grad = False\n"
                 "def count_trainable(m):\n    return 0\n", "Nothing trains"),
    ("02", "q4", "BEST\ndef pick_best(rows):\n    return min(rows, key=lambda r: r['train_loss'])['epoch']\n",
     "lowest *training* loss"),
    ("02", "q4", "BEST\ndef pick_best(rows):\n    return min(rows, key=lambda r: r['val_loss'])['epoch']\n",
     "lowest validation loss"),
    ("02", "q4", "BEST\ndef pick_best(rows):\n    return max(rows, key=lambda r: r['val_acc'])['epoch']\n", "tie"),
    ("02", "q4", "BEST\ndef pick_best(rows):\n    return 6\n", "history of 5 epochs"),
    ("02", "q4", "BEST\ndef overfit_start(rows):\n"
                 "    return [b['epoch'] for a, b in zip(rows, rows[1:]) if b['val_loss'] > a['val_loss']][-1]\n",
     "rose earlier"),
    ("02", "q4", "BEST\ndef overfit_start(rows):\n"
                 "    return max(rows, key=lambda r: (r['val_acc'], -r['val_loss']))['epoch']\n", "best checkpoint"),
    ("03", "q1", "def probe_size(dim):\n    return dim\n", "plus a bias"),
    ("03", "q1", "def probe_size(dim):\n    return 2\n", "*tensors*"),
    ("03", "q1", "def probe_size(dim):\n    return 1025\n", "but the head trains"),
    ("03", "q2", "def image_key(path):\n    return str(path)\n", "another name"),
    ("03", "q2", "def image_key(path):\n    return path.stat().st_size\n", "stale embedding"),
    ("03", "q3", "def p_ai_from_score(score):\n    return (1 + score) / 2\n", "p(real)"),
    ("03", "q3", "def p_ai_from_score(score):\n    return score\n", "the score itself"),
    ("03", "q4", "def label_from_score(score):\n    return 'nature' if score >= 0 else 'ai'\n", "exactly 0"),
    ("03", "q4", "def label_from_score(score):\n    return 'Real' if score > 0 else 'Generada'\n", "folder names"),
    ("04", "q1", "def rates(y, p, t):\n    return ((p < t) & (y == 1)).sum() / (y == 1).sum(), "
                 "((p >= t) & (y == 0)).sum() / (y == 0).sum()\n", "swapped"),
    ("04", "q1", "def rates(y, p, t):\n    return ((p >= t) & (y == 1)).sum() / (y == 1).sum(), "
                 "((p < t) & (y == 0)).sum() / (y == 0).sum()\n", "label 1 as ai"),
    ("04", "q1", "def rates(y, p, t):\n    return ((p > t) & (y == 0)).sum() / (y == 0).sum(), "
                 "((p <= t) & (y == 1)).sum() / (y == 1).sum()\n", "exactly at the threshold"),
    ("04", "q1", "def rates(y, p, t):\n    return 100 * ((p >= t) & (y == 0)).sum() / (y == 0).sum(), "
                 "((p < t) & (y == 1)).sum() / (y == 1).sum()\n", "percentage"),
    ("04", "q1", "def rates(y, p, t):\n    return ((p >= 0.5) & (y == 0)).sum() / (y == 0).sum(), "
                 "((p < 0.5) & (y == 1)).sum() / (y == 1).sum()\n", "threshold argument"),
    ("04", "q2", "def youden_threshold(y, p):\n    return 0.5\ndef test_rates(*a):\n    return 0.5, 0.5\n",
     "the default"),
    ("04", "q2", "RATES\ndef test_rates(y_val, p_val, y_test, p_test):\n"
                 "    return rates(y_test, p_test, youden_threshold(y_test, p_test))\n", "leak"),
    ("04", "q2", "RATES\ndef test_rates(y_val, p_val, y_test, p_test):\n"
                 "    return rates(y_val, p_val, youden_threshold(y_val, p_val))\n", "*validation* rates"),
    ("04", "q2", "RATES\ndef test_rates(y_val, p_val, y_test, p_test):\n"
                 "    return rates(y_test, p_test, youden_threshold(y_val, p_val))[::-1]\n", "swapped"),
    ("04", "q3", "def auc_by_pairs(y, p):\n    f, r = p[y == 0][:, None], p[y == 1][None, :]\n"
                 "    return (r > f).mean() + (r == f).mean() / 2\n", "1 - AUC"),
    ("04", "q3", "def auc_by_pairs(y, p):\n"
                 "    return (p[y == 0][:, None] > p[y == 1][None, :]).mean()\n", "counted them as 0"),
    ("04", "q4", "import numpy as np\ndef ece(y, p, n):\n"
                 "    b = np.searchsorted(np.linspace(0, 1, n + 1)[1:-1], p)\n    c = np.bincount(b, minlength=n)\n"
                 "    f = c > 0\n    mp = np.bincount(b, weights=p, minlength=n)[f] / c[f]\n"
                 "    ai = np.bincount(b, weights=(y == 0), minlength=n)[f] / c[f]\n    return np.mean(np.abs(mp - ai))\n",
     "weight each bin"),
    ("04", "q4", "import numpy as np\ndef ece(y, p, n):\n"
                 "    b = np.searchsorted(np.linspace(0, 1, n + 1)[1:-1], p)\n    c = np.bincount(b, minlength=n)\n"
                 "    f = c > 0\n    mp = np.bincount(b, weights=p, minlength=n)[f] / c[f]\n"
                 "    ai = np.bincount(b, weights=(y == 1), minlength=n)[f] / c[f]\n"
                 "    return np.sum(c[f] * np.abs(mp - ai)) / len(p)\n", "share of *nature*"),
    ("05", "q2", "def balanced_auc(y, p, cats):\n    return dl.evaluation.roc_auc(y, p)\n", "pooled AUC"),
    ("05", "q2", "import numpy as np\ndef balanced_auc(y, p, cats):\n    cats = np.asarray(cats)\n"
                 "    return float(np.mean([dl.evaluation.roc_auc(y[cats == c], p[cats == c]) for c in np.unique(cats)]))\n",
     "leave it out"),
    ("05", "q1", "CROSS\ndef off_diagonal_mean(auc):\n    return auc.mean()\n", "whole matrix"),
    ("05", "q1", "CROSS\ndef off_diagonal_mean(auc):\n    return np.diag(auc).mean()\n", "diagonal's mean"),
    ("05", "q1", "CROSS\ndef most_general(auc, names):\n    return names[int(np.argmax(np.diag(auc)))]\n",
     "fingerprint"),
    ("05", "q1", "CROSS\ndef most_general(auc, names):\n"
                 "    off = ~np.eye(len(auc), dtype=bool)\n"
                 "    return names[int(np.argmax([auc[:, j][off[:, j]].mean() for j in range(len(auc))]))]\n",
     "*test* generator"),
    ("05", "q1", "CROSS\ndef most_general(auc, names):\n    return 2\n", "generator's name"),
    ("06", "q1", "def channel_weights(G):\n    return G.mean(dim=1)\n", "one per grid cell"),
    ("06", "q1", "def channel_weights(G):\n    return G.sum(dim=(2, 3))\n", "don't sum"),
    ("06", "q2", "def raw_cam(A, G):\n    return (G.mean(dim=(2, 3))[:, :, None, None] * A).sum(dim=1)\n", "ReLU"),
    ("06", "q2", "import torch\ndef raw_cam(A, G):\n    return torch.relu(A.sum(dim=1))\n", "unweighted"),
    ("06", "q2", "import torch\ndef raw_cam(A, G):\n"
                 "    return torch.relu((A.mean(dim=(2, 3))[:, :, None, None] * A).sum(dim=1))\n", "activations A"),
    ("06", "q3", "def minmax(m):\n    return (m - m.min()) / (m.max() - m.min())\n", "batch's min and max"),
    ("06", "q3", "def minmax(m):\n"
                 "    lo = m.amin(dim=(1, 2), keepdim=True)\n"
                 "    return (m - lo) / (m.amax(dim=(1, 2), keepdim=True) - lo)\n", "NaN"),
    ("06", "q4", "def hottest(cam, k):\n    return cam >= 1 - k\n", "by rank"),
    ("06", "q4", "import torch\n"
                 "def hottest(cam, k):\n"
                 "    mask = torch.zeros(cam.numel(), dtype=torch.bool)\n"
                 "    mask[cam.reshape(-1).topk(int(k * cam.numel())).indices] = True\n"
                 "    return mask.reshape(cam.shape)\n", "round, don't truncate"),
]


def _reference(lesson: str, label: str) -> str:
    return getattr(getattr(exercises, f"lesson{lesson}"), label).solution_code


# Placeholders in a wrong answer: the reference solution of the question (or of question 1) it builds on, so one
# part of a two-part answer can be wrong alone.
PARTS = {"FREEZE": [("02", "q3")], "BEST": [("02", "q4")], "RATES": [("04", "q1"), ("04", "q2")],
         "CROSS": [("05", "q1")]}


def _expand(code: str) -> str:
    """``code`` with each placeholder word replaced by those reference solutions (the freeze loop of 02-q3 alone)."""
    for word, parts in PARTS.items():
        reference = "\n".join(_reference(lesson, label) for lesson, label in parts)
        code = code.replace(word, reference.split("\n\ndef count_trainable")[0], 1)
    return code


@pytest.mark.parametrize(("lesson", "label", "code", "says"), WRONG, ids=[f"{w[0]}-{w[1]}-{w[3]}" for w in WRONG])
def test_a_typical_mistake_gets_specific_feedback(lesson, label, code, says, capsys):
    result, out = _check(capsys, lesson, label, _expand(code))
    assert result.status == "wrong" and not result
    assert out.startswith("❌") and says in out, out


def test_strict_mode_raises_unless_right_for_the_reference_section_under_nbval(capsys):
    question = generalisation.lesson05.q1
    with pytest.raises(AssertionError, match="q1 .* not attempted"):
        question.check(..., ..., strict=True)
    with pytest.raises(AssertionError, match="q1 .* wrong: .*whole matrix"):
        question.check(lambda auc: auc.mean(), lambda auc, names: names[0], strict=True)
    assert "❌" in capsys.readouterr().out


def test_every_question_has_a_typical_mistake_tested():
    tested = {(lesson, label) for lesson, label, _, _ in WRONG}
    assert tested == {(lesson.notebook[:2], q.label) for lesson, q in QUESTIONS if q.measure is None}


# The shortcuts through a library: an answer that calls what the question forbids (the function the checker
# compares with, a kit helper, private or not, that computes the same thing, or the scikit-learn / SciPy /
# pytorch-grad-cam equivalent of what it asks to compute by hand). Each is (lesson, question, the answer with {f}
# for the function and {extra} in its signature, the function's dotted name, the name the refusal gives); WAYS
# reaches the function four ways, and every one must be refused, naming it.
SHORTCUTS = [
    ("01", "q3", "import pathlib, tempfile\ndef formats_warn(ai, nature{extra}):\n"
                 "    return bool({f}(pathlib.Path(tempfile.mkdtemp())).warnings)\n",
     "detectlib.data.audit_dataset", "dl.data.audit_dataset"),
    ("01", "q3", "def formats_warn(ai, nature{extra}):\n"
                 "    row = lambda fmts: {'generator': 'g', 'split': 's', 'formats': fmts, 'sizes': {}, "
                 "'blockiness': float('nan'), 'jpeg_quality': None}\n"
                 "    return bool({f}(row(ai), row(nature)))\n", "detectlib.data.audit._compare", "dl.data.audit._compare"),
    ("01", "q4", "def block_ratio(grey{extra}):\n    return {f}(grey)\n", "detectlib.data.blockiness",
     "dl.data.blockiness"),
    ("02", "q2", "def val_transform(image{extra}):\n    return {f}(IMG_SIZE)['val'](image)\n",
     "detectlib.data.build_transforms", "dl.data.build_transforms"),
    ("02", "q4", "BEST\ndef pick_best(rows{extra}):\n    return {f}(dl.training.History(rows))['epoch']\n",
     "detectlib.training.History.best", "dl.training.History.best"),
    ("02", "q4", "BEST\ndef pick_best(rows{extra}):\n    return min(rows, key={f})['epoch']\n",
     "detectlib.training.loop._rank", "dl.training.loop._rank"),
    ("02", "q4", "BEST\ndef overfit_start(rows{extra}):\n    return {f}(dl.training.History(rows), 0.0)[0]['epoch'] + 1\n",
     "detectlib.training.convnext._loss_turn", "dl.training.convnext._loss_turn"),
    ("03", "q1", "def probe_size(dim{extra}):\n    return sum(p.numel() for p in {f}(dim).parameters())\n",
     "detectlib.models.make_head", "dl.models.make_head"),
    ("03", "q2", "def image_key(path{extra}):\n    return {f}(path)\n", "detectlib.models.file_digest",
     "dl.models.file_digest"),
    ("03", "q3", "def p_ai_from_score(score{extra}):\n    return {f}(score)\n", "detectlib.models.p_ai_from_score",
     "dl.models.p_ai_from_score"),
    ("03", "q3", "import torch\nfrom builders import clip_detector\ndetector = clip_detector()\n"
                 "def p_ai_from_score(score{extra}):\n    return {f}(detector, torch.as_tensor(score)).numpy()\n",
     "detectlib.models.Detector.p_ai", "dl.models.Detector.p_ai"),
    ("03", "q4", "def label_from_score(score{extra}):\n    return {f}((1 - score) / 2)\n",
     "detectlib.labels.predicted_class", "dl.labels.predicted_class"),
    ("03", "q4", "def label_from_score(score{extra}):\n    return dl.CLASSES[int({f}([(1 - score) / 2])[0])]\n",
     "detectlib.evaluation.metrics.predict_labels", "dl.evaluation.metrics.predict_labels"),
    ("03", "q4", "def label_from_score(score{extra}):\n    return 'ai' if {f}(score) >= 0.5 else 'nature'\n",
     "detectlib.models.p_ai_from_score", "dl.models.p_ai_from_score"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    r = {f}(y, p, t)\n    return r.tpr, r.tnr\n",
     "detectlib.evaluation.rates_at", "dl.evaluation.rates_at"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    cm = {f}(y, p, t)\n    return cm[0, 0] / cm[0].sum(), cm[1, 1] / cm[1].sum()\n",
     "detectlib.evaluation.confusion_at_threshold", "dl.evaluation.confusion_at_threshold"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    cm = {f}(y, (p < t).astype(int), labels=[0, 1])\n"
                 "    return cm[0, 0] / cm[0].sum(), cm[1, 1] / cm[1].sum()\n",
     "sklearn.metrics.confusion_matrix", "sklearn.metrics.confusion_matrix"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    pred = (p < t).astype(int)\n"
                 "    return {f}(y, pred, pos_label=0), {f}(y, pred, pos_label=1)\n",
     "sklearn.metrics.recall_score", "sklearn.metrics.recall_score"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    _, recall, _, _ = {f}(y, (p < t).astype(int), labels=[0, 1])\n"
                 "    return recall[0], recall[1]\n",
     "sklearn.metrics.precision_recall_fscore_support", "sklearn.metrics.precision_recall_fscore_support"),
    ("04", "q1", "def rates(y, p, t{extra}):\n    fpr, tpr, thr = {f}(1 - y, p)\n    i = (thr >= t).sum() - 1\n"
                 "    return tpr[i], 1 - fpr[i]\n", "sklearn.metrics.roc_curve", "sklearn.metrics.roc_curve"),
    ("04", "q2", "RATES\ndef youden_threshold(y, p{extra}):\n    return {f}(y, p, rule='youden').threshold\n",
     "detectlib.evaluation.choose_threshold", "dl.evaluation.choose_threshold"),
    ("04", "q2", "RATES\ndef youden_threshold(y, p{extra}):\n    return max({f}(p), key=lambda t: rates(y, p, t)[0] + "
                 "rates(y, p, t)[1])\n",
     "detectlib.evaluation.metrics._candidate_thresholds", "dl.evaluation.metrics._candidate_thresholds"),
    ("04", "q2", "RATES\ndef youden_threshold(y, p{extra}):\n    fpr, tpr, thr = {f}(1 - y, p)\n"
                 "    return thr[(tpr - fpr).argmax()]\n", "sklearn.metrics.roc_curve", "sklearn.metrics.roc_curve"),
    *(("04", "q2", f"RATES\ndef test_rates(y_val, p_val, y_test, p_test{{extra}}):\n"
                   f"    pred = (p_test < youden_threshold(y_val, p_val)).astype(int)\n"
                   f"    out = {call}\n    return out[0], out[1]\n", f"sklearn.metrics.{name}", f"sklearn.metrics.{name}")
      for name, call in (("confusion_matrix", "{f}(y_test, pred, labels=[0, 1]).diagonal() / 24"),
                         ("recall_score", "({f}(y_test, pred, pos_label=0), {f}(y_test, pred, pos_label=1))"),
                         ("precision_recall_fscore_support", "{f}(y_test, pred, labels=[0, 1])[1]"))),
    ("04", "q2", "RATES\ndef test_rates(y_val, p_val, y_test, p_test{extra}):\n"
                 "    r = {f}(y_test, p_test, youden_threshold(y_val, p_val))\n    return r.tpr, r.tnr\n",
     "detectlib.evaluation.rates_at", "dl.evaluation.rates_at"),
    ("04", "q4", "def ece(y, p, n{extra}):\n    return {f}(y, p, n)\n", "detectlib.evaluation.expected_calibration_error",
     "dl.evaluation.expected_calibration_error"),
    ("04", "q4", "import numpy as np\ndef ece(y, p, n{extra}):\n    ai, mp = {f}((y == 0).astype(int), p, n_bins=n)\n"
                 "    return float(np.mean(np.abs(ai - mp)))\n", "sklearn.calibration.calibration_curve",
     "sklearn.calibration.calibration_curve"),
    ("05", "q2", "def balanced_auc(y, p, cats{extra}):\n    return {f}(y, p, cats)\n", "detectlib.evaluation.balanced_auc",
     "dl.evaluation.metrics.balanced_auc"),
    ("05", "q2", "import numpy as np\ndef balanced_auc(y, p, cats{extra}):\n    return float(np.nanmean(list({f}(y, p, cats).values())))\n",
     "detectlib.evaluation.category_aucs", "dl.evaluation.metrics.category_aucs"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    return {f}(y, p)\n", "detectlib.evaluation.roc_auc",
     "dl.evaluation.roc_auc"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    return {f}(y, p).area\n", "detectlib.evaluation.roc",
     "dl.evaluation.roc"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    return {f}(1 - y, p)\n", "sklearn.metrics.roc_auc_score",
     "sklearn.metrics.roc_auc_score"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    fpr, tpr, _ = {f}(1 - y, p)\n    return float(tpr.mean())\n",
     "sklearn.metrics.roc_curve", "sklearn.metrics.roc_curve"),
    ("04", "q3", "import numpy as np\ndef auc_by_pairs(y, p{extra}):\n"
                 "    order = np.argsort(-p)\n    return {f}(np.cumsum(y[order] == 1), np.cumsum(y[order] == 0))\n",
     "sklearn.metrics.auc", "sklearn.metrics.auc"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    a, b = p[y == 0], p[y == 1]\n"
                 "    return {f}(a, b).statistic / (len(a) * len(b))\n", "scipy.stats.mannwhitneyu",
     "scipy.stats.mannwhitneyu"),
    ("04", "q3", "def auc_by_pairs(y, p{extra}):\n    ranks, n0 = {f}(p), (y == 0).sum()\n"
                 "    return (ranks[y == 0].sum() - n0 * (n0 + 1) / 2) / (n0 * (y == 1).sum())\n",
     "scipy.stats.rankdata", "scipy.stats.rankdata"),
    ("05", "q1", "CROSS\ndef off_diagonal_mean(auc{extra}):\n    names = [str(i) for i in range(len(auc))]\n"
                 "    return {f}(dl.workflows.CrossGenerator(names, names, auc, auc, auc[0], ''))\n",
     "detectlib.workflows.CrossGenerator.off_diagonal", "dl.workflows.CrossGenerator.off_diagonal"),
    ("05", "q1", "CROSS\ndef off_diagonal_mean(auc{extra}):\n    names = [str(i) for i in range(len(auc))]\n"
                 "    return {f}(dl.workflows.CrossGenerator(names, names, auc, auc, auc[0], ''), 'auc', False)\n",
     "detectlib.workflows.CrossGenerator._mean", "dl.workflows.CrossGenerator._mean"),
    *(("06", label, "import torch\ndef " + answer + "{extra}):\n    layer = torch.nn.Identity()  # then dY/dA = G\n"
                     "    return {f}(layer, layer, " + inputs + ", lambda out: (out * G).sum(dim=(1, 2, 3)))." + part +
       "\n", "detectlib.explain.grad_cam", "dl.explain.grad_cam")
      for label, answer, inputs, part in (("q1", "channel_weights(G", "torch.ones_like(G)", "weights"),
                                          ("q2", "raw_cam(A, G", "A", "raw"))),
    ("06", "q1", "import torch\ndef channel_weights(G{extra}):\n"
                 "    return torch.as_tensor({f}(None, None, None, None, None, G.numpy()))\n",
     "pytorch_grad_cam.GradCAM.get_cam_weights", "pytorch_grad_cam.GradCAM.get_cam_weights"),
    ("06", "q2", "import torch\ndef raw_cam(A, G{extra}):\n"
                 "    weights = torch.as_tensor({f}(None, None, None, None, None, G.numpy()))\n"
                 "    return torch.relu((weights[:, :, None, None] * A).sum(dim=1))\n",
     "pytorch_grad_cam.GradCAM.get_cam_weights", "pytorch_grad_cam.GradCAM.get_cam_weights"),
    ("06", "q3", "def minmax(maps{extra}):\n    return {f}(maps)\n", "detectlib.explain.normalise", "dl.explain.normalise"),
    ("06", "q3", "import torch\ndef minmax(maps{extra}):\n    return torch.as_tensor({f}(maps.numpy()))\n",
     "pytorch_grad_cam.utils.image.scale_cam_image", "pytorch_grad_cam.utils.image.scale_cam_image"),
    ("06", "q4", "def hottest(cam, k{extra}):\n    return {f}(cam, k)\n", "detectlib.explain.hottest_mask",
     "dl.explain.hottest_mask"),
]

WAYS = {  # how a learner can reach a function: its expression -> (code before the answer, {f}, {extra})
    "by its public name": lambda expr: ("", expr, ""),
    "through an alias made before the check": lambda expr: (f"shortcut = {expr}\n", "shortcut", ""),
    "as a default argument captured at def time": lambda expr: ("", "_f", f", _f={expr}"),
    "through a closure": lambda expr: (f"captured = (lambda g: lambda *a, **k: g(*a, **k))({expr})\n", "captured", ""),
}


def _spelled(dotted: str) -> tuple[str, str]:
    """(the import a notebook needs, the expression it types) for a dotted name: ``dl.`` for the kit."""
    if dotted.startswith("detectlib."):
        return "", "dl." + dotted.removeprefix("detectlib.")
    parts = dotted.split(".")
    module = next(".".join(parts[:cut]) for cut in range(len(parts) - 1, 0, -1)
                  if importlib.util.find_spec(".".join(parts[:cut])) is not None)
    return f"import {module}\n", dotted


def _shortcut_code(template: str, dotted: str, way: str) -> str:
    prelude, expr = _spelled(dotted)
    before, f, extra = WAYS[way](expr)
    return prelude + before + _expand(template.replace("{f}", f).replace("{extra}", extra))


@pytest.mark.parametrize(("lesson", "label", "template", "dotted", "name", "way"),
                         [(*s, way) for s in SHORTCUTS for way in WAYS],
                         ids=[f"{s[0]}-{s[1]}-{s[4]}-{way}" for s in SHORTCUTS for way in WAYS])
def test_a_shortcut_is_refused_however_it_is_reached(lesson, label, template, dotted, name, way, capsys):
    result, out = _check(capsys, lesson, label, _shortcut_code(template, dotted, way))
    assert result.status == "wrong" and out.startswith("❌"), out
    assert f"calls {name}, which does the very thing this question asks" in out, out


def test_every_forbidden_function_and_module_has_a_shortcut_tested():
    """Each entry of every ``forbidden`` list is hit by at least one shortcut above, matched as the check does."""
    reached: dict[tuple[str, str], list] = {}
    for lesson, label, _, dotted, _ in SHORTCUTS:
        reached.setdefault((lesson, label), []).append(core._code_of(dotted))
    untested = [(lesson.notebook[:2], q.label, spec) for lesson, q in QUESTIONS for spec in q.forbidden
                if not any(core._watch((spec,)).name_of(code) for code in reached.get((lesson.notebook[:2], q.label), []))]
    assert not untested, untested


def test_a_transform_object_built_by_the_kit_is_refused_when_the_check_calls_it(capsys):
    result, out = _check(capsys, "02", "q2", "val_transform = dl.data.build_transforms(IMG_SIZE)['val']")
    assert result.status == "wrong" and "calls dl.data.ImageTransform.__call__" in out, out


def test_an_import_with_another_name_is_refused(capsys):
    code = "from detectlib.evaluation.metrics import roc_auc as r\ndef auc_by_pairs(y, p):\n    return r(y, p)\n"
    result, out = _check(capsys, "04", "q3", code)
    assert result.status == "wrong" and "calls dl.evaluation.roc_auc" in out, out


def test_an_import_inside_the_function_is_refused(capsys):
    code = "def block_ratio(grey):\n    from detectlib.data.audit import blockiness\n    return blockiness(grey)\n"
    result, out = _check(capsys, "01", "q4", code)
    assert result.status == "wrong" and "calls dl.data.blockiness" in out, out


def test_a_shortcut_in_a_thread_the_answer_starts_is_refused(capsys):
    code = ("import threading\ndef hottest(cam, k):\n    out = []\n"
            "    worker = threading.Thread(target=lambda: out.append(dl.explain.hottest_mask(cam, k)))\n"
            "    worker.start()\n    worker.join()\n    return out[0] if out else cam > 2\n")
    result, out = _check(capsys, "06", "q4", code)
    assert result.status == "wrong" and "calls dl.explain.hottest_mask" in out, out


def test_switching_the_watch_off_is_refused(capsys):
    code = "import sys\ndef minmax(maps):\n    sys.setprofile(None)\n    return dl.explain.normalise(maps)\n"
    result, out = _check(capsys, "06", "q3", code)
    assert result.status == "wrong" and "switched off the check's watch" in out, out


def test_a_shortcut_hidden_in_a_try_block_is_still_caught_and_nothing_is_left_watching(capsys):
    code = "def minmax(maps):\n    try:\n        return dl.explain.normalise(maps)\n    except BaseException:\n" \
           "        return maps\n"
    result, out = _check(capsys, "06", "q3", code)
    assert result.status == "wrong" and "dl.explain.normalise" in out
    assert sys.getprofile() is None and threading._profile_hook is None  # the watch ends with the check
    maps = gradcam_explorer.lesson06.q3.data()
    assert dl.explain.normalise(maps).max() == 1


def test_a_by_hand_answer_may_use_numpy_and_torch_freely(capsys):
    """The watch is narrow: only what a question forbids, so the reference's numpy and torch calls pass."""
    for lesson, label in (("04", "q3"), ("06", "q3"), ("01", "q4")):
        result, _ = _check(capsys, lesson, label, _reference(lesson, label))
        assert result, (lesson, label)


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_prediction_is_read_against_the_lessons_own_run(lesson, question, lesson_runs, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(lesson_runs))
    measured = question.measure()
    exercises.teacher_mode(True)
    assert measured.choice == question.measured()
    right = question.check(measured.choice)
    assert right and measured.evidence in capsys.readouterr().out
    other = next(c for c in question.checker.choices if c != measured.choice)
    question.checker.committed = None  # another student's kernel
    wrong = question.check(other)
    out = capsys.readouterr().out
    assert wrong.status == "wrong" and f"the run says {measured.choice!r}" in out and measured.evidence in out


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_prediction_changed_after_the_check_showed_the_run_earns_no_tick(lesson, question, lesson_runs,
                                                                           monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(lesson_runs))
    measured = question.measure()
    first = next(c for c in question.checker.choices if c != measured.choice)
    assert question.check(first).status == "wrong"
    copied = question.check(measured.choice)
    out = capsys.readouterr().out
    assert copied.status == "wrong" and f"first predicted {first!r}" in out, out


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_prediction_before_the_lesson_ran_says_which_lesson_to_run(lesson, question, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    choice = next(iter(question.checker.choices))
    result = question.check(choice)
    out = capsys.readouterr().out
    assert result.status == "not attempted" and "run lesson 0" in out and str(tmp_path) in out, out
    assert f"prediction {choice!r} is noted" in out and question.checker.committed == choice


def test_the_inputs_are_fresh_copies_a_learner_cannot_spoil():
    lesson = gradcam_explorer.lesson06
    spoilt = lesson.q1.data()
    spoilt.gradients.zero_()
    assert lesson.q1.data().gradients.abs().sum() > 0
    assert build_dataset.lesson01.q1.data() == build_dataset.lesson01.q1.data()


def test_the_questions_keep_their_lessons_apart():
    with pytest.raises(AttributeError, match="no question 'q9'"):
        build_dataset.lesson01.q9  # noqa: B018
    assert [lesson.notebook for lesson in exercises.LESSONS.values()] == [  # the appendix has no exercises
        p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if "appendix" not in p.stem
    ]


def _code_cells(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _notebooks(lesson: core.Lesson) -> tuple[Path, Path]:
    folder = ROOT / "notebooks" / "exercises"
    return folder / f"{lesson.notebook}_exercises.ipynb", folder / "solutions" / f"{lesson.notebook}_solutions.ipynb"


@pytest.mark.parametrize("lesson", exercises.LESSONS.values(), ids=lambda lesson: lesson.notebook)
def test_the_exercise_notebooks_show_the_module_code(lesson):
    """The notebooks were generated from the questions; this keeps them in step when either changes."""
    student, teacher = (_code_cells(path) for path in _notebooks(lesson))
    first = f"import detectlib as dl\n\nex = dl.exercises.lesson{lesson.notebook[:2]}"
    for code, expected in ((student, first), (teacher, f"{first}\n{TEACHER_SWITCH}")):
        imports = [src for src in code if "import detectlib" in src]  # a Colab setup cell may come before it
        assert imports == [expected]
    for q in lesson:
        assert not q.setup or q.setup in student, f"{q.label}: setup cell"
        assert q.todo in student, f"{q.label}: TODO cell"
        assert any(src.startswith(q.call) and f"# ex.{q.label}.hint()" in src for src in student), f"{q.label}: check"
        reference = (q.setup, q.solution_code, f"{q.call[:-1]}, strict=True)")
        assert "\n\n".join(part for part in reference if part) in teacher, f"{q.label}: reference solution"


@pytest.mark.parametrize("lesson", exercises.LESSONS.values(), ids=lambda lesson: lesson.notebook)
def test_the_student_notebook_holds_no_solution_and_points_teachers_to_theirs(lesson):
    student_path, teacher_path = _notebooks(lesson)
    text = student_path.read_text()
    code = "\n".join(_code_cells(student_path))
    assert "strict=True" not in text and "Reference solutions" not in text
    for q in lesson:
        body = [line for line in q.solution_code.splitlines() if line.strip() and not line.lstrip().startswith(
            ("#", "import ", "from ", "def ", '"""')) and line not in q.todo]
        assert not [line for line in body if line in code], f"{q.label}: a solution line in the student notebook"
    assert f"solutions/{teacher_path.name}" in text
    assert "solutions/" in (ROOT / "notebooks" / "exercises" / "TEACHERS.md").read_text()


ODD_ANSWERS = [0, -1.5, "text", [1, 2], {"a": 1}, float("nan"), lambda *args: "text", lambda *args: [[1, 2]]]


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_odd_answers_get_feedback_never_a_traceback(lesson, question, capsys):
    for odd in ODD_ANSWERS:
        result = question.check(*[odd] * len(question.answers))
        assert result.status == "wrong", (odd, result)
    assert capsys.readouterr().out.count("❌") == len(ODD_ANSWERS)
