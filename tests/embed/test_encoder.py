"""Encoder behaviour: every architecture, input validation, truncation, ordering, cache."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError, InputTooLongError, InputTypeError
from gte_rag.models import Pooling

TEXTS = [
    "Plants create oxygen through photosynthesis.",
    "A short one.",
    "The mitochondria is the powerhouse of the cell and makes most of its energy.",
    "Water boils at one hundred degrees at sea level.",
]


def _emulated_bf16_warning() -> AbstractContextManager[Any]:
    """``pytest.warns`` for the slow-bfloat16 notice on CPUs without native bf16, else a no-op."""
    from gte_rag._runtime import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return contextlib.nullcontext()
    return pytest.warns(UserWarning, match="this CPU has no native bfloat16 dot products")


def _reference_forward(path: Path, texts: list[str], pooling: Pooling, cls_name: str) -> np.ndarray:
    """Straight transformers forward, one text at a time, no padding."""
    import torch
    import transformers

    from gte_rag.models import load_tokenizer

    tok = load_tokenizer(path)
    model = getattr(transformers, cls_name).from_pretrained(path).eval()
    rows = []
    for t in texts:
        ids = torch.tensor([tok(t)["input_ids"]])
        with torch.no_grad():
            out = model(input_ids=ids)
        h = out.hidden_states[-1][0] if cls_name.endswith("Classification") else out.last_hidden_state[0]
        v = {Pooling.CLS: h[0], Pooling.MEAN: h.mean(0), Pooling.LAST_TOKEN: h[-1]}[pooling]
        rows.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.stack(rows)


def _token_model_reference(path: Path, texts: list[str], pooling: Pooling) -> list[tuple[np.ndarray, list[int], list[float]]]:
    """Per text, one at a time and unpadded: the pooled unit vector, the token ids and the
    token head's ReLU weights of a token-classification checkpoint."""
    import torch
    import transformers

    from gte_rag.models import load_tokenizer

    tok = load_tokenizer(path)
    model = transformers.AutoModelForTokenClassification.from_pretrained(path).eval()
    rows = []
    for t in texts:
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            h = model.base_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            weights = torch.relu(model.classifier(h)).squeeze(-1).tolist()
        v = h[0] if pooling is Pooling.CLS else h.mean(0)
        rows.append((torch.nn.functional.normalize(v, dim=-1).numpy(), ids, weights))
    return rows


def test_native_gte_checkpoint(tiny_native_gte: Path) -> None:
    enc = GteEncoder(tiny_native_gte, batch_size=4, cache_size=0, dtype="float32")
    assert enc.spec.pooling is Pooling.CLS and enc.sparse_mode == "learned"
    out = enc.encode(TEXTS)
    for i, (ref, _, _) in enumerate(_token_model_reference(tiny_native_gte, TEXTS, Pooling.CLS)):
        np.testing.assert_allclose(out.dense[i], ref, atol=1e-5)
    assert all(len(sv) > 0 for sv in out.sparse)
    assert enc.first_token_only  # dense-only calls: the last layer computes position 0 alone
    np.testing.assert_allclose(enc.encode(TEXTS, return_sparse=False).dense, out.dense, atol=1e-6, rtol=0)


def test_bert_mean_pooling_and_lexical_sparse(tiny_bert: Path) -> None:
    # the model's word pieces (analyzer="tokens"); the default word analyzer is tested in test_analyzers.py
    enc = GteEncoder(tiny_bert, batch_size=3, cache_size=0, dtype="float32", analyzer="tokens")
    assert enc.spec.pooling is Pooling.MEAN and enc.sparse_mode == "lexical"
    assert not enc.first_token_only  # mean pooling reads every position
    out = enc.encode(TEXTS)
    np.testing.assert_allclose(out.dense, _reference_forward(tiny_bert, TEXTS, Pooling.MEAN, "BertModel"), atol=1e-5)
    # document side: saturated term frequencies; query side: one unit weight per unique term
    q = enc.sparse_queries(["oxygen oxygen plants"])[0]
    assert set(q.values) == {1.0} and len(q) == len(set(enc.tokenizer("oxygen oxygen plants", add_special_tokens=False)["input_ids"]))
    d = enc.sparse_documents(["oxygen oxygen plants"])[0].as_dict()
    ox = enc.tokenizer("oxygen", add_special_tokens=False)["input_ids"]
    assert d[ox[-1]] > min(d.values())  # a repeated term weighs more than a single one


