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
    "CollectionMismatchError": "gte_rag.errors",
    "ConfigError": "gte_rag.errors",
    "EncodeOutput": "gte_rag.embed",
    "GteEmbedding": "gte_rag.llama_index",
    "GteEncoder": "gte_rag.embed",
    "GteRagError": "gte_rag.errors",
    "GteSparseEmbedding": "gte_rag.llama_index",
    "ModelLoadError": "gte_rag.errors",
    "ModelSpec": "gte_rag.models",
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
    from .llama_index import GteEmbedding, GteSparseEmbedding
    from .models import ModelSpec, register_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gte_rag' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
