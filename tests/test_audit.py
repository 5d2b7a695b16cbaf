"""The dataset audit: JPEG quality and grid measures, the class-difference warnings, unreadable files."""

from __future__ import annotations

from io import BytesIO
from itertools import product
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from detectlib.config import CLASSES
from detectlib.data.audit import (
    audit_dataset,
    blockiness,
    jpeg_quality,
    reencode_class,
    sample_thumbnails,
)
from detectlib.data.layout import SPLITS, LayoutError
from detectlib.plots import plot_thumbnail_grid

matplotlib.use("Agg")


def _smooth_image(seed: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Low-frequency colour noise: JPEG's block edges show clearly on it."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC))


def _save(array: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _tree(
    root: Path, ai=("png", (32, 32)), nature=("png", (32, 32)), n: int = 4, gens=("ADM", "GLIDE")
) -> Path:
    """A GenImage-style tree whose classes are written in the given (format, size)."""
    spec = {"ai": ai, "nature": nature}
    for i, (gen, split, cls) in enumerate(product(gens, SPLITS, CLASSES)):
        ext, size = spec[cls]
        for k in range(n):
            _save(_smooth_image(100 * i + k, size), root / gen / split / cls / f"{k}.{ext}", quality=90)
    return root


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 95])
def test_jpeg_quality_reads_back_the_encoder_setting(quality):
    buffer = BytesIO()
    Image.fromarray(_smooth_image(0, (64, 64))).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    assert jpeg_quality(Image.open(buffer)) == quality


def test_jpeg_quality_is_none_for_a_png(tmp_path):
    assert jpeg_quality(Image.open(_save(_smooth_image(0), tmp_path / "a.png"))) is None


def test_blockiness_sees_a_jpeg_grid_and_not_a_lossless_image(tmp_path):
    image = _smooth_image(3, (128, 128))
    jpeg = np.asarray(Image.open(_save(image, tmp_path / "a.jpg", quality=20)))
    assert blockiness(jpeg) > 1.5
    assert 0.8 < blockiness(image) < 1.2
    shifted = jpeg[3:, 5:]  # same pixels, grid no longer at multiples of 8
    assert blockiness(shifted) < blockiness(jpeg) - 0.3
    assert np.isnan(blockiness(np.zeros((8, 8))))


def test_matching_classes_give_no_warning_and_one_row_per_folder(tmp_path):
    report = audit_dataset(_tree(tmp_path / "raw"))
    assert report.warnings == []
    assert len(report.rows) == 2 * 2 * 2
    row = report.rows[0]
    assert (row["generator"], row["split"], row["class"]) == ("ADM", "train", "ai")
    assert row["files"] == row["checked"] == 4
    assert row["formats"] == {"PNG": 4} and row["sizes"] == {"32x32": 4} and row["jpeg_quality"] is None


def test_classes_in_different_formats_trigger_the_warning(tmp_path, capsys):
    report = audit_dataset(_tree(tmp_path / "raw", ai=("png", (32, 32)), nature=("jpg", (32, 32))))
    assert len(report.warnings) == 4  # 2 generators x 2 splits
    assert all("formats differ" in w for w in report.warnings)
    assert report.warnings[0].startswith("ADM/train:")
    nature = next(r for r in report.rows if r["class"] == "nature")
    assert nature["formats"] == {"JPEG": 4} and nature["jpeg_quality"] == {
        "min": 90,
        "median": 90.0,
        "max": 90,
    }
    report.print()
    out = capsys.readouterr().out
    assert "WARNING: ADM/train: formats differ" in out and "90 (90-90)" in out


def test_reencoding_one_class_builds_the_trap_the_audit_catches(tmp_path):
    src = _tree(tmp_path / "raw", gens=("ADM",)) / "ADM"
    before = sorted((p, p.read_bytes()) for p in src.rglob("*.png"))
    trap = reencode_class(src, tmp_path / "trap", cls="nature", fmt="JPEG", quality=80)
    assert sorted((p, p.read_bytes()) for p in src.rglob("*.png")) == before
    report = audit_dataset(trap)
    assert [r["formats"] for r in report.rows] == [{"PNG": 4}, {"JPEG": 4}] * 2
    assert [r["jpeg_quality"]["median"] for r in report.rows if r["class"] == "nature"] == [80, 80]
    assert len(report.warnings) == 2 and all("formats differ" in w for w in report.warnings)


