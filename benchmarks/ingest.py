"""Ingest benchmark: time to read the longest ride of a folder and to compute its metrics.

The folder is `--data` (default: the project's vendored rides, `data/rides/`). The longest ride is chosen by
1 Hz sample count (recorded seconds, pauses excluded), which is what both the resampling and the metrics scale
with; among the vendored rides (and those of `../shared/data/rides`) it is also the longest by elapsed time
(fitparse_ELEMNT-2019-02-17.fit, 6:33:11 elapsed, ~13 500 samples). Each phase is timed over several
repetitions; the median is reported, and metrics time as a ratio to parse time.

Usage: ``uv run python benchmarks/ingest.py [--repeat N] [--data FOLDER | --file PATH] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.bench_data import RIDES_DIR
from training.metrics import compute_metrics
from training.ride_files import Ride, find_ride_files, read_ride


def longest_ride(rides_dir: Path) -> tuple[Path, Ride]:
    """Read every ride file in ``rides_dir`` once and return the one with the most 1 Hz samples."""
    best: tuple[Path, Ride] | None = None
    for path in find_ride_files([rides_dir]):
        ride = read_ride(path)
        if best is None or ride.samples.n_samples > best[1].samples.n_samples:
            best = (path, ride)
    assert best is not None  # find_ride_files raises on a folder without ride files
    return best


def time_runs(path: Path, repeat: int) -> dict[str, object]:
    """Time ``read_ride`` and ``compute_metrics`` ``repeat`` times each on one file (seconds)."""
    parse_s: list[float] = []
    metrics_s: list[float] = []
    ride: Ride | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        ride = read_ride(path)
        parse_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_metrics(ride)
        metrics_s.append(time.perf_counter() - start)
    assert ride is not None
    parse_median_s = statistics.median(parse_s)
    metrics_median_s = statistics.median(metrics_s)
    return {
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "samples": ride.samples.n_samples,
        "records": ride.n_records,
        "elapsed_s": ride.samples.total_elapsed_s,
        "repeat": repeat,
        "parse_median_s": parse_median_s,
        "parse_min_s": min(parse_s),
        "metrics_median_s": metrics_median_s,
        "metrics_min_s": min(metrics_s),
        "metrics_to_parse_ratio": metrics_median_s / parse_median_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per phase (default 5)")
    parser.add_argument(
        "--data", type=Path, default=RIDES_DIR, help=f"folder of ride files whose longest is used (default {RIDES_DIR})"
    )
    parser.add_argument("--file", type=Path, help="benchmark this ride file instead of the longest of --data")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.file is None and not args.data.is_dir():
        parser.error(f"--data {args.data}: not a folder of ride files")
    path = args.file if args.file is not None else longest_ride(args.data)[0]
    result = time_runs(path, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"ride:    {result['file']} ({result['file_bytes']:,} bytes, {result['records']:,} records,")
    print(f"         {result['samples']:,} samples at 1 Hz, {result['elapsed_s']:,} s elapsed)")
    print(f"parse:   median {result['parse_median_s']:.3f} s (min {result['parse_min_s']:.3f} s) over {args.repeat}")
    print(
        f"metrics: median {result['metrics_median_s'] * 1000:.1f} ms "
        f"(min {result['metrics_min_s'] * 1000:.1f} ms) over {args.repeat}"
    )
    print(f"metrics / parse: {result['metrics_to_parse_ratio']:.4f} ({result['metrics_to_parse_ratio']:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
