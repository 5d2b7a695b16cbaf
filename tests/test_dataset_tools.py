"""create_samples / create_full_all: counts, prefixes, untouched sources, idempotence, conflicts, the CLIs."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

from detectlib import create_full_all as full_all_cli
from detectlib import create_samples as samples_cli
from detectlib.config import CLASSES
from detectlib.data.layout import SPLITS, list_class_images
from detectlib.data.tools import create_full_all, create_samples

GENS = ("ADM", "BigGAN")
PER_FOLDER = 5


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root: content hash and modification time."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def raw(tmp_path) -> Path:
    """raw/<GEN>/{train,val}/{ai,nature}/img_<k>.png with unique bytes, plus things the tools must ignore."""
    root = tmp_path / "data" / "raw"
    for gen, split, cls in product(GENS, SPLITS, CLASSES):
        folder = root / gen / split / cls
        folder.mkdir(parents=True)
        for k in range(PER_FOLDER):
            (folder / f"img_{k}.png").write_bytes(f"{gen}/{split}/{cls}/{k}".encode())
        (folder / "notes.txt").write_text("not an image")
    (root / "ALL_old" / "train" / "ai").mkdir(parents=True)  # combined sets are skipped
    (root / "ALL_old" / "train" / "ai" / "x.png").write_bytes(b"combined")
    (root / "README.md").write_text("a file, not a generator")
    return root


def test_create_samples_takes_n_per_class_from_every_generator(raw, tmp_path):
    out = tmp_path / "samples"
    summary = create_samples(raw, out, n_per_class=3, seed=0)
    assert summary.copied == len(GENS) * 2 * 2 * 3 and summary.present == 0 and summary.conflicts == []
    assert summary.per_generator == {"ADM": 12, "BigGAN": 12}
    for split, cls in product(SPLITS, CLASSES):
        names = [p.name for p in list_class_images(out / split / cls)]
        assert len(names) == 6
        assert sorted(n.split("_")[0] for n in names) == ["ADM"] * 3 + ["BigGAN"] * 3
        for (
            name
        ) in names:  # the copy holds the source's bytes: <GEN>_<name> <- raw/<GEN>/<split>/<cls>/<name>
            gen, original = name.split("_", 1)
            assert (out / split / cls / name).read_bytes() == (
                raw / gen / split / cls / original
            ).read_bytes()
    assert not (out / "train" / "ai" / "ALL_old_x.png").exists()


def test_create_samples_is_seeded_and_takes_all_when_short(raw, tmp_path):
    def picked(out: Path) -> list[str]:
        return sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))

    create_samples(raw, tmp_path / "a", n_per_class=2, seed=1)
    create_samples(raw, tmp_path / "b", n_per_class=2, seed=1)
    create_samples(raw, tmp_path / "c", n_per_class=2, seed=2)
    assert picked(tmp_path / "a") == picked(tmp_path / "b") != picked(tmp_path / "c")
    summary = create_samples(raw, tmp_path / "all", n_per_class=100)
    assert summary.copied == len(GENS) * 2 * 2 * PER_FOLDER


@pytest.mark.parametrize("tool", ["samples", "full"])
def test_sources_unchanged_and_second_run_copies_nothing(raw, tmp_path, tool):
    before = _snapshot(raw)
    run = (
        (lambda: create_samples(raw, tmp_path / "out", n_per_class=2))
        if tool == "samples"
        else (lambda: create_full_all(raw, tmp_path / "out"))
    )
    first = run()
    second = run()
    assert _snapshot(raw) == before
    assert first.copied > 0 and second.copied == 0 and second.present == first.copied


def test_create_full_all_merges_everything_with_prefixes_and_skips_itself(raw):
    out = raw / "ALL_full"  # the reference's default place, inside raw
    summary = create_full_all(raw, out)
    assert summary.copied == len(GENS) * 2 * 2 * PER_FOLDER
    for split, cls in product(SPLITS, CLASSES):
        names = sorted(p.name for p in list_class_images(out / split / cls))
        assert names == sorted(f"{gen}_img_{k}.png" for gen in GENS for k in range(PER_FOLDER))
    again = create_full_all(raw, out)  # ALL_full is not read back as a generator
    assert (again.copied, again.present) == (0, summary.copied)


def test_a_different_file_at_the_destination_is_never_overwritten(raw, tmp_path):
    out = tmp_path / "out"
    theirs = out / "val" / "nature" / "BigGAN_img_3.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's image")
    with pytest.warns(UserWarning, match="BigGAN_img_3.png exists and differs"):
        summary = create_full_all(raw, out)
    assert theirs.read_bytes() == b"someone else's image"
    assert summary.conflicts == [theirs] and summary.copied == len(GENS) * 2 * 2 * PER_FOLDER - 1
    assert "1 conflicts" in str(summary)
    assert not list(out.rglob("*.tmp"))


def test_clis_use_the_reference_defaults_relative_to_the_working_directory(raw, monkeypatch, capsys):
    monkeypatch.chdir(raw.parent.parent)
    assert samples_cli.main(["--n_per_class", "1", "--seed", "3"]) == 0
    assert len(list(Path("data/samples/ALL").rglob("*.png"))) == len(GENS) * 2 * 2
    assert full_all_cli.main([]) == 0
    assert len(list(Path("data/raw/ALL_full").rglob("*.png"))) == len(GENS) * 2 * 2 * PER_FOLDER
    assert "0 conflicts" in capsys.readouterr().out


@pytest.mark.parametrize("cli", [samples_cli, full_all_cli])
def test_clis_report_a_missing_raw_dir_in_one_line_with_exit_code_2(cli, tmp_path, capsys):
    assert cli.main(["--raw_dir", str(tmp_path / "missing"), "--out_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing" in err
    assert not (tmp_path / "out").exists()


def test_module_entry_point_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "detectlib.create_samples", "--raw_dir", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_negative_n_per_class_is_refused(raw, tmp_path, capsys):
    assert samples_cli.main(["--raw_dir", str(raw), "--n_per_class", "-1"]) == 2
    assert "n_per_class must be >= 0" in capsys.readouterr().err
