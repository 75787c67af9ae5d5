"""LlamaIndex adapters: the only package of gte_rag that imports llama_index."""

from __future__ import annotations

from ._embedding import GteEmbedding
from ._sparse_embedding import GteSparseEmbedding

__all__ = ["GteEmbedding", "GteSparseEmbedding"]
