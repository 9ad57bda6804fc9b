"""Client-controlled inputs checked at the boundary: time zones, `max_rides`, answers to questions, run requests.

The graphs, the command line and the API use these checks (`training.dates.validate_timezone`, `graphs.inputs`,
`server.auth`); the integration and end-to-end tests run them through the real commands and server.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext

from graphs.context import Context
from graphs.inputs import InvalidAnswerError, InvalidInputError, check_max_rides, check_run_request, read_decisions
from server import auth
from training.dates import InvalidTimezoneError, resolve_day, validate_timezone, zone_info

BAD_ZONES = ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", " UTC", "UTC+3", "localtime", None, 5, ["UTC"]]


@pytest.mark.parametrize("tz", BAD_ZONES)
def test_unknown_time_zones_are_refused_with_one_code(tz: Any) -> None:
    with pytest.raises(InvalidTimezoneError) as exc:
        validate_timezone(tz)
    assert exc.value.code == "invalid_timezone" and "unknown time zone" in str(exc.value)
    with pytest.raises(InvalidTimezoneError):
        Context(athlete_id="a", timezone=tz)
    with pytest.raises(InvalidTimezoneError):
        zone_info(tz)


def test_known_time_zones_pass_and_a_wrong_case_gets_a_hint() -> None:
    for tz in ("UTC", "Europe/Paris", "America/Los_Angeles", "Etc/GMT+3"):
        assert validate_timezone(tz) == tz and Context(timezone=tz).timezone == tz
    with pytest.raises(InvalidTimezoneError, match="did you mean 'Europe/Paris'"):
        validate_timezone("europe/paris")
    with pytest.raises(InvalidTimezoneError):  # the date helpers refuse the same way
        resolve_day("yesterday", tz="Mars/Olympus")


@pytest.mark.parametrize("value", ["abc", "5", 2.5, True, 0, -3, 10**9, None, [1]])
def test_max_rides_must_be_a_small_positive_integer(value: Any) -> None:
    with pytest.raises(InvalidInputError) as exc:
        check_max_rides(value)
    assert exc.value.code == "invalid_max_rides"


def test_max_rides_passes() -> None:
    assert check_max_rides(1) == 1 and check_max_rides(20) == 20


def test_answers_that_read() -> None:
    assert read_decisions(True, [3, 4]) == {3: "accept", 4: "accept"}
    assert read_decisions(" No ", [3]) == {3: "reject"}
    assert read_decisions("accept", [3]) == {3: "accept"}
    assert read_decisions({"3": "yes", 4: False}, [3, 4]) == {3: "accept", 4: "reject"}
    assert read_decisions({"4": "reject"}, [3, 4]) == {4: "reject"}  # 3 stays pending


@pytest.mark.parametrize(
    "answer", [{"abc": True}, {"99": True}, {}, {"3": "maybe"}, {"3": 1}, "maybe", 1, None, [True], {"²": True}]
)
def test_answers_that_do_not_read(answer: Any) -> None:
    with pytest.raises(InvalidAnswerError) as exc:
        read_decisions(answer, [3])
    assert exc.value.code == "invalid_answer"


def test_run_requests() -> None:
    check_run_request({"timezone": "Europe/Paris"}, {"max_rides": 5})
    check_run_request(None, None)
    check_run_request({}, {"message": "hi"})
    with pytest.raises(InvalidTimezoneError):
        check_run_request({"timezone": "../../etc/passwd"}, None)
    with pytest.raises(InvalidInputError):
        check_run_request({}, {"max_rides": "abc"})


def _ctx(action: Any) -> AuthContext:
    return AuthContext(
        permissions=["athlete"], user=SimpleNamespace(identity="athlete-a"), resource="threads", action=action
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"context": {"timezone": "Mars/Olympus"}}, "invalid_timezone"),
        ({"config": {"configurable": {"timezone": "../../etc/passwd"}}}, "invalid_timezone"),
        ({"input": {"max_rides": "abc"}}, "invalid_max_rides"),
    ],
)
async def test_the_api_refuses_bad_runs_and_crons_with_422(kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as run:
        await auth.on_run_create(_ctx("create_run"), {"kwargs": kwargs})  # type: ignore[typeddict-item]
    assert run.value.status_code == 422 and run.value.detail.startswith(f"{code}: ")
    with pytest.raises(Auth.exceptions.HTTPException) as cron:
        await auth.on_cron_create(_ctx("create"), {"payload": kwargs})  # type: ignore[typeddict-item]
    assert cron.value.status_code == 422 and cron.value.detail.startswith(f"{code}: ")


async def test_the_api_accepts_good_runs() -> None:
    value: dict[str, Any] = {"kwargs": {"context": {"timezone": "Europe/Paris"}, "input": {"max_rides": 3}}}
    assert await auth.on_run_create(_ctx("create_run"), value) == {"owner": "athlete-a"}  # type: ignore[arg-type]
