"""Verdicts that hold: one word judged on several seeds, said only when the seeds agree.

Why: a lesson that prints "over-fits" or "pretrained wins" from one run teaches whatever that run's draw of
initial weights, shuffles and samples happened to give; on another machine or another seed the word can flip.
Every verdict a lesson prints in words goes through ``Repeated``: the word each seed gave, the number it rests on,
their mean and spread, and "unstable: 2 of 3 seeds say ..." when the seeds disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

UNSTABLE = "unstable"


@dataclass(frozen=True)
class Repeated:
    """One verdict over seeds: ``words[i]`` and ``values[i]`` came from ``seeds[i]``."""

    name: str  # what is judged, e.g. "EfficientNet-Lite0: pretrained vs from scratch"
    seeds: tuple[int, ...]
    words: tuple[str, ...]
    values: tuple[float, ...]
    unit: str = ""  # what the values are, e.g. "val accuracy gap"

    def __post_init__(self) -> None:
        if not self.seeds or len(self.seeds) != len(self.words) or len(self.words) != len(self.values):
            raise ValueError(f"{self.name}: one word and one value per seed are needed "
                             f"({len(self.seeds)} seeds, {len(self.words)} words, {len(self.values)} values)")

    @property
    def majority(self) -> tuple[str, int]:
        """The most frequent word and how many seeds gave it (ties: the word of the first seed among them)."""
        counts = Counter(self.words)
        best = max(counts.values())
        word = next(w for w in self.words if counts[w] == best)
        return word, best

    @property
    def stable(self) -> bool:
        return len(set(self.words)) == 1

    @property
    def verdict(self) -> str:
        """The word when every seed agrees, else "unstable: k of n seeds say <word>"."""
        word, count = self.majority
        return word if self.stable else f"{UNSTABLE}: {count} of {len(self.seeds)} seeds say {word}"

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def spread(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def describe(self, digits: int = 3) -> str:
        """One line: the verdict, then the number it rests on per seed, so the reader can judge the margin."""
        per_seed = ", ".join(f"{v:.{digits}f}" for v in self.values)
        unit = f"{self.unit} " if self.unit else ""
        return (f"{self.name}: {self.verdict} ({unit}{self.mean:.{digits}f} ± {self.spread:.{digits}f} over seeds "
                f"{', '.join(map(str, self.seeds))}: {per_seed})")


def repeat(judge: Callable[[int], tuple[str, float]], seeds: Sequence[int], name: str, unit: str = "") -> Repeated:
    """Run ``judge(seed) -> (word, value)`` once per seed and collect the verdicts."""
    results = [judge(seed) for seed in seeds]
    return Repeated(name, tuple(seeds), tuple(w for w, _ in results), tuple(float(v) for _, v in results), unit)


def compare_arms(a: Sequence[float], b: Sequence[float], names: tuple[str, str], seeds: Sequence[int], *,
                 margin: float = 0.0, unit: str = "difference", better: str = "higher") -> Repeated:
    """Which of two arms is ahead, per seed: ``a[i] - b[i]`` beyond ``margin`` in the ``better`` direction
    ("higher" for an accuracy or an AUC, "lower" for a false-positive rate) says "<a> ahead", beyond it the other
    way "<b> ahead", in between "within <margin>". The values kept are ``a[i] - b[i]`` either way. Seeds are paired
    (both arms of a seed share data and draws), so the difference, not each arm alone, is what repeats."""
    if not (len(a) == len(b) == len(seeds)):
        raise ValueError(f"{names[0]} vs {names[1]}: one value per arm and seed is needed")
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    sign = 1.0 if better == "higher" else -1.0
    words = tuple(f"{names[0]} ahead" if sign * d > margin else f"{names[1]} ahead" if sign * d < -margin
                  else f"within {margin:g}" for d in diffs)
    return Repeated(f"{names[0]} vs {names[1]}", tuple(seeds), words, tuple(diffs), unit)
