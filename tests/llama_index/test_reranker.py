from __future__ import annotations

import asyncio
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from gte_rag.errors import ConfigError
from gte_rag.llama_index._llm_reranker import GteLLMReranker
from gte_rag.llama_index._multistage import STAGE_SCORES_KEY, STAGE_SECONDS_KEY, GteMultiStageReranker, RerankStage
from gte_rag.llama_index._reranker import RETRIEVAL_SCORE_KEY, GteReranker

TEXTS = [
    "Plants create oxygen through photosynthesis.",
    "Photosynthesis is a process where plants create oxygen.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower is in Paris.",
    "a",
    "Qdrant stores dense and sparse vectors; hybrid search fuses both!",
]
LONG_TEXT = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(60))  # ~590 tokens
_spec = importlib.util.spec_from_file_location("_rerank_tiny_models", Path(__file__).parents[1] / "rerank" / "tiny_models.py")
assert _spec is not None and _spec.loader is not None
tiny_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_models)


@pytest.fixture(scope="module")
def legacy_reranker(legacy_tiny: Path) -> GteReranker:
    """The mGTE-format reranker with reference logits (../shared/fixtures/gte-legacy-tiny)."""
    r = GteReranker(model=str(legacy_tiny / "reranker"), top_n=100, batch_size=2, device="cpu", dtype="float32")
    r.load()
    return r


@pytest.fixture(scope="module")
def reranker(tiny_reranker: Path) -> GteReranker:
    r = GteReranker(model=str(tiny_reranker), top_n=100, batch_size=2, device="cpu", dtype="float32")
    r.load()
    return r


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-li"))


def _nodes(texts: list[str]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc{i}"}), score=1.0 - i / 10)
        for i, t in enumerate(texts)
    ]


def _snapshot(nodes: list[NodeWithScore]) -> list[dict[str, Any]]:
    return [n.model_dump() for n in nodes]


def test_reproduces_reference_logits(legacy_reranker: GteReranker, legacy_expected: dict[str, Any]) -> None:
    reranker, expected = legacy_reranker, legacy_expected
    for (query, doc), logit in zip(expected["rerank_pairs"], expected["rerank_logits"]):
        node = NodeWithScore(node=TextNode(text=doc), score=0.0)
        out = reranker.postprocess_nodes([node], query_str=query)
        assert out[0].score == pytest.approx(logit, abs=1e-5)
    # padded batches: one query against every document of the fixture pairs
    query = expected["rerank_pairs"][0][0]
    docs = [d for _, d in expected["rerank_pairs"]]
    plain = [NodeWithScore(node=TextNode(text=d), score=0.0) for d in docs]
    out = reranker.postprocess_nodes(plain, query_str=query)
    direct = {d: reranker.cross_encoder.score_pairs([(query, d)])[0] for d in docs}
    for n in out:
        assert n.score == pytest.approx(direct[n.node.get_content()], abs=1e-5)
    # pair 0 of the fixture is (query, docs[0]): the batched score is the reference logit
    assert out[[n.node.get_content() for n in out].index(docs[0])].score == pytest.approx(
        expected["rerank_logits"][0], abs=1e-5
    )


def test_batched_scores_are_the_pairs_own(reranker: GteReranker) -> None:
    query, docs = TEXTS[2], [*TEXTS, LONG_TEXT[:400]]
    plain = [NodeWithScore(node=TextNode(text=d), score=0.0) for d in docs]
    out = reranker.postprocess_nodes(plain, query_str=query)  # padded batches of 2
    direct = {d: reranker.cross_encoder.score_pairs([(query, d)])[0] for d in docs}
    assert np.ptp(list(direct.values())) > 1e-3
    assert sorted(n.node.get_content() for n in out) == sorted(docs)
    for n in out:
        assert n.score == pytest.approx(direct[n.node.get_content()], abs=1e-5)


def test_inputs_not_mutated_and_sorted(reranker: GteReranker) -> None:
    docs = TEXTS[:6]
    nodes = _nodes(docs)
    before = _snapshot(nodes)
    r = GteReranker.from_cross_encoder(reranker.cross_encoder, top_n=3, keep_retrieval_score=True)
    out = r.postprocess_nodes(nodes, query_bundle=QueryBundle(TEXTS[0]))
    assert _snapshot(nodes) == before
    assert all(o is not n and o.node is not n.node for o in out for n in nodes)
    assert len(out) == 3
    assert [o.score for o in out] == sorted((o.score for o in out), reverse=True)
    by_id = {n.node.node_id: n for n in nodes}
    for o in out:
        assert o.node.metadata[RETRIEVAL_SCORE_KEY] == by_id[o.node.node_id].score
        assert RETRIEVAL_SCORE_KEY not in o.node.get_content(metadata_mode=MetadataMode.LLM)
    scores = reranker.cross_encoder.score_pairs(
        [(TEXTS[0], n.node.get_content(metadata_mode=MetadataMode.EMBED)) for n in nodes]
    )
    assert [o.node.node_id for o in out] == [f"n{i}" for i in np.argsort(-scores, kind="stable")[:3]]


