"""Inbox uploads on disk: one copy per content, size and quota limits, private folders and files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from records.uploads import (
    InboxQuotaError,
    InboxUpload,
    InvalidUploadError,
    UploadTooLargeError,
    inbox_usage_bytes,
    save_upload,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_same_bytes_under_another_name_are_stored_once(tmp_path: Path) -> None:
    first = save_upload("ath-1", "morning.fit", b"ride one", inbox_dir=tmp_path)
    again = save_upload("ath-1", "renamed copy.fit", b"ride one", inbox_dir=tmp_path)
    assert not first.duplicate and again.duplicate
    assert again.path == first.path and again.ride_id == first.ride_id
    assert sorted(p.name for p in (tmp_path / "ath-1").iterdir() if not p.name.startswith(".")) == ["morning.fit"]
    other_athlete = save_upload("ath-2", "renamed copy.fit", b"ride one", inbox_dir=tmp_path)
    assert not other_athlete.duplicate  # each athlete's inbox is its own


def test_inbox_folders_are_0700_and_files_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask would give 0755 folders and 0644 files
    try:
        stored = save_upload("ath-1", "ride.fit", b"data", inbox_dir=tmp_path / "inbox")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "inbox") == 0o700
    assert mode(stored.path.parent) == 0o700
    assert mode(stored.path) == 0o600
    assert [p for p in stored.path.parent.iterdir() if p.name.startswith(".") and mode(p) != 0o600] == []


def test_a_file_past_the_size_limit_is_refused_and_nothing_kept(tmp_path: Path) -> None:
    with pytest.raises(UploadTooLargeError) as info:
        save_upload("ath-1", "big.fit", b"x" * 1001, inbox_dir=tmp_path, max_file_bytes=1000)
    assert info.value.http_status == 413 and info.value.code == "file_too_large"
    assert [p.name for p in (tmp_path / "ath-1").iterdir() if p.name != ".inbox.lock"] == []  # no partial file
    with InboxUpload("ath-1", "big.fit", inbox_dir=tmp_path, max_file_bytes=1000) as upload:
        with pytest.raises(UploadTooLargeError):
            upload.check_declared_size(5000)  # a declared Content-Length is refused before the body is read


def test_the_quota_bounds_an_athletes_inbox(tmp_path: Path) -> None:
    limits = {"max_file_bytes": 600, "quota_bytes": 1000}
    save_upload("ath-1", "a.fit", b"a" * 500, inbox_dir=tmp_path, **limits)
    save_upload("ath-1", "b.fit", b"b" * 500, inbox_dir=tmp_path, **limits)
    assert inbox_usage_bytes("ath-1", tmp_path) == 1000
    with pytest.raises(InboxQuotaError) as info:
        save_upload("ath-1", "c.fit", b"c", inbox_dir=tmp_path, **limits)
    assert info.value.http_status == 507 and "quota" in str(info.value)
    assert save_upload("ath-1", "copy.fit", b"a" * 500, inbox_dir=tmp_path, **limits).duplicate  # no new bytes
    assert save_upload("ath-2", "c.fit", b"c", inbox_dir=tmp_path, **limits)  # another athlete's quota
    assert sorted(p.name for p in (tmp_path / "ath-1").iterdir() if not p.name.startswith(".")) == ["a.fit", "b.fit"]


def test_an_empty_body_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidUploadError) as info:
        save_upload("ath-1", "empty.fit", b"", inbox_dir=tmp_path)
    assert info.value.http_status == 400
