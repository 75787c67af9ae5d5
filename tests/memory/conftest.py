"""Memory fixtures: a tiny random encoder and real stores on both embedded engines (never mocked)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gte_rag.embed import GteEncoder
from gte_rag.memory import MemorySettings, MemoryStore
from memory_helpers import location_for

MEMORY_ENGINES = ["edge", "local"]


@pytest.fixture(scope="session")
def memory_encoder(tiny_embedder: Path) -> GteEncoder:
    """One tiny random GTE encoder (dense + learned sparse) shared by the memory tests."""
    return GteEncoder(tiny_embedder, max_length=64, dtype="float32", device="cpu")


@pytest.fixture(params=MEMORY_ENGINES)
def memory_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def memory(memory_engine: str, memory_encoder: GteEncoder, tmp_path: Path) -> Iterator[MemoryStore]:
    """A fresh store on each embedded engine; near-dup detection off (random vectors are close)."""
    store = MemoryStore(embed_model=memory_encoder, location=location_for(memory_engine, tmp_path),
                        settings=MemorySettings(dedup_threshold=None))
    yield store
    store.close()
