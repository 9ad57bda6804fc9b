"""The LangGraph checkpointer on the athlete store's Postgres.

`CoachPostgresSaver` is langgraph-checkpoint-postgres's `AsyncPostgresSaver` with one query changed: the latest
checkpoint's channel values are looked up by primary key (one `checkpoint_blobs` row per channel version) instead
of a join that Postgres may run as a hash join over every value the thread ever stored. Measured with
`benchmarks/turn_overhead.py`: reading the latest checkpoint of a 1,000-turn thread took 8.8 ms with the
library's query and 2.3 ms with this one (1.7 ms on a 5-turn thread), with identical results.
"""

from __future__ import annotations

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from memory.db import DictPool

_SELECT_SQL = """
select
    thread_id,
    checkpoint,
    checkpoint_ns,
    checkpoint_id,
    parent_checkpoint_id,
    metadata,
    (
        select array_agg(array[cv.key::bytea, bl.type::bytea, bl.blob])
        from jsonb_each_text(checkpoint -> 'channel_versions') cv
        cross join lateral (
            select b.type, b.blob from checkpoint_blobs b
            where b.thread_id = checkpoints.thread_id
                and b.checkpoint_ns = checkpoints.checkpoint_ns
                and b.channel = cv.key
                and b.version = cv.value
            limit 1
        ) bl
    ) as channel_values,
    (
        select
        array_agg(array[cw.task_id::text::bytea, cw.channel::bytea, cw.type::bytea, cw.blob, convert_to(cw.task_path, 'UTF8'), cw.idx::text::bytea])
        from checkpoint_writes cw
        where cw.thread_id = checkpoints.thread_id
            and cw.checkpoint_ns = checkpoints.checkpoint_ns
            and cw.checkpoint_id = checkpoints.checkpoint_id
    ) as pending_writes
from checkpoints """  # noqa: E501 (kept line for line with the library's SELECT_SQL it replaces)


class CoachPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` whose checkpoint read looks channel values up by key (see the module docstring)."""

    SELECT_SQL = _SELECT_SQL


async def open_checkpointer(pool: DictPool) -> CoachPostgresSaver:
    """A checkpointer on the pool (autocommit, dict rows, `prepare_threshold=0`), its tables set up.

    Raises:
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    saver = CoachPostgresSaver(conn=pool)
    await saver.setup()
    return saver
