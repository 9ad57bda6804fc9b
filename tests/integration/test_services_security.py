"""The servers `make services` starts ask for passwords, commit durably and do not run as root (issue 9, items 3, 5).

Two parts:

- the project's own servers (the URLs of `.env` / the environment, as the app reads them): a connection without
  the password is refused, Redis's CONFIG is disabled and its process is not root, Postgres commits durably, and
  `.env` is mode 0600;
- `scripts/services.sh` itself, run from a copy of the script in a temporary project (so it writes that project's
  `.env` and keeps its servers in a temporary state folder): a fresh state folder, then the upgrade of servers an
  older script left running (a `trust` cluster with `fsync=off`, a password-less Redis running as root) without
  losing their data; each `up` is run twice and the second reuses the running servers.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from config.settings import get_settings
from tests.conftest import PROJECT_ROOT
from tests.integration.servers import _pg_bindir, free_port

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def env_lines(path: Path) -> dict[str, str]:
    """The `NAME=value` lines of an env file."""
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            out[name.strip()] = value.strip()
    return out


def env_mode(path: Path) -> str:
    """The mode `scripts/services.sh` wrote in `.env` (local, docker, user), or '' when none."""
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("# services: mode="):
            return line.split("=", 1)[1].split()[0]
    return ""


def without_password(url: str) -> str:
    """The URL with its password (and, for Redis, its user part) removed."""
    parts = urlsplit(url)
    user = parts.username if parts.scheme.startswith("postgres") else None
    netloc = f"{user + '@' if user else ''}{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def process_uid(pid: int) -> int:
    """The real user id of a local process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def assert_secured(database_url: str, redis_url: str, *, local: bool) -> None:
    """Without the password both servers refuse; with it Postgres commits durably and Redis refuses CONFIG.

    `local`: the servers run on this machine (their processes are visible here).
    """
    assert urlsplit(database_url).password and urlsplit(redis_url).password, "the URLs carry no password"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password(database_url), connect_timeout=5).close()
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
        ).fetchall()
        assert dict(rows) == DURABLE
    with redis.Redis.from_url(without_password(redis_url), socket_timeout=5) as anonymous:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.get("anything")
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        assert client.ping()
        with pytest.raises(redis.exceptions.ResponseError, match="unknown command"):
            client.config_get("requirepass")
        info = client.info("server")
        persistence = client.info("persistence")
        assert persistence["aof_enabled"] == 1
    if local and IS_ROOT:
        assert process_uid(int(info["process_id"])) != 0, "Redis runs as root"


# ----- the project's servers ---------------------------------------------------------------------------------


def test_project_servers_require_passwords_and_commit_durably() -> None:
    env_file = PROJECT_ROOT / ".env"
    mode = env_mode(env_file)
    if mode == "user":
        pytest.skip("DATABASE_URL and REDIS_URL are user-managed servers (.env mode=user): not ours to check")
    assert env_file.exists(), "no .env: run `make services`"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600, ".env holds passwords: it must be mode 0600"
    settings = get_settings()
    assert_secured(settings.database_url, settings.redis_url, local=mode == "local")


# ----- scripts/services.sh in a temporary project ------------------------------------------------------------


