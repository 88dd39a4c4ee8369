"""Shared pytest set-up: deterministic torch, few threads (the suite must fit 2 cores)."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("EDGEVIT_TEST", "1")
torch.manual_seed(0)
# under pytest-xdist each worker gets one thread, so workers do not fight over the 2 cores
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


@pytest.fixture
def tmp_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out
