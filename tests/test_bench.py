"""``make bench`` runs end to end in a tiny configuration and writes well-formed JSON (no timing is asserted)."""

import json

from detectlib import bench as bench_cli
from detectlib.labels import format_table
from detectlib.workflows import bench

KEYS = {"clip_cache_speedup", "draft_decode_speedup", "photo_pipeline_ratio", "draft_wild_auc_shift",
        "clip_b16_vs_onnx_int8", "embed_2proc_speedup", "head_epoch_peak_memory_ratio", "data_wait_share",
        "infer_cli_latency_ratio", "train_images_per_s", "peak_rss_mb"}


def test_quick_bench_writes_every_key_with_machine_and_date(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    out = tmp_path / "bench.json"
    assert bench_cli.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    results = report["results"]
    assert report["profile"] == "smoke" and set(results) == KEYS
    for key, entry in results.items():
        assert {"cpu_count", "cpu", "torch_threads", "date"} <= set(entry["machine"]), key
        assert {"avx512_bf16", "amx_bf16", "avx512_vnni", "cores"} <= set(entry["machine"]["cpu"]), key
        if key in bench.GOALS and "skipped" not in entry:
            assert isinstance(entry["value"], float) and entry["value"] >= 0 and isinstance(entry["met"], bool), key
    assert results["clip_b16_vs_onnx_int8"]["skipped"] and results["clip_b16_vs_onnx_int8"]["bfloat16_img_s"] > 0
    assert results["infer_cli_latency_ratio"]["floor_s"] > 0
    assert results["head_epoch_peak_memory_ratio"]["vectors"] == bench.HEAD_EPOCH_VECTORS["smoke"]
    # The work seconds the embed runs print can round to 0 on the smoke profile's four photos; wall time cannot.
    assert results["embed_2proc_speedup"]["two_wall_s"] > 0 and results["draft_decode_speedup"]["photos"] > 0
    assert set(results["train_images_per_s"]["value"]) == {"32", "64"}
    table = capsys.readouterr().out
    assert "clip_cache_speedup" in table and "skipped" in table and f"written {out}" in table


def test_the_printed_table_is_the_kits_one_table_formatter():
    results = {"ratio": {"value": 0.91234, "goal": ">= 0.9", "met": True},
               "speeds": {"value": {"64": 812.04, "128": 240.5}},
               "peer": {"value": None, "goal": ">= 1", "met": None}}
    rows = bench_cli.result_rows(results)
    assert [r["met"] for r in rows] == ["yes", "", ""]
    table = format_table(rows).splitlines()
    assert table[0].split() == ["measure", "value", "goal", "met"]
    assert "0.912" in table[1] and "64: 812.0, 128: 240.5" in table[2] and "skipped" in table[3]
