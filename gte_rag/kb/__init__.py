"""Knowledge base: chunking, ingestion and the KnowledgeBase entry point."""

from __future__ import annotations

from ._chunking import Chunk, TokenChunker
from ._files import SUPPORTED_SUFFIXES, read_files
from ._ingest import DEFAULT_INGEST_BATCH, IngestStats, Ingestor, SourceDocument, as_source_documents
from ._kb import DEFAULT_COLLECTION, KnowledgeBase

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_INGEST_BATCH",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "IngestStats",
    "Ingestor",
    "KnowledgeBase",
    "SourceDocument",
    "TokenChunker",
    "as_source_documents",
    "read_files",
]
