"""The one place where Qdrant engine errors become gte_rag errors.

What the engines raise (measured with qdrant-edge-py 0.9.0 and qdrant-client 1.20.0)::

    engine           case                                     raised
    Qdrant Edge      every engine failure: WAL locked (by     builtins.Exception, told apart by its
                     this or another process), missing or     message only ("Service runtime error:
                     empty directory, wrong vector size,      failed to open WAL ...: Kind(WouldBlock)",
                     a request it refuses, shard closed       "Vector dimension error: ...", ...)
    Qdrant Edge      a value Rust cannot parse (UUID,         builtins.ValueError
                     JSON path, date-time)
    Qdrant Edge      a Python value of the wrong type         builtins.TypeError (a gte_rag bug)
    REST             a reply with another status than 2xx     UnexpectedResponse (.status_code)
    REST             429 with a Retry-After header            ResourceExhaustedResponse
    REST             connect error, timeout, unreadable       ResponseHandlingException (.source: the
                     reply                                    httpx ConnectError / ReadTimeout ... or
                                                              pydantic ValidationError)
    gRPC             any failure                              grpc.RpcError (_InactiveRpcError,
                                                              aio.AioRpcError) with .code()
    local mode       missing collection                       ValueError("Collection <name> not found")
    local mode       any other bad request                    ValueError
    local mode       used after close                         RuntimeError
    local (path=)    folder held by another client            RuntimeError whose __context__ is
                                                              portalocker's AlreadyLocked

How they map (:func:`map_store_errors`)::

    StoreUnavailableError    httpx connect / timeout / network / protocol errors, alone or as the
                             source of a ResponseHandlingException; ConnectionError, TimeoutError;
                             HTTP 429, 502, 503, 504; gRPC UNAVAILABLE, DEADLINE_EXCEEDED,
                             RESOURCE_EXHAUSTED; a local-mode folder lock; Edge's WAL lock
    CollectionNotFoundError  HTTP 404; gRPC NOT_FOUND; local mode's missing collection
    StoreError               any other error an engine raises

Only errors raised by the engines are translated: exceptions of an engine package's own
classes (``qdrant_client``, ``qdrant_edge``, ``httpx``, ``grpc``...), and the plain builtins
the engines use (``Exception``, ``ValueError``, ``RuntimeError``, ``OSError``) when an
engine raised them. gte_rag's own bugs (a ``TypeError``, ``KeyError``... or any exception
raised in gte_rag code) propagate unchanged, and the ``with`` blocks hold the engine call
only, never our conversion or parsing code.

Two cases have no signal but the message, and each is isolated in one function below:
Edge's locked WAL (Edge raises ``Exception`` for every failure) and local mode's missing
collection (local mode raises ``ValueError`` for every bad request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import grpc
import httpx
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from gte_rag.errors import CollectionNotFoundError, GteRagError, StoreError, StoreUnavailableError

__all__ = ["EngineCall", "map_store_errors"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

# Top-level packages whose code (and exception classes) belong to an engine.
_ENGINE_PACKAGES = frozenset({"qdrant_client", "qdrant_edge", "httpx", "httpcore", "grpc", "portalocker"})
# Builtin classes the engines raise for their own failures (exact classes: a subclass such
# as KeyError, NotImplementedError or a pydantic ValidationError is not one of them).
_ENGINE_BUILTINS = (Exception, ValueError, RuntimeError)
_UNAVAILABLE_STATUS = frozenset({429, 502, 503, 504})
_NOT_FOUND_STATUS = 404
_UNAVAILABLE_GRPC = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
_TRANSPORT = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    ConnectionError,
    TimeoutError,
)


def _package(module: str) -> str:
    return module.partition(".")[0]


def _raised_by_engine(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of ``tb`` (which starts at the ``with`` block) is engine code."""
    if tb is None:
        return False
    if tb.tb_next is None:
        # Raised by a call made straight from the block, without a Python frame of its own:
        # a native extension (Qdrant Edge). The blocks hold one engine call and nothing else.
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _package(str(tb.tb_frame.f_globals.get("__name__", ""))) in _ENGINE_PACKAGES


def _from_engine(exc: BaseException, tb: TracebackType | None) -> bool:
    if _package(type(exc).__module__) in _ENGINE_PACKAGES:
        return True
    if type(exc) in _ENGINE_BUILTINS or isinstance(exc, OSError):
        return _raised_by_engine(tb)
    return False


def _edge_wal_locked(exc: BaseException) -> bool:
    """Qdrant Edge could not lock the shard's WAL: another shard (process) holds it.

    Edge raises the bare ``Exception`` class for every failure, so the message is its only
    signal; ``Kind(WouldBlock)`` is the Rust ``io::ErrorKind`` of the failed ``flock``
    ("Service runtime error: failed to open WAL <dir>: Can't init WAL: Kind(WouldBlock)").
    """
    return type(exc) is Exception and "Kind(WouldBlock)" in str(exc)


