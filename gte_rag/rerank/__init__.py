"""Cross-encoder and LLM relevance scoring (no LlamaIndex here)."""

from __future__ import annotations

from ._common import PairScorer, RerankResult
from ._cross_encoder import DEFAULT_RERANKER, GteCrossEncoder
from ._llm import DEFAULT_LLM_RERANK_TEMPLATE, GteLLMCrossEncoder

__all__ = [
    "DEFAULT_LLM_RERANK_TEMPLATE",
    "DEFAULT_RERANKER",
    "GteCrossEncoder",
    "GteLLMCrossEncoder",
    "PairScorer",
    "RerankResult",
]
