"""A knowledge base over a remote encoder chunks as a local one does, and reopens from its record.

The TEI loopback server runs the same tiny encoder as the local knowledge base; the remote one
tokenizes through ``/tokenize`` (or a local tokenizer given to an OpenAI-compatible encoder),
so every stored chunk (text, offsets, index) must be the local knowledge base's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from remote_servers import FAST, FakeService

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError, RemoteRequestError
from gte_rag.kb import KnowledgeBase
from gte_rag.qdrant import HybridConfig
from gte_rag.remote import RemoteEncoder

DENSE = HybridConfig(mode="dense")
SENTENCES = [
    "Plants create oxygen through photosynthesis.", "Green plants turn light into chemical energy in their leaves.",
    "Water boils at one hundred degrees at sea level.", "Rivers flow from the mountains down to the sea.",
    "The Eiffel Tower is in Paris, the capital of France.", "Bees pollinate flowers and make honey from nectar.",
]


def _docs() -> tuple[list[str], list[str]]:
    long = "\n\n".join(" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(3)) for i in range(8))
    medium = " ".join(SENTENCES * 2)  # more than one chunk of 48 tokens, within one window
    return ["long", "medium", "short"], [long, medium, SENTENCES[0]]


def _points(kb: KnowledgeBase) -> list[tuple[Any, ...]]:
    out, offset = [], None
    while True:
        page, offset = kb.store.scroll(limit=256, offset=offset)
        out += [(p.id, p.payload.get("doc_id"), p.payload.get("chunk_index"), p.payload.get("text"),
                 p.payload.get("start"), p.payload.get("end")) for p in page]
        if offset is None:
            return sorted(out, key=lambda r: str(r))


@pytest.fixture
def tei(local_embedder: GteEncoder) -> Any:
    service = FakeService("tei", embedder=local_embedder)
    yield service
    service.close()


@pytest.mark.parametrize("chunk_size", [None, 24])
def test_remote_kb_chunks_exactly_as_the_local_kb(
    tei: FakeService, local_embedder: GteEncoder, tmp_path: Path, chunk_size: int | None
) -> None:
    ids, texts = _docs()
    remote = RemoteEncoder(tei.url, settings=FAST)
    with KnowledgeBase(tmp_path / "local", encoder=local_embedder, hybrid=DENSE, chunk_size=chunk_size) as a, \
            KnowledgeBase(tmp_path / "remote", encoder=remote, hybrid=DENSE, chunk_size=chunk_size) as b:
        assert b.chunker is not None and a.chunker is not None
        assert b.chunker.chunk_size == a.chunker.chunk_size
        a.add_texts(texts, ids=ids)
        b.add_texts(texts, ids=ids)
        pa, pb = _points(a), _points(b)
        assert len(pa) > len(texts) + 2  # several chunks, and the long document's document point
        assert pb == pa
        for q in ("how do plants make oxygen?", "where is the Eiffel Tower?"):
            ha, hb = a.query(q, top_k=5), b.query(q, top_k=5)
            assert [h.id for h in hb] == [h.id for h in ha]
            np.testing.assert_allclose([h.score for h in hb], [h.score for h in ha], atol=1e-5)
    assert any(r.path == "/tokenize" for r in tei.requests)


def test_remote_kb_with_a_local_tokenizer_chunks_as_the_local_kb(local_embedder: GteEncoder, tmp_path: Path) -> None:
    service = FakeService("openai", embedder=local_embedder)
    try:
        ids, texts = _docs()
        remote = RemoteEncoder(service.url, protocol="openai", model_name="tiny", settings=FAST,
                               tokenizer=local_embedder.tokenizer, max_length=local_embedder.max_length)
        with KnowledgeBase(tmp_path / "local", encoder=local_embedder, hybrid=DENSE) as a, \
                KnowledgeBase(tmp_path / "remote", encoder=remote, hybrid=DENSE) as b:
            a.add_texts(texts[1:], ids=ids[1:])
            b.add_texts(texts[1:], ids=ids[1:])
            assert _points(b) == _points(a)
    finally:
        service.close()


def test_remote_encoder_without_tokenizer_still_needs_whole_documents(local_embedder: GteEncoder, tmp_path: Path) -> None:
    service = FakeService("openai", embedder=local_embedder)
    try:
        remote = RemoteEncoder(service.url, protocol="openai", settings=FAST)
        assert not remote.can_tokenize
        with pytest.raises(ConfigError, match="chunk_size=0"):
            KnowledgeBase(tmp_path / "kb", encoder=remote, hybrid=DENSE)
        with KnowledgeBase(tmp_path / "kb", encoder=remote, hybrid=DENSE, chunk_size=0) as kb:
            kb.add_texts([SENTENCES[0]], ids=["a"])
            assert kb.count() == 1
    finally:
        service.close()


def test_reopening_a_remote_kb_rebuilds_the_encoder_from_the_record(
    local_embedder: GteEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = FakeService("tei", embedder=local_embedder, api_key="sekret-42")
    monkeypatch.setenv("TEI_API_KEY", "sekret-42")
    try:
        ids, texts = _docs()
        with KnowledgeBase(tmp_path / "kb", encoder=RemoteEncoder(service.url, settings=FAST), hybrid=DENSE) as kb:
            kb.add_texts(texts, ids=ids)
            before = [h.id for h in kb.query("how do plants make oxygen?", top_k=5)]
            record = kb.layout.encoder_settings
        assert "sekret-42" not in json.dumps(record)
        assert record["remote"]["url"] == service.url and record["remote"]["api_key_env"] == "TEI_API_KEY"
        with KnowledgeBase(tmp_path / "kb", hybrid=DENSE) as kb:  # no encoder: rebuilt from the record
            assert isinstance(kb.encoder, RemoteEncoder)
            assert kb.encoder.settings.max_attempts == FAST["max_attempts"]
            assert [h.id for h in kb.query("how do plants make oxygen?", top_k=5)] == before
        with pytest.raises(RemoteRequestError, match="401"):  # encoder_options override the record: a wrong key
            KnowledgeBase(tmp_path / "kb", hybrid=DENSE, encoder_options={"api_key": "wrong"})
    finally:
        service.close()


def test_reopening_a_kb_written_through_a_credentialed_url_names_what_to_pass(
    local_embedder: GteEncoder, tmp_path: Path
) -> None:
    service = FakeService("tei", embedder=local_embedder)
    try:
        port = service.url.rsplit(":", 1)[1]
        secret_url = f"http://user:pa55@127.0.0.1:{port}"
        with KnowledgeBase(tmp_path / "kb", encoder=RemoteEncoder(secret_url, settings=FAST), hybrid=DENSE) as kb:
            kb.add_texts([SENTENCES[0]], ids=["a"])
            assert "pa55" not in json.dumps(kb.layout.encoder_settings)
        with pytest.raises(ConfigError, match=r"encoder=RemoteEncoder\(url=\.\.\., protocol='tei'"):
            KnowledgeBase(tmp_path / "kb", hybrid=DENSE)
        with KnowledgeBase(tmp_path / "kb", hybrid=DENSE, encoder_options={"url": secret_url}) as kb:
            assert kb.count() == 1 and kb.query("plants", top_k=1)[0].payload["doc_id"] == "a"
    finally:
        service.close()


def test_remote_kb_with_late_chunking_and_learned_sparse_equals_the_local_kb(
    tei: FakeService, local_embedder: GteEncoder, tiny_embedder: Path, tmp_path: Path
) -> None:
    ids, texts = _docs()
    remote = RemoteEncoder(tei.url, settings=FAST, sparse_head=tiny_embedder)
    opts = {"chunk_tokens": 16}
    with KnowledgeBase(tmp_path / "local", encoder=local_embedder, long_docs="late", long_doc_options=opts) as a, \
            KnowledgeBase(tmp_path / "remote", encoder=remote, long_docs="late", long_doc_options=opts) as b:
        assert b.layout.sparse_name == a.layout.sparse_name == "sparse"
        a.add_texts(texts, ids=ids)
        b.add_texts(texts, ids=ids)
        assert _points(b) == _points(a)
        assert any(r.path == "/embed_all" for r in tei.requests)
        for q in ("how do plants make oxygen?", "where is the Eiffel Tower?"):
            ha, hb = a.query(q, top_k=5), b.query(q, top_k=5)  # hybrid: dense + learned sparse
            assert [h.id for h in hb] == [h.id for h in ha]
            np.testing.assert_allclose([h.score for h in hb], [h.score for h in ha], atol=1e-5)
            da = a.search_documents(q, top_k=2, strategy="maxsim")
            db = b.search_documents(q, top_k=2, strategy="maxsim")
            assert [d.doc_id for d in db] == [d.doc_id for d in da]


def test_one_encoder_type_and_its_tokenizing_capability(local_embedder: GteEncoder) -> None:
    from gte_rag.embed import can_tokenize

    assert can_tokenize(local_embedder)
    assert can_tokenize(RemoteEncoder("http://127.0.0.1:9", protocol="tei"))  # no I/O: TEI has /tokenize
    assert not can_tokenize(RemoteEncoder("http://127.0.0.1:9", protocol="tei", tokenizer=False))
    assert not can_tokenize(RemoteEncoder("http://127.0.0.1:9", protocol="openai"))
    assert can_tokenize(RemoteEncoder("http://127.0.0.1:9", protocol="openai", tokenizer=local_embedder.tokenizer))
    with pytest.raises(ConfigError, match="tokenizer='server' needs TEI"):
        RemoteEncoder("http://127.0.0.1:9", protocol="openai", tokenizer="server")
    with pytest.raises(ConfigError, match="pass max_length="):
        RemoteEncoder("http://127.0.0.1:9", protocol="openai", tokenizer=_no_limit(local_embedder)).max_length  # noqa: B018


def _no_limit(enc: GteEncoder) -> Any:
    tok = enc.tokenizer
    tok.model_max_length = 1 << 40  # transformers' "no limit" sentinel
    return tok
