"""Retrieval quality: our Qdrant hybrid search against LlamaIndex's, same vectors, real data.

For each BEIR-layout data set (default: SciFact test qrels and Cranfield) the corpus is
encoded ONCE with :class:`gte_rag.embed.GteEncoder` (``BeirDocument.full_text``, one point
per document, as ``gte-rag eval`` does with ``chunk_size=0``; empty documents are skipped)
and the judged queries once. The encodings are cached under
``benchmarks/results/cache/`` keyed by model, encoder settings and a hash of the texts, so
reruns skip the encoder (SciFact takes several minutes on a 2-core CPU).

Systems, every one fed the SAME dense and sparse vectors, top 100 per query:

===================  ==========================================================================
``dense``            ours: Qdrant Edge, dense (cosine)
``sparse``           ours: Qdrant Edge, sparse with the IDF modifier (BM25 = doc saturated tf
                     x query 1/term x IDF)
``hybrid-rrf``       ours: one Query API call, dense + sparse prefetch, RRF (k=60) in Qdrant
``hybrid-dbsf``      ours: the same, DBSF fusion
``hybrid-weighted``  ours: the same, ``dense*1.0 + sparse*0.1`` formula (library default)
``li-dense``         LlamaIndex ``QdrantVectorStore`` (qdrant-client ``:memory:``), DEFAULT mode:
                     sanity check, must equal ``dense``
``li-sparse``        its SPARSE mode with our sparse functions (whatever collection it creates)
``li-hybrid``        its HYBRID mode, defaults: client-side relative-score fusion, alpha 0.5
``li-*+idf``         NOT a default: the same with ``sparse_config=SparseVectorParams(modifier=IDF)``,
                     to split the gap into "no IDF" and "fusion" (``--no-li-idf`` skips it)
===================  ==========================================================================

Rankings are made deterministic before scoring (score descending, then doc id; ours fetch 20
extra hits with an unchanged prefetch depth and cut at 100): Qdrant orders exact score ties
(frequent in RRF) differently from run to run.

LlamaIndex receives our sparse vectors through ``sparse_doc_fn`` / ``sparse_query_fn``
(looked up by text; an unknown text raises, so a silent re-encoding cannot happen). The
collection it creates is inspected and its sparse modifier is reported (IDF is only switched
on for FastEmbed models that declare ``requires_idf``).

No weight, k or BM25 parameter is tuned: library defaults everywhere. ``--candidates`` also
measures a few GENERAL (not data-set-specific) changes to the lexical sparse vectors on each
set, for analysis only (see ``candidate_sparse``); gte_rag itself is not changed.

Usage::

    python benchmarks/quality_retrieval.py                        # scifact + cranfield
    python benchmarks/quality_retrieval.py --sets cranfield --candidates
    python benchmarks/quality_retrieval.py --encode-only          # just fill the cache

Prints a table per set and the key differences, and writes
``benchmarks/results/quality_retrieval-<timestamp>.json`` with ``run_metadata()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gte_rag._types import SparseVector
from gte_rag.embed import GteEncoder
from gte_rag.embed._lexical import DEFAULT_AVGDL, DEFAULT_B, DEFAULT_K1
from gte_rag.eval import evaluate_run, format_comparison, load_beir, run_metadata
from gte_rag.qdrant import CollectionLayout, HybridConfig, PointRecord, build_payload, open_store, point_id

logger = logging.getLogger("quality_retrieval")

DATA_ROOT = Path(os.environ.get("GTE_RAG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_DIR = RESULTS_DIR / "cache"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TOP_K = 100
TIE_MARGIN = 20
CACHE_FORMAT = 1
OUR_SYSTEMS: tuple[tuple[str, HybridConfig], ...] = (
    ("dense", HybridConfig(mode="dense")),
    ("sparse", HybridConfig(mode="sparse")),
    ("hybrid-rrf", HybridConfig(mode="hybrid", fusion="rrf")),
    ("hybrid-dbsf", HybridConfig(mode="hybrid", fusion="dbsf")),
    ("hybrid-weighted", HybridConfig(mode="hybrid", fusion="weighted")),
)
HYBRID_NAMES = ("hybrid-rrf", "hybrid-dbsf", "hybrid-weighted")


# ----------------------------------------------------------------------------- data + cache
@dataclass
class Encoded:
    """The vectors of one data set: documents (non-empty only) and judged queries."""

    doc_ids: list[str]
    doc_texts: list[str]
    doc_dense: np.ndarray
    doc_sparse: list[SparseVector]
    doc_tokens: list[int]
    query_ids: list[str]
    query_texts: list[str]
    query_dense: np.ndarray
    query_sparse: list[SparseVector]
    encode_seconds: float
    from_cache: bool


def _pack_sparse(vectors: Sequence[SparseVector]) -> dict[str, np.ndarray]:
    lengths = np.array([len(v.indices) for v in vectors], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    idx = [np.asarray(v.indices, dtype=np.int64) for v in vectors]
    val = [np.asarray(v.values, dtype=np.float64) for v in vectors]
    return {
        "indptr": indptr,
        "indices": np.concatenate(idx) if idx else np.zeros(0, np.int64),
        "values": np.concatenate(val) if val else np.zeros(0, np.float64),
    }


def _unpack_sparse(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> list[SparseVector]:
    out = []
    for a, b in zip(indptr[:-1], indptr[1:]):
        out.append(SparseVector(tuple(int(i) for i in indices[a:b]), tuple(float(v) for v in values[a:b])))
    return out


def _content_hash(model: str, encoder: GteEncoder | None, docs: list[tuple[str, str]], queries: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    settings = {
        "format": CACHE_FORMAT,
        "model": model,
        # encoder settings that change the vectors (lexical defaults come from gte_rag)
        "k1": DEFAULT_K1, "b": DEFAULT_B, "avgdl": DEFAULT_AVGDL,
    }
    if encoder is not None:
        settings.update(max_length=encoder.max_length, dimension=encoder.dimension,
                        sparse=encoder.sparse_mode, qprefix=encoder.query_prefix,
                        dprefix=encoder.document_prefix)
        if encoder.precision.name != "float32":  # float32 keys predate the setting and stay valid
            settings["precision"] = encoder.precision.name
    h.update(json.dumps(settings, sort_keys=True).encode())
    for tag, items in (("D", docs), ("Q", queries)):
        for i, t in items:
            h.update(f"{tag}\x1f{i}\x1f{t}\x1e".encode())
    return h.hexdigest()[:16]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")


def encode_dataset(name: str, data: Any, model: str, encoder_factory: Callable[[], GteEncoder],
                   cache_dir: Path) -> Encoded:
    """Encode corpus and judged queries once; reuse the cache when texts and settings match."""
    docs = [(d.id, d.full_text) for d in data.corpus.values() if d.full_text.strip()]
    qids = list(data.queries)
    queries = [(q, data.queries[q]) for q in qids]
    # The key needs the encoder's settings; they are cheap to read without the weights.
    probe = encoder_factory()
    key = _content_hash(model, probe, docs, queries)
    path = cache_dir / f"{_slug(model)}__{_slug(name)}__{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        enc = Encoded(
            doc_ids=[d for d, _ in docs], doc_texts=[t for _, t in docs],
            doc_dense=z["doc_dense"], doc_sparse=_unpack_sparse(z["ds_indptr"], z["ds_indices"], z["ds_values"]),
            doc_tokens=[int(x) for x in z["doc_tokens"]],
            query_ids=qids, query_texts=[t for _, t in queries],
            query_dense=z["query_dense"],
            query_sparse=_unpack_sparse(z["qs_indptr"], z["qs_indices"], z["qs_values"]),
            encode_seconds=float(meta["encode_seconds"]), from_cache=True,
        )
        if len(enc.doc_sparse) != len(docs) or len(enc.query_sparse) != len(qids):
            raise RuntimeError(f"cache {path} does not match the data set; delete it")
        print(f"  encodings from cache {path.name} (encoded in {enc.encode_seconds:.0f}s originally)")
        return enc
    encoder = probe
    print(f"  encoding {len(docs)} documents and {len(qids)} queries with {model} (cached afterwards) ...")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # long documents: the dense half sees the first max_length tokens, as in `gte-rag eval`;
        # the lexical half is computed from all tokens.
        warnings.filterwarnings("ignore", message=r".*exceed max_length.*")
        dout = encoder.encode([t for _, t in docs], role="document", show_progress=True)
        qout = encoder.encode([t for _, t in queries], role="query", show_progress=False)
    seconds = time.perf_counter() - t0
    ds, qs = _pack_sparse(dout.sparse), _pack_sparse(qout.sparse)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, doc_dense=dout.dense, query_dense=qout.dense,
        ds_indptr=ds["indptr"], ds_indices=ds["indices"], ds_values=ds["values"],
        qs_indptr=qs["indptr"], qs_indices=qs["indices"], qs_values=qs["values"],
        doc_tokens=np.asarray(dout.num_tokens, dtype=np.int64),
        meta=np.asarray(json.dumps({"model": model, "dataset": name, "encode_seconds": seconds,
                                    "docs": len(docs), "queries": len(qids)})),
    )
    tmp.replace(path)
    print(f"  encoded in {seconds:.0f}s -> {path}")
    return Encoded(
        doc_ids=[d for d, _ in docs], doc_texts=[t for _, t in docs], doc_dense=dout.dense,
        doc_sparse=list(dout.sparse), doc_tokens=list(dout.num_tokens), query_ids=qids,
        query_texts=[t for _, t in queries], query_dense=qout.dense, query_sparse=list(qout.sparse),
        encode_seconds=seconds, from_cache=False,
    )


# ----------------------------------------------------------------------------- our systems
Run = dict[str, dict[str, float]]


def _canonical(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Ranking with a deterministic tie order: score descending, then doc id.

    Exact score ties are common in RRF (rank r in one list only gives the same score for
    either list) and Qdrant breaks them in an order that changes from run to run, which moves
    nDCG@10 by a few tenths of a point between identical runs. Every system goes through this.
    """
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def run_ours(enc: Encoded, systems: Sequence[tuple[str, HybridConfig]], *, sparse_idf: bool = True,
             doc_sparse: Sequence[SparseVector] | None = None,
             query_sparse: Sequence[SparseVector] | None = None, model: str = DEFAULT_MODEL,
             ) -> tuple[dict[str, Run], float]:
    """Index the vectors in a temporary Qdrant Edge shard and run every system."""
    doc_sparse = enc.doc_sparse if doc_sparse is None else doc_sparse
    query_sparse = enc.query_sparse if query_sparse is None else query_sparse
    layout = CollectionLayout("quality", dense_size=int(enc.doc_dense.shape[1]), sparse_name="sparse",
                              sparse_idf=sparse_idf, model_name=model)
    runs: dict[str, Run] = {}
    t0 = time.perf_counter()
    with open_store(None, layout) as store:
        store.ensure_collection()
        points = [
            PointRecord(id=point_id(did, 0), dense=enc.doc_dense[i], sparse=doc_sparse[i],
                        payload=build_payload(text="", doc_id=did, chunk_index=0))
            for i, did in enumerate(enc.doc_ids)
        ]
        store.upsert(points, batch_size=512)
        store.optimize()
        for name, cfg in systems:
            # Ask for TIE_MARGIN more than TOP_K (with the prefetch depth TOP_K gets, so the
            # system is unchanged) and cut after the canonical sort: a tie group straddling
            # position TOP_K is then cut deterministically too.
            cfg = dataclasses.replace(cfg, prefetch_limit=cfg.resolve_prefetch_limit(TOP_K))
            run: Run = {}
            for i, qid in enumerate(enc.query_ids):
                qs = query_sparse[i]
                if cfg.mode != "dense" and not qs.indices:
                    # a query with no lexical term: the sparse branch is empty
                    hits = [] if cfg.mode == "sparse" else store.query(
                        enc.query_dense[i], None, top_k=TOP_K + TIE_MARGIN, hybrid=HybridConfig(mode="dense"))
                else:
                    hits = store.query(enc.query_dense[i], qs, top_k=TOP_K + TIE_MARGIN, hybrid=cfg)
                ranked = _canonical([(h.payload["doc_id"], float(h.score)) for h in hits])
                run[qid] = dict(list(ranked.items())[:TOP_K])
            runs[name] = run
    return runs, time.perf_counter() - t0


