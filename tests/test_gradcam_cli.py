"""``python -m detectlib.gradcam_infer``: the reference's output lines and file name (§6), the layer fallback, the
list of layers on a bad name, one-line errors with exit code 2, and lean imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import clip_detector, convnext_detector
from PIL import Image

from detectlib import gradcam_infer
from detectlib.config import CLASSES
from detectlib.data.images import load_image
from detectlib.labels import format_prediction
from detectlib.models.checkpoints import save_checkpoint
from detectlib.models.detector import load_detector

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A noise photo, the smoke ConvNeXt checkpoint (random) and a tiny-CLIP head checkpoint (random head)."""
    folder = tmp_path_factory.mktemp("gradcam")
    image = folder / "photo_1.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image)
    convnext = convnext_detector()
    transform = convnext.transform
    save_checkpoint(folder / "convnext.pth", convnext.model.state_dict(), kind="convnext", arch="convnext_atto",
                    model_kwargs={"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]}, classes=list(CLASSES),
                    img_size=transform.img_size, mean=list(transform.mean), std=list(transform.std))
    clip = clip_detector()
    save_checkpoint(folder / "clip_head.pth", clip.model.weights_state_dict(), kind="clip_head",
                    arch="clip-tiny-random", encoder="clip-tiny-random", classes=list(CLASSES), img_size=64)
    (folder / "notes.png").write_text("not an image")
    return {"image": image, "convnext": folder / "convnext.pth", "clip": folder / "clip_head.pth",
            "not_image": folder / "notes.png"}


def _run(args: list[str], capsys) -> tuple[int, list[str], str]:
    code = gradcam_infer.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_prints_prediction_layer_and_the_reference_output_path(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default out_dir is relative to cwd, as the reference's
    code, lines, _ = _run(["--image_path", files["image"], "--model_path", files["convnext"]], capsys)
    assert code == 0
    p_ai = float(load_detector(files["convnext"], "cpu").score_images([load_image(files["image"])])[0])
    assert lines[:2] == format_prediction(p_ai).splitlines()  # "🔍 Predicción: Generada|Real", "📊 Confianza: .."
    assert lines[2] == ("🧠 Capa: stages.2.blocks.1.conv_dw (stages.2.blocks.4.conv_dw is absent in this smaller "
                        "ConvNeXt; using stages.2.blocks.1.conv_dw)")
    assert lines[3] == "🖼️ Grad-CAM guardado en: results/gradcams/photo_1_gradcam.jpg"
    with Image.open(tmp_path / "results" / "gradcams" / "photo_1_gradcam.jpg") as saved:
        assert saved.format == "JPEG" and saved.size == (48, 40)  # the original image's size


def test_named_layer_out_dir_and_english(files, capsys, tmp_path):
    code, lines, _ = _run(["--image_path", files["image"], "--model_path", files["convnext"], "--target_layer",
                           "stages.1.blocks.0.conv_dw", "--out_dir", tmp_path / "cams", "--lang", "en"], capsys)
    assert code == 0
    assert lines[0].startswith("🔍 Prediction: ")
    assert lines[2] == "🧠 Layer: stages.1.blocks.0.conv_dw"
    assert lines[3] == f"🖼️ Grad-CAM saved to: {tmp_path / 'cams' / 'photo_1_gradcam.jpg'}"
    assert (tmp_path / "cams" / "photo_1_gradcam.jpg").is_file()


def test_clip_head_checkpoint_uses_the_vit_layer(files, capsys, tmp_path):
    code, lines, _ = _run(["--image_path", files["image"], "--model_path", files["clip"], "--out_dir", tmp_path],
                          capsys)
    assert code == 0
    assert lines[2] == "🧠 Capa: encoder.layers.1.layer_norm1"
    with Image.open(tmp_path / "photo_1_gradcam.jpg") as saved:
        assert saved.size == (40, 40)  # the centre square the CLIP preprocessing keeps


def test_invalid_layer_lists_the_available_names(files, capsys, tmp_path):
    code, lines, err = _run(["--image_path", files["image"], "--model_path", files["convnext"], "--target_layer",
                             "stages.2.blocks.4.conv_dw", "--out_dir", tmp_path], capsys)
    assert code == 2 and lines == []
    note, error = err.splitlines()  # which model the checkpoint holds, then the one error line
    assert note.startswith("note: model: ") and "not DETECTLIB_PROFILE" in note
    assert error.startswith("error: unknown layer 'stages.2.blocks.4.conv_dw'; available layers: ")
    assert "stages.2.blocks.1.conv_dw" in err and "head.fc" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("which", "message"), [
    ("missing_image", "not a readable image"),
    ("not_image", "not a readable image"),
    ("missing_model", "checkpoint not found"),
    ("bad_model", "notes.png: "),  # a text file: load_checkpoint refuses it
])
def test_bad_paths_are_one_line_errors_with_exit_code_2(files, capsys, tmp_path, which, message):
    image, model = files["image"], files["convnext"]
    if which == "missing_image":
        image = tmp_path / "nope.jpg"
    elif which == "not_image":
        image = files["not_image"]
    elif which == "missing_model":
        model = tmp_path / "nope.pth"
    else:
        model = files["not_image"]
    code, lines, err = _run(["--image_path", image, "--model_path", model, "--out_dir", tmp_path], capsys)
    assert code == 2 and lines == []
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_runs_as_a_module_without_matplotlib_or_pytorch_grad_cam(files, tmp_path):
    script = (
        "import runpy, sys\n"
        "sys.argv = ['gradcam_infer', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('detectlib.gradcam_infer', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'pytorch_grad_cam', 'sklearn'})\n"
        "    print('exit', done.code, 'heavy', heavy)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script, "--image_path", str(files["image"]), "--model_path",
                           str(files["convnext"]), "--out_dir", str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert proc.stdout.splitlines()[-1] == "exit 0 heavy []", proc.stderr
    assert (tmp_path / "photo_1_gradcam.jpg").is_file()
