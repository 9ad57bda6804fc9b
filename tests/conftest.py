"""Shared test helpers: project paths and the shared ride files."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RIDES_DIR = PROJECT_ROOT.parent / "shared" / "data" / "rides"


@pytest.fixture(scope="session")
def rides_dir() -> Path:
    assert RIDES_DIR.is_dir(), f"the shared rides are missing: {RIDES_DIR}"
    return RIDES_DIR
