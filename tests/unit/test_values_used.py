"""`athlete_values_used` after a re-score: current values, except for figures that were not recomputed."""

from __future__ import annotations

from datetime import UTC, datetime

from training.debrief import HR_VALUE_KEYS, refreshed_values_used, values_used
from training.scoring import DatedValue

T0, T1 = datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 6, 1, tzinfo=UTC)


def test_recomputed_figures_show_the_current_values_frozen_ones_their_debriefs() -> None:
    then = {"ftp_w": DatedValue(200.0, "device", T0, {}), "lthr_bpm": DatedValue(160.0, "fitted", T0, {})}
    now = {
        "ftp_w": DatedValue(260.0, "confirmed", T1, {}),
        "lthr_bpm": DatedValue(170.0, "confirmed", T1, {}),
        "timezone": "Europe/Paris",  # not a dated value: not listed
    }
    stored = values_used(then)
    assert stored["ftp_w"] == {"value": 200.0, "source": "device", "valid_from": "2019-01-01T00:00:00+00:00"}
    assert refreshed_values_used(stored, now, frozen=frozenset()) == values_used(now)
    kept = refreshed_values_used(stored, now, frozen=HR_VALUE_KEYS)  # a ride without histograms
    assert kept["ftp_w"]["value"] == 260.0 and kept["lthr_bpm"] == stored["lthr_bpm"]
    assert set(kept) == {"ftp_w", "lthr_bpm"}
