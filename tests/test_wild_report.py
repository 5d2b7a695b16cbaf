"""WILD v2's numbers and their record: the group bootstrap interval (why groups, not images), per-category and
category-balanced AUCs, one detector's ``wild.json`` entry and the file's schema, the words read off an entry, and
``evaluate_on_wild`` end to end on a hand-made WILD folder (``test_wild_eval.make_wild``) with tiny detectors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from builders import clip_detector, constant_convnext
from sklearn.metrics import roc_auc_score
from test_wild_eval import GENERATORS, N_AI, N_REAL, PHOTOS, make_wild

from detectlib.config import CLASSES, get_paths
from detectlib.data import wild
from detectlib.evaluation import metrics, wild_report
from detectlib.evaluation.scoring import Scores, WildScores
from detectlib.models.detector import load_detector
from detectlib.workflows.wild_eval import evaluate_on_wild


def weak_detector(n_ai: int, n_real: int, shift: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (ai = 0 first) and p(ai) of a weak detector: fakes score a little higher."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_ai, int), np.ones(n_real, int)]
    p = 1 / (1 + np.exp(-np.r_[rng.normal(shift, 1, n_ai), rng.normal(0, 1, n_real)]))
    return y, p


def image_bootstrap(y: np.ndarray, p: np.ndarray, n_boot: int = 400, seed: int = 1) -> tuple[float, float]:
    """The naive interval: resample images (as if each were an independent draw), 95 % percentile."""
    rng = np.random.default_rng(seed)
    values = []
    while len(values) < n_boot:
        i = rng.integers(len(y), size=len(y))
        if np.unique(y[i]).size == 2:
            values.append(roc_auc_score(y[i] == 0, p[i]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def width(ci: tuple[float, float]) -> float:
    return ci[1] - ci[0]


# ------------------------------------------------------------------------------------- group bootstrap
def test_group_bootstrap_is_seeded_and_contains_the_point_auc():
    y, p = weak_detector(40, 50)
    groups = [f"g{i // 3}" for i in range(len(y))]  # groups of three, some holding both classes
    ci = metrics.group_bootstrap_ci(y, p, groups, n_boot=300, seed=4)
    assert ci == metrics.group_bootstrap_ci(y, p, groups, n_boot=300, seed=4)
    assert ci != metrics.group_bootstrap_ci(y, p, groups, n_boot=300, seed=5)
    auc = roc_auc_score(y == 0, p)
    assert metrics.roc_auc(y, p) == pytest.approx(auc)
    assert ci[0] < auc < ci[1] and 0.0 <= ci[0] and ci[1] <= 1.0
    narrow = metrics.group_bootstrap_ci(y, p, groups, n_boot=300, level=0.5, seed=4)
    assert ci[0] < narrow[0] < narrow[1] < ci[1]  # a lower level gives a narrower interval inside the wider one
    accuracy = metrics.group_bootstrap_ci(y, p, groups, statistic=metrics.accuracy, n_boot=300)
    assert accuracy[0] <= metrics.accuracy(y, p) <= accuracy[1]


def test_singleton_groups_give_the_image_level_bootstrap():
    y, p = weak_detector(100, 100)
    group = metrics.group_bootstrap_ci(y, p, [str(i) for i in range(len(y))], n_boot=400)
    image = image_bootstrap(y, p)
    assert group == pytest.approx(image, abs=0.03)


def test_duplicates_widen_the_image_interval_back_only_when_groups_are_resampled():
    """Each image five times in its own group: no new information, so the group interval stays as wide as on the
    de-duplicated images, while an image bootstrap believes it has 5x the data and is far too narrow."""
    y, p = weak_detector(30, 30)
    dedup = metrics.group_bootstrap_ci(y, p, [str(i) for i in range(len(y))], n_boot=400)
    y5, p5 = np.repeat(y, 5), np.repeat(p, 5)
    groups5 = np.repeat([str(i) for i in range(len(y))], 5)
    grouped = metrics.group_bootstrap_ci(y5, p5, groups5, n_boot=400)
    naive = image_bootstrap(y5, p5)
    assert width(grouped) == pytest.approx(width(dedup), rel=0.15)
    assert width(naive) < 0.6 * width(grouped)  # about 1/sqrt(5) of it
    auc = roc_auc_score(y5 == 0, p5)
    assert grouped[0] < auc < grouped[1]


def test_group_bootstrap_without_both_classes_is_nan():
    low, high = metrics.group_bootstrap_ci([1, 1, 1, 1], [0.2, 0.4, 0.6, 0.8], ["a", "a", "b", "c"], n_boot=50)
    assert math.isnan(low) and math.isnan(high)
    low, high = metrics.group_bootstrap_ci([], [], [], n_boot=50)
    assert math.isnan(low) and math.isnan(high)


# ------------------------------------------------------------------------------------------- categories
def test_category_aucs_match_scikit_learn_and_skip_one_class_categories():
    rng = np.random.default_rng(2)
    cats = np.array(["people"] * 30 + ["landscape"] * 25 + ["indoor"] * 20 + ["art"] * 10)
    y = np.r_[rng.integers(0, 2, 75), np.zeros(10, int)]  # art: fakes only
    y[[0, 1, 30, 31, 55, 56]] = [0, 1, 0, 1, 0, 1]  # every other category surely holds both classes
    p = np.clip(rng.normal(0.5, 0.2, len(y)) + 0.2 * (y == 0), 0, 1)
    aucs = metrics.category_aucs(y, p, cats)
    assert set(aucs) == {"people", "landscape", "indoor"}
    for cat, auc in aucs.items():
        mask = cats == cat
        assert auc == pytest.approx(roc_auc_score(y[mask] == 0, p[mask]))
    assert metrics.balanced_auc(y, p, cats) == pytest.approx(np.mean(list(aucs.values())))
    assert math.isnan(metrics.balanced_auc([0, 0, 1], [0.1, 0.2, 0.3], ["art", "art", "people"]))
    assert metrics.category_aucs([0, 0, 1], [0.1, 0.2, 0.3], ["art", "art", "people"]) == {}


def test_balanced_auc_sees_through_content_that_tells_the_classes_apart():
    """Fakes are mostly portraits, photos mostly landscapes, and the detector only recognises portraits: pooled it
    looks good, within each category it is a coin toss."""
    rng = np.random.default_rng(0)
    cats = np.array(["people"] * 500 + ["landscape"] * 500)
    y = np.r_[np.zeros(400, int), np.ones(100, int), np.zeros(100, int), np.ones(400, int)]
    p = np.r_[rng.uniform(0.5, 1, 500), rng.uniform(0, 0.5, 500)]  # portrait-ness, blind to the class
    pooled = roc_auc_score(y == 0, p)
    assert pooled > 0.75 and metrics.roc_auc(y, p) == pytest.approx(pooled)
    assert metrics.balanced_auc(y, p, cats) == pytest.approx(0.5, abs=0.06)
    assert all(abs(a - 0.5) < 0.08 for a in metrics.category_aucs(y, p, cats).values())


# ------------------------------------------------------------------------------------- entries and file
def hand_scores(y, p, categories, groups, root: Path) -> WildScores:
    y, p = np.asarray(y, int), np.asarray(p, float)
    paths = [root / f"{i}.jpg" for i in range(len(y))]
    images = [wild.WildImage(path=path, label=int(label), generator="g", family="f", year=None, group=group,
                             category=cat, split="test") for path, label, cat, group in
              zip(paths, y, categories, groups, strict=True)]
    return WildScores(Scores(y, p, paths, "test"), images)


def test_wild_entry_writes_the_schema_and_round_trips(tmp_path):
    y, p = weak_detector(20, 24, shift=1.5, seed=3)
    cats = ["people", "landscape"] * 22
    cats[:4] = ["art"] * 4  # fakes only: no AUC of its own
    groups = [f"g{i // 2}" for i in range(len(y))]
    ws = hand_scores(y, p, cats, groups, tmp_path)
    content = hand_scores(y, np.full(len(y), 0.5), cats, groups, tmp_path)
    ckpt = tmp_path / "models" / "x" / "file.pth"
    entry = wild_report.wild_entry("ConvNeXt", ckpt, "convnext", ws, 0.5, content=content, root=tmp_path)
    assert entry["name"] == "ConvNeXt" and entry["kind"] == "convnext"
    assert entry["checkpoint"] == "models/x/file.pth"
    assert isinstance(entry["auc"], float) and entry["auc"] == pytest.approx(roc_auc_score(y == 0, p))
    assert isinstance(entry["ci"], list) and len(entry["ci"]) == 2 and all(isinstance(v, float) for v in entry["ci"])
    assert entry["ci"][0] <= entry["auc"] <= entry["ci"][1]
    assert entry["band"] == wild_report.ci_band(entry["ci"]) == "above"
    assert isinstance(entry["balanced_auc"], float)
    assert set(entry["per_category"]) == {"people", "landscape"}
    assert all(isinstance(v, float) for v in entry["per_category"].values())
    assert entry["balanced_auc"] == pytest.approx(np.mean(list(entry["per_category"].values())))
    assert (entry["n_ai"], entry["n_real"], entry["n_groups"]) == (20, 24, 22)
    assert all(isinstance(entry[k], int) for k in ("n_ai", "n_real", "n_groups"))
    rates = metrics.rates_at(y, p, 0.5)
    assert (entry["threshold"], entry["tpr"], entry["fpr"]) == (0.5, rates.tpr, rates.fpr)
    assert entry["content_auc"] == 0.5 and entry["content_balanced_auc"] == 0.5
    outside = {**entry, "name": "elsewhere", "checkpoint": str((tmp_path.parent / "elsewhere.pth").resolve())}

    built = {"images": 44, "per_split_category": {"test": {"people": {"ai": 8, "nature": 12}}}}
    path = wild_report.write_wild_json([entry, outside], built, tmp_path / "results" / "wild.json",
                                       leave_generators_out={"mean auc": 0.61})
    raw = json.loads(path.read_text())  # plain JSON, read by any tool
    assert set(raw) == {"detectors", "built", "leave_generators_out"}
    assert raw["detectors"] == [entry, outside] and raw["built"] == built
    report = wild_report.read_wild_json(path)
    assert report == raw
    assert wild_report.read_wild_json(tmp_path / "missing.json") is None

    assert wild_report.entry_for(report, ckpt, root=tmp_path) == entry
    assert wild_report.entry_for(report, tmp_path / "models" / "y" / ".." / "x" / "file.pth", root=tmp_path) == entry
    assert wild_report.entry_for(report, tmp_path.parent / "elsewhere.pth", root=tmp_path) == outside
    assert wild_report.entry_for(report, tmp_path / "models" / "other.pth", root=tmp_path) is None
    assert wild_report.entry_for(None, ckpt, root=tmp_path) is None


def hand_entry(ci, auc, **extra) -> dict:
    return {"name": "CLIP", "auc": auc, "ci": list(ci), "balanced_auc": auc - 0.02, "n_ai": 120, "n_real": 130,
            "n_groups": 90, "threshold": 0.5, "tpr": 0.8, "fpr": 0.125, **extra}


def test_ci_band_reads_the_interval_against_one_half():
    assert wild_report.ci_band((0.45, 0.62)) == "chance"
    assert wild_report.ci_band((0.5, 0.7)) == "chance"  # touching 0.5 is covering it
    assert wild_report.ci_band((0.52, 0.7)) == "above"
    assert wild_report.ci_band((0.2, 0.49)) == "below"
    assert wild_report.ci_band((float("nan"), float("nan"))) == "unmeasurable"


def test_trust_line_gives_the_rates_and_warns_at_chance():
    chance = wild_report.trust_line(hand_entry((0.44, 0.63), 0.54))
    assert "80%" in chance and "12%" in chance and "chance" in chance and "0.54" in chance
    good = wild_report.trust_line(hand_entry((0.81, 0.9), 0.86))
    assert "80%" in good and "12%" in good and "chance" not in good
    assert "worse than chance" in wild_report.trust_line(hand_entry((0.2, 0.4), 0.3))
    assert "not measured" in wild_report.trust_line(None)


def test_describe_entry_wording_follows_the_band():
    chance = wild_report.describe_entry(hand_entry((0.44, 0.63), 0.54, content_auc=0.55))
    assert chance.startswith("CLIP: AUC 0.540 [0.440, 0.630], at chance")
    assert "better" not in chance and "1/8" not in chance and "120 AI images and 130 photos in 90 groups" in chance
    better = wild_report.describe_entry(hand_entry((0.75, 0.85), 0.8, content_auc=0.65))
    assert "better than chance" in better and "category-balanced 0.780" in better
    assert "at 1/8 size (content only) 0.650" in better and "50% of its margin" in better
    worse = wild_report.describe_entry(hand_entry((0.2, 0.4), 0.3))
    assert "worse than chance" in worse and "better" not in worse
    unknown = wild_report.describe_entry(hand_entry((float("nan"), float("nan")), 0.6))
    assert "not measurable" in unknown


# ---------------------------------------------------------------------------------------- end to end
@pytest.fixture
def wild_dir(tmp_path, one_thread):
    return make_wild(tmp_path / "wild")


def test_built_summary_of_a_folder_without_its_build_record(wild_dir):
    built = wild_report.built_summary(wild_dir)
    images = wild.load_wild(wild_dir)
    assert built["images"] == N_AI + N_REAL == len(images)
    assert built["groups"] == len(GENERATORS) + len(PHOTOS) - 1  # the lake photos share gpt_d's group
    assert built["version"] is None and built["wild_size"] is None and built["history"] == {}
    assert built["missing"] == []
    cells = built["per_split_category"]
    assert set(cells) == {"val", "test"} and set(cells["test"]) == {"people", "landscape", "art"}
    assert cells["test"]["art"] == {"ai": 2, "nature": 0}
    for split, cats in cells.items():
        for cat, counts in cats.items():
            for cls, n in counts.items():
                assert n == sum(im.split == split and im.category == cat and CLASSES[im.label] == cls
                                for im in images)
    assert sum(n for cats in cells.values() for counts in cats.values() for n in counts.values()) == len(images)
    json.dumps(built)  # ready for wild.json
    (wild_dir / wild.SETTINGS).write_text(json.dumps({"settings": {"version": 2, "wild_size": 32},
                                                      "history": {"preview_webp_quality": 80}, "missing": []}))
    recorded = wild_report.built_summary(wild_dir)
    assert (recorded["version"], recorded["wild_size"]) == (2, 32)
    assert recorded["history"] == {"preview_webp_quality": 80}


def test_evaluate_on_wild_reports_the_test_groups_only(wild_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path / "repo"))  # the embedding cache and the root, in tmp
    bootstrap = metrics.group_bootstrap_ci  # the same interval on 200 resamples, for time
    monkeypatch.setattr(metrics, "group_bootstrap_ci", lambda *a, **k: bootstrap(*a, **{**k, "n_boot": 200}))
    root = get_paths().root
    assert root == (tmp_path / "repo").resolve()
    constant = constant_convnext(tmp_path / "outside" / "c.pth", 0.7)
    detectors = {"CLIP": clip_detector(seed=3), "ConvNeXt": load_detector(constant)}
    checkpoints = {"CLIP": root / "models" / "x" / "file.pth", "ConvNeXt": constant}
    run = evaluate_on_wild(detectors, checkpoints, {"CLIP": 0.45}, wild_dir)
    test = [im for im in wild.load_wild(wild_dir) if im.split == "test"]
    n_ai = sum(im.label == 0 for im in test)
    assert [e["name"] for e in run.entries] == ["CLIP", "ConvNeXt"]
    for name, entry in zip(detectors, run.entries, strict=True):
        assert run.scores[name].scores.paths == run.content[name].scores.paths == [im.path for im in test]
        assert entry["n_ai"] + entry["n_real"] == len(test) and entry["n_ai"] == n_ai
        assert entry["n_groups"] == len({im.group for im in test})
        assert set(entry["per_category"]) == {"people", "landscape"}  # art: fakes only
        assert 0.0 <= entry["content_auc"] <= 1.0 and "content_balanced_auc" in entry
    clip, convnext = run.entry("CLIP"), run.entry("ConvNeXt")
    assert clip["checkpoint"] == "models/x/file.pth" and clip["kind"] == "clip_head" and clip["threshold"] == 0.45
    assert convnext["checkpoint"] == str(constant.resolve()) and Path(convnext["checkpoint"]).is_absolute()
    assert clip["auc"] == pytest.approx(roc_auc_score(run.scores["CLIP"].scores.y_true == 0,
                                                      run.scores["CLIP"].scores.p_ai))
    assert not np.allclose(run.content["CLIP"].scores.p_ai, run.scores["CLIP"].scores.p_ai)  # the shrink acts
    # every p(ai) is 0.7: chance, every fake caught and every photo flagged at the default threshold 0.5
    assert convnext["auc"] == 0.5 and convnext["band"] == "chance" and convnext["threshold"] == 0.5
    assert (convnext["tpr"], convnext["fpr"]) == (1.0, 1.0)
    assert "coin toss" in wild_report.trust_line(convnext)

    path = wild_report.write_wild_json(run.entries, wild_report.built_summary(wild_dir))
    assert path == root / ".smoke" / "results" / "wild.json"
    report = wild_report.read_wild_json()
    assert wild_report.entry_for(report, checkpoints["CLIP"]) == clip
    assert wild_report.entry_for(report, constant) == convnext

    val = evaluate_on_wild({"ConvNeXt": detectors["ConvNeXt"]}, checkpoints, {}, wild_dir, split="val",
                           content_control=False)
    val_images = [im for im in wild.load_wild(wild_dir) if im.split == "val"]
    assert val.entries[0]["n_ai"] + val.entries[0]["n_real"] == len(val_images)
    assert "content_auc" not in val.entries[0] and val.content == {}


def _robustness_rows(base: np.ndarray, edits: dict[str, np.ndarray], y: np.ndarray, groups: list[str]) -> list[dict]:
    from detectlib.evaluation import metrics

    def row(name: str, kind: str, p: np.ndarray) -> dict:
        return {"perturbation": name, "kind": kind, "auc": metrics.roc_auc(y, p),
                "scored": {f"im{i}.png": (int(y[i]), groups[i], float(p[i])) for i in range(len(y))}}
    return [row("original", "none", base), *(row(name, name.split()[0].lower(), p) for name, p in edits.items())]


def test_read_robustness_pairs_each_edit_with_the_same_images():
    """A blur that scrambles the scores is a change whose interval leaves 0 out; a JPEG that moves every score by
    a hair is not, even though a Hanley–McNeil band per AUC would call both alike on so few images."""
    from detectlib.evaluation import metrics
    from detectlib.workflows.wild_eval import read_robustness

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    groups = [f"g{i // 2}" for i in range(len(y))]  # pairs of images share a group
    base = np.clip(np.where(y == 0, 0.7, 0.3) + rng.normal(0, 0.2, len(y)), 0, 1)
    jpeg = np.clip(base + rng.normal(0, 0.01, len(y)), 0, 1)
    blur = rng.uniform(0, 1, len(y))
    text = read_robustness(_robustness_rows(base, {"JPEG q=75": jpeg, "blur σ=1": blur}, y, groups))
    assert text.startswith("on 80 images from 40 groups, the changes whose 95 % interval leaves 0 out: blur σ=1")
    assert "JPEG" not in text
    low, high = metrics.auc_change_ci(y, base, jpeg, groups)
    assert low < 0 < high  # a hair's change: its interval covers 0
    assert metrics.auc_change_ci(y, base, base, groups) == (0.0, 0.0)
    calm = read_robustness(_robustness_rows(base, {"JPEG q=75": jpeg}, y, groups))
    assert calm.startswith("no edit moved its AUC beyond the noise of 80 images from 40 groups") and "JPEG q=75" in calm


def test_the_paired_interval_is_narrower_than_two_separate_ones():
    """Cross-check against the unpaired view: the change's interval is narrower than the spread of the
    difference of two independent AUC intervals on the same images (their noise is shared)."""
    from detectlib.evaluation import metrics

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    groups = [str(i) for i in range(len(y))]
    before = np.clip(np.where(y == 0, 0.6, 0.4) + rng.normal(0, 0.25, len(y)), 0, 1)
    after = np.clip(before + rng.normal(0, 0.05, len(y)), 0, 1)
    low, high = metrics.auc_change_ci(y, before, after, groups, n_boot=400)
    a_low, a_high = metrics.group_bootstrap_ci(y, before, groups, n_boot=400)
    b_low, b_high = metrics.group_bootstrap_ci(y, after, groups, n_boot=400)
    assert high - low < 0.5 * ((a_high - a_low) + (b_high - b_low))
    assert low <= metrics.roc_auc(y, after) - metrics.roc_auc(y, before) <= high


def test_a_training_free_detector_says_it_learned_nothing():
    from detectlib.evaluation.reports import training_data

    data = training_data({"kind": "training_free", "tuned_on": "WILD v2 validation groups: 80 images",
                          "config": {"profile": "demo"}})
    assert data.text.startswith("nothing (training-free)") and "80 images" in data.text and data.real_world


def test_read_sweep_compares_settings_image_by_image(tmp_path):
    """A setting whose scores are the best's plus a hair is within the noise, one that ranks the images at random
    is not; the best at the largest σ sits at the grid's edge, and in the middle it does not."""
    from detectlib.evaluation import metrics
    from detectlib.workflows.wild_eval import TrainingFreeTuning, read_sweep

    rng = np.random.default_rng(2)
    labels = [0] * 60 + [1] * 60
    groups = [f"g{i}" for i in range(120)]
    good = np.where(np.asarray(labels) == 0, 0.3, 0.1) + rng.normal(0, 0.08, 120)  # a larger drift for ai
    scores = [rng.uniform(0, 0.4, 120), good + rng.normal(0, 0.005, 120), good]

    def rows(sigmas):  # the AUC of d with ai (label 0) as the positive class
        return [{"sigma": s, "k": 1, "layer": "pooler", "auc": metrics.roc_auc(labels, np.clip(d, 0, 1))}
                for s, d in zip(sigmas, scores, strict=True)]

    edge = read_sweep(TrainingFreeTuning(tmp_path / "x.json", rows((0.01, 0.1, 1.0)), {}, labels, groups, scores))
    assert "at σ=1.0" in edge and "edge of the grid (0.01–1.0)" in edge
    assert "1 of the other 2 settings are within the noise of 120 validation images in 120 groups" in edge
    inside = read_sweep(TrainingFreeTuning(tmp_path / "x.json", rows((0.01, 1.0, 0.1)), {}, labels, groups, scores))
    assert "at σ=0.1" in inside and "edge of the grid" not in inside and "1 of the other 2" in inside

