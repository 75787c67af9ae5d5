"""Acceptance: a knowledge base built through GteRemoteEmbedding on a TEI-protocol server
backed by the real MiniLM returns the same top-10 as one built with the local encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from remote_servers import FAST, FakeService

from gte_rag.errors import ConfigError
from gte_rag.kb import KnowledgeBase
from gte_rag.llama_index import GteRemoteEmbedding
from gte_rag.qdrant import HybridConfig
from gte_rag.remote import RemoteEncoder


def _scifact(data_dir: Path, n_docs: int, n_queries: int) -> tuple[list[str], list[str], list[str]]:
    ids, docs = [], []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(str(row["_id"]))
            docs.append(f"{row.get('title', '')}\n{row['text']}"[:500])  # within MiniLM's 256 tokens
            if len(docs) == n_docs:
                break
    with open(data_dir / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(n_queries), f)]
    return ids, docs, queries


def test_remote_kb_top10_equals_local(minilm_encoder: Any, data_dir: Path, tmp_path: Path) -> None:
    ids, docs, queries = _scifact(data_dir, 300, 25)
    service = FakeService("tei", embedder=minilm_encoder)
    dense = HybridConfig(mode="dense")
    try:
        remote = GteRemoteEmbedding(url=service.url, protocol="tei", settings=FAST).encoder
        with KnowledgeBase(tmp_path / "local", encoder=minilm_encoder, chunk_size=0, hybrid=dense) as local_kb, \
                KnowledgeBase(tmp_path / "remote", encoder=remote, chunk_size=0, hybrid=dense) as remote_kb:
            local_kb.add_texts(docs, ids=ids)
            remote_kb.add_texts(docs, ids=ids)
            assert remote_kb.layout.model_name == f"remote:tei:tei@{service.url}"
            for q in queries:
                a = local_kb.query(q, top_k=10)
                b = remote_kb.query(q, top_k=10)
                assert [h.payload["doc_id"] for h in b] == [h.payload["doc_id"] for h in a], q
                np.testing.assert_allclose([h.score for h in b], [h.score for h in a], atol=1e-5)
        sent = sum(len(r.body["inputs"]) for r in service.requests if r.path == "/embed")
        assert sent == len(docs) + len(queries) + 1  # + the dimension probe; one request per 32 texts
    finally:
        service.close()


def test_remote_encoder_without_tokenizer_needs_whole_documents(tmp_path: Path, local_embedder: Any) -> None:
    service = FakeService("tei", embedder=local_embedder)
    try:
        remote = RemoteEncoder(service.url, settings=FAST, tokenizer=False)  # TEI's /tokenize not used
        with pytest.raises(ConfigError, match="chunk_size=0"):
            KnowledgeBase(tmp_path / "kb", encoder=remote, hybrid=HybridConfig(mode="dense"))
        with pytest.raises(ConfigError, match="GteEncoder or RemoteEncoder"):
            KnowledgeBase(tmp_path / "kb2", encoder=object())  # type: ignore[arg-type]
    finally:
        service.close()
