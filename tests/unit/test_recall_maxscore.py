"""MaxScore's two statements (`memory.maxscore.lexical_scores`) give brute force's top `depth`, on random corpora.

The statements (`_scores`) are replaced by their definitions over an in-memory corpus: the first scores whole the
`read_limit` messages best on the `read` words; the second scores whole the messages holding
an `essential` word whose essential score plus `rest_bound` reaches `theta` (at most `candidates`, best on the
essential words first). Term frequency: own + half the context's. What is tested is the loop: which words each
statement reads, and the merge.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory import maxscore
from memory.maxscore import idf, lexical_scores

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


def bounds_of(corpus: list[Message], idfs: dict[str, float]) -> dict[str, float]:
    return {t: idfs[t] * max((weight(tf(m, t)) for m in corpus if tf(m, t)), default=0.0) for t in idfs}


def run(
    corpus: list[Message],
    idfs: dict[str, float],
    depth: int,
    calls: list[dict[str, Any]],
    candidates: int | None = None,
) -> dict[str, float]:
    ids = [f"{i:04d}" for i in range(len(corpus))]  # in the order the statements break ties

    def part(m: Message, words: list[str]) -> float:
        return sum(idfs[t] * weight(tf(m, t)) for t in words if tf(m, t))

    def best(scored: dict[str, float], n: int | None) -> dict[str, float]:
        return dict(sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:n])

    async def fake_scores(conn: Any, statement: str, params: dict[str, Any]) -> dict[str, float]:
        calls.append(params)
        every = list(idfs)
        if statement is maxscore._SCORE_READ_SQL:
            holding = {i: part(m, params["read"]) for i, m in zip(ids, corpus, strict=True) if part(m, params["read"])}
            read = set(best(holding, params["read_limit"]))
        else:
            essential = {
                i: p for i, m in zip(ids, corpus, strict=True) if (p := part(m, params["essential"]))
                and p + params["rest_bound"] >= params["theta"]
            }  # fmt: skip
            read = set(best(essential, params["candidates"]))
        return best({i: part(corpus[int(i)], every) for i in read if part(corpus[int(i)], every)}, params["depth"])

    bounds = bounds_of(corpus, idfs)
    dfs = {t: sum(1 for m in corpus if tf(m, t)) for t in idfs}
    with pytest.MonkeyPatch.context() as patch:  # per call (a function-scoped fixture would be shared by examples)
        patch.setattr(maxscore, "_scores", fake_scores)
        return asyncio.run(
            lexical_scores(None, {"depth": depth, "context_weight": 0.5}, idfs, bounds, dfs, candidates)  # type: ignore[arg-type]
        )


@settings(max_examples=300, deadline=None)
@given(corpus=corpora, query=st.sets(st.sampled_from("abcdef"), min_size=1), depth=st.integers(1, 12))
def test_maxscore_gives_the_brute_force_top(corpus: list[Message], query: set[str], depth: int) -> None:
    n = len(corpus)
    idfs = {t: idf(n, df) for t in query if (df := sum(1 for m in corpus if tf(m, t)))}
    if not idfs:
        return
    calls: list[dict[str, Any]] = []
    got = run(corpus, idfs, depth, calls)
    brute = sorted(
        (s for m in corpus if (s := sum(idfs[t] * weight(tf(m, t)) for t in idfs if tf(m, t)))), reverse=True
    )
    assert sorted(got.values(), reverse=True) == pytest.approx(brute[:depth])
    bounds = bounds_of(corpus, idfs)
    assert calls[0]["read"][0] == min(idfs, key=lambda t: (-bounds[t], -idfs[t], t))  # the highest bound first
    if len(calls) > 1:  # what the second statement leaves out cannot reach the first's depth-th best score
        assert sum(bounds[t] for t in calls[1]["rest"]) <= calls[1]["theta"]


def test_the_common_words_are_left_out_once_the_top_is_full() -> None:
    corpus: list[Message] = [({"rare": 1, "common": 1}, {})] * 3 + [({"mid": 1, "common": 1}, {})] * 50
    corpus += [({"common": 1}, {})] * 100
    n = len(corpus)
    idfs = {"rare": idf(n, 3), "mid": idf(n, 50), "common": idf(n, 153)}
    calls: list[dict[str, Any]] = []
    got = run(corpus, idfs, 3, calls)
    assert calls[0]["read"] == ["rare"]
    assert calls[1]["essential"] == ["rare"] and calls[1]["rest"] == ["common", "mid"]  # their lists are not read
    assert list(got.values()) == pytest.approx([idfs["rare"] * weight(1) + idfs["common"] * weight(1)] * 3)


@settings(max_examples=200, deadline=None)
@given(corpus=corpora, query=st.sets(st.sampled_from("abcdef"), min_size=1), depth=st.integers(1, 12),
       budget=st.integers(1, 70))  # fmt: skip
def test_a_budget_of_candidates_gives_true_scores_and_the_exact_top_when_it_covers_the_corpus(
    corpus: list[Message], query: set[str], depth: int, budget: int
) -> None:
    n = len(corpus)
    idfs = {t: idf(n, df) for t in query if (df := sum(1 for m in corpus if tf(m, t)))}
    if not idfs:
        return
    calls: list[dict[str, Any]] = []
    got = run(corpus, idfs, depth, calls, candidates=budget)
    truth = {
        f"{i:04d}": s for i, m in enumerate(corpus) if (s := sum(idfs[t] * weight(tf(m, t)) for t in idfs if tf(m, t)))
    }
    assert all(got[i] == pytest.approx(truth[i]) for i in got) and len(got) <= depth
    assert all(c["candidates"] == budget for c in calls[1:])
    if budget >= n:
        assert sorted(got.values(), reverse=True) == pytest.approx(sorted(truth.values(), reverse=True)[:depth])
