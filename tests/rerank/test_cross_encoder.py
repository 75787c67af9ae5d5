from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag.errors import ConfigError, InputTypeError
from gte_rag.rerank import GteCrossEncoder, RerankResult


@pytest.fixture(scope="module")
def legacy_ce(legacy_reranker_dir: Path) -> GteCrossEncoder:
    return GteCrossEncoder(str(legacy_reranker_dir), device="cpu", dtype="float32")


LONG_TEXT = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(60))  # ~590 tokens
PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("What is the capital of France?", "Plants create oxygen through photosynthesis."),
    ("Plants create oxygen through photosynthesis.", "Photosynthesis is a process where plants create oxygen."),
    ("Rust memory safety", LONG_TEXT),
    ("a", "Rivers flow from the mountains down to the sea."),
]


@pytest.fixture(scope="module")
def tiny_ce(tiny_reranker: Path) -> GteCrossEncoder:
    return GteCrossEncoder(str(tiny_reranker), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def bert_ce(tiny_bert_dir: Path) -> GteCrossEncoder:
    return GteCrossEncoder(str(tiny_bert_dir), device="cpu", batch_size=3, dtype="float32")


def _pairs(expected: dict[str, Any]) -> list[tuple[str, str]]:
    return [(q, d) for q, d in expected["rerank_pairs"]]


def test_reproduces_reference_logits_one_at_a_time(legacy_ce: GteCrossEncoder, legacy_expected: dict[str, Any]) -> None:
    pairs = _pairs(legacy_expected)
    got = np.array([legacy_ce.score_pairs([p])[0] for p in pairs])
    np.testing.assert_allclose(got, legacy_expected["rerank_logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("batch_size", "max_batch_tokens"), [(2, 16384), (32, 16384), (32, 60)])
def test_reproduces_reference_logits_in_padded_batches(
    legacy_reranker_dir: Path, legacy_expected: dict[str, Any], batch_size: int, max_batch_tokens: int
) -> None:
    ce = GteCrossEncoder(
        str(legacy_reranker_dir), batch_size=batch_size, max_batch_tokens=max_batch_tokens, dtype="float32"
    )
    scores = ce.score_pairs(_pairs(legacy_expected))
    assert scores.dtype == np.float32 and scores.shape == (len(legacy_expected["rerank_pairs"]),)
    np.testing.assert_allclose(scores, legacy_expected["rerank_logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("batch_size", "max_batch_tokens"), [(2, 16384), (32, 16384), (32, 60)])
def test_padded_batches_equal_one_at_a_time(
    tiny_reranker: Path, tiny_ce: GteCrossEncoder, batch_size: int, max_batch_tokens: int
) -> None:
    one_by_one = np.array([tiny_ce.score_pairs([p])[0] for p in PAIRS])
    assert np.ptp(one_by_one) > 1e-3  # the pairs score apart, so a mixed-up order would show
    ce = GteCrossEncoder(str(tiny_reranker), batch_size=batch_size, max_batch_tokens=max_batch_tokens, dtype="float32")
    scores = ce.score_pairs(PAIRS)
    assert scores.dtype == np.float32 and scores.shape == (len(PAIRS),)
    np.testing.assert_allclose(scores, one_by_one, atol=1e-5, rtol=0)


def test_normalize_applies_sigmoid(tiny_reranker: Path, tiny_ce: GteCrossEncoder) -> None:
    ce = GteCrossEncoder(str(tiny_reranker), normalize=True, dtype="float32")
    logits = tiny_ce.score_pairs(PAIRS)
    np.testing.assert_allclose(ce.score_pairs(PAIRS), 1 / (1 + np.exp(-logits)), atol=1e-6)


def test_rerank_sorts_desc_top_k_and_ties_stable(bert_ce: GteCrossEncoder) -> None:
    docs = ["paris is the capital of france", "berlin", "the river", "berlin", "plants make oxygen"]
    scores = bert_ce.score_pairs([("capital of france", d) for d in docs])
    ranked = bert_ce.rerank("capital of france", docs)
    assert [r.index for r in ranked] == list(np.argsort(-scores, kind="stable"))
    assert all(isinstance(r, RerankResult) and r.document == docs[r.index] for r in ranked)
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    # the two identical documents tie; the earlier one comes first
    pos = [r.index for r in ranked]
    assert pos.index(1) < pos.index(3)
    assert [r.index for r in bert_ce.rerank("capital of france", docs, top_k=2)] == pos[:2]


def test_empty_inputs(bert_ce: GteCrossEncoder) -> None:
    out = bert_ce.score_pairs([])
    assert out.shape == (0,) and out.dtype == np.float32
    assert bert_ce.rerank("q", []) == []


def test_non_str_inputs_name_the_index(bert_ce: GteCrossEncoder) -> None:
    with pytest.raises(InputTypeError, match=r"pairs\[1\]\[1\]"):
        bert_ce.score_pairs([("a", "b"), ("a", 3)])  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match=r"documents\[2\]"):
        bert_ce.rerank("q", ["a", "b", None])  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match="query"):
        bert_ce.rerank(5, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="top_k"):
        bert_ce.rerank("q", ["a"], top_k=0)


def test_max_length_above_model_limit_is_rejected(tiny_reranker: Path) -> None:
    with pytest.raises(ConfigError, match="1024"):
        GteCrossEncoder(str(tiny_reranker), max_length=1025, lazy_load=True)
    assert GteCrossEncoder(str(tiny_reranker), lazy_load=True).max_length == 1024


def test_tokenization_matches_the_tokenizer(bert_ce: GteCrossEncoder) -> None:
    q, d = "what is the capital of france", "paris is the capital"
    item = bert_ce.tokenize_pairs([q], [d])[0]
    ref = bert_ce.tokenizer(q, d)
    assert item["input_ids"] == ref["input_ids"]
    assert item["token_type_ids"] == ref["token_type_ids"]


def test_long_document_truncated_on_document_side_warning_once(tiny_reranker: Path) -> None:
    ce = GteCrossEncoder(str(tiny_reranker), max_length=64)
    query, long_doc = "Plants create oxygen through photosynthesis.", LONG_TEXT
    with pytest.warns(UserWarning, match="documents were truncated") as record:
        items = ce.tokenize_pairs([query, query], [long_doc, "short"])
    assert len([w for w in record if "truncated" in str(w.message)]) == 1
    q_ids = ce.tokenizer(query, add_special_tokens=False)["input_ids"]
    assert len(items[0]["input_ids"]) == 64
    assert items[0]["input_ids"][1 : 1 + len(q_ids)] == q_ids  # the whole query survives
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second truncation on the same instance stays quiet
        scores = ce.score_pairs([(query, long_doc)])
    assert np.isfinite(scores).all()


def test_query_longer_than_budget_is_truncated_not_fatal(tiny_reranker: Path) -> None:
    ce = GteCrossEncoder(str(tiny_reranker), max_length=32)
    long_text = LONG_TEXT
    with pytest.warns(UserWarning, match="query is longer"):
        scores = ce.score_pairs([(long_text, "a short document"), (long_text, long_text)])
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_matches_sentence_transformers_cross_encoder(tiny_bert_dir: Path, bert_ce: GteCrossEncoder) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    st = CrossEncoder(str(tiny_bert_dir), max_length=128, device="cpu", activation_fn=torch.nn.Identity())
    pairs = [
        ("what is the capital of france ?", "paris is the capital of france ."),
        ("plants", "plants make oxygen with light and water and the sun energy " * 3),
        ("who", "berlin"),
        ("query", "one two three four five six seven eight nine ten " * 20),  # > 128 tokens: truncated by both
    ]
    with pytest.warns(UserWarning, match="truncated"):
        ours = GteCrossEncoder(str(tiny_bert_dir), batch_size=2, dtype="float32").score_pairs(pairs)
    theirs = st.predict(pairs, batch_size=2)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_long_query_cut_equals_transformers_longest_first(tiny_reranker: Path) -> None:
    ce = GteCrossEncoder(str(tiny_reranker), max_length=24)
    q = "Qdrant stores dense and sparse vectors together, with a payload for every point, and hybrid search fuses both of them! #RAG"
    d = "Photosynthesis is a process where plants create oxygen from water and light in their green leaves."
    nq, nd = (len(ce.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (q, d))
    assert nq > nd > 24 - 3  # 43 and 22 tokens past [CLS] q [SEP] d [SEP]: both are cut, the longer query first
    with pytest.warns(UserWarning, match="query is longer"):
        item = ce.tokenize_pairs([q], [d])[0]
    ref = ce.tokenizer(q, d, truncation="longest_first", max_length=24)["input_ids"]
    assert item["input_ids"] == ref
