"""Engine errors mapped by type and status code, on the real engines (nothing mocked).

What each engine raises, measured with qdrant-edge-py 0.9.0 and qdrant-client 1.20.0, is
tabled in ``gte_rag/qdrant/_errors.py``; each test below provokes one case for real.
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from conftest import StoreFactory, run
from grpc.aio import AioRpcError, Metadata
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

import gte_rag.qdrant._client as client_module
import gte_rag.qdrant._edge_convert as edge_convert
from gte_rag._types import SparseVector
from gte_rag.errors import CollectionNotFoundError, ConfigError, StoreError, StoreUnavailableError
from gte_rag.qdrant import (
    AsyncClientBackend,
    AsyncQdrantStore,
    ClientBackend,
    CollectionLayout,
    PointRecord,
    QdrantStore,
    QueryPlan,
    map_store_errors,
    open_store,
    point_id,
)

LAYOUT = CollectionLayout("docs", dense_size=4, sparse_idf=True)


def _closed_port() -> int:
    with socket.socket() as s:  # bind, read the port, close: nothing listens there now
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    try:
        yield int(srv.getsockname()[1])
    finally:
        srv.close()


def _server_store(flavour: str, port: int, *, grpc_port: int | None = None) -> Any:
    kwargs: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "timeout": 1, "check_compatibility": False}
    if grpc_port is not None:
        kwargs.update(prefer_grpc=True, grpc_port=grpc_port)
    if flavour == "sync":
        return QdrantStore(backend=ClientBackend(QdrantClient(**kwargs), LAYOUT))
    return AsyncQdrantStore(backend=AsyncClientBackend(AsyncQdrantClient(**kwargs), LAYOUT))


async def _close(store: Any) -> None:
    await run(store.close() if isinstance(store, QdrantStore) else store.aclose())


# -- Qdrant Edge ----------------------------------------------------------------------
def test_edge_shard_locked_by_another_process_is_unavailable(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as store:
        store.ensure_collection()
    holder = (
        "import sys, qdrant_edge as qe\n"
        "shard = qe.EdgeShard.load(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "docs")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with open_store(tmp_path, LAYOUT) as store, pytest.raises(StoreUnavailableError) as info:
            store.count()
        assert type(info.value.__cause__) is Exception  # Edge's only class for engine failures
        assert not isinstance(info.value, CollectionNotFoundError)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # the holder exits and its lock goes with it
        proc.wait(timeout=60)
        proc.stdout.close()
    with open_store(tmp_path, LAYOUT) as store:  # the lock went with the process
        assert store.count() == 0


def test_edge_engine_rejections_are_store_errors_not_unavailable(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as store:
        store.ensure_collection()
        # wrong vector size, sent to the engine past the store's own check
        with pytest.raises(StoreError) as info:
            store.backend.upsert([PointRecord(point_id("x", 0), [1.0, 0.0])])
        assert not isinstance(info.value, (StoreUnavailableError, CollectionNotFoundError))
        assert type(info.value.__cause__) is Exception and "upsert" in str(info.value)
        # a request the engine refuses: a sparse query against the dense vector
        plan = QueryPlan(query=models.NearestQuery(nearest=models.SparseVector(indices=[1], values=[1.0])),
                         using=LAYOUT.dense_name, limit=3)
        with pytest.raises(StoreError) as info:
            store.backend.query(plan)
        assert not isinstance(info.value, (StoreUnavailableError, CollectionNotFoundError))
        assert type(info.value.__cause__) is Exception
        # a filter key Edge cannot parse (an invalid JSON path) is the caller's input
        bad_key = models.Filter(must=[models.FieldCondition(key="a[", match=models.MatchValue(value=1))])
        with pytest.raises(ConfigError, match=r"'a\['") as config:
            store.count(bad_key)
        assert type(config.value.__cause__) is ValueError


# -- both engines (and a server when GTE_RAG_QDRANT_URL is set) ----------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("op", ["count", "query", "upsert", "scroll", "retrieve"])
async def test_missing_collection_is_not_found_not_unavailable(stores: StoreFactory, op: str) -> None:
    store = stores.open(stores.layout())  # never created
    calls = {
        "count": lambda: store.count(),
        "query": lambda: store.query([1.0, 0, 0, 0], SparseVector((1,), (1.0,))),
        "upsert": lambda: store.upsert([PointRecord(point_id("x", 0), [1.0, 0, 0, 0])]),
        "scroll": lambda: store.scroll(),
        "retrieve": lambda: store.retrieve([point_id("x", 0)]),
    }
    with pytest.raises(CollectionNotFoundError) as info:
        await run(calls[op]())
    err = info.value
    assert isinstance(err, StoreError) and isinstance(err, LookupError)
    assert not isinstance(err, StoreUnavailableError)
    assert err.collection == store.layout.collection and "ensure_collection" in str(err)


@pytest.mark.asyncio
async def test_wrong_vector_size_from_the_engine_is_a_store_error(stores: StoreFactory) -> None:
    store = stores.open(stores.layout())
    await run(store.ensure_collection())
    with pytest.raises(StoreError) as info:  # past the store's own size check
        await run(store.backend.upsert([PointRecord(point_id("x", 0), [1.0, 0.0])]))
    assert not isinstance(info.value, (StoreUnavailableError, CollectionNotFoundError))
    assert info.value.__cause__ is not None


# -- servers that cannot answer -------------------------------------------------------------
async def _unavailable_cause(flavour: str, protocol: str, port: int) -> BaseException | None:
    """``count()`` against a server at ``port`` raises StoreUnavailableError; returns what it was chained from."""
    store = _server_store(flavour, port, grpc_port=port if protocol == "grpc" else None)
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await run(store.count())
    finally:
        await _close(store)
    return info.value.__cause__


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
async def test_closed_port_is_unavailable(flavour: str, protocol: str) -> None:
    cause = await _unavailable_cause(flavour, protocol, _closed_port())
    if protocol == "grpc":
        assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.UNAVAILABLE
    else:  # qdrant-client wraps the httpx error
        assert isinstance(getattr(cause, "source", None), httpx.ConnectError)


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
async def test_server_that_never_answers_is_unavailable(black_hole: int, flavour: str, protocol: str) -> None:
    cause = await _unavailable_cause(flavour, protocol, black_hole)
    if protocol == "grpc":
        assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert isinstance(getattr(cause, "source", None), httpx.TimeoutException)


def _response_error(status: int) -> UnexpectedResponse:
    response = httpx.Response(status, json={"status": {"error": "from the server"}})
    return UnexpectedResponse.for_response(response)  # type: ignore[return-value]


def _rpc_error(code: grpc.StatusCode) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details="from the server")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_response_error(404), CollectionNotFoundError),
        (_response_error(502), StoreUnavailableError),
        (_response_error(503), StoreUnavailableError),
        (_response_error(504), StoreUnavailableError),
        (_response_error(429), StoreUnavailableError),
        (_response_error(400), StoreError),
        (_response_error(500), StoreError),
        (_rpc_error(grpc.StatusCode.NOT_FOUND), CollectionNotFoundError),
        (_rpc_error(grpc.StatusCode.UNAVAILABLE), StoreUnavailableError),
        (_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), StoreUnavailableError),
        (_rpc_error(grpc.StatusCode.INVALID_ARGUMENT), StoreError),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(getattr(v, "status_code", None) or v.code().name),
)
def test_server_status_codes_map_by_code(error: Exception, expected: type[StoreError]) -> None:
    # The exception objects qdrant-client / grpc raise for a server reply with that status.
    with pytest.raises(StoreError) as info:
        with map_store_errors("count", collection="docs", engine="client"):
            raise error
    assert type(info.value) is expected and info.value.__cause__ is error


# qdrant-client leaves the lock file of a refused local client open (its own leak); the
# test collects it here so that the ResourceWarning does not land on a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_local_path_locked_by_another_client_is_unavailable(tmp_path: Path) -> None:
    holder = QdrantClient(path=str(tmp_path / "local"))
    try:
        with pytest.raises(StoreUnavailableError) as info:
            open_store(tmp_path / "local", LAYOUT, engine="client")
        assert isinstance(info.value.__cause__, RuntimeError)
        del info
        gc.collect()
    finally:
        holder.close()


# -- gte_rag's own bugs are never translated -------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("exc_type", [TypeError, KeyError, ValueError])
async def test_our_own_bugs_propagate_unchanged(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch, exc_type: type[Exception]
) -> None:
    store = stores.open(stores.layout())
    await run(store.ensure_collection())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise exc_type("a gte_rag bug")

    if stores.engine == "edge":
        monkeypatch.setattr(edge_convert, "_spec_request", broken)  # our request builder
    else:
        monkeypatch.setattr(client_module, "_query_kwargs", broken)
    with pytest.raises(exc_type, match="a gte_rag bug") as info:
        await run(store.query(np.ones(4), SparseVector((1,), (1.0,))))
    assert not isinstance(info.value, StoreError)


def _our_helper(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize("exc", [ValueError("ours"), RuntimeError("ours"), KeyError("ours"), TypeError("ours")])
def test_map_store_errors_leaves_exceptions_raised_by_gte_rag_code(exc: Exception) -> None:
    with pytest.raises(type(exc)) as info:
        with map_store_errors("query", collection="docs", engine="client"):
            _our_helper(exc)
    assert info.value is exc
