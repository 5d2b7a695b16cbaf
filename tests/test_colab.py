"""Where Colab installs the kit from: one URL in pyproject.toml, which every badge and set-up cell follows, and the
rewrite a fork runs (``python -m detectlib.colab --repo``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from detectlib import colab

ROOT = Path(__file__).resolve().parents[1]


def _sources(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]


def _pointers(root: Path) -> tuple[set[str], set[str]]:
    """The repositories named by badges and by install lines in the notebooks under ``root``."""
    badges, installs = set(), set()
    for path in sorted((root / "notebooks").rglob("*.ipynb")):
        text = "\n".join(_sources(path))
        badges |= set(re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/", text))
        installs |= set(re.findall(r'KIT = "git\+https://github\.com/([^"]+)"', text))
    return badges, installs


def test_every_badge_and_set_up_cell_points_at_the_pyproject_repository():
    repo = colab.repository(ROOT)
    assert repo == "detectlib/detectlib"
    assert _pointers(ROOT) == ({repo}, {repo})
    readme = set(re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/", (ROOT / "README.md").read_text()))
    assert readme == {repo}
    for page in sorted((ROOT / "docs").rglob("*.md")):  # pages moved out of the README: any badge or URL they keep
        text = page.read_text()
        named = set(re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/", text))
        named |= set(re.findall(r'https://github\.com/([^/\s"]+/[^/\s"]+)"', text))
        assert named <= {repo}, page


def test_a_fork_changes_one_url_and_every_file_follows(tmp_path, capsys):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    badge = "https://colab.research.google.com/github/detectlib/detectlib/blob/main/notebooks/01_build_dataset.ipynb"
    (tmp_path / "docs" / "moved.md").write_text(f"a badge moved out of the README: [![Open In Colab](x.svg)]({badge})\n")
    before = {p: p.read_text() for p in colab.files_to_point(tmp_path)}
    changed = colab.point_at("me/my-fork", tmp_path)
    assert colab.repository(tmp_path) == "me/my-fork"
    assert _pointers(tmp_path) == ({"me/my-fork"}, {"me/my-fork"})
    assert set(changed) == set(before)  # every notebook, the README, pyproject and a docs page with a badge
    assert tmp_path / "docs" / "moved.md" in changed
    assert "github/me/my-fork/blob/main/notebooks/01" in (tmp_path / "docs" / "moved.md").read_text()
    for path, text in before.items():  # nothing but the repository changed, and the notebooks are still JSON
        after = path.read_text()
        assert after.replace("me/my-fork", "detectlib/detectlib") == text
        if path.suffix == ".ipynb":
            json.loads(after)
    with pytest.raises(ValueError, match="owner/name"):
        colab.point_at("not a repo", tmp_path)
