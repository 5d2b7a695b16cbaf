"""detectlib.evaluate: folder scoring, tables, honest thresholds, robustness, cross-generator, the reference's CLI.

Most tests use a detector whose answer is known by construction: a "colour" model that calls red-tinted images ai
and green-tinted ones real, so every number below can be checked by hand. The CLI tests use checkpoints with a
constant answer (see ``test_infer``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from builders import constant_clip_head, constant_convnext
from PIL import Image
from torch import nn

from detectlib import evaluate, labels
from detectlib.config import CLASSES
from detectlib.data import layout
from detectlib.data.images import SkippedFileWarning
from detectlib.data.layout import LayoutError
from detectlib.data.transforms import ImageTransform
from detectlib.evaluation import metrics, reports, robustness, scoring
from detectlib.models.classifier import TimmDetector
from detectlib.workflows import bench, transfer


class ColourModel(nn.Module):
    """Logits (mean red, mean green) x 10: red-tinted images are ai, green-tinted ones nature."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2))], dim=1) * self.scale


def colour_detector() -> TimmDetector:
    return TimmDetector(ColourModel().eval(), ImageTransform(32, mean=(0, 0, 0), std=(1, 1, 1)))


def tinted(folder, n: int, channel: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 120, (32, 32, 3))
        pixels[..., channel] += 120
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")


def make_generator(root, n: int = 4, seed: int = 0):
    """``root/{train,val}/{ai,nature}`` with red ai images and green nature images."""
    for k, split in enumerate(("train", "val")):
        for channel, name in enumerate(CLASSES):
            tinted(root / split / name, n, channel, seed + 10 * k + channel)
    return root


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for seed, name in enumerate(("AAA", "BBB", "CCC")):
        make_generator(root / "raw" / name, seed=seed * 100)
    control = root / "controls" / "BICUBIC" / "val"
    tinted(control / "nature", 3, 1, 7)  # green: the colour detector keeps these real
    return root


@pytest.fixture(scope="module")
def scores(raw):
    return scoring.score_folder(colour_detector(), raw / "raw" / "AAA", "val", batch_size=3)


def test_score_folder_labels_every_image_through_the_whole_pipeline(scores, raw):
    assert len(scores) == 8 and scores.split == "val"
    assert scores.y_true.tolist() == [0] * 4 + [1] * 4
    assert [p.parent.name for p in scores.paths] == ["ai"] * 4 + ["nature"] * 4
    assert (scores.p_ai[:4] > 0.9).all() and (scores.p_ai[4:] < 0.1).all()
    assert scores.summary()["accuracy"] == 1.0


def test_a_control_folder_may_hold_one_class_but_not_none(raw, tmp_path):
    control = scoring.score_folder(colour_detector(), raw / "controls" / "BICUBIC", "val")
    assert control.y_true.tolist() == [1, 1, 1]
    scored = scoring.score_control(colour_detector(), raw / "controls" / "BICUBIC")
    assert scored.name == "BICUBIC" and metrics.rates_at(scored.y_true, scored.p_ai).fpr == 0.0
    (tmp_path / "val" / "dogs").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no ai/ or nature/"):
        scoring.score_folder(colour_detector(), tmp_path, "val")


def test_unreadable_files_are_skipped_and_named(raw, tmp_path):
    make_generator(tmp_path / "GEN")
    (tmp_path / "GEN" / "val" / "ai" / "zz_broken.png").write_bytes(b"not a png")
    with pytest.warns(SkippedFileWarning) as caught:  # the policy: each file with its reason, then a summary
        scores = scoring.score_folder(colour_detector(), tmp_path / "GEN", "val")
    assert str(caught[-1].message) == "skipped 1 unreadable file: zz_broken.png"
    assert len(scores) == 8 and len(scores.y_true) == 8
    assert scores.skipped[0][0].name == "zz_broken.png"


def test_per_generator_table_has_a_row_per_generator_and_the_control_beside(raw):
    detector = colour_detector()
    scores = {"colour": scoring.score_generators(detector, raw / "raw")}
    control = {"colour": scoring.score_control(detector, raw / "controls" / "BICUBIC")}
    rows = reports.per_generator_table(scores, control)
    assert [r["generator"] for r in rows] == ["AAA", "BBB", "CCC", "BICUBIC (control)"]
    assert all(r["accuracy"] == 1.0 and r["auc"] == 1.0 for r in rows[:3])
    assert rows[3]["n"] == 3 and rows[3]["fpr"] == 0.0
    text = labels.format_table(rows, ["generator", "n", "accuracy", "auc", "fpr"])
    assert text.splitlines()[4].split() == ["BICUBIC", "(control)", "3", "1.000", "-", "0.000"]


