"""The lessons' comparisons run over several seeds: train each arm once per seed, then judge with
``evaluation.verdicts`` so that a word ("over-fits", "pretrained ahead") is printed only when the seeds agree.

The first seed's runs go where a single run would (``out_dirs[arm]``), so later lessons find the checkpoint they
always used; the other seeds' runs sit beside it (``<out_dir>_seed<N>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Profile, get_profile
from ..evaluation.verdicts import Repeated, compare_arms, repeat
from ..models.detector import Detector, load_detector
from ..training.convnext import TrainResult, fit_kind, train_convnext


@dataclass
class SeededRuns:
    """``results[arm][seed]``: one training run per arm and seed, all on the same data."""

    seeds: tuple[int, ...]
    results: dict[str, dict[int, TrainResult]]

    def first(self, arm: str) -> TrainResult:
        """The run of the first seed: the one a lesson shows curves of and later lessons load."""
        return self.results[arm][self.seeds[0]]

    def last(self, arm: str, key: str = "val_acc") -> list[float]:
        """``key`` at each seed's last epoch."""
        return [float(self.results[arm][s].history.epochs[-1][key]) for s in self.seeds]

    def checkpoints(self) -> dict[str, Path]:
        """``"<arm>, seed <N>"`` -> that run's ``best.pth``: what ``compare_detectors`` scores."""
        return {run_name(arm, s): r.best_checkpoint for arm, runs in self.results.items() for s, r in runs.items()}

    def fit(self, arm: str) -> Repeated:
        """``fit_kind`` of each seed's run, resting on its last-epoch gap (training minus validation accuracy)."""
        def judge(seed: int) -> tuple[str, float]:
            history = self.results[arm][seed].history
            last = history.epochs[-1]
            return fit_kind(history), last["train_acc"] - last["val_acc"]

        return repeat(judge, self.seeds, f"{arm}: fit", unit="train − val accuracy")

    def compare(self, a: str, b: str, values: str | Mapping[str, float] = "val_acc", *, margin: float = 0.0,
                unit: str | None = None, better: str = "higher") -> Repeated:
        """Is ``a`` ahead of ``b``, seed by seed? ``values`` is a history key read at the last epoch, or a mapping
        from ``run_name(arm, seed)`` to a number measured elsewhere (a row of ``compare_detectors``)."""
        if isinstance(values, str):
            pair = self.last(a, values), self.last(b, values)
            unit = unit or f"{values} difference"
        else:
            pair = tuple([float(values[run_name(arm, s)]) for s in self.seeds] for arm in (a, b))
            unit = unit or "difference"
        return compare_arms(pair[0], pair[1], (a, b), self.seeds, margin=margin, unit=unit, better=better)

    def table(self, key: str = "val_acc", digits: int = 3) -> list[dict]:
        """One row per arm: ``key`` at the last epoch for every seed, then mean and spread."""
        import numpy as np

        rows = []
        for arm in self.results:
            values = self.last(arm, key)
            rows.append({"arm": arm, **{f"seed {s}": round(v, digits) for s, v in zip(self.seeds, values, strict=True)},
                         "mean": round(float(np.mean(values)), digits),
                         "spread": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, digits)})
        return rows


def run_name(arm: str, seed: int) -> str:
    return f"{arm}, seed {seed}"


def seed_dir(out_dir: Path, seed: int, first: int) -> Path:
    """Where one seed's run goes: ``out_dir`` itself for the first seed, a sibling for the others."""
    return out_dir if seed == first else out_dir.with_name(f"{out_dir.name}_seed{seed}")


def seed_runs(out_dir: Path | str, checkpoint: str = "best.pth") -> dict[int, Path]:
    """The ``checkpoint`` file (``best.pth`` for a ConvNeXt, ``clip_head.pth`` for a CLIP head) of every seed one
    arm left: ``out_dir`` (the first seed, whose number its checkpoint records) and its ``<out_dir>_seed<N>``
    siblings. What a later lesson reads to repeat a verdict over the seeds an earlier one trained."""
    from ..models.checkpoints import load_checkpoint

    out_dir = Path(out_dir)
    found = {}
    if (out_dir / checkpoint).is_file():
        found[int(load_checkpoint(out_dir / checkpoint).get("config", {}).get("seed", 0))] = out_dir / checkpoint
    for sibling in out_dir.parent.glob(f"{out_dir.name}_seed*"):
        suffix = sibling.name.removeprefix(f"{out_dir.name}_seed")
        if suffix.isdigit() and (sibling / checkpoint).is_file():
            found[int(suffix)] = sibling / checkpoint
    return dict(sorted(found.items()))


def judge_over_seeds(runs: Mapping[int, Path], judge: Callable[[Detector], tuple[str, float]], name: str,
                     unit: str = "") -> Repeated:
    """One verdict (a ``reports.wild_judge`` or ``control_judge``) on every seed's checkpoint of one arm."""
    return repeat(lambda seed: judge(load_detector(runs[seed])), tuple(runs), name, unit)


