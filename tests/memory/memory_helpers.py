"""Helpers shared by the memory tests (plain functions; the fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def location_for(engine: str, tmp_path: Path) -> str:
    """Qdrant Edge in a directory, or qdrant-client local mode in memory."""
    return str(tmp_path / "memory") if engine == "edge" else ":memory:"


def ids_of(hits: Any) -> set[str]:
    """The ids of a list of hits or records."""
    return {h.id for h in hits}