def test_pooling_concatenates_generators_in_order(raw, tmp_path):
    sets = scoring.score_generators(colour_detector(), raw / "raw")
    pooled = scoring.Scores.pooled(list(sets.values()))
    assert len(pooled) == 24 and pooled.paths[8] == sets["BBB"].paths[0]
    assert pooled.y_true.tolist() == ([0] * 4 + [1] * 4) * 3 and pooled.summary()["auc"] == 1.0
    with pytest.raises(LayoutError, match="no generator folders"):
        scoring.score_generators(colour_detector(), tmp_path)


def test_val_test_halves_are_disjoint_and_stratified(scores):
    val, test = reports.split_val_test(scores, seed=0)
    assert (val.split, test.split) == ("val", "test")
    assert not set(val.paths) & set(test.paths) and len(val) + len(test) == len(scores)
    assert sorted(val.y_true.tolist()) == sorted(test.y_true.tolist()) == [0, 0, 1, 1]


def test_val_test_halves_keep_each_source_photo_on_one_side(tmp_path):
    """Crops of one photo never sit on both sides: the split reads each image's photo from the build's manifest."""
    from detectlib.data.demo import MANIFEST

    folder = tmp_path / "GEN"
    groups = {f"val/{cls}/{cls}_{i:05d}.png": f"photo:p{i % 4}" for cls in ("ai", "nature") for i in range(16)}
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"groups": groups}))
    paths = [folder / key for key in groups]
    y = np.array([0 if "/ai/" in key else 1 for key in groups])
    scored = scoring.Scores(y, np.linspace(0, 1, len(y)), paths)
    assert scored.groups == list(groups.values())
    for seed in (0, 1, 2):
        val, test = reports.split_val_test(scored, seed=seed)
        assert not set(val.groups) & set(test.groups) and len(val) + len(test) == len(scored)
        assert set(val.y_true.tolist()) == set(test.y_true.tolist()) == {0, 1}
    copy = tmp_path / "ALL_full" / "val" / "ai" / "GEN_ai_00005.png"  # a create_full_all copy finds its photo
    assert scoring.Scores(y[:1], y[:1] * 1.0, [copy]).groups == ["photo:p1"]
    unknown = tmp_path / "other" / "val" / "ai" / "x.png"  # no record: its own group
    assert scoring.Scores(y[:1], y[:1] * 1.0, [unknown]).groups == [str(unknown)]


def _scored(y, p, split, names):
    return scoring.Scores(np.array(y), np.array(p, dtype=float), [f"{n}.png" for n in names], split)


def test_the_threshold_never_depends_on_test_scores():
    val = _scored([0, 0, 1, 1], [0.9, 0.4, 0.35, 0.1], "val", "abcd")
    choices = []
    for p_test in ([0.8, 0.6, 0.3, 0.2], [0.31, 0.30, 0.29, 0.05], [0.0, 0.0, 1.0, 1.0]):
        test = _scored([0, 0, 1, 1], p_test, "test", "efgh")
        choice, rates = reports.honest_threshold(val, test)
        choices.append(choice.threshold)
        assert rates == metrics.rates_at(test.y_true, test.p_ai, choice.threshold)
    assert choices == [pytest.approx(0.375)] * 3  # (0.4 + 0.35) / 2, whatever the test set holds


def test_honest_threshold_refuses_a_test_split_or_shared_images():
    val = _scored([0, 1], [0.9, 0.1], "val", "ab")
    with pytest.raises(ValueError, match="not on a split named 'test'"):
        reports.honest_threshold(_scored([0, 1], [0.9, 0.1], "test", "ab"), val)
    with pytest.raises(ValueError, match="share 1 image"):
        reports.honest_threshold(val, _scored([0, 1], [0.9, 0.1], "test", "bc"))


def test_the_leak_flatters_test_accuracy():
    val = _scored([0, 0, 1, 1, 0, 1], [0.9, 0.6, 0.4, 0.1, 0.7, 0.2], "val", "abcdef")
    test = _scored([0, 0, 1, 1], [0.45, 0.35, 0.3, 0.2], "test", "ghij")
    honest, leaked = reports.threshold_report(val, test)
    assert honest["threshold"] == pytest.approx(0.5) and honest["test accuracy"] == pytest.approx(0.5)
    assert leaked["threshold"] == pytest.approx(0.325) and leaked["test accuracy"] == 1.0


