"""Precision choices: what "auto" picks, bf16-mixed (float32 weights, bfloat16 matrix products)."""

from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gte_rag import _runtime  # noqa: E402
from gte_rag.embed import GteEncoder  # noqa: E402
from gte_rag.errors import ConfigError  # noqa: E402
from gte_rag.models import Precision, cpu_has_native_bf16, resolve_precision  # noqa: E402
from gte_rag.rerank import GteCrossEncoder  # noqa: E402

CPU = torch.device("cpu")
needs_native_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="CPU has no native bfloat16 dot products")

TEXTS = [
    "Plants create oxygen through photosynthesis.",
    "Photosynthesis is a process where plants create oxygen.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "",
    "a",
    "Qdrant stores dense and sparse vectors; hybrid search fuses both! #RAG",
    " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(80)),  # ~750 tokens
]
PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("What is the capital of France?", "Plants create oxygen through photosynthesis."),
    ("Plants create oxygen through photosynthesis.", "Photosynthesis is a process where plants create oxygen."),
    ("Rivers flow from the mountains.", "The Eiffel Tower is in Paris."),
    ("Qdrant stores dense and sparse vectors; hybrid search fuses both!", "Paris is the capital of France."),
]


def _emulated_bf16_warning() -> AbstractContextManager[Any]:
    """``pytest.warns`` for the slow-bfloat16 notice on CPUs without native bf16, else a no-op."""
    if cpu_has_native_bf16():
        return contextlib.nullcontext()
    return pytest.warns(UserWarning, match="this CPU has no native bfloat16 dot products")


@pytest.mark.parametrize(
    ("name", "weights", "compute", "label"),
    [
        ("float32", torch.float32, torch.float32, "float32"),
        ("fp32", torch.float32, torch.float32, "float32"),
        ("bf16-mixed", torch.float32, torch.bfloat16, "bf16-mixed"),
        ("mixed", torch.float32, torch.bfloat16, "bf16-mixed"),
        ("float16", torch.float16, torch.float16, "float16"),
    ],
)
def test_names_resolve(name: str, weights: Any, compute: Any, label: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the emulated-bf16 notice on CPUs without it
        p = resolve_precision(name, CPU)
    assert (p.weights, p.compute, p.name, str(p)) == (weights, compute, label, label)
    assert p.mixed == (weights != compute)


def test_torch_dtype_is_taken_as_is() -> None:
    assert resolve_precision(torch.float16, CPU) == Precision(torch.float16, torch.float16)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"dtype='int3'.*'bf16-mixed'"):
        resolve_precision("int3", CPU)


