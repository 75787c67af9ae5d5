"""Fixtures for the evaluation tests: the real BEIR-layout sets in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gte_rag.eval import BeirDataset, load_beir

DATA_DIR_ENV = "GTE_RAG_DATA_DIR"


def _data_dir() -> Path:
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    shared = os.environ.get("GTE_RAG_SHARED_DIR")
    if shared:
        return Path(shared) / "data"
    # tests/eval/conftest.py -> the folder beside the checkout
    return Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(
            f"needs ../shared/data (real data sets); not found at {path}; set {DATA_DIR_ENV} to the folder that "
            "holds scifact/ and cranfield/"
        )
    return path


def _dataset_dir(data_dir: Path, name: str) -> Path:
    path = data_dir / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"needs ../shared/data (real data sets); {name} not found under {data_dir} (no {path / 'corpus.jsonl'})")
    return path


@pytest.fixture(scope="session")
def scifact_dir(data_dir: Path) -> Path:
    return _dataset_dir(data_dir, "scifact")


@pytest.fixture(scope="session")
def cranfield_dir(data_dir: Path) -> Path:
    return _dataset_dir(data_dir, "cranfield")


@pytest.fixture(scope="session")
def scifact(scifact_dir: Path) -> BeirDataset:
    return load_beir(scifact_dir)


@pytest.fixture(scope="session")
def cranfield(cranfield_dir: Path) -> BeirDataset:
    return load_beir(cranfield_dir)
