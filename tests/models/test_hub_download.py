"""Models by name: fetched through huggingface_hub from a loopback hub, then found offline.

No mock of gte_rag and no internet: ``hub_server.LoopbackHub`` is a real HTTP server on
127.0.0.1 that speaks the hub's model-info and file API; ``HF_ENDPOINT`` points at it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from hub_server import TINY_REPO, UNNEEDED_FILES, HubRepo, LoopbackHub

from gte_rag.errors import ModelLoadError
from gte_rag.models import (
    Architecture,
    ModelSpec,
    download_model,
    list_models,
    register_model,
    resolve_checkpoint,
    select_checkpoint_files,
)

TEXTS = ["Plants create oxygen through photosynthesis.", "Rust gives memory safety."]


def _fetched(hub: LoopbackHub) -> set[str]:
    return {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p, _ in hub.state.requests if m == "GET" and "/resolve/" in p}


def test_first_load_downloads_only_what_the_loader_needs_then_works_offline(
    hub: LoopbackHub, hub_cache: Path, tiny_embedder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gte_rag.embed import GteEncoder

    enc = GteEncoder(TINY_REPO, device="cpu", dtype="float32", cache_size=0)
    sha = hub.state.repos[TINY_REPO].sha
    snapshot = hub_cache / "models--test-org--tiny-gte" / "snapshots" / sha
    assert enc.checkpoint.path == snapshot  # the standard cache layout
    assert _fetched(hub) == {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors",
                             "1_Pooling/config.json"}
    assert not set(UNNEEDED_FILES) & {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*")}
    ref = GteEncoder(tiny_embedder, device="cpu", dtype="float32", cache_size=0)
    np.testing.assert_allclose(enc.embed_documents(TEXTS), ref.embed_documents(TEXTS), atol=1e-6)

    # the hub goes away: the cached copy is found without a single request
    before = len(hub.state.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = GteEncoder(TINY_REPO, device="cpu", dtype="float32", cache_size=0, local_files_only=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    third = GteEncoder(TINY_REPO, device="cpu", dtype="float32", cache_size=0)  # online, but cached: no request
    assert len(hub.state.requests) == before
    np.testing.assert_allclose(again.embed_documents(TEXTS), third.embed_documents(TEXTS), atol=0)


def test_offline_switches_refuse_at_once_without_a_request(hub: LoopbackHub, monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"not found on this machine.*local_files_only=True") as info:
        resolve_checkpoint(TINY_REPO, local_files_only=True)
    assert "hf download test-org/tiny-gte" in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"not found on this machine.*HF_HUB_OFFLINE"):
        resolve_checkpoint(TINY_REPO)
    assert hub.state.requests == []
    assert time.monotonic() - start < 2


def test_every_model_class_takes_local_files_only(hub: LoopbackHub) -> None:
    from gte_rag import GteEmbedding, GteLLMReranker, GteReranker, GteSparseEmbedding, KnowledgeBase
    from gte_rag.embed import GteEncoder
    from gte_rag.rerank import GteCrossEncoder, GteLLMCrossEncoder

    builders = [
        lambda: GteEncoder(TINY_REPO, local_files_only=True),
        lambda: GteCrossEncoder(TINY_REPO, local_files_only=True),
        lambda: GteLLMCrossEncoder(TINY_REPO, local_files_only=True),
        lambda: GteEmbedding(model_name=TINY_REPO, local_files_only=True),
        lambda: GteSparseEmbedding(model_name=TINY_REPO, local_files_only=True),
        lambda: GteReranker(model=TINY_REPO, local_files_only=True).load(),
        lambda: GteLLMReranker(model=TINY_REPO, local_files_only=True).load(),
        lambda: KnowledgeBase(None, model=TINY_REPO, encoder_options={"local_files_only": True}),
    ]
    for build in builders:
        with pytest.raises(ModelLoadError, match="local_files_only=True"):
            build()
    assert hub.state.requests == []


def test_registry_pinned_revision_is_the_one_fetched(hub: LoopbackHub) -> None:
    repo = hub.add("test-org/pinned", HubRepo(dict(hub.state.repos[TINY_REPO].files)))
    register_model(ModelSpec(hf_id="test-org/pinned", architecture=Architecture.GTE, dim=32, max_tokens=1024,
                             revision=repo.sha, family="test"), overwrite=True)
    ckpt = resolve_checkpoint("test-org/pinned")
    assert ckpt.path.name == repo.sha and ckpt.spec.hf_id == "test-org/pinned"
    paths = [p for _, p, _ in hub.state.requests if "pinned" in p]
    assert paths and all(repo.sha in p for p in paths), paths
    # the registered model now shows as on this machine
    listed = {m.name: m for m in list_models()}["test-org/pinned"]
    assert listed.on_machine and listed.local_path == ckpt.path

    register_model(ModelSpec(hf_id="test-org/pinned-gone", architecture=Architecture.GTE, dim=32,
                             revision="0" * 40), overwrite=True)
    hub.add("test-org/pinned-gone", repo)
    with pytest.raises(ModelLoadError, match=r"revision '0{40}'.*does not exist"):
        resolve_checkpoint("test-org/pinned-gone")


def test_unknown_repository_is_a_clear_error(hub: LoopbackHub) -> None:
    with pytest.raises(ModelLoadError, match=r"no model 'test-org/nope' on the hub at http://127\.0\.0\.1:\d+.*check the name"):
        resolve_checkpoint("test-org/nope")


def test_unreachable_hub_fails_fast(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"could not reach the hub.*hf download test-org/x.*HF_HUB_OFFLINE=1"):
        resolve_checkpoint("test-org/x")
    assert time.monotonic() - start < 3


def test_silent_hub_times_out(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # accepts connections (the kernel does) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
        start = time.monotonic()
        with pytest.raises(ModelLoadError, match=r"could not reach the hub.*timed out"):
            resolve_checkpoint("test-org/x")
        assert time.monotonic() - start < 4


def test_dropped_connection_is_retried_by_the_hub_client(hub: LoopbackHub, tiny_embedder: Path) -> None:
    hub.state.drop["model.safetensors"] = 1
    hub.state.drop_bytes = 1000  # (under one 10 MB read chunk: the client starts the file again)
    path = download_model(TINY_REPO)
    assert hub.state.downloads("model.safetensors") == 2
    assert (path / "model.safetensors").read_bytes() == (tiny_embedder / "model.safetensors").read_bytes()


def test_a_connection_that_keeps_dropping_is_reported(hub: LoopbackHub) -> None:
    hub.state.drop["model.safetensors"] = 100
    hub.state.drop_bytes = 0
    with pytest.raises(ModelLoadError, match=r"downloading model.safetensors of 'test-org/tiny-gte' failed.*run the command again"):
        download_model(TINY_REPO)
    assert hub.state.downloads("model.safetensors") > 1  # the hub client retried before giving up


def test_file_selection_prefers_safetensors() -> None:
    names = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt", "README.md",
             "onnx/model.onnx", "1_Pooling/config.json", "modules.json", "modeling_new.py", "flax_model.msgpack"]
    assert select_checkpoint_files(names) == ["1_Pooling/config.json", "config.json", "model.safetensors",
                                              "modules.json", "tokenizer.json", "vocab.txt"]
    sharded = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
               "model.safetensors.index.json", "pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json"]
    assert select_checkpoint_files(sharded) == ["config.json", *sharded[1:4]]
    assert select_checkpoint_files(["config.json", "pytorch_model.bin", "tf_model.h5"]) == ["config.json", "pytorch_model.bin"]
    with pytest.raises(ModelLoadError, match="no weights a transformers model can load"):
        select_checkpoint_files(["config.json", "tf_model.h5"])
    with pytest.raises(ModelLoadError, match="no config.json"):
        select_checkpoint_files(["model.safetensors"])
