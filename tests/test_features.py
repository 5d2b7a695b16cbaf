"""detectlib.features: the embedding cache is hit on a second pass, keyed by content and by encoder, and equals
encoding directly. Tiny seeded random CLIP, images made in tmp_path, offline."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import make_tree
from PIL import Image

from detectlib.data.images import load_image
from detectlib.models import features
from detectlib.models.encoders import make_encoder


@pytest.fixture(scope="module")
def encoder():
    return make_encoder("clip-tiny-random")


@pytest.fixture()
def split(tmp_path) -> Path:
    return make_tree(tmp_path / "GEN") / "val"


def test_second_pass_is_served_from_the_cache(encoder, split, tmp_path):
    first = features.embed_folder(encoder, split, tmp_path / "cache")
    second = features.embed_folder(encoder, split, tmp_path / "cache")
    assert (first.stats.hits, first.stats.misses) == (0, 8)
    assert (second.stats.hits, second.stats.misses) == (8, 0)
    assert torch.equal(first.embeddings, second.embeddings)
    assert first.embeddings.shape == (8, encoder.dim)
    assert first.labels.tolist() == [0] * 4 + [1] * 4
    assert [p.parent.name for p in first.paths] == ["ai"] * 4 + ["nature"] * 4


def test_cached_embeddings_equal_encoding_directly(encoder, split, tmp_path):
    cached = features.embed_folder(encoder, split, tmp_path / "cache", batch_size=3)
    with torch.inference_mode():
        direct = encoder.embed(encoder.preprocess([load_image(p) for p in cached.paths]))
    torch.testing.assert_close(cached.embeddings, direct, rtol=1e-5, atol=1e-5)


def test_a_changed_file_misses_and_a_copy_hits(encoder, split, tmp_path):
    before = features.embed_folder(encoder, split, tmp_path / "cache")
    changed = split / "ai" / "ai_0.png"
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(changed)
    shutil.copy(split / "nature" / "nature_0.png", split / "nature" / "nature_copy.png")
    after = features.embed_folder(encoder, split, tmp_path / "cache")
    assert (after.stats.hits, after.stats.misses) == (8, 1)  # 7 unchanged + the copy hit; the edit misses
    assert not torch.allclose(after.embeddings[0], before.embeddings[0])
    index = {p.name: i for i, p in enumerate(after.paths)}
    assert torch.equal(after.embeddings[index["nature_copy.png"]], after.embeddings[index["nature_0.png"]])


def test_another_encoder_gets_its_own_entries(encoder, split, tmp_path):
    features.embed_folder(encoder, split, tmp_path / "cache")
    other = make_encoder("clip-tiny-random")
    with torch.no_grad():
        other.model.post_layernorm.weight.mul_(2.0)  # same name, other weights: another cache key
    assert other.cache_key != encoder.cache_key
    assert make_encoder("clip-tiny-random").cache_key == encoder.cache_key  # seeded: same spec, same key
    result = features.embed_folder(other, split, tmp_path / "cache")
    assert (result.stats.hits, result.stats.misses) == (0, 8)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_cache_file_loads_without_code_and_no_cache_dir_always_encodes(encoder, split, tmp_path):
    features.embed_folder(encoder, split, tmp_path / "cache")
    (store,) = (tmp_path / "cache").glob("*.pt")
    payload = torch.load(store, weights_only=True)
    assert payload["cache_key"] == encoder.cache_key and payload["embeddings"].shape == (8, encoder.dim)
    for _ in range(2):
        assert features.embed_folder(encoder, split, None).stats.misses == 8


def test_unreadable_image_is_skipped_with_a_warning(encoder, split, tmp_path):
    (split / "ai" / "broken.png").write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = features.embed_folder(encoder, split, tmp_path / "cache")
    assert result.stats.skipped == 1 and len(result.paths) == 8
    assert any("broken.png" in str(w.message) for w in caught)


def test_pca_projects_to_two_components(encoder, split, tmp_path):
    points = features.pca_2d(features.embed_folder(encoder, split, tmp_path / "cache").embeddings)
    assert points.shape == (8, 2) and np.isfinite(points).all()


def test_a_damaged_shard_is_warned_about_and_rebuilt(encoder, split, tmp_path):
    features.embed_folder(encoder, split, tmp_path / "cache")
    (shard,) = (tmp_path / "cache").glob("*.pt")
    shard.write_bytes(b"PK\x03\x04half")
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        again = features.embed_folder(encoder, split, tmp_path / "cache")
    assert again.stats.misses == 8 and len(list((tmp_path / "cache").glob("*.pt"))) == 1


def test_new_images_add_a_shard_and_a_mixed_read_gathers_both(encoder, split, tmp_path):
    first = features.embed_folder(encoder, split, tmp_path / "cache", limit=2)
    both = features.embed_folder(encoder, split, tmp_path / "cache")
    assert (both.stats.hits, both.stats.misses) == (4, 4)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    index = {p: i for i, p in enumerate(both.paths)}
    for path, vector in zip(first.paths, first.embeddings, strict=True):
        assert torch.equal(both.embeddings[index[path]], vector)


def test_the_cache_key_follows_the_decode_mode(encoder, split, tmp_path):
    from detectlib.data.images import full_decode

    features.embed_folder(encoder, split, tmp_path / "cache")
    with full_decode():
        whole = features.embed_folder(encoder, split, tmp_path / "cache")
    assert whole.stats.misses == 8  # another decode, other entries: the two are never mixed
