"""How many rows of the HNSW scan the large-archive path reads: recall@10 against exact search, and latency.

Runs on the database that `benchmarks/recall_scale.py --keep` built (default `<the DATABASE_URL database>_recall_scale`,
with its 100,000-message athlete `scale-big`). For each variant of the vector side (`VECTOR_SCAN_FACTOR` x depth rows
of the iterative scan, `relaxed_order` or `strict_order`), `--questions` LoCoMo questions (seed 17, as
`recall_scale.py`'s recall figures) are searched at k=10 with the query embedding given, and the top 10 compared
with exact search (index scan off, exact BM25): |top 10 ∩ exact top 10| / 10, mean; p50/p95 of the search. The
variants run question by question, in turn, so that none gets the warm pages; the default (`VECTOR_SCAN_FACTOR`,
relaxed) is the baseline the others' latencies are divided by.

Usage: ``uv run python benchmarks/recall_vector_rows.py [--database NAME] [--questions N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence

import psycopg

from benchmarks.recall_scale import BIG_ATHLETE, DEFAULT_DATA, locomo_texts, percentiles, scale_settings, scale_url
from config.settings import get_settings
from memory import recall_large
from memory.embeddings import get_embedder
from memory.recall import QueryVector, RankingParams, search_messages
from records.stores import open_stores

VARIANTS: tuple[tuple[int, str], ...] = ((2, "relaxed_order"), (3, "relaxed_order"), (4, "relaxed_order"),
                                         (6, "relaxed_order"), (8, "relaxed_order"), (2, "strict_order"))  # fmt: skip
"""(rows read / depth, iterative scan order) of each variant."""
EXACT = RankingParams(lexical_candidates=None)


async def measure(url: str, questions: Sequence[str]) -> dict[tuple[int, str], dict[str, float]]:
    """Recall@10 against exact search and latency per variant (see the module's docstring)."""
    embedder = get_embedder(get_settings().model_copy(update={"embedding_provider": "local"}))
    assert embedder is not None and embedder.warm_up()
    vectors = [QueryVector(await embedder.embed_query(q), embedder.model_id) for q in questions]
    default = (recall_large.VECTOR_SCAN_FACTOR, "relaxed_order")
    settings_sql = recall_large.HNSW_SETTINGS_SQL
    found: dict[tuple[int, str], list[float]] = {v: [] for v in VARIANTS}
    ms: dict[tuple[int, str], list[float]] = {v: [] for v in VARIANTS}
    async with open_stores(scale_settings(url), require_postgres=True) as stores:
        try:
            for q, vector in zip(questions, vectors, strict=True):
                exact = await search_messages(
                    stores.pool, BIG_ATHLETE, q, k=10, vector=vector, params=EXACT, exact_vectors=True
                )
                exact_ids = {h.message_id for h in exact.hits}
                for factor, order in VARIANTS:
                    recall_large.VECTOR_SCAN_FACTOR = factor
                    recall_large.HNSW_SETTINGS_SQL = settings_sql.replace("relaxed_order", order)
                    started = time.perf_counter()
                    result = await search_messages(stores.pool, BIG_ATHLETE, q, k=10, vector=vector)
                    ms[(factor, order)].append((time.perf_counter() - started) * 1000)
                    hits = {h.message_id for h in result.hits}
                    found[(factor, order)].append(len(hits & exact_ids) / max(len(exact_ids), 1))
        finally:
            recall_large.VECTOR_SCAN_FACTOR, recall_large.HNSW_SETTINGS_SQL = default[0], settings_sql
    return {v: {"recall_at_10": statistics.fmean(found[v]), **percentiles(ms[v])} for v in VARIANTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", help="the kept database (default: <DATABASE_URL's database>_recall_scale)")
    parser.add_argument("--questions", type=int, default=50)
    args = parser.parse_args(argv)
    base = get_settings().database_url
    name = args.database or f"{psycopg.conninfo.conninfo_to_dict(base).get('dbname') or 'coach'}_recall_scale"
    url = scale_url(base, name)
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM archive_term_counts WHERE athlete_id = %s", (BIG_ATHLETE,)).fetchone():
            parser.error(f"{name} has no {BIG_ATHLETE}: run `benchmarks/recall_scale.py --keep` first")
    _, questions = locomo_texts(DEFAULT_DATA)
    rng = random.Random(17)
    picks = [rng.choice(questions) for _ in range(args.questions)]
    figures = asyncio.run(measure(url, picks))
    base_fig = figures[(recall_large.VECTOR_SCAN_FACTOR, "relaxed_order")]
    print(f"{BIG_ATHLETE} in {name}, {args.questions} questions, k=10, query embedding given:")
    print(f"  {'rows read':>9} {'order':14} {'recall@10':>9} {'p50 ms':>7} {'p95 ms':>7}  p50 / p95 vs default")
    for (factor, order), f in figures.items():
        print(
            f"  {factor * RankingParams().depth:9d} {order:14} {f['recall_at_10']:9.3f} {f['p50']:7.1f} {f['p95']:7.1f}"
            f"  {f['p50'] / base_fig['p50']:.2f}x / {f['p95'] / base_fig['p95']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