def _local_collection_missing(exc: BaseException, collection: str | None) -> bool:
    """qdrant-client local mode's missing collection.

    Local mode raises ``ValueError`` for every bad request; the missing collection is the
    exact message ``Collection <name> not found`` of its ``_get_collection``, compared whole.
    """
    return type(exc) is ValueError and collection is not None and str(exc) == f"Collection {collection} not found"


def _local_folder_locked(exc: BaseException) -> bool:
    # Local mode re-raises portalocker's lock error as a RuntimeError, inside the except.
    context = exc.__context__
    return isinstance(exc, RuntimeError) and context is not None and _package(type(context).__module__) == "portalocker"


def _classify(exc: BaseException, collection: str | None, engine: str) -> type[StoreError]:
    if isinstance(exc, ResponseHandlingException):
        return StoreUnavailableError if isinstance(exc.source, _TRANSPORT) else StoreError
    if isinstance(exc, _TRANSPORT) or isinstance(exc, ResourceExhaustedResponse):
        return StoreUnavailableError
    if isinstance(exc, UnexpectedResponse):
        if exc.status_code == _NOT_FOUND_STATUS:
            return CollectionNotFoundError
        return StoreUnavailableError if exc.status_code in _UNAVAILABLE_STATUS else StoreError
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code == grpc.StatusCode.NOT_FOUND:
            return CollectionNotFoundError
        return StoreUnavailableError if code in _UNAVAILABLE_GRPC else StoreError
    if engine == "edge" and _edge_wal_locked(exc):
        return StoreUnavailableError
    if engine == "client" and _local_folder_locked(exc):
        return StoreUnavailableError
    if engine == "client" and _local_collection_missing(exc, collection):
        return CollectionNotFoundError
    return StoreError


def _detail(exc: BaseException) -> str:
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        return f"gRPC {exc.code().name}: {details}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _message(kind: type[StoreError], exc: BaseException, action: str, collection: str | None, engine: str) -> str:
    detail = _detail(exc)
    if kind is StoreUnavailableError:
        return (
            f"Qdrant ({engine}) is unavailable ({action} on collection {collection!r}): {detail}. "
            "Check that the server is up and reachable, or that no other process holds the "
            "directory, then retry"
        )
    if kind is CollectionNotFoundError:
        return (
            f"collection {collection!r} does not exist on Qdrant ({engine}) ({action}: {detail}); "
            "call ensure_collection() to create it"
        )
    return f"Qdrant ({engine}) {action} failed on collection {collection!r}: {detail}"


class map_store_errors:  # noqa: N801 - used as a function: ``with map_store_errors(...):``
    """Translate the engine errors raised inside the ``with`` block.

    The block must hold the engine call only (build requests before it, parse results
    after it). The most specific gte_rag class is raised, chained ``from`` the original.

    Args:
        action: What was being done, for the message (``"upsert"``, ``"query"``...).
        collection: The collection involved.
        engine: ``"edge"`` or ``"client"``.

    Raises:
        StoreUnavailableError: the server cannot be reached or timed out, or the storage
            is locked.
        CollectionNotFoundError: the collection does not exist.
        StoreError: any other engine failure.
    """

    __slots__ = ("action", "collection", "engine")

    def __init__(self, action: str, *, collection: str | None, engine: str) -> None:
        self.action = action
        self.collection = collection
        self.engine = engine

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, GteRagError) or not isinstance(exc, Exception):
            return
        if not _from_engine(exc, tb):
            return  # gte_rag's own bug: propagate unchanged
        kind = _classify(exc, self.collection, self.engine)
        message = _message(kind, exc, self.action, self.collection, self.engine)
        if kind is StoreUnavailableError:
            logger.warning("Qdrant (%s) unavailable during %s: %s", self.engine, self.action, _detail(exc))
        raise kind(message, collection=self.collection) from exc


class EngineCall(Generic[_T]):
    """One engine call: ``enter()`` before it (its value is what ``with ... as`` binds),
    ``leave()`` after it whatever happens, its errors mapped by ``errors``.

    A class rather than a ``contextmanager`` generator: :class:`map_store_errors` reads the
    traceback of the engine's exception, which a generator would re-raise from its own frame.
    """

    __slots__ = ("_enter", "_errors", "_leave")

    def __init__(self, errors: map_store_errors, enter: Callable[[], _T], leave: Callable[[], object]) -> None:
        self._errors = errors
        self._enter = enter
        self._leave = leave

    def __enter__(self) -> _T:
        return self._enter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._errors.__exit__(exc_type, exc, tb)
        finally:
            self._leave()