def train_over_seeds(arms: Mapping[str, Mapping[str, Any]], data_dir: Path | str, seeds: Sequence[int],
                     out_dirs: Mapping[str, Path | str], *, profile: Profile | str | None = None,
                     train: Callable[..., TrainResult] = train_convnext,
                     done: Mapping[str, TrainResult] | None = None, **common: Any) -> SeededRuns:
    """Train every arm (its own keyword arguments over ``common``) once per seed with ``train``; figures of each
    run go to its checkpoint folder's ``figures`` (``figures_dir`` in ``common`` overrides). ``done`` gives an
    arm's first-seed run already trained (the lesson's main run, shown epoch by epoch), so it is not trained twice."""
    profile = get_profile(profile)
    seeds = tuple(seeds)
    results: dict[str, dict[int, TrainResult]] = {}
    for arm, settings in arms.items():
        results[arm] = {}
        for seed in seeds:
            if done and arm in done and seed == seeds[0]:
                results[arm][seed] = done[arm]
                continue
            out = seed_dir(Path(out_dirs[arm]), seed, seeds[0])
            kwargs = {"figures_dir": out / "figures", "progress": False, **common, **settings}
            results[arm][seed] = train(data_dir, profile=profile, seed=seed, out_dir=out, **kwargs)
    return SeededRuns(seeds, results)


@dataclass
class EncoderComparison:
    """Lesson 03's question over seeds: the same head, on the same images, behind several frozen encoders.
    ``runs[seed][spec]`` is one head; ``specs`` the encoders in the order asked (a spec asked twice, as when the
    profile's CLIP is random already, ran once and is read twice); the first is compared with every other."""

    seeds: tuple[int, ...]
    specs: list[str]
    runs: dict[int, dict[str, Any]]  # seed -> encoder spec -> ClipHeadResult

    def auc(self, spec: str) -> list[float]:
        return [self.runs[seed][spec].metrics["auc"] for seed in self.seeds]

    def table(self) -> str:
        """The first seed's runs side by side, epoch by epoch."""
        from ..training.convnext import comparison_table

        return comparison_table({spec: run.history for spec, run in self.runs[self.seeds[0]].items()})

    def summary(self) -> list[str]:
        """One line per encoder: validation AUC mean ± spread over the seeds, and how many seeds left a head that
        learned nothing (training loss at ln 2), which is a degenerate baseline, not a measure of the features."""
        import numpy as np

        lines = []
        for spec in self.specs:
            aucs, n = self.auc(spec), len(self.seeds)
            stuck = sum(self.runs[seed][spec].history.learned_nothing() for seed in self.seeds)
            lines.append(f"{spec}: AUC-ROC {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} over {n} seeds"
                         + (f"; on {stuck} of {n} seeds its training loss stayed at ln 2: a degenerate head that "
                            "learned nothing, not a measure of what random features hold" if stuck else ""))
        return lines

    def verdicts(self, names: Sequence[str], margin: float = 0.02) -> list[Repeated]:
        """The first encoder against each other one, on validation AUC, seed by seed; ``names`` reads the specs."""
        first, *others = self.specs
        return [compare_arms(self.auc(first), self.auc(other), (names[0], name), self.seeds, margin=margin,
                             unit="AUC difference") for other, name in zip(others, names[1:], strict=True)]


def compare_encoders_over_seeds(data_dirs: Any, encoders: Sequence[Any], seeds: Sequence[int], *, out_dir: Path,
                                **kwargs: Any) -> EncoderComparison:
    """``training.compare_encoders`` once per seed (the seed sets each head's start and the shuffles); the first
    seed's heads go to ``out_dir``, where a single comparison would put them, the others beside it."""
    from ..training.clip_head import compare_encoders

    seeds = tuple(seeds)
    specs = [getattr(encoder, "spec", encoder) for encoder in encoders]
    return EncoderComparison(seeds, specs, {seed: compare_encoders(data_dirs, encoders, seed=seed, progress=False,
                                                            out_dir=seed_dir(Path(out_dir), seed, seeds[0]), **kwargs)
                                     for seed in seeds})


def compare_seeded_detectors(arms: Mapping[str, Mapping[int, Path]], data_root: Path, *, control: Path | None = None,
                             names: tuple[str, str] | None = None,
                             columns: Sequence[tuple[str, float, str]] = (("val auc", 0.02, "higher"),
                                                                          ("control fpr", 0.05, "lower"))
                             ) -> tuple[list[dict], list[Repeated]]:
    """Two arms, each a checkpoint per seed (the same seeds), through ``evaluation.compare_detectors``: its rows
    (one per arm and seed, ``"<arm>, seed <N>"``) and, for each ``(column, margin, better)`` every row has, which
    arm is ahead over seeds; ``names`` words the arms in the verdicts (default: the arms' keys)."""
    from ..evaluation.reports import compare_detectors

    (name_a, runs_a), (name_b, _) = arms.items()
    seeds = tuple(runs_a)
    rows = compare_detectors({run_name(name, seed): path for name, runs in arms.items() for seed, path in runs.items()},
                             data_root, control=control)
    by_run = {row["detector"]: row for row in rows}
    verdicts = [compare_arms([by_run[run_name(name_a, s)][column] for s in seeds],
                             [by_run[run_name(name_b, s)][column] for s in seeds], names or (name_a, name_b), seeds,
                             margin=margin, unit=f"{column} difference", better=better)
                for column, margin, better in columns if all(column in row for row in rows)]
    return rows, verdicts
