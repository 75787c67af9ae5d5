"""Dense vectors of the quality sets, encoded once and cached under a work directory.

Used by ``quality_retrieval.py``: the dense branch does not depend on the sparse analyzer, so
while iterating on analyzers and fusion the (slow, several minutes for SciFact on 2 cores)
dense encoding is reused. The cache key is the model, the encoder's dense settings and a hash
of every text, so a changed text or setting encodes again.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gte_rag.embed import GteEncoder
from gte_rag.eval import load_beir

from _paths import DATA_DIR

CACHE_FORMAT = 1


@dataclass
class QualitySet:
    """One evaluation set: documents (non-empty), judged queries, qrels."""

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    language: str  # of the queries; the corpus of every set here is English


def load_sets(names: Sequence[str]) -> list[QualitySet]:
    """``scifact`` (test qrels), ``cranfield``, ``xquad-en``, ``xquad-zh-en`` (zh queries, en corpus)."""
    out = []
    for name in names:
        if name in ("scifact", "cranfield"):
            ds = load_beir(DATA_DIR / name)
            queries, lang = ds.queries, "en"
        elif name in ("xquad-en", "xquad-zh-en"):
            ds = load_beir(DATA_DIR / "xquad" / "en")
            lang = name.split("-")[1]
            queries = ds.queries if lang == "en" else load_beir(DATA_DIR / "xquad" / lang).queries
        else:
            raise SystemExit(f"unknown set {name!r}; use scifact, cranfield, xquad-en, xquad-zh-en")
        docs = [(d.id, d.full_text) for d in ds.corpus.values() if d.full_text.strip()]
        qids = [q for q in ds.qrels if q in queries]
        out.append(QualitySet(name, [d for d, _ in docs], [t for _, t in docs], qids,
                              [queries[q] for q in qids], {q: dict(ds.qrels[q]) for q in qids}, lang))
    return out


def _key(model: str, enc: GteEncoder, qs: QualitySet) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "model": model, "max_length": enc.max_length,
                         "dimension": enc.dimension, "precision": enc.precision.name,
                         "qprefix": enc.query_prefix, "dprefix": enc.document_prefix}, sort_keys=True).encode())
    for tag, ids, texts in (("D", qs.doc_ids, qs.doc_texts), ("Q", qs.query_ids, qs.query_texts)):
        for i, t in zip(ids, texts):
            h.update(f"{tag}\x1f{i}\x1f{t}\x1e".encode())
    return h.hexdigest()[:16]


def dense_vectors(qs: QualitySet, model: str, workdir: Path | None, *,
                  encoder: GteEncoder) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(doc matrix, query matrix, encode seconds, from cache) of one set."""
    path = workdir / f"dense-{qs.name}-{_key(model, encoder, qs)}.npz" if workdir else None
    if path is not None and path.exists():
        z = np.load(path, allow_pickle=False)
        return z["docs"], z["queries"], float(z["seconds"]), True
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # the dense half sees the first max_length tokens of a long document, as `gte-rag eval` does
        warnings.filterwarnings("ignore", message=r".*exceed max_length.*")
        docs = encoder.embed_documents(qs.doc_texts, show_progress=True)
        queries = encoder.embed_queries(qs.query_texts)
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, docs=docs, queries=queries, seconds=np.float64(seconds))
        tmp.replace(path)
    return docs, queries, seconds, False


if __name__ == "__main__":  # fill the cache: python benchmarks/_qr_dense.py WORKDIR
    import sys

    work = Path(sys.argv[1])
    enc = GteEncoder("sentence-transformers/all-MiniLM-L6-v2", sparse="none", cache_size=0)
    for s in load_sets(["cranfield", "xquad-en", "xquad-zh-en", "scifact"]):
        d, q, sec, cached = dense_vectors(s, "sentence-transformers/all-MiniLM-L6-v2", work, encoder=enc)
        print(s.name, d.shape, q.shape, f"{sec:.1f}s", "cached" if cached else "encoded", flush=True)
