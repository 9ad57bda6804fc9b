"""Where the benchmarks' data lives: the project's vendored rides, and LoCoMo (not part of the project).

The rides benchmark reads `data/rides/` (MIT-licensed real rides, in the repository). LoCoMo (Maharana et al.,
2024; CC BY-NC 4.0) is not in the repository: the recall benchmarks read the development split kept beside the
project (`../shared/data/locomo/locomo_dev.json`: conversations conv-26, conv-30, conv-41, conv-42, conv-43 of
LoCoMo's `data/locomo10.json`), or any LoCoMo file given with `--data`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RIDES_DIR = PROJECT_ROOT / "data" / "rides"
"""The vendored real rides (see `data/rides/README.md`)."""

LOCOMO_DEV = PROJECT_ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
"""The default LoCoMo file: the development split beside the project."""

LOCOMO_SOURCE = "https://github.com/snap-research/locomo"


def require_locomo(path: Path, parser: argparse.ArgumentParser) -> Path:
    """Return `path` when it is a file; otherwise stop with a message saying where to get LoCoMo (exit code 2).

    Args:
        path: the LoCoMo JSON file given with `--data` (or the default).
        parser: the benchmark's argument parser (`parser.error` prints the usage and the message, exit 2).

    Returns:
        `path`, unchanged.
    """
    if not path.is_file():
        parser.error(
            f"LoCoMo data not found: {path}. LoCoMo is not part of the project (license CC BY-NC 4.0). Get it from "
            f"{LOCOMO_SOURCE} (file data/locomo10.json, ten conversations) and pass --data FILE; the figures of "
            "the README use its development split (conv-26, conv-30, conv-41, conv-42, conv-43), which is "
            f"{LOCOMO_DEV} when ../shared is beside the project."
        )
    return path
