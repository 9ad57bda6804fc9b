"""`memory.posting_blocks.bm25_top` gives brute force's BM25 top `depth`, on random postings."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.posting_blocks import Postings, bm25_top

K1, B, CONTEXT_WEIGHT, AVGDL = 1.2, 0.4, 0.5, 7.5
posting = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 20), st.integers(0, 40)).filter(
    lambda p: p[0] + p[1] > 0
)
word_postings = st.dictionaries(st.integers(0, 29), posting, max_size=30)  # ordinal -> (tf_own, tf_ctx, lengths)


def as_postings(by_ordinal: dict[int, tuple[int, int, int, int]]) -> Postings:
    ordinals = sorted(by_ordinal)
    column = [np.array([by_ordinal[o][i] for o in ordinals], dtype=np.float64) for i in range(4)]
    return Postings(np.array(ordinals, dtype=np.int64), *column)


@settings(max_examples=200, deadline=None)
@given(
    words=st.dictionaries(st.sampled_from("abcd"), word_postings, min_size=1, max_size=4),
    idf_values=st.lists(st.floats(0.01, 8.0), min_size=4, max_size=4),
    dropped=st.sets(st.integers(0, 29), max_size=8),
    depth=st.integers(1, 12),
)
def test_the_top_is_brute_forces(
    words: dict[str, dict[int, tuple[int, int, int, int]]], idf_values: list[float], dropped: set[int], depth: int
) -> None:
    idfs = dict(zip("abcd", idf_values, strict=True))
    scores: dict[int, float] = {}
    for word, by_ordinal in words.items():  # in the same order as bm25_top sums them
        for o in range(30):
            if o not in by_ordinal:
                continue
            tf_own, tf_ctx, own_len, ctx_len = by_ordinal[o]
            tf = tf_own + CONTEXT_WEIGHT * tf_ctx
            dl = own_len + CONTEXT_WEIGHT * ctx_len
            scores[o] = scores.get(o, 0.0) + idfs[word] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / AVGDL))
    expected = sorted(((o, s) for o, s in scores.items() if o not in dropped and s > 0), key=lambda x: (-x[1], x[0]))
    top = bm25_top(
        {w: as_postings(p) for w, p in words.items()}, idfs, k1=K1, b=B, context_weight=CONTEXT_WEIGHT, avgdl=AVGDL,
        size=30, dropped=sorted(dropped), depth=depth,
    )  # fmt: skip
    assert [o for o, _ in top] == [o for o, _ in expected[:depth]]
    assert [s for _, s in top] == [s for _, s in expected[:depth]]
