"""LlamaIndex adapters: the only package of gte_rag that imports llama_index."""

from __future__ import annotations

from ._embedding import GteEmbedding
from ._filters import to_qdrant_filter
from ._llm_reranker import GteLLMReranker
from ._longdoc import (
    GteGroupedChunkRetriever,
    GteLongDocQueryEngine,
    GteLongDocRetriever,
    GteMaxSimRetriever,
    GteTwoStageRetriever,
    Passage,
)
from ._memory import GteMemoryBlock, LLMFactExtractor
from ._multistage import GteMultiStageReranker, RerankStage
from ._remote_embedding import GteRemoteEmbedding, GteRemoteSparseEmbedding
from ._remote_reranker import RemoteReranker
from ._reranker import GteReranker, ScoringPostprocessor
from ._retriever import GteHybridRetriever
from ._sparse_embedding import GteSparseEmbedding
from ._vector_store import GteVectorStore

__all__ = [
    "GteEmbedding",
    "GteGroupedChunkRetriever",
    "GteHybridRetriever",
    "GteLLMReranker",
    "GteLongDocQueryEngine",
    "GteLongDocRetriever",
    "GteMaxSimRetriever",
    "GteMemoryBlock",
    "GteMultiStageReranker",
    "GteRemoteEmbedding",
    "GteRemoteSparseEmbedding",
    "GteReranker",
    "GteSparseEmbedding",
    "GteTwoStageRetriever",
    "GteVectorStore",
    "LLMFactExtractor",
    "Passage",
    "RemoteReranker",
    "RerankStage",
    "ScoringPostprocessor",
    "to_qdrant_filter",
]
