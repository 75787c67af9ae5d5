"""Hybrid query latency of the Qdrant part only (query vectors are precomputed).

Compares, on the same synthetic corpus (384-d dense vectors with a shared mean direction,
Zipf-distributed sparse vectors over a 30k vocabulary, 50-150 nonzeros per document):

- gte_rag ``QdrantStore`` on Qdrant Edge (plain, then after ``optimize()``),
- gte_rag ``QdrantStore`` on qdrant-client local mode (``:memory:``),
- LlamaIndex ``QdrantVectorStore`` hybrid query on local mode (custom sparse functions).

All run hybrid RRF with top_k=10 and 100 candidates per branch. Prints p50/p95 and the
ratio of p50 vs LlamaIndex, and writes a JSON with commit, machine and versions under
``benchmarks/results/``.

Our overhead over the engine: after ``optimize()``, ``QdrantStore.query`` (hybrid RRF) is
timed against the same request sent straight to the Edge shard (a ``qdrant_edge``
``QueryRequest`` built once per query outside the timing; ``shard.query`` timed), on the
same queries in the same run, interleaved (the order alternates per query), after a
warm-up. The difference of the p50s is what gte_rag adds: plan building, conversion to
Edge types, result parsing into ``SearchHit`` and the tie-breaking sort. ``--profile``
also prints the median time of each of those pieces.

Usage::

    python benchmarks/bench_hybrid_query.py --points 10000 100000
    python benchmarks/bench_hybrid_query.py --points 100000 --edge-only --queries 1000 --profile
    python benchmarks/bench_hybrid_query.py --points 2000 --queries 50      # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag._types import SparseVector
from gte_rag.qdrant import (
    CollectionLayout,
    HybridConfig,
    PointRecord,
    SearchHit,
    build_query_plan,
    open_store,
    point_id,
    rank_hits,
)
from gte_rag.qdrant._query import DEFAULT_RRF_K, TIE_MARGIN

logger = logging.getLogger(__name__)

DIM = 384
VOCAB = 30_000
TOP_K = 10
PREFETCH = 100
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def make_corpus(n: int, n_queries: int, seed: int = 0) -> dict[str, Any]:
    """Dense vectors like real embeddings (shared mean direction) and Zipf sparse vectors."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=DIM).astype(np.float32)
    mean /= np.linalg.norm(mean)

    def dense(m: int) -> np.ndarray:
        x = rng.normal(size=(m, DIM)).astype(np.float32) / np.sqrt(DIM) + 0.6 * mean
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    p = 1.0 / ranks**1.07
    p /= p.sum()
    perm = rng.permutation(VOCAB)  # token id is not the frequency rank

    def sparse(m: int, lo: int, hi: int) -> list[tuple[np.ndarray, np.ndarray]]:
        counts = rng.integers(lo, hi + 1, size=m)
        draws = perm[rng.choice(VOCAB, size=int(2 * counts.sum()), p=p)]  # one Zipf draw for all
        out, start = [], 0
        for k in counts:
            ids = np.unique(draws[start : start + 2 * k])[:k]
            start += 2 * k
            vals = rng.gamma(2.0, 0.5, size=ids.size).astype(np.float32)
            out.append((ids.astype(np.int64), vals))
        return out

    return {
        "dense": dense(n),
        "sparse": sparse(n, 50, 150),
        "q_dense": dense(n_queries),
        "q_sparse": sparse(n_queries, 5, 20),
        "group": rng.choice(["news", "wiki", "code", "mail"], size=n),
    }


def _sv(pair: tuple[np.ndarray, np.ndarray]) -> SparseVector:
    return SparseVector(tuple(int(i) for i in pair[0]), tuple(float(v) for v in pair[1]))


def _summary(times_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(times_ms)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "queries": len(times_ms),
    }


