"""GraphHarbor's run executor with the coach's process lifespan: `python -m server.prod_worker` (`make serve-prod`).

    uv run python -m server.prod_worker [--config langgraph.prod.json] [--jobs 4]

`graphharbor worker` runs the graphs in a process that has no `http.app` lifespan: the graphs would find no
stores (`records.stores.get_stores` raises `StoresNotOpenError`), the embedding model would not be warmed and the
outbox drainer would not run. This module runs GraphHarbor's own executor loop
(`langgraph_runtime_pg.production_worker.run_worker`, what `graphharbor worker` calls) inside the coach's lifespan
(`server.app.lifespan`): one Postgres pool and one Redis client per executor process, opened at start, shared by
every run, drained and closed when the executor stops (SIGTERM or SIGINT: GraphHarbor's handlers let the running
runs finish first). The runs' checkpoints are written through `server.prod_checkpointer.BoundedFencedPostgresSaver`
(GraphHarbor's fenced saver, keeping only `Settings.checkpoint_keep` checkpoints per thread, as `make serve` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.prod_asgi import PROD_CONFIG

DEFAULT_JOBS = 8
"""Runs one executor process runs at a time (GraphHarbor's own default is 1)."""


async def run(config: Path, jobs: int) -> None:
    """Run GraphHarbor's executor loop with `jobs` slots inside the coach's lifespan, until SIGTERM/SIGINT.

    Args:
        config: the GraphHarbor configuration (`langgraph.prod.json`).
        jobs: runs executed at a time (>= 1).

    Raises:
        ValueError: `jobs` < 1, or DATABASE_URI / REDIS_URI is not set.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if not os.environ.get("DATABASE_URI") or not os.environ.get("REDIS_URI"):
        raise ValueError("DATABASE_URI and REDIS_URI must be set (server.serve_prod sets them from the settings)")
    # What `graphharbor worker` sets before it starts the loop (langhost.cli.worker_command).
    os.environ["LANGGRAPH_RUNTIME_EDITION"] = "pg"
    os.environ["GRAPHHARBOR_COMPATIBILITY_SPIKE"] = "0"
    from langgraph_runtime_pg.production_worker import run_worker

    from server.app import app, lifespan
    from server.prod_checkpointer import install

    install()  # bounded checkpoint history (server.prod_checkpointer), before run_worker starts the pool

    async with lifespan(app):
        await run_worker(config, n_jobs_per_worker=jobs)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the executor; returns 0 once it has stopped."""
    parser = argparse.ArgumentParser(prog="python -m server.prod_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=PROD_CONFIG, help="the GraphHarbor configuration file")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs executed at a time")
    args = parser.parse_args(argv)
    asyncio.run(run(Path(args.config).resolve(), args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
