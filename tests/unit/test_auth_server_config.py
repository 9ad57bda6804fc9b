"""`langgraph.json`, the graphs it exports, the server's ride upload helpers (`records.inbox`) and `make serve`."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from config.settings import get_settings
from records.inbox import file_ride_id, inbox_athletes, inbox_files, is_in_athlete_inbox
from records.uploads import InvalidUploadError, save_upload
from server import serve
from tests.conftest import PROJECT_ROOT

CONFIG = json.loads((PROJECT_ROOT / "langgraph.json").read_text())


def _load(spec: str) -> Any:
    path, _, attr = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(f"_lg_{Path(path).stem}", PROJECT_ROOT / path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # as the server loads it (type hints resolve through sys.modules)
    module_spec.loader.exec_module(module)
    return getattr(module, attr)


def test_langgraph_json_lists_the_graphs_auth_and_app() -> None:
    assert {"chat", "debrief_coach", "training_load_auditor", "pending_debriefs"} <= set(CONFIG["graphs"])
    assert CONFIG["auth"]["path"] == "./server/auth.py:auth" and CONFIG["auth"]["disable_studio_auth"] is True
    assert CONFIG["http"]["enable_custom_route_auth"] is True
    assert CONFIG["env"] == ".env" and CONFIG["dependencies"] == ["."]


@pytest.mark.parametrize("name", sorted(CONFIG["graphs"]))
def test_exported_graphs_compile_without_a_checkpointer(name: str) -> None:
    graph = _load(CONFIG["graphs"][name])
    assert graph.checkpointer is None, f"{name}: a compiled-in checkpointer stops the whole server"
    assert graph.get_context_jsonschema()["properties"]["athlete_id"]["default"] == ""


def test_auth_and_app_load() -> None:
    from langgraph_sdk import Auth
    from starlette.applications import Starlette

    assert isinstance(_load(CONFIG["auth"]["path"]), Auth)
    assert isinstance(_load(CONFIG["http"]["app"]), Starlette)


def test_uploads_land_atomically_in_the_athletes_inbox(tmp_path: Path) -> None:
    first = save_upload("ath-1", "morning.fit", b"ride one", inbox_dir=tmp_path).path
    assert first == tmp_path.absolute() / "ath-1" / "morning.fit" and first.read_bytes() == b"ride one"
    again = save_upload("ath-1", "morning.fit", b"ride one", inbox_dir=tmp_path)  # same file: kept
    assert again.path == first and again.duplicate
    second = save_upload("ath-1", "morning.fit", b"ride two", inbox_dir=tmp_path).path  # same name, other ride
    assert second != first and second.name.startswith("morning-") and second.name.endswith(".fit")
    assert first.read_bytes() == b"ride one" and second.read_bytes() == b"ride two"
    assert [p.name for p in inbox_files("ath-1", inbox_dir=tmp_path)] == sorted([first.name, second.name])
    assert not [p for p in (tmp_path / "ath-1").iterdir() if p.name.endswith(".part")]  # no partial files left
    assert file_ride_id(first) == file_ride_id(tmp_path / "ath-1" / "morning.fit")
    assert inbox_athletes(tmp_path) == ["ath-1"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"x"),
        (".hidden.fit", b"x"),
        ("../escape.fit", b"x"),
        ("a/b.fit", b"x"),
        ("empty.fit", b""),
    ],
)
def test_bad_uploads_are_refused(tmp_path: Path, name: str, data: bytes) -> None:
    with pytest.raises(InvalidUploadError):
        save_upload("ath-1", name, data, inbox_dir=tmp_path)
    assert not list(tmp_path.rglob("*.fit"))


def test_inbox_membership_resolves_links_and_dots(tmp_path: Path) -> None:
    own = save_upload("ath-1", "r.fit", b"1", inbox_dir=tmp_path).path
    other = save_upload("ath-2", "r.fit", b"2", inbox_dir=tmp_path).path
    assert is_in_athlete_inbox(own, "ath-1", inbox_dir=tmp_path)
    assert not is_in_athlete_inbox(other, "ath-1", inbox_dir=tmp_path)
    assert not is_in_athlete_inbox(own.parent / ".." / "ath-2" / "r.fit", "ath-1", inbox_dir=tmp_path)
    assert not is_in_athlete_inbox(own.parent, "ath-1", inbox_dir=tmp_path)
    os.symlink(other, own.parent / "link.fit")
    assert not is_in_athlete_inbox(own.parent / "link.fit", "ath-1", inbox_dir=tmp_path)
    assert not is_in_athlete_inbox(own, "../ath-1", inbox_dir=tmp_path)


def test_serve_runs_langgraph_dev_offline_on_loopback(tmp_path: Path) -> None:
    command = serve.dev_command("127.0.0.1", 4321, "langgraph.json")
    assert Path(command[0]).name == "langgraph"
    assert command[1:] == [
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        "4321",
        "--config",
        "langgraph.json",
        "--server-log-level",
        "WARNING",
    ]
    assert serve.dev_command("127.0.0.1", 4321, "langgraph.json", "INFO")[-2:] == ["--server-log-level", "INFO"]
    assert serve.OFFLINE_ENV == {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true"}
    assert 0 < serve.free_port() < 65536
    path = tmp_path / "tokens.json"
    tokens = serve.dev_tokens(path)
    assert sorted(tokens.values()) == sorted(serve.DEV_ATHLETES) and all(len(t) > 16 for t in tokens)
    assert serve.dev_tokens(path) == tokens  # kept across restarts
    assert path.stat().st_mode & 0o777 == 0o600


def test_standalone_config_points_at_the_project_from_any_folder(tmp_path: Path) -> None:
    config = json.loads(serve.standalone_config(tmp_path).read_text())
    specs = [*config["graphs"].values(), config["auth"]["path"], config["http"]["app"], config["checkpointer"]["path"]]
    assert all(Path(spec.partition(":")[0]).is_absolute() and Path(spec.partition(":")[0]).is_file() for spec in specs)
    assert config["env"] == {} and config["disable_persistence"] is True
    assert json.loads(serve.standalone_config(tmp_path, persistence=True).read_text())["disable_persistence"] is False


def test_both_servers_make_development_tokens_only_when_nothing_else_authenticates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    none = {"coach_auth_tokens": None, "coach_auth_tokens_file": None}
    with_idp = get_settings().model_copy(update={**none, "jwt_jwks_url": "https://idp/jwks"})
    assert "identity provider" in serve.token_lines(with_idp, env)[0] and env == {}
    assert not (tmp_path / serve.DEV_TOKENS_FILE).exists()
    bare = get_settings().model_copy(update={**none, "jwt_jwks_url": None})
    lines = serve.token_lines(bare, env)
    assert env["COACH_AUTH_TOKENS_FILE"] == str((tmp_path / serve.DEV_TOKENS_FILE).absolute())
    assert sum("Authorization: Bearer dev-" in line for line in lines) == len(serve.DEV_ATHLETES)
