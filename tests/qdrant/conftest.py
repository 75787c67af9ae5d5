"""Store fixtures: one suite over Qdrant Edge, qdrant-client local mode and (optionally) a server.

Nothing is mocked. ``store_factory`` opens a real store for a layout; the ``engine`` and
``flavour`` parameters give every test the matrix {edge, local, server?} x {sync, async}.
Tests are ``async def`` and call store methods through :func:`run`, which awaits
coroutines and passes plain values through, so one test body serves both flavours.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from qdrant_client import AsyncQdrantClient, QdrantClient

from gte_rag.qdrant import (
    AsyncClientBackend,
    AsyncEdgeBackend,
    AsyncQdrantStore,
    ClientBackend,
    CollectionLayout,
    EdgeBackend,
    QdrantStore,
)

SERVER_URL = os.environ.get("GTE_RAG_QDRANT_URL")

ENGINES = [
    "edge",
    "local",
    pytest.param(
        "server",
        marks=[
            pytest.mark.qdrant_server,
            pytest.mark.skipif(not SERVER_URL, reason="GTE_RAG_QDRANT_URL is not set"),
        ],
    ),
]


async def run(value: Any) -> Any:
    """Await ``value`` if it is awaitable (async store), else return it (sync store)."""
    if inspect.isawaitable(value):
        return await value
    return value


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


class StoreFactory:
    """Opens stores for one test; stores on the same engine share data (same dir/client)."""

    def __init__(self, engine: str, flavour: str, root: Path) -> None:
        self.engine = engine
        self.flavour = flavour
        self.root = root
        self.prefix = f"t{uuid.uuid4().hex[:8]}_"
        self._client: Any = None
        self._stores: list[Any] = []

    def layout(self, name: str = "docs", **kwargs: Any) -> CollectionLayout:
        """A layout with a collection name unique to this test (servers are shared)."""
        kwargs.setdefault("dense_size", 4)
        return CollectionLayout(self.prefix + name, **kwargs)

    def _shared_client(self) -> Any:
        if self._client is None:
            is_async = self.flavour == "async"
            if self.engine == "local":
                self._client = AsyncQdrantClient(":memory:") if is_async else QdrantClient(":memory:")
            else:
                cls = AsyncQdrantClient if is_async else QdrantClient
                self._client = cls(url=SERVER_URL)
        return self._client

    def open(self, layout: CollectionLayout) -> Any:
        """Open a store; on Edge, close earlier stores of the same collection first."""
        if self.engine == "edge":
            backend = EdgeBackend(self.root, layout)
            store: Any = (
                QdrantStore(backend=backend)
                if self.flavour == "sync"
                else AsyncQdrantStore(backend=AsyncEdgeBackend(backend))
            )
        elif self.flavour == "sync":
            store = QdrantStore(
                backend=ClientBackend(self._shared_client(), layout, owns_client=False)
            )
        else:
            store = AsyncQdrantStore(
                backend=AsyncClientBackend(self._shared_client(), layout, owns_client=False)
            )
        self._stores.append(store)
        return store

    async def close(self, store: Any) -> None:
        await run(store.close() if isinstance(store, QdrantStore) else store.aclose())

    async def finish(self) -> None:
        for store in self._stores:
            await self.close(store)
        if self._client is not None:
            if self.engine == "server":
                names = await run(self._client.get_collections())
                for c in names.collections:
                    if c.name.startswith(self.prefix):
                        await run(self._client.delete_collection(c.name))
            await run(self._client.close())


@pytest_asyncio.fixture
async def stores(engine: str, flavour: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    factory = StoreFactory(engine, flavour, tmp_path)
    yield factory
    await factory.finish()


@pytest.fixture
def make_layout() -> Callable[..., CollectionLayout]:
    def make(**kwargs: Any) -> CollectionLayout:
        kwargs.setdefault("collection", "docs")
        kwargs.setdefault("dense_size", 4)
        return CollectionLayout(**kwargs)

    return make
