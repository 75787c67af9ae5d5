from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tiny_models import build_tiny_bert_cross_encoder, build_tiny_qwen2

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "gte-legacy-tiny"
FIXTURES = FIXTURES if FIXTURES.is_dir() else Path("/work/shared/fixtures/gte-legacy-tiny")


@pytest.fixture(scope="session")
def legacy_reranker_dir() -> Path:
    path = FIXTURES / "reranker"
    if not path.is_dir():
        pytest.skip(f"shared fixture {path} is not available")
    return path


@pytest.fixture(scope="session")
def legacy_expected() -> dict[str, Any]:
    return json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-ce"))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))
