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


def test_normalize_applies_sigmoid(legacy_reranker_dir: Path, legacy_ce: GteCrossEncoder, legacy_expected: dict[str, Any]) -> None:
    ce = GteCrossEncoder(str(legacy_reranker_dir), normalize=True, dtype="float32")
    logits = legacy_ce.score_pairs(_pairs(legacy_expected))
    np.testing.assert_allclose(ce.score_pairs(_pairs(legacy_expected)), 1 / (1 + np.exp(-logits)), atol=1e-6)


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


def test_max_length_above_model_limit_is_rejected(legacy_reranker_dir: Path) -> None:
    with pytest.raises(ConfigError, match="8192"):
        GteCrossEncoder(str(legacy_reranker_dir), max_length=8193, lazy_load=True)
    assert GteCrossEncoder(str(legacy_reranker_dir), lazy_load=True).max_length == 8192


def test_tokenization_matches_the_tokenizer(bert_ce: GteCrossEncoder) -> None:
    q, d = "what is the capital of france", "paris is the capital"
    item = bert_ce.tokenize_pairs([q], [d])[0]
    ref = bert_ce.tokenizer(q, d)
    assert item["input_ids"] == ref["input_ids"]
    assert item["token_type_ids"] == ref["token_type_ids"]


def test_long_document_truncated_on_document_side_warning_once(legacy_reranker_dir: Path, legacy_expected: dict[str, Any]) -> None:
    ce = GteCrossEncoder(str(legacy_reranker_dir), max_length=64)
    query, long_doc = legacy_expected["texts"][0], legacy_expected["texts"][-1]
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


def test_query_longer_than_budget_is_truncated_not_fatal(legacy_reranker_dir: Path, legacy_expected: dict[str, Any]) -> None:
    ce = GteCrossEncoder(str(legacy_reranker_dir), max_length=32)
    long_text = legacy_expected["texts"][-1]
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


def test_long_query_cut_equals_transformers_longest_first(legacy_reranker_dir: Path, legacy_expected: dict[str, Any]) -> None:
    ce = GteCrossEncoder(str(legacy_reranker_dir), max_length=24)
    q, d = legacy_expected["texts"][10], legacy_expected["texts"][2]  # 42 and 29 tokens
    with pytest.warns(UserWarning, match="query is longer"):
        item = ce.tokenize_pairs([q], [d])[0]
    ref = ce.tokenizer(q, d, truncation="longest_first", max_length=24)["input_ids"]
    assert item["input_ids"] == ref
