"""Shared pytest fixtures: the real-scan folder beside the project, a private model cache, small images.

The tests mirror the library's layout (Testing/<package>/test_<module>.py; see the README's Testing section) and
are imported with ``--import-mode=importlib`` (pyproject.toml), so two test files of the same name in different
folders (``cli/test_batch.py``, ``inference/test_batch.py``) never collide and no test folder goes on
``sys.path``. The shared helpers beside this file (``inference_fixtures``, ``http_server``, ``dicom_fixtures``,
``lesion_fixtures``, ``progress_checks``) are importable from every test because this folder is put on
``sys.path`` here, whichever folder or file pytest is given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
if str(TESTING) not in sys.path:
    sys.path.insert(0, str(TESTING))

REPO_ROOT = TESTING.parent
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"
SPINE_VB = REPO_ROOT.parent / "shared" / "data" / "spine-vb"
# Set by .ci/run: there the real scans always lie beside the project, so a test that needs them fails, not skips.
REQUIRE_REAL_DATA_ENV = "SPINEMETSEG_REQUIRE_REAL_DATA"


def real_folder(folder: Path, what: str) -> Path:
    """``folder`` when it exists; else skip (a fresh clone elsewhere) or, where real data is required, fail."""
    if not folder.is_dir():
        reason = f"{what} not found at {folder} (they live beside the project, not in it)"
        if os.environ.get(REQUIRE_REAL_DATA_ENV):
            pytest.fail(f"{reason}; {REQUIRE_REAL_DATA_ENV} is set, so real data is required")
        pytest.skip(reason)
    return folder


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of real MRI scans (../shared/data/real)."""
    return real_folder(REAL_DATA, "real MRI fixtures")


@pytest.fixture(scope="session")
def spine_vb_dir() -> Path:
    """The real lumbar scans with vertebral-body masks (../shared/data/spine-vb)."""
    return real_folder(SPINE_VB, "real lumbar MRI fixtures")


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
