"""The exercises' self-checks: right on the reference solutions, specific on typical mistakes, kind to the TODO.

Each test runs the code the exercise notebooks show (``setup``, ``todo``, ``solution`` of every question) in a fresh
namespace, as a learner's notebook would, so what passes here passes there.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import detectlib as dl
from detectlib import exercises
from detectlib.exercises import build_dataset, core, evaluate, gradcam_explorer

ROOT = Path(__file__).resolve().parents[1]
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
    dataset, the from-scratch ConvNeXt, the encoder comparison, WILD and lesson 04's results/wild.json. The
    prediction questions read these."""
    root = tmp_path_factory.mktemp("lessons")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETECTLIB_ROOT", str(root))
        mp.setenv("DETECTLIB_PROFILE", "smoke")
        profile = dl.get_profile()
        raw = dl.data.ensure_demo_dataset(profile)
        full = dl.data.create_full_all(raw, raw / "ALL_full").out_dir
        dl.training.train_convnext(full, profile=profile, progress=False)
        generators = [raw / name for name in dl.data.discover_generators(raw)]
        dl.training.compare_encoders(generators, [profile.encoder,
                                                         dl.models.random_counterpart(profile.encoder)],
                                            profile=profile, progress=False)
        wild_dir = dl.data.build_wild(profile, verbose=False)
        convnext = dl.get_paths(profile).models / "best.pth"  # what lesson 04 writes for it, as lesson 04 does
        run = dl.workflows.evaluate_on_wild({"ConvNeXt": dl.models.load_detector(convnext)}, {"ConvNeXt": convnext},
                                            {}, wild_dir, content_control=False)
        dl.evaluation.write_wild_json(run.entries, dl.evaluation.built_summary(wild_dir))
        yield root


PREDICTIONS = [(lesson, q) for lesson, q in QUESTIONS if q.measure is not None]


@pytest.mark.parametrize(("lesson", "question"), QUESTIONS, ids=IDS)
def test_the_reference_solution_passes_strictly(lesson, question, capsys, request, monkeypatch):
    if question.measure is not None:  # a prediction reads the lesson's run
        monkeypatch.setenv("DETECTLIB_ROOT", str(request.getfixturevalue("lesson_runs")))
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


