"""Tiny random checkpoints of each architecture, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / "embedder" / name, dst / name)


@pytest.fixture(scope="session")
def tiny_native_gte(tmp_path_factory: pytest.TempPathFactory, legacy_tiny: Path) -> Path:
    """A native ``model_type: "gte"`` checkpoint with the token head."""
    import torch
    from transformers import GteConfig, GteForTokenClassification

    torch.manual_seed(0)
    cfg = GteConfig(
        vocab_size=8000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=1024, type_vocab_size=1, num_labels=1, hidden_dropout_prob=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    path = tmp_path_factory.mktemp("native-gte")
    GteForTokenClassification(cfg).save_pretrained(path)
    _copy_tokenizer(legacy_tiny, path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, legacy_tiny: Path) -> Path:
    """A BERT encoder (GTE v1 architecture: mean pooling)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=8000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=1)
    path = tmp_path_factory.mktemp("bert")
    BertModel(cfg).save_pretrained(path)
    _copy_tokenizer(legacy_tiny, path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory, legacy_tiny: Path) -> Path:
    """A Qwen2 decoder (gte-Qwen2 architecture: last-token pooling)."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    torch.manual_seed(2)
    cfg = Qwen2Config(vocab_size=8000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512, pad_token_id=1)
    path = tmp_path_factory.mktemp("qwen2")
    Qwen2Model(cfg).save_pretrained(path)
    _copy_tokenizer(legacy_tiny, path)
    return path
