"""close() and drop/recreate while queries run in other threads (or tasks): real engines.

Every query racing with ``close()`` or ``ensure_collection(recreate=True)`` must either
return hits or raise a :class:`StoreError` that says what happened (the store is closed,
the collection was dropped); the process must not crash and the shard must not be left
half-closed (the directory can be opened again).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run

from gte_rag._types import SparseVector
from gte_rag.errors import CollectionNotFoundError, StoreError
from gte_rag.qdrant import (
    CollectionLayout,
    PointRecord,
    QdrantStore,
    build_payload,
    open_async_store,
    open_store,
    point_id,
)

pytestmark = pytest.mark.asyncio

DIM = 16
LAYOUT = CollectionLayout("docs", dense_size=DIM, sparse_idf=True)
WORKERS = 4
CLOSED = r"closed"
GONE = r"dropped|does not exist"


def _points(n: int = 1500) -> list[PointRecord]:
    rng = np.random.default_rng(5)
    dense = rng.normal(size=(n, DIM))
    return [
        PointRecord(
            point_id("doc", i), dense[i], SparseVector((i % 50, 100 + i % 7), (1.0, 0.5)),
            payload=build_payload(text=f"t{i}", doc_id="doc", chunk_index=i),
        )
        for i in range(n)
    ]


def _location(engine: str, root: Path) -> str | Path:
    return root if engine == "edge" else ":memory:"


def _open(engine: str, flavour: str, root: Path) -> Any:
    opener = open_store if flavour == "sync" else open_async_store
    return opener(_location(engine, root), LAYOUT)


class Outcomes:
    """What each racing query returned or raised."""

    def __init__(self) -> None:
        self.ok = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def record(self, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                self.ok += 1
            else:
                self.errors.append(error)

    def check(self, allowed: str) -> None:
        assert self.ok > 0, "no query finished before the race"
        for err in self.errors:
            assert isinstance(err, StoreError), repr(err)
            assert err.collection == LAYOUT.collection
            message = str(err)
            import re

            assert re.search(allowed, message), message


async def _race(store: Any, flavour: str, action: Callable[[], Any], *, keep_going: float) -> Outcomes:
    """Hammer ``store.query`` from WORKERS threads (sync) or tasks (async) around ``action``."""
    outcomes = Outcomes()
    stop = threading.Event()
    started = threading.Barrier(WORKERS + 1) if flavour == "sync" else None
    q_dense = np.ones(DIM)
    q_sparse = SparseVector((1, 101), (1.0, 1.0))

    def worker() -> None:
        assert started is not None
        started.wait()
        while not stop.is_set():
            try:
                store.query(q_dense, q_sparse, top_k=5)
            except BaseException as exc:  # recorded and checked by the test
                outcomes.record(exc)
            else:
                outcomes.record(None)

    async def task() -> None:
        while not stop.is_set():
            try:
                await store.query(q_dense, q_sparse, top_k=5)
            except BaseException as exc:
                outcomes.record(exc)
            else:
                outcomes.record(None)
            await asyncio.sleep(0)

    if flavour == "sync":
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        assert started is not None
        started.wait()
        time.sleep(0.05)
        action()
        time.sleep(keep_going)
        stop.set()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
    else:
        tasks = [asyncio.create_task(task()) for _ in range(WORKERS)]
        await asyncio.sleep(0.05)
        await action()
        await asyncio.sleep(keep_going)
        stop.set()
        await asyncio.gather(*tasks)
    return outcomes


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("engine", ["edge", "local"])
async def test_close_while_queries_run(engine: str, flavour: str, tmp_path: Path) -> None:
    store = _open(engine, flavour, tmp_path)
    await run(store.ensure_collection())
    await run(store.upsert(_points()))
    close = store.close if isinstance(store, QdrantStore) else store.aclose
    outcomes = await _race(store, flavour, close, keep_going=0.1)
    outcomes.check(CLOSED)
    assert outcomes.errors, "queries after close() must fail"
    with pytest.raises(StoreError, match=CLOSED):
        await run(store.count())
    await run(close())  # idempotent
    if engine == "edge":  # the shard was closed whole: the directory opens again
        with open_store(tmp_path, LAYOUT) as again:
            assert again.count() == 1500


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("engine", ["edge", "local"])
async def test_recreate_while_queries_run(engine: str, flavour: str, tmp_path: Path) -> None:
    store = _open(engine, flavour, tmp_path)
    await run(store.ensure_collection())
    await run(store.upsert(_points()))

    if flavour == "sync":
        def recreate() -> None:
            for _ in range(3):
                store.ensure_collection(recreate=True)
                store.upsert(_points(200))
    else:
        async def recreate() -> None:  # type: ignore[misc]
            for _ in range(3):
                await store.ensure_collection(recreate=True)
                await store.upsert(_points(200))

    outcomes = await _race(store, flavour, recreate, keep_going=0.05)
    outcomes.check(GONE)
    assert all(isinstance(e, CollectionNotFoundError) for e in outcomes.errors)
    assert await run(store.count()) == 200
    assert len(await run(store.query(np.ones(DIM), SparseVector((1,), (1.0,)), top_k=3))) == 3
    await run(store.close() if isinstance(store, QdrantStore) else store.aclose())
    if engine == "edge":
        with open_store(tmp_path, LAYOUT) as again:
            assert again.count() == 200


async def test_drop_waits_for_an_upsert_in_flight(tmp_path: Path) -> None:
    # An upsert that started before drop_collection() finishes on the old shard; the
    # drop then removes everything, and the next call asks for ensure_collection().
    store = open_store(tmp_path, LAYOUT)
    store.ensure_collection()
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            store.upsert(_points(3000), batch_size=100)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(0.05)
    store.backend.drop_collection()
    t.join(timeout=60)
    assert all(isinstance(e, CollectionNotFoundError) for e in errors), errors
    with pytest.raises(CollectionNotFoundError, match=GONE):
        store.count()
    store.ensure_collection()
    assert store.count() == 0
    store.close()
