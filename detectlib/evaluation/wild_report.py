"""Every detector on WILD v2, written down for people and tools: ``results/wild.json``.

Used by notebook 05 (which writes it), ``make demo``, the generated results of docs/results.md and the probe (which
reads it to say how far to trust each verdict). Each entry is measured on WILD's held-out ``test`` groups only
(the training-free detector tunes its settings on the ``val`` groups), with an interval that resamples groups,
the category-balanced AUC beside the pooled one, and the content control: the same detector on the same images
shrunk to 1/8 of their side, where no generation trace survives and only what the picture shows remains.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import AI_INDEX, get_paths, seed_of
from ..files import atomic_write, read_json
from . import metrics
from .scoring import WildScores

WILD_JSON = "wild.json"


CONTENT_CONTROL_FACTOR = 0.125  # the content control shrinks every image to 1/8 of its side


def ci_band(ci: Sequence[float]) -> str:
    """``chance`` when the interval covers 0.5, else ``above`` or ``below``; ``unmeasurable`` without one."""
    low, high = ci
    if low is None or high is None or math.isnan(low) or math.isnan(high):  # None: NaN read back from JSON
        return "unmeasurable"
    return "chance" if low <= 0.5 <= high else ("above" if low > 0.5 else "below")


def _relative(path: Path | str, root: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def wild_entry(name: str, checkpoint: Path | str, kind: str, ws: WildScores, threshold: float,
               content: WildScores | None = None, root: Path | None = None, seed: int | None = None) -> dict[str, Any]:
    """One detector's numbers on WILD: AUC with a group-bootstrap interval, category-balanced and per-category
    AUCs, TPR and FPR at ``threshold`` (the one the detector uses), and the content control's AUC beside them."""
    seed = seed_of(seed)
    root = root or get_paths().root
    y, p = ws.scores.y_true, ws.scores.p_ai
    groups, categories = ws.column("group"), ws.column("category")
    rates = metrics.rates_at(y, p, threshold)
    ci = metrics.group_bootstrap_ci(y, p, groups, seed=seed)
    entry = {"name": name, "kind": kind, "checkpoint": _relative(checkpoint, root),
             "auc": metrics.roc_auc(y, p), "ci": list(ci), "band": ci_band(ci),
             "balanced_auc": metrics.balanced_auc(y, p, categories),
             "per_category": metrics.category_aucs(y, p, categories),
             "n_ai": int((y == AI_INDEX).sum()), "n_real": int((y != AI_INDEX).sum()), "n_groups": len(set(groups)),
             "threshold": float(threshold), "tpr": rates.tpr, "fpr": rates.fpr}
    if content is not None:
        cy, cp = content.scores.y_true, content.scores.p_ai
        entry["content_auc"] = metrics.roc_auc(cy, cp)
        entry["content_balanced_auc"] = metrics.balanced_auc(cy, cp, content.column("category"))
    return entry


def built_summary(wild_dir: Path | str) -> dict[str, Any]:
    """What the WILD build holds, for the ``built`` block: counts per split, class and category, groups, and how
    it was processed (from its ``wild_build.json``)."""
    from ..data.wild import SETTINGS, load_wild

    images = load_wild(wild_dir)
    record = read_json(Path(wild_dir) / SETTINGS) or {}
    cells = Counter((im.split, im.category, "ai" if im.label == AI_INDEX else "nature") for im in images)
    per_split = {split: {cat: {cls: cells[(split, cat, cls)] for cls in ("ai", "nature")}
                         for cat in sorted({c for s, c, _ in cells if s == split})}
                 for split in sorted({s for s, _, _ in cells})}
    return {"images": len(images), "groups": len({im.group for im in images}),
            "version": (record.get("settings") or {}).get("version"),
            "wild_size": (record.get("settings") or {}).get("wild_size"),
            "history": record.get("history", {}), "missing": record.get("missing", []),
            "per_split_category": per_split}


def describe_entry(entry: Mapping[str, Any]) -> str:
    """One entry in words, read from its numbers: pooled and balanced AUC with the interval, and what the
    content control says of it."""
    low, high = entry["ci"]
    band = entry.get("band") or ci_band(entry["ci"])
    words = {"chance": "at chance (its interval covers 0.5)", "above": "better than chance",
             "below": "worse than chance (it ranks photos as more AI-like)", "unmeasurable": "not measurable"}[band]
    text = (f"{entry['name']}: AUC {entry['auc']:.3f} [{low:.3f}, {high:.3f}], {words}; category-balanced "
            f"{entry['balanced_auc']:.3f} on {entry['n_ai']} AI images and {entry['n_real']} photos in "
            f"{entry['n_groups']} groups")
    if "content_auc" in entry and band == "above":
        share = (entry["content_auc"] - 0.5) / (entry["auc"] - 0.5)
        reading = ("content carries it" if share >= 0.8 else "it reads finer detail than content" if share <= 0.3
                   else "content carries part of it")
        text += (f"; at 1/8 size (content only) {entry['content_auc']:.3f}: {min(share, 1.0):.0%} of its margin over "
                 f"chance survives without any trace, so {reading}")
    return text


