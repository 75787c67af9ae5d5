"""Remote embedding throughput: GteRemoteEmbedding against LlamaIndex's TextEmbeddingsInference.

One TEI-protocol server runs in a thread of this process on 127.0.0.1 (the loopback server of
the test suite, tests/remote/remote_servers.py), backed by the real all-MiniLM-L6-v2
(float32, CPU, no result cache). Every client embeds the same SciFact documents
(``title + "\\n" + text``, first 500 characters) through it, once each after a warm-up, and
the script prints documents/s and the ratio to LlamaIndex's client:

| name | call |
| --- | --- |
| ``li-tei`` | ``TextEmbeddingsInference(base_url=url, model_name="minilm").get_text_embedding_batch(docs)`` (its default ``embed_batch_size=10``) |
| ``li-tei-b32`` | the same with ``embed_batch_size=32`` (TEI's batch limit) |
| ``li-tei-async`` | ``await ...aget_text_embedding_batch(docs)`` (default batch size) |
| ``gte-remote`` | ``GteRemoteEmbedding(url=url, protocol="tei").get_text_embedding_batch(docs)`` |
| ``gte-remote-async`` | ``await GteRemoteEmbedding(...).aget_text_embedding_batch(docs)`` (8 requests in flight) |

Also checks that every client returns the same vectors (minimum cosine to ``gte-remote``).

Run: python benchmarks/bench_remote_embedding.py [--docs 1000]
Writes benchmarks/results/bench_remote_embedding-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "remote"))  # the loopback TEI server of the tests
DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", ROOT.parent / "shared" / "data"))


def load_docs(n: int) -> list[str]:
    docs = []
    with open(DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append(f"{row.get('title', '')}\n{row['text']}"[:500])
            if len(docs) == n:
                break
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()

    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference
    from remote_servers import FakeService

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import run_metadata
    from gte_rag.llama_index import GteRemoteEmbedding

    docs = load_docs(args.docs)
    backend = GteEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu", dtype="float32", cache_size=0)
    service = FakeService("tei", embedder=backend)
    url = service.url
    warm = [f"warm-up text {i}" for i in range(16)]

    def li(batch: int | None = None) -> Any:
        kw = {"embed_batch_size": batch} if batch else {}
        return TextEmbeddingsInference(base_url=url, model_name="minilm", timeout=120, **kw)

    def ours() -> Any:
        return GteRemoteEmbedding(url=url, protocol="tei")

    async def run_async(emb: Any) -> list[list[float]]:
        try:
            out: list[list[float]] = await emb.aget_text_embedding_batch(docs)
            return out
        finally:
            if hasattr(emb, "aclose"):
                await emb.aclose()

    systems: dict[str, Any] = {
        "li-tei": lambda: li().get_text_embedding_batch(docs),
        "li-tei-b32": lambda: li(32).get_text_embedding_batch(docs),
        "li-tei-async": lambda: asyncio.run(run_async(li())),
        "gte-remote": lambda: ours().get_text_embedding_batch(docs),
        "gte-remote-async": lambda: asyncio.run(run_async(ours())),
    }
    li().get_text_embedding_batch(warm)
    ours().get_text_embedding_batch(warm)
    results: dict[str, dict[str, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    for name, call in systems.items():
        t = time.perf_counter()
        out = call()
        seconds = time.perf_counter() - t
        vectors[name] = np.asarray(out, dtype=np.float32)
        results[name] = {"seconds": seconds, "docs_per_s": len(docs) / seconds}
    service.close()
    ref = vectors["gte-remote"]
    base = results["li-tei"]["docs_per_s"]
    print(f"{len(docs)} SciFact documents, TEI-protocol server on 127.0.0.1 backed by MiniLM (float32, CPU)")
    print(f"{'system':<18} {'seconds':>8} {'docs/s':>8} {'vs li-tei':>10} {'min cos':>8}")
    for name, r in results.items():
        v = vectors[name]
        cos = float(np.min(np.sum(v * ref, axis=1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))))
        r["ratio_vs_li_tei"] = r["docs_per_s"] / base
        r["min_cosine_vs_gte_remote"] = cos
        print(f"{name:<18} {r['seconds']:>8.2f} {r['docs_per_s']:>8.1f} {r['ratio_vs_li_tei']:>9.2f}x {cos:>8.5f}")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench_remote_embedding-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"docs": len(docs), "results": results, "meta": run_metadata()}, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
