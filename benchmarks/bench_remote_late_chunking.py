"""Payload cost of remote late chunking: bytes on the wire per document token, against /embed.

One TEI-protocol server runs in a thread of this process on 127.0.0.1 (the loopback server of
the test suite, tests/remote/remote_servers.py), backed by the real all-MiniLM-L6-v2 (float32,
CPU). It writes its vector answers the way TEI does, as float32 numbers (9 significant
digits here, an upper bound of TEI's shortest float32 form), so the byte counts are TEI's to
within a few percent. The same QMSum meetings (first ``--chars`` characters each) go through:

| name | what the client does |
| --- | --- |
| ``remote-late`` | ``LongDocEncoder(RemoteEncoder(url), mode="late")``: each window tokenized by ``/tokenize`` and its token states fetched by ``/embed_all`` |
| ``remote-chunks`` | ``LongDocEncoder(RemoteEncoder(url), mode="chunks")``: each chunk's vector from ``/embed`` |
| ``local-late`` | ``LongDocEncoder(GteEncoder(MiniLM), mode="late")``: the reference vectors |

and the script prints, per name, the response and request bytes per document token (the
document's own tokens), the wall time, and the largest difference between the remote and
the local late-chunked vectors.

Run: python benchmarks/bench_remote_late_chunking.py [--docs 3] [--chars 20000]
Writes benchmarks/results/bench_remote_late_chunking-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "remote"))  # the loopback TEI server of the tests
DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", ROOT.parent / "shared" / "data"))


def load_meetings(n: int, chars: int) -> list[str]:
    out = []
    with open(DATA / "qmsum" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"][:chars])
            if len(out) == n:
                break
    return out


def _f32_json(value: Any) -> str:
    """JSON of nested lists of numbers with float32 precision (9 significant digits), as TEI writes them."""
    if isinstance(value, list):
        if value and isinstance(value[0], float):
            return "[" + ",".join(f"{x:.9g}" for x in value) + "]"
        return "[" + ",".join(_f32_json(v) for v in value) + "]"
    return json.dumps(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3)
    parser.add_argument("--chars", type=int, default=20000)
    args = parser.parse_args()

    from remote_servers import FakeService

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import run_metadata
    from gte_rag.longdoc import LongDocEncoder
    from gte_rag.remote import RemoteEncoder

    class CountingService(FakeService):
        """The loopback TEI server, counting the bytes of each answer by path, vectors as float32."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.bytes_out: Counter[str] = Counter()

        def _send(self, h: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, list) and h.path in ("/embed", "/embed_all"):
                body = _f32_json(body).encode()
            data = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
            with self.lock:
                self.bytes_out[h.path] += len(data)
            super()._send(h, status, data, headers)

    docs = load_meetings(args.docs, args.chars)
    backend = GteEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu", dtype="float32", cache_size=0)
    n_tokens = sum(len(t) for t in backend.tokenize(docs))
    service = CountingService("tei", embedder=backend)
    results: dict[str, dict[str, Any]] = {}
    vectors: dict[str, list[np.ndarray]] = {}
    try:
        remote = RemoteEncoder(service.url, sparse=False, cache_size=0, settings={"timeout": 600.0})
        remote.dimension  # noqa: B018 - the one-time dimension probe, outside the counts
        _ = remote.document_token_budget  # GET /info and the special-token probe, outside the counts
        systems = {
            "remote-late": lambda: LongDocEncoder(remote, mode="late").encode(docs),
            "remote-chunks": lambda: LongDocEncoder(remote, mode="chunks").encode(docs),
            "local-late": lambda: LongDocEncoder(backend, mode="late").encode(docs),
        }
        for name, run in systems.items():
            service.bytes_out.clear()
            first = len(service.requests)
            t = time.perf_counter()
            out = run()
            seconds = time.perf_counter() - t
            sent = Counter()
            for r in service.requests[first:]:
                sent[r.path] += int(r.headers.get("content-length", 0))
            received = dict(service.bytes_out)
            vectors[name] = [c.dense for d in out for c in d.chunks]
            results[name] = {
                "seconds": seconds,
                "windows": sum(len(d.windows) for d in out),
                "chunks": sum(len(d.chunks) for d in out),
                "bytes_received": received,
                "bytes_sent": dict(sent),
                "received_per_token": sum(received.values()) / n_tokens,
                "sent_per_token": sum(sent.values()) / n_tokens,
            }
    finally:
        service.close()
    ref = np.stack(vectors["local-late"])
    late = np.stack(vectors["remote-late"])
    diff = float(np.abs(late - ref).max())
    print(f"{len(docs)} QMSum meetings, {n_tokens} document tokens (first {args.chars} characters each), "
          "TEI-protocol server on 127.0.0.1 backed by MiniLM (float32, CPU), 256-token windows")
    print(f"{'system':<14} {'seconds':>8} {'windows':>8} {'chunks':>7} {'recv B/token':>13} {'sent B/token':>13}  by path")
    for name, r in results.items():
        paths = ", ".join(f"{p} {b / n_tokens:.0f}" for p, b in sorted(r["bytes_received"].items()))
        print(f"{name:<14} {r['seconds']:>8.2f} {r['windows']:>8} {r['chunks']:>7} {r['received_per_token']:>13.1f} "
              f"{r['sent_per_token']:>13.1f}  {paths}")
    ratio = results["remote-late"]["received_per_token"] / max(results["remote-chunks"]["received_per_token"], 1e-9)
    print(f"remote-late receives {ratio:.0f}x the bytes of remote-chunks; "
          f"largest |remote-late - local-late| over {len(ref)} chunk vectors: {diff:.2e}")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench_remote_late_chunking-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {"docs": len(docs), "chars": args.chars, "document_tokens": n_tokens, "results": results,
               "late_vs_local_max_abs_diff": diff, "late_vs_chunks_bytes_ratio": ratio, "meta": run_metadata()}
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
