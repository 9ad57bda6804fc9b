"""Application settings, read once from the environment and `.env`.

One pydantic-settings class holds every process-wide setting; per-run knobs (the athlete, the session, the
time zone) live in `graphs.context.Context` instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings.

    Attributes:
        database_url: libpq URL of the Postgres athlete store (written to `.env` by `make services`).
        redis_url: URL of the Redis session window.
        openai_api_key: key for an OpenAI-compatible endpoint; with neither this nor `openai_base_url` set,
            the offline responder answers.
        openai_base_url: base URL of any OpenAI-compatible server (Ollama, vLLM, llama.cpp).
        coach_model: model name sent to that endpoint.
        db_pool_max_size: largest number of pooled Postgres connections per process.
        window_turns: turn pairs (user + assistant) the prompt's recent-turns block shows at most.
        window_token_budget: token budget of the recent-turns block.
        window_store_cap: messages kept per session in the Redis window (LTRIM cap).
        window_ttl_s: time to live of a session window in Redis, seconds.
        facts_cache_ttl_s: time to live of the cached current facts in Redis, seconds.
        outbox_stream: the Redis Stream of pending archive writes (`OUTBOX_STREAM`; its dead letters go to
            `<stream>:dead`): one per deployment, so that two sharing a Redis never drain each other's messages.
        max_message_chars: longest athlete message accepted, characters.
        inbox_dir: the ride inbox: `<inbox_dir>/<athlete_id>/` holds ride files (`.fit`, `.fit.gz`, `.tcx`,
            `.gpx`) waiting for their debrief (`coach debrief --pending`, the `pending_debriefs` graph's cron).
            A relative path is taken from the working directory.
        ride_max_bytes: largest ride data read from one file, after gunzip, bytes (`RIDE_MAX_BYTES`; a size
            such as `256MiB` works too). A `.fit.gz` is decompressed as a stream and refused with the error code
            `file_too_large` as soon as it passes this; a plain file larger than this is refused unread.
        ride_max_xml_bytes: largest TCX or GPX document parsed, after gunzip, bytes (`file_too_large` past it,
            checked before parsing).
        inbox_max_file_bytes: largest ride file the upload route (`PUT /inbox/{file_name}`) accepts, bytes:
            past it the answer is 413.
        inbox_quota_bytes: most bytes of ride files one athlete's inbox folder may hold: an upload that would
            pass it is answered 507.
        coach_auth_tokens: bearer tokens of the API server (`langgraph dev`): a JSON object `{token: athlete_id}`
            in `COACH_AUTH_TOKENS` (empty: none); development tokens, read by `server.auth`.
        coach_auth_tokens_file: a JSON file of more `{token: athlete_id}` pairs (`COACH_AUTH_TOKENS_FILE`).
        jwt_jwks_url: the identity provider's JWKS URL (`JWT_JWKS_URL`): when set, the API server also accepts JWT
            bearer tokens signed by one of its keys (`server.jwt_auth`); empty: development tokens only.
        jwt_issuer: the `iss` every JWT must carry (required with `jwt_jwks_url`).
        jwt_audience: the `aud` every JWT must carry (required with `jwt_jwks_url`).
        jwt_athlete_claim: the claim holding the athlete id (validated like every athlete id).
        jwt_algorithms: the signature algorithms accepted (asymmetric only: RS*, PS*, ES*, EdDSA), a JSON list.
        jwt_leeway_s: clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
        embedding_provider: embeddings of archived messages for recall (`memory.embeddings`): `local`
            (all-MiniLM-L6-v2, offline), `openai` (`OpenAIEmbeddings`), `none` (full-text recall only), or `auto`
            (`openai` when `openai_api_key` is set without `openai_base_url`, else `local`).
        embedding_openai_model: the OpenAI embedding model (asked for 384 dimensions, the archive's vector size).
        checkpoint_keep: LangGraph checkpoints kept per thread and namespace (`CHECKPOINT_KEEP`, at least 1):
            each checkpoint write deletes the older ones, their pending writes and the blobs only they used, in
            its transaction (`memory.checkpointer.CoachPostgresSaver`), for the command line and the server.
        embedding_backend: how the `local` model runs (`EMBEDDING_BACKEND`): `onnx-int8` (ONNX Runtime, int8
            dynamic quantisation; the default), `onnx` (ONNX Runtime, float32) or `torch`.
        model_cache_dir: where the local model's ONNX export is written once and read afterwards
            (`MODEL_CACHE_DIR`; default: the project's `data/models/`); a relative path is taken from the working
            directory.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/coach"
    redis_url: str = "redis://127.0.0.1:6379/0"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    coach_model: str = Field(default="gpt-4o-mini")
    db_pool_max_size: int = 10
    window_turns: int = 6
    window_token_budget: int = 1500
    window_store_cap: int = 50
    window_ttl_s: int = 24 * 3600
    facts_cache_ttl_s: int = 30 * 24 * 3600
    outbox_stream: str = Field(default="outbox:archive", min_length=1)
    max_message_chars: int = 8000
    inbox_dir: Path = Path("inbox")
    ride_max_bytes: ByteSize = Field(default=ByteSize(256 * 1024 * 1024), gt=0)
    ride_max_xml_bytes: ByteSize = Field(default=ByteSize(64 * 1024 * 1024), gt=0)
    inbox_max_file_bytes: ByteSize = Field(default=ByteSize(64 * 1024 * 1024), gt=0)
    inbox_quota_bytes: ByteSize = Field(default=ByteSize(1024 * 1024 * 1024), gt=0)
    coach_auth_tokens: str = Field(default="", repr=False)
    coach_auth_tokens_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_athlete_claim: str = "sub"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    jwt_leeway_s: float = Field(default=30.0, ge=0)
    embedding_provider: Literal["auto", "local", "openai", "none"] = "auto"
    embedding_openai_model: str = "text-embedding-3-small"
    checkpoint_keep: int = Field(default=3, ge=1)
    embedding_backend: Literal["onnx-int8", "onnx", "torch"] = "onnx-int8"
    model_cache_dir: Path = Path(__file__).resolve().parent.parent / "data" / "models"

    @field_validator("coach_auth_tokens_file", "jwt_jwks_url", "jwt_issuer", "jwt_audience", mode="before")
    @classmethod
    def _no_empty_path(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible endpoint is configured (else the offline responder is used)."""
        return bool(self.openai_api_key or self.openai_base_url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read on first use."""
    return Settings()