def test_classes_of_different_sizes_trigger_the_warning(tmp_path):
    report = audit_dataset(
        _tree(tmp_path / "raw", ai=("png", (32, 32)), nature=("png", (48, 40)), gens=("ADM",))
    )
    assert len(report.warnings) == 2 and all("image sizes differ" in w for w in report.warnings)


def test_fixed_size_fakes_against_photos_of_many_sizes_trigger_the_warning(tmp_path):
    root = _tree(tmp_path / "raw", gens=("ADM",))
    for k, size in enumerate([(30, 34), (34, 30), (32, 36)]):
        _save(_smooth_image(k, size), root / "ADM" / "val" / "nature" / f"{k}.png")
    report = audit_dataset(root)
    assert [w.split(":")[0] for w in report.warnings] == ["ADM/val"]
    assert "4 sizes, median 32x33" in report.warnings[0]


def test_jpeg_quality_gap_triggers_the_warning(tmp_path):
    root = tmp_path / "raw"
    for split, (cls, quality) in product(SPLITS, [("ai", 95), ("nature", 70)]):
        for k in range(3):
            _save(_smooth_image(k), root / "ADM" / split / cls / f"{k}.jpg", quality=quality)
    warnings = audit_dataset(root).warnings
    assert [w.split("; ")[0] for w in warnings] == [
        f"ADM/{s}: JPEG qualities differ by 25 points" for s in SPLITS
    ]


def test_unreadable_files_are_counted_and_named_not_fatal(tmp_path):
    root = _tree(tmp_path / "raw", gens=("ADM",))
    (root / "ADM" / "val" / "ai" / "broken.png").write_bytes(b"not an image")
    report = audit_dataset(root)
    row = next(r for r in report.rows if (r["split"], r["class"]) == ("val", "ai"))
    assert row["files"] == 5 and [p.name for p, _ in row["unreadable"]] == ["broken.png"]
    assert [p.name for p, _ in report.unreadable] == ["broken.png"]
    assert any(w.startswith("ADM/val/ai: unreadable files: broken.png") for w in report.warnings)
    assert row["formats"] == {"PNG": 4}


def test_a_reference_layout_root_is_audited_as_one_generator(tmp_path):
    _tree(tmp_path, gens=("ALL",))
    report = audit_dataset(tmp_path / "ALL")
    assert {r["generator"] for r in report.rows} == {"ALL"} and len(report.rows) == 4


def test_large_folders_are_sampled_but_fully_counted(tmp_path):
    report = audit_dataset(_tree(tmp_path / "raw", n=6, gens=("ADM",)), max_per_class=2)
    assert all(r["files"] == 6 and r["checked"] == 2 and sum(r["formats"].values()) == 2 for r in report.rows)


def test_missing_or_empty_roots_raise_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="folder not found"):
        audit_dataset(tmp_path / "nowhere")
    with pytest.raises(LayoutError, match="no {train,val}"):
        audit_dataset(tmp_path)


def test_thumbnails_one_row_per_generator_and_class(tmp_path):
    root = _tree(tmp_path / "raw")
    groups = sample_thumbnails(root, n=3)
    assert list(groups) == ["ADM ai", "ADM nature", "GLIDE ai", "GLIDE nature"]
    assert all(len(images) == 3 and images[0].shape == (32, 32, 3) for images in groups.values())
    fig = plot_thumbnail_grid(sample_thumbnails(root, n=3), path=tmp_path / "fig" / "thumbs.png")
    assert len(fig.axes) == 4 * 3
    assert (tmp_path / "fig" / "thumbs.png").stat().st_size > 0