class ScriptProject:
    """A temporary project holding a copy of `scripts/services.sh`, with its state folder beside it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="coach-svc-test-", dir="/tmp"))
        self.root.chmod(0o755)  # the postgres and redis users traverse it to reach the state folder
        (self.root / "scripts").mkdir()
        shutil.copy(PROJECT_ROOT / "scripts" / "services.sh", self.root / "scripts" / "services.sh")
        self.state = self.root / "state"
        self.env_file = self.root / ".env"

    def run(self, command: str = "up") -> str:
        """Run the script; return its output (stdout and stderr); fail the test on a non-zero exit."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "COACH_"))}
        env["COACH_SERVICES_DIR"] = str(self.state)
        done = subprocess.run(
            ["bash", str(self.root / "scripts" / "services.sh"), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        return output

    def urls(self) -> tuple[str, str]:
        lines = env_lines(self.env_file)
        return lines["DATABASE_URL"], lines["REDIS_URL"]

    def secrets_mode(self) -> int:
        return stat.S_IMODE((self.state / "secrets").stat().st_mode)

    def cleanup(self) -> None:
        try:
            self.run("down")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def script_project() -> Iterator[ScriptProject]:
    project = ScriptProject()
    try:
        yield project
    finally:
        project.cleanup()


def assert_up_twice(project: ScriptProject) -> tuple[str, str]:
    """Check the state after an `up`, run `up` again: it reuses both servers and the same URLs."""
    urls = project.urls()
    assert stat.S_IMODE(project.env_file.stat().st_mode) == 0o600
    assert project.secrets_mode() == 0o600
    assert_secured(*urls, local=True)
    again = project.run("up")
    assert "Postgres already running" in again and "Redis already running" in again, again
    assert project.urls() == urls
    return urls


def test_services_script_fresh_state_folder(script_project: ScriptProject) -> None:
    output = script_project.run("up")
    assert "initdb" in output and "scram-sha-256" in output, output
    assert not list(script_project.state.glob("pwfile*")), "initdb's password file was left behind"
    database_url, redis_url = assert_up_twice(script_project)
    assert urlsplit(database_url).password not in output and urlsplit(redis_url).password not in output
    # Redis fsyncs its append-only file on every write (CONFIG is disabled, so the script's record says it); one
    # started with another policy (by an older script: no record) is restarted durably, its data kept.
    fsync_record = script_project.state / "redis" / "appendfsync"
    assert fsync_record.read_text() == "always"
    with redis.Redis.from_url(redis_url) as client:
        client.set("marker", "kept")
    fsync_record.unlink()
    output = script_project.run("up")
    assert "without fsync on every write: restarting it durably" in output, output
    assert fsync_record.read_text() == "always" and script_project.urls() == (database_url, redis_url)
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("marker") == b"kept"


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if IS_ROOT else list(args)


def test_services_script_upgrades_servers_an_older_script_started(script_project: ScriptProject) -> None:
    """A `trust` cluster run with fsync=off and a password-less root Redis, as `make services` made them before."""
    state, bindir = script_project.state, _pg_bindir()
    pg_dir, redis_dir, logs = state / "pg", state / "redis", state / "logs"
    for d in (pg_dir, redis_dir, logs):
        d.mkdir(parents=True)
    state.chmod(0o755)
    pg_dir.chmod(0o700)
    if IS_ROOT:
        shutil.chown(pg_dir, "postgres")
    pg_port, redis_port = free_port(), free_port()
    subprocess.run(
        _as_postgres(str(bindir / "initdb"), "-D", str(pg_dir), "-U", "postgres", "-A", "trust", "--no-sync"),
        check=True,
        capture_output=True,
        cwd="/",
    )
    unsafe = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres(str(bindir / "pg_ctl"), "-D", str(pg_dir), "-l", "/dev/null", "-w", "start")
        + ["-o", f"-h 127.0.0.1 -p {pg_port} -k {pg_dir} {unsafe}"],
        check=True,
        capture_output=True,
        cwd="/",
    )
    trusted = f"postgresql://postgres@127.0.0.1:{pg_port}"
    with psycopg.connect(f"{trusted}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE coach")
    with psycopg.connect(f"{trusted}/coach", autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)")
    subprocess.run(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "yes"]
        + ["--daemonize", "yes", "--pidfile", str(redis_dir / "redis.pid"), "--dir", str(redis_dir)]
        + ["--logfile", str(logs / "redis.log")],
        check=True,
        cwd="/",
    )
    with redis.Redis(port=redis_port) as old:
        for _ in range(50):
            try:
                old.set("marker", "kept")
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)

    output = script_project.run("up")
    assert "upgrading" in output and "restarting it with durable commits" in output, output
    assert "Redis" in output and "restarting it" in output, output
    database_url, redis_url = assert_up_twice(script_project)
    assert urlsplit(database_url).port == pg_port and urlsplit(redis_url).port == redis_port
    hba = subprocess.run(_as_postgres("cat", str(pg_dir / "pg_hba.conf")), capture_output=True, text=True).stdout
    assert not [ln for ln in hba.splitlines() if ln.strip() and not ln.startswith("#") and "trust" in ln]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT x FROM marker").fetchone() == (42,)
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("marker") == b"kept"
