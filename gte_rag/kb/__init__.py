"""Knowledge base: chunking, ingestion and the KnowledgeBase entry point."""

from __future__ import annotations

from ..qdrant import DocumentHit

from ._chunking import Chunk, TokenChunker
from ._files import SUPPORTED_SUFFIXES, Source, read_files, read_source
from ._ingest import (
    DEFAULT_INGEST_BATCH,
    ChunkRecord,
    IngestStats,
    Ingestor,
    SourceDocument,
    as_source_documents,
    node_content_dict,
)
from ._kb import DEFAULT_COLLECTION, DocumentStrategy, KnowledgeBase, LongDocsSetting, encoder_record

__all__ = [
    "Chunk",
    "ChunkRecord",
    "DEFAULT_COLLECTION",
    "DEFAULT_INGEST_BATCH",
    "DocumentHit",
    "DocumentStrategy",
    "IngestStats",
    "Ingestor",
    "KnowledgeBase",
    "LongDocsSetting",
    "SUPPORTED_SUFFIXES",
    "Source",
    "SourceDocument",
    "TokenChunker",
    "as_source_documents",
    "encoder_record",
    "node_content_dict",
    "read_files",
    "read_source",
]
