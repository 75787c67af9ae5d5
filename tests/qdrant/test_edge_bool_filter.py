"""Bool matches: qdrant-client matches them; Qdrant Edge (qdrant-edge-py 0.9.0 sends bools as ints,
which never match) refuses them clearly instead of silently returning nothing (or, with must_not, all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from gte_rag.errors import ConfigError
from gte_rag.qdrant import ClientBackend, CollectionLayout, EdgeBackend, PointRecord, QdrantStore

IDS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(3)]


@pytest.fixture(params=["edge", "local"])
def bool_store(request: pytest.FixtureRequest, tmp_path: Path) -> QdrantStore:
    layout = CollectionLayout("flags", dense_size=4)
    backend = (EdgeBackend(tmp_path / "edge", layout) if request.param == "edge"
               else ClientBackend(QdrantClient(location=":memory:"), layout))
    store = QdrantStore(backend=backend)
    store.ensure_collection()
    store.upsert([PointRecord(pid, np.eye(4, dtype=np.float32)[i], None, payload={"flag": flag, "n": i})
                  for i, (pid, flag) in enumerate(zip(IDS, [True, False, True]))])
    return store


@pytest.mark.parametrize("negate", [False, True])
def test_bool_match_is_right_or_refused(bool_store: QdrantStore, negate: bool) -> None:
    cond = models.FieldCondition(key="flag", match=models.MatchValue(value=True))
    flt = models.Filter(must_not=[cond]) if negate else models.Filter(must=[cond])
    try:
        if isinstance(bool_store.backend, EdgeBackend):
            with pytest.raises(ConfigError, match=r"'flag'.*keyword"):
                bool_store.count(flt)
            return
        assert bool_store.count(flt) == (1 if negate else 2)
    finally:
        bool_store.close()


def test_non_bool_matches_still_work(bool_store: QdrantStore) -> None:
    try:
        assert bool_store.count(models.Filter(must=[models.FieldCondition(key="n", match=models.MatchValue(value=1))])) == 1
    finally:
        bool_store.close()
