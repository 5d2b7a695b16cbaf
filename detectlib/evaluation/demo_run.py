"""What one ``make demo`` printed, gathered from its executed notebooks for the README and the teacher's guide.

Why: a number typed into the README comes from whichever run its author last looked at, and the figures beside it
from another. Each lesson ends with a takeaways cell that prints its findings from the run's own variables; this
module reads those printed lines (and each lesson's running time) out of the executed copies of one run, keeps
them as ``figures/demo_run.json`` beside that run's figures, and renders the blocks the README and TEACHERS.md
carry between markers, so a test can check the blocks still say what that run printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

DEMO_RUN_JSON = "demo_run.json"
TAKEAWAYS_HEADING = "## Takeaways"
README_MARKERS = ("<!-- demo-results:start -->", "<!-- demo-results:end -->")
TEACHERS_MARKERS = ("<!-- demo-takeaways:start -->", "<!-- demo-takeaways:end -->")


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def takeaways(notebook: Mapping[str, Any]) -> list[str]:
    """The lines the code cell after a lesson's "## Takeaways" heading printed (empty when it has none)."""
    cells = notebook["cells"]
    for heading, cell in zip(cells, cells[1:], strict=False):
        if heading["cell_type"] == "markdown" and TAKEAWAYS_HEADING in _source(heading) and cell["cell_type"] == "code":
            text = "".join(_source(out) if "source" in out else "".join(out.get("text", ""))
                           for out in cell.get("outputs", []) if out.get("output_type") == "stream")
            return [line for line in text.splitlines() if line.strip()]
    return []


def _times(notebook: Mapping[str, Any]) -> list[tuple[datetime, datetime]]:
    """(start, end) of every executed code cell, from the timing nbclient records in each cell's metadata."""
    spans = []
    for cell in notebook["cells"]:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            spans.append(tuple(datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                               for key in ("iopub.execute_input", "shell.execute_reply")))
    return spans


def _printed_seeds(notebook: Mapping[str, Any]) -> set[int]:
    """The base seed(s) a lesson printed (``seeds: (1, 2, 3)`` in lessons 02 and 03): what the run really used."""
    return {int(found) for cell in notebook["cells"] for output in cell.get("outputs", [])
            if output.get("output_type") == "stream"
            for found in re.findall(r"seeds: \((-?\d+),", "".join(output.get("text", "")))}


def collect_run(executed: Sequence[Path | str], *, seed: int, profile: str, machine: Mapping[str, Any]) -> dict:
    """The record of one run: its seed, profile and machine, and per executed lesson its takeaways and seconds.
    A lesson that printed another seed than ``seed`` stops it: the record would credit the run with a seed it
    did not use (as when this runs in a shell without the run's ``DETECTLIB_SEED``)."""
    lessons, ends = [], []
    for path in sorted(map(Path, executed)):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        other = _printed_seeds(notebook) - {seed}
        if other:
            raise ValueError(f"{path}: this run used seed {min(other)}, not {seed}; set DETECTLIB_SEED={min(other)} "
                             "(make demo passes it on) and run again")
        spans = _times(notebook)
        ends += [end for _, end in spans]
        lessons.append({"notebook": path.stem, "seconds": round(sum((e - s).total_seconds() for s, e in spans)),
                        "takeaways": takeaways(notebook)})
    missing = [lesson["notebook"] for lesson in lessons if not lesson["takeaways"]]
    if missing:
        raise ValueError(f"no printed takeaways in {', '.join(missing)}: run the notebooks (make demo) first")
    return {"date": max(ends).date().isoformat() if ends else None, "seed": seed, "profile": profile,
            "machine": dict(machine), "lessons": lessons}


def _machine(machine: Mapping[str, Any]) -> str:
    features = [name for name in ("avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni") if machine.get(name)]
    return (f"{machine.get('model', 'unknown CPU')}, {machine.get('cores', '?')} cores"
            + (f" ({', '.join(features)})" if features else " (no AVX-512 or AMX)"))


def demo_markdown(record: Mapping[str, Any]) -> str:
    """The README's block: the run, then each lesson's takeaways as it printed them, word for word."""
    total = sum(lesson["seconds"] for lesson in record["lessons"])
    each = ", ".join(f"{lesson['notebook'][:2]} {lesson['seconds'] / 60:.0f}" for lesson in record["lessons"])
    lines = [f"One `make demo` in the `{record['profile']}` profile with seed {record['seed']} (`DETECTLIB_SEED`), "
             f"{record['date']}, on {_machine(record['machine'])}: the notebooks ran {total / 60:.0f} min ({each} "
             "min). Each lesson's takeaways, as its last code cell printed them:", ""]
    for lesson in record["lessons"]:
        lines.append(f"**{lesson['notebook']}**")
        lines.append("")
        lines += [f"- {line.split('. ', 1)[1] if line[:1].isdigit() and '. ' in line else line}"
                  for line in lesson["takeaways"]]
        lines.append("")
    return "\n".join(lines).rstrip()


def teachers_markdown(record: Mapping[str, Any]) -> str:
    """TEACHERS.md's block: what each lesson printed in the last run, so a teacher knows what a class will see."""
    lines = [f"From the `make demo` of {record['date']} (seed {record['seed']}); a run on another machine or seed "
             "may differ, and the lessons say so where it matters:", ""]
    for lesson in record["lessons"]:
        lines.append(f"- **{lesson['notebook']}** ({lesson['seconds'] / 60:.0f} min): "
                     + " ".join(lesson["takeaways"]))
    return "\n".join(lines)


def replace_block(text: str, markers: tuple[str, str], block: str) -> str:
    """``text`` with what lies between the two ``markers`` replaced by ``block``."""
    start, end = markers
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ValueError(f"no {start} ... {end} block to fill")
    return f"{head}{start}\n{block}\n{end}{tail}"
