"""The one place where Qdrant engine errors become gte_rag errors.

Both engines report failures in loose ways: Qdrant Edge raises plain ``Exception`` or
``ValueError`` with a message, qdrant-client raises ``UnexpectedResponse`` (HTTP),
``ResponseHandlingException`` (transport), ``grpc.RpcError``, and in local mode
``ValueError``/``RuntimeError``. :func:`map_store_errors` picks the most specific
gte_rag class and chains the original with ``from exc``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from gte_rag.errors import GteRagError, StoreError, StoreUnavailableError

__all__ = ["map_store_errors"]

logger = logging.getLogger(__name__)

# Message fragments that mean "cannot reach or open the storage" rather than "bad request".
_UNAVAILABLE_HINTS = (
    "wouldblock",
    "already accessed by another instance",
    "lock",
    "connection refused",
    "connecterror",
    "timed out",
    "unavailable",
    "does not exist",
    "permission denied",
)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:  # transport-level failures of qdrant-client
        import httpx
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
    except ImportError:  # pragma: no cover - qdrant-client is a core dependency
        return False
    if isinstance(exc, (ResponseHandlingException, httpx.TransportError)):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code in (502, 503, 504)
    try:
        import grpc
    except ImportError:  # pragma: no cover
        grpc = None
    if grpc is not None and isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return any(hint in str(exc).lower() for hint in _UNAVAILABLE_HINTS)


@contextmanager
def map_store_errors(action: str, *, collection: str | None, engine: str) -> Iterator[None]:
    """Translate engine errors raised inside the block.

    Args:
        action: What was being done, for the message (``"upsert"``, ``"query"``...).
        collection: The collection involved.
        engine: ``"edge"`` or ``"client"``, for the message.

    Raises:
        StoreUnavailableError: the server cannot be reached or the storage is locked or
            missing.
        StoreError: any other engine failure.
    """
    try:
        yield
    except GteRagError:
        raise
    except Exception as exc:
        detail = str(exc).strip() or type(exc).__name__
        message = f"Qdrant ({engine}) {action} failed on collection {collection!r}: {detail}"
        if _is_unavailable(exc):
            logger.warning("Qdrant (%s) unavailable during %s: %s", engine, action, detail)
            raise StoreUnavailableError(message, collection=collection) from exc
        raise StoreError(message, collection=collection) from exc