def test_empty_and_single(reranker: GteReranker) -> None:
    assert reranker.postprocess_nodes([], query_str="q") == []
    one = _nodes(["only one"])
    out = reranker.postprocess_nodes(one, query_str="q")
    assert len(out) == 1 and out[0].node is one[0].node and out[0].score != one[0].score
    with pytest.raises(ConfigError):
        reranker.postprocess_nodes(one)


def test_long_document_warns_once_keeps_query(tiny_reranker: Path) -> None:
    r = GteReranker(model=str(tiny_reranker), top_n=2, max_length=128)
    nodes = _nodes([LONG_TEXT, LONG_TEXT + " more"])
    with pytest.warns(UserWarning, match="documents were truncated"):
        out = r.postprocess_nodes(nodes, query_str=TEXTS[0])
    assert len(out) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r.postprocess_nodes(nodes, query_str=TEXTS[0])


def test_field_validation() -> None:
    with pytest.raises(ValueError):
        GteReranker(model="x", top_n=0)
    with pytest.raises(ValueError):
        GteReranker(model="x", batch_size=-1)
    assert GteReranker(model="not/loaded/lazily").class_name() == "GteReranker"


@pytest.mark.asyncio
async def test_async_matches_sync_and_does_not_block(reranker: GteReranker) -> None:
    nodes = _nodes(TEXTS[:5])
    sync = reranker.postprocess_nodes(nodes, query_str="capital")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    out = await reranker.apostprocess_nodes(nodes, query_str="capital")
    task.cancel()
    assert [(o.node.node_id, o.score) for o in out] == [(o.node.node_id, o.score) for o in sync]
    assert ticks > 1


class _Collect(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "_Collect"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


def test_events_emitted(reranker: GteReranker) -> None:
    handler = _Collect(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        nodes = _nodes(["a", "b", "c"])
        out = reranker.postprocess_nodes(nodes, query_str="q")
    finally:
        root.event_handlers.remove(handler)
    kinds = [type(e) for e in handler.events]
    assert kinds == [ReRankStartEvent, ReRankEndEvent]
    start, end = handler.events
    assert isinstance(start, ReRankStartEvent) and start.model_name == reranker.model and start.top_n == 100
    assert isinstance(end, ReRankEndEvent) and [n.node.node_id for n in end.nodes] == [n.node.node_id for n in out]


def test_llm_reranker_adapter(qwen_dir: Path) -> None:
    r = GteLLMReranker(model=str(qwen_dir), top_n=2, use_chat_template=True)
    nodes = _nodes(["paris is the capital of france", "plants make oxygen", "berlin is a city"])
    before = _snapshot(nodes)
    out = r.postprocess_nodes(nodes, query_str="capital of france")
    assert _snapshot(nodes) == before and len(out) == 2
    scores = r.llm_cross_encoder.score_pairs(
        [("capital of france", n.node.get_content(metadata_mode=MetadataMode.EMBED)) for n in nodes]
    )
    assert [o.node.node_id for o in out] == [f"n{i}" for i in np.argsort(-scores, kind="stable")[:2]]
    assert r.class_name() == "GteLLMReranker"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_multistage(reranker: GteReranker, qwen_dir: Path, use_async: bool) -> None:
    cheap = GteReranker.from_cross_encoder(reranker.cross_encoder, top_n=4)
    expensive = GteLLMReranker(model=str(qwen_dir), top_n=2)
    cascade = GteMultiStageReranker(
        stages=[RerankStage(name="cheap", postprocessor=cheap), RerankStage(name="llm", postprocessor=expensive, top_n=2)]
    )
    nodes = _nodes(TEXTS[:8])
    before = _snapshot(nodes)
    if use_async:
        out = asyncio.run(cascade.apostprocess_nodes(nodes, query_str="capital of france"))
    else:
        out = cascade.postprocess_nodes(nodes, query_str="capital of france")
    assert _snapshot(nodes) == before
    assert len(out) == 2
    stage1 = {n.node.node_id: n.score for n in cheap.postprocess_nodes(nodes, query_str="capital of france")}
    by_id = {n.node.node_id: n.score for n in nodes}
    for o in out:
        meta = o.node.metadata
        assert set(meta[STAGE_SCORES_KEY]) == {"retrieval", "cheap", "llm"}
        assert meta[STAGE_SCORES_KEY]["retrieval"] == by_id[o.node.node_id]
        assert meta[STAGE_SCORES_KEY]["cheap"] == pytest.approx(stage1[o.node.node_id], abs=1e-6)
        assert meta[STAGE_SCORES_KEY]["llm"] == o.score
        assert set(meta[STAGE_SECONDS_KEY]) == {"cheap", "llm"} and all(v >= 0 for v in meta[STAGE_SECONDS_KEY].values())
        assert o.node.node_id in stage1  # survivors of stage 1 only
    assert cascade.class_name() == "GteMultiStageReranker"


def test_multistage_rejects_duplicate_names(reranker: GteReranker) -> None:
    with pytest.raises(ValueError):
        GteMultiStageReranker(stages=[RerankStage(name="a", postprocessor=reranker), RerankStage(name="a", postprocessor=reranker)])
