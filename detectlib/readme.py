"""``python -m detectlib.readme``: write the README's results from the last ``make demo`` (it runs this last).

Two blocks, each from one run and nothing else: the lessons' takeaways as the executed notebooks in
``build/executed/`` printed them (kept as ``figures/demo_run.json``, in README.md and also rendered into the
teacher's guide), and the in-the-wild table from ``results/wild.json`` (kept as ``figures/wild.json``, in
docs/results.md). The copies sit beside the figures of the same run; ``--check`` compares README.md, docs/results.md
and TEACHERS.md with them, which the test suite does. ``--full`` writes a third block instead, into
docs/profiles.md, from the last ``make test-full`` (``results/full_rehearsal.json``) and the T4 plan measured now
(``workflows.colab_plan``), kept as ``figures/full_rehearsal.json``. ``HOMES`` says which file carries each block.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from .cli import command, fail
from .config import Paths, cpu_capabilities, get_paths, get_profile, seed_of
from .evaluation.demo_run import (
    DEMO_RUN_JSON,
    README_MARKERS,
    TEACHERS_MARKERS,
    collect_run,
    demo_markdown,
    replace_block,
    teachers_markdown,
)
from .evaluation.wild_report import README_END as WILD_END
from .evaluation.wild_report import README_START as WILD_START
from .evaluation.wild_report import WILD_JSON, read_wild_json, wild_markdown
from .files import atomic_write
from .workflows.colab_plan import FULL_REHEARSAL_JSON, full_markdown, plan_for_colab
from .workflows.colab_plan import README_MARKERS as FULL_MARKERS

# The files that carry a generated block, relative to the repository root: the one place that says where each lives.
README = Path("README.md")
RESULTS_PAGE = Path("docs") / "results.md"
PROFILES_PAGE = Path("docs") / "profiles.md"
TEACHERS = Path("notebooks") / "exercises" / "TEACHERS.md"
WILD_MARKERS = (WILD_START, WILD_END)
HOMES = {README_MARKERS: README, WILD_MARKERS: RESULTS_PAGE, TEACHERS_MARKERS: TEACHERS, FULL_MARKERS: PROFILES_PAGE}


def documents(root: Path) -> list[Path]:
    """The Markdown files under ``root`` a block could be pasted into: README.md, docs/*.md and TEACHERS.md."""
    found = [root / README, *sorted((root / "docs").glob("*.md")), root / TEACHERS]
    return [path for path in found if path.is_file()]


def home(root: Path, markers: tuple[str, str]) -> Path:
    """The one file that carries the block between ``markers`` (``HOMES``); its start marker anywhere else is an
    error, so a block is never written into, or checked in, a stale copy."""
    path = root / HOMES[markers]
    others = [p.relative_to(root).as_posix() for p in documents(root)
              if p != path and markers[0] in p.read_text(encoding="utf-8")]
    if others:
        raise ValueError(f"{markers[0]} belongs in {HOMES[markers].as_posix()} only; found also in {', '.join(others)}")
    return path


def _rendered(root: Path, record: dict, wild: dict, full: dict | None) -> dict[Path, str]:
    """Each file that carries a block (``HOMES``) as it must read for this run's record and WILD report (and
    ``full``, the rehearsal with its T4 plan, when one has been recorded)."""
    texts: dict[Path, str] = {}

    def fill(markers: tuple[str, str], block: str) -> None:
        path = home(root, markers)
        text = texts[path] if path in texts else path.read_text(encoding="utf-8")
        texts[path] = replace_block(text, markers, block)

    fill(README_MARKERS, demo_markdown(record))
    fill(WILD_MARKERS, wild_markdown(wild))
    fill(TEACHERS_MARKERS, teachers_markdown(record))
    if full is not None:
        fill(FULL_MARKERS, full_markdown(full, full["colab_plan"]))
    return texts


@command
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m detectlib.readme [--check]``: fill (or, with ``--check``, compare) the generated blocks."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when README.md, docs/results.md or TEACHERS.md differ from figures/ "
                             "instead of writing")
    parser.add_argument("--full", action="store_true",
                        help="write the full-profile block from results/full_rehearsal.json (make test-full)")
    args = parser.parse_args(argv)
    paths = get_paths()
    try:
        if args.full:
            return _write_full(paths.root, paths.results / FULL_REHEARSAL_JSON, paths.figures / FULL_REHEARSAL_JSON)
        return _write_or_check(paths, check=args.check)
    except ValueError as err:  # a block's markers missing from its file, or found in another: one line
        return fail(err)


def _write_or_check(paths: Paths, check: bool) -> int:
    """The demo's blocks from the executed notebooks (or, with ``check``, compared with the copies in figures/)."""
    full_copy = paths.figures / FULL_REHEARSAL_JSON
    full = json.loads(full_copy.read_text(encoding="utf-8")) if full_copy.exists() else None
    if check:
        record = json.loads((paths.figures / DEMO_RUN_JSON).read_text(encoding="utf-8"))
        wild_source = paths.figures / WILD_JSON
    else:
        executed = sorted((paths.root / "build" / "executed").glob("[0-9][0-9]_*.ipynb"))
        if not executed:
            raise FileNotFoundError(f"{paths.root / 'build' / 'executed'}: no executed notebooks; run make demo first")
        try:
            record = collect_run(executed, seed=seed_of(), profile=get_profile().name, machine=cpu_capabilities())
        except ValueError as err:  # notebooks not run, or run under another seed: one line, not a traceback
            return fail(err)
        wild_source = paths.results / WILD_JSON
    wild = read_wild_json(wild_source)
    if wild is None:
        raise FileNotFoundError(f"{wild_source}: no WILD results; run notebook 05 (make demo) first")
    rendered = _rendered(paths.root, record, wild, full)
    if check:
        stale = [path.relative_to(paths.root).as_posix() for path, text in rendered.items()
                 if path.read_text(encoding="utf-8") != text]
        print(f"{', '.join(stale)} differ from figures/{DEMO_RUN_JSON} and figures/{WILD_JSON}" if stale
              else f"{', '.join(p.as_posix() for p in HOMES.values() if paths.root / p in rendered)} "
                   "say what the committed run printed")
        return 1 if stale else 0
    for path, text in rendered.items():
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    atomic_write(paths.figures / DEMO_RUN_JSON, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    atomic_write(paths.figures / WILD_JSON, lambda tmp: shutil.copyfile(wild_source, tmp))
    print(f"{', '.join(path.relative_to(paths.root).as_posix() for path in rendered)} written from "
          f"{len(record['lessons'])} executed notebooks and {wild_source}; copies kept in {paths.figures}")
    return 0


def _write_full(root: Path, source: Path, copy: Path) -> int:
    """The full-profile block (in docs/profiles.md) from one rehearsal and the T4 plan, measured now; the record is
    kept."""
    if not source.exists():
        raise FileNotFoundError(f"{source}: no rehearsal recorded; run make test-full first")
    record = {**json.loads(source.read_text(encoding="utf-8")), "colab_plan": plan_for_colab()}
    page = home(root, FULL_MARKERS)
    text = replace_block(page.read_text(encoding="utf-8"), FULL_MARKERS, full_markdown(record, record["colab_plan"]))
    atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    atomic_write(copy, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    print(f"{HOMES[FULL_MARKERS].as_posix()}'s full-profile block written from {source} and the T4 plan; "
          f"record kept in {copy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