# ----------------------------------------------------------------------------- LlamaIndex
def run_llamaindex(enc: Encoded, *, idf: bool = False) -> tuple[dict[str, Run], dict[str, Any], float]:
    """LlamaIndex QdrantVectorStore on qdrant-client :memory:, hybrid with OUR sparse vectors.

    ``idf=False`` is LlamaIndex's default collection (its ``sparse_config`` left unset);
    ``idf=True`` passes ``sparse_config=SparseVectorParams(modifier=IDF)`` (NOT a default; an
    attribution run: how much of the gap is IDF and how much is the fusion) and runs only
    the sparse and hybrid modes, named ``li-sparse+idf`` / ``li-hybrid+idf``.
    """
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    doc_lookup = {t: enc.doc_sparse[i] for i, t in enumerate(enc.doc_texts)}
    query_lookup = {t: enc.query_sparse[i] for i, t in enumerate(enc.query_texts)}
    calls = {"doc_texts": 0, "query_texts": 0}

    def _fn(lookup: dict[str, SparseVector], counter: str) -> Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]:
        # SparseEncoderCallable = Callable[[List[str]], Tuple[List[List[int]], List[List[float]]]]
        def encode(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
            indices, values = [], []
            for t in texts:
                if t not in lookup:
                    raise KeyError(f"LlamaIndex asked for a sparse vector of an unknown text: {t[:80]!r}")
                v = lookup[t]
                indices.append(list(v.indices))
                values.append(list(v.values))
            calls[counter] += len(texts)
            return indices, values
        return encode

    client = QdrantClient(":memory:")
    store = QdrantVectorStore(
        collection_name="li_quality", client=client, enable_hybrid=True,
        sparse_doc_fn=_fn(doc_lookup, "doc_texts"), sparse_query_fn=_fn(query_lookup, "query_texts"),
        **({"sparse_config": models.SparseVectorParams(modifier=models.Modifier.IDF)} if idf else {}),
    )
    node_to_doc: dict[str, str] = {}
    nodes = []
    for i, (did, text) in enumerate(zip(enc.doc_ids, enc.doc_texts)):
        nid = point_id(did, 0)
        node_to_doc[nid] = did
        nodes.append(TextNode(id_=nid, text=text, embedding=[float(x) for x in enc.doc_dense[i]]))
    t0 = time.perf_counter()
    store.add(nodes)
    info = client.get_collection("li_quality")
    sparse_cfg = info.config.params.sparse_vectors or {}
    collection = {
        "sparse_vectors_config": {k: {"modifier": (str(v.modifier.value) if v.modifier is not None else None)}
                                  for k, v in sparse_cfg.items()},
        "dense_vectors_config": {k: {"size": v.size, "distance": str(v.distance.value)}
                                 for k, v in (info.config.params.vectors or {}).items()},
        "sparse_doc_fn_texts": calls["doc_texts"],
        "points": client.count("li_quality").count,
    }
    modes: tuple[tuple[str, Any], ...] = (
        ("li-dense", VectorStoreQueryMode.DEFAULT), ("li-sparse", VectorStoreQueryMode.SPARSE),
        ("li-hybrid", VectorStoreQueryMode.HYBRID))
    if idf:
        modes = (("li-sparse+idf", VectorStoreQueryMode.SPARSE), ("li-hybrid+idf", VectorStoreQueryMode.HYBRID))
    runs: dict[str, Run] = {}
    for name, mode in modes:
        run: Run = {}
        for i, qid in enumerate(enc.query_ids):
            q = VectorStoreQuery(
                query_embedding=[float(x) for x in enc.query_dense[i]], query_str=enc.query_texts[i],
                mode=mode, similarity_top_k=TOP_K, sparse_top_k=TOP_K, hybrid_top_k=TOP_K,
            )
            res = store.query(q)
            ids = res.ids or []
            sims = res.similarities or []
            run[qid] = _canonical([(node_to_doc[n], float(s)) for n, s in zip(ids, sims)])
        runs[name] = run
    collection["sparse_query_fn_texts"] = calls["query_texts"]
    client.close()
    return runs, collection, time.perf_counter() - t0


# ----------------------------------------------------------------------------- candidates
_WORD_RE = re.compile(r"\w+", re.UNICODE)


def _stopwords() -> frozenset[str]:
    """NLTK's English stopword list as shipped inside llama-index-core (no download)."""
    import llama_index.core

    f = Path(llama_index.core.__file__).parent / "_static/nltk_cache/corpora/stopwords/english"
    return frozenset(w.strip() for w in f.read_text().split() if w.strip())


def candidate_sparse(enc: Encoded, encoder_factory: Callable[[], GteEncoder]) -> dict[str, tuple[list[SparseVector], list[SparseVector]]]:
    """General changes to the lexical vectors, for analysis (not data-set-tuned).

    - ``corpus-avgdl``: BM25 with avgdl = the collection's real mean term count (the textbook
      definition) instead of the fixed 256.
    - ``no-stopwords``: same word pieces, minus whole-word pieces in the NLTK English list.
    - ``words``: whole words (regex ``\\w+``, lower case) instead of word pieces, hashed to a
      31-bit id space; nothing else changed. ``words-no-stopwords``: the same minus NLTK stopwords.
    - ``words-stem``: whole words (regex ``\\w+``, lower case, Porter stem, stopwords out)
      instead of word pieces, hashed to a fixed id space; k1/b/avgdl defaults.
    - ``words-stem+avgdl``: the same with the corpus avgdl.
    """
    from nltk.stem import PorterStemmer

    encoder = encoder_factory()
    tok = encoder.tokenizer
    lex = encoder._lexical  # noqa: SLF001 - analysis only: reuse the library's vocabulary mask
    assert lex is not None
    doc_ids = tok(enc.doc_texts, add_special_tokens=False)["input_ids"]
    q_ids = tok(enc.query_texts, add_special_tokens=False)["input_ids"]
    keep = lex.keep
    stop = _stopwords()
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    stop_ids = np.array([v in stop for v in vocab], dtype=bool)

    def bm25_doc(terms: list[Any], avgdl: float, to_id: Callable[[Any], int]) -> SparseVector:
        if not terms:
            return SparseVector()
        counts = Counter(terms)
        norm = DEFAULT_K1 * (1.0 - DEFAULT_B + DEFAULT_B * len(terms) / avgdl)
        items = sorted((to_id(t), tf * (DEFAULT_K1 + 1.0) / (tf + norm)) for t, tf in counts.items())
        merged: dict[int, float] = {}
        for i, w in items:  # hash collisions: keep the larger weight
            merged[i] = max(merged.get(i, 0.0), w)
        return SparseVector(tuple(merged), tuple(merged.values()))

    def bm25_query(terms: list[Any], to_id: Callable[[Any], int]) -> SparseVector:
        ids = sorted({to_id(t) for t in terms})
        return SparseVector(tuple(ids), (1.0,) * len(ids))

    ident = int
    piece_docs = [[t for t in ids if keep[t]] for ids in doc_ids]
    piece_qs = [[t for t in ids if keep[t]] for ids in q_ids]
    avg_piece = float(np.mean([len(t) for t in piece_docs]))
    out: dict[str, tuple[list[SparseVector], list[SparseVector]]] = {}
    out[f"corpus-avgdl({avg_piece:.0f})"] = (
        [bm25_doc(t, avg_piece, ident) for t in piece_docs], [bm25_query(t, ident) for t in piece_qs])
    ns_docs = [[t for t in ts if not stop_ids[t]] for ts in piece_docs]
    ns_qs = [[t for t in ts if not stop_ids[t]] for ts in piece_qs]
    out["no-stopwords"] = ([bm25_doc(t, DEFAULT_AVGDL, ident) for t in ns_docs], [bm25_query(t, ident) for t in ns_qs])

    stemmer = PorterStemmer()
    memo: dict[str, str] = {}

    def words(text: str) -> list[str]:
        res = []
        for w in _WORD_RE.findall(text.lower()):
            if w in stop:
                continue
            s = memo.get(w)
            if s is None:
                s = memo[w] = stemmer.stem(w)
            res.append(s)
        return res

    def hid(term: str) -> int:
        return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little") & 0x7FFFFFFF

    def plain_words(text: str, drop_stop: bool) -> list[str]:
        return [w for w in _WORD_RE.findall(text.lower()) if not (drop_stop and w in stop)]

    for cname, drop in (("words", False), ("words-no-stopwords", True)):
        pw_docs = [plain_words(t, drop) for t in enc.doc_texts]
        pw_qs = [plain_words(t, drop) for t in enc.query_texts]
        out[cname] = ([bm25_doc(t, DEFAULT_AVGDL, hid) for t in pw_docs], [bm25_query(t, hid) for t in pw_qs])

    w_docs = [words(t) for t in enc.doc_texts]
    w_qs = [words(t) for t in enc.query_texts]
    avg_w = float(np.mean([len(t) for t in w_docs]))
    out["words-stem"] = ([bm25_doc(t, DEFAULT_AVGDL, hid) for t in w_docs], [bm25_query(t, hid) for t in w_qs])
    out[f"words-stem+avgdl({avg_w:.0f})"] = (
        [bm25_doc(t, avg_w, hid) for t in w_docs], [bm25_query(t, hid) for t in w_qs])
    return out


# ----------------------------------------------------------------------------- report
def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _same_ranking(a: Run, b: Run, k: int = 10) -> float:
    """Fraction of queries whose top-k doc id lists are identical."""
    same = 0
    for q in a:
        ra = [d for d, _ in sorted(a[q].items(), key=lambda kv: -kv[1])[:k]]
        rb = [d for d, _ in sorted(b.get(q, {}).items(), key=lambda kv: -kv[1])[:k]]
        same += ra == rb
    return same / max(len(a), 1)


def key_comparisons(results: dict[str, dict[str, float]], runs: dict[str, Run]) -> dict[str, Any]:
    nd = {k: v["ndcg@10"] for k, v in results.items()}
    best_single = max(nd["dense"], nd["sparse"])
    best_hybrid = max(HYBRID_NAMES, key=lambda n: nd[n])
    cmp: dict[str, Any] = {
        "best_single": "dense" if nd["dense"] >= nd["sparse"] else "sparse",
        "best_hybrid": best_hybrid,
        "best_hybrid_minus_max_single_pts": 100 * (nd[best_hybrid] - best_single),
        "rrf_minus_max_single_pts": 100 * (nd["hybrid-rrf"] - best_single),
        "dbsf_minus_max_single_pts": 100 * (nd["hybrid-dbsf"] - best_single),
        "weighted_minus_max_single_pts": 100 * (nd["hybrid-weighted"] - best_single),
        "target_met(hybrid >= max(dense,sparse)+1pt)": bool(nd[best_hybrid] >= best_single + 0.01),
    }
    if "li-hybrid" in nd:
        cmp["best_hybrid_minus_li_hybrid_pts"] = 100 * (nd[best_hybrid] - nd["li-hybrid"])
        cmp["rrf_minus_li_hybrid_pts"] = 100 * (nd["hybrid-rrf"] - nd["li-hybrid"])
        cmp["li_dense_minus_dense_pts"] = 100 * (nd["li-dense"] - nd["dense"])
        cmp["li_dense_same_top10_fraction"] = _same_ranking(runs["dense"], runs["li-dense"])
        cmp["li_sparse_minus_sparse_pts"] = 100 * (nd["li-sparse"] - nd["sparse"])
    if "li-hybrid+idf" in nd:
        cmp["li_sparse_idf_minus_sparse_pts"] = 100 * (nd["li-sparse+idf"] - nd["sparse"])
        cmp["li_hybrid_idf_minus_li_hybrid_pts"] = 100 * (nd["li-hybrid+idf"] - nd["li-hybrid"])
        cmp["rrf_minus_li_hybrid_idf_pts"] = 100 * (nd["hybrid-rrf"] - nd["li-hybrid+idf"])
    return cmp


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["scifact", "cranfield"],
                   help="data set names under --data-root, or folders (default: scifact cranfield)")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--no-llamaindex", action="store_true", help="skip the LlamaIndex baseline")
    p.add_argument("--no-li-idf", action="store_true",
                   help="skip the non-default LlamaIndex run with an IDF sparse_config (attribution)")
    p.add_argument("--candidates", action="store_true",
                   help="also measure general lexical changes (analysis; see candidate_sparse)")
    p.add_argument("--encode-only", action="store_true", help="fill the cache and stop")
    p.add_argument("--dtype", default="auto",
                   help="encoder precision: auto (bf16-mixed on CPUs with native bfloat16, else float32), float32...")
    p.add_argument("--json", type=Path, default=None, help="output file (default: results/quality_retrieval-<time>.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def encoder_factory(_cache: dict[str, GteEncoder] = {}) -> GteEncoder:  # noqa: B006 - one encoder per run
        if "e" not in _cache:
            _cache["e"] = GteEncoder(args.model, device="cpu", dtype=args.dtype, lazy_load=True, cache_size=0)
        return _cache["e"]

    report: dict[str, Any] = {"model": args.model, "dtype": args.dtype, "top_k": TOP_K, "sets": {}, "metadata": run_metadata()}
    for spec in args.sets:
        folder = Path(spec) if Path(spec).is_dir() else args.data_root / spec
        data = load_beir(folder)
        name = folder.name
        print(f"\n=== {name}: {len(data.corpus)} documents, {len(data.queries)} judged queries")
        enc = encode_dataset(name, data, args.model, encoder_factory, args.cache_dir)
        if args.encode_only:
            continue
        runs, our_s = run_ours(enc, OUR_SYSTEMS, model=args.model)
        print(f"  ours (Qdrant Edge): index + {len(OUR_SYSTEMS)} systems x {len(enc.query_ids)} queries in {our_s:.1f}s")
        li_info: dict[str, Any] | None = None
        if not args.no_llamaindex:
            li_runs, li_info, li_s = run_llamaindex(enc)
            runs.update(li_runs)
            print(f"  LlamaIndex (client :memory:): index + 3 modes in {li_s:.1f}s; "
                  f"its sparse config: {li_info['sparse_vectors_config']}")
            if not args.no_li_idf:
                idf_runs, idf_info, idf_s = run_llamaindex(enc, idf=True)
                runs.update(idf_runs)
                li_info["attribution_run_with_idf"] = idf_info
                print(f"  LlamaIndex with sparse_config IDF (non-default, attribution): {idf_s:.1f}s; "
                      f"sparse config: {idf_info['sparse_vectors_config']}")
        results = {n: evaluate_run(r, data.qrels) for n, r in runs.items()}
        entry: dict[str, Any] = {
            "documents_indexed": len(enc.doc_ids), "documents_in_corpus": len(data.corpus),
            "queries": len(enc.query_ids),
            "queries_without_lexical_terms": sum(1 for v in enc.query_sparse if not v.indices),
            # tokens fed to the model (specials included, after truncation at max_length)
            "doc_model_tokens_median": float(np.median(enc.doc_tokens)),
            "docs_at_max_length_truncated_for_dense": int(
                sum(1 for n in enc.doc_tokens if n >= encoder_factory().max_length)),
            "encode_seconds": enc.encode_seconds, "encodings_from_cache": enc.from_cache,
            "results": results, "comparisons": key_comparisons(results, runs),
            # why the weighted formula behaves as it does: the two branches' score scales
            "median_top1_score": {n: float(np.median([max(r[q].values()) for q in r if r[q]]))
                                  for n, r in runs.items() if n in ("dense", "sparse")},
        }
        if li_info is not None:
            entry["llamaindex_collection"] = li_info
        print(f"  {entry['docs_at_max_length_truncated_for_dense']} of {len(enc.doc_ids)} documents reach the "
              f"{encoder_factory().max_length}-token limit (dense sees their start; sparse sees all tokens)")
        print()
        print(format_comparison(results, metrics=["ndcg@10", "recall@100", "mrr@10"]))
        c = entry["comparisons"]
        print(f"\n  best hybrid ({c['best_hybrid']}) - max(dense, sparse) [{c['best_single']}]: "
              f"{c['best_hybrid_minus_max_single_pts']:+.2f} nDCG@10 pts; "
              f"rrf {c['rrf_minus_max_single_pts']:+.2f}, dbsf {c['dbsf_minus_max_single_pts']:+.2f}, "
              f"weighted {c['weighted_minus_max_single_pts']:+.2f}")
        print(f"  median top-1 score: dense {entry['median_top1_score']['dense']:.3f}, sparse (BM25) "
              f"{entry['median_top1_score']['sparse']:.2f} (weighted fusion adds sparse x 0.1)")
        print(f"  target hybrid >= max(dense, sparse) + 1.0 pt: {'MET' if c['target_met(hybrid >= max(dense,sparse)+1pt)'] else 'NOT met'}")
        if li_info is not None:
            print(f"  ours best hybrid - LlamaIndex hybrid: {c['best_hybrid_minus_li_hybrid_pts']:+.2f} pts; "
                  f"ours RRF - LlamaIndex hybrid: {c['rrf_minus_li_hybrid_pts']:+.2f} pts")
            print(f"  sanity: li-dense - dense {c['li_dense_minus_dense_pts']:+.3f} pts, identical top-10 on "
                  f"{100 * c['li_dense_same_top10_fraction']:.0f}% of queries; li-sparse - sparse "
                  f"{c['li_sparse_minus_sparse_pts']:+.2f} pts")
        if "li_hybrid_idf_minus_li_hybrid_pts" in c:
            print(f"  attribution: IDF added to LlamaIndex's collection: li-sparse+idf - sparse "
                  f"{c['li_sparse_idf_minus_sparse_pts']:+.3f} pts; li-hybrid+idf - li-hybrid "
                  f"{c['li_hybrid_idf_minus_li_hybrid_pts']:+.2f} pts; ours RRF - li-hybrid+idf "
                  f"{c['rrf_minus_li_hybrid_idf_pts']:+.2f} pts (the fusion alone)")
        if args.candidates:
            cand_results: dict[str, dict[str, float]] = {"library-default": {
                "sparse": results["sparse"]["ndcg@10"], "hybrid-rrf": results["hybrid-rrf"]["ndcg@10"],
                "hybrid-dbsf": results["hybrid-dbsf"]["ndcg@10"], "hybrid-weighted": results["hybrid-weighted"]["ndcg@10"]}}
            systems = [s for s in OUR_SYSTEMS if s[0] != "dense"]
            for cname, (dsp, qsp) in candidate_sparse(enc, encoder_factory).items():
                cruns, _ = run_ours(enc, systems, doc_sparse=dsp, query_sparse=qsp, model=args.model)
                cand_results[cname] = {n: evaluate_run(r, data.qrels)["ndcg@10"] for n, r in cruns.items()}
            entry["candidates_ndcg@10"] = cand_results
            print(f"\n  candidate lexical changes (analysis only), nDCG@10; dense = {results['dense']['ndcg@10']:.4f}")
            print("  " + format_comparison(cand_results).replace("\n", "\n  "))
        report["sets"][name] = entry
    if args.encode_only:
        return 0
    out = args.json or RESULTS_DIR / f"quality_retrieval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
