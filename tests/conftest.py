"""Shared test helpers: project paths and the ride files (vendored in the project, GPL ones beside it).

The MIT-licensed rides (python-fitparse's and sweatpy's) are vendored in `data/rides/` and always present. The
GoldenCheetah rides (`gc_*`, GPL-2.0) stay outside the project, in `../shared/data/rides` (overridable with the
environment variable `COACH_SHARED_RIDES`); the tests that read them are skipped, with `GPL_RIDES_SKIP_REASON`,
when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RIDES_DIR = PROJECT_ROOT / "data" / "rides"
"""The vendored ride files (MIT), part of the repository."""

SHARED_RIDES_DIR = Path(
    os.environ.get("COACH_SHARED_RIDES") or PROJECT_ROOT.parent / "shared" / "data" / "rides"
).resolve()
"""Where the GoldenCheetah rides live, outside the project: `$COACH_SHARED_RIDES` or `../shared/data/rides`."""

GPL_RIDE_PREFIX = "gc_"
GPL_RIDES_SKIP_REASON = (
    f"GoldenCheetah GPL-2.0 rides live in ../shared/data/rides, not in the project; absent here ({SHARED_RIDES_DIR})"
)

needs_gpl_rides = pytest.mark.skipif(not SHARED_RIDES_DIR.is_dir(), reason=GPL_RIDES_SKIP_REASON)
"""Marker of a test (or a `pytest.param`) that reads a GoldenCheetah ride: skipped with the reason when absent."""


def ride_path(name: str) -> Path:
    """The path of a ride file by name: a GoldenCheetah ride (`gc_*`) in the shared folder, others vendored.

    Raises:
        pytest.skip.Exception: a GoldenCheetah ride and the shared folder is absent (the test is reported as
            skipped with `GPL_RIDES_SKIP_REASON`).
    """
    if name.startswith(GPL_RIDE_PREFIX):
        if not SHARED_RIDES_DIR.is_dir():
            pytest.skip(GPL_RIDES_SKIP_REASON)
        return SHARED_RIDES_DIR / name
    return RIDES_DIR / name


def ride_param(name: str) -> object:
    """A `pytest.param` of a ride name, marked `needs_gpl_rides` for a GoldenCheetah ride."""
    return pytest.param(name, marks=needs_gpl_rides) if name.startswith(GPL_RIDE_PREFIX) else pytest.param(name)


@pytest.fixture(scope="session")
def rides_dir() -> Path:
    """The vendored rides folder (`data/rides/`); it is part of the repository, so a missing one fails."""
    assert RIDES_DIR.is_dir(), f"the vendored rides are missing: {RIDES_DIR}"
    return RIDES_DIR


@pytest.fixture(scope="session")
def gpl_rides_dir() -> Path:
    """The GoldenCheetah rides folder outside the project; the test is skipped, with the reason, when absent."""
    if not SHARED_RIDES_DIR.is_dir():
        pytest.skip(GPL_RIDES_SKIP_REASON)
    return SHARED_RIDES_DIR