def trust_line(entry: Mapping[str, Any] | None) -> str:
    """What the probe prints beside a detector's verdict: its WILD TPR and FPR at the threshold it uses, and a
    plain warning when it is at chance on WILD."""
    if entry is None:
        return "not measured on WILD yet (notebook 05 writes results/wild.json)"
    line = (f"on WILD v2 it caught {entry['tpr']:.0%} of AI images and flagged {entry['fpr']:.0%} of real photos "
            f"at p(ai) ≥ {entry['threshold']:.2f} (AUC {entry['auc']:.2f} [{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}])")
    band = entry.get("band") or ci_band(entry["ci"])
    if band == "chance":
        line += "; on real-world images it is at chance: its verdict is a coin toss"
    elif band == "below":
        line += "; on real-world images it is worse than chance: read its verdict backwards, or not at all"
    return line


def write_wild_json(entries: Sequence[Mapping[str, Any]], built: Mapping[str, Any],
                    path: Path | str | None = None, **extra: Any) -> Path:
    """``results/wild.json``: ``{"detectors": [...], "built": {...}}`` plus any ``extra`` blocks (e.g. the
    leave-generators-out result), written atomically."""
    path = Path(path) if path is not None else get_paths().results / WILD_JSON
    payload = _strict({"detectors": list(entries), "built": dict(built), **extra})
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n"))


def _strict(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN (an AUC a category cannot have) becomes null, numpy numbers plain."""
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_wild_json(path: Path | str | None = None) -> dict[str, Any] | None:
    """The last ``results/wild.json`` (None when no run wrote one)."""
    return read_json(Path(path) if path is not None else get_paths().results / WILD_JSON)


def entry_for(report: Mapping[str, Any] | None, checkpoint: Path | str, root: Path | None = None) -> dict | None:
    """The entry of ``results/wild.json`` measured with this checkpoint, or None."""
    if not report:
        return None
    wanted = _relative(checkpoint, root or get_paths().root)
    return next((e for e in report.get("detectors", []) if e.get("checkpoint") == wanted), None)


# The WILD block's markers (the names are historical: the block lives in docs/results.md, see ``readme.HOMES``).
README_START, README_END = "<!-- wild-results:start -->", "<!-- wild-results:end -->"


def _num(value: Any, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def wild_markdown(report: Mapping[str, Any]) -> str:
    """The in-the-wild block of docs/results.md, written from a ``wild.json`` and nothing else, so every number
    in it comes from the run that wrote the file: what WILD held, one row per detector, the verdicts in words, and the
    leave-generators-out experiment with its content control."""
    built = report["built"]
    test = built.get("per_split_category", {}).get("test", {})
    cells = ", ".join(f"{c} {n['ai']}/{n['nature']}" for c, n in test.items())
    lines = [f"WILD v2 held {built['images']} images in {built['groups']} groups; the test groups, where every "
             f"number below is measured, hold (ai/nature per category): {cells}. Photos were given the previews' "
             f"history (WebP q{built.get('history', {}).get('preview_webp_quality', '?')}) before the common steps.",
             "",
             "| detector | ROC-AUC [95 % CI, group bootstrap] | category-balanced AUC | content control: AUC at 1/8 "
             "size | TPR / FPR at its threshold |",
             "| --- | --- | --- | --- | --- |"]
    for e in report["detectors"]:
        lines.append(f"| {e['name']} | {_num(e['auc'])} [{_num(e['ci'][0])}, {_num(e['ci'][1])}] | "
                     f"{_num(e['balanced_auc'])} | {_num(e.get('content_auc'))} | "
                     f"{_num(e['tpr'], 2)} / {_num(e['fpr'], 2)} |")
    lines += ["", *[f"- {describe_entry(e)}" for e in report["detectors"]]]
    lgo = report.get("leave_generators_out")
    if lgo:
        lines += ["", f"A head on {lgo['encoder']} trained on some WILD model families and tested on the others "
                      f"(10 splits, groups never shared): AUC {_num(lgo['auc'])} ± {_num(lgo['auc_std'])}, "
                      f"category-balanced {_num(lgo['balanced_auc'])}; the same splits with every image shrunk to "
                      f"1/8 (content only): {_num(lgo['content_auc'])}, balanced {_num(lgo['content_balanced_auc'])}. "
                      f"{lgo['reading'][0].upper()}{lgo['reading'][1:]}."]
    return "\n".join(lines)


def replace_readme_block(readme_text: str, block: str) -> str:
    """``readme_text`` (docs/results.md's text) with the text between the WILD markers replaced by ``block``."""
    from .demo_run import replace_block

    return replace_block(readme_text, (README_START, README_END), block)
