"""detectlib.widgets: the image probe driven without a browser. A simulated ipywidgets-8 upload (``set_state``, as
the front end sends it) runs the same callback as a real one; the ipywidgets-7 (Colab) format goes through the
same normaliser; bad files become messages; the slider relabels; the layer dropdown redraws."""

from __future__ import annotations

import io

import numpy as np
import pytest
from builders import clip_detector, convnext_detector
from PIL import Image

from detectlib import widgets


def png_bytes(seed: int = 0, size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detectors() -> dict:
    return {"ConvNeXt": convnext_detector(), "CLIP head": clip_detector()}


@pytest.fixture
def probe(detectors) -> widgets.ImageProbe:
    return widgets.ImageProbe(detectors, lang="en")


def _upload_v8(probe: widgets.ImageProbe, name: str, data: bytes) -> None:
    """What the browser sends: ipywidgets 8 fires ``observe(names="value")`` with a tuple of dicts."""
    probe.upload.set_state({"value": [{"name": name, "type": "image/png", "size": len(data),
                                       "content": memoryview(data), "last_modified": 0}]})


def test_building_the_probe_runs_no_model(probe):
    assert probe.p_ai == {} and probe.heatmap.value == b"" and probe.image is None
    assert probe.layer.value == "stages.2.blocks.1.conv_dw"  # the ConvNeXt default comes first
    assert "Upload an image" in probe.message.value


def test_simulated_ipywidgets8_upload_scores_both_detectors_and_draws_a_heatmap(probe, detectors):
    data = png_bytes()
    _upload_v8(probe, "fake.png", data)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert probe.image_name == "fake.png" and probe.image.size == (48, 40)
    for name, detector in detectors.items():
        assert probe.p_ai[name] == pytest.approx(float(detector.score_images([image])[0]), abs=1e-5)
    clip_score = 1 - 2 * probe.p_ai["CLIP head"]
    assert f"{clip_score:+.3f}" in probe.scores.value  # the CLIP head's own score in [-1, 1]
    assert bytes(probe.heatmap.value).startswith(b"\x89PNG")
    assert "stages.2.blocks.1.conv_dw" in probe.caption.value
    assert "fake.png: 48 x 40 px" in probe.message.value


def test_ipywidgets7_format_goes_through_the_same_normaliser(probe):
    data = png_bytes(1)
    v7 = {"colab.png": {"metadata": {"name": "colab.png", "type": "image/png", "size": len(data)}, "content": data}}
    v8 = ({"name": "colab.png", "type": "image/png", "size": len(data), "content": memoryview(data)},)
    assert widgets.uploaded_files(v7) == widgets.uploaded_files(v8) == [("colab.png", data)]
    assert widgets.uploaded_files({}) == widgets.uploaded_files(()) == []
    probe.load_upload(v7)
    assert probe.image_name == "colab.png" and set(probe.p_ai) == {"ConvNeXt", "CLIP head"}


def test_a_non_image_upload_is_a_message_in_the_widget(probe):
    _upload_v8(probe, "notes.txt", b"hello, not an image")
    assert probe.image is None and probe.p_ai == {}
    assert "notes.txt: not a readable image" in probe.message.value
    assert "#b00020" in probe.message.value  # shown as an error


def test_an_oversized_upload_is_refused_with_the_way_out(detectors):
    probe = widgets.ImageProbe(detectors, max_upload_bytes=100)
    probe.load_upload(({"name": "big.png", "content": memoryview(png_bytes())},))
    assert probe.image is None
    assert "over the 0 MB upload limit; type its path" in probe.message.value


def test_path_box_and_sample_dropdown(detectors, tmp_path):
    path = tmp_path / "GEN" / "val" / "ai" / "a.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(png_bytes(2))
    samples = widgets.probe_samples({"ai": [path]})
    assert list(samples) == ["GEN/val/ai/a.png"]
    probe = widgets.ImageProbe(detectors, samples=samples)
    probe.sample.value = str(path)
    assert probe.image_name == "a.png" and probe.heatmap.value
    other = tmp_path / "typed.png"
    other.write_bytes(png_bytes(3))
    probe.source.value = str(other)  # typed, then Enter
    assert probe.image_name == str(other) and probe.heatmap.value
    probe.source.value = str(tmp_path / "missing.png")
    assert "missing.png: no such file" in probe.message.value
    assert probe.image_name == str(other)  # the last good image stays


def test_the_slider_changes_the_label(probe):
    _upload_v8(probe, "fake.png", png_bytes())
    p = probe.p_ai["ConvNeXt"]
    probe.threshold.value = round(p - 0.01, 2)
    row = probe.scores.value.split("ConvNeXt")[1]
    assert "<b>AI-generated</b>" in row.split("</tr>")[0]
    probe.threshold.value = round(p + 0.01, 2)
    row = probe.scores.value.split("ConvNeXt")[1]
    assert "<b>Real</b>" in row.split("</tr>")[0]
    assert f"p(ai) ≥ {probe.threshold.value:.2f}" in probe.scores.value


def test_the_layer_dropdown_redraws_the_heatmap(probe):
    _upload_v8(probe, "fake.png", png_bytes())
    before = probe.heatmap.value
    probe.layer.value = "stages.0.blocks.0.conv_dw"
    assert probe.heatmap.value != before
    assert "stages.0.blocks.0.conv_dw" in probe.caption.value
    probe.heatmap_detector.value = "CLIP head"
    assert probe.layer.options == ("encoder.layers.1.layer_norm1", "encoder.layers.0.layer_norm1")
    assert "encoder.layers.1.layer_norm1 (CLIP head)" in probe.caption.value
