"""The exercises' self-checks: right on the reference solutions, specific on typical mistakes, kind to the TODO.

Each test runs the code the exercise notebooks show (``setup``, ``todo``, ``solution`` of every question) in a fresh
namespace, as a learner's notebook would, so what passes here passes there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import detectlib as dl
from detectlib import exercises

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [(lesson, q) for lesson in exercises.LESSONS.values() for q in lesson]
IDS = [f"{lesson.notebook[:2]}-{q.label}" for lesson, q in QUESTIONS]


def _run(lesson: exercises.Lesson, question: exercises.Question, code: str) -> dict:
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
    result = question.check(*[ns[name] for name in question.answers], strict=strict)
    return result, capsys.readouterr().out


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_the_reference_solution_passes_strictly(lesson, question, capsys):
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
    question.hint()
    question.solution()
    out = capsys.readouterr().out
    assert out.startswith("💡 Hint") and question.solution_code in out


FUNCTION_QUESTIONS = [
    ("01", "q2"), ("01", "q3"), ("01", "q4"), ("02", "q2"), ("03", "q2"), ("03", "q3"), ("03", "q4"),
    ("04", "q3"), ("05", "q3"), ("05", "q4"),
]


@pytest.mark.parametrize(("lesson", "label"), FUNCTION_QUESTIONS)
def test_a_learner_exception_is_explained_never_raised(lesson, label, capsys):
    name = getattr(getattr(exercises, f"lesson{lesson}"), label).answers[0]
    code = f"def {name}(*args):\n    return 1 / 0\n"
    result, out = _check(capsys, lesson, label, code)
    assert result.status == "wrong"
    assert "ZeroDivisionError" in out and "Traceback" not in out and out.startswith("❌")


# (lesson, question, a typical wrong answer, what the feedback must say)
WRONG = [
    ("01", "q1", 'leaked = {n.split("_")[0] for n in patches["train"]} & {n.split("_")[0] for n in patches["val"]}',
     "contain underscores themselves"),
    ("01", "q1", 'leaked = set(patches["val"])', "give photo names"),
    ("01", "q1", 'leaked = {n.rsplit("_", 1)[0] for n in patches["train"]}', "in train only"),
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
    ("02", "q3", "n_trainable = sum(p.numel() for p in model.parameters())", "Every parameter still trains"),
    ("02", "q3", "for n, p in model.named_parameters():\n    p.requires_grad = n.startswith('head.fc.')\n"
                 "n_trainable = sum(1 for p in model.parameters() if p.requires_grad)", "*tensors*"),
    ("02", "q3", "for p in model.parameters():\n    p.requires_grad = False\nn_trainable = 0", "Nothing trains"),
    ("02", "q4", "best_epoch = 8", "lowest *training* loss"),
    ("02", "q4", "best_epoch = 4", "lowest validation loss"),
    ("02", "q4", "best_epoch = 5", "tie"),
    ("03", "q1", "n_trained = sum(p.numel() for p in detector.parameters())", "frozen encoder too"),
    ("03", "q1", "n_trained = detector.encoder.dim", "plus a bias"),
    ("03", "q2", "def image_key(path):\n    return str(path)\n", "another name"),
    ("03", "q2", "def image_key(path):\n    return path.stat().st_size\n", "stale embedding"),
    ("03", "q3", "def p_ai_from_score(score):\n    return (1 + score) / 2\n", "p(real)"),
    ("03", "q3", "def p_ai_from_score(score):\n    return score\n", "the score itself"),
    ("03", "q4", "def label_from_score(score):\n    return 'nature' if score >= 0 else 'ai'\n", "exactly 0"),
    ("03", "q4", "def label_from_score(score):\n    return 'Real' if score > 0 else 'Generada'\n", "folder names"),
    ("04", "q1", "tpr, tnr = ((p_ai < 0.5) & (y_true == 1)).mean() * 2, ((p_ai >= 0.5) & (y_true == 0)).mean() * 2",
     "swapped"),
    ("04", "q1", "tpr = ((p_ai >= 0.5) & (y_true == 1)).sum() / 20\ntnr = ((p_ai < 0.5) & (y_true == 0)).sum() / 20",
     "label 1 as ai"),
    ("04", "q1", "tpr = ((p_ai > 0.5) & (y_true == 0)).sum() / 20\ntnr = ((p_ai <= 0.5) & (y_true == 1)).sum() / 20",
     "exactly 0.5"),
    ("04", "q1", "tpr, tnr = 100 * dl.metrics.rates_at(y_true, p_ai).tpr, dl.metrics.rates_at(y_true, p_ai).tnr",
     "percentage"),
    ("04", "q2", "threshold = 0.5\nr = dl.metrics.rates_at(y_test, p_test, 0.5)\ntest_tpr, test_tnr = r.tpr, r.tnr",
     "the default"),
    ("04", "q2", "c = dl.metrics.choose_threshold(y_test, p_test, rule='youden')\n"
                 "threshold, test_tpr, test_tnr = c.threshold, c.val_rates.tpr, c.val_rates.tnr", "leak"),
    ("04", "q2", "c = dl.metrics.choose_threshold(y_val, p_val, rule='youden')\n"
                 "threshold, test_tpr, test_tnr = c.threshold, c.val_rates.tpr, c.val_rates.tnr",
     "*validation* rates"),
    ("04", "q3", "def auc_by_pairs(y, p):\n    return 1 - dl.metrics.roc_auc(y, p)\n", "1 - AUC"),
    ("04", "q3", "def auc_by_pairs(y, p):\n"
                 "    return (p[y == 0][:, None] > p[y == 1][None, :]).mean()\n", "counted them as 0"),
    ("04", "q4", "off_diagonal_auc, most_general = cross.auc.mean(), 'GLIDE'", "whole matrix"),
    ("04", "q4", "off_diagonal_auc, most_general = cross.off_diagonal('auc'), 'BigGAN'", "fingerprint"),
    ("04", "q4", "off_diagonal_auc, most_general = cross.off_diagonal('auc'), 'ADM'", "*test* generator"),
    ("04", "q4", "off_diagonal_auc, most_general = cross.off_diagonal('auc'), 2", "name"),
    ("05", "q1", "weights = G.mean(dim=1)", "one per grid cell"),
    ("05", "q1", "weights = G.sum(dim=(2, 3))", "don't sum"),
    ("05", "q1", "weights = A.mean(dim=(2, 3))", "activations"),
    ("05", "q2", "cam = (G.mean(dim=(2, 3))[:, :, None, None] * A).sum(dim=1)", "ReLU"),
    ("05", "q2", "import torch\ncam = torch.relu(A.sum(dim=1))", "unweighted"),
    ("05", "q3", "def minmax(m):\n    return (m - m.min()) / (m.max() - m.min())\n", "batch's min and max"),
    ("05", "q3", "def minmax(m):\n"
                 "    lo = m.amin(dim=(1, 2), keepdim=True)\n"
                 "    return (m - lo) / (m.amax(dim=(1, 2), keepdim=True) - lo)\n", "NaN"),
    ("05", "q4", "def hottest(cam, k):\n    return cam >= 1 - k\n", "by rank"),
    ("05", "q4", "import torch\n"
                 "def hottest(cam, k):\n"
                 "    mask = torch.zeros(cam.numel(), dtype=torch.bool)\n"
                 "    mask[cam.reshape(-1).topk(int(k * cam.numel())).indices] = True\n"
                 "    return mask.reshape(cam.shape)\n", "round, don't truncate"),
]


@pytest.mark.parametrize(("lesson", "label", "code", "says"), WRONG, ids=[f"{w[0]}-{w[1]}-{w[3]}" for w in WRONG])
def test_a_typical_mistake_gets_specific_feedback(lesson, label, code, says, capsys):
    result, out = _check(capsys, lesson, label, code)
    assert result.status == "wrong" and not result
    assert out.startswith("❌") and says in out, out


def test_strict_mode_raises_unless_right_for_the_reference_section_under_nbval(capsys):
    question = exercises.lesson04.q4
    with pytest.raises(AssertionError, match="q4 .* not attempted"):
        question.check(..., ..., strict=True)
    with pytest.raises(AssertionError, match="q4 .* wrong: .*whole matrix"):
        question.check(question.data().auc.mean(), "GLIDE", strict=True)
    assert "❌" in capsys.readouterr().out


def test_every_question_has_a_typical_mistake_tested():
    tested = {(lesson, label) for lesson, label, _, _ in WRONG}
    assert tested == {(lesson.notebook[:2], q.label) for lesson, q in QUESTIONS}


def test_the_inputs_are_fresh_copies_a_learner_cannot_spoil():
    lesson = exercises.lesson05
    spoilt = lesson.q1.data()
    spoilt.gradients.zero_()
    assert lesson.q1.data().gradients.abs().sum() > 0
    assert exercises.lesson01.q1.data() == exercises.lesson01.q1.data()


def test_the_questions_keep_their_lessons_apart():
    with pytest.raises(AttributeError, match="no question 'q9'"):
        exercises.lesson01.q9  # noqa: B018
    assert [lesson.notebook for lesson in exercises.LESSONS.values()] == [
        p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    ]


@pytest.mark.parametrize("lesson", exercises.LESSONS.values(), ids=lambda lesson: lesson.notebook)
def test_the_exercise_notebook_shows_the_module_code(lesson):
    """The notebooks were generated from the questions; this keeps them in step when either changes."""
    path = ROOT / "notebooks" / "exercises" / f"{lesson.notebook}_exercises.ipynb"
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    imports = [src for src in code if "import detectlib" in src]  # a Colab setup cell may come before it
    assert imports == [f"import detectlib as dl\n\nex = dl.exercises.lesson{lesson.notebook[:2]}"]
    for q in lesson:
        assert not q.setup or q.setup in code, f"{q.label}: setup cell"
        assert q.todo in code, f"{q.label}: TODO cell"
        assert any(src.startswith(q.call) and f"# ex.{q.label}.hint()" in src for src in code), f"{q.label}: check"
        reference = (q.setup, q.solution_code, f"{q.call[:-1]}, strict=True)")
        assert "\n\n".join(part for part in reference if part) in code, f"{q.label}: reference solution"


ODD_ANSWERS = [0, -1.5, "text", [1, 2], {"a": 1}, float("nan"), lambda *args: "text", lambda *args: [[1, 2]]]


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_odd_answers_get_feedback_never_a_traceback(lesson, question, capsys):
    for odd in ODD_ANSWERS:
        result = question.check(*[odd] * len(question.answers))
        assert result.status == "wrong", (odd, result)
    assert capsys.readouterr().out.count("❌") == len(ODD_ANSWERS)
