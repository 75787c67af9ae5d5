"""Ingest throughput: documents/s end to end (chunk + encode + upsert into Qdrant Edge)
against encoder-only throughput on the same chunks, in the same run.

    python benchmarks/bench_ingest.py [--docs 1000] [--model sentence-transformers/all-MiniLM-L6-v2]

Prints both rates, their ratio and the share of ingest time spent outside the encoder
(target: <= 25%), and writes JSON with run metadata to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--data", type=Path, default=DATA / "scifact")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*exceed max_length.*")

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import load_beir, run_metadata
    from gte_rag.kb import KnowledgeBase, SourceDocument

    data = load_beir(args.data)
    docs = [SourceDocument(d.id, d.full_text) for d in list(data.corpus.values())[: args.docs] if d.full_text.strip()]
    encoder = GteEncoder(args.model, cache_size=0)
    encoder.encode(["warm up the model"] * 4)
    with KnowledgeBase(None, encoder=encoder) as kb:
        stats = kb.add_documents(docs)
        chunks = [c.text for parts in kb.chunker.split_many([d.text for d in docs]) for c in parts] if kb.chunker else [d.text for d in docs]
    start = time.perf_counter()
    encoder.encode(chunks, role="document")
    encoder_only = time.perf_counter() - start

    rows = {
        "documents": stats.documents,
        "chunks": stats.chunks,
        "ingest_seconds": round(stats.total_seconds, 3),
        "ingest_docs_per_s": round(stats.documents / stats.total_seconds, 2),
        "ingest_encoder_seconds": round(stats.encode_seconds, 3),
        "ingest_store_seconds": round(stats.store_seconds, 3),
        "ingest_chunking_seconds": round(stats.chunk_seconds, 3),
        "encoder_only_seconds": round(encoder_only, 3),
        "encoder_only_docs_per_s": round(stats.documents / encoder_only, 2),
        "ratio_ingest_vs_encoder_only": round(encoder_only / stats.total_seconds, 3),
        "outside_encoder_fraction": round(stats.outside_encoder_fraction, 4),
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key.ljust(width)}  {value}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"ingest-{int(time.time())}.json"
    path.write_text(json.dumps({"results": rows, "model": args.model, "metadata": run_metadata()}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
