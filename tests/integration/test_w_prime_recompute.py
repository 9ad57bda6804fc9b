"""A ride's W′ balance follows the CP and W′ valid at its start, from its stored 1 Hz power (issue 11)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from records.athlete_values import set_value
from records.stores import Stores
from tests.conftest import ride_path
from training.athlete_model import w_prime_figures
from training.debrief import ride_record
from training.metrics import compute_metrics
from training.power_curve import zero_filled_power_w
from training.power_series import power_series_w, unpack_power_series
from training.ride_files import read_ride
from training.w_prime import summarise_w_prime_balance, w_prime_balance

pytestmark = pytest.mark.integration

RIDE = "fitparse_Edge810-Vector-2013-08-16.fit"


async def test_w_prime_balance_is_recomputed_after_a_confirmed_cp(deps: Stores, athlete_id: str) -> None:
    ride = read_ride(ride_path(RIDE))
    record = ride_record(ride, compute_metrics(ride, ftp_w=250.0))
    assert record.power_1hz_w is not None
    stored_power = unpack_power_series(record.power_1hz_w)
    rounded = power_series_w(ride.samples)
    assert rounded is not None and np.array_equal(stored_power, rounded)
    old = dataclasses.replace(  # a row stored before the series was kept, with a debrief's W' figure
        record,
        ride_id="old-row",
        start_time=record.start_time - timedelta(days=1),
        end_time=None,
        power_1hz_w=None,
        metrics={**record.metrics, "w_prime_balance": {"cp_w": 200.0, "w_prime_j": 15000.0, "min_j": 1.0}},
    )
    for r in (old, record):
        assert await deps.rides.save_debriefed_ride(athlete_id, r, [], "test ride", "offline") is not None

    valid_from = record.start_time - timedelta(days=30)
    await set_value(deps.athlete_store, athlete_id, "cp_w", 230.0, valid_from)
    await set_value(deps.athlete_store, athlete_id, "w_prime_j", 16000.0, valid_from)

    stored = await deps.rides.get_ride(athlete_id, record.ride_id)
    assert stored is not None and stored.power_1hz_w == record.power_1hz_w
    figures = stored.metrics["w_prime_balance"]
    assert figures == w_prime_figures(rounded, 230.0, 16000.0, "confirmed")
    assert figures["cp_w"] == 230.0 and figures["w_prime_j"] == 16000.0 and figures["source"] == "confirmed"
    samples = ride.samples  # the balance on the unrounded samples differs by little
    assert samples.power_w is not None
    exact = summarise_w_prime_balance(
        w_prime_balance(
            zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded), 230.0, 16000.0
        ),
        16000.0,
    )
    assert exact is not None and figures["min_j"] == pytest.approx(exact.min_j, abs=160.0)

    frozen = await deps.rides.get_ride(athlete_id, "old-row")
    assert frozen is not None and frozen.metrics["w_prime_status"] == "as_debriefed"
    assert frozen.metrics["w_prime_balance"]["cp_w"] == 200.0
