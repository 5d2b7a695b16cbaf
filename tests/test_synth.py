"""The embedded demo dataset: split by photo, disjoint roles, layout, reproducibility, pluggable families."""

from __future__ import annotations

import hashlib
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlib import synth
from detectlib.config import CLASSES, get_profile
from detectlib.data import demo
from detectlib.data.audit import audit_dataset, blockiness
from detectlib.data.layout import SPLITS, LayoutError, discover_generators, list_class_images

SMOKE = get_profile("smoke")


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP contention (5x faster here); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAMILIES = ["AE", "DCGAN", "ESRGAN"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_torch_thread) -> Path:
    return demo.build_demo_dataset(SMOKE, root=tmp_path_factory.mktemp("synth") / "raw", seed=0)


class Mirror:
    """A plug-in family for the tests: fakes are the mirrored sources; records what the builder passed."""

    name = "MIRROR"

    def __init__(self) -> None:
        self.fit_shape, self.fakes = None, []

    def fit(self, train_patches: np.ndarray, profile, seed: int) -> None:
        self.fit_shape, self.fit_dtype = train_patches.shape, train_patches.dtype

    def generate(self, sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        self.fakes.append(np.ascontiguousarray(sources[:n, :, ::-1]))
        return self.fakes[-1]


# ---------------------------------------------------------------------------------------------- photos and roles
def test_every_photo_loads_offline_and_belongs_to_exactly_one_split():
    photos = demo.real_photos()
    assert set(photos) == set(demo.PHOTO_SPLIT)
    assert set(demo.PHOTO_SPLIT.values()) == set(SPLITS)
    for name, image in photos.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 256, name


@pytest.mark.parametrize("size", [32, 64])
def test_no_photo_feeds_both_train_and_val(size):
    cells = demo.photo_cells(size)
    photos = {split: {c.photo for c in cells if c.split == split} for split in SPLITS}
    assert photos["train"] and photos["val"]
    assert not photos["train"] & photos["val"]
    assert all(c.split == demo.PHOTO_SPLIT[c.photo] for c in cells)


@pytest.mark.parametrize("size", [32, 64])
def test_nature_and_source_regions_are_disjoint_and_both_present(size):
    cells = demo.photo_cells(size)
    for split, role in product(SPLITS, demo.ROLES):
        assert any(c.split == split and c.role == role for c in cells), (split, role)
    nature = [c for c in cells if c.role == "nature"]
    source = [c for c in cells if c.role == "source"]
    assert not [(a, b) for a in nature for b in source if a.photo == b.photo and _overlap(a.box, b.box)]


@pytest.mark.parametrize("split", SPLITS)
def test_crops_stay_inside_a_cell_of_their_split_and_role(split):
    pool = demo.PatchPool(SMOKE.img_size, split)
    for role in demo.ROLES:
        for crop in pool.crops(role, 300, np.random.default_rng(1)):
            (left, top, right, bottom), cell = crop.box, crop.cell
            assert (cell.split, cell.role) == (split, role)
            assert (
                cell.box[0] <= left and cell.box[1] <= top and right <= cell.box[2] and bottom <= cell.box[3]
            )
            assert demo.MIN_SCALE * SMOKE.img_size - 1 <= right - left == bottom - top


def test_patches_are_seeded_and_varied():
    pool = demo.PatchPool(SMOKE.img_size, "train")
    a = pool.sample("nature", 20, np.random.default_rng(5))
    assert a.shape == (20, SMOKE.img_size, SMOKE.img_size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, pool.sample("nature", 20, np.random.default_rng(5)))
    assert not np.array_equal(a, pool.sample("nature", 20, np.random.default_rng(6)))
    assert len({patch.tobytes() for patch in a}) == 20


def test_downscaling_removes_the_source_jpeg_grid():
    photos = demo.real_photos()
    assert blockiness(photos["retina"]) > 1.1 and blockiness(photos["grace_hopper"]) > 1.1  # the JPEG grid
    patches = demo.PatchPool(64, "train").sample("nature", 200, np.random.default_rng(0))
    assert 0.9 < np.mean([blockiness(p) for p in patches]) < 1.05


# ------------------------------------------------------------------------------------------------------ the build
def test_build_writes_one_genimage_folder_per_family(built):
    assert discover_generators(built) == FAMILIES
    expected = {"train": SMOKE.train_per_class, "val": SMOKE.val_per_class}
    for gen, split, cls in product(FAMILIES, SPLITS, CLASSES):
        files = list_class_images(built / gen / split / cls)
        assert len(files) == expected[split], (gen, split, cls)
        with Image.open(files[0]) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (SMOKE.img_size, SMOKE.img_size))
    assert sorted(p.name for p in built.parent.iterdir()) == ["controls", "raw"]  # no staging folder left behind


