"""Fixtures for loading models by name through a loopback hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import TINY_REPO, UNNEEDED_FILES, HubRepo, LoopbackHub


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Hugging Face cache for this test, network allowed (whatever the outer environment says)."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_ETAG_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: an outer HF_HUB_OFFLINE=1 must not leak in
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return cache


@pytest.fixture
def hub(hub_cache: Path, tiny_embedder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackHub]:
    """A loopback hub serving ``tiny_embedder`` as ``test-org/tiny-gte`` (plus files nobody needs)."""
    pooling = b'{"word_embedding_dimension": 32, "pooling_mode_cls_token": true}'
    with LoopbackHub() as server:
        server.add(TINY_REPO, HubRepo.from_directory(tiny_embedder, extra={**UNNEEDED_FILES, "1_Pooling/config.json": pooling}))
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server
