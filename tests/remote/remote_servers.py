"""Real HTTP servers on 127.0.0.1 speaking each protocol, backed by local gte_rag models.

Each :class:`FakeService` runs a stdlib ``ThreadingHTTPServer`` in a thread and answers
with the protocol's own request and response shapes and error bodies:

- ``tei``: ``/embed``, ``/embed_sparse``, ``/rerank``, ``/tokenize``, ``/embed_all`` (TEI's
  422 ``{"error", "error_type": "Validation"}`` above its batch limit, 413 above its body limit);
- ``openai``: ``/v1/embeddings`` (``data[].index``, float or base64; ``{"error": {...}}``);
- ``dashscope``: text-embedding and text-rerank (``output.embeddings[].text_index``,
  ``output.results[]``; ``{"code", "message", "request_id"}``);
- ``cohere``: ``/v1/rerank`` (``results[].index / relevance_score``; ``{"message"}``);
- ``vllm``: ``/rerank`` and ``/score`` (``{"object": "error", ...}``).

Answers that carry an index come back shuffled (TEI ``/rerank`` sorted by score, as TEI
does), so a client that maps by position fails. ``faults`` queues misbehaviour for the next
requests: an error status (with ``Retry-After``), a delay, a raw body, or a corruption of a
correct answer (``drop`` one result, ``shrink`` one vector, ``dup`` an index).
"""

from __future__ import annotations

import base64
import json
import math
import random
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

# retries in milliseconds, so that storms and timeouts keep the suite fast
FAST: dict[str, Any] = {"backoff_initial": 0.001, "backoff_max": 0.004, "backoff_jitter": 0.001, "max_attempts": 3,
                        "timeout": 5.0}


@dataclass
class Fault:
    status: int | None = None
    body: Any = None  # JSON value, or str sent as text/plain
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # a 200 answer with this body
    corrupt: str | None = None  # drop | shrink | dup