def test_every_image_records_its_source_photo_and_only_photos_of_its_split(built):
    """The manifest names each image's photo (fakes made from a patch: that patch's photo; DCGAN's samples from
    noise: their own group), so later splits and intervals can keep a photo on one side."""
    for family in ("AE", "DCGAN", "ESRGAN"):
        folder = built / family
        paths = sorted(folder.glob("*/*/*.png"))
        groups = demo.source_groups(paths)
        assert len(groups) == len(paths) and all(groups)
        for path, group in zip(paths, groups, strict=True):
            split = path.parts[-3]
            if family == "DCGAN" and path.parent.name == "ai":
                assert group == f"DCGAN:{split}/{path.stem}"
            else:
                assert group.startswith("photo:") and demo.PHOTO_SPLIT[group.removeprefix("photo:")] == split
        val_photos = {g for g, p in zip(groups, paths, strict=True) if p.parts[-3] == "val" and g.startswith("photo:")}
        assert len(val_photos) > 1  # several photos: a grouped split has something to split


def test_resampling_control_is_bicubic_upscaled_real_patches_labelled_nature(built):
    control = built.parent / "controls" / "BICUBIC"
    assert sorted(p.relative_to(control).as_posix() for p in control.glob("*/*")) == ["val/nature"]
    files = list_class_images(control / "val" / "nature")
    assert len(files) == SMOKE.val_per_class
    with Image.open(files[0]) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (SMOKE.img_size, SMOKE.img_size))
    # the same shrink-then-grow path as the ESRGAN fakes, but smoother: bicubic adds no GAN texture
    def detail(paths):
        return np.mean([np.abs(np.diff(np.asarray(Image.open(p), dtype=float), axis=1)).mean() for p in paths])

    assert detail(files) < detail(list_class_images(built / "ESRGAN" / "val" / "ai"))


def test_audit_of_the_built_set_finds_no_difference_between_classes(built):
    report = audit_dataset(built)
    assert report.warnings == []
    assert {r["generator"] for r in report.rows} == set(FAMILIES)
    assert all(r["formats"] == {"PNG": r["files"]} and len(r["sizes"]) == 1 for r in report.rows)


def test_rerun_with_same_settings_reuses_the_build(built, capsys):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*.png")}
    assert demo.build_demo_dataset(SMOKE, root=built, seed=0) == built
    assert "Reusing AE, DCGAN" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*.png")} == before


def test_build_is_reproducible_from_the_seed(built, tmp_path):
    again = demo.build_demo_dataset(
        SMOKE, root=tmp_path / "raw", seed=0, families=[demo.AutoencoderFamily()]
    )
    assert _digest(again / "AE") == _digest(built / "AE")
    other = demo.build_demo_dataset(
        SMOKE, root=tmp_path / "raw", seed=1, families=[demo.AutoencoderFamily()]
    )
    assert _digest(other / "AE").keys() == _digest(built / "AE").keys()
    assert _digest(other / "AE") != _digest(built / "AE")  # a new seed rebuilt the folder in place


