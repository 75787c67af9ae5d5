"""The one HTTP layer of the remote components: clients, retries, batch splitting.

Every remote component owns one :class:`HttpTransport`. It creates one ``httpx.Client``
(on first sync use) and one ``httpx.AsyncClient`` per event loop (on first async use in that
loop: an async client cannot outlive its loop), and reuses them for every call, with the
timeouts and connection limits of :class:`RemoteSettings`.

A request is retried with tenacity, exponential backoff and jitter, on 429, 424, 5xx,
connect errors, timeouts and dropped connections, waiting what ``Retry-After`` asks where the
server sends it (capped by ``max_retry_after``). Other 4xx answers are the caller's mistake
and raise :class:`~gte_rag.errors.RemoteRequestError` at once, except a rejection of the batch
size (413, or a 400/422 whose message speaks of the batch size), which raises
:class:`BatchTooLarge` so that :func:`split_on_rejection` can halve the batch. After the
budget, one :class:`~gte_rag.errors.RemoteServiceError` names the endpoint, the last status
and the start of the last body.

The API key travels in the ``Authorization`` header only. It is never logged, never part
of an error message (a body echoing it is masked) and never in a repr.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import httpx
import tenacity

from ..errors import ConfigError, RemoteRequestError, RemoteResponseError, RemoteServiceError

logger = logging.getLogger(__name__)

__all__ = [
    "BatchLimit",
    "BatchTooLarge",
    "HttpTransport",
    "RemoteSettings",
    "TransportOwner",
    "asplit_on_rejection",
    "bad_response",
    "excerpt_json",
    "parse_retry_after",
    "split_on_rejection",
]

T = TypeVar("T")

BODY_EXCERPT = 300
"""Characters of an answer's body quoted in errors."""

_RETRY_STATUS = frozenset({408, 424, 429, 500, 502, 503, 504})
_BATCH_WORDS = re.compile(r"batch[ _-]?size|too many (inputs|texts|documents)|larger than \d+|at most \d+ (texts|inputs)", re.I)
_BATCH_LIMIT = re.compile(
    r"(?:maximum allowed batch size|max(?:imum)?(?: number of \w+)?(?: is| of)?|larger than|at most|limit(?: is)?)\D{0,20}(\d+)",
    re.I,
)