@dataclass
class Recorded:
    path: str
    body: Any
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class FakeService:
    """One protocol's server; ``embedder`` is a GteEncoder, ``scorer`` a GteCrossEncoder."""

    def __init__(
        self,
        protocol: str,
        *,
        embedder: Any = None,
        scorer: Any = None,
        max_batch: int | None = None,
        max_body: int | None = None,
        api_key: str | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        self.protocol = protocol
        self.embedder = embedder
        self.scorer = scorer
        self.max_batch = max_batch
        self.max_body = max_body
        self.api_key = api_key
        self.shuffle = shuffle
        self.rng = random.Random(seed)
        self.faults: deque[Fault] = deque()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                service._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                service._handle_get(self)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ plumbing
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/json"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def error_body(self, message: str, kind: str = "Validation", status: int = 422) -> Any:
        """The protocol's error body."""
        if self.protocol == "tei":
            return {"error": message, "error_type": kind}
        if self.protocol == "openai":
            return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        if self.protocol == "dashscope":
            return {"code": "InvalidParameter" if status < 500 else "InternalError", "message": message,
                    "request_id": "b9c4c2c4-0000-0000-0000-000000000000"}
        if self.protocol == "vllm":
            return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}
        return {"message": message}  # cohere / jina

    def batch_error(self, n: int) -> tuple[int, Any]:
        """Each protocol's answer to a batch over its limit."""
        m = self.max_batch
        if self.protocol == "tei":
            return 422, self.error_body(f"batch size {n} > maximum allowed batch size {m}")
        if self.protocol == "openai":
            return 400, self.error_body(f"Too many inputs. The max number of inputs is {m}.", status=400)
        if self.protocol == "dashscope":
            return 400, self.error_body(f"batch size is invalid, it should not be larger than {m}.", status=400)
        if self.protocol == "vllm":
            return 400, self.error_body(f"batch size {n} exceeds the maximum of {m}", status=400)
        return 400, self.error_body(f"invalid request: too many documents, got {n}, maximum is {m}", status=400)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self._answer(h)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append(Recorded(h.path, None, {k.lower(): v for k, v in h.headers.items()}))
        if self.protocol == "tei" and h.path.rstrip("/") == "/info":
            self._send(h, 200, self.tei_info())
        else:
            self._send(h, 404, self.error_body(f"no route {h.path}", status=404))

    def tei_info(self) -> dict[str, Any]:
        """TEI's ``GET /info`` for the model behind this server."""
        pooling = {"cls": "cls", "mean": "mean", "last_token": "last_token"}[self.embedder.spec.pooling.value] \
            if self.embedder is not None else "cls"
        return {
            "model_id": str(getattr(self.embedder, "model_name", "tiny")), "model_sha": None, "model_dtype": "float32",
            "model_type": {"embedding": {"pooling": pooling}}, "prompts": None, "default_prompt": None,
            "max_concurrent_requests": 512, "max_input_length": int(getattr(self.embedder, "max_length", 512)),
            "max_batch_tokens": 16384, "max_batch_requests": None, "max_client_batch_size": self.max_batch or 32,
            "auto_truncate": True, "tokenization_workers": 2, "version": "1.8.0",
        }

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.lock:
            self.requests.append(Recorded(h.path, body, {k.lower(): v for k, v in h.headers.items()}))
            fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(h, 401, self.error_body("Invalid API key", kind="Unauthorized", status=401))
            return
        if self.max_body is not None and length > self.max_body:
            self._send(h, 413, "Failed to buffer the request body: length limit exceeded")
            return
        if fault is not None and fault.status is not None:
            self._send(h, fault.status, fault.body if fault.body is not None else self.error_body("failure", "Overloaded", fault.status),
                       fault.headers)
            return
        if fault is not None and fault.raw is not None:
            self._send(h, 200, fault.raw)
            return
        if body is None:
            self._send(h, 422, self.error_body("Failed to parse the request body as JSON"))
            return
        try:
            status, answer = self._route(h.path, body)
        except _Refuse as exc:
            status, answer = exc.status, exc.body
        if status == 200 and fault is not None and fault.corrupt:
            answer = self._corrupt(answer, fault.corrupt)
        self._send(h, status, answer)

    # ------------------------------------------------------------------ routes
    def _route(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        p, proto = path.rstrip("/"), self.protocol
        if proto == "tei":
            routes = {"/embed": self._tei_embed, "/embed_sparse": self._tei_sparse, "/rerank": self._tei_rerank,
                      "/tokenize": self._tei_tokenize, "/embed_all": self._tei_embed_all}
        elif proto == "openai":
            routes = {"/v1/embeddings": self._openai_embed}
        elif proto == "dashscope":
            routes = {"/api/v1/services/embeddings/text-embedding/text-embedding": self._dashscope_embed,
                      "/api/v1/services/rerank/text-rerank/text-rerank": self._dashscope_rerank}
        elif proto == "cohere":
            routes = {"/v1/rerank": self._cohere_rerank}
        else:
            routes = {"/rerank": self._vllm_rerank, "/v1/rerank": self._vllm_rerank, "/score": self._vllm_score}
        handler = routes.get(p)
        if handler is None:
            return 404, self.error_body(f"no route {p}", status=404)
        return 200, handler(body)

    def _limit(self, n: int) -> None:
        if n == 0:
            raise _Refuse(422 if self.protocol == "tei" else 400, self.error_body("`inputs` cannot be empty", status=400))
        if self.max_batch is not None and n > self.max_batch:
            raise _Refuse(*self.batch_error(n))

    def _vectors(self, texts: list[str], role: str, dimensions: int | None) -> np.ndarray:
        dense = self.embedder.encode(texts, role=role, return_sparse=False, on_empty="encode").dense
        if dimensions:
            dense = dense[:, :dimensions]
            dense = dense / np.linalg.norm(dense, axis=1, keepdims=True)
        return dense

    def _order(self, n: int) -> list[int]:
        order = list(range(n))
        if self.shuffle:
            self.rng.shuffle(order)
        return order

    def _tei_inputs(self, body: dict[str, Any]) -> tuple[list[str], str]:
        inputs = body.get("inputs")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        self._limit(len(texts))
        role = "query" if body.get("prompt_name") == "query" else "document"
        return texts, role

    def _tei_embed(self, body: dict[str, Any]) -> Any:
        texts, role = self._tei_inputs(body)
        return self._vectors(texts, role, body.get("dimensions")).tolist()

    def _tei_sparse(self, body: dict[str, Any]) -> Any:
        texts, role = self._tei_inputs(body)
        out = self.embedder.encode(texts, role=role, on_empty="encode").sparse
        return [[{"index": i, "value": v} for i, v in zip(sv.indices, sv.values)] for sv in out]

    def _tei_tokenize(self, body: dict[str, Any]) -> Any:
        texts, _ = self._tei_inputs(body)
        tok = self.embedder.tokenizer
        special = bool(body.get("add_special_tokens", True))
        enc = tok(texts, add_special_tokens=special, return_offsets_mapping=True, return_special_tokens_mask=True)
        out = []
        for text, ids, offs, mask in zip(texts, enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
            row = []
            for i, (a, b), m in zip(ids, offs, mask):
                # TEI reports byte offsets into the UTF-8 text
                start, stop = len(text[:a].encode()), len(text[:b].encode())
                row.append({"id": int(i), "text": text[a:b] if not m else tok.convert_ids_to_tokens(int(i)),
                            "special": bool(m), "start": None if m else start, "stop": None if m else stop})
            out.append(row)
        return out

    def _tei_embed_all(self, body: dict[str, Any]) -> Any:
        texts, role = self._tei_inputs(body)
        with warnings.catch_warnings():  # TEI truncates (truncate=true) without a word; so does this server
            warnings.simplefilter("ignore")
            out = self.embedder.encode(texts, role=role, return_sparse=False, return_token_states=True, on_empty="encode")
        return [states.tolist() for states in out.token_states]

    def _scores(self, query: str, docs: list[str], raw: bool = True) -> list[float]:
        scores = self.scorer.score_pairs([(query, d) for d in docs])
        return [float(s) if raw else 1 / (1 + math.exp(-float(s))) for s in scores]

    def _tei_rerank(self, body: dict[str, Any]) -> Any:
        texts = list(body.get("texts") or [])
        self._limit(len(texts))
        scores = self._scores(body["query"], texts, raw=bool(body.get("raw_scores")))
        ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
        return [{"index": i, "score": scores[i]} for i in ranked]

    def _openai_embed(self, body: dict[str, Any]) -> Any:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        self._limit(len(texts))
        dense = self._vectors(texts, "document", body.get("dimensions"))
        b64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(dense[i].astype("<f4").tobytes()).decode() if b64 else dense[i].tolist()}
            for i in self._order(len(texts))
        ]
        return {"object": "list", "data": data, "model": body.get("model"),
                "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}}

    def _dashscope_embed(self, body: dict[str, Any]) -> Any:
        texts = list((body.get("input") or {}).get("texts") or [])
        self._limit(len(texts))
        params = body.get("parameters") or {}
        role = "query" if params.get("text_type") == "query" else "document"
        kind = params.get("output_type", "dense")
        out = self.embedder.encode(texts, role=role, on_empty="encode")
        dense = self._vectors(texts, role, params.get("dimension"))
        entries = []
        for i in self._order(len(texts)):
            entry: dict[str, Any] = {"text_index": i}
            if "dense" in kind:
                entry["embedding"] = dense[i].tolist()
            if "sparse" in kind:
                sv = out.sparse[i]
                entry["sparse_embedding"] = [{"index": k, "value": v, "token": f"t{k}"} for k, v in zip(sv.indices, sv.values)]
            entries.append(entry)
        return {"output": {"embeddings": entries}, "usage": {"total_tokens": 3 * len(texts)},
                "request_id": "5f3e-0000"}

    def _ranked_results(self, query: str, docs: list[str], top_n: int | None, key: str = "relevance_score") -> list[dict[str, Any]]:
        scores = self._scores(query, docs)
        ranked = sorted(range(len(docs)), key=lambda i: -scores[i])[: top_n or len(docs)]
        return [{"index": i, key: scores[i]} for i in ranked]

    def _cohere_rerank(self, body: dict[str, Any]) -> Any:
        docs = list(body.get("documents") or [])
        self._limit(len(docs))
        results = self._ranked_results(body["query"], docs, body.get("top_n"))
        return {"id": "c0ffee", "results": results, "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}}

    def _vllm_rerank(self, body: dict[str, Any]) -> Any:
        docs = list(body.get("documents") or [])
        self._limit(len(docs))
        results = self._ranked_results(body["query"], docs, body.get("top_n"))
        for r in results:
            r["document"] = {"text": docs[r["index"]]}
        return {"id": "rerank-1", "model": body.get("model"), "usage": {"total_tokens": 10}, "results": results}

    def _vllm_score(self, body: dict[str, Any]) -> Any:
        docs = body.get("text_2")
        docs = [docs] if isinstance(docs, str) else list(docs or [])
        self._limit(len(docs))
        scores = self._scores(body["text_1"], docs)
        data = [{"index": i, "object": "score", "score": scores[i]} for i in self._order(len(docs))]
        return {"id": "score-1", "object": "list", "created": 0, "model": body.get("model"), "data": data,
                "usage": {"total_tokens": 10}}

    def _dashscope_rerank(self, body: dict[str, Any]) -> Any:
        inp = body.get("input") or {}
        docs = list(inp.get("documents") or [])
        self._limit(len(docs))
        top_n = (body.get("parameters") or {}).get("top_n")
        results = self._ranked_results(inp["query"], docs, top_n)
        return {"output": {"results": results}, "usage": {"total_tokens": 10}, "request_id": "9a1e-0000"}

    # ------------------------------------------------------------------ corruption
    def _corrupt(self, answer: Any, how: str) -> Any:
        entries, vector_key = self._entries(answer)
        if how == "drop":
            entries.pop()
        elif how == "dup":
            entries[-1] = dict(entries[-1]) if isinstance(entries[-1], dict) else entries[-1]
            entries[-1]["index" if "index" in entries[-1] else "text_index"] = entries[0].get(
                "index", entries[0].get("text_index"))
        elif how == "shrink":
            if vector_key is None:  # TEI /embed: a bare list of vectors
                entries[0] = entries[0][:-1]
            else:
                v = entries[0][vector_key]
                if isinstance(v, str):  # base64
                    entries[0][vector_key] = base64.b64encode(base64.b64decode(v)[:-4]).decode()
                else:
                    entries[0][vector_key] = v[:-1]
        return answer

    @staticmethod
    def _entries(answer: Any) -> tuple[list[Any], str | None]:
        if isinstance(answer, list):
            return answer, None
        if "data" in answer:
            return answer["data"], "embedding"
        if "output" in answer:
            out = answer["output"]
            return (out["embeddings"], "embedding") if "embeddings" in out else (out["results"], None)
        return answer["results"], None


class _Refuse(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
