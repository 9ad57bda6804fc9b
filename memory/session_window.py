"""Tier 1: the session window in Redis, and its rendering into the prompt's recent-turns block (docs/architecture.md).

One Redis list per session, key `session:{<athlete_id>}:<session_id>`: the braces are a Redis Cluster hash tag,
so every key of one athlete lives in one slot. Each element is a JSON object
`{"id", "role", "content", "ts", "tokens"}`: `id` is the archive message id it mirrors, `role` is `user` or
`assistant`, `ts` is ISO 8601 in UTC and `tokens` the estimate of `estimate_tokens`. Turns are appended whole
(MULTI/EXEC), the list is trimmed to the newest `store_cap` elements and its TTL renewed on every write.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis

from memory.athlete_store import validate_athlete_id
from memory.messages import ChatMessage, validate_session_id

logger = logging.getLogger(__name__)

WindowRole = Literal["user", "assistant"]
CHARS_PER_TOKEN = 4
"""Characters per token of `estimate_tokens` (OpenAI's rule of thumb for English text)."""
BLOCK_HEADER = "[RECENT TURNS]"
_PREFIX = {"user": "- U: ", "assistant": "- A: "}
_MIN_MESSAGE_CHARS = 40
_ELLIPSIS = "…"


def window_key(athlete_id: str, session_id: str) -> str:
    """Return the Redis key of a session window: `session:{<athlete_id>}:<session_id>`.

    Raises:
        InvalidAthleteIdError, InvalidSessionIdError: invalid ids.
    """
    return f"session:{{{validate_athlete_id(athlete_id)}}}:{validate_session_id(session_id)}"


def estimate_tokens(text: str) -> int:
    """Estimate a text's tokens as `ceil(len(text) / 4)`.

    Source: OpenAI, "What are tokens and how to count them?" (help.openai.com/en/articles/4936856): "1 token ≈ 4
    chars in English". An exact count needs the model's tokenizer (tiktoken), which downloads its encoding files
    and so is not usable offline.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class WindowEntry:
    """One message of the session window.

    Attributes:
        id: the archive message id it mirrors (UUID text).
        role: `user` or `assistant`.
        content: the full text.
        ts: when it was said (aware datetime; stored as ISO 8601 UTC).
        tokens: `estimate_tokens(content)`.
    """

    id: str
    role: WindowRole
    content: str
    ts: datetime
    tokens: int

    @classmethod
    def make(cls, id: str, role: WindowRole, content: str, ts: datetime) -> WindowEntry:
        """Build an entry, computing its token estimate."""
        return cls(id=id, role=role, content=content, ts=ts, tokens=estimate_tokens(content))

    def to_json(self) -> str:
        """Serialise to the JSON object stored in Redis."""
        return json.dumps(
            {
                "id": self.id,
                "role": self.role,
                "content": self.content,
                "ts": self.ts.astimezone(UTC).isoformat(),
                "tokens": self.tokens,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> WindowEntry:
        """Parse `to_json`'s output.

        Raises:
            ValueError: not a valid entry.
        """
        data = json.loads(text)
        try:
            role = data["role"]
            if role not in ("user", "assistant"):
                raise ValueError(f"role {role!r}")
            return cls(
                id=str(data["id"]),
                role=role,
                content=str(data["content"]),
                ts=datetime.fromisoformat(data["ts"]),
                tokens=int(data["tokens"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a window entry: {exc}") from exc


class SessionWindow:
    """The Redis lists of session windows.

    Args:
        redis: a client with `decode_responses=True` (see `memory.redis_client.open_redis`).
        store_cap: most messages kept per session (LTRIM keeps the newest).
        ttl_s: time to live of a window, seconds, renewed on every write.

    Every method raises redis-py's `ConnectionError`/`TimeoutError` when Redis cannot be reached.
    """

    def __init__(self, redis: Redis, *, store_cap: int = 50, ttl_s: int = 24 * 3600) -> None:
        """Keep the client and limits."""
        if store_cap < 2:
            raise ValueError("store_cap must hold at least one turn (2 messages)")
        self.redis = redis
        self.store_cap = store_cap
        self.ttl_s = ttl_s

    async def append_turn(self, athlete_id: str, session_id: str, entries: Sequence[WindowEntry]) -> int:
        """Append one turn's entries (normally user then assistant) atomically.

        One MULTI/EXEC: RPUSH of every entry, LTRIM to the newest `store_cap`, EXPIRE `ttl_s`. Concurrent turns
        of the same session never interleave.

        Returns:
            The list's length after the push, before trimming (equal to `len(entries)` when the key was absent).
        """
        if not entries:
            return 0
        key = window_key(athlete_id, session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *(e.to_json() for e in entries))
            pipe.ltrim(key, -self.store_cap, -1)
            pipe.expire(key, self.ttl_s)
            length, _, _ = await pipe.execute()
        return int(length)

    async def read(self, athlete_id: str, session_id: str, limit: int | None = None) -> list[WindowEntry]:
        """Return the newest `limit` entries (all when None), oldest first; [] when the key is absent.

        A Redis list cannot exist empty, so [] means a miss (expired, flushed, never written): hydrate. Entries
        that do not parse are skipped (and logged).
        """
        key = window_key(athlete_id, session_id)
        start = 0 if limit is None else -max(limit, 1)
        raw = await self.redis.lrange(key, start, -1)
        entries = []
        for item in raw:
            try:
                entries.append(WindowEntry.from_json(str(item)))
            except ValueError as exc:
                logger.warning("skipping a corrupt entry of %s: %s", key, exc)
        return entries

    async def replace(self, athlete_id: str, session_id: str, entries: Sequence[WindowEntry]) -> None:
        """Replace the window with `entries` (hydration): DEL, RPUSH, LTRIM, EXPIRE in one MULTI/EXEC.

        With no entries the key is only deleted.
        """
        key = window_key(athlete_id, session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if entries:
                pipe.rpush(key, *(e.to_json() for e in entries[-self.store_cap :]))
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def delete(self, athlete_id: str, session_id: str) -> None:
        """Delete the window (the next load hydrates it from the archive)."""
        await self.redis.delete(window_key(athlete_id, session_id))


def render_window_block(
    entries: Sequence[WindowEntry],
    max_turns: int = 6,
    token_budget: int = 1500,
    *,
    message_char_cap: int | None = None,
) -> tuple[str, list[str]]:
    """Render the newest turns as the prompt's recent-turns block.

    Format (one line per message, whitespace collapsed)::

        [RECENT TURNS]
        - U: ...
        - A: ...

    A turn is a user message and the assistant message that follows it (either may be missing, e.g. after
    trimming). At most `max_turns` turns are shown; each message is cut to `message_char_cap` characters with
    "…" (default: an equal share of the budget, `(token_budget * 4 - header) // (2 * max_turns) - 6`, at least
    40); then the oldest turns are dropped while the block's estimate (`estimate_tokens`) exceeds
    `token_budget`. If even the newest turn does not fit, its messages are cut further.

    Args:
        entries: the window, oldest first.
        max_turns: most turn pairs shown.
        token_budget: most tokens of the whole block (estimated).
        message_char_cap: longest message shown, characters.

    Returns:
        `(block_text, included_message_ids)`: the block ("" when there is no turn, or nothing fits) and the ids
        of the messages it shows (whole or cut), oldest first.
    """
    turns = _group_turns(entries)
    if max_turns <= 0 or token_budget <= 0 or not turns:
        return "", []
    turns = turns[-max_turns:]
    budget_chars = token_budget * CHARS_PER_TOKEN
    if message_char_cap is None:
        share = (budget_chars - len(BLOCK_HEADER) - 1) // (2 * len(turns)) - len(_PREFIX["user"]) - 1
        message_char_cap = max(_MIN_MESSAGE_CHARS, share)
    lines = [[_line(e, message_char_cap) for e in turn] for turn in turns]
    while len(lines) > 1 and estimate_tokens(_join(lines)) > token_budget:
        lines.pop(0)
        turns.pop(0)
    if estimate_tokens(_join(lines)) > token_budget:  # one turn left, still too long: cut it harder
        last = turns[0]
        room = (budget_chars - len(BLOCK_HEADER) - 1) // len(last) - len(_PREFIX["user"]) - 1
        if room < len(_ELLIPSIS) + 1:
            return "", []
        lines = [[_line(e, room) for e in last]]
    ids = [e.id for turn in turns for e in turn]
    return _join(lines), ids


def _group_turns(entries: Sequence[WindowEntry]) -> list[list[WindowEntry]]:
    """Group entries into turns: a user message opens a turn; an assistant message closes the open one."""
    turns: list[list[WindowEntry]] = []
    for e in entries:
        if e.role == "user" or not turns or turns[-1][-1].role == "assistant":
            turns.append([e])
        else:
            turns[-1].append(e)
    return turns


def _line(entry: WindowEntry, cap: int) -> str:
    return _PREFIX[entry.role] + trim_text(entry.content, cap)


def _join(lines: list[list[str]]) -> str:
    return "\n".join([BLOCK_HEADER, *(line for turn in lines for line in turn)])


def trim_text(text: str, max_chars: int) -> str:
    """Collapse whitespace to single spaces and cut to `max_chars` characters, ending in "…" when cut.

    The cut falls on a word boundary when one lies in the last 30 % of the allowed length.
    """
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    cut = flat[: max(max_chars - len(_ELLIPSIS), 0)]
    space = cut.rfind(" ")
    if space >= 0.7 * len(cut):
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def entry_from_message(m: ChatMessage) -> WindowEntry:
    """Return the window entry mirroring a user or assistant message."""
    if m.role not in ("user", "assistant"):
        raise ValueError(f"only user and assistant messages go to the window, not {m.role!r}")
    return WindowEntry.make(m.id, m.role, m.content, m.created_at)
