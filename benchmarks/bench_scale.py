"""Cost as a collection grows: Qdrant Edge at 10k / 100k / 1M chunk points, one table.

Points are generated reproducibly with the statistics of real data, so that a million of
them need no encoder run (the encoder is not timed here):

- dense: 384-d vectors drawn from a Gaussian with the mean and covariance of real MiniLM
  (all-MiniLM-L6-v2) vectors of SciFact documents, then L2-normalised;
- sparse: the lexical (BM25-style) sparse vectors of the same model: each point's number
  of terms is drawn from the real documents' term counts, its terms by their document
  frequency in SciFact, its weights from the real weights;
- payload: ``doc_id``, ``ref_doc_id``, ``chunk_index`` (indexed, as a knowledge base has
  them) and 500 characters of SciFact text.

The real sample (MiniLM over ``--sample`` SciFact documents and the SciFact queries) is
encoded once and cached under ``benchmarks/results/cache/``. Queries are the real SciFact
queries (dense + sparse), hybrid top-10 with the default fusion (DBSF) and 100 candidates per
branch.

Each (size, configuration) runs in a fresh process, so that its RSS is its own:

- ``float32``: the defaults (``StorageConfig()``);
- ``int8``: ``StorageConfig(quantization="int8")`` with rescoring against the originals;
- ``int8-disk``: int8 in RAM, original vectors on disk (``on_disk=True``).

Measured: upsert points/s (``QdrantStore.upsert``, batches of 1,000; generation excluded),
index build seconds (``ensure_indexed``: what a knowledge base runs after a write),
process RSS (current and peak; also its anonymous part, without mapped files) and disk size
after the build, hybrid p50 / p95 through ``QdrantStore.query``, recall@10 of hybrid and of dense search against an exact search
(``SearchParams(exact=True)`` in every branch, quantization ignored, same fusion) for each search ``ef`` of
``--hnsw-ef`` (measured on the same index), and queries/s of
``query_many`` (batches of 50, one ``query_batch`` request each) against one request per
query. ``--kb`` adds the knowledge-base check: the points written through
``KnowledgeBase.write`` (calls of 5,000, vectors given, no ``optimize()`` call), hybrid p50
then, and again after an explicit ``optimize()`` (``--kb`` alone: every size of ``--points``;
``--kb 100000``: those sizes only). Progress goes to stderr; each finished row is also appended
to ``benchmarks/results/bench_scale-<time>.partial.jsonl`` as soon as it is measured.

Usage::

    python benchmarks/bench_scale.py --points 10000 100000 --kb 100000 --hnsw-ef 256 384 512 768
    python benchmarks/bench_scale.py --points 1000000 --configs int8-disk int8 --hnsw-ef 384 512 640 768
    python benchmarks/bench_scale.py --points 2000 --queries 50           # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _paths import DATA_DIR  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
CACHE = RESULTS_DIR / "cache"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
TOP_K = 10
PREFETCH = 100
BATCH = 1_000
CONFIGS = ("float32", "int8", "int8-disk")


# ---------------------------------------------------------------- the real sample
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def real_sample(n_docs: int) -> dict[str, Any]:
    """MiniLM dense + lexical sparse vectors of SciFact documents and queries (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"scale_sample_{n_docs}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from gte_rag.embed import GteEncoder

    corpus = _read_jsonl(DATA_DIR / "scifact" / "corpus.jsonl")
    queries = _read_jsonl(DATA_DIR / "scifact" / "queries.jsonl")
    texts = [(d.get("title", "") + "\n" + d.get("text", "")).strip() for d in corpus]
    rng = np.random.default_rng(0)
    picked = [texts[i] for i in sorted(rng.choice(len(texts), size=min(n_docs, len(texts)), replace=False))]
    encoder = GteEncoder(MODEL, device="cpu", dtype="float32", sparse="lexical")
    print(f"encoding {len(picked)} SciFact documents and {len(queries)} queries once (cached in {path})", flush=True)
    docs = encoder.encode(picked, role="document", show_progress=True)
    qout = encoder.encode([q["text"] for q in queries], role="query")

    def flat(vectors: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths = np.array([len(v.indices) for v in vectors], dtype=np.int64)
        idx = np.concatenate([np.asarray(v.indices, dtype=np.int64) for v in vectors])
        val = np.concatenate([np.asarray(v.values, dtype=np.float32) for v in vectors])
        return lengths, idx, val

    d_len, d_idx, d_val = flat(docs.sparse)
    q_len, q_idx, q_val = flat(qout.sparse)
    sample = {
        "doc_dense": np.asarray(docs.dense, dtype=np.float32), "doc_len": d_len, "doc_idx": d_idx, "doc_val": d_val,
        "q_dense": np.asarray(qout.dense, dtype=np.float32), "q_len": q_len, "q_idx": q_idx, "q_val": q_val,
        "text": np.array([t[:500] for t in picked]),
    }
    np.savez_compressed(path, **sample)
    return sample


class Generator:
    """Reproducible points with the sample's statistics; batch ``b`` depends only on (seed, b)."""

    def __init__(self, sample: dict[str, Any], seed: int = 0) -> None:
        x = sample["doc_dense"].astype(np.float64)
        self.mean = x.mean(axis=0)
        cov = np.cov(x, rowvar=False) + 1e-6 * np.eye(DIM)
        w, v = np.linalg.eigh(cov)
        self.factor = (v * np.sqrt(np.clip(w, 0, None))).astype(np.float32)
        self.lengths = sample["doc_len"]
        terms, df = np.unique(sample["doc_idx"], return_counts=True)
        self.terms, self.p = terms, df / df.sum()
        self.values = sample["doc_val"]
        self.texts = sample["text"]
        self.seed = seed

    def batch(self, b: int, size: int) -> tuple[np.ndarray, list[tuple[list[int], list[float]]]]:
        rng = np.random.default_rng([self.seed, b])
        z = rng.standard_normal((size, DIM)).astype(np.float32)
        dense = self.mean.astype(np.float32) + z @ self.factor.T
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        sparse = []
        counts = rng.choice(self.lengths, size=size)
        draws = rng.choice(self.terms, size=int(counts.sum() * 1.3) + 16, p=self.p)
        values = rng.choice(self.values, size=draws.size)
        at = 0
        for k in counts:
            idx, first = np.unique(draws[at : at + int(k * 1.3) + 1], return_index=True)
            vals = values[at : at + int(k * 1.3) + 1][first]
            at += int(k * 1.3) + 1
            sparse.append((idx[:k].tolist(), vals[:k].tolist()))
        return dense, sparse


# ---------------------------------------------------------------- one measurement (child process)
def _rss_mb(field: str = "VmRSS") -> float:
    """Resident memory in MiB: ``VmRSS`` (all), ``RssAnon`` (heap) or ``RssFile`` (mapped files,
    e.g. on-disk vectors in the page cache, which the kernel can drop under memory pressure)."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _trimmed_rss_mb() -> float:
    """RSS after ``malloc_trim(0)`` (glibc keeps freed heap otherwise)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return _rss_mb()


def _disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _storage(config: str, graph: dict[str, int]) -> Any:
    """The storage of a configuration; the search ef is set per measurement, on the same index."""
    from gte_rag.qdrant import StorageConfig

    if config == "float32":
        return StorageConfig(**graph)
    return StorageConfig(quantization="int8", on_disk=config == "int8-disk", **graph)


def _queries(sample: dict[str, Any], n: int) -> list[tuple[np.ndarray, Any]]:
    from gte_rag._types import SparseVector

    out = []
    starts = np.concatenate([[0], np.cumsum(sample["q_len"])])
    for i in range(min(n, len(sample["q_len"]))):
        a, b = starts[i], starts[i + 1]
        out.append((sample["q_dense"][i], SparseVector(tuple(sample["q_idx"][a:b].tolist()),
                                                        tuple(sample["q_val"][a:b].tolist()))))
    return out


def _latency(fn: Any, queries: list[Any], warmup: int = 20) -> tuple[float, float, list[Any]]:
    for q in queries[:warmup]:
        fn(q)
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), results


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} rss {_rss_mb():,.0f} MB, anon {_rss_mb('RssAnon'):,.0f}] {message}", file=sys.stderr, flush=True)


