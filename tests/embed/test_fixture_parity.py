"""gte-legacy-tiny: our loader + encoder reproduce the reference implementation to 1e-5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag.embed import GteEncoder

TOL = 1e-5


@pytest.fixture(scope="module", params=[1, 3, 12], ids=lambda b: f"batch{b}")
def encoded(request: pytest.FixtureRequest, legacy_tiny: Path, legacy_expected: dict[str, Any]) -> Any:
    enc = GteEncoder(legacy_tiny / "embedder", device="cpu", dtype="float32", batch_size=request.param,
                     on_empty="encode", cache_size=0)
    return enc, enc.encode(legacy_expected["texts"])


def test_token_counts(encoded: Any, legacy_expected: dict[str, Any]) -> None:
    _, out = encoded
    assert out.num_tokens == legacy_expected["num_tokens"]


def test_dense(encoded: Any, legacy_expected: dict[str, Any]) -> None:
    _, out = encoded
    np.testing.assert_allclose(out.dense, np.array(legacy_expected["dense"]), atol=TOL, rtol=0)


def test_dense_elastic_dim32(legacy_tiny: Path, legacy_expected: dict[str, Any]) -> None:
    enc = GteEncoder(legacy_tiny / "embedder", dimension=32, batch_size=5, dtype="float32", on_empty="encode", cache_size=0)
    out = enc.encode(legacy_expected["texts"])
    assert out.dense.shape == (len(legacy_expected["texts"]), 32)
    np.testing.assert_allclose(out.dense, np.array(legacy_expected["dense_dim32"]), atol=TOL, rtol=0)


def _check_sparse(ours: dict[Any, float], ref: dict[Any, float]) -> None:
    assert set(ours) == set(ref)
    for key, weight in ref.items():
        assert abs(ours[key] - weight) <= TOL, key


def test_sparse_by_token_id(encoded: Any, legacy_expected: dict[str, Any]) -> None:
    _, out = encoded
    for sv, ref in zip(out.sparse, legacy_expected["sparse_by_token_id"], strict=True):
        _check_sparse(sv.as_dict(), {int(k): v for k, v in ref.items()})


def test_sparse_by_token_str(encoded: Any, legacy_expected: dict[str, Any]) -> None:
    enc, out = encoded
    for sv, ref in zip(out.sparse, legacy_expected["sparse_by_token_str"], strict=True):
        by_str = {enc.tokenizer.decode([i]): w for i, w in sv.as_dict().items()}
        _check_sparse(by_str, ref)


def test_hybrid_scores(encoded: Any, legacy_expected: dict[str, Any]) -> None:
    _, out = encoded
    for case in legacy_expected["hybrid_scores"]:
        q, d = case["query"], case["doc"]
        dense = float(out.dense[q] @ out.dense[d])
        lexical = out.sparse[q].dot(out.sparse[d])
        assert dense == pytest.approx(case["dense"], abs=TOL)
        assert lexical == pytest.approx(case["lexical"], abs=TOL)
        assert dense * 1.0 + lexical * 0.1 == pytest.approx(case["hybrid"], abs=TOL)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_dense_only_calls_skip_the_last_layers_other_positions(
    legacy_tiny: Path, legacy_expected: dict[str, Any], batch_size: int
) -> None:
    enc = GteEncoder(legacy_tiny / "embedder", dtype="float32", batch_size=batch_size, on_empty="encode", cache_size=0)
    assert enc.first_token_only  # CLS pooling: dense vectors read position 0 only
    widths: list[int] = []
    hook = enc._model.gte.register_forward_hook(lambda m, a, out: widths.append(out.last_hidden_state.shape[1]))
    try:
        dense_only = enc.encode(legacy_expected["texts"], return_sparse=False)
        assert set(widths) == {1}
        widths.clear()
        full = enc.encode(legacy_expected["texts"])  # learned sparse weights need every position
        assert min(widths) > 1
    finally:
        hook.remove()
    np.testing.assert_allclose(dense_only.dense, np.array(legacy_expected["dense"]), atol=TOL, rtol=0)
    np.testing.assert_allclose(dense_only.dense, full.dense, atol=1e-6, rtol=0)
    states = enc.encode(legacy_expected["texts"][:3], return_sparse=False, return_token_states=True)
    assert states.token_states is not None
    assert [s.shape[0] for s in states.token_states] == states.num_tokens


def test_dense_only_and_sparse_calls_in_parallel_threads(legacy_tiny: Path, legacy_expected: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    enc = GteEncoder(legacy_tiny / "embedder", dtype="float32", batch_size=2, on_empty="encode", cache_size=0)
    texts = legacy_expected["texts"]
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(enc.encode, texts, return_sparse=bool(i % 2)) for i in range(8)]
        outs = [j.result() for j in jobs]
    for i, out in enumerate(outs):
        np.testing.assert_allclose(out.dense, np.array(legacy_expected["dense"]), atol=TOL, rtol=0)
        if i % 2:
            for sv, ref in zip(out.sparse, legacy_expected["sparse_by_token_id"], strict=True):
                _check_sparse(sv.as_dict(), {int(k): v for k, v in ref.items()})
