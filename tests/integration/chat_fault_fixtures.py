"""Fixtures and helpers for fault tests of the chat graph on private servers (see `tests.integration.servers`).

`fault_deps` opens `Stores` exactly as the application does (`open_stores`) but on the module's private
Redis and Postgres, which a test may stop and restart; it restarts whatever a test left stopped. The graph itself
is checkpointed in memory (`tests.chat_helpers.Chat`), so its own checkpoints never depend on those servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from config.settings import Settings
from memory.outbox import DEFAULT_SPOOL_ROOT
from memory.session_window import BLOCK_HEADER, WindowEntry
from records.stores import Stores, open_stores
from tests.chat_helpers import Chat
from tests.integration.servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401

Turn = tuple[str, str]
"""(the athlete's message, the coach's reply)."""


class EchoModel(BaseChatModel):
    """A scripted chat model whose reply names the message it answers: `echo: <message>`; never calls a tool.

    `delay_s` makes each answer take that long (an LLM's latency), during which background work of the memory
    layer (probes, drains) runs.
    """

    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "echo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> EchoModel:  # type: ignore[override]
        return self

    @staticmethod
    def reply_to(message: str) -> str:
        return f"echo: {message}"

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        human = [m for m in messages if isinstance(m, HumanMessage)][-1]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply_to(str(human.content))))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.delay_s)
        return self._reply(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(self.delay_s)
        return self._reply(messages)


@pytest.fixture(scope="module")
def fault_settings(
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
) -> Iterator[Settings]:
    """Settings pointing at the private servers; removes the local spool directory they imply at the end."""
    settings = Settings(database_url=private_postgres.url, redis_url=private_redis.url)
    spool = DEFAULT_SPOOL_ROOT / hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]
    yield settings
    shutil.rmtree(spool, ignore_errors=True)


@pytest_asyncio.fixture
async def fault_deps(
    fault_settings: Settings,
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
) -> AsyncIterator[Stores]:
    """`open_stores` on the private servers, both running and healthy at the start.

    At the end, restarts a server the test left stopped (the servers are module-scoped) and closes the deps.
    """
    await asyncio.gather(private_redis.astart(), private_postgres.astart())
    async with open_stores(fault_settings) as deps:
        await wait_healthy(deps)
        try:
            yield deps
        finally:
            await asyncio.gather(private_redis.astart(), private_postgres.astart())


async def wait_healthy(deps: Stores, timeout_s: float = 10.0) -> float:
    """Probe until both servers answer (a restarted one may fail its first call); return the seconds waited."""
    started = time.monotonic()
    while await deps.memory.check_health() != "ok":
        assert time.monotonic() - started < timeout_s, f"memory still {deps.memory.status()} after {timeout_s} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def wait_drained(deps: Stores, timeout_s: float = 10.0) -> None:
    """Drain the outbox and the local spool to Postgres until nothing is pending."""
    started = time.monotonic()
    while True:
        await deps.memory.drain_outbox()
        if await deps.memory.pending_writes() == 0:
            return
        assert time.monotonic() - started < timeout_s, "the outbox did not drain"
        await asyncio.sleep(0.05)


async def system_prompt(chat: Chat, session_id: str = "s1") -> str:
    """The system message of the session's last turn, from the graph's state."""
    state = await chat.graph.aget_state(chat.config(session_id))
    first = state.values["messages"][0]
    assert isinstance(first, SystemMessage)
    return str(first.content)


def recent_turns(prompt: str) -> list[str]:
    """The lines of the prompt's `[RECENT TURNS]` block (without the header); [] when there is no block."""
    lines = prompt.splitlines()
    if BLOCK_HEADER not in lines:
        return []
    block = lines[lines.index(BLOCK_HEADER) + 1 :]
    return block[: block.index("")] if "" in block else block


def block_lines(turns: Sequence[Turn]) -> list[str]:
    """The `[RECENT TURNS]` lines that show these (short, one-line) turns."""
    return [line for message, reply in turns for line in (f"- U: {message}", f"- A: {reply}")]


async def window_entries(deps: Stores, athlete_id: str, session_id: str = "s1") -> list[WindowEntry]:
    """The session window as stored in Redis (Redis must be up)."""
    assert deps.memory.window is not None
    return await deps.memory.window.read(athlete_id, session_id)


async def archived(deps: Stores, athlete_id: str, session_id: str = "s1") -> list[dict[str, Any]]:
    """The session's archived messages (`id`, `turn_id`, `role`, `content`, `tool_name`), oldest first."""
    assert deps.memory.pool is not None
    async with deps.memory.pool.connection() as conn:
        cur = await conn.execute(
            """SELECT id::text AS id, turn_id::text AS turn_id, role, content, tool_name FROM messages
               WHERE athlete_id = %s AND session_id = %s ORDER BY created_at, id""",
            (athlete_id, session_id),
        )
        return list(await cur.fetchall())


def turns_by_id(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Archived rows grouped by turn id, each group in archive order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(str(row["turn_id"]), []).append(row)
    return out
