"""Development tokens: `COACH_AUTH_TOKENS` / `COACH_AUTH_TOKENS_FILE`, `{token: athlete_id}` (`server.auth`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from config.settings import Settings, get_settings
from memory.athlete_store import validate_athlete_id
from memory.errors import InvalidAthleteIdError


class TokenTable:
    """Development tokens: `{token: athlete_id}`, looked up by the token's SHA-256 (not by the secret itself)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        """Check every pair: tokens of at least 16 characters, valid athlete ids.

        Raises:
            ValueError: a token is too short or an athlete id invalid.
        """
        self._by_digest: dict[str, str] = {}
        for token, athlete_id in tokens.items():
            if not isinstance(token, str) or len(token) < 16:
                raise ValueError("auth tokens must be strings of at least 16 characters")
            try:
                validate_athlete_id(athlete_id)
            except InvalidAthleteIdError as exc:
                raise ValueError(f"auth token for an invalid athlete id: {exc}") from None
            self._by_digest[_digest(token)] = athlete_id

    def __len__(self) -> int:
        """The number of tokens."""
        return len(self._by_digest)

    def athlete_for(self, token: str) -> str | None:
        """The athlete of `token`, or None."""
        return self._by_digest.get(_digest(token))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TokenTable:
        """The tokens of `COACH_AUTH_TOKENS` and of the file `COACH_AUTH_TOKENS_FILE` (reads the file).

        Raises:
            ValueError: the file is not a JSON object of strings, or a pair is invalid (see `__init__`).
        """
        settings = settings or get_settings()
        tokens = parse_tokens(settings.coach_auth_tokens, "COACH_AUTH_TOKENS") if settings.coach_auth_tokens else {}
        if settings.coach_auth_tokens_file is not None:
            tokens.update(read_token_file(settings.coach_auth_tokens_file))
        return cls(tokens)


def parse_tokens(text: str, where: str) -> dict[str, str]:
    """Parse a JSON object `{token: athlete_id}`.

    Raises:
        ValueError: not JSON, or not such an object.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{where} must hold a JSON object of token -> athlete id strings")
    return data


def read_token_file(path: Path) -> dict[str, str]:
    """Read a JSON file holding an object `{token: athlete_id}`.

    Raises:
        ValueError: the file cannot be read or is not such an object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the auth token file {path}: {exc}") from None
    return parse_tokens(text, f"the auth token file {path}")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
