"""`make serve`: the LangGraph dev server (`langgraph dev`) for the coach's graphs, offline, on a free port.

    uv run python -m server.serve [--port N] [--host 127.0.0.1] [--config langgraph.json]

Runs `langgraph dev` without analytics, version check, browser or reload, on loopback by default (the Docker
image passes `--host 0.0.0.0`), on `--port` (or `$PORT`), else on a free port; prints the API, the Studio link,
the ride inbox and the athletes' tokens before it starts. With no tokens configured (`COACH_AUTH_TOKENS`,
`COACH_AUTH_TOKENS_FILE`), it makes two development tokens, for `demo-athlete` and `guest-athlete`, kept in
`.langgraph_api/coach-dev-tokens.json` (git-ignored) so they survive restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from config.settings import Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEV_TOKENS_FILE = Path(".langgraph_api") / "coach-dev-tokens.json"
DEV_ATHLETES = ("demo-athlete", "guest-athlete")
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl={api}"
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def standalone_config(out_dir: Path, *, persistence: bool = False, project_root: Path = PROJECT_ROOT) -> Path:
    """Write the project's `langgraph.json` for a server started in another folder (tests, benchmarks).

    Graph, auth, HTTP app and checkpointer paths are made absolute; `env` is emptied (the server gets the caller's
    environment as is, no `.env` reload); `disable_persistence` unless ``persistence`` (the dev server's own thread
    files in ``out_dir/.langgraph_api/``).

    Returns:
        The written file, ``out_dir/langgraph.json``.
    """
    config = json.loads((project_root / "langgraph.json").read_text(encoding="utf-8"))

    def absolute(spec: str) -> str:
        path, _, attr = spec.partition(":")
        return f"{(project_root / path).resolve()}:{attr}"

    config["graphs"] = {name: absolute(spec) for name, spec in config["graphs"].items()}
    for section in ("auth", "http", "checkpointer"):
        key = "app" if section == "http" else "path"
        config[section][key] = absolute(config[section][key])
    config["env"], config["disable_persistence"] = {}, not persistence
    path = out_dir / "langgraph.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def dev_tokens(path: Path = DEV_TOKENS_FILE) -> dict[str, str]:
    """The development tokens in `path`, made (one random token per `DEV_ATHLETES` entry) if it does not exist."""
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    tokens = {f"dev-{secrets.token_urlsafe(24)}": athlete for athlete in DEV_ATHLETES}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(tokens, fh, indent=2)
    return tokens


def dev_command(host: str, port: int, config: str, server_log_level: str = "WARNING") -> list[str]:
    """The `langgraph dev` command line (`server_log_level`: uvicorn's, e.g. INFO to log its shutdown steps)."""
    exe = shutil.which("langgraph") or str(Path(sys.executable).with_name("langgraph"))
    return [
        *(exe, "dev", "--no-browser", "--no-reload", "--host", host, "--port", str(port), "--config", config),
        *("--server-log-level", server_log_level),
    ]


def token_lines(settings: Settings, env: dict[str, str]) -> list[str]:
    """What to print about the tokens; with none configured, make the development ones (`dev_tokens`).

    With neither tokens (`COACH_AUTH_TOKENS`, `COACH_AUTH_TOKENS_FILE`) nor an identity provider (`JWT_JWKS_URL`),
    the development tokens are made (or read) and `env["COACH_AUTH_TOKENS_FILE"]` points the server at them.
    """
    if settings.coach_auth_tokens or settings.coach_auth_tokens_file or settings.jwt_jwks_url:
        return ["  tokens:    from COACH_AUTH_TOKENS / COACH_AUTH_TOKENS_FILE and the identity provider (JWT_*)"]
    tokens = dev_tokens()
    env["COACH_AUTH_TOKENS_FILE"] = str(DEV_TOKENS_FILE.absolute())
    lines = [f"  tokens:    development tokens ({DEV_TOKENS_FILE}):"]
    return lines + [f"             {athlete}: Authorization: Bearer {token}" for token, athlete in tokens.items()]


def listen_port(host: str, port: int) -> tuple[int, str]:
    """The port to listen on (``port``, else a free one on ``host``) and the host to show in URLs."""
    port = port or free_port("127.0.0.1" if host in ("127.0.0.1", "localhost") else host)
    return port, "127.0.0.1" if host in ("0.0.0.0", "::") else host


def main(argv: Sequence[str] | None = None) -> None:
    """Print how to reach the server, then replace this process with `langgraph dev`."""
    parser = argparse.ArgumentParser(prog="python -m server.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 0), help="port (default: free)")
    parser.add_argument("--config", default="langgraph.json", help="the LangGraph configuration file")
    parser.add_argument(
        "--server-log-level", default="WARNING", help="uvicorn's log level (INFO logs its start and shutdown steps)"
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    env = {**os.environ, **OFFLINE_ENV}
    lines = token_lines(settings, env)
    port, shown = listen_port(args.host, args.port)
    api = f"http://{shown}:{port}"
    print(
        "\n".join(
            [
                f"Endurance coach API on {api}  (langgraph dev, threads checkpointed in Postgres; Ctrl-C stops it)",
                f"  Studio:    {STUDIO_URL.format(api=api)}",
                "             (in Studio's connection settings, add the header Authorization: Bearer <token>)",
                f"  API docs:  {api}/docs",
                f"  inbox:     {settings.inbox_dir.absolute()}/<athlete>/  (or PUT {api}/inbox/<file name>)",
                *lines,
            ]
        ),
        flush=True,
    )
    command = dev_command(args.host, port, args.config, args.server_log_level)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
