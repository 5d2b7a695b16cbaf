"""The parts of ``make test-full`` that can be tested small (tests/full_rehearsal): the hub-cache writer, the
completion marker and the plugin's summary. The rehearsal itself runs ViT-L/14 and is not run here."""

from __future__ import annotations

import json
import os

import huggingface_hub.constants
import pytest
import torch
from full_rehearsal import plugin, prepare

CLIP_REPO = "openai/clip-vit-large-patch14"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A private hub cache, offline, as ``make test-full`` sets it. huggingface_hub reads ``HF_HUB_CACHE`` and
    ``HF_HUB_OFFLINE`` once, at import, so its constants are patched along with the environment."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_clip_repo_is_a_hub_download_that_loads_offline(offline_hub, one_thread):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from detectlib.models.encoders import make_encoder

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              patch_size=8, image_size=32, projection_dim=16)
    assert prepare.write_clip_repo(offline_hub, CLIP_REPO, config)
    repo = prepare.hub_repo_folder(offline_hub, CLIP_REPO)
    commit = (repo / "refs" / "main").read_text()
    snapshot = repo / "snapshots" / commit
    assert len(commit) == 40 and sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    assert all(p.is_symlink() and p.resolve().parent == (repo / "blobs").resolve() for p in snapshot.iterdir())

    model = CLIPVisionModel.from_pretrained(CLIP_REPO)
    assert next(model.parameters()).dtype == torch.float32  # float16 on disk, float32 as a user gets it
    assert model(pixel_values=torch.zeros(1, 3, 32, 32)).pooler_output.shape == (1, 32)
    encoder = make_encoder(CLIP_REPO)
    assert (encoder.spec, encoder.dim, encoder.input_size) == (CLIP_REPO, 32, 32)
    assert make_encoder(CLIP_REPO + ":random").dim == 32  # the random counterpart reads the same config


def test_timm_repo_and_weights_file_load_through_the_kit(offline_hub, tmp_path, one_thread):
    from safetensors.torch import load_file

    from detectlib.models.classifier import create_timm_model

    assert prepare.write_timm_repo(offline_hub, "convnext_atto")
    assert prepare.write_weights_file(tmp_path / "weights", offline_hub, "convnext_atto")
    saved = load_file(tmp_path / "weights" / "convnext_atto.safetensors")
    assert saved["head.fc.weight"].shape[0] == 1000  # ImageNet's head, as the real file
    for model in (create_timm_model("convnext_atto", pretrained=True),
                  create_timm_model("convnext_atto", weights=tmp_path / "weights" / "convnext_atto.safetensors")):
        assert torch.equal(model.stem[0].weight, saved["stem.0.weight"])
        assert model.head.fc.out_features == 2


def test_an_item_is_written_once_per_settings_and_never_left_half(tmp_path):
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "file").write_text("x")

    item = tmp_path / "item"
    assert prepare.cached_item(item, {"size": 1, "ids": {0: "a"}}, write)
    assert not prepare.cached_item(item, {"size": 1, "ids": {0: "a"}}, write)  # int keys survive the marker
    assert prepare.cached_item(item, {"size": 2, "ids": {0: "a"}}, write)
    assert len(calls) == 2 and (item / "file").read_text() == "x"

    def interrupted(folder):
        (folder / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare.cached_item(tmp_path / "other", {"size": 1}, interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item"]  # no half item, no staging folder left


def test_summary_per_notebook_from_cell_records():
    records = [plugin.CellRecord("notebooks/01.ipynb", 0, 1.5, 300.0, 310.0, True),
               plugin.CellRecord("notebooks/01.ipynb", 1, 2.25, 280.0, 420.5, False),
               plugin.CellRecord("notebooks/02.ipynb", 0, 4.0, None, None, True)]
    summary = json.loads(json.dumps(plugin.summarise(records, {"date": "today"})))
    assert summary["note"] == plugin.NOTE and "meaningless" in summary["note"] and summary["date"] == "today"
    assert summary["passed"] is False
    first, second = summary["notebooks"]["notebooks/01.ipynb"], summary["notebooks"]["notebooks/02.ipynb"]
    assert (first["seconds"], first["peak_rss_mb"], first["cells_passed"], first["cells_failed"]) == (3.75, 420.5, 1, 1)
    assert first["cells"][1] == {"index": 1, "seconds": 2.25, "rss_mb": 280.0, "hwm_mb": 420.5, "passed": False}
    assert (second["seconds"], second["peak_rss_mb"]) == (4.0, None)
    clean = [plugin.CellRecord("notebooks/01.ipynb", 0, 1.0, 1.0, 1.0, True)]
    assert plugin.summarise(clean, {"requested": ["notebooks/01.ipynb"]})["passed"] is True
    assert plugin.summarise(clean, {"requested": ["notebooks/01.ipynb", "notebooks/02.ipynb"]})["passed"] is False


def test_kernel_memory_is_read_from_proc():
    rss, hwm = plugin.kernel_memory_mb(os.getpid())
    if rss is None:
        pytest.skip("no /proc on this system")
    assert 0 < rss <= hwm
    assert plugin.kernel_memory_mb(None) == (None, None)


def test_the_record_names_the_commit_rehearsed(monkeypatch):
    meta = plugin.session_meta()
    assert meta["commit"] is None or meta["commit"].split("+")[0].isalnum()
    assert set(meta["switches"]) == set(plugin.SWITCHES) and meta["versions"]["torch"]


def test_the_recorder_rewrites_the_file_after_every_cell(tmp_path, monkeypatch):
    recorder = plugin.RehearsalRecorder(tmp_path)
    monkeypatch.setattr(plugin, "session_meta", lambda: {"date": "today"})
    recorder.records.append(plugin.CellRecord("notebooks/01.ipynb", 0, 1.0, 300.0, 310.0, True))
    recorder.write()
    first = json.loads((tmp_path / plugin.RESULTS_FILE).read_text())
    recorder.records.append(plugin.CellRecord("notebooks/01.ipynb", 1, 2.0, 300.0, 320.0, True))
    recorder.write()
    second = json.loads((tmp_path / plugin.RESULTS_FILE).read_text())
    assert len(first["notebooks"]["notebooks/01.ipynb"]["cells"]) == 1 and first["date"] == "today"
    assert second["notebooks"]["notebooks/01.ipynb"]["seconds"] == 3.0


def test_a_session_records_every_cell_and_what_it_was_asked_to_run(tmp_path):
    """The plugin inside a real nbval session: one tiny notebook, its cells timed and its kernel's memory read."""
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                               nbformat.v4.new_code_cell("print(x + 1)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    tests_dir = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "tiny.ipynb", "--nbval-lax", "--nbval-current-env",
                          "-p", "no:cacheprovider", "-p", "full_rehearsal.plugin", "-q"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads((tmp_path / plugin.RESULTS_FILE).read_text())
    assert record["requested"] == ["tiny.ipynb"] and record["passed"] is True
    cells = record["notebooks"]["tiny.ipynb"]["cells"]
    assert [cell["index"] for cell in cells] == [0, 1] and all(cell["passed"] for cell in cells)
    assert all(cell["rss_mb"] and cell["rss_mb"] > 10 for cell in cells)  # the kernel's memory, read from /proc
