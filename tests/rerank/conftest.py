from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import build_tiny_bert_cross_encoder, build_tiny_qwen2


@pytest.fixture(scope="session")
def legacy_reranker_dir(legacy_tiny: Path) -> Path:
    """The mGTE-format reranker of ../shared/fixtures/gte-legacy-tiny (skips without it, see tests/conftest.py)."""
    return legacy_tiny / "reranker"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-ce"))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))