@dataclass(frozen=True)
class RemoteSettings:
    """Timeouts, connection limits, retry budget and concurrency of a remote component.

    Attributes:
        timeout: Seconds to wait for a read, a write or a pooled connection.
        connect_timeout: Seconds to wait for a TCP (and TLS) connection.
        max_connections: Most open connections per client.
        max_keepalive_connections: Idle connections kept for reuse.
        max_attempts: Requests per batch before giving up (1 = no retry).
        backoff_initial: First wait between attempts, in seconds; it doubles every attempt.
        backoff_max: Longest wait between attempts (before jitter).
        backoff_jitter: Up to this many seconds of random wait added to each backoff.
        max_retry_after: Longest ``Retry-After`` honoured; a longer one is capped to this.
        max_concurrency: Most requests in flight at once in async calls (per component and event loop).
    """

    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_connections: int = 32
    max_keepalive_connections: int = 16
    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    backoff_jitter: float = 0.5
    max_retry_after: float = 60.0
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"RemoteSettings.{f.name} must be a number, got {value!r}")
        for name in ("timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"RemoteSettings.{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_connections", "max_attempts", "max_concurrency"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"RemoteSettings.{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("max_keepalive_connections", "backoff_initial", "backoff_max", "backoff_jitter", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RemoteSettings.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def coerce(cls, value: RemoteSettings | Mapping[str, Any] | None) -> RemoteSettings:
        """``None`` -> defaults; a mapping -> ``RemoteSettings(**mapping)``."""
        if value is None:
            return cls()
        if isinstance(value, RemoteSettings):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise ConfigError(f"unknown RemoteSettings option(s) {unknown}; known: {[f.name for f in fields(cls)]}")
            return cls(**value)
        raise ConfigError(f"settings must be a RemoteSettings or a mapping, got {type(value).__name__}")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BatchTooLarge(RemoteRequestError):
    """The service refused a batch for its size (413, or 400/422 naming the batch size).

    ``limit`` is the largest batch the message allows, when it says (TEI: "maximum allowed
    batch size 32").
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None, body: str, limit: int | None) -> None:
        super().__init__(message, endpoint=endpoint, status=status, body=body)
        self.limit = limit


class _Retryable(Exception):
    """One failed attempt worth repeating (internal)."""

    def __init__(self, reason: str, *, status: int | None, body: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class _Wait:
    """tenacity wait: ``Retry-After`` when the server sent one, else exponential backoff + jitter."""

    settings: RemoteSettings
    rng: random.Random = field(default_factory=random.Random)

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.max_retry_after)
        s = self.settings
        backoff = min(s.backoff_max, s.backoff_initial * (2 ** (state.attempt_number - 1)))
        return float(backoff + self.rng.uniform(0, s.backoff_jitter))


_O = TypeVar("_O", bound="TransportOwner")


class TransportOwner:
    """What a remote component that owns an :class:`HttpTransport` offers: closing it, sync and async."""

    transport: HttpTransport

    def close(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        self.transport.close()

    async def aclose(self) -> None:
        """Close the async client of the running loop and the sync client."""
        await self.transport.aclose()

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class HttpTransport:
    """POSTs JSON to one service with retries; one sync client and one async client per loop.

    Args:
        base_url: The service root, e.g. ``http://127.0.0.1:8080``.
        api_key: Sent as ``Authorization: Bearer <key>`` when given.
        settings: Timeouts, limits, retries, concurrency.
        headers: Extra headers sent with every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        settings: RemoteSettings | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"url must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.settings = settings or RemoteSettings()
        self._api_key = api_key or None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )
        self._wait = _Wait(self.settings)

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={self.base_url!r}, api_key={'set' if self._api_key else None})"

    # ------------------------------------------------------------------ clients
    def _limits(self) -> tuple[httpx.Timeout, httpx.Limits]:
        s = self.settings
        timeout = httpx.Timeout(s.timeout, connect=s.connect_timeout)
        limits = httpx.Limits(max_connections=s.max_connections, max_keepalive_connections=s.max_keepalive_connections)
        return timeout, limits

    @property
    def client(self) -> httpx.Client:
        """The sync client (created on first use, then reused)."""
        with self._lock:
            if self._client is None:
                timeout, limits = self._limits()
                self._client = httpx.Client(headers=self._headers, timeout=timeout, limits=limits)
                # a component dropped without close() still releases its connections
                weakref.finalize(self, self._client.close)
            return self._client

    def _async_client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.get(loop)
            if entry is None:
                timeout, limits = self._limits()
                entry = (
                    httpx.AsyncClient(headers=self._headers, timeout=timeout, limits=limits),
                    asyncio.Semaphore(self.settings.max_concurrency),
                )
                self._async[loop] = entry
            return entry

    def close(self) -> None:
        """Close the sync client (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop, and the sync client."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.pop(loop, None)
        if entry is not None:
            await entry[0].aclose()
        self.close()

    # ------------------------------------------------------------------ requests
    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _excerpt(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        text = " ".join(text.split())
        return text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")

    def _check(self, endpoint: str, response: httpx.Response) -> Any:
        """The parsed JSON of a 2xx answer; otherwise the right exception for the status."""
        status = response.status_code
        if 200 <= status < 300:
            try:
                return json.loads(response.content)
            except ValueError as exc:
                raise RemoteResponseError(
                    f"{endpoint} answered HTTP {status} with a body that is not JSON: {self._excerpt(response.text)!r}",
                    endpoint=endpoint, status=status, body=self._excerpt(response.text),
                ) from exc
        body = self._excerpt(response.text)
        if status in _RETRY_STATUS or status >= 500:
            raise _Retryable(
                f"HTTP {status}", status=status, body=body,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 413 or (status in (400, 422) and _BATCH_WORDS.search(body)):
            found = _BATCH_LIMIT.search(body) if status != 413 else None
            raise BatchTooLarge(
                f"{endpoint} refused the batch size (HTTP {status}): {body!r}",
                endpoint=endpoint, status=status, body=body, limit=int(found.group(1)) if found else None,
            )
        hint = " (check the API key)" if status in (401, 403) else ""
        raise RemoteRequestError(
            f"{endpoint} refused the request with HTTP {status}{hint}: {body!r}", endpoint=endpoint, status=status, body=body
        )

    def _retrying(self, endpoint: str, kind: type[Any]) -> Any:
        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            logger.warning(
                "POST %s failed (%s); attempt %d of %d, next in %.2f s",
                endpoint, getattr(exc, "reason", exc), state.attempt_number, self.settings.max_attempts, wait,
            )

        return kind(
            stop=tenacity.stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=log_retry,
            reraise=True,
        )

    def _give_up(self, endpoint: str, exc: _Retryable) -> RemoteServiceError:
        n = self.settings.max_attempts
        detail = f"HTTP {exc.status}: {exc.body!r}" if exc.status is not None else exc.reason
        return RemoteServiceError(
            f"{endpoint} failed after {n} attempt{'s' if n != 1 else ''}; last: {detail}",
            endpoint=endpoint, status=exc.status, body=exc.body, attempts=n,
        )

    @staticmethod
    def _transport_failure(exc: httpx.TransportError) -> _Retryable:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
        return _Retryable(f"{kind}: {type(exc).__name__}: {exc}", status=None, body="", retry_after=None)

    def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST ``payload`` as JSON to ``path``; the parsed JSON answer, after retries.

        Raises:
            BatchTooLarge: the service refused the batch for its size.
            RemoteRequestError: another 4xx answer (never retried).
            RemoteResponseError: a 2xx answer that is not JSON.
            RemoteServiceError: still failing after ``max_attempts``.
        """
        return self._request("POST", path, json.dumps(payload, ensure_ascii=False).encode("utf-8"))

    def get(self, path: str) -> Any:
        """GET ``path`` (TEI ``/info``); the parsed JSON answer, with the retries and errors of :meth:`post`."""
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, content: bytes | None) -> Any:
        endpoint = self.url(path)
        client = self.client
        try:
            for attempt in self._retrying(endpoint, tenacity.Retrying):
                with attempt:
                    try:
                        response = client.request(method, endpoint, content=content)
                    except httpx.TransportError as exc:
                        raise self._transport_failure(exc) from None
                    return self._check(endpoint, response)
        except _Retryable as exc:
            raise self._give_up(endpoint, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def apost(self, path: str, payload: Mapping[str, Any]) -> Any:
        """Async twin of :meth:`post`; at most ``max_concurrency`` requests in flight per loop."""
        endpoint = self.url(path)
        content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        client, gate = self._async_client()
        try:
            async for attempt in self._retrying(endpoint, tenacity.AsyncRetrying):
                with attempt:
                    async with gate:
                        try:
                            response = await client.post(endpoint, content=content)
                        except httpx.TransportError as exc:
                            raise self._transport_failure(exc) from None
                    return self._check(endpoint, response)
        except _Retryable as exc:
            raise self._give_up(endpoint, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover


class BatchLimit:
    """A batch size that only goes down: what the service accepted so far (thread-safe)."""

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {size!r}")
        self._size = size
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def lower(self, rejected: int, exc: BatchTooLarge) -> int:
        """The size to retry a rejected batch of ``rejected`` items with (remembered)."""
        new = exc.limit if exc.limit is not None and 0 < exc.limit < rejected else rejected // 2
        with self._lock:
            self._size = max(1, min(self._size, new))
            logger.info("%s refused %d items in one request; sending at most %d from now on", exc.endpoint, rejected, new)
            return max(1, new)


def _ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, end)) for s in range(start, end, size)]