FUNCTION_QUESTIONS = [
    ("01", "q2"), ("01", "q3"), ("01", "q4"), ("02", "q2"), ("02", "q4"), ("03", "q2"), ("03", "q3"), ("03", "q4"),
    ("04", "q1"), ("04", "q2"), ("04", "q3"), ("04", "q4"), ("05", "q3"), ("05", "q4"),
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
    ("02", "q4", "def pick_best(rows):\n    return min(rows, key=lambda r: r['train_loss'])['epoch']\n"
                 "overfit_from = 5", "lowest *training* loss"),
    ("02", "q4", "def pick_best(rows):\n    return min(rows, key=lambda r: r['val_loss'])['epoch']\n"
                 "overfit_from = 5", "lowest validation loss"),
    ("02", "q4", "def pick_best(rows):\n    return max(rows, key=lambda r: r['val_acc'])['epoch']\n"
                 "overfit_from = 5", "tie"),
    ("02", "q4", "def pick_best(rows):\n    return 6\noverfit_from = 5", "history of 5 epochs"),
    ("02", "q4", "def pick_best(rows):\n    return max(rows, key=lambda r: (r['val_acc'], -r['val_loss']))['epoch']\n"
                 "overfit_from = 7", "rose earlier"),
    ("02", "q4", "def pick_best(rows):\n    return max(rows, key=lambda r: (r['val_acc'], -r['val_loss']))['epoch']\n"
                 "overfit_from = 6", "best checkpoint"),
    ("03", "q1", "n_trained = sum(p.numel() for p in detector.parameters())", "frozen encoder too"),
    ("03", "q1", "n_trained = detector.encoder.dim", "plus a bias"),
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
    ("04", "q2", "def youden_threshold(y, p):\n    return 0.5\ntest_tpr = test_tnr = 0.5", "the default"),
    ("04", "q2", "import numpy as np\ndef youden_threshold(y, p):\n"
                 "    return max(np.unique(p), key=lambda t: ((p >= t) & (y == 0)).mean() - ((p >= t) & (y == 1)).mean())\n"
                 "r = dl.evaluation.rates_at(y_test, p_test, youden_threshold(y_test, p_test))\n"
                 "test_tpr, test_tnr = r.tpr, r.tnr", "leak"),
    ("04", "q2", "import numpy as np\ndef youden_threshold(y, p):\n"
                 "    return max(np.unique(p), key=lambda t: ((p >= t) & (y == 0)).mean() - ((p >= t) & (y == 1)).mean())\n"
                 "r = dl.evaluation.rates_at(y_val, p_val, youden_threshold(y_val, p_val))\n"
                 "test_tpr, test_tnr = r.tpr, r.tnr", "*validation* rates"),
    ("04", "q3", "def auc_by_pairs(y, p):\n    f, r = p[y == 0][:, None], p[y == 1][None, :]\n"
                 "    return (r > f).mean() + (r == f).mean() / 2\n", "1 - AUC"),
    ("04", "q3", "def auc_by_pairs(y, p):\n"
                 "    return (p[y == 0][:, None] > p[y == 1][None, :]).mean()\n", "counted them as 0"),
    ("04", "q4", "def off_diagonal_mean(auc):\n    return auc.mean()\nmost_general = 'GLIDE'", "whole matrix"),
    ("04", "q4", "import numpy as np\ndef off_diagonal_mean(auc):\n    return np.diag(auc).mean()\nmost_general = 'GLIDE'", "diagonal's mean"),
    ("04", "q4", "import numpy as np\ndef off_diagonal_mean(auc):\n    return auc[~np.eye(len(auc), dtype=bool)].mean()\n"
                 "most_general = 'BigGAN'", "fingerprint"),
    ("04", "q4", "import numpy as np\ndef off_diagonal_mean(auc):\n    return auc[~np.eye(len(auc), dtype=bool)].mean()\n"
                 "most_general = 'ADM'", "*test* generator"),
    ("04", "q4", "import numpy as np\ndef off_diagonal_mean(auc):\n    return auc[~np.eye(len(auc), dtype=bool)].mean()\n"
                 "most_general = 2", "name"),
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
    question = evaluate.lesson04.q4
    with pytest.raises(AssertionError, match="q4 .* not attempted"):
        question.check(..., ..., strict=True)
    with pytest.raises(AssertionError, match="q4 .* wrong: .*whole matrix"):
        question.check(lambda auc: auc.mean(), "GLIDE", strict=True)
    assert "❌" in capsys.readouterr().out


def test_every_question_has_a_typical_mistake_tested():
    tested = {(lesson, label) for lesson, label, _, _ in WRONG}
    assert tested == {(lesson.notebook[:2], q.label) for lesson, q in QUESTIONS if q.measure is None}


# The library shortcut for each question that lists the functions it is checked against: the answer a learner
# writes by calling the very function the checker compares with. Every one must fail, naming that function.
SHORTCUTS = [
    ("01", "q3", "def formats_warn(ai, nature):\n    import tempfile, pathlib\n"
                 "    return bool(dl.data.audit_dataset(pathlib.Path(tempfile.mkdtemp())).warnings)\n",
     "dl.data.audit_dataset"),
    ("01", "q4", "def block_ratio(grey):\n    return dl.data.blockiness(grey)\n", "dl.data.blockiness"),
    ("02", "q2", "val_transform = dl.data.build_transforms(IMG_SIZE)['val']", "dl.data.ImageTransform.__call__"),
    ("02", "q2", "def val_transform(image):\n    return dl.data.build_transforms(IMG_SIZE)['val'](image)\n",
     "dl.data.build_transforms"),
    ("02", "q4", "def pick_best(rows):\n    return dl.training.History(rows).best()['epoch']\noverfit_from = 5",
     "dl.training.History.best"),
    ("03", "q2", "def image_key(path):\n    return dl.models.file_digest(path)\n", "dl.models.file_digest"),
    ("03", "q3", "import torch\nfrom builders import clip_detector\n"
                 "def p_ai_from_score(score):\n"
                 "    return clip_detector().p_ai(torch.as_tensor(score)).numpy()\n", "dl.models.Detector.p_ai"),
    ("03", "q3", "def p_ai_from_score(score):\n    return dl.models.p_ai_from_score(score)\n",
     "dl.models.p_ai_from_score"),
    ("03", "q4", "def label_from_score(score):\n    return dl.labels.predicted_class((1 - score) / 2)\n",
     "dl.labels.predicted_class"),
    ("04", "q1", "def rates(y, p, t):\n    r = dl.evaluation.rates_at(y, p, t)\n    return r.tpr, r.tnr\n",
     "dl.evaluation.rates_at"),
    ("04", "q1", "def rates(y, p, t):\n    cm = dl.evaluation.confusion_at_threshold(y, p, t)\n"
                 "    return cm[0, 0] / cm[0].sum(), cm[1, 1] / cm[1].sum()\n", "dl.evaluation.confusion_at_threshold"),
    ("04", "q2", "def youden_threshold(y, p):\n    return dl.evaluation.choose_threshold(y, p, rule='youden').threshold\n"
                 "test_tpr = test_tnr = 0.5", "dl.evaluation.choose_threshold"),
    ("04", "q3", "def auc_by_pairs(y, p):\n    return dl.evaluation.roc_auc(y, p)\n", "dl.evaluation.roc_auc"),
    ("04", "q3", "from sklearn.metrics import roc_auc_score\n"
                 "def auc_by_pairs(y, p):\n    import sklearn.metrics\n"
                 "    return sklearn.metrics.roc_auc_score(1 - y, p)\n", "sklearn.metrics.roc_auc_score"),
    ("04", "q4", "def off_diagonal_mean(auc):\n"
                 "    return dl.workflows.CrossGenerator(['a'] * len(auc), ['b'] * len(auc), auc, auc, auc[0], '')"
                 ".off_diagonal()\nmost_general = 'GLIDE'", "dl.workflows.CrossGenerator.off_diagonal"),
    ("05", "q3", "def minmax(maps):\n    return dl.explain.normalise(maps)\n", "dl.explain.normalise"),
    ("05", "q4", "def hottest(cam, k):\n    return dl.explain.hottest_mask(cam, k)\n", "dl.explain.hottest_mask"),
]


@pytest.mark.parametrize(("lesson", "label", "code", "function"), SHORTCUTS,
                         ids=[f"{s[0]}-{s[1]}-{s[3]}" for s in SHORTCUTS])
def test_the_library_shortcut_fails_the_check_naming_the_function(lesson, label, code, function, capsys):
    result, out = _check(capsys, lesson, label, code)
    assert result.status == "wrong" and out.startswith("❌"), out
    assert f"calls {function}, the very function this check compares with" in out, out


def test_a_shortcut_through_the_defining_module_is_caught_too(capsys):
    """``dl.data.blockiness`` is re-exported from ``detectlib.data.audit``: the tripwire sits on both."""
    code = "def block_ratio(grey):\n    from detectlib.data.audit import blockiness\n    return blockiness(grey)\n"
    result, out = _check(capsys, "01", "q4", code)
    assert result.status == "wrong" and "calls dl.data.blockiness" in out, out


def test_a_shortcut_hidden_in_a_try_block_is_still_caught_and_the_library_is_restored(capsys):
    code = "def minmax(maps):\n    try:\n        return dl.explain.normalise(maps)\n    except Exception:\n" \
           "        return maps\n"
    result, out = _check(capsys, "05", "q3", code)
    assert result.status == "wrong" and "dl.explain.normalise" in out
    maps = gradcam_explorer.lesson05.q3.data()
    assert dl.explain.normalise(maps).max() == 1  # the tripwire is gone after the check


def test_every_question_checked_against_a_library_function_has_its_shortcut_tested():
    listed = {(lesson.notebook[:2], q.label, f"dl.{name.removeprefix('detectlib.')}" if name.startswith("detectlib.")
               else name) for lesson, q in QUESTIONS for name in q.forbidden}
    assert listed == {(lesson, label, function) for lesson, label, _, function in SHORTCUTS}


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_prediction_is_read_against_the_lessons_own_run(lesson, question, lesson_runs, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(lesson_runs))
    measured = question.measure()
    assert measured.choice == question.measured()
    right = question.check(measured.choice)
    assert right and measured.evidence in capsys.readouterr().out
    other = next(c for c in question.checker.choices if c != measured.choice)
    wrong = question.check(other)
    out = capsys.readouterr().out
    assert wrong.status == "wrong" and f"the run says {measured.choice!r}" in out and measured.evidence in out


@pytest.mark.parametrize(("lesson", "question"), PREDICTIONS, ids=[q.title for _, q in PREDICTIONS])
def test_a_prediction_before_the_lesson_ran_says_which_lesson_to_run(lesson, question, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    choice = next(iter(question.checker.choices))
    result = question.check(choice)
    out = capsys.readouterr().out
    assert result.status == "not attempted" and "run lesson 0" in out and str(tmp_path) in out, out


def test_the_inputs_are_fresh_copies_a_learner_cannot_spoil():
    lesson = gradcam_explorer.lesson05
    spoilt = lesson.q1.data()
    spoilt.gradients.zero_()
    assert lesson.q1.data().gradients.abs().sum() > 0
    assert build_dataset.lesson01.q1.data() == build_dataset.lesson01.q1.data()


def test_the_questions_keep_their_lessons_apart():
    with pytest.raises(AttributeError, match="no question 'q9'"):
        build_dataset.lesson01.q9  # noqa: B018
    assert [lesson.notebook for lesson in exercises.LESSONS.values()] == [
        p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
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
    for code in (student, teacher):
        imports = [src for src in code if "import detectlib" in src]  # a Colab setup cell may come before it
        assert imports == [f"import detectlib as dl\n\nex = dl.exercises.lesson{lesson.notebook[:2]}"]
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
