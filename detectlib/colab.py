"""Where Colab installs the kit from, in one place: ``[project.urls] Repository`` in ``pyproject.toml``.

Every notebook's first cell installs ``detectlib[<extras>] @ git+<Repository>`` on Colab, and its "Open in Colab"
badge opens the notebook from the same repository. The default, ``github.com/detectlib/detectlib``, is the name
the kit is meant to be published under; until it is, the badges and the set-up cells point at a repository that
does not exist yet. A fork (or the first publication under another name) changes it once, for every file:

    python -m detectlib.colab --repo you/your-fork

rewrites the URL in ``pyproject.toml``, the README, any page under ``docs/`` that names it (a badge or an install
URL) and every notebook (lessons and exercises). The rewrite is a
plain replacement of the old ``owner/name`` in the two URL forms (badge and install line), so nothing else in a
notebook changes; ``tests/test_colab.py`` checks that all of them agree.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from .cli import command
from .config import project_root
from .files import atomic_write

GITHUB = "https://github.com/"


def repository(root: Path | str | None = None) -> str:
    """``owner/name`` of the repository the notebooks install from (``[project.urls] Repository``)."""
    pyproject = Path(root or project_root()) / "pyproject.toml"
    url = tomllib.loads(pyproject.read_text())["project"]["urls"]["Repository"]
    if not url.startswith(GITHUB):
        raise ValueError(f"{pyproject}: [project.urls] Repository must be a {GITHUB}owner/name URL, got {url}")
    return url.removeprefix(GITHUB).rstrip("/")


def _rewritten(text: str, old: str, repo: str) -> str:
    """``text`` with its badges and install URLs of ``old`` pointed at ``repo``."""
    new = text.replace(f"colab.research.google.com/github/{old}/", f"colab.research.google.com/github/{repo}/")
    # the install line and pyproject's URL (in a notebook's JSON the closing quote is escaped)
    return re.sub(re.escape(f"{GITHUB}{old}") + r'(?=\\?")', f"{GITHUB}{repo}", new)


def files_to_point(root: Path) -> list[Path]:
    """Every file that names the repository: pyproject.toml, the README, each page under docs/ with a badge or an
    install URL of it (material moved out of the README keeps following a fork), and every notebook."""
    old = repository(root)
    pages = [path for path in sorted((root / "docs").rglob("*.md"))
             if _rewritten(text := path.read_text(encoding="utf-8"), old, "\0/\0") != text]
    return [root / "pyproject.toml", root / "README.md", *pages, *sorted((root / "notebooks").rglob("*.ipynb"))]


def point_at(repo: str, root: Path | str | None = None) -> list[Path]:
    """Point every badge and Colab set-up cell at ``repo`` (``owner/name``); returns the files that changed."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        raise ValueError(f"--repo {repo!r}: expected owner/name, e.g. you/detectlib")
    root = Path(root or project_root())
    old = repository(root)
    changed = []
    for path in files_to_point(root):
        text = path.read_text(encoding="utf-8")
        new = _rewritten(text, old, repo)
        if new != text:
            atomic_write(path, lambda tmp, new=new: tmp.write_text(new, encoding="utf-8"))
            changed.append(path)
    return changed


@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.colab [--repo owner/name]``: print, or change, where Colab installs the kit from."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.colab", description=main.__doc__.splitlines()[0])
    parser.add_argument("--repo", default=None, help="owner/name of your fork on GitHub")
    args = parser.parse_args(argv)
    if args.repo is None:
        print(f"Colab installs detectlib from {GITHUB}{repository()}")
        return 0
    changed = point_at(args.repo)
    print(f"{len(changed)} files now point at {GITHUB}{args.repo}" + "".join(f"\n  {p}" for p in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
