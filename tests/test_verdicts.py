"""Verdicts over seeds: one switch sets the seed, a word is said only when the seeds agree, and the lessons'
comparison code gives, on two different base seeds, either the same word or an "unstable" note."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import make_tree

from detectlib import config
from detectlib.config import get_profile
from detectlib.evaluation.verdicts import UNSTABLE, Repeated, compare_arms, repeat
from detectlib.workflows.seeded import run_name, seed_dir, train_over_seeds

SMOKE = get_profile("smoke")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_one_switch_sets_the_seed(monkeypatch):
    monkeypatch.delenv(config.SEED_ENV, raising=False)
    assert config.seed_of(None) == 0 and config.seed_of(7) == 7
    monkeypatch.setenv(config.SEED_ENV, "3")
    assert config.seed_of(None) == 3 and config.seed_of(5) == 5  # an explicit seed still wins
    assert config.seeds(3) == (3, 4, 5) and config.seeds(2, base=10) == (10, 11)
    monkeypatch.setenv(config.SEED_ENV, "one")
    with pytest.raises(ValueError, match="DETECTLIB_SEED"):
        config.seed_of(None)


def test_a_word_is_said_only_when_every_seed_agrees():
    agreed = Repeated("fit", (0, 1, 2), ("over-fits",) * 3, (0.3, 0.25, 0.35), "gap")
    assert agreed.stable and agreed.verdict == "over-fits"
    assert agreed.mean == pytest.approx(0.3) and agreed.spread == pytest.approx(0.05)
    assert agreed.describe().startswith("fit: over-fits (gap 0.300 ± 0.050 over seeds 0, 1, 2: 0.300, 0.250, 0.350)")
    split = Repeated("fit", (0, 1, 2), ("fits", "over-fits", "over-fits"), (0.05, 0.2, 0.3))
    assert not split.stable and split.verdict == f"{UNSTABLE}: 2 of 3 seeds say over-fits"
    tie = Repeated("fit", (4, 5), ("fits", "over-fits"), (0.0, 0.2))
    assert tie.verdict == f"{UNSTABLE}: 1 of 2 seeds say fits"  # a tie names the first seed's word
    with pytest.raises(ValueError, match="one word and one value per seed"):
        Repeated("fit", (0, 1), ("fits",), (0.1,))


def test_repeat_calls_the_judge_once_per_seed():
    seen = []

    def judge(seed: int) -> tuple[str, float]:
        seen.append(seed)
        return ("above" if seed % 2 else "below"), seed / 10

    result = repeat(judge, (1, 2, 3), "parity")
    assert seen == [1, 2, 3] and result.words == ("above", "below", "above") and result.values == (0.1, 0.2, 0.3)


def test_compare_arms_pairs_seeds_and_respects_the_margin():
    ahead = compare_arms([0.9, 0.8, 0.85], [0.7, 0.75, 0.8], ("pretrained", "scratch"), (0, 1, 2))
    assert ahead.verdict == "pretrained ahead" and ahead.values == pytest.approx((0.2, 0.05, 0.05))
    close = compare_arms([0.9, 0.8, 0.85], [0.7, 0.75, 0.8], ("pretrained", "scratch"), (0, 1, 2), margin=0.1)
    assert close.verdict == f"{UNSTABLE}: 2 of 3 seeds say within 0.1"
    fpr = compare_arms([0.1, 0.2], [0.5, 0.6], ("residual", "RGB"), (0, 1), better="lower", unit="FPR difference")
    assert fpr.verdict == "residual ahead" and fpr.values == pytest.approx((-0.4, -0.4))  # a lower rate is better
    with pytest.raises(ValueError, match="better must be"):
        compare_arms([0.1], [0.2], ("a", "b"), (0,), better="smaller")
    behind = compare_arms([0.5], [0.6], ("a", "b"), (0,))
    assert behind.verdict == "b ahead" and behind.spread == 0.0
    with pytest.raises(ValueError, match="one value per arm and seed"):
        compare_arms([0.5], [0.6, 0.7], ("a", "b"), (0, 1))


def test_the_first_seed_keeps_the_single_run_folder():
    out = Path("models/residual")
    assert seed_dir(out, 4, first=4) == out and seed_dir(out, 5, first=4) == Path("models/residual_seed5")


def _fit_verdicts(tree: Path, out: Path, base: int) -> tuple[str, str]:
    runs = train_over_seeds({"a": {}, "b": {"lr": 1e-2}}, tree, config.seeds(2, base=base),
                            {"a": out / "a", "b": out / "b"}, profile=SMOKE, epochs=1, batch_size=8)
    assert set(runs.checkpoints()) == {run_name(arm, s) for arm in "ab" for s in runs.seeds}
    assert all(path.is_file() for path in runs.checkpoints().values())
    return runs.fit("a").verdict, runs.compare("a", "b").verdict


def test_the_lessons_verdict_code_agrees_across_base_seeds_or_says_unstable(tmp_path):
    tree = make_tree(tmp_path / "data" / "GEN", n_train=6, size=32)
    first = _fit_verdicts(tree, tmp_path / "s0", base=0)
    again = _fit_verdicts(tree, tmp_path / "s0-again", base=0)
    assert first == again  # the same seeds repeat exactly
    other = _fit_verdicts(tree, tmp_path / "s1", base=1)
    for one, two in zip(first, other, strict=True):
        assert one == two or UNSTABLE in (one.split(":")[0], two.split(":")[0]), (one, two)


def test_a_run_stuck_at_the_loss_of_a_coin_learned_nothing():
    from detectlib.training.loop import History

    stuck = History([{"epoch": 1, "train_loss": 0.70}, {"epoch": 2, "train_loss": 0.6935}])
    learning = History([{"epoch": 1, "train_loss": 0.69}, {"epoch": 2, "train_loss": 0.41}])
    assert stuck.learned_nothing() and not learning.learned_nothing()


def test_seed_runs_finds_every_seed_an_arm_left(tmp_path):
    from detectlib.workflows.seeded import seed_runs

    tree = make_tree(tmp_path / "data" / "GEN", n_train=4, size=32)
    train_over_seeds({"a": {}}, tree, (5, 6), {"a": tmp_path / "m" / "a"}, profile=SMOKE, epochs=1)
    assert seed_runs(tmp_path / "m" / "a") == {5: tmp_path / "m" / "a" / "best.pth",
                                               6: tmp_path / "m" / "a_seed6" / "best.pth"}
    assert seed_runs(tmp_path / "m" / "nothing") == {}


def test_seed_runs_finds_a_clip_heads_seeds_by_its_file_name(tmp_path):
    """Lesson 03 trains the CLIP head once per seed (``clip_head.pth``, not ``best.pth``): lesson 05 judges them all."""
    from detectlib.training.clip_head import train_clip_head
    from detectlib.workflows.seeded import seed_runs

    tree = make_tree(tmp_path / "data" / "GEN", n_train=4, size=32)
    first = train_clip_head(tree, profile=SMOKE, epochs=1, seed=3, progress=False, use_cache=False,
                            out_dir=tmp_path / "m" / "clip_head").checkpoint_path
    train_clip_head(tree, profile=SMOKE, epochs=1, seed=4, progress=False, use_cache=False,
                    out_dir=seed_dir(first.parent, 4, 3))
    assert seed_runs(first.parent, first.name) == {3: first, 4: tmp_path / "m" / "clip_head_seed4" / "clip_head.pth"}
    assert seed_runs(first.parent) == {}  # no best.pth there


def test_judges_word_a_detector_and_repeat_over_its_seeds(tmp_path):
    """The control judge reads the gap between two false-positive rates; the WILD judge the group-bootstrap
    interval; judge_over_seeds loads each seed's checkpoint and collects the words."""
    import shutil

    from builders import constant_convnext

    from detectlib.evaluation.reports import control_judge
    from detectlib.models.detector import load_detector
    from detectlib.workflows.seeded import judge_over_seeds

    raw = tmp_path / "raw"
    make_tree(raw / "GEN", n_train=2, n_val=4, size=32)
    control = tmp_path / "control" / "val" / "nature"
    shutil.copytree(raw / "GEN" / "val" / "nature", control)
    judge = control_judge(raw, control.parent.parent)
    flags_all = load_detector(constant_convnext(tmp_path / "all.pth", 0.9))
    assert judge(flags_all) == ("flags upscaled photos no more often than plain ones", 0.0)
    runs = {3: constant_convnext(tmp_path / "a.pth", 0.9), 4: constant_convnext(tmp_path / "b.pth", 0.1)}
    repeated = judge_over_seeds(runs, judge, "constant", "FPR gap")
    assert repeated.seeds == (3, 4) and repeated.verdict == "flags upscaled photos no more often than plain ones"