def test_training_leaves_the_callers_torch_rng_alone():
    patches = demo.PatchPool(SMOKE.img_size, "train").sample("source", 16, np.random.default_rng(0))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    demo.DCGANFamily().fit(patches, get_profile("smoke", generator_steps=2), seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_a_new_family_plugs_in_and_its_fakes_are_written_losslessly(tmp_path):
    family = Mirror()
    root = demo.build_demo_dataset(SMOKE, root=tmp_path / "raw", families=[family])
    assert discover_generators(root) == ["MIRROR"]
    assert family.fit_shape == (4 * SMOKE.train_per_class, SMOKE.img_size, SMOKE.img_size, 3)
    assert family.fit_dtype == np.uint8
    for split, fakes in zip(SPLITS, family.fakes, strict=True):
        written = np.stack(
            [np.asarray(Image.open(p)) for p in list_class_images(root / "MIRROR" / split / "ai")]
        )
        np.testing.assert_array_equal(written, fakes)
        nature = {
            np.asarray(Image.open(p)).tobytes() for p in list_class_images(root / "MIRROR" / split / "nature")
        }
        assert not nature & {fake[:, ::-1].tobytes() for fake in fakes}  # sources are not the nature patches


def test_a_family_returning_the_wrong_shape_is_named(tmp_path):
    class Broken(Mirror):
        name = "BROKEN"

        def generate(self, sources, n, rng):
            return sources[:n, :8]

    with pytest.raises(ValueError, match="BROKEN.generate returned"):
        demo.build_demo_dataset(SMOKE, root=tmp_path / "raw", families=[Broken()])
    assert list(tmp_path.iterdir()) == []  # neither a half-built folder nor a staging folder


def test_a_folder_not_built_here_is_never_replaced(tmp_path):
    mine = tmp_path / "raw" / "MIRROR" / "train" / "ai" / "mine.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="not built by detectlib.synth"):
        demo.build_demo_dataset(SMOKE, root=tmp_path / "raw", families=[Mirror()], force=True)
    assert mine.read_bytes() == b"user data"


def test_cli_builds_and_refuses_the_full_profile(tmp_path, capsys):
    assert synth.main(["--profile", "smoke", "--root", str(tmp_path / "raw"), "--seed", "3"]) == 0
    assert "Built AE" in capsys.readouterr().out
    assert synth.main(["--profile", "full", "--root", str(tmp_path / "raw")]) == 2
    assert capsys.readouterr().err.startswith("error: profile 'full'")


def test_ensure_builds_demo_data_but_only_checks_real_data_in_full(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    with pytest.raises(LayoutError, match=r"fetch_cifake\(\) \(CIFAKE.*about 100 MB.*fetch_tiny_genimage"):
        demo.ensure_demo_dataset("full")
    assert not (tmp_path / "data").exists()
    (tmp_path / "data" / "raw" / "ADM" / "val").mkdir(parents=True)
    assert demo.ensure_demo_dataset("full") == tmp_path / "data" / "raw"
    assert (
        demo.ensure_demo_dataset(get_profile("smoke", generator_steps=1))
        == tmp_path / ".smoke" / "data" / "raw"
    )
    assert discover_generators(tmp_path / ".smoke" / "data" / "raw") == FAMILIES


# ------------------------------------------------------------------------------------------------------- spectra
def test_mean_log_spectrum_shows_a_checkerboard_at_the_nyquist_frequency():
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 20, (8, 32, 32, 3))
    checker = noise + 30 * (np.indices((32, 32)).sum(axis=0) % 2)[None, :, :, None]
    plain, marked = demo.mean_log_spectrum(noise), demo.mean_log_spectrum(checker)
    assert plain.shape == (32, 32)
    # fftshift puts the frequency (-1/2, -1/2) cycles/pixel at index (0, 0)
    assert marked[0, 0] > plain[0, 0] + 2
    assert abs(marked[5:-5, 5:-5].mean() - plain[5:-5, 5:-5].mean()) < 0.1


def test_dataset_spectra_has_real_and_every_generator(built):
    spectra = demo.dataset_spectra(built)
    assert list(spectra) == ["real", *FAMILIES]
    assert all(s.shape == (SMOKE.img_size, SMOKE.img_size) and np.isfinite(s).all() for s in spectra.values())
