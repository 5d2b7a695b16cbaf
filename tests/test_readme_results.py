"""The in-the-wild block (docs/results.md) is written from one run's ``wild.json`` and nothing else, and stays equal
to it: ``make demo`` writes both (``python -m detectlib.readme``); this test reads the committed copy beside the
figures. The lessons' takeaways stay in README.md, and every block lives in exactly one file (``readme.HOMES``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from detectlib import readme
from detectlib.evaluation import demo_run, wild_report

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


def test_the_committed_wild_report_has_the_schema_the_block_reads():
    """figures/wild.json is copied there by the run that drew the figures; docs/results.md's block is checked
    against it below, with the takeaways."""
    committed = ROOT / "figures" / wild_report.WILD_JSON
    assert committed.is_file(), "figures/wild.json is missing: run make demo and commit figures/"
    report = json.loads(committed.read_text())
    assert {"name", "checkpoint", "auc", "ci", "balanced_auc", "per_category", "n_ai", "n_real"} <= set(
        report["detectors"][0])


def _notebook(lines: list[str], start: str = "2026-12-03T10:00:00.000Z", end: str = "2026-12-03T10:02:30.000Z") -> dict:
    timing = {"iopub.execute_input": start, "shell.execute_reply": end}
    return {"cells": [
        {"cell_type": "code", "metadata": {"execution": timing}, "source": "x = 1", "outputs": []},
        {"cell_type": "markdown", "metadata": {}, "source": ["## Takeaways\n", "\n", "Read from this run:"]},
        {"cell_type": "code", "metadata": {"execution": timing}, "source": "print(...)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": [line + "\n" for line in lines]}]},
        {"cell_type": "markdown", "metadata": {}, "source": "## Recap"}]}


def test_the_takeaways_are_read_word_for_word_from_the_executed_cells(tmp_path):
    lines = ["1. On the kit's fakes X ranks best (AUC 0.871).", "2. Over seeds: unstable: 2 of 3 seeds say fits."]
    (tmp_path / "01_a.ipynb").write_text(json.dumps(_notebook(lines)))
    (tmp_path / "02_b.ipynb").write_text(json.dumps(_notebook(["1. Only one line."], end="2026-12-03T10:10:00.000Z")))
    record = demo_run.collect_run(sorted(tmp_path.glob("*.ipynb")), seed=3, profile="demo",
                                  machine={"model": "CPU X", "cores": 2, "avx512f": False})
    assert record["date"] == "2026-12-03" and record["seed"] == 3
    assert [lesson["seconds"] for lesson in record["lessons"]] == [300, 1200]  # two timed cells each
    assert record["lessons"][0]["takeaways"] == lines
    block = demo_run.demo_markdown(record)
    assert "seed 3" in block and "CPU X, 2 cores (no AVX-512 or AMX)" in block and "25 min" in block
    for line in lines:
        assert f"- {line.split('. ', 1)[1]}" in block
    assert "Only one line." in demo_run.teachers_markdown(record)
    (tmp_path / "03_c.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match="no printed takeaways in 03_c"):
        demo_run.collect_run(sorted(tmp_path.glob("*.ipynb")), seed=3, profile="demo", machine={})


def test_a_run_is_never_credited_with_a_seed_it_did_not_use(tmp_path):
    """Lessons 02 and 03 print their seeds; a record asked for another seed than they printed stops."""
    (tmp_path / "02_b.ipynb").write_text(json.dumps(_notebook(["generators: AE | seeds: (1, 2, 3)", "1. A line."])))
    assert demo_run.collect_run([tmp_path / "02_b.ipynb"], seed=1, profile="demo", machine={})["seed"] == 1
    with pytest.raises(ValueError, match="this run used seed 1, not 0; set DETECTLIB_SEED=1"):
        demo_run.collect_run([tmp_path / "02_b.ipynb"], seed=0, profile="demo", machine={})


def test_each_block_lives_in_exactly_one_file_the_one_readme_writes():
    """README.md keeps the demo block, docs/results.md the WILD block, docs/profiles.md the full-profile block,
    TEACHERS.md the takeaways; no other Markdown file of the kit carries their markers."""
    assert readme.HOMES == {demo_run.README_MARKERS: Path("README.md"),
                            (wild_report.README_START, wild_report.README_END): Path("docs/results.md"),
                            demo_run.TEACHERS_MARKERS: Path("notebooks/exercises/TEACHERS.md"),
                            readme.FULL_MARKERS: Path("docs/profiles.md")}
    documents = sorted({*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("notebooks/**/*.md")})
    for (start, end), home in readme.HOMES.items():
        carriers = [p.relative_to(ROOT) for p in documents if start in p.read_text() or end in p.read_text()]
        assert carriers == [home], f"{start} is in {carriers}, expected only {home}"
        assert readme.home(ROOT, (start, end)) == ROOT / home


def test_a_block_pasted_into_a_second_file_is_one_line_not_a_silent_write(tmp_path, monkeypatch, capsys):
    for rel in readme.HOMES.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    (tmp_path / "figures").mkdir()
    for name in (demo_run.DEMO_RUN_JSON, wild_report.WILD_JSON):
        shutil.copy(ROOT / "figures" / name, tmp_path / "figures" / name)
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    monkeypatch.setenv("DETECTLIB_PROFILE", "demo")
    assert readme.main(["--check"]) == 0
    start, end = wild_report.README_START, wild_report.README_END
    (tmp_path / "README.md").write_text((tmp_path / "README.md").read_text() + f"\n{start}\nstale\n{end}\n")
    assert readme.main(["--check"]) == 2
    assert "belongs in docs/results.md only; found also in README.md" in capsys.readouterr().err


def test_readme_and_teachers_guide_say_what_the_committed_run_printed(monkeypatch, capsys):
    """figures/demo_run.json holds what the run beside the figures printed; README.md, docs/results.md and the
    teacher's guide carry it unchanged."""
    record = json.loads((ROOT / "figures" / demo_run.DEMO_RUN_JSON).read_text())
    lessons = [lesson["notebook"] for lesson in record["lessons"]]
    assert lessons == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert all(3 <= len(lesson["takeaways"]) <= 6 for lesson in record["lessons"])
    monkeypatch.setenv("DETECTLIB_ROOT", str(ROOT))
    monkeypatch.setenv("DETECTLIB_PROFILE", "demo")
    assert readme.main(["--check"]) == 0, capsys.readouterr().out