def _single(exc: BatchTooLarge) -> RemoteRequestError:
    return RemoteRequestError(
        f"{exc.endpoint} refused a request holding one item (HTTP {exc.status}): {exc.body!r}; "
        "the item itself is too large for the service (shorten it or raise the server's payload limit)",
        endpoint=exc.endpoint, status=exc.status, body=exc.body,
    )


def split_on_rejection(n: int, limit: BatchLimit, send: Callable[[int, int], Sequence[T]]) -> list[T]:
    """``send(start, end)`` over ``[0, n)`` in batches of ``limit.size``, in order.

    A batch the service refuses for its size is split (to the limit the error names, else
    in halves) and its parts sent in order; the lowered size is kept for later batches.
    ``send`` must return exactly ``end - start`` results.
    """
    out: list[T] = []
    pending = _ranges(0, n, limit.size)
    while pending:
        start, end = pending.pop(0)
        if end - start > limit.size:  # queued before the service refused a smaller batch
            pending[:0] = _ranges(start, end, limit.size)
            continue
        try:
            got = send(start, end)
        except BatchTooLarge as exc:
            if end - start == 1:
                raise _single(exc) from exc
            pending[:0] = _ranges(start, end, limit.lower(end - start, exc))
            continue
        out.extend(got)
    return out


async def asplit_on_rejection(n: int, limit: BatchLimit, send: Callable[[int, int], Awaitable[Sequence[T]]]) -> list[T]:
    """Async twin of :func:`split_on_rejection`: the batches are sent concurrently."""

    async def run(start: int, end: int) -> list[T]:
        try:
            return list(await send(start, end))
        except BatchTooLarge as exc:
            if end - start == 1:
                raise _single(exc) from exc
            size = limit.lower(end - start, exc)
            parts = await asyncio.gather(*(run(s, e) for s, e in _ranges(start, end, size)))
            return [x for part in parts for x in part]

    parts = await asyncio.gather(*(run(s, e) for s, e in _ranges(0, n, limit.size)))
    return [x for part in parts for x in part]


def excerpt_json(value: Any) -> str:
    """A short JSON rendering of a parsed body, for error messages."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")


def bad_response(endpoint: str, problem: str, body: Any) -> RemoteResponseError:
    """The error for a 2xx answer that does not hold what was asked for."""
    shown = excerpt_json(body)
    return RemoteResponseError(f"{endpoint} answered with {problem}: {shown}", endpoint=endpoint, status=200, body=shown)

