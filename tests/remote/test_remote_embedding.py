"""One behaviour suite, run against every embedding protocol's real loopback server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from remote_servers import FAST, FakeService, Fault

from gte_rag.errors import RemoteRequestError, RemoteResponseError, RemoteServiceError
from gte_rag.remote import RemoteEncoder

TEXTS = [
    "Plants create oxygen through photosynthesis.",
    "Rust is a systems programming language that prevents memory errors.",
    "The Eiffel Tower is in Paris, the capital of France.",
    "Water boils at one hundred degrees at sea level.",
    "Bees pollinate flowers and make honey from nectar.",
    "Light travels faster than sound.",
    "A battery stores chemical energy and releases it as electricity.",
    "Mount Everest is the highest mountain on Earth.",
    "The heart pumps blood through the arteries and veins.",
    "Python is a programming language that is easy to read.",
]

CASES: dict[str, dict[str, Any]] = {
    "tei": {"protocol": "tei", "sparse": True, "query_prompt_name": "query"},
    "openai": {"protocol": "openai", "model_name": "gte-tiny"},
    "openai-base64": {"protocol": "openai", "model_name": "gte-tiny", "encoding_format": "base64"},
    "dashscope": {"protocol": "dashscope", "model_name": "text-embedding-v3"},
}
PATHS = {"tei": "/embed", "openai": "/v1/embeddings", "dashscope": "/api/v1/services/embeddings/text-embedding/text-embedding"}
ENV = {"tei": "TEI_API_KEY", "openai": "OPENAI_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server_protocol(case: str) -> str:
    return case.split("-")[0]


def _client(service: FakeService, case: str, settings: dict[str, Any] | None = None, **kw: Any) -> RemoteEncoder:
    return RemoteEncoder(service.url, settings={**FAST, **(settings or {})}, **{**CASES[case], **kw})


def _sizes(service: FakeService, path: str | None = None) -> list[int]:
    """Inputs per recorded request to the dense endpoint."""
    path = path or PATHS[service.protocol]
    out = []
    for r in service.requests:
        if r.path != path:
            continue
        body = r.body
        texts = body.get("inputs") or body.get("input") or (body.get("input") or {}).get("texts")
        if isinstance(texts, dict):
            texts = texts["texts"]
        out.append(len(texts))
    return out


def _check_matches_local(out: Any, local: Any, texts: list[str], role: str, sparse: bool) -> None:
    ref = local.encode(texts, role=role)
    assert out.dense.dtype == np.float32 and out.dense.shape == ref.dense.shape
    np.testing.assert_allclose(out.dense, ref.dense, atol=2e-6)
    if sparse:
        assert len(out.sparse) == len(texts)
        for got, want in zip(out.sparse, ref.sparse):
            assert got.indices == want.indices
            np.testing.assert_allclose(got.values, want.values, atol=2e-6)
    else:
        assert out.sparse == []


def test_success_matches_the_local_encoder(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case)
    sparse = enc.has_sparse
    assert sparse == (case in ("tei", "dashscope"))
    for role in ("document", "query"):
        _check_matches_local(enc.encode(TEXTS, role=role), local_embedder, TEXTS, role, sparse)
    assert enc.dimension == local_embedder.dimension
    # the role reaches the service in its own terms
    first = service.requests[0].body
    if case == "tei":
        assert first["truncate"] is True and first["normalize"] is True and "prompt_name" not in first
        assert any(r.body.get("prompt_name") == "query" for r in service.requests)
        assert {r.path for r in service.requests} == {"/embed", "/embed_sparse"}
    elif case == "dashscope":
        assert first["model"] == "text-embedding-v3" and first["parameters"]["output_type"] == "dense&sparse"
        assert {r.body["parameters"]["text_type"] for r in service.requests} == {"document", "query"}
    else:
        assert first["model"] == "gte-tiny" and first["encoding_format"] == CASES[case].get("encoding_format", "float")
    enc.close()


def test_cache_serves_a_repeated_text_without_a_request(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case)
    a = enc.encode(TEXTS[:3])
    n = len(service.requests)
    b = enc.encode(TEXTS[:3])
    assert len(service.requests) == n
    np.testing.assert_array_equal(a.dense, b.dense)


def test_dimension_is_sent_and_checked(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case, dimension=16)
    out = enc.encode(TEXTS[:4], return_sparse=False)
    assert out.dense.shape == (4, 16)
    ref = local_embedder.encode(TEXTS[:4]).dense[:, :16]
    np.testing.assert_allclose(out.dense, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=2e-6)
    body = service.requests[0].body
    sent = body.get("dimensions") or body.get("parameters", {}).get("dimension")
    assert sent == 16


@pytest.mark.parametrize(("n", "expected"), [(9, [4, 4, 1]), (8, [4, 4]), (4, [4]), (1, [1])])
def test_batch_boundaries(serve: Callable[..., FakeService], case: str, local_embedder: Any, n: int, expected: list[int]) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case, batch_size=4, sparse=False)
    texts = (TEXTS * 2)[:n]
    texts = [f"{t} {i}" for i, t in enumerate(texts)]
    out = enc.encode(texts)
    assert _sizes(service) == expected
    _check_matches_local(out, local_embedder, texts, "document", False)


def test_batch_size_rejection_splits_and_remembers(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case), max_batch=3)
    enc = _client(service, case, batch_size=8, sparse=False)
    out = enc.encode(TEXTS)
    # 8 refused with "maximum ... 3": split to 3, 3, 2; then the last 2
    assert _sizes(service) == [8, 3, 3, 2, 2]
    _check_matches_local(out, local_embedder, TEXTS, "document", False)
    assert enc.batch_limit.size == 3
    service.requests.clear()
    enc.encode([t + " again" for t in TEXTS[:5]])
    assert _sizes(service) == [3, 2]


def test_413_payload_too_large_halves(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    texts = [f"{t} " * 3 for t in TEXTS[:8]]  # ~150 characters each
    service = serve(_server_protocol(case), max_body=700)
    enc = _client(service, case, batch_size=8, sparse=False)
    out = enc.encode(texts)
    sizes = _sizes(service)
    assert sizes[:3] == [8, 4, 2] and sum(sizes[2:]) == 8
    _check_matches_local(out, local_embedder, texts, "document", False)


def test_one_item_over_the_payload_limit_is_a_clear_error(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case), max_body=100)
    enc = _client(service, case, sparse=False)
    with pytest.raises(RemoteRequestError, match="one item") as info:
        enc.encode(["x " * 200])
    assert info.value.status == 413


def test_429_with_retry_after_then_success(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    service.faults.append(Fault(status=429, headers={"Retry-After": "0.3"},
                                body=service.error_body("Model is overloaded", "Overloaded", 429)))
    enc = _client(service, case, sparse=False)
    t = time.perf_counter()
    out = enc.encode(TEXTS[:3])
    assert time.perf_counter() - t >= 0.3  # the backoff alone is ~1 ms
    assert len(service.requests) == 2
    _check_matches_local(out, local_embedder, TEXTS[:3], "document", False)


@pytest.mark.parametrize("status", [503, 500, 424])
def test_server_error_storm_exhausts_the_budget(serve: Callable[..., FakeService], case: str, status: int) -> None:
    service = serve(_server_protocol(case))
    for _ in range(10):
        service.faults.append(Fault(status=status, body=service.error_body("the backend is unhealthy", "Unhealthy", status)))
    enc = _client(service, case, sparse=False)
    with pytest.raises(RemoteServiceError) as info:
        enc.encode(TEXTS[:3])
    err = info.value
    assert err.status == status and err.attempts == 3 and len(service.requests) == 3
    assert err.endpoint == service.url + PATHS[service.protocol]
    assert "the backend is unhealthy" in err.body
    assert err.endpoint in str(err) and str(status) in str(err) and "the backend is unhealthy" in str(err)


def test_validation_errors_are_not_retried(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case))
    status = 422 if case == "tei" else 400
    service.faults.append(Fault(status=status, body=service.error_body("input must be a list of strings", status=status)))
    enc = _client(service, case, sparse=False)
    with pytest.raises(RemoteRequestError, match="input must be a list of strings") as info:
        enc.encode(TEXTS[:3])
    assert info.value.status == status and len(service.requests) == 1


def test_malformed_json_raises(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case))
    service.faults.append(Fault(raw=b'{"data": [{"index": 0, "embedding": [0.1, '))
    enc = _client(service, case, sparse=False)
    with pytest.raises(RemoteResponseError, match="not JSON"):
        enc.encode(TEXTS[:3])
    assert len(service.requests) == 1


def test_wrong_vector_count_raises_and_caches_nothing(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    service.faults.append(Fault(corrupt="drop"))
    enc = _client(service, case, sparse=False)
    with pytest.raises(RemoteResponseError, match="2 results for 3 inputs"):
        enc.encode(TEXTS[:3])
    # nothing partial was kept: the next call asks again and gets all three
    _check_matches_local(enc.encode(TEXTS[:3]), local_embedder, TEXTS[:3], "document", False)


def test_wrong_dimension_raises(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case, sparse=False)
    enc.encode(TEXTS[:1])  # learns the dimension
    service.faults.append(Fault(corrupt="shrink"))
    with pytest.raises(RemoteResponseError, match="dimension"):
        enc.encode(TEXTS[1:4])


def test_repeated_index_raises(serve: Callable[..., FakeService], case: str) -> None:
    if case == "tei":
        pytest.skip("TEI /embed answers a bare list in input order: it carries no index")
    service = serve(_server_protocol(case))
    service.faults.append(Fault(corrupt="dup"))
    with pytest.raises(RemoteResponseError, match="repeated"):
        _client(service, case, sparse=False).encode(TEXTS[:3])


def test_read_timeout_is_retried(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    service.faults.append(Fault(delay=0.6))
    enc = _client(service, case, settings={"timeout": 0.2}, sparse=False)
    out = enc.encode(TEXTS[:2])
    assert len(service.requests) == 2
    _check_matches_local(out, local_embedder, TEXTS[:2], "document", False)


def test_timeouts_exhaust_the_budget(serve: Callable[..., FakeService], case: str) -> None:
    service = serve(_server_protocol(case))
    for _ in range(3):
        service.faults.append(Fault(delay=0.5))
    enc = _client(service, case, settings={"timeout": 0.1}, sparse=False)
    with pytest.raises(RemoteServiceError, match="timed out") as info:
        enc.encode(TEXTS[:2])
    assert info.value.status is None and info.value.attempts == 3


def test_connection_refused_is_a_service_error(case: str) -> None:
    enc = RemoteEncoder("http://127.0.0.1:9", settings=FAST, **{**CASES[case], "sparse": False})
    with pytest.raises(RemoteServiceError, match="connection failed") as info:
        enc.encode(["a"])
    assert info.value.endpoint.startswith("http://127.0.0.1:9/") and info.value.attempts == 3


@pytest.mark.asyncio
async def test_64_concurrent_async_calls(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case))
    enc = _client(service, case, settings={"max_concurrency": 6}, batch_size=2)
    calls = [[f"{TEXTS[i % 10]} {i}", f"{TEXTS[(i + 3) % 10]} {i}", f"{TEXTS[(i + 5) % 10]} {i}"] for i in range(64)]
    try:
        outs = await asyncio.gather(*(enc.aencode(texts) for texts in calls))
        for texts, out in zip(calls, outs):
            _check_matches_local(out, local_embedder, texts, "document", enc.has_sparse)
        assert 1 < service.peak_in_flight <= 6
        assert len(enc.transport._async) == 1  # one AsyncClient for the loop, reused by every call
    finally:
        await enc.aclose()


@pytest.mark.asyncio
async def test_async_splits_on_rejection(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    service = serve(_server_protocol(case), max_batch=3)
    enc = _client(service, case, batch_size=8, sparse=False)
    try:
        out = await enc.aencode(TEXTS)
    finally:
        await enc.aclose()
    _check_matches_local(out, local_embedder, TEXTS, "document", False)
    assert max(_sizes(service)[2:]) <= 3


def test_secrets_stay_out_of_logs_reprs_and_serialisation(
    serve: Callable[..., FakeService], case: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gte_rag.llama_index import GteRemoteEmbedding

    secret = "sk-test-5ecret-9f8e7d"
    service = serve(_server_protocol(case), api_key=secret)
    service.faults.append(Fault(status=503))
    with caplog.at_level(logging.DEBUG):
        emb = GteRemoteEmbedding(api_key=secret, settings=FAST, **{"url": service.url, **CASES[case]})
        assert len(emb.get_text_embedding_batch(TEXTS[:3])) == 3
        wrong = _client(service, case, api_key="sk-wrong-key-000")
        with pytest.raises(RemoteRequestError, match="check the API key") as info:
            wrong.encode(TEXTS[:1])
    assert info.value.status == 401  # and not retried:
    assert sum(r.headers["authorization"] == "Bearer sk-wrong-key-000" for r in service.requests) == 1
    assert service.requests[-2].headers["authorization"] == f"Bearer {secret}"
    assert "POST" in caplog.text and "503" in caplog.text  # the retry was logged...
    shown = [caplog.text, repr(emb), str(emb), emb.to_json(), json.dumps(emb.to_dict()), repr(emb.encoder),
             repr(emb.encoder.transport), str(info.value), repr(wrong)]
    for text in shown:
        assert secret not in text and "sk-wrong-key-000" not in text  # ...without the key
    # the key can come from the protocol's environment variable instead
    monkeypatch.setenv(ENV[_server_protocol(case)], secret)
    assert _client(service, case).encode(TEXTS[:1]).dense.shape[0] == 1


def test_llama_index_embedding_sync_async_and_sparse(serve: Callable[..., FakeService], case: str, local_embedder: Any) -> None:
    from gte_rag.llama_index import GteRemoteEmbedding, GteRemoteSparseEmbedding

    service = serve(_server_protocol(case))
    emb = GteRemoteEmbedding(url=service.url, settings=FAST, **CASES[case])
    assert emb.class_name() == "GteRemoteEmbedding" and emb.to_dict()["url"] == service.url
    ref = local_embedder.encode(TEXTS[:4])
    np.testing.assert_allclose(emb.get_text_embedding_batch(TEXTS[:4]), ref.dense, atol=2e-6)
    q = local_embedder.encode(TEXTS[:1], role="query").dense[0]
    np.testing.assert_allclose(emb.get_query_embedding(TEXTS[0]), q, atol=2e-6)

    async def run() -> Any:
        try:
            return await emb.aget_text_embedding_batch(TEXTS[4:8]), await emb.aget_query_embedding(TEXTS[1])
        finally:
            await emb.aclose()

    docs, query = asyncio.run(run())
    np.testing.assert_allclose(docs, local_embedder.encode(TEXTS[4:8]).dense, atol=2e-6)
    np.testing.assert_allclose(query, local_embedder.encode(TEXTS[1:2], role="query").dense[0], atol=2e-6)
    if not emb.encoder.has_sparse:
        return
    sparse = GteRemoteSparseEmbedding.from_embedding(emb)
    before = len(service.requests)
    got = sparse.get_text_embedding_batch(TEXTS[:4])  # cached by the dense call: no request
    assert len(service.requests) == before
    assert got == [sv.as_dict() for sv in ref.sparse]