def test_bert_with_a_token_head_gives_learned_sparse_weights(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    import shutil

    import torch
    import transformers

    from gte_rag.models import load_tokenizer

    torch.manual_seed(4)
    vocab_size = len(load_tokenizer(tiny_tokenizer_dir))
    cfg = transformers.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=128, num_labels=1)
    transformers.BertForTokenClassification(cfg).eval().save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_tokenizer_dir / name, tmp_path / name)
    enc = GteEncoder(tmp_path, batch_size=3, cache_size=0, dtype="float32")
    assert enc.sparse_mode == "learned" and enc.spec.pooling is Pooling.MEAN
    out = enc.encode(TEXTS)
    for i, (ref, ids, weights) in enumerate(_token_model_reference(tmp_path, TEXTS, Pooling.MEAN)):
        np.testing.assert_allclose(out.dense[i], ref, atol=1e-5)
        best: dict[int, float] = {}
        for token, weight in zip(ids, weights):
            if weight > 0 and token not in enc._drop_ids:
                best[token] = max(best.get(token, 0.0), weight)
        got = out.sparse[i].as_dict()
        assert set(got) == set(best)
        assert all(abs(got[k] - v) <= 1e-5 for k, v in best.items())


def test_qwen2_last_token_and_instruction(tiny_qwen2: Path) -> None:
    from gte_rag.models import Architecture, ModelSpec

    enc = GteEncoder(tiny_qwen2, batch_size=4, cache_size=0, dtype="float32")
    assert enc.spec.pooling is Pooling.LAST_TOKEN
    out = enc.encode(TEXTS)
    np.testing.assert_allclose(out.dense, _reference_forward(tiny_qwen2, TEXTS, Pooling.LAST_TOKEN, "Qwen2Model"), atol=1e-5)
    spec = ModelSpec(hf_id="test/tiny-qwen2-instruct", architecture=Architecture.QWEN2, dim=32, max_tokens=512,
                     pooling=Pooling.LAST_TOKEN, query_instruction="Find facts",
                     instruction_template="Instruct: {task}\nQuery: ")
    assert spec.query_prefix() == "Instruct: Find facts\nQuery: "
    assert spec.query_prefix("Other task") == "Instruct: Other task\nQuery: "
    assert spec.query_prefix("") == ""
    assert enc.query_prefix.startswith("Instruct: ") and enc.query_prefix.endswith("\nQuery: ")
    enc_i = GteEncoder(tiny_qwen2, query_instruction="Find facts", cache_size=0, dtype="float32")
    q = enc_i.embed_queries(["what is water"])
    d = enc_i.embed_documents(["Instruct: Find facts\nQuery: what is water"])
    np.testing.assert_allclose(q, d, atol=1e-6)


def test_order_restored_with_mixed_lengths(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, batch_size=2, max_batch_tokens=64, cache_size=0)
    texts = ["word " * n for n in (40, 1, 25, 3, 60, 2)]
    batched = enc.embed_documents(texts)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(batched[i], enc.embed_documents([t])[0], atol=1e-5)


@pytest.mark.parametrize("bad", ["", "   \n\t"])
def test_empty_text_rejected(tiny_embedder: Path, bad: str) -> None:
    enc = GteEncoder(tiny_embedder)
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty"):
        enc.encode(["fine", bad])


def test_non_str_rejected(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder)
    with pytest.raises(InputTypeError, match=r"texts\[1\] is a int"):
        enc.encode(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match="wrap it in a list"):
        enc.encode("a bare string")
    assert isinstance(InputTypeError("x"), TypeError)


def test_empty_list(tiny_embedder: Path) -> None:
    out = GteEncoder(tiny_embedder).encode([])
    assert out.dense.shape == (0, 32) and out.sparse == []


def test_truncation_warns_by_default(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, max_length=16, cache_size=0)
    with pytest.warns(UserWarning, match="exceed max_length=16"):
        out = enc.encode(["word " * 50, "short"])
    assert out.num_tokens[0] == 16


def test_truncation_refused(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, max_length=16, truncate=False)
    with pytest.raises(InputTooLongError, match="text 1 has") as info:
        enc.encode(["short", "word " * 50])
    assert info.value.index == 1 and info.value.max_length == 16


def test_bad_options(tiny_embedder: Path, tiny_reranker: Path, tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="dimension=33 is outside"):
        GteEncoder(tiny_embedder, dimension=33, lazy_load=True)
    with pytest.raises(ConfigError, match="exceeds the 1024 tokens"):
        GteEncoder(tiny_embedder, max_length=1025, lazy_load=True)
    with pytest.raises(ConfigError, match="sparse='learned' needs the mGTE token head"):
        GteEncoder(tiny_bert, sparse="learned", lazy_load=True)
    with pytest.raises(ConfigError, match="reranker checkpoint"):
        GteEncoder(tiny_reranker, lazy_load=True)
    with pytest.raises(ConfigError, match="dtype='int3'"):
        GteEncoder(tiny_embedder, dtype="int3", lazy_load=True)


