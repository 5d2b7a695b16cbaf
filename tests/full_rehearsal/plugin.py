"""pytest plugin for ``make test-full`` (``-p full_rehearsal.plugin``): time and memory of every notebook cell.

nbval runs each notebook in its own kernel process. After every cell this reads the kernel's resident memory
(``VmRSS``) and its peak since it started (``VmHWM``) from ``/proc/<pid>/status``, with the cell's seconds and
whether it passed; after every cell it rewrites ``results/full_rehearsal.json`` under pytest's rootdir.
What a ``full`` user needs to know before renting a machine is how long each lesson takes and how much memory it
peaks at; the rehearsal's random weights make every score meaningless, and the file says so.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

RESULTS_FILE = Path("results") / "full_rehearsal.json"


NOTE = ("A rehearsal of the `full` profile on stand-ins (tests/full_rehearsal/prepare.py): CLIP ViT-L/14 and "
        "convnext_tiny with RANDOM weights and a small kit-made 224 px dataset. The numbers here measure time and "
        "memory only; every score the lessons printed is meaningless. Memory is the notebook kernel's own process "
        "(VmRSS after each cell, VmHWM its peak so far); DataLoader worker processes are not counted.")


SWITCHES = ("DETECTLIB_PROFILE", "DETECTLIB_ROOT", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class CellRecord:
    """One executed cell: ``index`` is nbval's code-cell number (its item ``Cell <index>``)."""

    notebook: str
    index: int
    seconds: float
    rss_mb: float | None
    hwm_mb: float | None
    passed: bool


def kernel_memory_mb(pid: int | None) -> tuple[float | None, float | None]:
    """(VmRSS, VmHWM) of process ``pid`` in MB, to 0.1; (None, None) when there is no such process (a kernel
    nbval stopped after a timeout) or no ``/proc``."""
    if pid is None:
        return None, None
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None, None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)  # "VmRSS:\t  123456 kB"
    rss, hwm = (round(int(fields[key].split()[0]) / 1024, 1) if key in fields else None for key in ("VmRSS", "VmHWM"))
    return rss, hwm


def kernel_pid(item: pytest.Item) -> int | None:
    """The pid of the kernel running ``item``'s notebook: nbval's ``IPyNbFile.kernel`` is a ``RunningKernel``
    whose jupyter_client ``KernelManager`` (``km``) launched it through a local provisioner. None once nbval has
    stopped it (``RunningKernel.stop`` deletes ``km``)."""
    manager = getattr(getattr(item.parent, "kernel", None), "km", None)
    return getattr(getattr(manager, "provisioner", None), "pid", None)


def summarise(records: Iterable[CellRecord], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON written after each cell: ``meta`` (date, machine, versions, the notebooks ``requested``) and per
    notebook, in the order run, its total seconds, peak memory (the largest VmHWM, else VmRSS, seen after any
    cell), cells passed and each cell. ``passed`` is true only once every requested notebook has run clean."""
    notebooks: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = notebooks.setdefault(record.notebook, {"seconds": 0.0, "peak_rss_mb": None, "cells_passed": 0,
                                                       "cells_failed": 0, "cells": []})
        entry["seconds"] = round(entry["seconds"] + record.seconds, 2)
        peak = record.hwm_mb if record.hwm_mb is not None else record.rss_mb
        if peak is not None:
            entry["peak_rss_mb"] = round(max(peak, entry["peak_rss_mb"] or 0.0), 1)
        entry["cells_passed" if record.passed else "cells_failed"] += 1
        cell = asdict(record)
        del cell["notebook"]
        entry["cells"].append(cell)
    complete = set(meta.get("requested", ())) <= set(notebooks)
    return {"note": NOTE, **meta, "passed": complete and all(n["cells_failed"] == 0 for n in notebooks.values()),
            "notebooks": notebooks}


def session_meta() -> dict[str, Any]:
    """When, on what, with which libraries and switches the rehearsal ran."""
    import timm
    import torch
    import transformers

    from detectlib.config import cpu_capabilities

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": cpu_capabilities(),
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__},
        "switches": {name: os.environ.get(name) for name in SWITCHES},
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The checkout's commit, with ``+changes`` when tracked files differ from it: which code was rehearsed."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "-uno") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


class RehearsalRecorder:
    """Collects a ``CellRecord`` per nbval cell and writes the summary when the session ends."""

    def __init__(self, rootpath: Path):
        self.out = rootpath / RESULTS_FILE
        self.records: list[CellRecord] = []
        self.requested: list[str] = []
        self._meta: dict[str, Any] | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The notebooks this session will run, so that a record cut short says what it did not reach."""
        from nbval.plugin import IPyNbCell

        names = (os.path.relpath(item.parent.path, session.config.rootpath) for item in session.items
                 if isinstance(item, IPyNbCell))
        self.requested = list(dict.fromkeys(names))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        from nbval.plugin import IPyNbCell

        report = outcome.get_result()
        if call.when != "call" or report.skipped or not isinstance(item, IPyNbCell):
            return
        rss, hwm = kernel_memory_mb(kernel_pid(item))
        notebook = os.path.relpath(item.parent.path, item.config.rootpath)
        self.records.append(CellRecord(notebook, item.cell_num, round(call.duration, 2), rss, hwm, report.passed))
        self.write()  # after every cell: a rehearsal of hours shows its progress, and a stopped one keeps its cells

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(summarise(self.records, self.meta), indent=2) + "\n")

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = {**session_meta(), "requested": self.requested}
        return self._meta

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.records:
            terminalreporter.write_line(f"full rehearsal: time and memory per cell in {self.out} (scores meaningless)")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(RehearsalRecorder(config.rootpath), "full-rehearsal-recorder")
