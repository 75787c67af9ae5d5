"""Pair scorers from many threads at once: no tokenizer errors, the same scores as one at a time.

``GteCrossEncoder`` tokenizes with two settings (no truncation to measure queries and to cut
long queries, ``only_second`` truncation for ordinary pairs). On one shared fast tokenizer,
threads switching those settings break each other's calls (``RuntimeError: Already
borrowed`` on older ``tokenizers``, ``Truncation error: Second sequence not provided``, or
pairs left uncut). The LlamaIndex adapter runs ``apostprocess_nodes`` in worker threads, so
a few concurrent queries are enough to get there.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gte_rag.rerank import GteCrossEncoder, GteLLMCrossEncoder

WORDS = "plants create oxygen through photosynthesis and the sun gives light to green leaves".split()


def _long(n: int, words: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)) + f" {i}." for i in range(n)]


@pytest.fixture(scope="module")
def cross_encoder(tiny_reranker: Path) -> GteCrossEncoder:
    ce = GteCrossEncoder(str(tiny_reranker), max_length=32, batch_size=64, max_batch_tokens=1 << 16, dtype="float32")
    with pytest.warns(UserWarning, match="truncated"):  # the once-per-instance notice, out of the threads' way
        ce.score_pairs([(_long(1, 40)[0], "x")])
    return ce


def _pair_sets() -> list[list[tuple[str, str]]]:
    docs = _long(4, 400)
    return [
        [("what makes plants green", d) for d in docs],  # documents cut: only_second truncation
        [(d, "green leaves") for d in docs],  # queries over the budget: tokenized without truncation
    ]


def test_cross_encoder_from_many_threads(cross_encoder: GteCrossEncoder) -> None:
    sets = _pair_sets()
    refs = [cross_encoder.score_pairs(s) for s in sets]
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda i: cross_encoder.score_pairs(sets[i % 2]), range(64)))
    for i, scores in enumerate(got):
        np.testing.assert_allclose(scores, refs[i % 2], atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:.*documents were truncated")
def test_llm_cross_encoder_from_many_threads(tiny_qwen_dir: Path) -> None:
    llm = GteLLMCrossEncoder(str(tiny_qwen_dir), max_length=64, batch_size=8, dtype="float32")
    docs = ["the river is in the city of berlin in germany " * 150, "paris is the capital of france " * 200] * 3
    pairs = [("where is the river", d) for d in docs]
    ref = llm.score_pairs(pairs)

    def job(i: int) -> np.ndarray | None:
        if i % 2:  # other code on the public tokenizer, with its own truncation
            llm.tokenizer(["q"] * len(docs), docs, truncation="only_second", max_length=8)
            return None
        return llm.score_pairs(pairs)

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(job, range(64)))
    for scores in got:
        if scores is not None:
            np.testing.assert_allclose(scores, ref, atol=1e-5, rtol=0)


@pytest.mark.asyncio
async def test_reranker_adapter_async_and_sync_together(cross_encoder: GteCrossEncoder) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from gte_rag.llama_index import GteReranker

    reranker = GteReranker.from_cross_encoder(cross_encoder, top_n=4)
    sets = _pair_sets()

    def as_nodes(pairs: list[tuple[str, str]]) -> tuple[list[NodeWithScore], QueryBundle]:
        nodes = [NodeWithScore(node=TextNode(text=d, id_=f"n{i}"), score=0.0) for i, (_, d) in enumerate(pairs)]
        return nodes, QueryBundle(query_str=pairs[0][0])

    def ranked(out: list[NodeWithScore]) -> list[tuple[str, float]]:
        return [(n.node.node_id, round(float(n.score or 0.0), 5)) for n in out]

    inputs = [as_nodes(s) for s in sets]
    refs = [ranked(reranker.postprocess_nodes(n, q)) for n, q in inputs]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        sync_jobs = [loop.run_in_executor(pool, reranker.postprocess_nodes, *inputs[i % 2]) for i in range(16)]
        async_jobs = [reranker.apostprocess_nodes(*inputs[i % 2]) for i in range(16)]
        outs = await asyncio.gather(*async_jobs, *sync_jobs)
    for i, out in enumerate(outs):
        assert ranked(out) == refs[i % 2]
