"""Recall benchmark on LoCoMo: hybrid (BM25 + MiniLM) versus full-text-only conversation recall, in one process.

Each LoCoMo conversation becomes one athlete (`locomo-<hash of the file>-<sample_id>`), each of its sessions one
session (`session_N`), imported through `ConversationMemory.import_transcript`, the code behind `coach
import-transcript` (which embeds the messages): one record per turn, `{"role": "user" for the first speaker else
"assistant", "content": "<speaker>: <text>" plus " (<blip_caption>)" for a shared photo, "ts": the session's date
plus one second per turn (keeps the order), "id": dia_id}`. Every question of category 1-4 with evidence is asked
with `ConversationMemory.recall(athlete, question, k=10)`, the code behind the `search_conversation` tool: once
with the local embedding model (hybrid ranking) and once by a memory without an embedder on the same pool (the
full-text ranking a deployment without pgvector or without a model gets).

Scores (definitions of the data's README): evidence strings are split on ';' and whitespace, and ids that name no
turn of the conversation are dropped (a question left without evidence is skipped). recall@k is the share of a
question's evidence ids among the first k hits, averaged over questions; hit@5 the share of questions with at
least one evidence id in the first 5. Latency: wall time of each `recall` call (hybrid: query embedding
included, reported separately too), p50/p95.

Each question is also ranked with the steps of the default ranking taken away, one table row per step (step 0:
the message's own words and vector; step 1: + the contextual lexical field, `memory.archive_context`; step 2: +
session-level ranking, the default), with per-category recall for every run, and the default ranking once more from
kept term statistics (`memory.term_stats`, the path of archives of 2,000 messages or more, `memory.recall_large`).
`--sweep` also ranks every question
with a few other `RankingParams` (fusion weight, BM25 `b`, candidate depth). The athletes are deleted at the end
unless `--keep` (a kept import makes the next run skip the writes and the embedding).

Usage: ``uv run python benchmarks/recall_locomo.py [--data FILE] [--results-out FILE.jsonl] [--json] [--sweep]
[--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_data import LOCOMO_DEV, require_locomo
from memory.archive import Archive
from memory.conversation import ConversationMemory
from memory.recall import RankingParams, SearchResult
from memory.term_stats import refresh
from records.stores import Stores, open_stores

DEFAULT_DATA = LOCOMO_DEV
CATEGORIES = (1, 2, 3, 4)
K = 10
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%H:%M on %d %B, %Y")


@dataclass
class Question:
    """One question asked of one conversation."""

    sample_id: str
    athlete_id: str
    index: int
    text: str
    category: int
    evidence: list[str]


@dataclass
class Run:
    """Scores and latencies of one ranking over all questions."""

    name: str
    ranking: str = ""
    recall5: list[float] = field(default_factory=list)
    recall10: list[float] = field(default_factory=list)
    hit5: list[float] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    retrieved: list[list[str]] = field(default_factory=list)

    def add(self, q: Question, result: SearchResult, ms: float) -> None:
        """Score one question's hits."""
        ids = [h.external_id or "" for h in result.hits]
        evidence = set(q.evidence)
        self.ranking = result.ranking
        self.recall5.append(len(evidence & set(ids[:5])) / len(evidence))
        self.recall10.append(len(evidence & set(ids[:10])) / len(evidence))
        self.hit5.append(1.0 if evidence & set(ids[:5]) else 0.0)
        self.categories.append(q.category)
        self.latency_ms.append(ms)
        self.retrieved.append(ids)

    def summary(self) -> dict[str, Any]:
        """Means overall and per category, latency percentiles."""

        def scores(rows: Sequence[int]) -> dict[str, float | int]:
            return {
                "n": len(rows),
                "recall@5": _mean([self.recall5[i] for i in rows]),
                "recall@10": _mean([self.recall10[i] for i in rows]),
                "hit@5": _mean([self.hit5[i] for i in rows]),
            }

        everything = list(range(len(self.categories)))
        return {
            "name": self.name,
            "ranking": self.ranking,
            **scores(everything),
            "by_category": {
                str(c): scores([i for i in everything if self.categories[i] == c])
                for c in CATEGORIES
                if c in self.categories
            },
            "latency_ms": {"p50": _percentile(self.latency_ms, 50), "p95": _percentile(self.latency_ms, 95)},
        }


