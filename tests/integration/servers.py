"""Private Redis and Postgres servers that a test may stop and restart without harming the shared ones.

Use the module-scoped fixtures in a test module by importing them::

    from tests.integration.servers import private_postgres, private_redis  # noqa: F401

    async def test_something(private_redis: PrivateRedis, private_postgres: PrivatePostgres) -> None:
        ...  # private_redis.url, private_postgres.url
        private_postgres.stop()   # or `await private_postgres.astop()` inside a running event loop
        private_postgres.start()

`PrivateRedis` runs `redis-server` in the foreground as a child process, with `appendonly yes` and
`appendfsync always` in a temporary directory (so a restart keeps the data, like the project's server), a
`requirepass` password and `CONFIG` disabled, as `make services` starts it. `PrivatePostgres` runs `initdb` once
(about 1-2 s; scram-sha-256 password, as `make services`) in a directory under /tmp and `pg_ctl start/stop`; as
root, the Postgres programs run as the `postgres` user through `runuser`. Both URLs carry the password, so the tests
exercise authenticated connections. Each server keeps its port and password across restarts. The fixtures yield
running servers and remove everything at the end of the module; `ensure_running()` restarts a server a failed test
left stopped.

`PrivatePostgres()` is a THROWAWAY cluster that runs with `fsync=off`, `synchronous_commit=off` and
`full_page_writes=off` for speed: a crash (`stop(mode="immediate")`) may lose commits it acknowledged.
`PrivatePostgres(durable=True)` runs with Postgres's durable defaults, like the database `make services` starts
for users; tests of what survives a crash must use it (fixture `private_postgres_durable`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from memory.schema import setup as schema_setup

_PG_OPTIONS = "-c max_connections=100"
_PG_UNSAFE_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
"""Fast but not crash-safe: only for throwaway clusters (`PrivatePostgres(durable=False)`)."""


def new_password() -> str:
    """Return a random 32-character password of [A-Za-z0-9] (safe in a URL without encoding)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port_closed(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} still accepts connections after {timeout_s} s")


class PrivateRedis:
    """A throwaway `redis-server` on 127.0.0.1 with AOF persistence.

    Attributes:
        port: its TCP port (kept across restarts).
        password: its `requirepass` password.
        url: `redis://:<password>@127.0.0.1:<port>/0`.
        directory: its working directory (AOF files).
    """

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        """Choose a port, a password and a directory; nothing runs until `start()`."""
        self.directory = Path(directory or tempfile.mkdtemp(prefix="coach-redis-"))
        self.port = port or free_port()
        self.password = new_password()
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING (no-op when running)."""
        if self.running:
            return
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
            + ["--requirepass", self.password, "--rename-command", "CONFIG", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode} on port {self.port}")
            try:
                with redis.Redis.from_url(self.url, socket_timeout=0.2, socket_connect_timeout=0.2) as client:
                    if client.ping():
                        return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout_s} s")

    def stop(self, *, hard: bool = False) -> None:
        """Stop the server: SIGTERM (AOF flushed) or, with `hard`, SIGKILL (a crash); waits until it is gone."""
        if not self.running or self._proc is None:
            return
        self._proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        self._proc.wait(timeout=10)
        _wait_port_closed(self.port)

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""
        self.start()

    async def astart(self) -> None:
        """`start()` in a worker thread, for use inside a running event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self, *, hard: bool = False) -> None:
        """`stop()` in a worker thread, for use inside a running event loop."""
        await asyncio.to_thread(self.stop, hard=hard)

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop(hard=True)
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 with the athlete store's schema in database `coach`.

    Attributes:
        port: its TCP port (kept across restarts).
        password: the password of the superuser `postgres` (scram-sha-256 for every connection).
        url: `postgresql://postgres:<password>@127.0.0.1:<port>/coach`.
        directory: the cluster's data directory (also its Unix socket directory).
        durable: False (default): a throwaway cluster run with `fsync=off`, `synchronous_commit=off` and
            `full_page_writes=off`, which may lose acknowledged commits on a crash; True: Postgres's durable
            defaults, like the project's database.
    """

    def __init__(self, port: int | None = None, *, durable: bool = False) -> None:
        """Choose a port, a password and a data directory; nothing runs until `start()`."""
        self.port = port or free_port()
        self.durable = durable
        self.password = new_password()
        self.url = f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/coach"
        self._root = Path(tempfile.mkdtemp(prefix="coach-pg-", dir="/tmp"))
        self.directory = self._root / "data"
        self._bindir = _pg_bindir()
        self._as_postgres = os.geteuid() == 0
        self._initialised = False

    def _run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout_s)

    def _initdb(self) -> None:
        if self._as_postgres:
            shutil.chown(self._root, "postgres", "postgres")
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._run(
                str(self._bindir / "initdb"),
                "-D",
                str(self.directory),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                *([] if self.durable else ["--no-sync"]),
                "-E",
                "UTF8",
            )
        finally:
            pwfile.unlink()
        self._initialised = True

    @property
    def running(self) -> bool:
        """Whether the cluster is running (per `pg_ctl status`)."""
        if not self._initialised:
            return False
        try:
            self._run(str(self._bindir / "pg_ctl"), "-D", str(self.directory), "status", timeout_s=10)
        except subprocess.CalledProcessError:
            return False
        return True

    def start(self) -> None:
        """initdb on first use, then start the cluster and wait until it accepts connections (no-op if running).

        The first start also creates the database `coach` and applies the athlete store's migrations.
        """
        first = not self._initialised
        if first:
            self._initdb()
        elif self.running:
            return
        self._run(
            str(self._bindir / "pg_ctl"),
            "-D",
            str(self.directory),
            "-l",
            str(self._root / "postgres.log"),
            "-w",
            "-t",
            "30",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.directory} {_PG_OPTIONS}"
            + ("" if self.durable else f" {_PG_UNSAFE_OPTIONS}"),
            "start",
        )
        if first:
            admin = f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE coach")
            with psycopg.connect(self.url, autocommit=True) as conn:
                schema_setup(conn)

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the cluster (`pg_ctl stop -m fast`; `mode="immediate"` simulates a crash); waits until gone."""
        if not self.running:
            return
        self._run(str(self._bindir / "pg_ctl"), "-D", str(self.directory), "-m", mode, "-w", "stop")
        _wait_port_closed(self.port)

    def ensure_running(self) -> None:
        """Start the cluster if a test left it stopped."""
        self.start()

    async def astart(self) -> None:
        """`start()` in a worker thread, for use inside a running event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self, *, mode: str = "fast") -> None:
        """`stop()` in a worker thread, for use inside a running event loop."""
        await asyncio.to_thread(self.stop, mode=mode)

    def cleanup(self) -> None:
        """Stop the cluster and delete its directory."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)


def _pg_bindir() -> Path:
    """Directory of initdb/pg_ctl: `pg_config --bindir` when it has them, else /usr/lib/postgresql/15/bin."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: run `make services` first")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis for the module; tests may stop/start it (call `ensure_running()` to reset)."""
    if not shutil.which("redis-server") and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server not found: run `make services` first")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private throwaway Postgres (database `coach`, migrations applied, NOT crash-safe: see
    `PrivatePostgres`) for the module; tests may stop/start it."""
    yield from _running_postgres(durable=False)


@pytest.fixture(scope="module")
def private_postgres_durable() -> Iterator[PrivatePostgres]:
    """A running private Postgres with durable commits (as `make services` runs it) for the module."""
    yield from _running_postgres(durable=True)


def _running_postgres(*, durable: bool) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
