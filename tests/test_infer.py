"""detectlib.infer: the reference's single-image output in both languages, exit codes, CSV mode, lean imports.

The checkpoints are the smoke ConvNeXt with a zeroed head and a chosen bias, so every image gets the same known
p(ai): bias (0, ln 3) gives softmax (1/4, 3/4), i.e. p(ai) = 0.25, "Real" at 75.00 %.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import constant_convnext
from PIL import Image

from detectlib import infer
from detectlib.data.images import SkippedFileWarning
from detectlib.evaluation import predictions

REPO = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int, seed: int = 0, size: int = 32) -> list[Path]:
    """``n`` noise PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"img_{i}.png" for i in range(n)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("infer")
    images = make_images(root / "images" / "sub", 3)
    (root / "images" / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(b"\x89PNG truncated")
    return {"real": constant_convnext(root / "real.pth", 0.25), "fake": constant_convnext(root / "fake.pth", 0.9),
            "image": images[0], "dir": root / "images", "broken": root / "broken.png", "root": root}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = infer.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_reference_lines_in_spanish_by_default(files, capsys):
    code, out, _ = run(capsys, "--image_path", files["image"], "--model_path", files["real"])
    assert code == 0
    assert out == "🔍 Predicción: Real\n📊 Confianza: 75.00%\n"
    code, out, _ = run(capsys, "--image_path", files["image"], "--model_path", files["fake"])
    assert out == "🔍 Predicción: Generada\n📊 Confianza: 90.00%\n"


def test_english_labels(files, capsys):
    _, out, _ = run(capsys, "--image_path", files["image"], "--model_path", files["fake"], "--lang", "en")
    assert out == "🔍 Prediction: AI-generated\n📊 Confidence: 90.00%\n"


def test_threshold_moves_the_decision(files, capsys):
    _, out, _ = run(capsys, "--image_path", files["image"], "--model_path", files["real"], "--lang", "en",
                    "--threshold", "0.2")
    assert out == "🔍 Prediction: AI-generated\n📊 Confidence: 25.00%\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--image_path", "missing.jpg", "--model_path", "{real}"], "--image_path missing.jpg: image not found"),
    (["--image_path", "{image}", "--model_path", "missing.pth"], "--model_path missing.pth: checkpoint not found"),
    (["--image_dir", "nowhere", "--model_path", "{real}"], "--image_dir nowhere: folder not found"),
    (["--image_path", "{broken}", "--model_path", "{real}"], "not a readable image"),
    (["--image_path", "{image}", "--model_path", "{broken}"], "broken.png: "),
    (["--model_path", "{real}"], "give --image_path"),
])
def test_bad_paths_exit_2_with_one_line(files, capsys, args, message):
    code, out, err = run(capsys, *[a.format(**files) for a in args])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_folder_writes_a_csv_of_every_image(files, capsys, tmp_path):
    out_csv = tmp_path / "out" / "pred.csv"
    code, out, err = run(capsys, "--image_dir", files["dir"], "--model_path", files["fake"], "--out_csv", out_csv)
    assert code == 0 and out == f"wrote 3 predictions to {out_csv}\n"
    assert "3/3" in err  # the progress bar, on stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert [Path(r["path"]).name for r in rows] == ["img_0.png", "img_1.png", "img_2.png"]
    assert {(r["p_ai"], r["label"]) for r in rows} == {("0.900000", "ai")}


def test_several_paths_go_to_a_csv_and_unreadable_ones_are_skipped(files, capsys):
    code, out, err = run(capsys, "--image_path", files["image"], files["broken"], "--model_path", files["real"],
                         "--out_csv", "-")
    assert code == 0
    assert out.splitlines() == ["path,p_ai,label", f"{files['image']},0.250000,nature"]
    assert f"skipped {files['broken']}" in err


def test_score_paths_keeps_input_order_and_reports_skips(files):
    from detectlib.models.detector import load_detector

    detector = load_detector(files["fake"], device="cpu")
    images = sorted((files["dir"] / "sub").glob("*.png"))
    with pytest.warns(SkippedFileWarning) as caught:  # the policy: each file with its reason, then a summary
        pred = predictions.score_paths(detector, [images[0], files["broken"], images[1]], batch_size=2)
    assert [str(w.message) for w in caught] == [f"skipped {pred.skipped[0][1]}", "skipped 1 unreadable file: broken.png"]
    assert pred.paths == [images[0], images[1]] and pred.kept == [0, 2]
    assert pred.p_ai == pytest.approx([0.9, 0.9])
    assert pred.skipped[0][0] == files["broken"] and "not a readable image" in pred.skipped[0][1]


def test_the_command_line_imports_only_what_it_needs(files):
    """Process start to prediction must stay near ``import torch, timm``: no scikit-learn, matplotlib or
    transformers for a ConvNeXt checkpoint."""
    code = (
        "import sys; from detectlib import infer\n"
        f"assert infer.main(['--image_path', {str(files['image'])!r}, '--model_path', {str(files['real'])!r}]) == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'matplotlib', 'transformers', 'pandas'})\n"
        "print('heavy:', heavy)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "heavy: []"


def test_python_dash_m_fails_fast_on_a_missing_checkpoint(files):
    result = subprocess.run([sys.executable, "-m", "detectlib.infer", "--image_path", str(files["image"]),
                             "--model_path", "nope.pth"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: --model_path nope.pth")
