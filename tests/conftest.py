"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FAIRMED_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real metadata in ../shared/data; a clear failure (not a skip) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"real data folder not found at {SHARED_DATA}: clone the project with ../shared beside it"
        )
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread avoids thrashing on shared cores (restored afterwards).

    Use per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch  # here, not at the top: the audit tests never import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