def test_auto_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU).name == "bf16-mixed"
    assert resolve_precision(None, CPU).name == "bf16-mixed"
    monkeypatch.setattr(_runtime, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", CPU).name == "float32"
    # other accelerators without a rule of their own stay exact
    assert resolve_precision("auto", torch.device("meta")).name == "float32"


def test_emulated_bf16_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match=r"dtype='bf16-mixed'.*no native bfloat16.*dtype='float32'"):
        resolve_precision("bf16-mixed", CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_precision("float32", CPU)  # no warning for exact float32


def test_autocast_context_only_when_mixed() -> None:
    x = torch.ones(2, 4)
    w = torch.ones(3, 4)
    with Precision(torch.float32, torch.bfloat16).autocast(CPU):
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16
    with Precision(torch.float32, torch.float32).autocast(CPU):
        assert torch.nn.functional.linear(x, w).dtype == torch.float32


def test_float32_stays_exact_inside_a_callers_autocast(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, dtype="float32", cache_size=0, on_empty="encode")
    outside = enc.embed_documents(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = enc.embed_documents(TEXTS)
    np.testing.assert_allclose(inside, outside, atol=1e-6, rtol=0)


def _linear_output_dtypes(model: Any) -> tuple[dict[str, set[Any]], list[Any]]:
    """Hooks recording the output dtype of every Linear, by module name."""
    seen: dict[str, set[Any]] = {}

    def hook(name: str) -> Any:
        return lambda _m, _i, out: seen.setdefault(name, set()).add(out.dtype)

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return seen, hooks


def test_encoder_mixed_keeps_fp32_weights_runs_bf16_matmuls(tiny_embedder: Path) -> None:
    texts = TEXTS
    reference = GteEncoder(tiny_embedder, dtype="float32", cache_size=0, on_empty="encode").encode(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = GteEncoder(tiny_embedder, dtype="bf16-mixed", cache_size=0, on_empty="encode")
    assert enc.dtype == torch.float32 and enc.precision.name == "bf16-mixed"
    assert "dtype='bf16-mixed'" in repr(enc)
    # linear weights held in bfloat16 (what autocast computes with); embeddings, norms and the head in float32
    dtypes = {n: p.dtype for n, p in enc._model.named_parameters()}
    assert dtypes["gte.layers.0.mlp.up_proj.weight"] == torch.bfloat16
    assert dtypes["gte.embeddings.word_embeddings.weight"] == torch.float32
    assert dtypes["gte.layers.0.post_attention_layernorm.weight"] == torch.float32
    assert dtypes["classifier.weight"] == torch.float32
    seen, hooks = _linear_output_dtypes(enc._model)
    try:
        # in a worker thread, as the async paths run it: autocast state is per thread
        with ThreadPoolExecutor(1) as pool:
            out = pool.submit(enc.encode, texts).result()
    finally:
        for h in hooks:
            h.remove()
    # the backbone's matrix products ran in bfloat16, the sparse head in float32
    assert seen.pop("classifier") == {torch.float32}
    assert seen and all(dtypes == {torch.bfloat16} for dtypes in seen.values()), seen
    ref = reference.dense
    cos = (out.dense * ref).sum(1)
    assert out.dense.dtype == np.float32
    assert cos.min() > 0.999, cos
    # learned sparse weights from the same pass stay near the float32 reference
    for ours, theirs in zip(out.sparse, reference.sparse, strict=True):
        ref_w = theirs.as_dict()
        common = set(ours.as_dict()) & set(ref_w)
        assert len(common) >= 0.9 * len(ref_w)
        assert max((abs(ours.as_dict()[k] - ref_w[k]) for k in common), default=0.0) < 0.005


@needs_native_bf16
def test_auto_is_mixed_on_this_cpu(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, cache_size=0, on_empty="encode")
    assert enc.precision.name == "bf16-mixed"
    exact = GteEncoder(tiny_embedder, cache_size=0, dtype="float32", on_empty="encode")
    assert exact.precision.name == "float32"
    auto, fp32 = enc.embed_documents(TEXTS), exact.embed_documents(TEXTS)
    assert not np.array_equal(auto, fp32)  # the default really computes in bfloat16 here
    assert float((auto * fp32).sum(1).min()) > 0.999


def test_cross_encoder_mixed_scores_close_to_reference(tiny_reranker: Path) -> None:
    ref = GteCrossEncoder(str(tiny_reranker), dtype="float32").score_pairs(PAIRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ce = GteCrossEncoder(str(tiny_reranker), dtype="bf16-mixed")
    assert ce.dtype == torch.float32 and "dtype='bf16-mixed'" in repr(ce)
    assert ce._model.classifier.weight.dtype == torch.float32
    seen, hooks = _linear_output_dtypes(ce._model)
    try:
        scores = ce.score_pairs(PAIRS)
    finally:
        for h in hooks:
            h.remove()
    # pooler and classifier run in float32: the logit is not rounded to bfloat16
    assert seen.pop("classifier") == {torch.float32} and seen.pop("gte.pooler.dense") == {torch.float32}
    assert seen and all(dtypes == {torch.bfloat16} for dtypes in seen.values()), seen
    assert scores.dtype == np.float32
    # measured 4.2e-3 on the tiny reranker (logits near -0.9, spread 0.15), about 3% of the spread, as on
    # the mGTE-format fixture (2.6e-4 of 0.01); the hooks above are what catch a head run in bfloat16
    assert float(np.abs(scores - ref).max()) < 1e-2


def test_half_weights_keep_small_heads_in_float32(tiny_reranker: Path) -> None:
    ref = GteCrossEncoder(str(tiny_reranker), dtype="float32").score_pairs(PAIRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ce = GteCrossEncoder(str(tiny_reranker), dtype="bfloat16")
    model = ce._model
    assert model.classifier.weight.dtype == torch.float32 and model.gte.pooler.dense.weight.dtype == torch.float32
    assert model.gte.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16  # the rest stays in half precision
    scores = ce.score_pairs(PAIRS)
    assert scores.dtype == np.float32
    assert float(np.abs(scores - ref).max()) < 5e-2  # measured 2.0e-2: the bfloat16 backbone dominates


def test_tied_heads_are_left_alone() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.classifier = torch.nn.Linear(4, 10, bias=False)
            self.classifier.weight = self.embed.weight  # tied, as causal LMs often do
            self.pooler = torch.nn.Linear(4, 4)

    model = Tiny().to(torch.bfloat16)
    assert Precision(torch.bfloat16, torch.bfloat16).keep_heads_float32(model) == ["pooler"]
    assert model.embed.weight.dtype == torch.bfloat16 and model.pooler.weight.dtype == torch.float32
    assert Precision(torch.float32, torch.float32).keep_heads_float32(Tiny()) == []
    # mixed: heads stay float32, a tied linear is not cast, an untied one is
    mixed = Precision(torch.float32, torch.bfloat16)
    model = Tiny()
    model.hidden = torch.nn.Linear(4, 4)
    mixed.keep_heads_float32(model)
    assert mixed.cast_linears(model) == 1
    assert model.hidden.weight.dtype == torch.bfloat16
    assert model.classifier.weight.dtype == model.embed.weight.dtype == model.pooler.weight.dtype == torch.float32


def test_mixed_encoder_equals_autocast_over_float32_weights(tiny_embedder: Path) -> None:
    """Holding linear weights in bfloat16 gives what autocast computes from float32 weights, bit for bit."""
    texts = TEXTS
    with _emulated_bf16_warning():
        mixed = GteEncoder(tiny_embedder, dtype="bf16-mixed", cache_size=0, on_empty="encode")
    exact = GteEncoder(tiny_embedder, dtype="float32", cache_size=0, on_empty="encode")
    model = exact._model
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        # what plain autocast over the float32 model gives for the dense output
        ids = [exact.tokenizer(t)["input_ids"] for t in texts[:3]]
        want = [model.gte(input_ids=torch.tensor([i])).last_hidden_state[0, 0].float() for i in ids]
    for text, w in zip(texts[:3], want):  # one text per pass, as above: same shapes, same kernels
        states = mixed.encode([text], return_token_states=True).token_states
        assert states is not None
        np.testing.assert_array_equal(states[0][0], w.numpy())
