"""Model factory (docs/architecture.md): ChatOpenAI when an endpoint is configured, else None (offline)."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from config.settings import Settings, get_settings

OFFLINE_LABEL = "offline"


def get_chat_model(settings: Settings | None = None) -> BaseChatModel | None:
    """Return the configured chat model, or None when no endpoint is configured.

    With `OPENAI_API_KEY` and/or `OPENAI_BASE_URL` set, returns `langchain_openai.ChatOpenAI` for the
    `COACH_MODEL` name (any OpenAI-compatible server works through the base URL). With neither, returns None and
    callers use the deterministic offline responder, which labels its output as offline.
    """
    settings = settings or get_settings()
    if not settings.llm_configured:
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.coach_model,
        api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        timeout=60,
        max_retries=1,
    )


def model_label(model: BaseChatModel | None) -> str:
    """Name of the writer recorded beside generated text: the model's name, or `offline`."""
    if model is None:
        return OFFLINE_LABEL
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return str(name or type(model).__name__)
