"""Concurrent retrieval and reranking: async tasks and sync threads at once (real embedded Qdrant)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import QueryBundle

from gte_rag.embed import GteEncoder
from gte_rag.kb import KnowledgeBase
from gte_rag.llama_index import GteHybridRetriever, GteReranker

WORDS = ("plants oxygen photosynthesis rust memory safety eiffel tower paris france rivers mountains "
         "sentence number language systems capital green leaves").split()


def _text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + "."


@pytest.fixture(params=["edge", "local"])
def kb(request: pytest.FixtureRequest, tiny_embedder: Path, tmp_path: Path) -> Any:
    encoder = GteEncoder(tiny_embedder, device="cpu", dtype="float32", cache_size=0)
    location = tmp_path / "kb" if request.param == "edge" else ":memory:"
    with KnowledgeBase(location, encoder=encoder, chunk_size=0) as base:
        base.add_texts([_text(i, 8 + i % 50) for i in range(60)], ids=[f"d{i}" for i in range(60)])
        yield base


@pytest.mark.filterwarnings("ignore:.*truncated")
def test_concurrent_async_and_threaded_calls_match_sequential(kb: KnowledgeBase, tiny_reranker: Path) -> None:
    retriever = GteHybridRetriever(knowledge_base=kb, similarity_top_k=8)
    # a short window: long pairs are truncated, short ones are not (the tokenizer switches settings)
    reranker = GteReranker(model=str(tiny_reranker), top_n=4, dtype="float32", max_length=64)
    queries = [_text(100 + i, 3 if i % 2 else 200 + 13 * i) for i in range(16)]  # short and long pairs mixed

    def sync_call(q: str) -> list[tuple[str, float]]:
        nodes = reranker.postprocess_nodes(retriever.retrieve(q), query_bundle=QueryBundle(q))
        return [(n.node.node_id, round(float(n.score or 0.0), 5)) for n in nodes]

    # local mode orders near-equal scores differently on its very first query after an
    # ingest (the tiny model's dense scores tie to 1e-7); warm it up before the reference
    sync_call(queries[0])
    expected = [sync_call(q) for q in queries]

    async def async_call(q: str) -> list[tuple[str, float]]:
        nodes = await reranker.apostprocess_nodes(await retriever.aretrieve(q), query_bundle=QueryBundle(q))
        return [(n.node.node_id, round(float(n.score or 0.0), 5)) for n in nodes]

    async def run() -> tuple[list[Any], list[Any]]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=6) as pool:
            threaded = [loop.run_in_executor(pool, sync_call, q) for q in queries]
            in_loop = [async_call(q) for q in queries]
            results = await asyncio.gather(*in_loop, *threaded)
        return list(results[: len(queries)]), list(results[len(queries):])

    for _ in range(4):
        from_async, from_threads = asyncio.run(run())
        assert from_async == expected
        assert from_threads == expected