def _head(auc: float, losses: tuple[float, ...] = (0.69, 0.40)):
    from types import SimpleNamespace

    from detectlib.training.loop import History

    return SimpleNamespace(metrics={"auc": auc}, history=History([{"epoch": i + 1, "train_loss": loss}
                                                                   for i, loss in enumerate(losses)]))


def test_an_encoder_comparison_reads_every_seed_and_names_a_stuck_head():
    from detectlib.workflows.seeded import EncoderComparison

    runs = {seed: {"clip": _head(0.9 + d), "clip_random": _head(0.5, (0.70, 0.6932)), "lite0": _head(0.89 + d)}
            for seed, d in ((0, 0.0), (1, 0.01), (2, -0.01))}
    study = EncoderComparison((0, 1, 2), ["clip", "clip_random", "lite0"], runs)
    assert study.auc("lite0") == pytest.approx([0.89, 0.90, 0.88])
    clip, random_line, lite0 = study.summary()
    assert clip == "clip: AUC-ROC 0.900 ± 0.010 over 3 seeds"
    assert "on 3 of 3 seeds its training loss stayed at ln 2" in random_line and "ln 2" not in lite0
    ahead, within = study.verdicts(["CLIP", "random", "Lite0"])
    assert ahead.verdict == "CLIP ahead" and within.verdict == "within 0.02"
    # a spec asked twice (smoke: the profile's CLIP is random already) is read twice, never dropped
    twice = EncoderComparison((0,), ["clip", "clip", "lite0"], {0: {"clip": _head(0.7), "lite0": _head(0.6)}})
    assert len(twice.summary()) == 3 and twice.verdicts(["a", "b", "c"])[0].verdict == "within 0.02"


