"""Every detector on WILD: scoring a WILD v2 build (all of it or one split), the threshold from validation, the
per-generator table, the leave-generators-out protocol (whole model families and whole groups held out), the
content control, the AUC's noise band, and what the probe says of a detector that only met the kit's own fakes.
Tiny random models, hand-made WILD folders."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import clip_detector, constant_convnext
from PIL import Image
from sklearn.metrics import roc_auc_score

from detectlib import evaluate
from detectlib.config import CLASSES
from detectlib.data import wild
from detectlib.evaluation import metrics, reports, robustness, scoring
from detectlib.evaluation.predictions import score_paths
from detectlib.models.detector import load_detector
from detectlib.models.encoders import make_encoder
from detectlib.workflows import transfer

# template: (model family, release year, style, categories of its images, split of its group); two templates of one
# family (held out together), and an 'art' category that only the AI side has
GENERATORS = {"flux_a": ("FLUX.1", 2024, "photoreal", ("people", "landscape"), "test"),
              "flux_e": ("FLUX.1", 2024, "illustration", ("art", "people"), "val"),
              "sdxl_b": ("SDXL", 2023, "poster", ("art", "landscape"), "test"),
              "qwen_c": ("Qwen-Image", 2025, "photoreal", ("landscape", "people"), "val"),
              "gpt_d": ("GPT-image", 2025, "illustration", ("people", "art"), "test")}
# photo: (images in its group, category, split, group); lake's photos were merged with the gpt_d template's group
# (a near-duplicate across the classes), so holding out either must keep the other out of training
PHOTOS = {"mate_lake": (3, "landscape", "test", "gpt_d"),
          "plasma_face": (2, "people", "test", "plasma_face"),
          "gnome_hill": (1, "landscape", "val", "gnome_hill"),
          "lomiri_portrait": (2, "people", "val", "lomiri_portrait")}
PER_GENERATOR = 2
N_AI, N_REAL = PER_GENERATOR * len(GENERATORS), sum(n for n, *_ in PHOTOS.values())
FAMILIES = {family for family, *_ in GENERATORS.values()}


def make_wild(root: Path, per_generator: int = PER_GENERATOR, seed: int = 0) -> Path:
    """A WILD v2 build by hand: ``ai``/``nature`` JPEGs (32 px) and a ``manifest.csv`` in ``wild``'s columns, with
    categories, groups and a val/test split per group; fakes lean red, photos green, so a head has something to
    learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in CLASSES:
        (root / name).mkdir(parents=True)
    units = [(0, gen, i) for gen in GENERATORS for i in range(per_generator)]
    units += [(1, photo, i) for photo, (n, *_) in PHOTOS.items() for i in range(n)]
    for label, unit, i in units:
        pixels = rng.integers(0, 256, (32, 32, 3))
        pixels[..., label] = pixels[..., label] // 4 + 190
        file = f"{CLASSES[label]}/{unit}-{i}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(root / file, quality=90)
        if label == 0:
            family, year, style, categories, split = GENERATORS[unit]
            row = {"category": categories[i % len(categories)], "style": style, "generator": unit, "model": family,
                   "family": family, "release_year": year, "group": unit, "split": split, "use": "show",
                   "history_side": 400}
        else:
            _, category, split, group = PHOTOS[unit]
            row = {"category": category, "style": "snapshot", "generator": unit.split("_")[0], "model": "",
                   "family": "photo", "release_year": "", "group": group, "split": split,
                   "use": "measure" if i else "show", "history_side": 380 + 10 * i}
        rows.append({"file": file, "label": CLASSES[label], **row, "source": f"test:{file}"})
    with open(root / wild.MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, wild.MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def wild_dir(tmp_path, one_thread):
    return make_wild(tmp_path / "wild")


def test_hanley_mcneil_standard_error_matches_a_bootstrap():
    """The analytic band agrees with a bootstrap over images (within 25 %), for a weak and a strong detector."""
    rng = np.random.default_rng(0)
    for shift in (0.3, 1.5):
        y = np.r_[np.zeros(60, int), np.ones(90, int)]
        p = 1 / (1 + np.exp(-np.r_[rng.normal(shift, 1, 60), rng.normal(0, 1, 90)]))  # ai = 0 scores higher
        auc = metrics.roc_auc(y, p)
        assert auc == pytest.approx(roc_auc_score(y == 0, p))
        boot = []
        for _ in range(400):
            i = np.r_[rng.choice(60, 60), 60 + rng.choice(90, 90)]
            boot.append(metrics.roc_auc(y[i], p[i]))
        assert metrics.auc_standard_error(auc, 60, 90) == pytest.approx(np.std(boot), rel=0.25)


def _separated(n: int, shift: float, groups_per_class: int, seed: int = 0):
    """``n`` images per class, AI scores ``shift`` higher on average, in ``groups_per_class`` groups per class whose
    images share their group's score offset (crops of one photo)."""
    rng = np.random.default_rng(seed)
    group = np.r_[np.arange(n) % groups_per_class, groups_per_class + np.arange(n) % groups_per_class]
    offset = rng.normal(0, 1, 2 * groups_per_class)[group]
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    p = 1 / (1 + np.exp(-(offset + rng.normal(0, 0.3, 2 * n) + shift * (y == 0))))
    return y, p, [f"g{g}" for g in group]


def test_describe_auc_reads_the_number_against_the_noise_of_its_groups():
    y, p, groups = _separated(200, 0.6, 100)
    assert reports.describe_auc(y, p, groups).startswith("weak, but better than chance")
    # as many images, but in 3 photos per class: the interval widens to cover 0.5
    y3, p3, groups3 = _separated(200, 0.6, 3, seed=3)
    assert reports.auc_band(y3, p3, groups3) == "chance"
    assert reports.describe_auc(y3, p3, groups3).startswith("no better than chance")
    assert "from 6 source groups" in reports.describe_auc(y3, p3, groups3)
    assert reports.auc_band(y3, p3, [str(i) for i in range(len(y3))]) == "above"  # the same scores, images as groups
    y, p, groups = _separated(100, -3.0, 50)
    assert reports.describe_auc(y, p, groups).startswith("worse than chance")
    y, p, groups = _separated(100, 8.0, 50)
    assert reports.describe_auc(y, p, groups).startswith("strong")
    assert reports.describe_auc([0, 0], [0.2, 0.3], ["a", "b"]) == "not measurable (one class missing)"


def test_score_wild_keeps_each_image_with_its_source(wild_dir, tmp_path):
    detector = load_detector(constant_convnext(tmp_path / "c.pth", 0.7))
    scored = scoring.score_wild(detector, wild_dir)
    assert len(scored.images) == len(scored.scores) == N_AI + N_REAL
    assert [im.path for im in scored.images] == scored.scores.paths
    assert scored.scores.y_true.tolist() == [im.label for im in scored.images]
    summary = scored.summary(threshold=0.5)  # every p(ai) is 0.7: all fakes caught, all photos flagged
    assert (summary["tpr"], summary["fpr"], summary["n_ai"]) == (1.0, 1.0, N_AI)
    assert scored.summary(threshold=0.8)["tpr"] == 0.0
    assert set(scored.tpr_by_generator(0.5)) == set(GENERATORS)
    assert scored.column("category")[:2] == ["people", "landscape"]  # flux_a's two images, in manifest order
    assert scored.column("group") == [im.group for im in scored.images]
    for split in ("val", "test"):  # one split only: its images, each with its own row, none of the other split
        part = scoring.score_wild(detector, wild_dir, split=split)
        images = [im for im in wild.load_wild(wild_dir) if im.split == split]
        assert [im.path for im in part.images] == part.scores.paths == [im.path for im in images]
        assert set(part.column("split")) == {split} and part.scores.split == split
        assert part.scores.y_true.tolist() == [im.label for im in images]


def test_per_generator_table_orders_by_year_and_ends_with_the_photos(wild_dir, tmp_path):
    low = load_detector(constant_convnext(tmp_path / "low.pth", 0.3))
    wild_scores = {"low": scoring.score_wild(low, wild_dir)}
    rows = reports.wild_generator_table(wild_scores, {"low": 0.2})
    assert [r["year"] for r in rows[:-1]] == sorted(r["year"] for r in rows[:-1])
    assert rows[-1]["generator"].startswith("real photos") and rows[-1]["n"] == N_REAL
    assert all(r["TPR low"] == 1.0 for r in rows[:-1]) and rows[-1]["TPR low"] == 1.0  # 0.3 >= 0.2: all flagged
    table = reports.wild_table(wild_scores, {"low": 0.5})
    assert table[0]["tpr"] == 0.0 and table[0]["fpr"] == 0.0 and "verdict" in table[0]


def test_validation_threshold_is_chosen_on_validation_scores():
    val = scoring.Scores(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.3, 0.1]), [Path(f"{i}") for i in range(4)])
    threshold = reports.validation_threshold(val)
    assert 0.3 < threshold <= 0.8


