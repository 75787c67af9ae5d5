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
    "AsyncQdrantStore": "gte_rag.qdrant",
    "CollectionLayout": "gte_rag.qdrant",
    "CollectionMismatchError": "gte_rag.errors",
    "ConfigError": "gte_rag.errors",
    "EncodeOutput": "gte_rag.embed",
    "GteEmbedding": "gte_rag.llama_index",
    "GteCrossEncoder": "gte_rag.rerank",
    "GteEncoder": "gte_rag.embed",
    "GteHybridRetriever": "gte_rag.llama_index",
    "GteLLMCrossEncoder": "gte_rag.rerank",
    "GteLLMReranker": "gte_rag.llama_index",
    "GteMultiStageReranker": "gte_rag.llama_index",
    "GteRagError": "gte_rag.errors",
    "GteReranker": "gte_rag.llama_index",
    "GteSparseEmbedding": "gte_rag.llama_index",
    "GteVectorStore": "gte_rag.llama_index",
    "HybridConfig": "gte_rag.qdrant",
    "IngestStats": "gte_rag.kb",
    "KnowledgeBase": "gte_rag.kb",
    "ModelLoadError": "gte_rag.errors",
    "ModelSpec": "gte_rag.models",
    "QdrantStore": "gte_rag.qdrant",
    "SourceDocument": "gte_rag.kb",
    "SparseVector": "gte_rag._types",
    "StoreError": "gte_rag.errors",
    "UnknownModelError": "gte_rag.errors",
    "register_model": "gte_rag.models",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:
    from ._types import SparseVector
    from .embed import EncodeOutput, GteEncoder
    from .errors import (
        CollectionMismatchError,
        ConfigError,
        GteRagError,
        ModelLoadError,
        StoreError,
        UnknownModelError,
    )
    from .kb import IngestStats, KnowledgeBase, SourceDocument
    from .llama_index import (
        GteEmbedding,
        GteHybridRetriever,
        GteLLMReranker,
        GteMultiStageReranker,
        GteReranker,
        GteSparseEmbedding,
        GteVectorStore,
    )
    from .models import ModelSpec, register_model
    from .qdrant import AsyncQdrantStore, CollectionLayout, HybridConfig, QdrantStore
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
