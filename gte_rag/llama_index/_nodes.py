"""Conversions between Qdrant search hits and LlamaIndex nodes (shared by the adapters)."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import BaseNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from ..qdrant import SearchHit

__all__ = ["hit_to_node", "hits_to_nodes"]

_INTERNAL = ("_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id", "text", "chunk_index")


def hit_to_node(point_id: str, payload: dict[str, Any]) -> BaseNode:
    """Rebuild the node stored in a payload; payloads written by other tools become TextNodes."""
    text = payload.get("text")
    if "_node_content" in payload:
        node = metadata_dict_to_node(payload, text=text if isinstance(text, str) else None)
    else:
        metadata = {k: v for k, v in payload.items() if k not in _INTERNAL}
        node = TextNode(id_=point_id, text=text if isinstance(text, str) else "", metadata=metadata)
    node.id_ = point_id
    return node


def hits_to_nodes(hits: list[SearchHit]) -> list[NodeWithScore]:
    """Nodes with the fused Qdrant score, best first."""
    return [NodeWithScore(node=hit_to_node(h.id, h.payload), score=h.score) for h in hits]
