"""workflows.colab_plan and ``python -m detectlib.readme --full``: the full-profile block (docs/profiles.md) says
what one rehearsal measured and what the kit's own batch choice gives on a T4, nothing typed in."""

from __future__ import annotations

import json

import pytest
from transformers import CLIPVisionConfig

from detectlib import readme
from detectlib.config import get_profile
from detectlib.models.encoders import TINY_CLIP_CONFIG
from detectlib.models.memory import CONTEXT_BYTES, GB
from detectlib.workflows import colab_plan as plan_module
from detectlib.workflows.colab_plan import README_MARKERS, fits_colab_ram, full_markdown, plan_for_colab


@pytest.fixture(scope="module")
def smoke_plan():
    import torch

    torch.set_num_threads(1)
    return plan_for_colab("smoke", CLIPVisionConfig(**TINY_CLIP_CONFIG))


def _rehearsal(peak_mb: float = 2300.0, failed: int = 0) -> dict:
    return {"date": "2026-12-03T17:16:52+00:00", "machine": {"model": "AMD EPYC", "cores": 2},
            "passed": not failed, "notebooks": {
                "notebooks/01_build_dataset.ipynb": {"seconds": 70.9, "peak_rss_mb": 2312.7, "cells_passed": 13,
                                                     "cells_failed": 0, "cells": []},
                "notebooks/03_train_clip_head.ipynb": {"seconds": 3725.0, "peak_rss_mb": peak_mb,
                                                       "cells_passed": 20 - failed, "cells_failed": failed,
                                                       "cells": []}}}


def test_the_plan_runs_the_profiles_batch_when_it_fits_and_measures_each_job(smoke_plan):
    training, embedding = smoke_plan["jobs"]
    assert training["job"].startswith("training convnext_atto at 32 px")
    assert training["batch"] == get_profile("smoke").batch_size and "note" not in training
    assert embedding["batch"] == plan_module.SCORING_BATCH
    for job in (training, embedding):
        assert job["per_image_mb"] >= 0 and job["largest_batch_on_t4"] > job["batch"]
        assert job["estimated_gb"] >= round(CONTEXT_BYTES / GB, 2)
    assert smoke_plan["images"]["samples_per_class"] == get_profile("smoke").samples_per_class


def test_a_kernel_fits_colabs_ram_only_below_what_colab_leaves_it():
    budget_mb = (plan_module.COLAB_RAM_BYTES - plan_module.COLAB_RAM_RESERVED) / 1e6
    assert fits_colab_ram(budget_mb) and not fits_colab_ram(budget_mb + 1) and fits_colab_ram(None) is None


def test_the_block_reads_each_notebook_and_job_from_the_records(smoke_plan):
    text = full_markdown(_rehearsal(), smoke_plan)
    assert "2 notebooks in 63 min, every cell passed" in text
    assert f"draw {smoke_plan['images']['samples_per_class']} images per generator, split and class" in text
    assert "| `01_build_dataset.ipynb` | 13 | 71 s | 2.3 GB | yes |" in text
    assert "| `03_train_clip_head.ipynb` | 20 | 62 min | 2.3 GB | yes |" in text
    for job in smoke_plan["jobs"]:
        assert f"| {job['job']} | {job['fixed_gb']:.2f} GB | {job['per_image_mb']:.1f} MB | {job['batch']} |" in text


def test_the_block_says_when_a_cell_failed_or_a_lesson_overflows_colab(smoke_plan):
    text = full_markdown(_rehearsal(peak_mb=14000.0, failed=2), smoke_plan)
    assert "2 cells failed" in text and "every cell passed" not in text and "of commit" not in text
    stopped = full_markdown({**_rehearsal(), "requested": ["notebooks/01_build_dataset.ipynb",
                                                           "notebooks/05_generalisation.ipynb"]}, smoke_plan)
    assert "not reached when this record was taken: `05_generalisation.ipynb`" in stopped
    assert "| `03_train_clip_head.ipynb` | 20, still running when recorded |" in stopped
    assert "still running" not in text
    assert "`make test-full` of commit `abc1234+changes`" in full_markdown({**_rehearsal(), "commit": "abc1234+changes"},
                                                                         smoke_plan)
    assert "| `03_train_clip_head.ipynb` | 18 (2 failed) | 62 min | 14.0 GB | **no** |" in text


def test_readme_full_writes_the_block_and_keeps_the_record(tmp_path, monkeypatch, smoke_plan):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "full_rehearsal.json").write_text(json.dumps(_rehearsal()))
    start, end = README_MARKERS
    page = tmp_path / readme.HOMES[README_MARKERS]  # docs/profiles.md
    page.parent.mkdir(parents=True)
    page.write_text(f"# kit\n{start}\nold\n{end}\nafter\n")
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    monkeypatch.setenv("DETECTLIB_PROFILE", "demo")  # as the README is written: results/ and figures/ at the root
    monkeypatch.setattr(readme, "plan_for_colab", lambda: smoke_plan)
    assert readme.main(["--full"]) == 0
    text = page.read_text()
    assert text.startswith(f"# kit\n{start}\n") and text.endswith(f"{end}\nafter\n") and "old" not in text
    record = json.loads((tmp_path / "figures" / "full_rehearsal.json").read_text())
    assert record["colab_plan"] == smoke_plan and full_markdown(record, record["colab_plan"]) in text


def test_readme_full_without_a_rehearsal_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))
    assert readme.main(["--full"]) == 2
    assert "run make test-full first" in capsys.readouterr().err


def test_data_workers_never_outnumber_the_cpus_this_process_may_use():
    import os

    import torch

    from detectlib.training.convnext import make_loaders

    data = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    loaders = make_loaders({"train": data, "val": data}, batch_size=2, workers=10_000)
    assert {loader.num_workers for loader in loaders.values()} == {len(os.sched_getaffinity(0))}
    assert make_loaders({"train": data}, batch_size=2, workers=0)["train"].num_workers == 0
