"""LlamaIndex retrievers and the question-answering engine over long documents (real embedded Qdrant)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError
from gte_rag.kb import KnowledgeBase, SourceDocument
from gte_rag.llama_index import (
    GteGroupedChunkRetriever,
    GteLongDocQueryEngine,
    GteLongDocRetriever,
    GteMaxSimRetriever,
    GteTwoStageRetriever,
)

LONG = (
    "Plants create oxygen through photosynthesis. Green plants turn light into chemical energy in their leaves. "
    "Chlorophyll absorbs sunlight and fixes carbon dioxide into sugars. Forests and algae keep the atmosphere "
    "breathable. Bees pollinate flowers and make honey from nectar. The farmer grows wheat, corn and potatoes."
)
LONG2 = (
    "Rust is a systems programming language that prevents memory errors. The borrow checker ensures that "
    "references never outlive their data. Ownership rules in Rust stop data races at compile time. Python is a "
    "programming language that is easy to read. A function takes some input and returns an output."
)
LONG3 = (
    "The Eiffel Tower is in Paris, the capital of France. Paris is a large city on the river Seine in France. "
    "Berlin is the capital of Germany and Rome is the capital of Italy. Madrid is the capital of Spain, and "
    "London is the capital of England. The museum shows paintings, statues and old maps."
)
TEXTS = {"plants": LONG, "rust": LONG2, "paris": LONG3}
RETRIEVERS = [GteGroupedChunkRetriever, GteMaxSimRetriever, GteTwoStageRetriever]


class RecordingLLM(CustomLLM):
    """A local LLM for the tests: answers with a fixed prefix and remembers every prompt it read."""

    prompts: list[str] = []

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=100_000, num_output=64, model_name="recording")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=f"ANSWER({len(self.prompts)})")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        yield self.complete(prompt)


class ExplodingLLM(RecordingLLM):
    """Stands in for a default remote LLM that must never be called."""

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise AssertionError("Settings.llm was called")


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu", dtype="float32", max_length=32)


@pytest.fixture(params=["edge", "local"])
def kb(request: pytest.FixtureRequest, tmp_path: Path, encoder: GteEncoder) -> Any:
    location = tmp_path / "kb" if request.param == "edge" else ":memory:"
    base = KnowledgeBase(location, encoder=encoder, long_doc_options={"chunk_tokens": 8})
    base.add_documents([SourceDocument(k, v) for k, v in TEXTS.items()])
    yield base
    base.close()


@pytest.mark.parametrize("cls", RETRIEVERS)
def test_each_retriever_returns_chunks_of_the_best_documents(kb: KnowledgeBase, cls: type) -> None:
    retriever = cls(knowledge_base=kb, similarity_top_k=2, chunks_per_doc=2)
    nodes = retriever.retrieve("the capital of france paris")
    assert nodes, "no nodes"
    docs = [n.node.metadata["doc_id"] for n in nodes]
    assert len(set(docs)) <= 2
    assert all(docs.count(d) <= 2 for d in set(docs))
    for n in nodes:
        text = TEXTS[n.node.metadata["doc_id"]]
        # each node is a stored chunk: its character span slices back to its text
        assert text[n.node.start_char_idx : n.node.end_char_idx] == n.node.get_content()
    # the same documents and chunks as the knowledge base's own call, in the same order
    if retriever.strategy == "maxsim":
        expected = kb.search_documents("the capital of france paris", top_k=2, chunks_per_doc=2, strategy="two_stage",
                                       mode="dense")
        # MaxSim of one query vector is the best chunk's cosine: the first chunk gave the document its score
        maxsim = kb.search_documents("the capital of france paris", top_k=2, strategy="maxsim")
        assert [d.doc_id for d in maxsim] == [d.doc_id for d in expected]
        for doc, ref in zip(expected, maxsim):
            assert doc.chunks[0].score == pytest.approx(ref.score, abs=1e-5)
    else:
        expected = kb.search_documents("the capital of france paris", top_k=2, chunks_per_doc=2,
                                       strategy=retriever.strategy)
    assert [n.node.node_id for n in nodes] == [h.payload.get("_node_id") or h.id for d in expected for h in d.chunks]
    again = asyncio.run(retriever.aretrieve("the capital of france paris"))
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]


def test_strategies_are_named_and_checked(kb: KnowledgeBase) -> None:
    assert [c(knowledge_base=kb).strategy for c in RETRIEVERS] == ["groups", "maxsim", "two_stage"]
    assert GteLongDocRetriever(knowledge_base=kb, strategy="maxsim").strategy == "maxsim"
    with pytest.raises(ConfigError, match="strategy='nearest'"):
        GteLongDocRetriever(knowledge_base=kb, strategy="nearest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="chunks_per_doc must be an int >= 1, got 0"):
        GteMaxSimRetriever(knowledge_base=kb, chunks_per_doc=0)
    with pytest.raises(ConfigError, match="neighbours must be an int >= 0"):
        GteMaxSimRetriever(knowledge_base=kb, neighbours=-1)


def test_neighbours_bring_adjacent_chunks_in_document_order(kb: KnowledgeBase) -> None:
    plain = GteTwoStageRetriever(knowledge_base=kb, similarity_top_k=1, chunks_per_doc=1)
    wide = GteTwoStageRetriever(knowledge_base=kb, similarity_top_k=1, chunks_per_doc=1, neighbours=1)
    q = "bees pollinate flowers and make honey"
    (hit,) = plain.retrieve(q)
    expanded = wide.retrieve(q)
    index = hit.node.metadata["chunk_index"]
    got = [n.node.metadata["chunk_index"] for n in expanded]
    assert index in got and len(got) >= 2
    assert got == sorted(got) and got == list(range(got[0], got[-1] + 1))
    assert set(got) <= {index - 1, index, index + 1}


def test_query_engine_without_llm_returns_the_passages_only(kb: KnowledgeBase) -> None:
    previous = Settings._llm
    Settings.llm = ExplodingLLM()  # the engine must not fall back to the global LLM
    try:
        engine = GteLongDocQueryEngine(GteTwoStageRetriever(knowledge_base=kb, similarity_top_k=2))
        response = engine.query("memory errors and the borrow checker")
    finally:
        Settings._llm = previous
    assert response.response is None
    passages = response.metadata["passages"]
    assert passages and {p["doc_id"] for p in passages} <= set(TEXTS)
    assert len({p["doc_id"] for p in passages}) <= 2
    for p in passages:
        assert TEXTS[p["doc_id"]][p["start"] : p["end"]] == p["text"]
        assert isinstance(p["score"], float) and isinstance(p["document_score"], float)
    assert [n.node.get_content() for n in response.source_nodes] == [p["text"] for p in passages]


def test_query_engine_answers_with_an_llm_reading_the_passages(kb: KnowledgeBase) -> None:
    llm = RecordingLLM()
    llm.prompts = []
    engine = GteLongDocQueryEngine(GteGroupedChunkRetriever(knowledge_base=kb, similarity_top_k=1), llm=llm)
    response = engine.query("how do plants make oxygen")
    assert response.response is not None and response.response.startswith("ANSWER(")
    passages = response.metadata["passages"]
    assert passages and len({p["doc_id"] for p in passages}) == 1  # similarity_top_k=1: one document
    assert llm.prompts and all(p["text"] in llm.prompts[-1] for p in passages)
    answer = asyncio.run(engine.aquery("how do plants make oxygen"))
    assert answer.response is not None and answer.metadata["passages"] == passages


def test_query_engine_refuses_another_retriever(kb: KnowledgeBase) -> None:
    from gte_rag.llama_index import GteHybridRetriever

    with pytest.raises(ConfigError, match="GteLongDocRetriever"):
        GteLongDocQueryEngine(GteHybridRetriever(knowledge_base=kb))  # type: ignore[arg-type]
