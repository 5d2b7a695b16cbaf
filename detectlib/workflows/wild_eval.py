"""Notebook 05's in-the-wild workflow: every detector on WILD v2's held-out groups, the training-free detector
tuned on its validation groups, and ``results/wild.json`` written from the run.

Rules it keeps: the training-free detector's σ, k and layer are chosen on ``val`` groups only; every reported
number comes from ``test`` groups; intervals resample groups; the content control (every image shrunk to 1/8)
is measured for every detector beside its AUC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Profile, get_paths, get_profile, seed_of
from ..data.images import load_image
from ..data.wild import load_wild
from ..evaluation import wild_report
from ..evaluation.robustness import Perturbation
from ..evaluation.scoring import WildScores, score_wild
from ..models.detector import Detector

SIGMAS = (0.01, 0.03, 0.1, 0.3, 1.0)  # noise scales swept, in the processor's normalised pixel units
DRAWS = (1,)  # k, the number of noise draws averaged (one worked as well as more, and each costs a forward)
LAYERS = ("pooler", -2)  # where the CLS token is read: the pooled output, or the output of the layer before the last


def training_free_path(profile: Profile | str | None = None, encoder: str | None = None) -> Path:
    """Where the tuned training-free detector's file goes: ``models/training_free/rigid_<encoder>.json``."""
    profile = get_profile(profile)
    name = (encoder or profile.encoder).replace("/", "--").replace(":", "-")
    return get_paths(profile).models.parent / "training_free" / f"rigid_{name}.json"


@dataclass
class TrainingFreeTuning:
    """The tuned file, the sweep that chose it (one row per setting, AUC on the validation groups), and the
    validation images it saw: their labels, groups and each setting's scores (``scores[i]`` for ``sweep[i]``),
    which ``read_sweep`` compares image by image."""

    path: Path
    sweep: list[dict]
    chosen: dict
    labels: list[int]
    groups: list[str]
    scores: list[Any]

    @property
    def n_images(self) -> int:
        return len(self.labels)


def tune_training_free(wild_dir: Path | str, profile: Profile | str | None = None, *, encoder: str | None = None,
                       sigmas: Sequence[float] = SIGMAS, draws: Sequence[int] = DRAWS,
                       layers: Sequence[int | str] = LAYERS, seed: int | None = None, max_images: int | None = None,
                       out: Path | None = None) -> TrainingFreeTuning:
    """Tune the noise-sensitivity detector (RIGID) on WILD's ``val`` groups and write its file.

    Only validation groups are read, so the ``test`` groups the lessons report stay unseen by every choice.
    ``max_images`` caps them per class (a seeded spread), because each setting costs a forward per image."""
    seed = seed_of(seed)
    import numpy as np

    from ..models.encoders import make_encoder
    from ..models.training_free import save_training_free, tune_noise_sensitivity

    profile = get_profile(profile)
    spec = encoder or profile.encoder
    enc = make_encoder(spec)
    images = [im for im in load_wild(wild_dir) if im.split == "val"]
    if max_images:
        rng = np.random.default_rng(seed)
        images = [im for label in (0, 1) for im in
                  [images[i] for i in rng.permutation(len(images)) if images[i].label == label][:max_images]]
    pixels = enc.preprocess([load_image(im.path, enc.decode_side) for im in images])
    labels = [im.label for im in images]
    chosen, scored = tune_noise_sensitivity(enc, pixels, labels, sigmas=sigmas, ks=draws, layers=layers, seed=seed,
                                            keep_scores=True)
    sweep = [{key: value for key, value in row.items() if key != "scores"} for row in scored]
    groups = [im.group for im in images]
    path = save_training_free(out or training_free_path(profile, spec), encoder=spec, seed=seed, sweep=sweep,
                              tuned_on=f"WILD v2 validation groups: {len(images)} images in {len(set(groups))} groups "
                                       f"(σ in {list(sigmas)}, k in {list(draws)}, layers {list(layers)})",
                              config={"profile": profile.name}, **chosen)
    return TrainingFreeTuning(path, sweep, chosen, labels, groups, [row["scores"] for row in scored])


def read_sweep(tuning: TrainingFreeTuning, *, seed: int | None = None) -> str:
    """What the sweep says, in words: the best setting, which others are within the noise of its AUC on the
    validation images (their AUC difference's 95 % group-bootstrap interval covers 0: ``metrics.auc_change_ci``,
    paired, every setting scored the same images), and whether the best lies at the edge of the grid (then a wider
    grid could do better, and the choice says less)."""
    import numpy as np
    from scipy.stats import rankdata

    from ..evaluation.metrics import auc_change_ci

    def as_p(d: Any) -> np.ndarray:  # the AUC reads ranks only: d's ranks, scaled into [0, 1]
        return rankdata(d) / len(d)

    best_index = max(range(len(tuning.sweep)), key=lambda i: tuning.sweep[i]["auc"])
    best = tuning.sweep[best_index]
    close = [row for i, row in enumerate(tuning.sweep) if i != best_index and
             auc_change_ci(tuning.labels, as_p(tuning.scores[best_index]), as_p(tuning.scores[i]), tuning.groups,
                           seed=seed)[1] >= 0]
    sigmas = sorted({row["sigma"] for row in tuning.sweep})
    text = (f"best AUC {best['auc']:.3f} at σ={best['sigma']}, layer {best['layer']}; {len(close)} of the other "
            f"{len(tuning.sweep) - 1} settings are within the noise of {tuning.n_images} validation images in "
            f"{len(set(tuning.groups))} groups (the 95 % interval of their AUC difference to the best covers 0)")
    if len(sigmas) > 1 and best["sigma"] in (sigmas[0], sigmas[-1]):
        text += f"; the best σ is at the edge of the grid ({sigmas[0]}–{sigmas[-1]}): a wider grid might do better"
    return text