def _latencies(fn: Callable[[int], Any], n_queries: int, warmup: int = 3) -> dict[str, float]:
    for j in range(min(warmup, n_queries)):
        fn(j)
    times = []
    for j in range(n_queries):
        t0 = time.perf_counter()
        fn(j)
        times.append((time.perf_counter() - t0) * 1000.0)
    return _summary(times)


def _direct_request(layout: CollectionLayout, dense: np.ndarray, sparse: tuple[np.ndarray, np.ndarray]) -> Any:
    """The hybrid RRF request of ``QdrantStore.query``, written straight in qdrant_edge types."""
    import qdrant_edge as qe

    def branch(query: Any, using: str | None) -> Any:
        return qe.Prefetch(limit=PREFETCH, query=qe.Query.Nearest(query, using=using), prefetches=None,
                           filter=None, score_threshold=None)

    return qe.QueryRequest(
        limit=TOP_K + TIE_MARGIN,
        query=qe.Fusion.Rrf(k=DEFAULT_RRF_K, weights=None),
        prefetches=[
            branch(dense.astype(np.float32).tolist(), layout.dense_name),
            branch(qe.SparseVector(sparse[0].tolist(), sparse[1].astype(np.float32).tolist()), layout.sparse_name),
        ],
        filter=None,
        with_payload=True,
        with_vector=False,
    )


def bench_overhead(store: Any, corpus: dict[str, Any], q_sparse: list[SparseVector], hybrid: HybridConfig,
                   n_queries: int, *, warmup: int = 20, profile: bool = False) -> dict[str, Any]:
    """``QdrantStore.query`` against the same request sent straight to the Edge shard."""
    from gte_rag.qdrant._edge_convert import to_edge_request

    layout = store.layout
    nq = len(q_sparse)
    direct = [_direct_request(layout, corpus["q_dense"][j], corpus["q_sparse"][j]) for j in range(nq)]
    plan0 = build_query_plan(layout, dense=corpus["q_dense"][0], sparse=q_sparse[0], top_k=TOP_K, hybrid=hybrid)
    assert repr(to_edge_request(plan0)) == repr(direct[0]), "the direct request differs from ours"
    times: dict[str, list[float]] = {"ours": [], "direct": [], "direct_read": []}
    with store.backend.using_shard() as shard:  # close() waits for this block

        def ours(j: int) -> float:
            t0 = time.perf_counter()
            store.query(corpus["q_dense"][j % nq], q_sparse[j % nq], top_k=TOP_K, hybrid=hybrid)
            return (time.perf_counter() - t0) * 1000.0

        def straight(j: int) -> float:
            request = direct[j % nq]
            t0 = time.perf_counter()
            shard.query(request)
            return (time.perf_counter() - t0) * 1000.0

        def straight_read(j: int) -> float:
            # the same request, and its top_k results read as a caller would use them
            # (Edge builds each point's id and payload when they are read)
            request = direct[j % nq]
            t0 = time.perf_counter()
            found = shard.query(request)
            _ = [(str(p.id), p.score, p.payload) for p in found[:TOP_K]]
            return (time.perf_counter() - t0) * 1000.0

        systems = {"ours": ours, "direct": straight, "direct_read": straight_read}
        for j in range(warmup):
            for run in systems.values():
                run(j)
        names = list(systems)
        for j in range(n_queries):  # interleaved; who goes first rotates
            for k in range(len(names)):
                name = names[(j + k) % len(names)]
                times[name].append(systems[name](j))
        pieces = _profile_pieces(store, shard, corpus, q_sparse, hybrid, n_queries) if profile else None
    result: dict[str, Any] = {name: _summary(values) for name, values in times.items()}
    result["overhead_p50_ms"] = result["ours"]["p50_ms"] - result["direct"]["p50_ms"]
    result["ratio_p50"] = result["ours"]["p50_ms"] / result["direct"]["p50_ms"]
    result["overhead_vs_read_p50_ms"] = result["ours"]["p50_ms"] - result["direct_read"]["p50_ms"]
    result["ratio_vs_read_p50"] = result["ours"]["p50_ms"] / result["direct_read"]["p50_ms"]
    if pieces is not None:
        result["pieces_p50_us"] = pieces
    return result