def test_leave_generators_out_holds_out_whole_families_and_whole_groups(wild_dir, monkeypatch):
    """Each split tests on every image of its held-out model families (both FLUX.1 templates together) and of its
    held-out photo groups, and trains on no image of a group that has a test image (the lake photos share the
    gpt_d template's group): what the head saw and what it was measured on are read off ``EmbeddedSet.take``."""
    from detectlib.models import features
    from detectlib.training import clip_head

    taken, trained = [], []
    take, train_head = features.EmbeddedSet.take, clip_head.train_head

    def recording_take(self, indices):
        part = take(self, indices)
        taken.append([Path(p) for p in part.paths])
        return part

    def recording_train_head(train, val, **kwargs):
        trained.append([Path(p) for p in train.paths])
        return train_head(train, val, **kwargs)

    monkeypatch.setattr(features.EmbeddedSet, "take", recording_take)
    monkeypatch.setattr(clip_head, "train_head", recording_train_head)
    encoder = make_encoder("clip-tiny-random")
    lgo = transfer.leave_generators_out(wild_dir, encoder=encoder, profile="smoke", repeats=6, held_out=0.5, epochs=2)
    images = {im.path: im for im in wild.load_wild(wild_dir)}
    assert len(lgo.splits) == len(trained) == 6 and lgo.images == "original"
    assert len(taken) == 2 * len(trained)  # per split: the training part, then the test part
    straddled = 0
    for split, train, test in zip(lgo.splits, taken[0::2], taken[1::2], strict=True):
        assert train == trained[split["split"]]
        assert len(split["held_out"]) == 2 and set(split["held_out"]) <= FAMILIES
        test_ai = {p for p in test if images[p].label == 0}
        assert test_ai == {p for p, im in images.items() if im.label == 0 and im.family in split["held_out"]}
        test_photo_groups = {images[p].group for p in test if images[p].label == 1}
        assert len(test_photo_groups) == 2  # half of the four photo groups, each whole:
        assert {p for p in test if images[p].label == 1} == {
            p for p, im in images.items() if im.label == 1 and im.group in test_photo_groups}
        test_groups = {images[p].group for p in test}
        assert not set(train) & set(test) and not {images[p].group for p in train} & test_groups
        assert set(train) == {p for p, im in images.items() if p not in test and im.group not in test_groups}
        assert (split["train images"], split["test ai"], split["test real"]) == (
            len(train), len(test_ai), len(test) - len(test_ai))
        straddled += split["train images"] + len(test) < len(images)  # a shared group left out of both sides
        assert 0.0 <= split["auc"] <= 1.0
        assert np.isnan(split["balanced auc"]) or 0.0 <= split["balanced auc"] <= 1.0
    assert straddled > 0
    assert len({tuple(s["held_out"]) for s in lgo.splits}) > 1  # the splits differ
    assert lgo.mean_auc == pytest.approx(np.mean([s["auc"] for s in lgo.splits]))


