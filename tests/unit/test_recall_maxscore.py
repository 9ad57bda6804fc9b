"""MaxScore's rounds (`memory.recall_large.lexical_scores`) give brute force's top `depth`, on random corpora.

The statement that scores messages (`_scores`) is replaced by its definition over an in-memory corpus: the messages
holding a word of `own` in their own words, or a word of `context` in their neighbours' (the context field), each
scored over all the query's words (term frequency: own + half the context's). What is tested is the loop: which
lists are read, when it stops, and the merge of the rounds.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory import recall_large
from memory.recall_large import Field, idf, lexical_scores

K1 = 1.2
Message = tuple[dict[str, int], dict[str, int]]
"""A message's own words and its context's, each {word: count}."""


def test_idf_is_bm25s_with_the_plus_one_inside_the_log() -> None:
    assert idf(100, 10) == math.log(1 + 90.5 / 10.5)
    assert idf(100, 100) > 0  # a word in every message still counts a little (Lucene's form, never negative)


def weight(tf: float) -> float:
    return tf * (K1 + 1) / (tf + K1)  # BM25's term weight, lengths equal (b's factor 1)


def tf(m: Message, t: str) -> float:
    return m[0].get(t, 0) + 0.5 * m[1].get(t, 0)


words = st.dictionaries(st.sampled_from("aabbbcccdef"), st.integers(1, 3), max_size=4)
corpora = st.lists(st.tuples(words, words), min_size=1, max_size=60)


def bounds_of(corpus: list[Message], idfs: dict[str, float]) -> dict[tuple[str, Field], float]:
    bounds: dict[tuple[str, Field], float] = {}
    for t in idfs:
        own = [weight(tf(m, t)) for m in corpus if t in m[0]]
        context = [weight(tf(m, t)) for m in corpus if t in m[1] and t not in m[0]]
        bounds[(t, "own")] = idfs[t] * max(own, default=0.0)
        bounds[(t, "context")] = idfs[t] * max(context, default=0.0)
    return bounds


def run(corpus: list[Message], idfs: dict[str, float], depth: int, read: list[tuple[str, str]]) -> dict[str, float]:
    def score(m: Message) -> float:
        return sum(idfs[t] * weight(tf(m, t)) for t in idfs if tf(m, t))

    async def fake_scores(conn: Any, statement: str, params: dict[str, Any]) -> dict[str, float]:
        read.extend([(t, "own") for t in params["own"]] + [(t, "context") for t in params["context"]])
        hits = {
            str(i): score(m)
            for i, m in enumerate(corpus)
            if any(t in m[0] for t in params["own"]) or any(t in m[1] for t in params["context"])
        }
        return dict(sorted(hits.items(), key=lambda kv: -kv[1])[: params["depth"]])

    bounds = bounds_of(corpus, idfs)
    dfs = {t: sum(1 for m in corpus if tf(m, t)) for t in idfs}
    with pytest.MonkeyPatch.context() as patch:  # per call (a function-scoped fixture would be shared by examples)
        patch.setattr(recall_large, "_scores", fake_scores)
        return asyncio.run(lexical_scores(None, {"depth": depth, "context_weight": 0.5}, idfs, bounds, dfs))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(corpus=corpora, query=st.sets(st.sampled_from("abcdef"), min_size=1), depth=st.integers(1, 12))
def test_maxscore_rounds_give_the_brute_force_top(corpus: list[Message], query: set[str], depth: int) -> None:
    n = len(corpus)
    idfs = {t: idf(n, df) for t in query if (df := sum(1 for m in corpus if tf(m, t)))}
    if not idfs:
        return
    read: list[tuple[str, str]] = []
    got = run(corpus, idfs, depth, read)
    brute = sorted(
        (s for m in corpus if (s := sum(idfs[t] * weight(tf(m, t)) for t in idfs if tf(m, t)))), reverse=True
    )
    assert sorted(got.values(), reverse=True) == pytest.approx(brute[:depth])
    order = sorted(bounds_of(corpus, idfs).items(), key=lambda kv: (-kv[1], -idfs[kv[0][0]], kv[0]))
    assert (
        set(read)
        == {r for r, bound in order if bound > 0}.intersection(  # the highest bounds first
            [r for r, bound in order if bound > 0][: len(read)]
        )
    )


def test_a_common_word_and_the_contexts_are_not_read_once_the_top_is_full() -> None:
    corpus: list[Message] = [({"rare": 1, "common": 1}, {})] * 3 + [({"common": 1}, {"rare": 1})] * 50
    n = len(corpus)
    idfs = {"rare": idf(n, 53), "common": idf(n, 53)}
    idfs["rare"] += 1.0  # rarer in the query's eyes
    read: list[tuple[str, str]] = []
    run(corpus, idfs, 3, read)
    assert read == [("rare", "own")]
