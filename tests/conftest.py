"""Fixtures shared by several test modules (plain builders live in ``builders.py``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module: the same numbers on any machine, and no 5-10x stall when two OpenMP
    threads fight over a busy 2-core CPU (``make test`` also sets ``OMP_NUM_THREADS=1``; this holds without it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
