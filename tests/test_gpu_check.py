"""``make gpu-check``'s code on the CPU with tiny models (the same path a GPU runs), and its one line without CUDA.

Only the CUDA-specific calls (synchronize, peak memory, nccl, torchrun across GPUs) are left to a GPU machine.
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import timm
import torch
from transformers import CLIPVisionConfig

from detectlib import gpu_check
from detectlib.models.encoders import clip_l14_config
from detectlib.workflows.bench import record_results

TINY_CLIP = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             patch_size=8, image_size=32, projection_dim=16)
SIZES = {"image_size": 32, "batch_size": 2, "steps": 1, "warmup": 1}


@pytest.fixture(scope="module")
def entries(one_thread):
    return gpu_check.measure("cpu", convnext=partial(timm.create_model, "convnext_atto", pretrained=False,
                                                     num_classes=2), clip_config=TINY_CLIP, **SIZES)


def test_measure_runs_on_cpu_and_returns_bench_entries_with_the_device(entries):
    assert set(entries) == {gpu_check.TRAIN_KEY, gpu_check.CLIP_KEY}
    cpu = gpu_check.device_name(torch.device("cpu"))
    for key, entry in entries.items():
        assert isinstance(entry["value"], float) and entry["value"] > 0, key
        assert entry["device"] == cpu and entry["precision"] == "float32", key
        assert entry["peak_memory_mb"] is None, key  # torch counts peak memory on CUDA only
        assert entry["batch_size"] == 2 and entry["steps"] == 1 and entry["image_size"] == 32, key
        assert {"cpu", "date", "torch"} <= set(entry["machine"]), key
    assert entries[gpu_check.CLIP_KEY]["layers"] == 2 and entries[gpu_check.TRAIN_KEY]["params_m"] > 0
    assert entries[gpu_check.TRAIN_KEY]["estimated_peak_mb"] > 0  # the estimate, beside the peak a GPU measures


def test_the_default_clip_is_vit_l14_at_224():
    config = clip_l14_config()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.patch_size,
            config.image_size, config.projection_dim) == (1024, 24, 16, 14, 224, 768)


def test_ddp_worker_without_torchrun_writes_rank_0s_result(tmp_path, one_thread):
    result = tmp_path / "ddp.json"
    gpu_check.ddp_worker("convnext_atto", result=result, **SIZES)
    found = json.loads(result.read_text())
    assert found["images_per_s"] > 0 and found["gpus"] == 1 and found["peak_memory_mb_per_gpu"] is None


def test_one_gpu_reports_ddp_as_not_exercised():
    entry = gpu_check.ddp_entry("convnext_tiny", gpus=1, device="NVIDIA H200", single_gpu_images_per_s=100.0,
                                **SIZES)
    assert entry["value"] is None and entry["skipped"] == "1 GPU: DDP not exercised"
    assert "1 GPU: DDP not exercised" in gpu_check.table({gpu_check.DDP_KEY: entry})


def test_record_joins_the_bench_file_and_keeps_its_entries(tmp_path, entries):
    out = tmp_path / "results" / "bench.json"
    out.parent.mkdir()
    out.write_text(json.dumps({"profile": "demo", "results": {"peak_rss_mb": {"value": 1.0}}}))
    record_results(entries, out, "demo")
    report = json.loads(out.read_text())
    assert report["profile"] == "demo" and set(report["results"]) == {"peak_rss_mb", *entries}
    table = gpu_check.table(entries).splitlines()
    assert table[0].split()[:2] == ["measure", "images/s"] and len(table) == 3


def test_without_cuda_it_prints_one_line_writes_nothing_and_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [gpu_check.NO_CUDA] and "make gpu-check" in out
    assert not list(tmp_path.rglob("*"))


def test_mixed_precision_never_picks_the_emulated_bfloat16_of_a_t4(monkeypatch):
    """Training and the GPU check share one rule: native bf16 (Ampere and later) or fp16; float32 on the CPU."""
    from detectlib.training.loop import autocast_dtype

    asked = {}

    def t4(including_emulation: bool = True) -> bool:  # a T4 emulates bf16: True only when emulation counts
        asked["emulation"] = including_emulation
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert autocast_dtype(torch.device("cuda")) is torch.float16 and asked["emulation"] is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), amp=False) is None and autocast_dtype(torch.device("cpu")) is None