def _exact_ids(store: Any, plan: Any) -> list[str]:
    import qdrant_edge as qe

    from gte_rag.qdrant._edge import _best_hits, with_search_params
    from gte_rag.qdrant._edge_convert import to_edge_request

    # a full scan of the original vectors: quantized copies are not used for the baseline
    exact = qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
    request = with_search_params(to_edge_request(plan), exact)
    with store.backend.using_shard() as shard:
        found = shard.query(request)
    hits = _best_hits(found, plan.top_k)
    return [h.id for h in sorted(hits, key=lambda h: (-h.score, h.id))[:TOP_K]]


def measure(points: int, config: str, n_queries: int, efs: list[int | None], sample_docs: int,
            graph: dict[str, int]) -> dict[str, Any]:
    from gte_rag._types import SparseVector
    from gte_rag.qdrant import CollectionLayout, HybridConfig, PointRecord, build_query_plan, open_store, point_id

    base_rss = _rss_mb()
    sample = real_sample(sample_docs)
    gen = Generator(sample)
    queries = _queries(sample, n_queries)
    del sample["doc_dense"]
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    layout = CollectionLayout(
        "scale", dense_size=DIM, sparse_idf=True, storage=_storage(config, graph),
        payload_indexes={"doc_id": "keyword", "ref_doc_id": "keyword", "chunk_index": "integer"},
    )
    row: dict[str, Any] = {"points": points, "config": config, "hnsw_m": layout.storage_settings.hnsw_m,
                           "hnsw_ef_construct": layout.storage_settings.hnsw_ef_construct}
    try:
        store = open_store(work, layout)
        store.ensure_collection()
        upsert_s = 0.0
        for b, start in enumerate(range(0, points, BATCH)):
            size = min(BATCH, points - start)
            dense, sparse = gen.batch(b, size)
            batch = [
                PointRecord(point_id(f"d{start + i}", 0), dense=dense[i], sparse=SparseVector(*map(tuple, sparse[i])),
                            payload={"doc_id": f"d{start + i}", "ref_doc_id": f"d{start + i}", "chunk_index": 0,
                                     "text": str(gen.texts[(start + i) % len(gen.texts)])})
                for i in range(size)
            ]
            t = time.perf_counter()
            store.upsert(batch, batch_size=BATCH)
            upsert_s += time.perf_counter() - t
            if (b + 1) % 100 == 0:
                _log(f"{points:,} {config}: {start + size:,} points upserted ({upsert_s:.0f} s upserting)")
        row["upsert_points_per_s"] = points / upsert_s
        _log(f"{points:,} {config}: upserted at {row['upsert_points_per_s']:,.0f} points/s; building the index")
        t = time.perf_counter()
        store.ensure_indexed(1)
        row["index_build_s"] = time.perf_counter() - t
        row["unindexed_after"] = store.unindexed_points()
        _log(f"{points:,} {config}: index built in {row['index_build_s']:.1f} s; exact baseline")
        hybrid = HybridConfig(prefetch_limit=PREFETCH)  # the default fusion, as a knowledge base queries
        dense_only = HybridConfig(mode="dense")
        exact = [(_exact_ids(store, build_query_plan(layout, dense=q[0], sparse=q[1], top_k=TOP_K, hybrid=hybrid)),
                  _exact_ids(store, build_query_plan(layout, dense=q[0], sparse=None, top_k=TOP_K, hybrid=dense_only)))
                 for q in queries]

        def run(q: Any, cfg: Any = hybrid) -> list[str]:
            return [h.id for h in store.query(q[0], q[1], top_k=TOP_K, hybrid=cfg)]

        # the search ef changes nothing stored: each value is measured on the same index
        row["by_ef"] = []
        for ef in efs:
            _log(f"{points:,} {config}: latency and recall at ef={ef}")
            store.backend.layout = replace(layout, storage=replace(layout.storage_settings, hnsw_ef=ef))
            p50, p95, got = _latency(run, queries)
            d50, d95, got_dense = _latency(lambda q: run(q, dense_only), queries, warmup=0)
            row["by_ef"].append({
                "hnsw_ef": ef, "hybrid_p50_ms": p50, "hybrid_p95_ms": p95, "dense_p50_ms": d50, "dense_p95_ms": d95,
                "hybrid_recall@10": float(np.mean([len(set(g) & set(e[0])) / TOP_K for g, e in zip(got, exact)])),
                "dense_recall@10": float(np.mean([len(set(g) & set(e[1])) / TOP_K for g, e in zip(got_dense, exact)])),
            })
        row.update(row["by_ef"][-1])
        row["sparse_p50_ms"], row["sparse_p95_ms"], _ = _latency(lambda q: run(q, HybridConfig(mode="sparse")), queries)
        # one request per query against query_many (batches of 50), alternated over three
        # rounds (the best round of each counts: other load on the machine hits both alike)
        single, batched = [], []
        _log(f"{points:,} {config}: query_many against one request per query")
        for _ in range(3):
            t = time.perf_counter()
            for q in queries:
                run(q)
            single.append(time.perf_counter() - t)
            t = time.perf_counter()
            for at in range(0, len(queries), 50):
                part = queries[at : at + 50]
                store.query_many([q[0] for q in part], [q[1] for q in part], top_k=TOP_K, hybrid=hybrid)
            batched.append(time.perf_counter() - t)
        row["single_qps"] = len(queries) / min(single)
        row["query_many_qps"] = len(queries) / min(batched)
        row["rss_mb"] = _rss_mb()
        row["rss_anon_mb"], row["rss_file_mb"] = _rss_mb("RssAnon"), _rss_mb("RssFile")
        row["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row["rss_before_store_mb"] = base_rss
        row["rss_trimmed_mb"] = _trimmed_rss_mb()  # freed heap (index build, batches) given back
        store.close()
        row["disk_mb"] = _disk_mb(work)
        _log(f"{points:,} {config}: reopening")
        # what a process that opens the built collection holds: reopen, query, measure
        _trimmed_rss_mb()
        before = _rss_mb()
        store = open_store(work, CollectionLayout("scale", dense_size=DIM))
        store.backend.layout = replace(layout, storage=replace(layout.storage_settings, hnsw_ef=efs[-1]))
        for q in queries:
            run(q)
        row["rss_reopened_mb"] = _rss_mb()
        row["rss_reopened_anon_mb"] = _rss_mb("RssAnon")
        row["rss_reopened_delta_mb"] = row["rss_reopened_mb"] - before
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def measure_kb(points: int, n_queries: int, sample_docs: int) -> dict[str, Any]:
    """Points written through ``KnowledgeBase.write`` (no optimize), then after ``optimize()``."""
    from gte_rag._types import SparseVector
    from gte_rag.embed import GteEncoder
    from gte_rag.kb import ChunkRecord, KnowledgeBase
    from gte_rag.qdrant import HybridConfig

    sample = real_sample(sample_docs)
    gen = Generator(sample)
    queries = _queries(sample, n_queries)
    work = Path(tempfile.mkdtemp(prefix="bench_scale_kb_"))
    row: dict[str, Any] = {"points": points, "config": "kb-write"}
    try:
        encoder = GteEncoder(MODEL, device="cpu", sparse="lexical")  # not run: the vectors are given
        with KnowledgeBase(work, encoder=encoder, chunk_size=0, long_docs="off") as kb:
            t = time.perf_counter()
            step = 5_000  # a knowledge base's write calls (e.g. one add_files each)
            for start in range(0, points, step):
                records = []
                for lo in range(start, min(points, start + step), BATCH):
                    size = min(BATCH, points - lo)
                    dense, sparse = gen.batch(lo // BATCH, size)
                    records += [ChunkRecord(doc_id=f"d{lo + i}", text=str(gen.texts[(lo + i) % len(gen.texts)]),
                                            chunk_index=0, dense=dense[i], sparse=SparseVector(*map(tuple, sparse[i])))
                                for i in range(size)]
                kb.write(records)
            row["write_s"] = time.perf_counter() - t
            row["unindexed_after_writes"] = kb.store.unindexed_points()
            hybrid = HybridConfig(prefetch_limit=PREFETCH)

            def run(q: Any) -> Any:
                return kb.store.query(q[0], q[1], top_k=TOP_K, hybrid=hybrid)

            row["hybrid_p50_ms"], row["hybrid_p95_ms"], _ = _latency(run, queries)
            t = time.perf_counter()
            kb.optimize()
            row["optimize_s"] = time.perf_counter() - t
            row["optimized_p50_ms"], row["optimized_p95_ms"], _ = _latency(run, queries)
            row["ratio_p50"] = row["hybrid_p50_ms"] / row["optimized_p50_ms"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


# ---------------------------------------------------------------- the driver
def _child(args: argparse.Namespace, points: int, config: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", config, "--points", str(points), "--queries", str(args.queries),
           "--sample", str(args.sample)]
    cmd += ["--hnsw-ef", *[str(e) for e in args.hnsw_ef]]
    cmd += [f"--{k.replace('_', '-')}={v}" for k, v in _graph(args).items()]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})  # progress: stderr passes through
    return json.loads(out.stdout.strip().splitlines()[-1])


def _graph(args: argparse.Namespace) -> dict[str, int]:
    """The HNSW graph settings given on the command line (the others keep StorageConfig's defaults)."""
    return {k: v for k, v in (("hnsw_m", args.hnsw_m), ("hnsw_ef_construct", args.hnsw_ef_construct)) if v is not None}


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [("points", "{:,}"), ("config", "{}"), ("hnsw_m", "{}"), ("hnsw_ef_construct", "{}"), ("hnsw_ef", "{}"), ("upsert_points_per_s", "{:,.0f}"), ("index_build_s", "{:.1f}"),
            ("rss_mb", "{:,.0f}"), ("rss_anon_mb", "{:,.0f}"), ("rss_trimmed_mb", "{:,.0f}"), ("rss_reopened_mb", "{:,.0f}"), ("rss_reopened_anon_mb", "{:,.0f}"), ("disk_mb", "{:,.0f}"), ("hybrid_p50_ms", "{:.2f}"), ("hybrid_p95_ms", "{:.2f}"),
            ("hybrid_recall@10", "{:.3f}"), ("dense_recall@10", "{:.3f}"), ("single_qps", "{:.0f}"),
            ("query_many_qps", "{:.0f}")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f.format(r[c]) if c in r else "-" for c, f in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sample", type=int, default=1_000, help="SciFact documents encoded for the statistics")
    ap.add_argument("--hnsw-ef", type=int, nargs="+", default=[128, 256, 512],
                    help="search ef values, each measured on the same index (the table shows the last)")
    ap.add_argument("--hnsw-m", type=int, default=None, help="HNSW edges per node (default: StorageConfig's)")
    ap.add_argument("--hnsw-ef-construct", type=int, default=None,
                    help="HNSW build candidates (default: StorageConfig's)")
    ap.add_argument("--kb", type=int, nargs="*", default=None,
                    help="also the KnowledgeBase.write check (no optimize()): alone for every size, or these sizes")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-kb", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_kb:
        print(json.dumps(measure_kb(args.points[0], args.queries, args.sample)))
        return
    if args.child:
        print(json.dumps(measure(args.points[0], args.child, args.queries, list(args.hnsw_ef), args.sample,
                                 _graph(args))))
        return
    from gte_rag.eval import run_metadata

    real_sample(args.sample)  # encode (once) before any timing
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    partial = RESULTS_DIR / f"bench_scale-{stamp}.partial.jsonl"

    def keep(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)
        with partial.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    rows: list[dict[str, Any]] = []
    for n in args.points:
        for config in args.configs:
            rows.append(_child(args, n, config))
            keep(rows[-1])
    kb_rows = []
    kb_sizes = [] if args.kb is None else (args.kb or args.points)
    for n in kb_sizes:
        cmd = [sys.executable, __file__, "--child-kb", "--points", str(n), "--queries", str(args.queries),
               "--sample", str(args.sample)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        kb_rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        keep(kb_rows[-1])
    rows.sort(key=lambda r: (r["points"], CONFIGS.index(r["config"])))
    print()
    print(_table(rows))
    print("\nby search ef (same index):")
    for r in rows:
        for e in r.get("by_ef", []):
            print(f"  {r['points']:>9,} {r['config']:<9} ef={e['hnsw_ef']}: hybrid p50 {e['hybrid_p50_ms']:.2f} ms, "
                  f"p95 {e['hybrid_p95_ms']:.2f} ms, recall@10 hybrid {e['hybrid_recall@10']:.3f}, "
                  f"dense {e['dense_recall@10']:.3f}; dense alone p50 {e['dense_p50_ms']:.2f} ms, "
                  f"p95 {e['dense_p95_ms']:.2f} ms")
        if "sparse_p50_ms" in r:
            print(f"  {r['points']:>9,} {r['config']:<9} sparse alone: p50 {r['sparse_p50_ms']:.2f} ms, "
                  f"p95 {r['sparse_p95_ms']:.2f} ms")
    for r in kb_rows:
        print(f"\nKnowledgeBase.write, {r['points']:,} points, no optimize(): hybrid p50 {r['hybrid_p50_ms']:.2f} ms "
              f"(p95 {r['hybrid_p95_ms']:.2f}); after optimize(): p50 {r['optimized_p50_ms']:.2f} ms "
              f"(p95 {r['optimized_p95_ms']:.2f}); ratio {r['ratio_p50']:.2f}; unindexed after the writes: "
              f"{r['unindexed_after_writes']}")
    out_path = RESULTS_DIR / f"bench_scale-{stamp}.json"
    out_path.write_text(json.dumps({"rows": rows, "kb": kb_rows, "metadata": run_metadata(),
                                    "args": vars(args)}, indent=2), encoding="utf-8")
    print(f"\nwrote {out_path}")


if __name__ == "__main__":
    main()
