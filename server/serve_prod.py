"""`make serve-prod`: the coach's graphs on GraphHarbor, a LangGraph Agent Server that keeps everything in Postgres.

    uv run python -m server.serve_prod [--port N] [--host 127.0.0.1] [--workers 2] [--executors N]
        [--jobs-per-worker 8]

GraphHarbor (`graphharbor` on PyPI, MIT) serves the LangGraph API (threads, runs, wait and stream, interrupts,
crons, the store) from `langgraph.prod.json`: the same graphs, the same `server.auth` handlers and the coach's
routes (`server.prod_app`). Threads, runs, crons and checkpoints live in the project's Postgres (`DATABASE_URL`),
run queues and streams in its Redis (`REDIS_URL`); the processes keep no state, so more of them, on more hosts,
share the load. This launcher:

1. applies GraphHarbor's schema migrations (`graphharbor migrate upgrade head`);
2. starts `--executors` run executors (default: as many as `--workers`; `server.prod_worker`, GraphHarbor's
   executor loop inside the coach's lifespan: runs and crons, `--jobs-per-worker` runs at a time each);
3. runs the API in `--workers` uvicorn processes (`server.prod_asgi`, GraphHarbor's app factory) in the
   foreground; when it ends (Ctrl-C, SIGTERM), the executors are stopped too (running runs finish first).

An executor costs CPU per run (GraphHarbor stores every stream event of a run in Postgres, one transaction each:
docs/production-server-evaluation.md), so executors are processes, one per core, not more slots in one process.

The API and the executors sign the run context with `GRAPHHARBOR_RUNTIME_CONTEXT_SECRET`: set it (the same on
every host) in production; unset, one is made for this launch. GraphHarbor runs in its production mode
(`GRAPHHARBOR_ENV=production`: routes other than health fail closed). Tokens: as `make serve` (`COACH_AUTH_TOKENS`,
`COACH_AUTH_TOKENS_FILE`, else two development tokens), plus JWTs of an identity provider when `JWT_JWKS_URL`
is set (`server.jwt_auth`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from config.settings import get_settings
from server.prod_asgi import PROD_CONFIG
from server.prod_worker import DEFAULT_JOBS
from server.serve import OFFLINE_ENV, listen_port, token_lines

RUN_WAIT_TIMEOUT_S = 600
"""How long `runs/wait` waits for a run before answering 503, seconds (GRAPHHARBOR_RUN_WAIT_TIMEOUT)."""
STOP_TIMEOUT_S = 20
"""How long the run executor gets to finish after SIGTERM before it is killed, seconds."""


def graphharbor(*args: str) -> list[str]:
    """The `graphharbor` command line (the executable beside this Python)."""
    return [str(Path(sys.executable).with_name("graphharbor")), *args]


def prod_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of GraphHarbor's processes: URIs from the coach's settings, offline, a context secret.

    Raises:
        ValueError: no database or Redis URL is configured.
    """
    settings = get_settings()
    env = {**base, **OFFLINE_ENV}
    env.setdefault("DATABASE_URI", settings.database_url)
    env.setdefault("REDIS_URI", settings.redis_url)
    if not env["DATABASE_URI"] or not env["REDIS_URI"]:
        raise ValueError("DATABASE_URL and REDIS_URL must be set (make services writes them to .env)")
    if not env.get("GRAPHHARBOR_RUNTIME_CONTEXT_SECRET"):
        env["GRAPHHARBOR_RUNTIME_CONTEXT_SECRET"] = secrets.token_hex(32)
    env.setdefault("GRAPHHARBOR_ENV", "production")
    env.setdefault("GRAPHHARBOR_RUNTIME_CONTEXT_ISSUER", "endurance-coach-api")
    env.setdefault("GRAPHHARBOR_RUNTIME_CONTEXT_AUDIENCE", "endurance-coach-worker")
    env.setdefault("LANGGRAPH_RUNTIME_EDITION", "pg")
    # `runs/wait` answers 503 after this long (GraphHarbor's default, 60 s, is shorter than a long debrief).
    env.setdefault("GRAPHHARBOR_RUN_WAIT_TIMEOUT", str(RUN_WAIT_TIMEOUT_S))
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Migrate, start the run executor, serve the API until it stops; returns the API's exit status."""
    parser = argparse.ArgumentParser(prog="python -m server.serve_prod", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 0), help="port (default: free)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS") or 2), help="API processes")
    parser.add_argument("--executors", type=int, default=0, help="run executor processes (default: --workers)")
    parser.add_argument("--jobs-per-worker", type=int, default=DEFAULT_JOBS, help="runs each executor runs at a time")
    parser.add_argument("--config", default=PROD_CONFIG, help="the GraphHarbor configuration file")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.executors < 0 or args.jobs_per_worker < 1:
        parser.error("--workers and --jobs-per-worker must be >= 1, --executors >= 0")
    executor_count = args.executors or args.workers
    settings = get_settings()
    env = prod_env(os.environ)
    lines = token_lines(settings, env)
    port, shown = listen_port(args.host, args.port)
    print(
        f"Endurance coach API on http://{shown}:{port}  (GraphHarbor, {args.workers} API processes + "
        f"{executor_count} run executors x {args.jobs_per_worker} runs; state in Postgres and Redis; Ctrl-C stops it)",
        *lines,
        sep="\n",
        flush=True,
    )
    subprocess.run(graphharbor("migrate", "upgrade", "head"), env=env, check=True)
    executor = [
        sys.executable,
        "-m",
        "server.prod_worker",
        "--config",
        args.config,
        "--jobs",
        str(args.jobs_per_worker),
    ]
    executors = [subprocess.Popen(executor, env=env) for _ in range(executor_count)]
    env["COACH_PROD_CONFIG"] = str(Path(args.config).resolve())
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "server.prod_asgi:create", "--host", args.host,
         "--port", str(port), "--workers", str(args.workers), "--timeout-graceful-shutdown", str(STOP_TIMEOUT_S)],
        env=env,
    )  # fmt: skip

    def forward(signum: int, _frame: object) -> None:
        api.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return api.wait()
    finally:
        _stop(api)
        for proc in executors:
            proc.send_signal(signal.SIGTERM)
        for proc in executors:
            _stop(proc)


if __name__ == "__main__":
    sys.exit(main())