def _profile_pieces(store: Any, shard: Any, corpus: dict[str, Any], q_sparse: list[SparseVector],
                    hybrid: HybridConfig, n_queries: int) -> dict[str, float]:
    """Median time of each piece of our query path, in microseconds."""
    from gte_rag.qdrant._edge_convert import to_edge_request

    try:
        from gte_rag.qdrant._edge import _best_hits as parse  # what EdgeBackend.query parses
    except ImportError:  # older code parsed every point

        def parse(found: Any, top_k: int) -> list[SearchHit]:
            return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    layout = store.layout
    nq = len(q_sparse)
    times: dict[str, list[float]] = {"plan": [], "convert": [], "engine": [], "parse": [], "rank": []}
    for j in range(n_queries):
        t0 = time.perf_counter()
        plan = build_query_plan(layout, dense=corpus["q_dense"][j % nq], sparse=q_sparse[j % nq],
                                top_k=TOP_K, hybrid=hybrid)
        t1 = time.perf_counter()
        request = to_edge_request(plan)
        t2 = time.perf_counter()
        found = shard.query(request)
        t3 = time.perf_counter()
        hits = parse(found, plan.top_k)
        t4 = time.perf_counter()
        rank_hits(hits, plan.top_k)
        t5 = time.perf_counter()
        for key, (a, b) in zip(times, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            times[key].append((b - a) * 1e6)
    return {key: float(np.median(v)) for key, v in times.items()}


def bench_gte_store(location: str | Path | None, corpus: dict[str, Any], n_queries: int, *, optimize: bool,
                    overhead_queries: int = 0, profile: bool = False) -> dict[str, Any]:
    """Insert, time plain queries, optimize, time again (and our overhead over the shard).

    With a directory that already holds this corpus, optimized (``--edge-dir``), the
    insert, the plain timing and the optimize are skipped: only the queries are timed.
    """
    n = len(corpus["dense"])
    layout = CollectionLayout(
        "bench", dense_size=DIM, sparse_idf=True, payload_indexes={"group": "keyword"}
    )
    results: dict[str, Any] = {}
    with open_store(location, layout) as store:
        created = store.ensure_collection()
        reused = optimize and not created and store.count() == n and store.optimize() is False
        if not created and not reused:
            store.ensure_collection(recreate=True)
        results["reused_collection"] = reused
        points = [
            PointRecord(
                point_id(f"doc{i}", 0),
                corpus["dense"][i],
                _sv(corpus["sparse"][i]),
                payload={"doc_id": f"doc{i}", "group": str(corpus["group"][i]), "text": f"doc {i}"},
            )
            for i in range(n)
        ] if not reused else []
        if not reused:
            t0 = time.perf_counter()
            store.upsert(points, batch_size=512)
            results["insert_s"] = time.perf_counter() - t0
        q_sparse = [_sv(s) for s in corpus["q_sparse"]]
        hybrid = HybridConfig(prefetch_limit=PREFETCH)
        nq = len(q_sparse)

        def query(j: int) -> Any:
            return store.query(corpus["q_dense"][j % nq], q_sparse[j % nq], top_k=TOP_K, hybrid=hybrid)

        if not reused:
            results["plain"] = _latencies(query, n_queries)
        if optimize:
            if not reused:
                t0 = time.perf_counter()
                store.optimize()
                results["optimize_s"] = time.perf_counter() - t0
            results["optimized"] = _latencies(query, n_queries)
            if overhead_queries:
                results["overhead"] = bench_overhead(store, corpus, q_sparse, hybrid, overhead_queries,
                                                     profile=profile)
    return results


def bench_llama_index(corpus: dict[str, Any], n_queries: int) -> dict[str, Any]:
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    n = len(corpus["dense"])
    doc_sparse = {f"doc {i}": corpus["sparse"][i] for i in range(n)}
    query_sparse = {f"query {j}": corpus["q_sparse"][j] for j in range(len(corpus["q_sparse"]))}

    def encode(table: dict[str, tuple[np.ndarray, np.ndarray]]) -> Callable[[list[str]], Any]:
        def fn(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
            # LlamaIndex passes the node content with its metadata header: key on the text
            pairs = [table[t.rsplit("\n\n", 1)[-1]] for t in texts]
            return [p[0].tolist() for p in pairs], [p[1].tolist() for p in pairs]

        return fn

    client = QdrantClient(":memory:")
    store = QdrantVectorStore(
        collection_name="bench_li",
        client=client,
        enable_hybrid=True,
        sparse_doc_fn=encode(doc_sparse),
        sparse_query_fn=encode(query_sparse),
        batch_size=512,
    )
    nodes = [
        TextNode(text=f"doc {i}", id_=point_id(f"doc{i}", 0), embedding=corpus["dense"][i].tolist(),
                 metadata={"group": str(corpus["group"][i])})
        for i in range(n)
    ]
    t0 = time.perf_counter()
    store.add(nodes)
    insert_s = time.perf_counter() - t0
    nq = len(corpus["q_sparse"])

    def query(j: int) -> Any:
        q = VectorStoreQuery(
            query_embedding=corpus["q_dense"][j % nq].tolist(),
            query_str=f"query {j % nq}",
            mode=VectorStoreQueryMode.HYBRID,
            similarity_top_k=TOP_K,
            sparse_top_k=PREFETCH,
            hybrid_top_k=TOP_K,
        )
        return store.query(q)

    result = {"insert_s": insert_s, "plain": _latencies(query, n_queries)}
    client.close()
    return result


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("qdrant-client", "qdrant-edge-py", "llama-index-core", "llama-index-vector-stores-qdrant", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _local_queries(n: int, requested: int) -> int:
    # local mode is brute force in Python (~1.7 s per hybrid query at 100k): cap it
    return max(5, min(requested, int(300_000 / max(n, 1))))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def run(points: list[int], queries: int, skip_llama_index: bool = False, *, edge_only: bool = False,
        profile: bool = False, edge_dir: Path | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "commit": _git_commit(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "versions": _versions(),
        "settings": {"dim": DIM, "vocab": VOCAB, "top_k": TOP_K, "prefetch": PREFETCH, "fusion": "rrf"},
        "load_average_at_start": _load(),
        "runs": {},
    }
    print(f"load average (1, 5, 15 min): {report['load_average_at_start']}", flush=True)
    for n in points:
        print(f"\n== {n} points: building corpus", flush=True)
        corpus = make_corpus(n, n_queries=max(queries, 50))
        runs: dict[str, Any] = {}
        print("   gte_rag on Edge ...", flush=True)
        location = None if edge_dir is None else edge_dir / f"points_{n}"
        runs["gte_edge"] = bench_gte_store(location, corpus, queries, optimize=True, overhead_queries=queries,
                                           profile=profile)
        if not edge_only:
            local_q = _local_queries(n, queries)
            print(f"   gte_rag on local mode ({local_q} queries) ...", flush=True)
            runs["gte_local"] = bench_gte_store(":memory:", corpus, local_q, optimize=False)
            if not skip_llama_index:
                print(f"   LlamaIndex QdrantVectorStore on local mode ({local_q} queries) ...", flush=True)
                runs["llama_index_local"] = bench_llama_index(corpus, local_q)
        runs["load_average_at_end"] = _load()
        report["runs"][str(n)] = runs
        _print_table(n, runs)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"hybrid_query_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return report


def _print_table(n: int, runs: dict[str, Any]) -> None:
    ref = runs.get("llama_index_local", {}).get("plain", {}).get("p50_ms")
    rows = [
        ("gte_rag Edge (plain)", runs["gte_edge"], "plain"),
        ("gte_rag Edge (optimized)", runs["gte_edge"], "optimized"),
    ]
    if "gte_local" in runs:
        rows.append(("gte_rag local mode", runs["gte_local"], "plain"))
    if "llama_index_local" in runs:
        rows.append(("LlamaIndex local mode", runs["llama_index_local"], "plain"))
    print(f"\n{n} points, hybrid RRF top-{TOP_K}, Qdrant part only")
    print(f"{'store':28} {'insert s':>9} {'p50 ms':>9} {'p95 ms':>9} {'queries':>8} {'p50 vs LI':>10}")
    for label, res, key in rows:
        if key not in res:
            continue
        lat = res[key]
        ratio = f"{lat['p50_ms'] / ref:.4f}x" if ref else "-"
        insert = res.get("insert_s", float("nan")) if key == "plain" else res.get("optimize_s", float("nan"))
        print(f"{label:28} {insert:9.1f} {lat['p50_ms']:9.2f} {lat['p95_ms']:9.2f} {lat['queries']:8d} {ratio:>10}")
    print("(insert s of the optimized row = optimize time)")
    over = runs["gte_edge"].get("overhead")
    if over:
        ours, direct = over["ours"], over["direct"]
        print(f"\nOur overhead on Edge after optimize(), {ours['queries']} interleaved queries "
              f"(load average {runs.get('load_average_at_end', '?')}):")
        print(f"{'path':34} {'p50 ms':>9} {'p95 ms':>9}")
        rows = (("QdrantStore.query (ours)", "ours"), ("EdgeShard.query (direct)", "direct"),
                ("EdgeShard.query + read top_k", "direct_read"))
        for label, key in rows:
            if key in over:
                print(f"{label:34} {over[key]['p50_ms']:9.3f} {over[key]['p95_ms']:9.3f}")
        print(f"difference of p50: {over['overhead_p50_ms']:.3f} ms, ratio ours/direct: {over['ratio_p50']:.3f}")
        if "overhead_vs_read_p50_ms" in over:
            print(f"difference of p50 against the direct call with its results read: "
                  f"{over['overhead_vs_read_p50_ms']:.3f} ms, ratio {over['ratio_vs_read_p50']:.3f}")
        if "pieces_p50_us" in over:
            pieces = ", ".join(f"{k} {v:.1f}" for k, v in over["pieces_p50_us"].items())
            print(f"pieces of our path, median us: {pieces}")


@pytest.mark.benchmark
def test_bench_hybrid_query_small() -> None:
    """Smoke-run the benchmark on 2k points; Edge must answer a hybrid query in < 50 ms."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # LlamaIndex creates payload indexes on local mode, which warns that they do nothing
        warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
        report = run([2000], queries=20)
    edge = report["runs"]["2000"]["gte_edge"]
    assert edge["plain"]["p50_ms"] < 50
    assert edge["overhead"]["ours"]["queries"] == edge["overhead"]["direct"]["queries"] == 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000],
                        help="corpus sizes (any size >= 1; e.g. 2000 for a quick smoke run)")
    parser.add_argument("--queries", type=int, default=200, help="queries per engine (local mode is capped)")
    parser.add_argument("--skip-llama-index", action="store_true")
    parser.add_argument("--edge-only", action="store_true",
                        help="only Qdrant Edge (plain, optimized, overhead vs the shard): no local mode, no LlamaIndex")
    parser.add_argument("--profile", action="store_true", help="also time each piece of our query path")
    parser.add_argument("--edge-dir", type=Path, default=None,
                        help="keep the Edge collections here (built and optimized once; later runs only time queries)")
    args = parser.parse_args(argv)
    if min(args.points) < 1 or args.queries < 1:
        parser.error("--points and --queries must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    run(args.points, args.queries, args.skip_llama_index, edge_only=args.edge_only, profile=args.profile,
        edge_dir=args.edge_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
