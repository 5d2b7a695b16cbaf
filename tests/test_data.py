"""detectlib.data: safe loading of any image file, the reference transforms, class order and layouts."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlib.config import CLASSES
from detectlib.data.datasets import ImageFolderDataset, image_datasets
from detectlib.data.images import (
    ImageLoadError,
    decode_mode,
    decode_side_of,
    full_decode,
    is_image_file,
    load_image,
)
from detectlib.data.layout import LayoutError, check_layout, discover_generators
from detectlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, build_transforms

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _two_tone(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue: shows where a rotation moved things."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = RED
    array[:, width // 2 :] = BLUE
    return Image.fromarray(array)


def _layout(root: Path, per_class: int = 3, size: int = 24) -> Path:
    for split in ("train", "val"):
        for label, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.new("RGB", (size + k, size), (200 * label, 50 * k, 0)).save(folder / f"{k}.png")
    return root


# ------------------------------------------------------------------------------------------------- load_image
def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((4, 4, 4), np.uint8)
    array[:2] = (10, 20, 30, 255)  # opaque top
    array[2:] = (10, 20, 30, 0)  # transparent bottom
    Image.fromarray(array, "RGBA").save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.mode == "RGB"
    assert im.getpixel((0, 0)) == (10, 20, 30) and im.getpixel((0, 3)) == (255, 255, 255)


def test_palette_images_keep_their_colours_and_transparency_becomes_white(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "pt.png", transparency=0)
    assert load_image(tmp_path / "p.png").getpixel((1, 1)) == (200, 100, 50)
    assert load_image(tmp_path / "p.png").getpixel((0, 0)) == (0, 0, 0)
    assert load_image(tmp_path / "pt.png").getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_images_are_rescaled_not_clipped(tmp_path):
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert [load_image(tmp_path / "deep.png").getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    _two_tone().save(tmp_path / "phone.jpg", exif=exif, quality=95)
    im = load_image(tmp_path / "phone.jpg")
    assert im.size == (20, 40)
    top, bottom = np.asarray(im)[5, 10], np.asarray(im)[35, 10]
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left (red) half is now on top


def test_a_large_jpeg_is_decoded_reduced_but_never_below_the_target(tmp_path):
    _two_tone(900, 500).save(tmp_path / "wide.jpg", quality=90)
    _two_tone(900, 500).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.jpg", 64).size == (225, 125)  # 1/4: at 1/8 the short side (63) < 64
    for target in (60, 100, 200, 249, 250, 251, 500):
        short = min(load_image(tmp_path / "wide.jpg", target).size)
        assert target <= short < 2 * target or short == 500, target  # the largest reduction that keeps target
    assert load_image(tmp_path / "wide.png", 64).size == (900, 500)  # other formats: whole
    with full_decode():
        assert load_image(tmp_path / "wide.jpg", 64).size == (900, 500) and decode_mode(64) == "full"
    assert decode_mode(64) == "jpeg-draft>=64" and decode_mode(None) == "full"


def test_the_reduced_decode_keeps_the_exif_rotation_and_looks_the_same(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    _two_tone(800, 400).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    reduced, whole = load_image(tmp_path / "phone.jpg", 100), load_image(tmp_path / "phone.jpg")
    assert reduced.size == (100, 200) and whole.size == (400, 800)
    assert np.abs(np.asarray(reduced.resize((50, 100)), int) - np.asarray(whole.resize((50, 100)), int)).mean() < 3


def test_consumers_say_the_side_they_need():
    assert decode_side_of(ImageTransform(64)) == 64
    assert decode_side_of(ImageTransform(64).prepare) == 64  # a bound method's object speaks for it
    assert decode_side_of(lambda im: im) is None  # an unknown transform: decoded whole


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    _two_tone().convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    im = load_image(tmp_path / "print.jpg")
    assert im.mode == "RGB" and im.size == (40, 20)
    assert np.abs(np.asarray(im, dtype=int)[10, 5] - RED).max() < 20


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif").getpixel((0, 0)) == RED


@pytest.mark.parametrize(
    "name, content",
    [("notes.jpg", b"this is text, not a JPEG"), ("empty.png", b""), ("cut.png", None)],
)
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    if content is None:  # a PNG cut short in the middle of its pixel data
        _two_tone(64, 64).save(path)
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=name):
        load_image(path)


def test_image_extensions_are_matched_in_any_case():
    assert is_image_file("a/B.JPG") and is_image_file("x.webp") and not is_image_file("notes.txt")


# ------------------------------------------------------------------------------------------------- transforms
def test_val_transform_resizes_and_normalises():
    val = build_transforms(32)["val"]
    out = val(Image.new("RGB", (50, 40), (255, 255, 255)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 10, 10], expected)
    assert torch.equal(val(_two_tone()), val(_two_tone()))



def test_val_transform_matches_torchvisions_reference_composition():
    """The fused fast path (``make bench``) must give the reference's ToTensor -> Normalize numbers."""
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    reference = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    image = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    torch.testing.assert_close(build_transforms(24)["val"](image), reference(image), atol=1e-5, rtol=0)
    grey = Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8))  # any mode becomes RGB
    torch.testing.assert_close(build_transforms(24)["val"](grey), reference(grey.convert("RGB")), atol=1e-5, rtol=0)

