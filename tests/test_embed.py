"""detectlib.embed: a folder embedded by two CPU processes under torchrun (gloo) gives the vectors of one process,
merged into one shard; the cache then serves the folder without encoding; another version's cache is refused.
Tiny seeded random CLIP (smoke profile), images made in tmp_path, offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from builders import make_tree

from detectlib import embed
from detectlib.data import layout
from detectlib.data.layout import LayoutError
from detectlib.models import features
from detectlib.models.encoders import make_encoder
from detectlib.workflows import embedding

ENCODER = "clip-tiny-random"


@pytest.fixture(scope="module")
def encoder():
    return make_encoder(ENCODER)


def _vectors(cache, encoder) -> dict[str, torch.Tensor]:
    store = features.EmbeddingStore(cache, encoder.cache_key)
    shards = [features.read_shard(p, encoder.cache_key) for p in store.shard_files()]
    return {d: v for digests, vectors in shards for d, v in zip(digests, vectors, strict=True)}


def test_two_processes_under_torchrun_equal_one(encoder, tmp_path):
    tree = make_tree(tmp_path / "GEN", n_train=5, n_val=3)
    single = embedding.embed_dataset(tree, encoder, tmp_path / "one", batch_size=4)
    assert (single.images, single.encoded, single.hits, single.processes) == (16, 16, 0, 1)
    env = {**os.environ, "DETECTLIB_PROFILE": "smoke", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "DETECTLIB_ROOT": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "detectlib.embed", str(tree), "--encoder", ENCODER, "--cache", str(tmp_path / "two"),
                          "--batch_size", "4"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "16 encoded" in run.stdout and "2 processes" in run.stdout
    two = _vectors(tmp_path / "two", encoder)
    one = _vectors(tmp_path / "one", encoder)
    assert set(two) == set(one) and len(two) == 16
    for digest, vector in one.items():
        torch.testing.assert_close(two[digest], vector, rtol=1e-5, atol=1e-5)
    shards = list((tmp_path / "two").iterdir())
    assert len(shards) == 1 and "part" not in shards[0].name  # the ranks' parts merged into one shard
    served = features.embed_folder(encoder, tree / "val", tmp_path / "two")
    assert (served.stats.hits, served.stats.misses) == (6, 0)


def test_a_second_run_encodes_nothing_and_a_folder_read_is_one_mapped_block(encoder, tmp_path):
    split = make_tree(tmp_path / "GEN") / "val"
    embedding.embed_dataset(split, encoder, tmp_path / "cache")
    again = embedding.embed_dataset(split, encoder, tmp_path / "cache")
    assert (again.hits, again.encoded, again.shard) == (8, 0, None)
    store = features.EmbeddingStore(tmp_path / "cache", encoder.cache_key)
    (shard,) = store.shard_files()
    served = features.embed_folder(encoder, split, tmp_path / "cache")
    mapped = features.read_shard(shard, encoder.cache_key)[1]
    assert served.embeddings.untyped_storage().nbytes() == mapped.untyped_storage().nbytes()  # a view, no copy


def test_another_versions_cache_is_refused_naming_the_file_and_the_fix(encoder, tmp_path):
    split = make_tree(tmp_path / "GEN") / "val"
    features.embed_folder(encoder, split, tmp_path / "cache")
    (shard,) = (tmp_path / "cache").glob("*.pt")
    payload = torch.load(shard, weights_only=True)
    torch.save({**payload, "format": "detectlib-embeddings/1"}, shard)
    with pytest.raises(features.CacheFormatError, match=f"{shard.name}: .*delete it and rerun"):
        features.embed_folder(encoder, split, tmp_path / "cache")


def test_a_folder_that_is_no_dataset_is_one_line(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(LayoutError, match="neither a split folder"):
        layout.dataset_samples(tmp_path / "x")
    assert embed.main([str(tmp_path / "x")]) == 2


def test_a_command_meeting_another_versions_cache_says_one_line_not_a_traceback(encoder, tmp_path, monkeypatch,
                                                                                capsys):
    from detectlib import train_clip_head

    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    monkeypatch.setenv("DETECTLIB_PROFILE", "smoke")
    tree = make_tree(tmp_path / "GEN")
    cache = tmp_path / ".smoke" / "cache" / "embeddings"
    features.embed_folder(encoder, tree / "val", cache)
    (shard,) = cache.glob("*.pt")
    torch.save({**torch.load(shard, weights_only=True), "format": "detectlib-embeddings/1"}, shard)
    code = train_clip_head.main(["--data_dir", str(tree), "--out_dir", str(tmp_path / "out"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().startswith("error:") and shard.name in err and "delete it and rerun" in err
