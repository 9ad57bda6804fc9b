"""The INSERT of `Archive.write`: one statement per chunk of messages, its rows passed as arrays (`unnest`).

One statement per chunk, not one per row (`executemany`): the statement-level triggers on `messages`
(`memory.postings`' postings, the recall counters) then run once per chunk, over all its rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from memory.messages import ChatMessage

_INSERT_COLUMNS = (
    ("id", "uuid"),
    ("athlete_id", "text"),
    ("session_id", "text"),
    ("turn_id", "uuid"),
    ("role", "text"),
    ("content", "text"),
    ("tool_name", "text"),
    ("external_id", "text"),
    ("created_at", "timestamptz"),
)
"""The columns `Archive.write` always inserts (each a `ChatMessage` attribute of the same name), with the element
type of their parameter arrays."""


def insert_statement(
    chunk: Sequence[ChatMessage],
    vectors: Mapping[str, str],
    model: str | None,
    first_context: Mapping[str, str] | None,
    indexed: Collection[str] = frozenset(),
) -> tuple[str, tuple[list[Any], ...]]:
    """The one INSERT of a chunk of `Archive.write` (rows as arrays, `unnest`), and its parameters.

    Args:
        chunk: the messages to insert (any athletes and sessions); one already archived is skipped
            (`ON CONFLICT (id) DO NOTHING`), and so is a repeated id.
        vectors: pgvector text by message id; when not empty, `embedding` and `embedding_model` are inserted
            too (NULL for messages without a vector).
        model: the embedding model's id, stored with each vector.
        first_context: when given, `context_tsv` is inserted as `to_tsvector('english', text)` of each message's
            text here (`memory.archive_context.batch_context_texts`; NULL for a message missing from it).
        indexed: the athletes whose messages the HNSW index holds (`memory.vector_index.LOCK_FLAGS_SQL`, read in
            the same transaction): their messages are inserted with `vector_indexed` true.

    Returns:
        `(sql, params)` for `execute`: one array per column.
    """
    columns = [*_INSERT_COLUMNS]
    values = [f"r.{name}" for name, _ in _INSERT_COLUMNS]
    params: list[list[Any]] = [[getattr(m, name) for m in chunk] for name, _ in _INSERT_COLUMNS]
    columns += [("vector_indexed", "boolean")]
    values += ["r.vector_indexed"]
    params += [[m.athlete_id in indexed for m in chunk]]
    if vectors:
        columns += [("embedding", "text"), ("embedding_model", "text")]
        values += ["r.embedding::vector", "r.embedding_model"]
        params += [[vectors.get(m.id) for m in chunk], [model if m.id in vectors else None for m in chunk]]
    if first_context is not None:  # the context within this write: the refresh then rewrites few rows or none
        columns += [("context_tsv", "text")]
        values += ["to_tsvector('english', r.context_tsv)"]
        params += [[first_context.get(m.id) for m in chunk]]
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    names = ", ".join(name for name, _ in columns)
    sql = f"""INSERT INTO messages ({names}) SELECT {", ".join(values)}
        FROM unnest({arrays}) AS r({names}) ON CONFLICT (id) DO NOTHING"""  # noqa: S608 - fixed names
    return sql, tuple(params)
