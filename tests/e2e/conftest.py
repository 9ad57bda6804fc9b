"""The servers of the end-to-end tests: `langgraph dev` and the production server, each started once per session.

`coach_server` is `langgraph dev`; `prod_server` is GraphHarbor as `make serve-prod` runs it (`python -m
server.serve_prod`, 2 API processes and a run executor, threads, runs and crons in the same Postgres and Redis);
test modules that run against both override `coach_server` with `both_servers` (parametrized).

The server runs the project's `langgraph.json` (copied with absolute paths, no `.env` reload and no file
persistence, run from a temporary folder, so the tests leave no threads or crons in the developer's
`.langgraph_api/`) through the same
launcher as `make serve` (`python -m server.serve`), against the real Postgres and Redis of `.env`. Two athletes
with fresh ids and random tokens (from `COACH_AUTH_TOKENS`) make every run independent of the previous ones. The
model is the offline responder (no endpoint configured), which is deterministic.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config.settings import get_settings
from server.serve import OFFLINE_ENV, free_port, standalone_config
from tests.conftest import PROJECT_ROOT

START_TIMEOUT_S = 90
PROD_START_TIMEOUT_S = 240
"""The production server starts 3 processes that each import the coach (slow on a loaded 2-core machine)."""
UPLOAD_MAX_FILE_BYTES = 2 * 1024 * 1024
"""The test server's largest upload (`INBOX_MAX_FILE_BYTES`): small, so the 413 test sends little."""
UPLOAD_QUOTA_BYTES = 4 * 1024 * 1024
"""The test server's inbox quota per athlete (`INBOX_QUOTA_BYTES`): small, so the 507 test sends little."""


@dataclass(frozen=True)
class Athlete:
    """An athlete of the test server and its bearer token."""

    athlete_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The request headers that authenticate as this athlete."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class CoachServer:
    """A running test server."""

    url: str
    a: Athlete
    b: Athlete
    inbox_dir: Path
    c: Athlete  # for the upload limits (its inbox fills up to the quota)
    log_path: Path
    outbox_stream: str  # its own (`Settings.outbox_stream`): no other test's messages to drain

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log (for failure messages)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def coach_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoachServer]:
    """Start `python -m server.serve` on a free port and stop it at the end of the session."""
    with running_server(tmp_path_factory.mktemp("coach-server")) as server:
        yield server


@pytest.fixture(scope="session")
def prod_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoachServer]:
    """Start `python -m server.serve_prod --workers 2` on a free port and stop it at the end of the session."""
    tmp = tmp_path_factory.mktemp("coach-prod-server")
    with running_server(tmp, kind="prod") as server:
        yield server


SERVER_KINDS = ("langgraph-dev", "graphharbor")
"""The servers `both_servers` runs a test against: `make serve` and `make serve-prod`."""


def both_servers(request: pytest.FixtureRequest, coach_server: CoachServer) -> CoachServer:
    """Body of a module's `coach_server` override parametrized over `SERVER_KINDS`.

    Use as `coach_server = pytest.fixture(scope="module", params=SERVER_KINDS, name="coach_server")(both_servers)`
    in a test module.
    """
    if request.param == "graphharbor":
        server: CoachServer = request.getfixturevalue("prod_server")
        return server
    return coach_server


def _command(kind: str, port: int, tmp: Path, *, persistence: bool) -> list[str]:
    """The server's command line: `dev` (`python -m server.serve`) or `prod` (`python -m server.serve_prod`)."""
    if kind == "prod":  # GraphHarbor takes the project's own configuration (paths must lie under its folder)
        config = str(PROJECT_ROOT / "langgraph.prod.json")
        return [sys.executable, "-m", "server.serve_prod", "--port", str(port), "--workers", "2", "--config", config]
    config = str(standalone_config(tmp, persistence=persistence))
    # uvicorn at INFO logs its shutdown steps ("Waiting for connections to close"): what a slow stop waited for.
    return [sys.executable, "-m", "server.serve", "--port", str(port), "--config", config, "--server-log-level", "INFO"]


def fresh_athletes() -> tuple[Athlete, Athlete, Athlete]:
    """Three athletes with fresh ids and random tokens."""
    run = uuid.uuid4().hex[:10]
    a, b, c = (Athlete(f"e2e-{x}-{run}", secrets.token_urlsafe(24)) for x in "abc")
    return a, b, c


@contextmanager
def running_server(
    tmp: Path,
    *,
    athletes: tuple[Athlete, Athlete, Athlete] | None = None,
    persistence: bool = False,
    extra_env: dict[str, str] | None = None,
    kind: str = "dev",
) -> Iterator[CoachServer]:
    """A server of its own (folder `tmp`, fresh athletes), stopped on exit; see the module docstring.

    Args:
        tmp: the server's folder; a server started again on the same folder, with the same `athletes` and
            `persistence`, finds the threads of the previous one (its `.langgraph_api/` files).
        athletes: A, B and C (default: `fresh_athletes()`).
        persistence: keep the server's own files (thread records) in `tmp/.langgraph_api/`.
        extra_env: more environment for the server (settings).
        kind: `dev` (`python -m server.serve`, `langgraph dev`) or `prod` (`python -m server.serve_prod`).
    """
    a, b, c = athletes or fresh_athletes()
    outbox_stream = f"test:outbox:{a.athlete_id}"  # the same for a server started again with the same athletes
    inbox = tmp / "inbox"
    inbox.mkdir(exist_ok=True)
    settings = get_settings()
    port = free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "COACH_AUTH_TOKENS": json.dumps({a.token: a.athlete_id, b.token: b.athlete_id, c.token: c.athlete_id}),
        "OUTBOX_STREAM": outbox_stream,
        "INBOX_DIR": str(inbox),
        "INBOX_MAX_FILE_BYTES": str(UPLOAD_MAX_FILE_BYTES),
        "INBOX_QUOTA_BYTES": str(UPLOAD_QUOTA_BYTES),
        "OPENAI_API_KEY": "",  # the offline responder: deterministic replies
        "OPENAI_BASE_URL": "",
        "EMBEDDING_PROVIDER": "none",  # no embedding model to load in the test server
        "CRON_SCHEDULER_SLEEP_TIME": "1",  # the scheduler looks for due crons every second
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("COACH_AUTH_TOKENS_FILE", None)
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            _command(kind, port, tmp, persistence=persistence),
            cwd=tmp,  # the server's `.langgraph_api/` goes there, not into the project
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
    server = CoachServer(
        url=f"http://127.0.0.1:{port}", a=a, b=b, inbox_dir=inbox, log_path=log_path, c=c, outbox_stream=outbox_stream
    )
    try:
        start_timeout_s = PROD_START_TIMEOUT_S if kind == "prod" else START_TIMEOUT_S
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /ok within {start_timeout_s} s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(proc)
    # The coach's connections are closed when the server stops (server.app's lifespan). GraphHarbor's uvicorn
    # processes do not log the coach's INFO lines; their clean stop is checked by their exit status instead.
    if kind == "dev":
        assert "coach memory closed" in server.log_tail(200), server.log_tail()
    else:
        assert proc.returncode == 0, server.log_tail()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it is still there after 90 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=90)  # a loaded 2-core machine has needed more than 40 s
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
