"""Bounded reads of ride files: gzip bombs, oversized XML, too many records, and the start-time peek."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import training.ride_files as ride_files
import training.xml_readers as xml_readers
from config.settings import Settings
from tests.conftest import RIDES_DIR, ride_path
from training.ride_files import DEFAULT_MAX_BYTES, RideFileError, read_ride
from training.ride_peek import peek_start_time

pytestmark = pytest.mark.usefixtures("rides_dir")

MB = 1024 * 1024
INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"
INDOOR_START = datetime(2011, 11, 2, 12, 54, 19, tzinfo=UTC)
TCX = "gc_smartrec_2009_09_19.tcx"
GPX = "sweatpy_edge1000-4078723797_strava.gpx"


def zeros_gzip(size_mb: int) -> bytes:
    """A gzip bomb: `size_mb` MB of zeros in a few hundred bytes per MB (one gzip member per MB, as `cat` makes)."""
    member = gzip.compress(bytes(MB), compresslevel=9)  # about 1 KB
    return member * size_mb


@pytest.fixture(scope="module")
def bomb_300mb() -> bytes:
    data = zeros_gzip(300)
    assert len(data) < 400_000  # 300 MB of content in under 400 KB
    return data


def peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run `fn` under tracemalloc: its result (or the exception it raised) and the peak of Python allocations."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_settings_default_caps() -> None:
    settings = Settings(_env_file=None)
    assert settings.ride_max_bytes == DEFAULT_MAX_BYTES == 256 * MB
    assert settings.ride_max_xml_bytes < settings.ride_max_bytes
    assert settings.inbox_quota_bytes > settings.inbox_max_file_bytes > 0


def test_gzip_bomb_is_refused_past_the_cap(tmp_path: Path, bomb_300mb: bytes) -> None:
    path = tmp_path / "bomb.fit.gz"
    path.write_bytes(bomb_300mb)
    started = time.perf_counter()
    with pytest.raises(RideFileError) as info:
        read_ride(path, max_bytes=4 * MB)
    assert info.value.code == "file_too_large" and "bomb.fit.gz" in str(info.value)
    assert time.perf_counter() - started < 5  # stopped after 4 MB, not after 300


def test_gzip_bomb_with_the_default_cap_is_streamed_not_held(tmp_path: Path, bomb_300mb: bytes) -> None:
    path = tmp_path / "bomb.fit.gz"
    path.write_bytes(bomb_300mb)
    error, peak = peak_bytes(lambda: read_ride(path))  # the default cap: 256 MB
    assert isinstance(error, RideFileError) and error.code == "file_too_large", error
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated to refuse a 300 MB gzip bomb"


def test_gzipped_ride_under_the_cap_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "ride.fit.gz"
    path.write_bytes(gzip.compress((RIDES_DIR / INDOOR).read_bytes()))
    ride = read_ride(path, max_bytes=1 * MB)
    assert ride.start_time == INDOOR_START and ride.n_records > 2000
    with pytest.raises(RideFileError) as info:
        read_ride(path, max_bytes=10_000)  # the plain file is 28 KB
    assert info.value.code == "file_too_large"


@pytest.mark.parametrize("name", [TCX, GPX])
@pytest.mark.parametrize("gzipped", [False, True])
def test_oversized_xml_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, gzipped: bool
) -> None:
    def must_not_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an oversized document was handed to the XML parser")

    monkeypatch.setattr(xml_readers.gpxpy, "parse", must_not_parse)
    monkeypatch.setattr(xml_readers.TCXReader, "read", must_not_parse)
    data = ride_path(name).read_bytes()  # 0.8 MB (TCX), 2.9 MB (GPX)
    path = tmp_path / (name + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(data) if gzipped else data)
    with pytest.raises(RideFileError) as info:
        read_ride(path, max_xml_bytes=512 * 1024)
    assert info.value.code == "file_too_large" and "document" in str(info.value)
    with pytest.raises(RideFileError) as info:
        read_ride(path, max_bytes=512 * 1024)  # the overall cap applies to XML too
    assert info.value.code == "file_too_large"


def test_too_many_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ride_files, "MAX_RECORDS", 100)
    with pytest.raises(RideFileError) as info:
        read_ride(RIDES_DIR / INDOOR)
    assert info.value.code == "file_too_large" and "records" in str(info.value)


# --- the start-time peek ----------------------------------------------------------------------------------------


def test_peek_reads_only_the_head_of_a_gzip(tmp_path: Path) -> None:
    """The peek stops at the first record: a damaged tail or a bomb after it is never decompressed."""
    head = gzip.compress((RIDES_DIR / INDOOR).read_bytes())
    truncated = tmp_path / "truncated.fit.gz"
    truncated.write_bytes(head[: len(head) // 2])  # gzip.decompress of it fails (EOF)
    assert peek_start_time(truncated) == INDOOR_START

    bomb_tail = tmp_path / "bomb-tail.fit.gz"
    bomb_tail.write_bytes(head + zeros_gzip(300))  # the ride, then 300 MB of zeros
    start, peak = peak_bytes(lambda: peek_start_time(bomb_tail))
    assert start == INDOOR_START
    assert peak < 8 * MB, f"{peak / MB:.0f} MB allocated to peek at a 28 KB ride"


@pytest.mark.parametrize(
    ("name", "start"),
    [
        (TCX, datetime(2009, 9, 19, 13, 22, 43, tzinfo=UTC)),
        (GPX, datetime(2019, 9, 20, 14, 10, 3, tzinfo=UTC)),
    ],
)
def test_peek_parses_only_the_head_of_an_xml_document(tmp_path: Path, name: str, start: datetime) -> None:
    data = ride_path(name).read_bytes()
    assert peek_start_time(ride_path(name)) == start
    broken = tmp_path / name
    broken.write_bytes(data[: len(data) // 2] + b"<<< not XML")  # the whole document does not parse
    assert peek_start_time(broken) == start
    zipped = tmp_path / (name + ".gz")
    zipped.write_bytes(zlib.compress(data, wbits=31)[:4000])  # a truncated gzip of it
    assert peek_start_time(zipped) == start


def test_peek_gives_up_after_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "late.gpx"
    filler = "<!-- padding -->" * 100_000  # 1.6 MB before the first point
    path.write_text(
        f'<?xml version="1.0"?><gpx version="1.1" creator="t">{filler}<trk><trkseg>'
        '<trkpt lat="50" lon="5"><time>2024-05-01T08:00:00Z</time></trkpt></trkseg></trk></gpx>'
    )
    assert peek_start_time(path) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert peek_start_time(path, max_bytes=64 * 1024) is None
    assert peek_start_time(tmp_path / "missing.fit") is None
