"""Chat turns under load on `langgraph dev` and on the production server (GraphHarbor, 1 or N workers).

    uv run python benchmarks/serve_load.py [--server dev|prod] [--workers 2] [--executors N] [--jobs 8]
        [--turns 200] [--clients 20] [--athletes 10]

Bounded and loopback only: starts the server on a free 127.0.0.1 port with fresh athletes and random tokens
(the offline responder, no embeddings), runs `--turns` chat turns from `--clients` concurrent SDK clients (client
`c` chats as athlete `c % athletes` on a thread of its own, its turns one after the other), stops the server, and
checks in Postgres that every turn's message was archived exactly once, under its own athlete only, and that every
thread has checkpoints (both servers checkpoint into Postgres). Prints one JSON object: `{server, workers,
executors, jobs, load_1m, turns, ok, errors, duration_s, turns_per_s, p50_s, p99_s, archived_once, mixed,
threads_with_checkpoints}` (`load_1m`: the machine's 1-minute load average at the end, as `uptime` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from langgraph_sdk import get_client

from config.settings import get_settings
from server.prod_worker import DEFAULT_JOBS
from server.serve import OFFLINE_ENV, free_port, standalone_config

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300
TURN_TIMEOUT_S = 300


def start(
    kind: str, workers: int, executors: int, jobs: int, tokens: dict[str, str], tmp: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server; returns the process and its URL once `/ok` answers."""
    settings, port = get_settings(), free_port()
    env = {**os.environ, **OFFLINE_ENV, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    env.update(COACH_AUTH_TOKENS=json.dumps(tokens), INBOX_DIR=str(tmp / "inbox"), EMBEDDING_PROVIDER="none")
    env.update(OPENAI_API_KEY="", OPENAI_BASE_URL="", PYTHONUNBUFFERED="1")
    env.pop("COACH_AUTH_TOKENS_FILE", None)
    if kind == "prod":
        args = [
            "-m",
            "server.serve_prod",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--executors",
            str(executors),
            "--jobs-per-worker",
            str(jobs),
        ]
        args += ["--config", str(ROOT / "langgraph.prod.json")]
    else:
        args = ["-m", "server.serve", "--port", str(port), "--config", str(standalone_config(tmp))]
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (kept open for the server's life)
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"the {kind} server did not start; log: {tmp / 'server.log'}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL after 60 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def client_turns(url: str, token: str, marker: str, n: int, latencies: list[float]) -> tuple[str, int]:
    """`n` turns on a new thread; returns the thread id and the number of failed turns."""
    sdk = get_client(url=url, headers={"Authorization": f"Bearer {token}"}, timeout=TURN_TIMEOUT_S)
    thread_id, errors = (await sdk.threads.create())["thread_id"], 0
    for k in range(n):
        started = time.perf_counter()
        try:
            out = await sdk.runs.wait(thread_id, "chat", input={"message": f"{marker}-{k}: how was my week?"})
            errors += 0 if isinstance(out, dict) and out.get("reply") else 1
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.perf_counter() - started)
    return thread_id, errors


def check_archive(athletes: list[str], markers: dict[str, str], turns_per_client: int) -> tuple[bool, int]:
    """(every turn's message archived exactly once under its athlete, number of messages under a wrong athlete)."""
    with psycopg.connect(get_settings().database_url) as conn:
        rows = conn.execute(
            "SELECT athlete_id, content FROM messages WHERE role = 'user' AND athlete_id = ANY(%s)", (athletes,)
        ).fetchall()
    counts: dict[str, int] = {}
    mixed = 0
    for athlete_id, content in rows:
        key = content.split(":", 1)[0]
        owner = markers.get(key.rsplit("-", 1)[0])
        counts[key] = counts.get(key, 0) + 1
        mixed += owner is not None and owner != athlete_id
    expected = {f"{m}-{k}" for m in markers for k in range(turns_per_client)}
    return all(counts.get(key) == 1 for key in expected) and set(counts) == expected, mixed


def threads_with_checkpoints(thread_ids: list[str]) -> int:
    """How many of the threads have checkpoints in Postgres (the production server's checkpointer)."""
    with psycopg.connect(get_settings().database_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT thread_id) FROM checkpoints WHERE thread_id = ANY(%s)", (thread_ids,)
        ).fetchone()
    return int(row[0]) if row else 0


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Start the server, load it, stop it, check the archive; the figures."""
    run_id = uuid.uuid4().hex[:8]
    athletes = [f"load-{run_id}-{i}" for i in range(args.athletes)]
    tokens = {secrets.token_urlsafe(24): a for a in athletes}
    token_of = {a: t for t, a in tokens.items()}
    per_client = args.turns // args.clients
    markers = {f"load {run_id} c{c}": athletes[c % args.athletes] for c in range(args.clients)}
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(args.server, args.workers, args.executors, args.jobs, tokens, Path(tmp))
        try:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(client_turns(url, token_of[a], m, per_client, latencies) for m, a in markers.items())
            )
            duration_s = time.perf_counter() - started
        finally:
            stop(proc)
    await asyncio.sleep(2)  # the outbox drainer has stopped with the server; give Postgres a moment
    archived_once, mixed = check_archive(athletes, markers, per_client)
    ordered = sorted(latencies)
    checkpointed = threads_with_checkpoints([t for t, _ in results])
    return {
        "server": args.server, "workers": args.workers if args.server == "prod" else 1,
        "executors": (args.executors or args.workers) if args.server == "prod" else None,
        "jobs": args.jobs if args.server == "prod" else None, "load_1m": round(os.getloadavg()[0], 2),
        "turns": len(latencies),
        "ok": len(latencies) - sum(e for _, e in results), "errors": sum(e for _, e in results),
        "duration_s": round(duration_s, 2), "turns_per_s": round(len(latencies) / duration_s, 2),
        "p50_s": round(ordered[len(ordered) // 2], 3), "p99_s": round(ordered[int(len(ordered) * 0.99) - 1], 3),
        "archived_once": archived_once, "mixed": mixed,
        "threads_with_checkpoints": checkpointed,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("dev", "prod"), default="prod")
    parser.add_argument("--workers", type=int, default=2, help="API processes of the production server")
    parser.add_argument("--executors", type=int, default=0, help="run executors of the production server (0: workers)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs the production executor runs at a time")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--athletes", type=int, default=10)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
