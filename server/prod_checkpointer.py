"""A bounded checkpoint history on GraphHarbor (`make serve-prod`), as `make serve` has with its own checkpointer.

On `langgraph dev` the checkpointer is the coach's (`server.checkpointer`: `memory.checkpointer.CoachPostgresSaver`,
which keeps only `Settings.checkpoint_keep` checkpoints per thread and namespace). GraphHarbor ignores a
configured checkpointer: every process writes through its own saver,
`langgraph_runtime_pg.checkpoint.FencedPostgresSaver`, which keeps every checkpoint, so a long chat thread would
grow without bound (the history of every turn, each turn several checkpoints). `install()` makes GraphHarbor
create `BoundedFencedPostgresSaver` instead, which keeps GraphHarbor's fencing and prunes like the coach's saver:

- `FencedPostgresSaver._writer(config)` opens a connection and a transaction, checks that the writing run still
  holds its lease (else `CheckpointConflict`) and locks the thread's row (`threads ... FOR UPDATE`), then yields a
  plain `AsyncPostgresSaver` on that connection; GraphHarbor's `aput` (which stamps the run id in the metadata) and
  `aput_writes` write through it. `BoundedFencedPostgresSaver._writer` yields a `CoachPostgresSaver` on that same
  connection instead: its `aput` stores the checkpoint and prunes the thread and namespace to the latest `keep`
  checkpoints (`memory.checkpointer._prune`, in a savepoint of the same transaction), so the write, the prune and
  the lease check commit together or not at all, and the thread's row lock serializes the writers of a thread
  across processes. `aput_writes` and every read are unchanged.
- Where: `server.prod_worker` (the run executors, which write the runs' checkpoints) and `server.prod_asgi` (the
  API processes, which write checkpoints when a thread is copied) call `install()` before GraphHarbor starts its
  pool.

It relies on three internals of GraphHarbor 0.13.0.post45 (the version pinned in pyproject.toml):
`setup_checkpointer()` looks the module-global name `FencedPostgresSaver` up when it is called (so replacing it
before the pool starts is enough) and builds it as `FencedPostgresSaver(pool)`; `_writer(config)` is an async
context manager yielding an `AsyncPostgresSaver` bound to the transaction's connection (its `conn` and `serde`);
and `aput` writes through `_writer`. A GraphHarbor upgrade must re-check these (the e2e test
`test_a_thread_keeps_only_the_latest_checkpoints` fails if the history is no longer bounded).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph_runtime_pg import checkpoint as graphharbor_checkpoint
from langgraph_runtime_pg.checkpoint import FencedPostgresSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from config.settings import get_settings
from memory.checkpointer import CoachPostgresSaver
from memory.db import DictPool


class BoundedFencedPostgresSaver(FencedPostgresSaver):  # type: ignore[misc]  # GraphHarbor ships no type hints
    """GraphHarbor's fenced saver whose checkpoint writes keep only the latest `keep` per thread and namespace.

    Args:
        conn: GraphHarbor's checkpoint pool (autocommit, dict rows, `prepare_threshold=0`).
        *args: GraphHarbor's other saver arguments (passed on).
        keep: checkpoints kept per thread and namespace (at least 1); None takes `Settings.checkpoint_keep`.
        **kwargs: GraphHarbor's other saver arguments (passed on).

    Raises:
        ValueError: `keep` is below 1.
    """

    def __init__(self, conn: DictPool, *args: Any, keep: int | None = None, **kwargs: Any) -> None:
        """Keep `keep` checkpoints per thread and namespace (see the class)."""
        keep = keep if keep is not None else get_settings().checkpoint_keep
        if keep < 1:
            raise ValueError(f"keep must be at least 1 checkpoint, got {keep}")
        super().__init__(conn, *args, **kwargs)
        self.keep = keep

    @asynccontextmanager
    async def _writer(self, config: RunnableConfig) -> AsyncIterator[CoachPostgresSaver]:
        """GraphHarbor's fenced transaction, yielding a pruning `CoachPostgresSaver` on its connection.

        Raises:
            langgraph_runtime_pg.checkpoint_mutations.CheckpointConflict: the run no longer owns the thread
                (GraphHarbor's check); nothing is written.
            psycopg.Error: the write or the prune failed; nothing of either is kept.
        """
        async with super()._writer(config) as saver:
            yield CoachPostgresSaver(cast(AsyncConnection[DictRow], saver.conn), serde=saver.serde, keep=self.keep)


def install() -> None:
    """Make GraphHarbor's `setup_checkpointer()` create `BoundedFencedPostgresSaver` (call before its pool starts)."""
    graphharbor_checkpoint.FencedPostgresSaver = BoundedFencedPostgresSaver
