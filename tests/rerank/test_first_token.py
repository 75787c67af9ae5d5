"""The last-layer first-token shortcut of cross-encoders: same logits, guarded install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gte_rag.models import Precision
from gte_rag.models import _first_token as ft
from gte_rag.rerank import GteCrossEncoder

CPU = torch.device("cpu")


FP32 = Precision(torch.float32, torch.float32)


def _tiny(kind: str, attn: str, precision: Precision = FP32) -> torch.nn.Module:
    """A 3-layer random cross-encoder with large weights (std 0.4), so the last layer moves the
    output by as much as a trained one does and a wrong shortcut shows in the logits."""
    import transformers

    common: dict[str, Any] = {
        "vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
        "intermediate_size": 64, "num_labels": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.4,
    }
    torch.manual_seed(3)
    if kind == "gte":
        cfg = transformers.GteConfig(
            **common, max_position_embeddings=256, type_vocab_size=1,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
        model = transformers.GteForSequenceClassification(cfg)
    else:
        config_cls, model_cls = {
            "bert": (transformers.BertConfig, transformers.BertForSequenceClassification),
            "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification),
            "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification),
        }[kind]
        cfg = config_cls(**common, max_position_embeddings=256, pad_token_id=1)
        model = model_cls(cfg)
    model.config._attn_implementation = attn
    model.eval()
    precision.keep_heads_float32(model)
    precision.cast_linears(model)
    return model


def _batch(lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.randint(5, 120, (len(lengths), longest), generator=gen)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], precision: Precision = FP32) -> torch.Tensor:
    with torch.inference_mode(), precision.autocast(CPU):
        return model(**batch).logits[:, 0].float().clone()


def _first_hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor], precision: Precision = FP32) -> torch.Tensor:
    with torch.inference_mode(), precision.autocast(CPU):
        return model.base_model(**batch).last_hidden_state[:, 0].float().clone()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta", "gte"])
def test_same_logits_and_only_the_first_position_is_computed(kind: str, attn: str) -> None:
    model = _tiny(kind, attn)
    batches = [_batch([11, 6, 2]), _batch([7, 7]), _batch([9])]  # padded, unpadded (mask dropped), one row
    full = [_logits(model, b) for b in batches]
    full_first = [_first_hidden(model, b) for b in batches]
    assert min(abs(x).max().item() for x in full) > 0.05  # logits large enough for a wrong shortcut to show
    assert ft.install_first_token_last_layer(model, device=CPU, precision=FP32)
    with torch.inference_mode():
        hidden = model.base_model(**batches[0]).last_hidden_state
    assert hidden.shape == (3, 1, 32)  # the shortcut ran: one position left after the last layer
    for b, ref, ref_first in zip(batches, full, full_first):
        torch.testing.assert_close(_logits(model, b), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(_first_hidden(model, b), ref_first, atol=1e-5, rtol=1e-5)
    ft.remove_first_token_last_layer(model)
    with torch.inference_mode():
        assert model.base_model(**batches[0]).last_hidden_state.shape == (3, 11, 32)


def test_heads_that_read_other_positions_are_left_alone() -> None:
    import transformers

    cfg = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, num_labels=2)
    model = transformers.BertForTokenClassification(cfg).eval()
    assert not ft.install_first_token_last_layer(model, device=CPU, precision=FP32)
    assert "forward" not in vars(model.bert.encoder.layer[-1])


def test_a_wrong_shortcut_is_caught_by_the_probe_and_taken_out(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny("bert", "sdpa")
    batch = _batch([11, 6, 2])
    ref = _logits(model, batch)
    real = ft._bert_forward

    def second_position(layer: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        # computes the layer right but hands back position 1: what a wrong slice would do
        full = type(layer).forward(layer, hidden_states, *args, **kwargs)
        return full[:, 1:2]

    monkeypatch.setattr(ft, "_bert_forward", second_position)
    assert not ft.install_first_token_last_layer(model, device=CPU, precision=FP32)
    assert "forward" not in vars(model.bert.encoder.layer[-1])
    torch.testing.assert_close(_logits(model, batch), ref, atol=0, rtol=0)

    def broken(layer: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError("unexpected keyword argument")

    monkeypatch.setattr(ft, "_bert_forward", broken)
    assert not ft.install_first_token_last_layer(model, device=CPU, precision=FP32)
    torch.testing.assert_close(_logits(model, batch), ref, atol=0, rtol=0)

    monkeypatch.setattr(ft, "_bert_forward", real)
    assert ft.install_first_token_last_layer(model, device=CPU, precision=FP32)


def test_cross_encoders_use_it_and_keep_the_reference_logits(tiny_reranker: Path, tiny_bert_dir: Path) -> None:
    import transformers

    ce = GteCrossEncoder(str(tiny_reranker), dtype="float32", lazy_load=True)
    assert ce.first_token_only  # loads
    pairs = [
        ("What is the capital of France?", "Paris is the capital and most populous city of France."),
        ("What is the capital of France?", "Plants create oxygen through photosynthesis."),
        ("Plants create oxygen through photosynthesis.", "Photosynthesis is a process where plants create oxygen."),
        ("Rivers flow from the mountains.", "a"),
    ]
    # the reference: plain transformers, full last layer, one pair at a time, no padding
    model = transformers.GteForSequenceClassification.from_pretrained(str(tiny_reranker)).eval()
    with torch.no_grad():
        ref = [model(**ce.tokenizer(q, d, return_tensors="pt")).logits[0, 0].item() for q, d in pairs]
    assert np.ptp(ref) > 1e-3
    np.testing.assert_allclose(ce.score_pairs(pairs), ref, atol=1e-5, rtol=0)
    assert GteCrossEncoder(str(tiny_bert_dir), dtype="float32").first_token_only


@pytest.mark.parametrize("kind", ["bert", "gte"])
def test_mixed_precision_keeps_it_and_its_scores(kind: str) -> None:
    mixed = Precision(torch.float32, torch.bfloat16)
    model = _tiny(kind, "sdpa", mixed)
    batch = _batch([11, 6, 2])
    full = _logits(model, batch, mixed)
    assert ft.install_first_token_last_layer(model, device=CPU, precision=mixed)
    torch.testing.assert_close(_logits(model, batch, mixed), full, atol=1e-3, rtol=1e-3)


def test_a_wrong_shortcut_is_caught_in_mixed_precision_too(monkeypatch: pytest.MonkeyPatch) -> None:
    mixed = Precision(torch.float32, torch.bfloat16)
    model = _tiny("gte", "sdpa", mixed)

    def keys_not_rotated(layer: Any, hidden_states: torch.Tensor, attention_mask: Any = None,
                         position_embeddings: Any = None, **kwargs: Any) -> torch.Tensor:
        cos, sin = position_embeddings
        flat = (torch.ones_like(cos), torch.zeros_like(sin))  # no rotation: positions are lost
        return real(layer, hidden_states, attention_mask, flat, **kwargs)

    real = ft._gte_forward
    monkeypatch.setattr(ft, "_gte_forward", keys_not_rotated)
    assert not ft.install_first_token_last_layer(model, device=CPU, precision=mixed)
