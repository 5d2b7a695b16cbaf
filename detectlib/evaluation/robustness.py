"""How scores move when the image changes but its class does not: JPEG re-compression, downscaling and blur
(``Perturbation``), swept over detectors (``robustness_sweep``, notebook 05)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter

from ..config import AI_INDEX
from ..labels import DEFAULT_THRESHOLD
from ..models.detector import Detector
from . import metrics
from .scoring import score_folder

# ------------------------------------------------------------------------------------------- robustness


@dataclass(frozen=True)
class Perturbation:
    """One everyday degradation applied to the decoded image before the detector's own preprocessing:
    ``jpeg`` (quality), ``downscale`` (factor; the detector's resize brings it back up), ``blur`` (Gaussian σ)."""

    kind: str = "none"
    value: float = 0.0

    @property
    def label(self) -> str:
        return {"none": "original", "jpeg": f"JPEG q={self.value:g}", "downscale": f"downscale x{self.value:g}",
                "blur": f"blur σ={self.value:g}"}[self.kind]

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.kind == "jpeg":
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=int(self.value))
            buffer.seek(0)
            return Image.open(buffer).convert("RGB")
        if self.kind == "downscale":
            size = (max(1, round(image.width * self.value)), max(1, round(image.height * self.value)))
            return image.resize(size, Image.Resampling.BICUBIC)  # antialiased when shrinking
        if self.kind == "blur":
            return image.filter(ImageFilter.GaussianBlur(radius=self.value))  # Pillow's radius is σ
        if self.kind == "none":
            return image
        raise ValueError(f"unknown perturbation {self.kind!r}; use none, jpeg, downscale or blur")


ROBUSTNESS_SWEEP: tuple[Perturbation, ...] = (
    Perturbation(),
    *(Perturbation("jpeg", q) for q in (95, 75, 50, 30)),
    *(Perturbation("downscale", f) for f in (0.5, 0.25)),
    *(Perturbation("blur", s) for s in (1, 2, 3)),
)


def robustness_sweep(
    detectors: Mapping[str, Detector],
    data_dir: Path | str,
    split: str = "val",
    perturbations: Sequence[Perturbation] = ROBUSTNESS_SWEEP,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    max_per_class: int | None = None,
    seed: int | None = 0,
) -> list[dict]:
    """Accuracy and AUC of every detector under every perturbation of ``data_dir/<split>``: a seeded random sample
    of ``max_per_class`` images per class (ten passes over a folder add up), the same images for every detector
    and perturbation (``seed=None``: the first ones, sorted).

    Each row also has the AUC's group-bootstrap interval (``ci``, resampling source photos) and the counts it
    rests on, for ``reports.auc_in_words``.

    Detectors that key on invisible high-frequency traces (upsampling grids, noise) lose them to exactly these
    everyday edits: a social network re-encodes and resizes every upload.
    """
    rows = []
    for name, detector in detectors.items():
        for perturbation in perturbations:
            scores = score_folder(detector, data_dir, split, perturb=perturbation, batch_size=batch_size,
                                  max_per_class=max_per_class, seed=seed)
            groups = scores.groups
            rows.append({"detector": name, "perturbation": perturbation.label, "kind": perturbation.kind,
                         "value": perturbation.value,
                         "accuracy": metrics.accuracy(scores.y_true, scores.p_ai, threshold),
                         "auc": metrics.roc_auc(scores.y_true, scores.p_ai),
                         "ci": metrics.group_bootstrap_ci(scores.y_true, scores.p_ai, groups),
                         "n_ai": int((scores.y_true == AI_INDEX).sum()),
                         "n_real": int((scores.y_true != AI_INDEX).sum()), "n_groups": len(set(groups))})
    return rows
