"""gte_rag: GTE embeddings, sparse weights and rerankers for LlamaIndex RAG on Qdrant.

Importing this package is cheap: the headline classes below are loaded on first access,
so ``import gte_rag`` pulls in neither torch, transformers, qdrant_client nor llama_index.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Analyzer": "gte_rag.embed",
    "AsyncQdrantStore": "gte_rag.qdrant",
    "CollectionLayout": "gte_rag.qdrant",
    "CollectionMismatchError": "gte_rag.errors",
    "DocumentHit": "gte_rag.kb",
    "ConfigError": "gte_rag.errors",
    "EncodeOutput": "gte_rag.embed",
    "GteEmbedding": "gte_rag.llama_index",
    "GteCrossEncoder": "gte_rag.rerank",
    "GteEncoder": "gte_rag.embed",
    "GteGroupedChunkRetriever": "gte_rag.llama_index",
    "GteHybridRetriever": "gte_rag.llama_index",
    "GteLLMCrossEncoder": "gte_rag.rerank",
    "GteLLMReranker": "gte_rag.llama_index",
    "GteLongDocQueryEngine": "gte_rag.llama_index",
    "GteLongDocRetriever": "gte_rag.llama_index",
    "GteMaxSimRetriever": "gte_rag.llama_index",
    "GteMemoryBlock": "gte_rag.llama_index",
    "GteMultiStageReranker": "gte_rag.llama_index",
    "GteTwoStageRetriever": "gte_rag.llama_index",
    "LongDocEncoder": "gte_rag.longdoc",
    "MemoryNotFoundError": "gte_rag.errors",
    "MemorySettings": "gte_rag.memory",
    "MemoryStore": "gte_rag.memory",
    "MemoryStoreError": "gte_rag.errors",
    "GteRagError": "gte_rag.errors",
    "GteRemoteEmbedding": "gte_rag.llama_index",
    "GteRemoteSparseEmbedding": "gte_rag.llama_index",
    "GteReranker": "gte_rag.llama_index",
    "GteSparseEmbedding": "gte_rag.llama_index",
    "GteVectorStore": "gte_rag.llama_index",
    "HybridConfig": "gte_rag.qdrant",
    "IngestStats": "gte_rag.kb",
    "KnowledgeBase": "gte_rag.kb",
    "ModelLoadError": "gte_rag.errors",
    "ModelSpec": "gte_rag.models",
    "QdrantStore": "gte_rag.qdrant",
    "RemoteEncoder": "gte_rag.remote",
    "RemoteError": "gte_rag.errors",
    "RemoteReranker": "gte_rag.llama_index",
    "RemoteScorer": "gte_rag.remote",
    "RemoteServiceError": "gte_rag.errors",
    "RemoteSettings": "gte_rag.remote",
    "SourceDocument": "gte_rag.kb",
    "SparseVector": "gte_rag._types",
    "StoreError": "gte_rag.errors",
    "UnknownModelError": "gte_rag.errors",
    "register_model": "gte_rag.models",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:
    from ._types import SparseVector
    from .embed import Analyzer, EncodeOutput, GteEncoder
    from .errors import (
        CollectionMismatchError,
        ConfigError,
        GteRagError,
        MemoryNotFoundError,
        MemoryStoreError,
        ModelLoadError,
        RemoteError,
        RemoteServiceError,
        StoreError,
        UnknownModelError,
    )
    from .kb import DocumentHit, IngestStats, KnowledgeBase, SourceDocument
    from .llama_index import (
        GteEmbedding,
        GteGroupedChunkRetriever,
        GteHybridRetriever,
        GteLLMReranker,
        GteLongDocQueryEngine,
        GteLongDocRetriever,
        GteMaxSimRetriever,
        GteMemoryBlock,
        GteMultiStageReranker,
        GteRemoteEmbedding,
        GteRemoteSparseEmbedding,
        GteReranker,
        GteSparseEmbedding,
        GteTwoStageRetriever,
        GteVectorStore,
        RemoteReranker,
    )
    from .longdoc import LongDocEncoder
    from .memory import MemorySettings, MemoryStore
    from .models import ModelSpec, register_model
    from .qdrant import AsyncQdrantStore, CollectionLayout, HybridConfig, QdrantStore
    from .remote import RemoteEncoder, RemoteScorer, RemoteSettings
    from .rerank import GteCrossEncoder, GteLLMCrossEncoder


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gte_rag' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
