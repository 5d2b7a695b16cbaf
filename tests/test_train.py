"""detectlib.train: the one training loop, checkpoints, exact resume, the reference's CLI, and DDP on 2 processes.

All runs use the smoke ConvNeXt (convnext_atto with depths (1,1,2,1), dims (16..128)) at 32 px, seeded and offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from builders import make_tree
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from detectlib import train
from detectlib.config import get_profile
from detectlib.models.checkpoints import load_checkpoint
from detectlib.models.classifier import create_timm_model
from detectlib.models.detector import load_detector
from detectlib.training import convnext, loop

SMOKE = get_profile("smoke")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("data") / "GEN", n_train=8, size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_model() -> nn.Module:
    torch.manual_seed(0)
    return create_timm_model(SMOKE.convnext_model, **SMOKE.convnext_kwargs)


def run(tree: Path, out: Path, **kwargs) -> convnext.TrainResult:
    return convnext.train_convnext(tree, out_dir=out / "models", figures_dir=out / "figures", profile=SMOKE,
                                progress=False, **kwargs)


def test_a_few_steps_lower_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    batch = TensorDataset(torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4))
    loader = DataLoader(batch, batch_size=8)
    history = loop.fit(smoke_model(), loader, loader, epochs=8, lr=3e-3, progress=False)
    losses = history.column("train_loss")
    assert len(history.epochs) == 8 and losses[-1] < 0.5 * losses[0]
    assert history.epochs[-1]["val_acc"] == 1.0  # it memorised the batch


def test_fit_takes_the_frozen_encoder_heads_loss_prediction_and_metrics():
    """The CLIP-style head trains one logit with BCE; its predictions and extra metrics flow into History."""
    torch.manual_seed(0)
    features = torch.randn(32, 16)
    labels = (features[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(features, labels), batch_size=8, shuffle=True)
    history = loop.fit(
        nn.Linear(16, 1), loader, loader, epochs=6, lr=5e-2,
        loss_fn=lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y.float()),
        predict_fn=lambda out: (out.squeeze(1) > 0).long(),
        val_metrics_fn=lambda out, y: {"tpr": float(((out.squeeze(1) > 0) & (y == 1)).sum() / (y == 1).sum())},
        progress=False,
    )
    last = history.epochs[-1]
    assert set(last) >= {"epoch", "train_loss", "val_loss", "val_acc", "tpr", "seconds", "images_per_s"}
    assert last["val_acc"] > 0.9 and last["val_loss"] < history.epochs[0]["val_loss"]


def test_predictions_of_the_wrong_shape_are_refused():
    loader = DataLoader(TensorDataset(torch.randn(4, 16), torch.tensor([0, 1, 0, 1])), batch_size=4)
    with pytest.raises(ValueError, match="one class index per sample"):  # not a silent N x N broadcast
        loop.fit(nn.Linear(16, 1), loader, loader, epochs=1, lr=1e-3, progress=False,
                  loss_fn=lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y.float()),
                  predict_fn=lambda out: (out > 0).long())


def test_history_best_prefers_accuracy_then_lower_loss():
    history = loop.History([
        {"epoch": 1, "val_acc": 0.9, "val_loss": 0.3},
        {"epoch": 2, "val_acc": 1.0, "val_loss": 0.2},
        {"epoch": 3, "val_acc": 1.0, "val_loss": 0.1},
    ])
    assert history.best()["epoch"] == 3
    assert history.best("val_loss")["epoch"] == 3
    assert history.as_dict()["epochs"][0] == {"epoch": 1, "val_acc": 0.9, "val_loss": 0.3}


def test_checkpoints_are_self_describing_safe_and_reload_the_model(tree, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "epoch_9.pth").write_bytes(b"an earlier, longer run")  # must not be resumed from or mixed in
    result = run(tree, tmp_path, epochs=2)
    assert sorted(p.name for p in models.iterdir()) == ["best.pth", "epoch_1.pth", "epoch_2.pth"]
    assert result.last_checkpoint == models / "epoch_2.pth" and result.best_checkpoint == models / "best.pth"
    raw = torch.load(models / "epoch_2.pth", map_location="cpu", weights_only=True)
    assert raw["kind"] == "convnext" and raw["arch"] == "convnext_atto" and raw["classes"] == ["ai", "nature"]
    assert raw["img_size"] == 32 and raw["epoch"] == 2 and len(raw["mean"]) == len(raw["std"]) == 3
    assert raw["model_kwargs"] == {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]}
    assert raw["metrics"]["val_acc"] == result.history.epochs[1]["val_acc"]
    assert "optimizer" in raw["train_state"] and raw["config"]["profile"] == "smoke"
    best = load_checkpoint(models / "best.pth")
    assert best["epoch"] == result.history.best()["epoch"] and "train_state" not in best

    detector = load_detector(models / "epoch_2.pth", device="cpu")
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = result.model.cpu().eval()(images).softmax(dim=1)[:, 0]
    torch.testing.assert_close(detector.p_ai(images), expected)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["loss_curve.png", "val_accuracy_curve.png"]


def test_resume_ends_with_exactly_the_weights_of_an_uninterrupted_run(tree, tmp_path):
    straight = run(tree, tmp_path / "straight", epochs=3, seed=7)
    run(tree, tmp_path / "interrupted", epochs=1, seed=7)
    resumed = run(tree, tmp_path / "interrupted", epochs=3, seed=7, resume=True)
    expected, got = straight.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    drop_time = ("seconds", "images_per_s", "data_wait")
    assert [{k: v for k, v in row.items() if k not in drop_time} for row in resumed.history.epochs] == [
        {k: v for k, v in row.items() if k not in drop_time} for row in straight.history.epochs]
    other_seed = run(tree, tmp_path / "other_seed", epochs=1, seed=8)
    assert not torch.equal(other_seed.model.stem[0].weight, straight.model.stem[0].weight)


def test_cli_has_the_reference_arguments_and_defaults():
    full = get_profile("full")
    args = train.build_parser(full).parse_args([])
    assert (args.data_dir, args.epochs, args.batch_size, args.lr) == ("data/raw/ADM", 5, 16, 1e-4)
    assert (train.cli_model(args, full), args.img_size, args.pretrained, args.weights) == (
        ("convnext_tiny", {}), 224, True, None)
    demo = train.build_parser("demo").parse_args([])  # the offline default: what the demo trains, no download
    assert (train.cli_model(demo, get_profile("demo"))[0], demo.img_size, demo.pretrained) == (
        "convnext_atto", 64, False)
    assert (demo.data_dir, demo.epochs, demo.batch_size, demo.lr) == ("data/raw/ADM", 5, 16, 1e-4)
    assert (args.out_dir, args.figures_dir, args.seed, args.resume) == (
        "models/saved_models", "results/figures", 0, False)
    args = train.build_parser("full").parse_args(
        "--data_dir d --epochs 10 --batch_size 4 --lr 3e-4 --model resnet18 --img_size 64 --no-pretrained "
        "--weights w.pth --out_dir o --seed 3 --resume --workers 2".split())
    assert (args.data_dir, args.epochs, args.batch_size, args.lr, args.model, args.img_size) == (
        "d", 10, 4, 3e-4, "resnet18", 64)
    assert (args.pretrained, args.weights, args.out_dir, args.seed, args.resume, args.workers) == (
        False, "w.pth", "o", 3, True, 2)


def test_cli_follows_the_profile_and_says_so_in_one_line(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_PROFILE", "smoke")
    monkeypatch.chdir(tmp_path)
    assert train.main(["--data_dir", str(tree), "--epochs", "1", "--batch_size", "4"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("profile smoke (DETECTLIB_PROFILE): convnext_atto at 32 px, random init")
    assert "DETECTLIB_PROFILE=full" in first and "convnext_tiny" in first
    ckpt = load_checkpoint(tmp_path / "models" / "saved_models" / "epoch_1.pth")
    assert (ckpt["arch"], ckpt["img_size"]) == ("convnext_atto", 32)
    assert ckpt["model_kwargs"]["dims"] == list(get_profile("smoke").convnext_kwargs["dims"])


def test_cli_residual_input_is_trained_recorded_and_used_at_load(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_PROFILE", "smoke")
    monkeypatch.chdir(tmp_path)
    assert train.main(["--data_dir", str(tree), "--epochs", "1", "--batch_size", "4", "--input", "residual"]) == 0
    assert "(their residual)" in capsys.readouterr().out
    path = tmp_path / "models" / "saved_models" / "epoch_1.pth"
    assert load_checkpoint(path)["input"] == "residual"
    detector = load_detector(path)
    assert detector.transform.input == "residual" and "(its residual)" in detector.describe()


def test_cli_bad_data_dir_is_one_line_exit_2_and_imports_stay_lean(tmp_path):
    (tmp_path / "train" / "ai").mkdir(parents=True)
    code = ("import sys; from detectlib.train import main; rc = main(['--data_dir', sys.argv[1]]); "
            "print(rc, sorted(m for m in ('matplotlib', 'transformers', 'timm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.stdout.split("\n")[0] == "2 []"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "train/nature/" in lines[0] and "{train,val}/{ai,nature}" in lines[0]


def test_two_processes_under_torchrun_write_one_valid_checkpoint(tree, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "detectlib.train", "--data_dir", str(tree), "--epochs", "1", "--batch_size", "4",
           "--model", "convnext_atto", "--img_size", "32", "--no-pretrained", "--lr", "1e-3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Epoch 1/1 - Train Loss:") == 1  # only rank 0 prints
    assert "2 process(es)" in proc.stdout
    ckpt = load_checkpoint(tmp_path / "models" / "saved_models" / "epoch_1.pth")
    assert ckpt["config"]["world_size"] == 2 and ckpt["arch"] == "convnext_atto"
    assert (ckpt["metrics"]["train_images"], ckpt["metrics"]["val_images"]) == (16, 8)  # summed over ranks
    model = create_timm_model("convnext_atto")
    model.load_state_dict(ckpt["state_dict"])
    assert (tmp_path / "results" / "figures" / "loss_curve.png").is_file()


def history(*rows: tuple[float, float, float, float]) -> loop.History:
    """A history from (train_acc, val_acc, train_loss, val_loss) per epoch."""
    return loop.History([{"epoch": i + 1, "train_acc": ta, "val_acc": va, "train_loss": tl, "val_loss": vl}
                         for i, (ta, va, tl, vl) in enumerate(rows)])


@pytest.mark.parametrize(("rows", "kind"), [
    (((0.7, 0.65, 0.6, 0.6), (0.99, 0.7, 0.05, 0.8)), "over-fits"),  # high training accuracy, a large gap
    (((0.6, 0.55, 0.7, 0.7), (0.7, 0.5, 0.6, 0.75)), "over-fits"),  # low training accuracy, but a large gap
    (((0.9, 0.85, 0.4, 0.4), (0.95, 0.9, 0.05, 0.6)), "over-fits"),  # accuracies close, the loss curves parted
    (((0.6, 0.58, 0.65, 0.6), (0.65, 0.6, 0.62, 0.7)), "under-fits"),  # low, small gap, losses barely apart
    (((0.6, 0.58, 0.7, 0.7), (0.7, 0.68, 0.6, 0.65)), "under-fits"),  # low, small gap, still learning
    (((0.9, 0.85, 0.3, 0.4), (0.95, 0.92, 0.2, 0.2)), "fits"),
    (((0.9, 0.85, 0.3, 0.4), (0.92, 0.88, 0.4, 0.6)), "fits"),  # validation loss rose, but so did training loss
])
def test_fit_kind_reads_the_gap_first(rows, kind):
    assert convnext.fit_kind(history(*rows)) == kind
    assert convnext.fit_verdict(history(*rows)).startswith(kind.replace("-fits", "-fitting") if kind != "fits"
                                                           else "fits and generalises")


def test_fit_verdict_says_which_signal_decided():
    gap = convnext.fit_verdict(history((0.6, 0.55, 0.7, 0.7), (0.7, 0.5, 0.65, 0.72)))
    assert "a gap of 0.20" in gap and "epoch 1 of 2 and rising after it" in gap
    parted = convnext.fit_verdict(history((0.9, 0.85, 0.4, 0.4), (0.95, 0.9, 0.05, 0.6)))
    assert "a gap" not in parted
    assert "rising after it (0.400 -> 0.600) while training loss kept falling (0.400 -> 0.050)" in parted
    stuck = convnext.fit_verdict(history((0.6, 0.58, 0.65, 0.6), (0.65, 0.6, 0.62, 0.7)))
    assert "0.65" in stuck and "more epochs alone would not help" in stuck
    early = convnext.fit_verdict(history((0.6, 0.58, 0.7, 0.7), (0.7, 0.68, 0.6, 0.65)))
    assert "still falling at the last epoch" in early
    assert convnext.fit_kind(history((0.7, 0.62, 0.6, 0.7)), gap=0.05) == "over-fits"  # the thresholds are knobs


def test_overfit_recipe_scales_with_the_profile():
    demo = convnext.overfit_recipe("demo")
    assert (demo.n_per_class, demo.epochs, demo.batch_size) == (10, 40, 8) and demo.lr == pytest.approx(3e-4)
    assert demo.train_kwargs() == {"epochs": 40, "batch_size": 8, "lr": demo.lr}
    smoke = convnext.overfit_recipe(SMOKE)
    assert smoke.n_per_class == SMOKE.val_per_class and smoke.epochs == 8 * SMOKE.epochs
    assert convnext.overfit_recipe("full").n_per_class == 10  # real data: the profile has no demo sizes


def test_the_overfit_recipe_memorises_a_tiny_tree(tree, tmp_path):
    """The smoke recipe's settings go straight into ``train_convnext`` and its 16 training images are learnt by
    heart (this tree's task is easy, so validation loss falls too; on the demo data it rises, see ``overfit_recipe``)."""
    recipe = convnext.overfit_recipe(SMOKE)
    result = run(tree, tmp_path, **recipe.train_kwargs())
    assert len(result.history.epochs) == recipe.epochs
    assert result.history.epochs[-1]["train_loss"] < 0.05 * result.history.epochs[0]["train_loss"]
