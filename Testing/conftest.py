"""Shared pytest fixtures: the real-scan folder beside the project, a private model cache, small images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of real MRI scans (../shared/data/real); tests using it skip where it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real MRI fixtures not found at {REAL_DATA} (they live beside the project, not in it)")
    return REAL_DATA


@pytest.fixture(autouse=True)
def private_spinemetseg_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty model cache, so no test reads or writes the user's ~/.spinemetseg."""
    if "SPINEMETSEG_HOME_KEEP" not in os.environ:
        monkeypatch.setenv("SPINEMETSEG_HOME", str(tmp_path_factory.mktemp("spinemetseg_home")))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def pytest_configure(config):
    import torch

    # Two cores in CI: one thread per test process keeps timings predictable.
    torch.set_num_threads(1)