def test_cache_serves_sparse_after_dense_without_a_second_pass(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder)
    calls = []
    enc.load()
    hook = enc._model.gte.register_forward_hook(lambda *a: calls.append(1))
    try:
        first = enc.encode(TEXTS, role="document")
        assert len(calls) >= 1
        n = len(calls)
        again = enc.sparse_documents(TEXTS)
        dense = enc.embed_documents(TEXTS)
        assert len(calls) == n
        assert again == first.sparse
        np.testing.assert_array_equal(dense, first.dense)
        enc.encode(TEXTS, role="query")  # other role: a new pass
        assert len(calls) > n
    finally:
        hook.remove()


# Mixed lengths (one past 512 positions), an empty text and a one-letter one.
VARIED = [
    *TEXTS,
    "What is the capital of France?",
    "",
    "a",
    " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(60)),
]


def test_padded_batch_equals_one_at_a_time(tiny_embedder: Path) -> None:
    texts = VARIED
    enc = GteEncoder(tiny_embedder, batch_size=8, cache_size=0, dtype="float32", on_empty="encode")
    batched = enc.encode(texts)
    singles = [enc.encode([t]) for t in texts]
    np.testing.assert_allclose(batched.dense, np.stack([s.dense[0] for s in singles]), atol=1e-5, rtol=0)
    for got, one in zip(batched.sparse, singles, strict=True):
        want = one.sparse[0].as_dict()
        assert set(got.as_dict()) == set(want)
        assert all(abs(got.as_dict()[k] - v) <= 1e-5 for k, v in want.items())


@pytest.mark.parametrize("batch_size", [1, 5])
def test_dense_only_calls_skip_the_last_layers_other_positions(tiny_embedder: Path, batch_size: int) -> None:
    texts = [t for t in VARIED if t]
    enc = GteEncoder(tiny_embedder, dtype="float32", batch_size=batch_size, cache_size=0)
    assert enc.first_token_only  # CLS pooling: dense vectors read position 0 only
    widths: list[int] = []
    hook = enc._model.gte.register_forward_hook(lambda m, a, out: widths.append(out.last_hidden_state.shape[1]))
    try:
        dense_only = enc.encode(texts, return_sparse=False)
        assert set(widths) == {1}
        widths.clear()
        full = enc.encode(texts)  # learned sparse weights need every position
        assert min(widths) > 1
    finally:
        hook.remove()
    ref = np.stack([row[0] for row in _token_model_reference(tiny_embedder, texts, Pooling.CLS)])
    np.testing.assert_allclose(dense_only.dense, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(dense_only.dense, full.dense, atol=1e-6, rtol=0)
    states = enc.encode(texts[:3], return_sparse=False, return_token_states=True)
    assert states.token_states is not None
    assert [s.shape[0] for s in states.token_states] == states.num_tokens


def test_dense_only_and_sparse_calls_in_parallel_threads(tiny_embedder: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    enc = GteEncoder(tiny_embedder, dtype="float32", batch_size=2, on_empty="encode", cache_size=0)
    ref = GteEncoder(tiny_embedder, dtype="float32", batch_size=1, on_empty="encode", cache_size=0).encode(VARIED)
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(enc.encode, VARIED, return_sparse=bool(i % 2)) for i in range(8)]
        outs = [j.result() for j in jobs]
    for i, out in enumerate(outs):
        np.testing.assert_allclose(out.dense, ref.dense, atol=1e-5, rtol=0)
        if i % 2:
            for sv, want in zip(out.sparse, ref.sparse, strict=True):
                assert set(sv.as_dict()) == set(want.as_dict())
                assert all(abs(sv.as_dict()[k] - v) <= 1e-5 for k, v in want.as_dict().items())


def test_bf16_dtype_runs_close_to_fp32(tiny_embedder: Path) -> None:
    import torch

    fp32 = GteEncoder(tiny_embedder, cache_size=0, dtype="float32").embed_documents(TEXTS)
    with _emulated_bf16_warning():
        enc = GteEncoder(tiny_embedder, dtype="bf16", cache_size=0)
    assert enc.dtype == torch.bfloat16
    bf16 = enc.embed_documents(TEXTS)
    assert bf16.dtype == np.float32
    assert float((fp32 * bf16).sum(1).min()) > 0.99