def test_content_control_encodes_the_perturbed_images_outside_the_cache(wild_dir, monkeypatch):
    encoder = make_encoder("clip-tiny-random")
    original = transfer.leave_generators_out(wild_dir, encoder=encoder, profile="smoke", repeats=2, epochs=1)
    content = transfer.leave_generators_out(wild_dir, encoder=encoder, profile="smoke", repeats=2, epochs=1,
                                            perturb=robustness.Perturbation("downscale", 0.125))
    assert content.images == "downscale x0.125" and original.images == "original"
    assert [s["held_out"] for s in content.splits] == [s["held_out"] for s in original.splits]  # same seeds
    with pytest.raises(ValueError, match="cache"):
        from detectlib.models.features import embed_samples

        embed_samples(encoder, [(im.path, im.label) for im in wild.load_wild(wild_dir)], wild_dir / "cache",
                      perturb=robustness.Perturbation("blur", 2))


def test_a_frozen_head_scores_the_same_through_the_cache(wild_dir, tmp_path):
    detector = clip_detector(seed=3)
    files = [im.path for im in wild.load_wild(wild_dir)] + [tmp_path / "missing.png"]
    with pytest.warns(UserWarning):
        direct = score_paths(detector, files)
    with pytest.warns(UserWarning):
        cached = score_paths(detector, files, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache").is_dir() and cached.paths == direct.paths and cached.kept == direct.kept
    assert [p for p, _ in cached.skipped] == [tmp_path / "missing.png"]
    np.testing.assert_allclose(cached.p_ai, direct.p_ai, atol=1e-5)
    again = score_paths(detector, files[:-1], cache_dir=tmp_path / "cache")  # read back, not recomputed
    np.testing.assert_allclose(again.p_ai, direct.p_ai, atol=1e-5)


def test_training_data_says_whether_a_score_on_a_real_image_means_anything():
    kit = reports.training_data({"config": {"profile": "demo", "data_dirs": ["data/raw/ALL_full"]}})
    assert kit.real_world is False and "kit's own fakes" in kit.text and "ALL_full" in kit.text
    assert reports.training_data({"config": {"profile": "full", "data_dir": "data/raw/ADM"}}).real_world is True
    assert reports.training_data({"format": "bare-state-dict"}).real_world is None


def test_probe_says_a_kit_trained_score_is_not_evidence(tmp_path):
    from detectlib.widgets import ImageProbe

    path = constant_convnext(tmp_path / "c.pth", 0.9)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {"profile": "smoke", "data_dir": str(tmp_path / "AE")}
    torch.save(ckpt, path)
    probe = ImageProbe({"ConvNeXt": load_detector(path)})
    probe.set_image(Image.new("RGB", (40, 40), "gray"), "grey.png")
    assert "Not evidence" in probe.scores.value and "kit&#x27;s own fakes" in probe.scores.value
    ckpt["config"] = {"profile": "full", "data_dir": str(tmp_path / "GenImage")}
    torch.save(ckpt, path)
    probe = ImageProbe({"ConvNeXt": load_detector(path)})
    probe.set_image(Image.new("RGB", (40, 40), "gray"), "grey.png")
    assert "Not evidence" not in probe.scores.value and "your data" in probe.scores.value


def test_evaluate_cli_reports_wild_at_the_validation_threshold(wild_dir, tmp_path, capsys):
    from builders import make_tree

    data = make_tree(tmp_path / "data")
    model = constant_convnext(tmp_path / "c.pth", 0.6)
    assert evaluate.main(["--model_path", str(model), "--data_dir", str(data), "--wild", str(wild_dir),
                          "--figure", str(tmp_path / "cm.png")]) == 0
    out = capsys.readouterr().out
    assert "WILD (" in out and f"{N_AI} AI images" in out and "ROC-AUC" in out and "real photos (FPR)" in out
    assert evaluate.main(["--model_path", str(model), "--data_dir", str(data), "--wild", str(tmp_path),
                          "--figure", str(tmp_path / "cm.png")]) == 2
    assert "no WILD set there" in capsys.readouterr().err


def test_compare_detectors_scores_validation_control_and_wild(wild_dir, tmp_path):
    from builders import make_tree

    raw = tmp_path / "raw"
    make_tree(raw / "GEN", size=32)
    control = tmp_path / "controls" / "BICUBIC"
    make_tree(control, n_train=1, n_val=3, size=32)
    shutil.rmtree(control / "val" / "ai")  # a control holds real photos only
    models = {"sure": constant_convnext(tmp_path / "a.pth", 0.9), "doubtful": constant_convnext(tmp_path / "b.pth", 0.2)}
    rows = reports.compare_detectors(models, raw, wild_dir=wild_dir, control=control)
    assert [r["detector"] for r in rows] == ["sure", "doubtful"]
    assert rows[0]["control fpr"] == 1.0 and rows[1]["control fpr"] == 0.0  # 0.9 flags every photo, 0.2 none
    assert all(r["val accuracy"] == 0.5 and r["wild verdict"].startswith("no better than chance") for r in rows)
    assert "control fpr" not in reports.compare_detectors(models, raw)[0]


def test_wild_judge_words_the_test_groups_interval(wild_dir, tmp_path):
    constant = load_detector(constant_convnext(tmp_path / "c.pth", 0.7))
    assert reports.wild_judge(wild_dir)(constant) == ("no better than chance", 0.5)
