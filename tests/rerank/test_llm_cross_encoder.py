from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gte_rag.errors import ConfigError
from gte_rag.rerank import GteLLMCrossEncoder

PAIRS = [
    ("what is the capital of france ?", "paris is the capital of france ."),
    ("plants", "plants make oxygen with light and water and the sun energy"),
    ("who", "berlin"),
    ("where is the river", "the river is in the city of berlin in germany"),
]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "chat"])
def llm(request: pytest.FixtureRequest, tiny_qwen_dir: Path) -> GteLLMCrossEncoder:
    return GteLLMCrossEncoder(str(tiny_qwen_dir), use_chat_template=request.param, batch_size=3, device="cpu", dtype="float32")


def test_batched_equals_one_at_a_time(llm: GteLLMCrossEncoder) -> None:
    batched = llm.score_pairs(PAIRS)
    single = np.array([llm.score_pairs([p])[0] for p in PAIRS])
    assert batched.dtype == np.float32 and ((batched > 0) & (batched < 1)).all()
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.ptp(batched) > 1e-3  # the tiny model does discriminate


def test_padding_sides_agree(tiny_qwen_dir: Path, llm: GteLLMCrossEncoder) -> None:
    right = GteLLMCrossEncoder(
        str(tiny_qwen_dir), use_chat_template=llm.use_chat_template, padding_side="right", batch_size=4,
        dtype="float32",
    )
    np.testing.assert_allclose(right.score_pairs(PAIRS), llm.score_pairs(PAIRS), atol=1e-5)


def test_score_is_two_way_softmax_of_next_token_logits(llm: GteLLMCrossEncoder) -> None:
    import torch

    ids = llm.build_inputs([PAIRS[0][0]], [PAIRS[0][1]])[0]
    with torch.inference_mode():
        logits = llm._model(input_ids=torch.tensor([ids])).logits[0, -1]  # type: ignore[misc]
    yes, no = (llm.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (llm.yes_token, llm.no_token))
    expected = torch.softmax(torch.stack([logits[yes], logits[no]]), 0)[0].item()
    assert llm.score_pairs([PAIRS[0]])[0] == pytest.approx(expected, abs=1e-6)


def test_rerank_order(llm: GteLLMCrossEncoder) -> None:
    docs = [d for _, d in PAIRS]
    scores = llm.score_pairs([("capital", d) for d in docs])
    ranked = llm.rerank("capital", docs, top_k=3)
    assert [r.index for r in ranked] == list(np.argsort(-scores, kind="stable")[:3])


def test_document_truncated_first_with_one_warning(tiny_qwen_dir: Path) -> None:
    llm = GteLLMCrossEncoder(str(tiny_qwen_dir), max_length=40)
    long_doc = "one two three four five six seven eight nine ten " * 10
    with pytest.warns(UserWarning, match="documents were truncated") as record:
        rows = llm.build_inputs(["capital of france", "capital"], [long_doc, long_doc])
    assert len(record) == 1 and all(len(r) == 40 for r in rows)
    q_ids = llm.tokenizer(" capital of france", add_special_tokens=False)["input_ids"]
    assert any(rows[0][i : i + len(q_ids)] == q_ids for i in range(len(rows[0])))
    with pytest.warns(UserWarning, match="query is longer"):
        assert np.isfinite(GteLLMCrossEncoder(str(tiny_qwen_dir), max_length=40).score_pairs([(long_doc, long_doc)])).all()


def test_bad_options(tiny_qwen_dir: Path) -> None:
    with pytest.raises(ConfigError, match="document"):
        GteLLMCrossEncoder(str(tiny_qwen_dir), template="{query} only", lazy_load=True)
    with pytest.raises(ConfigError, match="exactly one"):
        GteLLMCrossEncoder(str(tiny_qwen_dir), yes_token="yes no")
    with pytest.raises(ConfigError, match="padding_side"):
        GteLLMCrossEncoder(str(tiny_qwen_dir), padding_side="middle", lazy_load=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_mixed_precision_reads_yes_no_in_float32(tiny_qwen_dir: Path, llm: GteLLMCrossEncoder, padding_side: str) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emulated bfloat16 on CPUs without it
        mixed = GteLLMCrossEncoder(
            str(tiny_qwen_dir), use_chat_template=llm.use_chat_template, padding_side=padding_side,  # type: ignore[arg-type]
            batch_size=3, dtype="bf16-mixed",
        )
    head_dtypes: list[torch.dtype] = []
    hook = mixed._model.lm_head.register_forward_hook(lambda _m, _i, out: head_dtypes.append(out.dtype))  # type: ignore[union-attr]
    try:
        scores = mixed.score_pairs(PAIRS)
    finally:
        hook.remove()
    assert head_dtypes and set(head_dtypes) == {torch.float32}
    assert mixed._model.lm_head.weight.dtype == torch.float32  # type: ignore[union-attr]
    exact = llm.score_pairs(PAIRS)
    # a random tiny model amplifies bfloat16 rounding (measured up to 0.037 here)
    assert float(np.abs(scores - exact).max()) < 0.05