def test_perturbations_do_what_they_say():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    pixels = np.asarray(image, dtype=float)
    assert robustness.Perturbation()(image) is image
    jpeg = robustness.Perturbation("jpeg", 30)(image)
    assert jpeg.mode == "RGB" and jpeg.size == (32, 32) and np.abs(np.asarray(jpeg, float) - pixels).mean() > 5
    assert robustness.Perturbation("downscale", 0.25)(image).size == (8, 8)
    assert np.asarray(robustness.Perturbation("blur", 2)(image), float).std() < pixels.std() / 2
    assert [p.label for p in robustness.ROBUSTNESS_SWEEP] == [
        "original", "JPEG q=95", "JPEG q=75", "JPEG q=50", "JPEG q=30", "downscale x0.5", "downscale x0.25",
        "blur σ=1", "blur σ=2", "blur σ=3"]
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness.Perturbation("rotate", 90)(image)


def test_robustness_sweep_scores_every_detector_under_every_edit(raw):
    sweep = (robustness.Perturbation(), robustness.Perturbation("blur", 3), robustness.Perturbation("downscale", 0.25))
    rows = robustness.robustness_sweep({"colour": colour_detector()}, raw / "raw" / "AAA", perturbations=sweep,
                                     max_per_class=2)
    assert scoring.score_folder(colour_detector(), raw / "raw" / "AAA", max_per_class=2).y_true.tolist() == [
        0, 0, 1, 1]
    assert [(r["detector"], r["kind"]) for r in rows] == [("colour", "none"), ("colour", "blur"),
                                                          ("colour", "downscale")]
    assert all(r["accuracy"] == 1.0 and r["auc"] == 1.0 for r in rows)  # a colour cue survives blur and resizing


def test_pipeline_vs_model_throughput_reports_consistent_numbers(scores):
    measured = bench.pipeline_vs_model_throughput(colour_detector(), scores.paths, batch_size=4, repeats=1,
                                                 min_seconds=0)
    assert measured["images"] == 8 and measured["rounds"] == 1
    assert measured["pipeline_img_s"] > 0 and measured["model_img_s"] > 0
    assert measured["ratio"] == pytest.approx(measured["pipeline_img_s"] / measured["model_img_s"])
    # the ceiling of a pipeline that decodes and runs the model in turn: 1 / (1 + model rate / decode rate)
    ceiling = 1 / (1 + measured["model_img_s"] / measured["decode_img_s"])
    assert measured["serial_ceiling"] == pytest.approx(ceiling) and 0 < ceiling < 1


def test_infer_latency_alternates_the_floor_and_the_command(monkeypatch):
    import subprocess
    import sys

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: calls.append(command))
    result = bench.infer_latency_vs_import_floor("x.jpg", "m.pth", runs=2)
    assert [c[1:3] for c in calls] == [["-c", "import torch, timm"], ["-m", "detectlib.infer"]] * 2
    assert calls[1] == [sys.executable, "-m", "detectlib.infer", "--image_path", "x.jpg", "--model_path", "m.pth"]
    assert result["ratio"] == pytest.approx(result["infer_s"] / result["floor_s"])


def test_off_diagonal_mean_is_the_generalisation_number():
    auc = np.array([[1.0, 0.6], [0.7, 0.9]])
    cg = transfer.CrossGenerator(["A", "B"], ["A", "B"], auc, auc, np.array([0.1, np.nan]), "enc")
    assert cg.off_diagonal() == pytest.approx(0.65) and cg.diagonal() == pytest.approx(0.95)
    assert cg.rows()[0] == {"trained on": "A", "auc A": 1.0, "auc B": 0.6, "control FPR": 0.1}


# ----------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory):
    return constant_convnext(tmp_path_factory.mktemp("ckpt") / "epoch_5.pth", 0.25)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_report_and_confusion_matrix_and_saves_the_figure(raw, real_ckpt, capsys, tmp_path):
    figure = tmp_path / "results" / "figures" / "confusion_matrix.png"
    code, out, _ = run_cli(capsys, "--model_path", real_ckpt, "--data_dir", raw / "raw" / "AAA",
                           "--figure", figure)
    assert code == 0
    # every image is called real: ai recall 0, nature precision 4/8
    assert "          ai     0.0000    0.0000    0.0000         4" in out
    assert "      nature     0.5000    1.0000    0.6667         4" in out
    assert "ai             0       4\nnature         0       4" in out
    assert "True negative rate: 4 / 4 (100.00%)\nTrue positive rate: 0 / 4 (0.00%)" in out
    assert figure.is_file() and Image.open(figure).size[0] > 100