@dataclass
class WildRun:
    """Every detector on WILD's test groups: scores, content-control scores and the entries of ``wild.json``."""

    scores: dict[str, WildScores]
    content: dict[str, WildScores]
    entries: list[dict[str, Any]]

    def entry(self, name: str) -> dict[str, Any]:
        return next(e for e in self.entries if e["name"] == name)


def evaluate_on_wild(detectors: Mapping[str, Detector], checkpoints: Mapping[str, Path],
                     thresholds: Mapping[str, float], wild_dir: Path | str, *, split: str = "test",
                     content_control: bool = True, seed: int | None = None) -> WildRun:
    """Score every detector on WILD's ``split`` groups, and again on the same images shrunk to 1/8 (the content
    control); one ``wild.json`` entry each, at the threshold the detector uses (``thresholds``, default 0.5)."""
    seed = seed_of(seed)
    shrink = Perturbation("downscale", wild_report.CONTENT_CONTROL_FACTOR)
    scores, content, entries = {}, {}, []
    for name, detector in detectors.items():
        scores[name] = score_wild(detector, wild_dir, split=split, name=name)
        if content_control:
            content[name] = score_wild(detector, wild_dir, split=split, perturb=shrink, name=name)
        entries.append(wild_report.wild_entry(name, checkpoints[name], detector.kind, scores[name],
                                              thresholds.get(name, 0.5), content.get(name), seed=seed))
    return WildRun(scores, content, entries)


def noise_drift(detector: Detector, images: Mapping[str, Sequence[Path]],
                sigmas: Sequence[float]) -> dict[str, list[list[float]]]:
    """``{name: [[drift at each σ] per image]}``: how far a training-free detector's embedding moves as the noise
    grows, for a few images of each class (the lesson's picture of the idea), with its own k, layer and seed."""
    from ..models.training_free import noise_sensitivity

    model = detector.model
    out = {}
    for name, paths in images.items():
        pixels = model.encoder.preprocess([load_image(p, model.encoder.decode_side) for p in paths])
        per_sigma = [noise_sensitivity(model.encoder, pixels, sigma=s, k=model.k, layer=model.layer,
                                       seed=model.seed).tolist() for s in sigmas]
        out[name] = [list(curve) for curve in zip(*per_sigma, strict=True)]
    return out


def wild_robustness(detectors: Mapping[str, Detector], wild_dir: Path | str, perturbations: Sequence[Perturbation],
                    *, per_class: int = 30, split: str = "test", seed: int | None = None) -> list[dict]:
    """AUC of each detector under each everyday edit, on a seeded sample of ``per_class`` images per class of
    WILD's ``split`` groups (the same images for every detector and edit): ``robustness_sweep``'s rows, on WILD,
    each with ``scored`` (``{path: (label, group, p_ai)}``), which ``read_robustness`` pairs image by image."""
    seed = seed_of(seed)
    import numpy as np

    from ..evaluation import metrics
    from ..evaluation.predictions import score_paths

    images = [im for im in load_wild(wild_dir) if im.split == split]
    rng = np.random.default_rng(seed)
    sample = [im for label in (0, 1) for im in
              [images[i] for i in rng.permutation(len(images)) if images[i].label == label][:per_class]]
    rows = []
    for name, detector in detectors.items():
        for edit in perturbations:
            pred = score_paths(detector, [im.path for im in sample], perturb=None if edit.kind == "none" else edit)
            y = [sample[i].label for i in pred.kept]
            rows.append({"detector": name, "perturbation": edit.label, "kind": edit.kind, "value": edit.value,
                         "accuracy": metrics.accuracy(y, pred.p_ai), "auc": metrics.roc_auc(y, pred.p_ai),
                         "scored": {str(sample[i].path): (sample[i].label, sample[i].group, float(p))
                                    for i, p in zip(pred.kept, pred.p_ai, strict=True)}})
    return rows


def read_robustness(rows: Sequence[Mapping[str, Any]], *, seed: int | None = None) -> str:
    """What one detector's ``wild_robustness`` rows say, in words: each edit's AUC change against the unedited
    images, with a 95 % group-bootstrap interval of that change on the images scored both ways
    (``metrics.auc_change_ci``: paired, so the noise the two AUCs share cancels). An edit moved the AUC when its
    interval leaves 0 out."""
    from ..evaluation.metrics import auc_change_ci

    base = next(r for r in rows if r["kind"] == "none")
    changes = []
    for row in (r for r in rows if r["kind"] != "none"):
        both = [path for path in base["scored"] if path in row["scored"]]
        labels, groups, before = zip(*(base["scored"][path] for path in both), strict=True)
        after = [row["scored"][path][2] for path in both]
        low, high = auc_change_ci(labels, before, after, groups, seed=seed)
        changes.append((row["perturbation"], row["auc"] - base["auc"], low, high))
    n_groups = len({group for _, group, _ in base["scored"].values()})
    sample = f"{len(base['scored'])} images from {n_groups} groups"
    beyond = [f"{name} {delta:+.3f} [{low:+.3f}, {high:+.3f}]" for name, delta, low, high in changes
              if low > 0 or high < 0]
    if not beyond:
        name, delta, low, high = max(changes, key=lambda change: abs(change[1]))
        return (f"no edit moved its AUC beyond the noise of {sample} (every 95 % interval of a change covers 0); "
                f"the largest change was {name} ({delta:+.3f}, interval [{low:+.3f}, {high:+.3f}])")
    return f"on {sample}, the changes whose 95 % interval leaves 0 out: " + ", ".join(beyond)
