"""Per-athlete authentication and authorization of both API servers (langgraph dev, GraphHarbor; docs/architecture.md).

Loaded by the server through `langgraph.json` (`"auth": {"path": "./server/auth.py:auth"}`); Studio's own
sign-in is turned off there (`disable_studio_auth`), so every request, Studio's included, carries a bearer token.

Authentication: `Authorization: Bearer <token>` is mapped to an athlete id by the token resolver: development
tokens (`COACH_AUTH_TOKENS`, a JSON object `{token: athlete_id}`, and/or the file `COACH_AUTH_TOKENS_FILE`), then
JWTs of an identity provider (`JWT_JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_ATHLETE_CLAIM`: `server.jwt_auth`);
`set_token_resolver` replaces it. No token, or an unknown, expired or otherwise invalid one: 401.

Authorization (the athlete is the user's identity, `ctx.user.identity`):

- threads, runs and crons are stamped `metadata.owner = <athlete>` when created, and every read, search,
  update, delete, run and cron on them is filtered by that owner, so another athlete's thread answers 404;
- a thread's state cannot be written by a client: `POST /threads/{id}/state`, state `supersteps` on thread
  creation, and runs whose `command` carries `update` or `goto` are refused (403); a run may only resume an
  interrupt (`command.resume`) or send new input;
- a run's `ride_path` must lie inside the athlete's own inbox folder (`records.inbox`), so no file of another
  athlete, or of the server, can be read through the Debrief Coach;
- assistants can be read and searched (they are the graphs' definitions) but not created, changed or deleted;
- the LangGraph store is restricted to namespaces that start with the athlete id (the coach keeps its memory in
  Postgres and Redis, which the graphs reach only for the athlete of the run: `graphs.context.run_context`);
- anything else is denied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth.types import (
    AssistantsRead,
    AssistantsSearch,
    AuthContext,
    CronsCreate,
    CronsUpdate,
    MinimalUserDict,
    RunsCreate,
    ThreadsCreate,
    ThreadsDelete,
    ThreadsRead,
    ThreadsSearch,
    ThreadsUpdate,
)

from config.settings import get_settings
from graphs.context import AUTH_USER_ID_KEY, AUTH_USER_KEY
from graphs.inputs import InvalidInputError, check_run_request
from memory.athlete_store import validate_athlete_id
from records.inbox import is_in_athlete_inbox
from server.dev_tokens import TokenTable
from server.jwt_auth import JwtVerifier, looks_like_jwt
from training.dates import InvalidTimezoneError

OWNER_KEY = "owner"
"""The metadata key holding the athlete that owns a thread, run or cron."""

TokenResolver = Callable[[str], Awaitable[str | None]]
"""Maps a bearer token to an athlete id, or None when the token is not valid."""


_table: TokenTable | None = None
_verifier: JwtVerifier | None = None
_table_lock = asyncio.Lock()


def _configured_identities() -> tuple[TokenTable, JwtVerifier | None]:
    settings = get_settings()
    return TokenTable.from_settings(settings), JwtVerifier.from_settings(settings)


async def configured_token_athlete(token: str) -> str | None:
    """The default resolver: the development tokens, then the identity provider's JWTs (when configured).

    Both are read from configuration once (in a thread) on first use.

    Raises:
        Auth.exceptions.HTTPException: 503 when the identity provider's keys cannot be fetched.
    """
    global _table, _verifier
    if _table is None:
        async with _table_lock:
            if _table is None:
                _table, _verifier = await asyncio.to_thread(_configured_identities)
    table, verifier = _table, _verifier
    athlete_id = table.athlete_for(token) if table is not None else None
    if athlete_id is None and verifier is not None and looks_like_jwt(token):
        athlete_id = await verifier.athlete_for_async(token)
    return athlete_id


_resolver: TokenResolver = configured_token_athlete


def set_token_resolver(resolver: TokenResolver | None) -> None:
    """Replace how tokens map to athletes (None restores the configured tokens and identity provider)."""
    global _resolver, _table, _verifier
    _resolver = resolver or configured_token_athlete
    _table = None
    _verifier = None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=403, detail=detail)


auth = Auth()


async def athlete_for_authorization(authorization: str | None) -> str:
    """The athlete an `Authorization` header value authenticates (the one check every route goes through).

    Used by `authenticate` (the API's routes) and by `server.closed_routes` (the server's own `/metrics`).

    Raises:
        Auth.exceptions.HTTPException: 401 (with `WWW-Authenticate: Bearer`) without a bearer token or with an
            unknown one.
    """
    token = bearer_token(authorization)
    if token is None:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    athlete_id = await _resolver(token)
    if athlete_id is None:
        raise _unauthorized("invalid token")
    return validate_athlete_id(athlete_id)


@auth.authenticate
async def authenticate(authorization: str | None) -> MinimalUserDict:
    """Map the bearer token to its athlete; 401 without a valid token."""
    athlete_id = await athlete_for_authorization(authorization)
    return {"identity": athlete_id, "display_name": athlete_id, "permissions": ["athlete"]}


def _athlete(ctx: AuthContext) -> str:
    return str(ctx.user.identity)


def _owned(ctx: AuthContext) -> dict[str, str]:
    return {OWNER_KEY: _athlete(ctx)}


def _stamp_owner(ctx: AuthContext, value: Any) -> None:
    """Set `metadata.owner` to the athlete, refusing a request that names another owner."""
    metadata = value.get("metadata")
    if metadata is None:
        metadata = value["metadata"] = {}
    owner = metadata.get(OWNER_KEY)
    if owner is not None and owner != _athlete(ctx):
        raise _forbidden("metadata.owner is set by the server")
    metadata[OWNER_KEY] = _athlete(ctx)


def _names_another_identity(ctx: AuthContext, configurable: Mapping[str, Any]) -> bool:
    """Whether a run's `configurable` names a user other than the token's (`graphs.context.authenticated_athlete`).

    `langgraph dev` fills both keys from the token before this check (and overwrites them); GraphHarbor keeps a
    client's `langgraph_auth_user_id` as sent, so a value naming another athlete is refused here.
    """
    user = configurable.get(AUTH_USER_KEY)
    named = [configurable.get(AUTH_USER_ID_KEY)]
    named.append(user.get("identity") if isinstance(user, Mapping) else getattr(user, "identity", None))
    return any(n is not None and n != _athlete(ctx) for n in named)


async def _check_run_payload(ctx: AuthContext, payload: Mapping[str, Any] | None) -> None:
    """A run (or a cron's run) may send input and resume an interrupt, nothing that writes the state directly.

    Nor may it name another user: `config.configurable` with a `langgraph_auth_user(_id)` not the token's gets 403.

    Its context and input are checked too (`graphs.inputs.check_run_request`): an unknown time zone or a bad
    `max_rides` is refused here with 422 and the error's code, before a run exists.
    """
    payload = payload or {}
    config = payload.get("config")
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    if isinstance(configurable, Mapping) and _names_another_identity(ctx, configurable):
        raise _forbidden("the athlete comes from the token: a run's config may not name another user")
    try:
        await asyncio.to_thread(check_run_request, payload.get("context"), payload.get("input"))
        await asyncio.to_thread(check_run_request, configurable, None)  # the context when none is given
    except (InvalidInputError, InvalidTimezoneError) as exc:
        raise Auth.exceptions.HTTPException(status_code=422, detail=f"{exc.code}: {exc}") from None
    command = payload.get("command")
    if isinstance(command, Mapping) and (command.get("update") is not None or command.get("goto") is not None):
        raise _forbidden("a run may resume an interrupt (command.resume) but not update the state or jump (goto)")
    run_input = payload.get("input")
    if isinstance(run_input, Mapping) and run_input.get("ride_path") is not None:
        path = run_input["ride_path"]
        inside = isinstance(path, str) and await asyncio.to_thread(is_in_athlete_inbox, path, _athlete(ctx))
        if not inside:
            raise _forbidden("ride_path must be a file in your inbox folder (or upload it: PUT /inbox/{file_name})")


@auth.on.threads.create
async def on_thread_create(ctx: AuthContext, value: ThreadsCreate) -> dict[str, str]:
    """New threads belong to the athlete; an existing thread of another athlete is a conflict, never shared."""
    _stamp_owner(ctx, value)
    return _owned(ctx)


def _pin_context_athlete(ctx: AuthContext, kwargs: Any) -> None:
    """Overwrite the run context's `athlete_id` with the authenticated athlete, whatever the request said.

    The graphs read the athlete from the authenticated user already (`graphs.context.run_context`); this makes
    a graph that reads `runtime.context.athlete_id` directly safe as well.
    """
    if not isinstance(kwargs, dict):
        return
    context = kwargs.get("context")
    if not isinstance(context, dict):
        context = kwargs["context"] = {}
    context["athlete_id"] = _athlete(ctx)
    configurable = (kwargs.get("config") or {}).get("configurable")
    if isinstance(configurable, dict) and "athlete_id" in configurable:
        configurable["athlete_id"] = _athlete(ctx)


@auth.on.threads.create_run
async def on_run_create(ctx: AuthContext, value: RunsCreate) -> dict[str, str]:
    """Runs belong to the athlete, on the athlete's threads only, with input or a resume only, as the athlete."""
    _stamp_owner(ctx, value)
    await _check_run_payload(ctx, value.get("kwargs"))
    _pin_context_athlete(ctx, value.get("kwargs"))
    return _owned(ctx)


@auth.on.threads.read
async def on_thread_read(ctx: AuthContext, value: ThreadsRead) -> dict[str, str]:
    """Threads, their state, history, runs and streams: the athlete's own only."""
    return _owned(ctx)


@auth.on.threads.search
async def on_thread_search(ctx: AuthContext, value: ThreadsSearch) -> dict[str, str]:
    """Searches and counts of threads and runs see the athlete's own only."""
    return _owned(ctx)


@auth.on.threads.delete
async def on_thread_delete(ctx: AuthContext, value: ThreadsDelete) -> dict[str, str]:
    """Deleting threads and runs: the athlete's own only."""
    return _owned(ctx)


@auth.on.threads.update
async def on_thread_update(ctx: AuthContext, value: ThreadsUpdate) -> dict[str, str]:
    """Thread metadata and run cancellation on the athlete's threads; writing a thread's state is refused.

    The server asks this handler for three things: a metadata patch (`metadata` given), a run cancellation
    (`action` given), and a state write (`POST /threads/{id}/state`, or `supersteps` when creating a thread),
    which carries neither. The coach's state is written by its graphs only.
    """
    if "metadata" not in value and value.get("action") is None:
        raise _forbidden("a thread's state is written by the coach's graphs only")
    if "metadata" in value and value.get("action") is None:
        _stamp_owner(ctx, value)
    return _owned(ctx)


@auth.on.assistants.read
async def on_assistant_read(ctx: AuthContext, value: AssistantsRead) -> None:
    """Assistants (the graphs' definitions) can be read by any athlete."""
    return None


@auth.on.assistants.search
async def on_assistant_search(ctx: AuthContext, value: AssistantsSearch) -> None:
    """Assistants can be listed by any athlete."""
    return None


def _cron_run_payload(value: Any) -> Any:
    """A cron's run payload: `value["payload"]` (LangGraph server) or the request body itself (GraphHarbor)."""
    return value["payload"] if isinstance(value.get("payload"), Mapping) else value


@auth.on.crons.create
async def on_cron_create(ctx: AuthContext, value: CronsCreate) -> dict[str, str]:
    """Crons belong to the athlete; their runs are checked like runs (and run as the athlete).

    Only thread-less crons (`POST /runs/crons`: the scheduled debriefs): one on a thread (`thread_id` set) gets 403
    for any thread, own or not (GraphHarbor does not check the owner of a new cron's thread).
    """
    if value.get("thread_id") is not None:
        raise _forbidden("crons run without a thread: create them with POST /runs/crons")
    _stamp_owner(ctx, value)
    await _check_run_payload(ctx, _cron_run_payload(value))
    return _owned(ctx)


@auth.on.crons.update
async def on_cron_update(ctx: AuthContext, value: CronsUpdate) -> dict[str, str]:
    """Changing a cron: the athlete's own only, with a run payload checked like a run."""
    if "metadata" in value:
        _stamp_owner(ctx, value)
    await _check_run_payload(ctx, _cron_run_payload(value))
    return _owned(ctx)


async def on_cron_owned(ctx: AuthContext, value: Any) -> dict[str, str]:
    """Reading, listing or deleting crons: the athlete's own only."""
    return _owned(ctx)


on_cron_read = auth.on.crons.read(on_cron_owned)
on_cron_search = auth.on.crons.search(on_cron_owned)
on_cron_delete = auth.on.crons.delete(on_cron_owned)


@auth.on.store()
async def on_store(ctx: AuthContext, value: Any) -> None:
    """The LangGraph store: only namespaces that start with the athlete id."""
    namespace = tuple(value.get("namespace") or ())
    if not namespace or namespace[0] != _athlete(ctx):
        raise _forbidden("store namespaces must start with your athlete id")


@auth.on
async def deny_everything_else(ctx: AuthContext, value: Any) -> bool:
    """Anything not allowed above (creating or changing assistants, for example) is refused."""
    return False
