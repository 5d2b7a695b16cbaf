"""``make bench`` runs end to end in a tiny configuration and writes well-formed JSON (no timing is asserted)."""

import json

from detectlib import bench

KEYS = {"clip_cache_speedup", "pipeline_vs_model_throughput", "data_wait_share", "infer_cli_latency_ratio",
        "train_images_per_s", "peak_rss_mb"}


def test_quick_bench_writes_every_key_with_machine_and_date(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["profile"] == "smoke" and set(report["results"]) == KEYS
    for key, entry in report["results"].items():
        assert {"cpu_count", "torch_threads", "date"} <= set(entry["machine"]), key
        if key in bench.GOALS:
            assert isinstance(entry["value"], float) and entry["value"] > 0 and isinstance(entry["met"], bool)
    assert report["results"]["infer_cli_latency_ratio"]["floor_s"] > 0
    assert set(report["results"]["train_images_per_s"]["value"]) == {"32", "64"}
    table = capsys.readouterr().out
    assert "clip_cache_speedup" in table and f"written {out}" in table
