"""Fixtures of the remote suite: local models behind real loopback servers, tiny backoff."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_servers import FakeService



@pytest.fixture(scope="session")
def local_embedder(tiny_embedder: Path) -> Any:
    from gte_rag.embed import GteEncoder

    return GteEncoder(tiny_embedder, max_length=64, dtype="float32", device="cpu", cache_size=0)


@pytest.fixture(scope="session")
def local_scorer(tiny_reranker: Path) -> Any:
    from gte_rag.rerank import GteCrossEncoder

    return GteCrossEncoder(str(tiny_reranker), max_length=64, dtype="float32", device="cpu")


@pytest.fixture
def serve(local_embedder: Any, local_scorer: Any) -> Iterator[Callable[..., FakeService]]:
    """``serve(protocol, **options)`` starts a server on 127.0.0.1; all are stopped after the test."""
    started: list[FakeService] = []

    def start(protocol: str, **options: Any) -> FakeService:
        service = FakeService(protocol, embedder=local_embedder, scorer=local_scorer, **options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()
