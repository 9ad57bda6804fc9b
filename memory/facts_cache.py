"""A read-through Redis cache of an athlete's current facts (docs/architecture.md, the memory tiers).

Hash `facts:{<athlete_id>}`: one field per fact key, its value the JSON of the fact's row
`{"value", "source", "source_session_id", "source_ride_id", "updated_at"}`, plus the marker field `__cached__`
(the fill time), so that "this athlete has no facts" is cached too and a new athlete does not cost a Postgres
query every turn. TTL `ttl_s` (default 30 days). Every fact write must call `invalidate`.

Fills cannot resurrect stale facts: `get` also returns the athlete's cache generation (key
`facts:{<athlete_id>}:gen`, incremented by `invalidate`), and `put` writes only if the generation is unchanged
(one Lua script), so a fill that read Postgres before a concurrent write and finished after its invalidation is
dropped. Both keys share the athlete's hash tag, so the script is valid on Redis Cluster.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from memory.athlete_store import validate_athlete_id

logger = logging.getLogger(__name__)

MARKER_FIELD = "__cached__"
"""Hash field present in every filled cache entry; reserved (not a valid fact key here)."""
Facts = dict[str, dict[str, Any]]
"""`{fact_key: {"value", "source", "source_session_id", "source_ride_id", "updated_at": datetime}}`."""

# KEYS[1] facts hash, KEYS[2] generation; ARGV[1] expected generation ("" = none), ARGV[2] ttl_s, ARGV[3..] pairs.
_PUT_IF_GENERATION = """
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


def facts_key(athlete_id: str) -> str:
    """Return the Redis key of an athlete's cached facts: `facts:{<athlete_id>}`."""
    return f"facts:{{{validate_athlete_id(athlete_id)}}}"


def _generation_key(athlete_id: str) -> str:
    return facts_key(athlete_id) + ":gen"


class FactsCache:
    """The facts cache.

    Args:
        redis: a client with `decode_responses=True`.
        ttl_s: time to live of a cached entry, seconds.

    Every method raises redis-py's `ConnectionError`/`TimeoutError` when Redis cannot be reached.
    """

    def __init__(self, redis: Redis, *, ttl_s: int = 30 * 24 * 3600) -> None:
        """Keep the client and register the fill script."""
        self.redis = redis
        self.ttl_s = ttl_s
        self._put_script = redis.register_script(_PUT_IF_GENERATION)

    async def get(self, athlete_id: str) -> tuple[Facts | None, str]:
        """Read the cached facts.

        Returns:
            `(facts, generation)`: facts is None on a miss ({} when "no facts" is cached); pass the generation
            to `put` after reading Postgres.
        """
        key = facts_key(athlete_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.get(_generation_key(athlete_id))
            raw, generation = await pipe.execute()
        if not raw or MARKER_FIELD not in raw:
            return None, generation or ""
        facts: Facts = {}
        try:
            for field, text in raw.items():
                if field == MARKER_FIELD:
                    continue
                row = json.loads(text)
                if row.get("updated_at"):
                    row["updated_at"] = datetime.fromisoformat(row["updated_at"])
                facts[field] = row
        except (ValueError, TypeError, AttributeError) as exc:  # a corrupt entry is a miss, refilled from Postgres
            logger.warning("corrupt facts cache %s (%s): ignored", key, exc)
            return None, generation or ""
        return facts, generation or ""

    async def put(self, athlete_id: str, facts: Facts, generation: str) -> bool:
        """Cache the facts read from Postgres, unless they were invalidated since `get` returned `generation`.

        Returns:
            Whether the cache was written.
        """
        pairs: list[str] = [MARKER_FIELD, datetime.now().astimezone().isoformat()]
        for fact_key, row in facts.items():
            if fact_key == MARKER_FIELD:
                continue
            pairs += [fact_key, json.dumps(row, default=_json_default, ensure_ascii=False)]
        written = await self._put_script(
            keys=[facts_key(athlete_id), _generation_key(athlete_id)], args=[generation, self.ttl_s, *pairs]
        )
        return bool(written)

    async def invalidate(self, athlete_id: str) -> None:
        """Drop the cached facts and bump the generation (one MULTI/EXEC); call after every fact write."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(facts_key(athlete_id))
            pipe.incr(_generation_key(athlete_id))
            pipe.expire(_generation_key(athlete_id), self.ttl_s)
            await pipe.execute()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
