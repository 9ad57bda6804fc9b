"""MaxScore's choice of the words a message must hold to reach the top (`memory.recall_large.essential_terms`)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from memory.recall_large import essential_terms, idf


def test_idf_is_bm25s_with_the_plus_one_inside_the_log() -> None:
    assert idf(100, 10) == math.log(1 + 90.5 / 10.5)
    assert idf(100, 100) > 0  # a word in every message still counts a little (Lucene's form, never negative)


def test_common_words_whose_bounds_stay_under_theta_are_dropped() -> None:
    idfs = {"pottery": 5.0, "caroline": 1.2, "ride": 0.9}
    bound = 2.2  # k1 + 1 with k1 = 1.2
    assert essential_terms(idfs, bound, theta=0.0) == ["pottery", "caroline", "ride"]
    assert essential_terms(idfs, bound, theta=(0.9 + 1.2) * bound) == ["pottery"]  # the two bounds reach theta
    assert essential_terms(idfs, bound, theta=(0.9 + 1.2) * bound - 0.01) == ["pottery", "caroline"]
    assert essential_terms(idfs, bound, theta=100.0) == []


@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.floats(0.01, 20), min_size=1, max_size=8),
    st.floats(0, 100),
)
def test_a_message_without_an_essential_word_scores_below_theta(idfs: dict[str, float], theta: float) -> None:
    bound = 2.2
    kept = essential_terms(idfs, bound, theta)
    dropped = set(idfs) - set(kept)
    assert sum(idfs[t] * bound for t in dropped) <= theta  # the best a message of dropped words only can score
    assert all(idfs[k] >= idfs[d] for k in kept for d in dropped)  # the commonest go first