def test_train_transform_flips_horizontally_at_random():
    transforms = build_transforms(16, mean=(0, 0, 0), std=(1, 1, 1))
    assert transforms["train"].train and not transforms["val"].train
    plain = transforms["val"](_two_tone())
    torch.manual_seed(0)
    outs = [transforms["train"](_two_tone()) for _ in range(20)]
    flipped = [torch.equal(o, plain.flip(-1)) for o in outs]
    assert all(f or torch.equal(o, plain) for f, o in zip(flipped, outs, strict=True))
    assert 0 < sum(flipped) < 20


# -------------------------------------------------------------------------------------------- folders, layouts
def test_class_order_is_ai_0_nature_1(tmp_path):
    data = ImageFolderDataset(_layout(tmp_path) / "train", build_transforms(16)["val"])
    assert data.classes == ["ai", "nature"] and data.class_to_idx == {"ai": 0, "nature": 1}
    assert data.targets == [0, 0, 0, 1, 1, 1]
    assert all(p.parent.name == CLASSES[label] for p, label in data.samples)
    image, label = data[4]
    assert image.shape == (3, 16, 16) and label == 1


def test_unreadable_files_are_skipped_with_a_warning_or_raise_when_strict(tmp_path):
    root = _layout(tmp_path)
    (root / "train" / "ai" / "bad.png").write_bytes(b"oops")
    with pytest.warns(UserWarning, match="bad.png"):
        data = ImageFolderDataset(root / "train", build_transforms(16)["val"])
    assert len(data) == 6 and [p.name for p, _ in data.skipped] == ["bad.png"]
    with pytest.raises(ImageLoadError, match="bad.png"):
        ImageFolderDataset(root / "train", build_transforms(16)["val"], strict=True)


def test_missing_and_unexpected_class_folders(tmp_path):
    root = _layout(tmp_path)
    (root / "train" / "maybe").mkdir()
    with pytest.warns(UserWarning, match="maybe"):
        ImageFolderDataset(root / "train", build_transforms(16)["val"])
    shutil.rmtree(root / "val" / "nature")
    with pytest.raises(LayoutError, match="nature"):
        ImageFolderDataset(root / "val", build_transforms(16)["val"])


def test_check_layout_names_what_is_missing(tmp_path):
    with pytest.raises(LayoutError, match="folder not found"):
        check_layout(tmp_path / "nowhere")
    root = _layout(tmp_path / "ds")
    assert check_layout(root) == root
    (root / "val" / "ai").rename(tmp_path / "elsewhere")
    with pytest.raises(LayoutError, match=r"missing val/ai/"):
        check_layout(root)


def test_image_datasets_one_per_split_with_the_right_transforms(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean layout warns about nothing
        sets = image_datasets(_layout(tmp_path), img_size=16)
    assert set(sets) == {"train", "val"} and len(sets["train"]) == len(sets["val"]) == 6
    assert sets["train"].transform.train and not sets["val"].transform.train


def test_discover_generators_finds_genimage_folders_and_skips_combined_ones(tmp_path):
    for gen in ("VQDM", "ADM", "ALL_full", "ALL"):
        (tmp_path / gen / "train" / "ai").mkdir(parents=True)
    (tmp_path / "notes").mkdir()  # no train/val inside: not a generator
    (tmp_path / "file.txt").write_text("x")
    assert discover_generators(tmp_path) == ["ADM", "VQDM"]
    assert discover_generators(tmp_path / "missing") == []


def test_residual_input_is_the_image_minus_its_coarse_copy():
    """NPR's residual by hand: each pixel minus the top-left pixel of its 2x2 block, times the gain."""
    import torch

    from detectlib.data.transforms import RESIDUAL_GAIN, ImageTransform, residual

    x = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(2, 5, 6) ** 1.5  # odd height on purpose
    expected = torch.empty_like(x)
    for i in range(5):
        for j in range(6):
            expected[:, i, j] = RESIDUAL_GAIN * (x[:, i, j] - x[:, i - i % 2, j - j % 2])
    torch.testing.assert_close(residual(x), expected)
    torch.testing.assert_close(residual(x.unsqueeze(0))[0], expected)  # batched: the same
    assert residual(torch.full((3, 8, 8), 0.7)).abs().max() == 0  # flat content cancels
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8))
    rgb, res = ImageTransform(16)(image), ImageTransform(16, input="residual")(image)
    torch.testing.assert_close(res, residual(rgb))
    with pytest.raises(ValueError, match="unknown input"):
        ImageTransform(16, input="fft")
