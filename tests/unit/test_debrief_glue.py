"""The ride-to-facts policy, the offline debrief and the exported graph: no servers."""

from __future__ import annotations

import pytest

from llm.debrief_writer import offline_debrief
from memory.athlete_store import validate_athlete_id
from memory.errors import InvalidAthleteIdError
from training.debrief import ride_fact_changes

POWER_METRICS = {
    "moving_s": 3600.0,
    "distance_m": 36_000.0,
    "normalized_power_w": 250.0,
    "intensity_factor": 1.0,
    "tss": 100.0,
    "ftp_used_w": 250.0,
    "ftp_source": "device",
    "ftp_estimate_w": 249.6,
    "best_20min_w": 262.7,
    "mmp_w": {"5s": 800.4, "1min": 450.0, "5min": 320.0, "20min": 262.7},
    "avg_hr_bpm": 150.0,
    "aerobic_decoupling_pct": 3.2,
    "hr_tss": 90.0,
    "trimp": 120.0,
}


def test_fact_changes_from_a_power_ride():
    changes = {c.key: c for c in ride_fact_changes(POWER_METRICS)}
    assert "ftp_w" not in changes  # never 95 % of the ride's best 20 min (issue 11, B1): a dated athlete value
    assert changes["best_5s_w"].value == 800
    assert changes["best_20min_w"].value == 263
    assert "best_60min_w" not in changes  # no 60-min MMP in a 60-min ride with pauses
    assert all(c.only_if_higher for c in changes.values())


def test_no_power_no_fact_changes():
    assert ride_fact_changes({"ftp_estimate_w": None, "mmp_w": {}}) == []


def test_offline_debrief_is_labelled_and_built_from_numbers():
    ride = {"metrics": POWER_METRICS}
    text = offline_debrief(ride, {"best_5s_w": {"value": 700}}, ["best_5s_w"])
    assert text.startswith("[offline coach]")
    assert "NP 250 W, IF 1.00, TSS 100 (FTP 250 W, device)" in text
    assert "best_5s_w 800 W (was 700 W)" in text
    assert "recovered by tomorrow" in text  # TSS 100 < 150
    assert offline_debrief(ride, {"best_5s_w": {"value": 700}}, ["best_5s_w"]) == text  # deterministic


def test_offline_debrief_without_ftp_asks_for_it_and_gives_no_tss():
    m = POWER_METRICS | {"intensity_factor": None, "tss": None, "ftp_used_w": None, "tss_status": "no_ftp"}
    text = offline_debrief({"metrics": m}, {}, [])
    assert "no FTP on record, so no IF or TSS" in text and "TSS" not in text.split("no IF or TSS")[1]


def test_offline_debrief_of_heart_rate_only_ride():
    m = {k: None for k in POWER_METRICS} | {"moving_s": 5400.0, "hr_tss": 160.0, "trimp": 200.0, "mmp_w": {}}
    text = offline_debrief({"metrics": m}, {}, [])
    assert "No power in this file" in text and "hrTSS 160" in text
    assert "residual fatigue tomorrow" in text  # 150 <= 160 < 300


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "../etc", "ath;drop"])
def test_invalid_athlete_ids(bad):
    with pytest.raises(InvalidAthleteIdError):
        validate_athlete_id(bad)


def test_exported_graphs_have_no_checkpointer():
    from graphs.chat import graph as chat
    from graphs.debrief_coach import graph as debrief

    assert debrief.checkpointer is None and chat.checkpointer is None
    assert set(debrief.get_graph().nodes) >= {"load_ride", "plan_facts", "write_debrief", "store"}
    assert set(chat.get_graph().nodes) >= {"load_context", "agent", "tools", "confirm_facts", "save_turn"}


def test_chat_input_schema_holds_the_message_only():
    from graphs.chat import graph

    assert set(graph.get_input_jsonschema()["properties"]) == {"message"}


def test_a_ride_beyond_the_cp_model_shows_no_w_prime_balance_figure():
    """W′ balance below zero disproves the CP and W′ used: the debrief says so instead of showing the low point."""
    base = {"moving_s": 3600.0, "elapsed_s": 3600.0, "normalized_power_w": 250.0}
    beyond = {"status": "model_exceeded", "cp_w": 240.0, "w_prime_j": 11500.0, "source": "fitted",
              "min_j": -11500.0, "min_at_s": 1920, "min_fraction": -1.0}  # fmt: skip
    text = offline_debrief({"metrics": {**base, "w_prime_balance": beyond}}, {}, [])
    assert "low point" not in text and "-100%" not in text
    assert "beyond the W′ of 11.5 kJ above a CP of 240 W (fitted)" in text
    within = {**beyond, "status": "ok", "min_j": 5750.0, "min_fraction": 0.5}
    assert "W′ balance low point 5.8 kJ (50% of W′) at 32min" in offline_debrief(
        {"metrics": {**base, "w_prime_balance": within}}, {}, []
    )
