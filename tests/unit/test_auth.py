"""Per-athlete auth of the API server (`server.auth`) and the athlete of a run (`graphs.context.run_context`).

The handlers are called as the server calls them (an `AuthContext` and the request's value); the end-to-end
tests (`tests/e2e`) check the same rules through a running server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext
from typing_extensions import TypedDict

from config.settings import Settings, get_settings
from graphs.context import Context, run_context
from server import auth
from server.dev_tokens import TokenTable

A, B = "athlete-a", "athlete-b"
TOKEN_A, TOKEN_B = "token-of-athlete-a-0001", "token-of-athlete-b-0002"


def ctx(athlete: str = A, resource: Any = "threads", action: Any = "create") -> AuthContext:
    return AuthContext(
        permissions=["athlete"], user=SimpleNamespace(identity=athlete), resource=resource, action=action
    )


@pytest.fixture(autouse=True)
def tokens() -> Iterator[None]:
    table = TokenTable({TOKEN_A: A, TOKEN_B: B})

    async def resolve(token: str) -> str | None:
        return table.athlete_for(token)

    auth.set_token_resolver(resolve)
    yield
    auth.set_token_resolver(None)


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("INBOX_DIR", str(tmp_path / "inbox"))
    get_settings.cache_clear()
    yield tmp_path / "inbox"
    get_settings.cache_clear()


def denied(exc: pytest.ExceptionInfo[Auth.exceptions.HTTPException], status: int) -> bool:
    return exc.value.status_code == status


# ----- authentication ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


async def test_a_token_maps_to_its_athlete() -> None:
    user = await auth.authenticate(f"Bearer {TOKEN_B}")
    assert user["identity"] == B


@pytest.mark.parametrize("header", [None, "", f"Basic {TOKEN_A}", "Bearer unknown-token-0000000", f"Bearer {TOKEN_A}x"])
async def test_no_valid_token_is_401(header: str | None) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as exc:
        await auth.authenticate(header)
    assert denied(exc, 401)


def test_token_table_checks_tokens_and_athlete_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16 characters"):
        TokenTable({"short": A})
    with pytest.raises(ValueError, match="invalid athlete id"):
        TokenTable({TOKEN_A: "a/../b"})
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps({TOKEN_B: B}))
    settings = Settings(coach_auth_tokens=json.dumps({TOKEN_A: A}), coach_auth_tokens_file=file)
    table = auth.TokenTable.from_settings(settings)
    assert (table.athlete_for(TOKEN_A), table.athlete_for(TOKEN_B), table.athlete_for("nope")) == (A, B, None)
    assert len(table) == 2
    file.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        auth.TokenTable.from_settings(Settings(coach_auth_tokens_file=file))
    with pytest.raises(ValueError, match="not valid JSON"):
        auth.TokenTable.from_settings(Settings(coach_auth_tokens="{token: a}"))
    assert len(auth.TokenTable.from_settings(Settings(coach_auth_tokens="", coach_auth_tokens_file=""))) == 0


async def test_the_default_resolver_reads_the_configured_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COACH_AUTH_TOKENS", json.dumps({TOKEN_A: A}))
    monkeypatch.delenv("COACH_AUTH_TOKENS_FILE", raising=False)
    get_settings.cache_clear()
    auth.set_token_resolver(None)
    try:
        assert await auth.configured_token_athlete(TOKEN_A) == A
        assert await auth.configured_token_athlete(TOKEN_B) is None
    finally:
        get_settings.cache_clear()


# ----- ownership ----------------------------------------------------------------------------------------------


async def test_new_threads_belong_to_the_athlete_and_are_filtered_by_owner() -> None:
    value: dict[str, Any] = {"thread_id": "t", "metadata": {"topic": "x"}}
    assert await auth.on_thread_create(ctx(), value) == {"owner": A}
    assert value["metadata"] == {"topic": "x", "owner": A}
    for handler in (auth.on_thread_read, auth.on_thread_search, auth.on_thread_delete):
        assert await handler(ctx(B), {"thread_id": "t"}) == {"owner": B}


async def test_a_thread_cannot_be_created_for_another_owner() -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as exc:
        await auth.on_thread_create(ctx(), {"thread_id": "t", "metadata": {"owner": B}})
    assert denied(exc, 403)


async def test_thread_state_writes_are_refused_metadata_and_cancel_are_owner_filtered() -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as exc:  # POST /threads/{id}/state, supersteps
        await auth.on_thread_update(ctx(action="update"), {"thread_id": "t"})
    assert denied(exc, 403)
    patch: dict[str, Any] = {"thread_id": "t", "metadata": {"title": "tempo"}}
    assert await auth.on_thread_update(ctx(action="update"), patch) == {"owner": A}
    assert patch["metadata"]["owner"] == A
    with pytest.raises(Auth.exceptions.HTTPException):
        await auth.on_thread_update(ctx(action="update"), {"thread_id": "t", "metadata": {"owner": B}})
    cancel: dict[str, Any] = {"thread_id": "t", "action": "interrupt", "metadata": {"run_ids": ["r"]}}
    assert await auth.on_thread_update(ctx(action="update"), cancel) == {"owner": A}
    assert "owner" not in cancel["metadata"]


async def test_runs_are_owned_and_run_as_the_authenticated_athlete() -> None:
    value: dict[str, Any] = {
        "thread_id": "t",
        "metadata": {},
        "kwargs": {"input": {"message": "hi"}, "context": {"athlete_id": B, "timezone": "Europe/Paris"}},
    }
    assert await auth.on_run_create(ctx(action="create_run"), value) == {"owner": A}
    assert value["metadata"]["owner"] == A
    assert value["kwargs"]["context"] == {"athlete_id": A, "timezone": "Europe/Paris"}
    no_context: dict[str, Any] = {
        "metadata": {},
        "kwargs": {"input": {}, "config": {"configurable": {"athlete_id": B}}},
    }
    await auth.on_run_create(ctx(action="create_run"), no_context)
    assert no_context["kwargs"]["context"] == {"athlete_id": A}
    assert no_context["kwargs"]["config"]["configurable"]["athlete_id"] == A


@pytest.mark.parametrize(
    "command",
    [{"update": {"messages": []}}, {"goto": "save_turn"}, {"resume": "yes", "update": {"sticky": {}}}],
)
async def test_runs_may_resume_but_not_write_state(command: dict[str, Any]) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as exc:
        await auth.on_run_create(ctx(action="create_run"), {"metadata": {}, "kwargs": {"command": command}})
    assert denied(exc, 403)
    resume: dict[str, Any] = {"metadata": {}, "kwargs": {"command": {"resume": "yes", "update": None, "goto": None}}}
    assert await auth.on_run_create(ctx(action="create_run"), resume) == {"owner": A}


async def test_ride_paths_must_be_in_the_athletes_own_inbox(inbox: Path, tmp_path: Path) -> None:
    (inbox / A).mkdir(parents=True)
    (inbox / B).mkdir(parents=True)
    own, other, outside = inbox / A / "ride.fit", inbox / B / "ride.fit", tmp_path / "ride.fit"
    for f in (own, other, outside):
        f.write_bytes(b"x")
    (inbox / A / "link.fit").symlink_to(other)

    async def run(path: str) -> Any:
        value = {"metadata": {}, "kwargs": {"input": {"ride_path": path}}}
        return await auth.on_run_create(ctx(action="create_run"), value)

    assert await run(str(own)) == {"owner": A}
    for bad in (str(other), str(outside), str(inbox / A / ".." / B / "ride.fit"), str(inbox / A / "link.fit"), "/etc"):
        with pytest.raises(Auth.exceptions.HTTPException) as exc:
            await run(bad)
        assert denied(exc, 403), bad


async def test_crons_are_owned_and_their_runs_checked(inbox: Path) -> None:
    value: dict[str, Any] = {"payload": {"assistant_id": "pending_debriefs", "input": {}}, "metadata": {}}
    assert await auth.on_cron_create(ctx(resource="crons"), value) == {"owner": A}
    assert value["metadata"]["owner"] == A
    with pytest.raises(Auth.exceptions.HTTPException):
        bad = {"payload": {"input": {"ride_path": "/etc/passwd"}}, "metadata": {}}
        await auth.on_cron_create(ctx(resource="crons"), bad)
    with pytest.raises(Auth.exceptions.HTTPException):
        await auth.on_cron_update(ctx(resource="crons", action="update"), {"cron_id": "c", "metadata": {"owner": B}})
    for handler in (auth.on_cron_read, auth.on_cron_search, auth.on_cron_delete):
        assert await handler(ctx(B, resource="crons"), {"cron_id": "c"}) == {"owner": B}


async def test_crons_on_a_thread_are_refused(inbox: Path) -> None:
    # The coach's scheduled debriefs are thread-less (`POST /runs/crons`); a cron bound to a thread is refused for
    # every thread, the athlete's own and another's alike (GraphHarbor does not check the thread's owner there).
    # Both servers pass the thread as `thread_id` (the LangGraph server's CronsCreate; GraphHarbor's request body).
    for shape in ({"payload": {"assistant_id": "pending_debriefs", "input": {}}}, {"assistant_id": "pending_debriefs"}):
        value: dict[str, Any] = {**shape, "thread_id": str(uuid.uuid4()), "metadata": {}}
        with pytest.raises(Auth.exceptions.HTTPException) as exc:
            await auth.on_cron_create(ctx(resource="crons"), value)
        assert denied(exc, 403) and "/runs/crons" in str(exc.value.detail)
    thread_less: dict[str, Any] = {"assistant_id": "pending_debriefs", "thread_id": None, "metadata": {}}
    assert await auth.on_cron_create(ctx(resource="crons"), thread_less) == {"owner": A}


async def test_store_namespaces_are_the_athletes_own() -> None:
    assert await auth.on_store(ctx(resource="store", action="put"), {"namespace": (A, "notes"), "key": "k"}) is None
    for namespace in ((B, "notes"), (), None):
        with pytest.raises(Auth.exceptions.HTTPException):
            await auth.on_store(ctx(resource="store", action="get"), {"namespace": namespace, "key": "k"})


async def test_assistants_are_read_only_and_anything_else_is_denied() -> None:
    assert await auth.on_assistant_read(ctx(resource="assistants", action="read"), {"assistant_id": "x"}) is None
    assert await auth.on_assistant_search(ctx(resource="assistants", action="search"), {}) is None
    assert await auth.deny_everything_else(ctx(resource="assistants"), {}) is False


def test_every_resource_and_action_has_a_handler() -> None:
    handlers = auth.auth._handlers
    for resource, actions in {
        "threads": ("create", "create_run", "read", "search", "delete", "update"),
        "crons": ("create", "update", "read", "search", "delete"),
        "assistants": ("read", "search"),
    }.items():
        for action in actions:
            assert (resource, action) in handlers, (resource, action)
    assert auth.auth._global_handlers  # the default: deny


# ----- the athlete of a run -------------------------------------------------------------------------------------


class _S(TypedDict, total=False):
    seen: dict[str, Any]


def _probe_graph() -> Any:
    def probe(state: _S, runtime: Runtime[Context]) -> dict[str, Any]:
        return {"seen": run_context(runtime).__dict__}

    builder = StateGraph(_S, context_schema=Context)
    builder.add_node("probe", probe)
    builder.add_edge(START, "probe")
    builder.add_edge("probe", END)
    return builder.compile()


def test_outside_the_server_the_context_is_used_as_given() -> None:
    out = _probe_graph().invoke({}, context=Context(athlete_id=A, session_id="s1"))
    assert out["seen"] == {"athlete_id": A, "session_id": "s1", "timezone": "UTC", "confirm_facts_inline": False}


def test_on_the_server_the_authenticated_athlete_wins_over_the_context() -> None:
    config = {"configurable": {"langgraph_auth_user_id": A, "thread_id": "thread-1"}}
    out = _probe_graph().invoke({}, config=config, context=Context(athlete_id=B, timezone="Europe/Paris"))
    assert out["seen"] == {
        "athlete_id": A,
        "session_id": "thread-1",
        "timezone": "Europe/Paris",
        "confirm_facts_inline": True,
    }


def test_on_graphharbor_the_authenticated_user_object_gives_the_athlete() -> None:
    """`make serve-prod` (GraphHarbor) sets `langgraph_auth_user` (a mapping with the identity) only."""
    config = {"configurable": {"langgraph_auth_user": {"identity": A, "permissions": []}, "thread_id": "thread-2"}}
    out = _probe_graph().invoke({}, config=config, context=Context(athlete_id=B))
    assert out["seen"]["athlete_id"] == A
    assert out["seen"]["session_id"] == "thread-2"
    assert out["seen"]["confirm_facts_inline"] is True


def test_the_authenticated_user_wins_over_a_user_id_a_client_could_have_sent() -> None:
    """GraphHarbor overwrites `langgraph_auth_user` from the token but keeps a client's `langgraph_auth_user_id`."""
    config = {"configurable": {"langgraph_auth_user": {"identity": A}, "langgraph_auth_user_id": B}}
    out = _probe_graph().invoke({}, config=config, context=Context(athlete_id=B))
    assert out["seen"]["athlete_id"] == A
