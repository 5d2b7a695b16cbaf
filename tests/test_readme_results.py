"""The README's in-the-wild block is written from one run's ``wild.json`` and nothing else, and stays equal to it:
``make demo`` writes both (``python -m detectlib.readme``); this test reads the committed copy beside the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectlib import readme
from detectlib.evaluation import wild_report

ROOT = Path(__file__).resolve().parents[1]


def _report(auc: float = 0.71, ci=(0.62, 0.80)) -> dict:
    entry = {"name": "CLIP head", "kind": "clip_head", "checkpoint": "models/clip_head/clip_head.pth", "auc": auc,
             "ci": list(ci), "band": wild_report.ci_band(ci), "balanced_auc": 0.55, "per_category": {"people": 0.6},
             "n_ai": 40, "n_real": 50, "n_groups": 80, "threshold": 0.42, "tpr": 0.3, "fpr": 0.1, "content_auc": 0.66,
             "content_balanced_auc": 0.52}
    return {"detectors": [entry], "built": {"images": 90, "groups": 80, "history": {"preview_webp_quality": 90},
                                            "per_split_category": {"test": {"people": {"ai": 40, "nature": 50}}}},
            "leave_generators_out": {"encoder": "clip", "auc": 0.9, "auc_std": 0.05, "balanced_auc": 0.8,
                                     "content_auc": 0.85, "content_balanced_auc": 0.7, "reading": "content explains it"}}


def test_the_block_reads_every_number_from_the_report():
    text = wild_report.wild_markdown(_report())
    for number in ("0.710", "[0.620, 0.800]", "0.550", "0.660", "0.30 / 0.10", "0.900", "0.850"):
        assert number in text
    assert "better than chance" in text
    at_chance = wild_report.wild_markdown(_report(auc=0.55, ci=(0.45, 0.66)))
    assert "at chance" in at_chance and "better than chance" not in at_chance


def test_the_block_replaces_only_what_lies_between_the_markers():
    text = f"intro\n{wild_report.README_START}\nold\n{wild_report.README_END}\noutro\n"
    new = wild_report.replace_readme_block(text, "NEW")
    assert new == f"intro\n{wild_report.README_START}\nNEW\n{wild_report.README_END}\noutro\n"
    with pytest.raises(ValueError, match="no <!-- wild-results:start -->"):
        wild_report.replace_readme_block("no markers", "NEW")


def test_readme_equals_the_committed_run(monkeypatch, capsys):
    """The README's block equals what figures/wild.json (copied there by the run that drew the figures) says."""
    committed = ROOT / "figures" / wild_report.WILD_JSON
    assert committed.is_file(), "figures/wild.json is missing: run make demo and commit figures/"
    report = json.loads(committed.read_text())
    assert {"name", "checkpoint", "auc", "ci", "balanced_auc", "per_category", "n_ai", "n_real"} <= set(
        report["detectors"][0])
    monkeypatch.setenv("DETECTLIB_ROOT", str(ROOT))
    monkeypatch.setenv("DETECTLIB_PROFILE", "demo")
    assert readme.main(["--check"]) == 0, capsys.readouterr().out