def test_cli_defaults_to_the_dataset_the_checkpoint_was_trained_on(raw, tmp_path, capsys, monkeypatch):
    from detectlib.models.checkpoints import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(constant_convnext(tmp_path / "a.pth", 0.9))
    ckpt["config"] = {"data_dir": str(raw / "raw" / "BBB")}
    save_checkpoint(tmp_path / "b.pth", ckpt.pop("state_dict"), **{k: v for k, v in ckpt.items() if k != "format"})
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "--model_path", tmp_path / "b.pth")
    assert code == 0 and f"on {raw / 'raw' / 'BBB' / 'val'} (8 images" in out
    assert (tmp_path / "results" / "figures" / "confusion_matrix.png").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--model_path", "missing.pth", "--data_dir", "{data}"], "--model_path missing.pth: checkpoint not found"),
    (["--model_path", "{ckpt}", "--data_dir", "nowhere"], "nowhere: folder not found"),
    (["--model_path", "{ckpt}", "--data_dir", "{data}", "--split", "test"], "missing test/ai/, test/nature/"),
])
def test_cli_bad_paths_exit_2_with_one_line(raw, real_ckpt, capsys, args, message):
    code, out, err = run_cli(capsys, *[a.format(ckpt=real_ckpt, data=raw / "raw" / "AAA") for a in args])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


# ------------------------------------------------------------------- the CLIP head (tiny random CLIP)


def test_cli_recognises_a_clip_head_checkpoint(raw, tmp_path, capsys):
    ckpt = constant_clip_head(tmp_path / "clip_head.pth", 0.9)
    code, out, _ = run_cli(capsys, "--model_path", ckpt, "--data_dir", raw / "raw" / "CCC",
                           "--figure", tmp_path / "cm.png")
    assert code == 0 and out.startswith("Evaluating clip_head checkpoint")
    assert "True negative rate: 0 / 4 (0.00%)\nTrue positive rate: 4 / 4 (100.00%)" in out


def test_cross_generator_matrix_trains_one_head_per_generator(raw, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))  # the embedding cache goes to tmp_path, not .smoke/
    cg = transfer.cross_generator_matrix(raw / "raw", encoder="clip-tiny-random", profile="smoke",
                                         control=raw / "controls" / "BICUBIC", epochs=1, out_dir=tmp_path / "heads")
    assert cg.train_generators == cg.test_generators == ["AAA", "BBB", "CCC"]
    assert cg.auc.shape == cg.accuracy.shape == (3, 3) and cg.encoder == "clip-tiny-random"
    assert ((cg.auc >= 0) & (cg.auc <= 1)).all() and ((cg.accuracy >= 0) & (cg.accuracy <= 1)).all()
    assert ((cg.control_fpr >= 0) & (cg.control_fpr <= 1)).all()
    assert all((tmp_path / "heads" / g / "clip_head.pth").is_file() for g in cg.train_generators)
    assert any((tmp_path / ".smoke" / "cache" / "embeddings").iterdir())
    with pytest.raises(LayoutError, match="two or more"):
        transfer.cross_generator_matrix(raw / "raw", generators=["AAA"], encoder="clip-tiny-random")


def test_a_seeded_sample_spreads_over_a_merged_folder(tmp_path):
    """ALL_full names start with the generator: the first N sorted are one generator, a seeded sample is not."""
    for cls in CLASSES:
        folder = tmp_path / "val" / cls
        folder.mkdir(parents=True)
        for gen in ("AE", "DCGAN", "ESRGAN"):
            for i in range(10):
                Image.new("RGB", (8, 8)).save(folder / f"{gen}_{i:02d}.png")
    first = layout.class_samples(tmp_path / "val", 6)
    assert {path.name.split("_")[0] for path, _ in first} == {"AE"}
    sample = layout.class_samples(tmp_path / "val", 6, seed=0)
    assert len({path.name.split("_")[0] for path, _ in sample}) > 1
    assert [label for _, label in sample] == [0] * 6 + [1] * 6
    assert layout.class_samples(tmp_path / "val", 6, seed=0) == sample  # seeded: the same images again


def test_unchosen_scores_replace_a_best_checkpoint_by_its_last_epoch(tmp_path):
    from builders import make_tree

    raw = tmp_path / "raw"
    make_tree(raw / "GEN", size=32)
    run = tmp_path / "run"
    best = constant_convnext(run / "best.pth", 0.9)
    constant_convnext(run / "epoch_1.pth", 0.2)
    last = constant_convnext(run / "epoch_2.pth", 0.3)
    head = constant_clip_head(tmp_path / "head" / "clip_head.pth", 0.6)
    scored = {"ConvNeXt": scoring.Scores(np.zeros(1, int), np.zeros(1), [best]), "head": "kept as scored"}
    out = reports.unchosen_scores({"ConvNeXt": best, "head": head}, raw, scored)
    assert out["head"] == "kept as scored"  # no best.pth: nothing chose it
    assert out["ConvNeXt"].name == f"ConvNeXt ({last.name})" and np.allclose(out["ConvNeXt"].p_ai, 0.3)
