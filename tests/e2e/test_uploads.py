"""`PUT /inbox/{file_name}` on the running server: one copy per content, 413 past the file limit, 507 past the
athlete's quota, private folders and files. The test server runs with a 2 MB file limit and a 4 MB quota
(`tests/e2e/conftest.py`); athlete C is used only here."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import RIDES_DIR
from tests.e2e.conftest import SERVER_KINDS, UPLOAD_MAX_FILE_BYTES, UPLOAD_QUOTA_BYTES, CoachServer, both_servers

pytestmark = pytest.mark.integration

# Every test here runs against `langgraph dev` and the production server (GraphHarbor, `make serve-prod`).
coach_server = pytest.fixture(scope="module", params=SERVER_KINDS, name="coach_server")(both_servers)

INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"


def ride_files_in(folder: os.PathLike[str]) -> dict[str, int]:
    return {e.name: e.stat().st_size for e in os.scandir(folder) if not e.name.startswith(".")}


async def test_the_same_upload_under_another_name_is_stored_once(coach_server: CoachServer) -> None:
    body = (RIDES_DIR / INDOOR).read_bytes()
    async with httpx.AsyncClient(base_url=coach_server.url, headers=coach_server.c.headers) as http:
        first = await http.put("/inbox/indoor.fit", content=body)
        second = await http.put("/inbox/indoor-again.fit", content=body)
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json() == {**first.json(), "status": "duplicate"}
    assert first.json()["file"] == "indoor.fit" and first.json()["size_bytes"] == len(body)
    folder = coach_server.inbox_dir / coach_server.c.athlete_id
    assert "indoor-again.fit" not in ride_files_in(folder)
    # Only the server's user reads the inbox.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "indoor.fit").stat().st_mode) == 0o600


async def test_uploads_past_the_file_limit_get_413_and_past_the_quota_507(coach_server: CoachServer) -> None:
    folder = coach_server.inbox_dir / coach_server.c.athlete_id
    async with httpx.AsyncClient(base_url=coach_server.url, headers=coach_server.c.headers, timeout=30) as http:
        too_big = await http.put("/inbox/big.fit", content=os.urandom(UPLOAD_MAX_FILE_BYTES + 1))
        assert too_big.status_code == 413 and too_big.json()["code"] == "file_too_large", too_big.text

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is checked as the body streams
            for _ in range(3):
                yield os.urandom(UPLOAD_MAX_FILE_BYTES // 2)

        streamed = await http.put("/inbox/streamed.fit", content=chunks())
        assert streamed.status_code == 413 and streamed.json()["code"] == "file_too_large", streamed.text

        answers = []
        for i in range(4):  # 1.5 MB each against a 4 MB quota
            answer = await http.put(f"/inbox/part-{i}.fit", content=os.urandom(3 * UPLOAD_MAX_FILE_BYTES // 4))
            answers.append(answer.status_code)
            if answer.status_code == 507:
                assert answer.json()["code"] == "inbox_quota_exceeded" and "quota" in answer.json()["detail"]
                break
    assert answers[-1] == 507 and set(answers[:-1]) == {201} and len(answers) >= 2, answers
    stored = ride_files_in(folder)
    assert sum(stored.values()) <= UPLOAD_QUOTA_BYTES
    assert not {"big.fit", "streamed.fit"} & stored.keys()
    assert not [name for name in os.listdir(folder) if name.endswith(".part")]  # nothing half written is left
