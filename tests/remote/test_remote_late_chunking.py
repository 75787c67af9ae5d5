"""Late chunking and learned sparse weights through TEI's /tokenize and /embed_all.

The loopback TEI server runs the same tiny local encoder as the local path, so the remote
late-chunked vectors must equal the local ones: the windows go over the wire as text, the
server's token states come back per token (specials included), and the client pools them over
each chunk's character span. Tolerance: 1e-5 absolute (float32 states through JSON).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from remote_servers import FAST, FakeService, Fault

from gte_rag.embed import GteEncoder, TokenizedText
from gte_rag.errors import ConfigError, RemoteResponseError
from gte_rag.longdoc import LongDocEncoder
from gte_rag.remote import RemoteEncoder, TokenHead
from gte_rag.remote._tokens import Token, align_states, read_tokens

MAX_LENGTH = 32
ATOL = 1e-5
WORDS = ("plants create oxygen through photosynthesis green leaves turn light into chemical energy "
         "water boils at sea level the river flows from mountains down to sea").split()


def _long_text(sentences: int) -> str:
    paragraphs, current = [], []
    for i in range(sentences):
        current.append(" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(7)).capitalize() + ".")
        if len(current) == 3:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


DOCS = [_long_text(14), "Café naïve — plants grow in Paris. " * 12, _long_text(3)]


@pytest.fixture(scope="module")
def gte32(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, max_length=MAX_LENGTH, dtype="float32", device="cpu", cache_size=0)


@pytest.fixture(scope="module")
def bert32(tiny_bert: Path) -> GteEncoder:
    return GteEncoder(tiny_bert, max_length=MAX_LENGTH, dtype="float32", device="cpu", cache_size=0, sparse="none")


@pytest.fixture
def tei(gte32: GteEncoder) -> Any:
    service = FakeService("tei", embedder=gte32)
    yield service
    service.close()


def _compare(local: list[Any], remote: list[Any], *, sparse: bool) -> None:
    assert len(local) == len(remote)
    for a, b in zip(local, remote):
        assert b.windows == a.windows and b.num_tokens == a.num_tokens
        assert [(c.text, c.start, c.end, c.token_start, c.token_end, c.window) for c in b.chunks] == \
               [(c.text, c.start, c.end, c.token_start, c.token_end, c.window) for c in a.chunks]
        for ca, cb in zip(a.chunks, b.chunks):
            np.testing.assert_allclose(cb.dense, ca.dense, atol=ATOL)
            if sparse:
                assert ca.sparse is not None and cb.sparse is not None and len(ca.sparse) > 0
                assert cb.sparse.indices == ca.sparse.indices
                np.testing.assert_allclose(cb.sparse.values, ca.sparse.values, atol=ATOL)
            else:
                assert cb.sparse is None and ca.sparse is None
        np.testing.assert_allclose(b.document_vector, a.document_vector, atol=ATOL)


def test_remote_tokenize_equals_local_with_byte_offsets(tei: FakeService, gte32: GteEncoder) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST)
    texts = ["Plants make oxygen.", "Café naïve — 東京 plants", "  spaced\n\nout  "]
    assert remote.can_tokenize and remote.can_token_states
    assert remote.tokenize(texts) == gte32.tokenize(texts)
    assert remote.max_length == MAX_LENGTH  # from GET /info
    assert remote.document_token_budget == gte32.document_token_budget
    assert any(r.path == "/info" for r in tei.requests)


def test_remote_late_chunking_equals_local_dense_and_learned_sparse(
    tei: FakeService, gte32: GteEncoder, tiny_embedder: Path
) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST, sparse_head=tiny_embedder)
    local_docs = LongDocEncoder(gte32, mode="late", chunk_tokens=8).encode(DOCS)
    remote_docs = LongDocEncoder(remote, mode="late", chunk_tokens=8).encode(DOCS)
    assert sum(len(d.windows) for d in local_docs) >= 4  # several windows per long document
    _compare(local_docs, remote_docs, sparse=True)
    # every window went out as text (never ids), and as many as were planned
    sent = [x for r in tei.requests if r.path == "/embed_all" for x in r.body["inputs"]]
    assert all(isinstance(x, str) for x in sent)
    assert len(sent) == sum(len(d.windows) for d in local_docs)
    assert all(r.body["add_special_tokens"] for r in tei.requests if r.path == "/tokenize" and r.body["inputs"] == sent[:1])


def test_remote_late_chunking_mean_pooled_model_equals_local(bert32: GteEncoder) -> None:
    service = FakeService("tei", embedder=bert32)
    try:
        remote = RemoteEncoder(service.url, settings=FAST)
        assert remote.pooling.value == "mean"  # read from /info
        for mix in (1.0, 0.5):
            local_docs = LongDocEncoder(bert32, mode="late", chunk_tokens=8, context_mix=mix).encode(DOCS)
            remote_docs = LongDocEncoder(remote, mode="late", chunk_tokens=8, context_mix=mix).encode(DOCS)
            _compare(local_docs, remote_docs, sparse=False)
    finally:
        service.close()


def test_remote_chunks_mode_equals_local(tei: FakeService, gte32: GteEncoder, tiny_embedder: Path) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST, sparse_head=tiny_embedder)
    _compare(LongDocEncoder(gte32, mode="chunks", chunk_tokens=8).encode(DOCS[:1]),
             LongDocEncoder(remote, mode="chunks", chunk_tokens=8).encode(DOCS[:1]), sparse=True)


def test_remote_learned_sparse_of_whole_texts_equals_local(tei: FakeService, gte32: GteEncoder, tiny_embedder: Path) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST, sparse_head=tiny_embedder)
    assert remote.has_sparse and remote.sparse_mode == "learned"
    texts = ["Plants make oxygen through photosynthesis.", "Rust prevents memory errors at compile time."]
    for role in ("document", "query"):
        a = gte32.encode(texts, role=role)
        b = remote.encode(texts, role=role)
        np.testing.assert_allclose(b.dense, a.dense, atol=ATOL)
        for sa, sb in zip(a.sparse, b.sparse):
            assert sa.indices == sb.indices and len(sa) > 0
            np.testing.assert_allclose(sb.values, sa.values, atol=ATOL)
    assert not any(r.path == "/embed_sparse" for r in tei.requests)


def test_async_learned_sparse_equals_sync(tei: FakeService, tiny_embedder: Path) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST, sparse_head=tiny_embedder, cache_size=0)
    texts = ["Bees make honey.", "The river flows to the sea."]
    a = remote.encode(texts)

    async def run() -> Any:
        try:
            return await remote.aencode(texts)
        finally:
            await remote.aclose()

    b = asyncio.run(run())
    assert [s.indices for s in a.sparse] == [s.indices for s in b.sparse] and len(a.sparse[0]) > 0
    np.testing.assert_allclose(b.dense, a.dense, atol=ATOL)


def test_token_head_reads_only_the_head_and_the_special_ids(tiny_embedder: Path, gte32: GteEncoder) -> None:
    head = TokenHead.from_checkpoint(tiny_embedder)
    tok = gte32.tokenizer
    assert head.hidden_size == 32
    assert head.drop_ids == {tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id}


def test_token_head_refusals(tiny_bert: Path, tmp_path: Path, tei: FakeService) -> None:
    with pytest.raises(ConfigError, match="no token head"):
        TokenHead.from_checkpoint(tiny_bert)
    with pytest.raises(ConfigError, match="not a directory"):
        TokenHead.from_checkpoint(tmp_path / "nope")
    with pytest.raises(ConfigError, match="pass one of them"):
        RemoteEncoder(tei.url, sparse=True, sparse_head=tmp_path)
    with pytest.raises(ConfigError, match="/embed_all"):
        RemoteEncoder("http://127.0.0.1:9", protocol="openai", sparse_head=tmp_path)


def test_late_chunking_refusals(tei: FakeService, gte32: GteEncoder) -> None:
    # service-side sparse vectors cannot be cut into chunk spans
    with pytest.raises(ConfigError, match="sparse_head"):
        LongDocEncoder(RemoteEncoder(tei.url, settings=FAST, sparse=True), mode="late")
    openai = FakeService("openai", embedder=gte32)
    try:
        enc = RemoteEncoder(openai.url, protocol="openai", settings=FAST, tokenizer=gte32.tokenizer, max_length=MAX_LENGTH)
        with pytest.raises(ConfigError, match="token states"):
            LongDocEncoder(enc, mode="late")
        # plain chunks work with a local tokenizer: the same chunks as the local encoder's
        a = LongDocEncoder(gte32, mode="chunks", chunk_tokens=8).encode(DOCS[:1])[0]
        b = LongDocEncoder(enc, mode="chunks", chunk_tokens=8).encode(DOCS[:1])[0]
        assert [(c.start, c.end) for c in b.chunks] == [(c.start, c.end) for c in a.chunks]
    finally:
        openai.close()
    with pytest.raises(ConfigError, match="prompt"):
        RemoteEncoder(tei.url, settings=FAST, document_prompt_name="doc").encode(["a b"], return_token_states=True)


def test_wrong_number_of_token_states_raises(tei: FakeService) -> None:
    remote = RemoteEncoder(tei.url, settings=FAST)
    tok = remote.tokenize(["Plants make oxygen through photosynthesis."])[0]
    tei.faults.extend([Fault(), Fault(corrupt="shrink")])  # the /tokenize call passes, /embed_all loses a token
    with pytest.raises(RemoteResponseError, match="token states 0"):
        remote.encode([tok], return_token_states=True)


def test_tokenize_answer_is_checked() -> None:
    with pytest.raises(RemoteResponseError, match="1 tokenizations for 2 inputs"):
        read_tokens([[]], ["a", "b"], "http://x/tokenize")
    with pytest.raises(RemoteResponseError, match="outside its 1 bytes"):
        read_tokens([[{"id": 5, "text": "a", "special": False, "start": 0, "stop": 4}]], ["a"], "http://x/tokenize")
    # byte offsets of multi-byte text become character offsets
    got = read_tokens([[{"id": 7, "text": "é", "special": False, "start": 0, "stop": 2},
                        {"id": 8, "text": "x", "special": False, "start": 2, "stop": 3}]], ["éx"], "e")
    assert [(t.start, t.stop) for t in got[0]] == [(0, 1), (1, 2)]


def test_align_states_by_character_offsets_when_tokenizations_differ() -> None:
    # the document cut "greenhouse" as one token; the service as "green" + "##house"
    window = TokenizedText("a greenhouse b", (10, 11, 12), ((0, 1), (2, 12), (13, 14)))
    service = [Token(1, True, None, None), Token(10, False, 0, 1), Token(20, False, 2, 7), Token(21, False, 7, 12),
               Token(12, False, 13, 14), Token(2, True, None, None)]
    states = np.arange(12, dtype=np.float32).reshape(6, 2)
    full, ids, first = align_states(window, service, states)
    assert ids == [1, 10, 11, 12, 2] and first == 1
    np.testing.assert_allclose(full[2], states[2:4].mean(axis=0))
    np.testing.assert_allclose(full[[0, 1, 3, 4]], states[[0, 1, 4, 5]])


def test_record_never_holds_the_key_and_drops_credentialed_urls(tei: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEI_API_KEY", "sekret-123")
    rec = RemoteEncoder(tei.url, settings=FAST, dimension=32).encoder_record()
    assert rec["remote"]["url"] == tei.url and rec["remote"]["api_key_env"] == "TEI_API_KEY"
    assert "sekret-123" not in json.dumps(rec)
    port = tei.url.rsplit(":", 1)[1]
    cred = RemoteEncoder(f"http://user:pw@127.0.0.1:{port}", settings=FAST, dimension=32)
    rec2 = cred.encoder_record()
    assert rec2["remote"]["url"] is None and "pw" not in json.dumps(rec2)
    assert rec2["identity"] == rec["identity"]  # the identity names the host, never the credentials
    with pytest.raises(ConfigError, match="encoder=RemoteEncoder"):
        RemoteEncoder.from_record(rec2)
    again = RemoteEncoder.from_record(rec)
    assert again.encoder_record() == rec


def test_llama_index_sparse_adapter_with_a_token_head(tei: FakeService, gte32: GteEncoder, tiny_embedder: Path) -> None:
    from gte_rag.llama_index import GteRemoteSparseEmbedding

    emb = GteRemoteSparseEmbedding(url=tei.url, settings=FAST, sparse_head=str(tiny_embedder))
    text = "Plants make oxygen through photosynthesis."
    got = emb.get_text_embedding(text)
    want = gte32.encode([text]).sparse[0].as_dict()
    assert sorted(got) == sorted(want) and len(want) > 0
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], atol=ATOL)
    assert emb.sparse_head == str(tiny_embedder) and emb.encoder.token_head is not None