def parse_session_date(text: str) -> datetime:
    """The date of a LoCoMo session ("1:56 pm on 8 May, 2023") as an aware datetime (UTC when none is given)."""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    import dateparser

    parsed = dateparser.parse(text, settings={"RETURN_AS_TIMEZONE_AWARE": True, "TIMEZONE": "UTC"})
    if parsed is None:
        raise ValueError(f"cannot read the session date {text!r}")
    return parsed


def transcripts(sample: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The conversation's sessions as `coach import-transcript` records, keyed by session id (`session_N`)."""
    conv = sample["conversation"]
    first_speaker = conv.get("speaker_a")
    sessions: dict[str, list[dict[str, Any]]] = {}
    numbers = sorted(int(m.group(1)) for key in conv if (m := re.fullmatch(r"session_(\d+)", key)))
    for n in numbers:
        turns = conv[f"session_{n}"]
        if not turns:
            continue
        start = parse_session_date(conv[f"session_{n}_date_time"])
        records = []
        for i, turn in enumerate(turns):
            content = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                content += f" ({turn['blip_caption']})"
            records.append(
                {
                    "role": "user" if turn["speaker"] == (first_speaker or turns[0]["speaker"]) else "assistant",
                    "content": content,
                    "ts": (start + timedelta(seconds=i)).isoformat(),
                    "id": turn["dia_id"],
                }
            )
        sessions[f"session_{n}"] = records
    return sessions


def questions(sample: dict[str, Any], athlete_id: str, turn_ids: set[str]) -> list[Question]:
    """The conversation's category 1-4 questions whose evidence names at least one of its turns."""
    out = []
    for index, qa in enumerate(sample.get("qa", [])):
        if qa.get("category") not in CATEGORIES:
            continue
        evidence: list[str] = []
        for item in qa.get("evidence") or []:
            for part in re.split(r"[;\s]+", str(item)):
                if part in turn_ids and part not in evidence:
                    evidence.append(part)
        if evidence:
            out.append(Question(sample["sample_id"], athlete_id, index, qa["question"], qa["category"], evidence))
    return out


async def import_all(deps: Stores, data: list[dict[str, Any]], tag: str) -> tuple[list[Question], dict[str, Any]]:
    """Import every conversation (idempotent) and return its questions and the import's figures."""
    all_questions: list[Question] = []
    written = skipped = 0
    started = time.perf_counter()
    for sample in data:
        athlete_id = f"locomo-{tag}-{re.sub(r'[^A-Za-z0-9_.@-]', '_', str(sample['sample_id']))}"[:128]
        turn_ids: set[str] = set()
        for session_id, records in transcripts(sample).items():
            result = await deps.memory.import_transcript(athlete_id, session_id, records)
            written += result.written
            skipped += result.skipped
            turn_ids.update(str(r["id"]) for r in records)
        all_questions += questions(sample, athlete_id, turn_ids)
        print(f"  imported {sample['sample_id']}: {len(turn_ids)} turns", file=sys.stderr)
    seconds = time.perf_counter() - started
    return all_questions, {
        "written": written,
        "skipped": skipped,
        "seconds": seconds,
        "messages_per_s": written / seconds if written else None,
    }


async def ask(memory: ConversationMemory, qs: list[Question], name: str) -> Run:
    run = Run(name)
    for q in qs:
        started = time.perf_counter()
        result = await memory.recall(q.athlete_id, q.text, k=K)
        run.add(q, result, (time.perf_counter() - started) * 1000)
    return run


async def ask_with(archive: Archive, vectors: list[list[float]], qs: list[Question], name: str) -> Run:
    """Rank with the archive's current `RankingParams`, reusing the query embeddings (for `--sweep`)."""
    run = Run(name)
    for q, vector in zip(qs, vectors, strict=True):
        started = time.perf_counter()
        result = await archive.search_ranked(q.athlete_id, q.text, k=K, query_embedding=vector)
        run.add(q, result, (time.perf_counter() - started) * 1000)
    return run


async def variants(deps: Stores, qs: list[Question], sweep: bool) -> list[Run]:
    """Rank every question again with the steps of the default ranking taken away (and, with `sweep`, more knobs)."""
    archive, embedder = deps.memory.archive, deps.memory.embedder
    assert archive is not None and embedder is not None
    vectors = [await embedder.embed_query(q.text) for q in qs]
    default = archive.ranking
    steps = [
        ("step 0: own words only, no sessions", replace(default, context_weight=0.0, session_weight=0.0)),
        ("step 1: + contextual lexical field", replace(default, session_weight=0.0)),
        ("step 2: + session-level ranking (default)", default),
    ]
    if not sweep:
        variants = steps
    else:
        variants = steps + [
            ("BM25 only (weight 1)", replace(default, lexical_weight=1.0)),
            ("vector only (weight 0)", replace(default, lexical_weight=0.0)),
            ("weight 0.2", replace(default, lexical_weight=0.2)),
            ("weight 0.5", replace(default, lexical_weight=0.5)),
            ("BM25 b=0.75", replace(default, b=0.75)),
            ("depth 10", replace(default, depth=10)),
            ("depth 200", replace(default, depth=200)),
        ]
    runs = []
    try:
        for name, params in variants:
            archive.ranking = params
            runs.append(await ask_with(archive, vectors, qs, f"{name}: {_describe(params)}"))
    finally:
        archive.ranking = default
    for athlete_id in sorted({q.athlete_id for q in qs}):  # as if each archive were large (memory.term_stats)
        await refresh(archive.pool, athlete_id)
    try:
        runs.append(await ask_with(archive, vectors, qs, "default, ranked from kept statistics (large-archive path)"))
    finally:
        await delete_statistics(deps, {q.athlete_id for q in qs})
    return runs


async def delete_statistics(deps: Stores, athlete_ids: set[str]) -> None:
    assert deps.memory.pool is not None
    async with deps.memory.pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM archive_term_df WHERE athlete_id = ANY(%s)", (sorted(athlete_ids),))
        await conn.execute("UPDATE archive_term_counts SET n = NULL WHERE athlete_id = ANY(%s)", (sorted(athlete_ids),))


async def delete_athletes(deps: Stores, athlete_ids: set[str]) -> None:
    assert deps.memory.pool is not None
    async with deps.memory.pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM messages WHERE athlete_id = ANY(%s)", (sorted(athlete_ids),))
        await conn.execute("DELETE FROM conversations WHERE athlete_id = ANY(%s)", (sorted(athlete_ids),))
        for table in ("archive_term_df", "archive_term_counts"):
            await conn.execute(f"DELETE FROM {table} WHERE athlete_id = ANY(%s)", (sorted(athlete_ids),))  # type: ignore[arg-type]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    raw = args.data.read_bytes()
    data = json.loads(raw)
    tag = hashlib.sha256(raw).hexdigest()[:10]
    athletes: set[str] = set()
    async with open_stores() as deps:
        try:
            if deps.memory.embedder is None or not await deps.memory.archive.vectors_enabled():  # type: ignore[union-attr]
                print("warning: no embedder or no pgvector: both runs are full-text", file=sys.stderr)
            print(f"importing {len(data)} conversations from {args.data}", file=sys.stderr)
            qs, imported = await import_all(deps, data, tag)
            athletes = {q.athlete_id for q in qs}
            full_text_memory = ConversationMemory(None, deps.memory.pool, pg_timeout_s=deps.memory.pg_timeout_s)
            print(f"asking {len(qs)} questions", file=sys.stderr)
            full_text = await ask(full_text_memory, qs, "full-text only (no embedder; context + sessions)")
            await full_text_memory.close()
            hybrid = await ask(deps.memory, qs, "default: hybrid + context + sessions")
            embed_ms = []
            if deps.memory.embedder is not None:
                for q in qs[:200]:
                    started = time.perf_counter()
                    await deps.memory.embedder.embed_query(q.text)
                    embed_ms.append((time.perf_counter() - started) * 1000)
            runs = [hybrid, full_text]
            if deps.memory.embedder is not None:
                runs += await variants(deps, qs, args.sweep)
            if args.results_out:
                with args.results_out.open("w", encoding="utf-8") as f:
                    for q, ids in zip(qs, hybrid.retrieved, strict=True):
                        f.write(
                            json.dumps({"sample_id": q.sample_id, "question_index": q.index, "retrieved": ids}) + "\n"
                        )
            return {
                "data": str(args.data),
                "conversations": len(data),
                "questions": len(qs),
                "import": imported,
                "ranking_params": _describe(deps.memory.archive.ranking),  # type: ignore[union-attr]
                "query_embedding_ms": {"p50": _percentile(embed_ms, 50), "p95": _percentile(embed_ms, 95)},
                "runs": [r.summary() for r in runs],
            }
        finally:
            if athletes and not args.keep:
                await delete_athletes(deps, athletes)


def print_report(report: dict[str, Any]) -> None:
    imp = report["import"]
    print(
        f"LoCoMo recall: {report['data']}: {report['conversations']} conversations, {report['questions']} questions"
        f" (categories 1-4 with evidence); import wrote {imp['written']} messages"
        + (
            f" in {imp['seconds']:.1f} s ({imp['messages_per_s']:.0f} messages/s, embeddings included)"
            if imp["written"]
            else " (already there)"
        )
    )
    print(f"ranking: {report['ranking_params']}")
    header = (
        f"{'run':58s} {'ranking':9s} {'recall@5':>8s} {'recall@10':>9s} {'hit@5':>6s} {'p50 ms':>7s} {'p95 ms':>7s}"
    )
    print(header)
    print("-" * len(header))
    for run in report["runs"]:
        lat = run["latency_ms"]
        print(
            f"{run['name'][:58]:58s} {run['ranking']:9s} {run['recall@5']:8.3f} {run['recall@10']:9.3f}"
            f" {run['hit@5']:6.3f} {lat['p50']:7.1f} {lat['p95']:7.1f}"
        )
    print()
    print("by category (recall@5 / recall@10 / hit@5, n):")
    for run in report["runs"]:
        cells = [
            f"c{c}: {s['recall@5']:.3f}/{s['recall@10']:.3f}/{s['hit@5']:.3f} (n={s['n']})"
            for c, s in run["by_category"].items()
        ]
        print(f"  {run['name'][:40]:40s} " + "  ".join(cells))
    emb = report["query_embedding_ms"]
    print(f"query embedding alone (MiniLM, first 200 questions): p50 {emb['p50']:.1f} ms, p95 {emb['p95']:.1f} ms")
    print("Reference (LoCoMo paper, DRAGON over dialog turns): recall@5 0.588, recall@10 0.675.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"LoCoMo JSON file (default {DEFAULT_DATA})")
    parser.add_argument("--results-out", type=Path, help="write one JSON line per question (hybrid ranking)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--sweep", action="store_true", help="also rank with other fusion weights, b and depths")
    parser.add_argument("--keep", action="store_true", help="keep the imported athletes (next run skips the import)")
    args = parser.parse_args(argv)
    require_locomo(args.data, parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def _describe(p: RankingParams) -> str:
    weights = f"{p.lexical_weight} x BM25/max + {1 - p.lexical_weight:.1f} x cosine"
    steps = f"context {p.context_weight}, session {p.session_weight}"
    return f"BM25 k1={p.k1} b={p.b}, {weights}, depth {p.depth}, {steps}"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    sys.exit(main())
