"""Parallel embedding: batches on a bounded pool, queries on their own thread, model replicas, batch = single."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.embeddings import Embeddings

from config.settings import Settings
from memory.embeddings import EMBED_WORKERS, EMBEDDING_DIMENSIONS, ArchiveEmbedder, get_embedder
from memory.local_model import LocalMiniLMEmbeddings

TEXTS = [
    "Melanie: I went camping with the kids at the lake last weekend.",
    "Caroline: That sounds lovely! Did you see any wildlife?",
    "Threshold intervals felt easier than last month, 4x8 min at 280 W.",
    "My calves keep cramping during the last hour of long rides, what should I eat?",
    "ok",
    "Gina: I lost my job at Door Dash this month, so I'm starting my own clothing store.",
]


class ConcurrencyProbe(Embeddings):
    """A blocking model that records how many calls run at once; calls can be held until released."""

    def __init__(self, duration_s: float = 0.05, hold: threading.Event | None = None) -> None:
        self.duration_s = duration_s
        self.hold = hold
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.threads: set[str] = set()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if self.hold is not None:
                assert self.hold.wait(10), "never released"
            time.sleep(self.duration_s)
            return [[float(len(t))] + [0.0] * (EMBEDDING_DIMENSIONS - 1) for t in texts]
        finally:
            with self.lock:
                self.running -= 1

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


async def test_batches_run_in_parallel_up_to_the_pool_size_and_keep_their_order() -> None:
    model = ConcurrencyProbe()
    embedder = ArchiveEmbedder(model, "fake:probe", batch_size=3, workers=2)
    texts = [f"m{'x' * i}" for i in range(20)]  # 7 batches
    vectors = await embedder.embed_documents(texts)
    assert [v[0] for v in vectors] == [float(len(t)) for t in texts]
    assert model.most_running == 2  # parallel, and never more than the pool
    assert len(model.threads) == 2 and all(t.startswith("embedder") for t in model.threads)
    with pytest.raises(ValueError, match="workers"):
        ArchiveEmbedder(model, "fake:probe", workers=0)


async def test_a_query_does_not_wait_behind_the_batches() -> None:
    release = threading.Event()
    model = ConcurrencyProbe(duration_s=0, hold=release)
    embedder = ArchiveEmbedder(model, "fake:q", workers=1)
    bulk = asyncio.create_task(embedder.embed_documents(["a"] * 500))
    while model.running == 0:
        await asyncio.sleep(0.001)
    # Every document worker is held; a query still answers (on its own thread). Release the batches after it.
    model.hold = None
    try:
        query = await asyncio.wait_for(embedder.embed_query("where did Melanie camp?"), 5)
    finally:
        release.set()
    assert len(query) == EMBEDDING_DIMENSIONS
    assert len(await bulk) == 500


async def test_the_local_embedder_uses_every_worker_and_one_replica_each() -> None:
    embedder = get_embedder(Settings(_env_file=None, embedding_provider="local"))  # type: ignore[call-arg]
    assert embedder is not None and isinstance(embedder.embeddings, LocalMiniLMEmbeddings)
    assert embedder.workers == EMBED_WORKERS >= 1
    assert embedder.embeddings.replicas == EMBED_WORKERS + 1
    assert await asyncio.to_thread(embedder.warm_up)
    assert embedder.embeddings.loaded == EMBED_WORKERS + 1


def test_replicas_are_bounded_and_concurrent_calls_agree_with_serial_ones() -> None:
    model = LocalMiniLMEmbeddings(replicas=2)
    serial = [model.embed_documents([t])[0] for t in TEXTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda t: model.embed_documents([t])[0], TEXTS * 3))
    assert model.loaded <= 2
    for u, v in zip(serial * 3, parallel, strict=True):
        assert sum(a * b for a, b in zip(u, v, strict=True)) > 0.9999
    with pytest.raises(ValueError, match="replicas"):
        LocalMiniLMEmbeddings(replicas=0)


async def test_a_batched_embedding_equals_the_single_one() -> None:
    """Within the int8 model's own tolerance against torch (test_embeddings): dynamic quantisation scales the
    activations per forward pass, so a text's vector moves a little with its batch mates ("ok" the most)."""
    embedder = get_embedder(Settings(_env_file=None, embedding_provider="local"))  # type: ignore[call-arg]
    assert embedder is not None
    batched = await embedder.embed_documents(TEXTS * 30)  # several calls, in parallel
    single = [await embedder.embed_query(t) for t in TEXTS]
    cosines = [sum(a * b for a, b in zip(u, single[i % len(TEXTS)], strict=True)) for i, u in enumerate(batched)]
    assert min(cosines) > 0.95 and sum(cosines) / len(cosines) > 0.985, cosines
