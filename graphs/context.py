"""The run context shared by every graph.

The athlete id comes from here (the authenticated user, or the command line's `--athlete`), never from the
model, a tool argument or the request body. On the API server (`langgraph dev`) the client's `context` is not
trusted for it: `run_context` takes the athlete from the user that `server.auth` authenticated, which the server
puts in the run's config (`configurable["langgraph_auth_user_id"]`), where no request can set it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.runtime import Runtime

from training.dates import validate_timezone


@dataclass(frozen=True)
class Context:
    """Per-run knobs passed with `graph.ainvoke(..., context=Context(...))`.

    Attributes:
        athlete_id: whose memory this run reads and writes; every query filters by it. Empty only on the API
            server, where `run_context` fills it from the authenticated user.
        session_id: the conversation (chat) or job (debrief) this run belongs to; on the API server, the thread.
        timezone: IANA time zone of the athlete, used to resolve relative dates; checked on creation
            (`training.dates.validate_timezone`), so no run starts with an unknown zone or a path.
        confirm_facts_inline: when a tool proposes a fact, pause the run with a LangGraph `interrupt` so the
            athlete confirms or rejects it at once (interactive chat, the API); when False the proposal stays
            pending for `coach facts --confirm` (one-shot `coach chat --message`).
    """

    athlete_id: str = ""
    session_id: str = "default"
    timezone: str = "UTC"
    confirm_facts_inline: bool = False

    def __post_init__(self) -> None:
        """Refuse an unknown time zone (the server builds the context from the client's JSON with these fields).

        Raises:
            InvalidTimezoneError: `timezone` is not a known IANA name (code `invalid_timezone`).
        """
        validate_timezone(self.timezone)


GraphKind = Literal["chat", "debrief", "pending", "audit"]


def thread_id(kind: GraphKind, athlete_id: str, key: str | None = None) -> str:
    """The one format of the checkpointer thread ids the command line and the tests use: `kind:athlete:key`.

    Args:
        kind: which graph the thread belongs to.
        athlete_id: whose run it is.
        key: the conversation's session id for a chat, whose thread outlives a run; None for a one-off run
            (a debrief, an audit), which gets a fresh random key.

    Returns:
        e.g. `chat:ana:s1` or `audit:ana:6f1c…` (32 hex digits). On the API server threads are the server's own
        UUIDs and the session id is the thread (`run_context`).
    """
    return f"{kind}:{athlete_id}:{key if key is not None else uuid.uuid4().hex}"


AUTH_USER_ID_KEY = "langgraph_auth_user_id"
"""Where the LangGraph server puts the authenticated user's identity in a run's `configurable`."""

AUTH_USER_KEY = "langgraph_auth_user"
"""Where the servers put the authenticated user itself (GraphHarbor, `make serve-prod`, sets only this one)."""


def authenticated_athlete(config: dict[str, Any] | None) -> str | None:
    """The athlete the API server authenticated for this run, or None outside the server (CLI, tests).

    Read from the identity of `configurable["langgraph_auth_user"]`, which both servers set from the
    authentication over any client value, else from `configurable["langgraph_auth_user_id"]` (which only
    `langgraph dev` overwrites; `server.auth` refuses a run whose config sets either key).
    """
    configurable = (config or {}).get("configurable") or {}
    user = configurable.get(AUTH_USER_KEY)
    user_id = user.get("identity") if isinstance(user, Mapping) else getattr(user, "identity", None)
    if user_id is None:
        user_id = configurable.get(AUTH_USER_ID_KEY)
    return user_id if isinstance(user_id, str) and user_id else None


def run_context(runtime: Runtime[Context]) -> Context:
    """The run's `Context`, with the athlete of the authenticated user when the run comes through the server.

    On the server: `athlete_id` is the authenticated user's (whatever the request's `context` said),
    `session_id` is the thread, and fact proposals interrupt the run (`confirm_facts_inline`) so the client
    resumes it with the athlete's answer. Elsewhere (command line, tests) the context passed in is used as is.
    """
    ctx = runtime.context if isinstance(runtime.context, Context) else Context()
    try:
        config: dict[str, Any] | None = dict(get_config())
    except RuntimeError:  # not inside a runnable context
        config = None
    athlete = authenticated_athlete(config)
    if athlete is None:
        return ctx
    thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
    return replace(
        ctx,
        athlete_id=athlete,
        session_id=str(thread_id) if thread_id else ctx.session_id,
        confirm_facts_inline=True,
    )
