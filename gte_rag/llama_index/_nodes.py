"""Conversions between Qdrant search hits and LlamaIndex nodes (shared by the adapters)."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import BaseNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from ..qdrant import SearchHit

__all__ = ["hit_to_node", "hits_to_nodes"]

_INTERNAL = (
    "_node_content", "_node_type", "_node_id", "document_id", "doc_id", "ref_doc_id", "text", "chunk_index",
    "_content_hash", "_chunk_count", "_source",
)


def hit_to_node(point_id: str, payload: dict[str, Any]) -> BaseNode:
    """Rebuild the node stored in a payload, under the id it was written with.

    Payloads written by gte_rag or LlamaIndex carry the node as JSON (``_node_content``);
    its ``id_`` is the caller's node id, which may differ from the Qdrant point id (a
    non-UUID node id is stored under a uuid5). Payloads written by other tools become
    ``TextNode``s named by ``_node_id`` or the point id.
    """
    text = payload.get("text")
    if "_node_content" in payload:
        node = metadata_dict_to_node(payload, text=text if isinstance(text, str) else None)
        if not node.id_:
            node.id_ = str(payload.get("_node_id") or point_id)
        return node
    metadata = {k: v for k, v in payload.items() if k not in _INTERNAL}
    node_id = str(payload.get("_node_id") or point_id)
    return TextNode(id_=node_id, text=text if isinstance(text, str) else "", metadata=metadata)


def hits_to_nodes(hits: list[SearchHit]) -> list[NodeWithScore]:
    """Nodes with the fused Qdrant score, best first."""
    return [NodeWithScore(node=hit_to_node(h.id, h.payload), score=h.score) for h in hits]