def test_seeded_detectors_are_compared_column_by_column(monkeypatch, tmp_path):
    """Rows named '<arm>, seed <N>'; a lower control FPR wins; a column some row lacks gets no verdict."""
    from detectlib.evaluation import reports
    from detectlib.workflows.seeded import compare_seeded_detectors

    table = {"A, seed 0": (0.90, 0.10), "A, seed 1": (0.92, 0.20), "B, seed 0": (0.80, 0.50), "B, seed 1": (0.81, 0.60)}
    monkeypatch.setattr(reports, "compare_detectors", lambda checkpoints, root, control=None: [
        {"detector": name, "val auc": table[name][0], **({"control fpr": table[name][1]} if control else {})}
        for name in checkpoints])
    arms = {"A": {0: tmp_path / "a0", 1: tmp_path / "a1"}, "B": {0: tmp_path / "b0", 1: tmp_path / "b1"}}
    rows, (auc, fpr) = compare_seeded_detectors(arms, tmp_path, control=tmp_path, names=("arm A", "arm B"))
    assert [row["detector"] for row in rows] == list(table)
    assert auc.verdict == "arm A ahead" and fpr.verdict == "arm A ahead" and fpr.values == pytest.approx([-0.4, -0.4])
    _, verdicts = compare_seeded_detectors(arms, tmp_path)
    assert [v.verdict for v in verdicts] == ["A ahead"]  # no control: the FPR column is absent from every row
