"""One session-id rule for the memory and the command line; the local spool is private and named without the
database password."""

from __future__ import annotations

import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from cli.chat import check_session
from memory.errors import InvalidSessionIdError
from memory.messages import ChatMessage, new_message_id, validate_session_id
from memory.outbox import DEFAULT_SPOOL_ROOT, LocalSpool, default_spool_dir

GOOD = ["s1", str(uuid.uuid4()), "conv-26:session_1", "a.b@c_d-e", "x" * 128]
BAD = ["", "x" * 129, "two words", "tab\there", "new\nline", "slash/es", "{brace}", "é"]


@pytest.mark.parametrize("session_id", GOOD)
def test_the_memory_and_the_command_line_accept_the_same_ids(session_id: str) -> None:
    assert validate_session_id(session_id) == session_id == check_session(session_id)


@pytest.mark.parametrize("session_id", BAD)
def test_the_memory_and_the_command_line_refuse_the_same_ids(session_id: str) -> None:
    with pytest.raises(InvalidSessionIdError) as refused:
        validate_session_id(session_id)
    assert refused.value.code == "invalid_session_id"
    with pytest.raises(typer.Exit) as exited:
        check_session(session_id)
    assert exited.value.exit_code == 2


def test_a_message_with_a_session_id_the_command_line_refuses_is_refused() -> None:
    with pytest.raises(InvalidSessionIdError):
        ChatMessage(new_message_id(), "athlete-1", "x" * 200, "user", "hi", datetime.now(UTC))


def test_the_default_spool_folder_does_not_depend_on_the_password() -> None:
    old = default_spool_dir("postgresql://coach:first-secret@db.example:5432/coach")
    new = default_spool_dir("postgresql://coach:second-secret@db.example:5432/coach")
    assert old == new and old.parent == DEFAULT_SPOOL_ROOT
    assert "secret" not in str(old)
    assert default_spool_dir("postgresql://coach:first-secret@db.example:5432/other") != old
    assert default_spool_dir("postgresql://coach@db.example:5433/coach") != old


async def test_the_spool_folder_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    directory = tmp_path / "root" / "spool"
    previous = os.umask(0)  # the modes must not depend on a permissive umask
    try:
        spool = LocalSpool(directory)
        await spool.append([ChatMessage(new_message_id(), "athlete-1", "s1", "user", "hi", datetime.now(UTC))])
    finally:
        os.umask(previous)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o700
    (spooled,) = directory.glob("*.jsonl")
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
    assert await spool.pending() == 1


async def test_an_existing_wide_spool_folder_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    await LocalSpool(directory).append(
        [ChatMessage(new_message_id(), "athlete-1", "s1", "user", "hi", datetime.now(UTC))]
    )
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
