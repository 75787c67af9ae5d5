"""The exception tree of gte_rag.

Every error the library raises on purpose derives from :class:`GteRagError`, and
also from the builtin a caller would naturally catch::

    GteRagError
    ├── ConfigError (ValueError)              bad or contradictory options, bad input
    │   ├── UnknownModelError                 a model name the registry does not know
    │   ├── InputTooLongError                 a text over max_length with truncation refused
    │   └── InputTypeError (TypeError)        a non-str where text is expected
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── ModelLoadError (OSError)              weights/config/tokenizer cannot be found or read
    ├── StoreError                            anything the Qdrant layer reports
    │   ├── CollectionMismatchError (ValueError)   existing collection built with another layout
    │   ├── CollectionNotFoundError (LookupError)  the collection does not exist (never created, or dropped)
    │   └── StoreUnavailableError (ConnectionError)  server unreachable or timing out, storage locked
    ├── RemoteError                           an HTTP inference service (endpoint, status, body excerpt)
    │   ├── RemoteServiceError (ConnectionError)  unreachable, timing out or failing after the retries
    │   ├── RemoteRequestError (ValueError)       the service refused the request (4xx: never retried)
    │   └── RemoteResponseError                   a 2xx answer that is malformed or incomplete
    └── MemoryStoreError                      the long-term memory layer
        ├── MemoryNotFoundError (LookupError)     no memory with that id in the caller's scope
        └── MemoryScopeError (ConfigError)        a scope missing or misused (scope keys in metadata)

Errors carry their context as attributes (``model_name``, ``collection``,
``layout_expected`` / ``layout_found``) so callers do not have to parse messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CollectionMismatchError",
    "CollectionNotFoundError",
    "ConfigError",
    "GteRagError",
    "InputTooLongError",
    "InputTypeError",
    "MemoryNotFoundError",
    "MemoryScopeError",
    "MemoryStoreError",
    "MissingDependencyError",
    "ModelLoadError",
    "RemoteError",
    "RemoteRequestError",
    "RemoteResponseError",
    "RemoteServiceError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownModelError",
]


class GteRagError(Exception):
    """Base class of every error raised by gte_rag on purpose."""


class ConfigError(GteRagError, ValueError):
    """An option or an input value is invalid or contradicts another one."""


class UnknownModelError(ConfigError):
    """A model name that is neither registered nor a local checkpoint directory."""

    def __init__(self, message: str, *, model_name: str) -> None:
        super().__init__(message)
        self.model_name = model_name


class InputTooLongError(ConfigError):
    """A text is longer than ``max_length`` tokens and truncation was refused."""

    def __init__(self, message: str, *, index: int, num_tokens: int, max_length: int) -> None:
        super().__init__(message)
        self.index = index
        self.num_tokens = num_tokens
        self.max_length = max_length


class MissingDependencyError(GteRagError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


class ModelLoadError(GteRagError, OSError):
    """A checkpoint, its config or its tokenizer cannot be found or read."""

    def __init__(self, message: str, *, model_name: str) -> None:
        super().__init__(message)
        self.model_name = model_name


class StoreError(GteRagError):
    """The Qdrant layer failed; ``collection`` names the collection involved."""

    def __init__(self, message: str, *, collection: str | None = None) -> None:
        super().__init__(message)
        self.collection = collection


class CollectionMismatchError(StoreError, ValueError):
    """An existing collection does not match the layout the caller asked for."""

    def __init__(
        self, message: str, *, collection: str, layout_expected: Any, layout_found: Any
    ) -> None:
        super().__init__(message, collection=collection)
        self.layout_expected = layout_expected
        self.layout_found = layout_found


class CollectionNotFoundError(StoreError, LookupError):
    """The collection does not exist: it was never created, or it was dropped.

    Not a :class:`StoreUnavailableError`: retrying does not help, creating the collection
    (``ensure_collection()``) does.
    """


class StoreUnavailableError(StoreError, ConnectionError):
    """The Qdrant server cannot be reached or timed out, or the storage is locked.

    Worth retrying later: a server restarting or overloaded (HTTP 502/503/504/429, gRPC
    UNAVAILABLE / DEADLINE_EXCEEDED), or a directory held by another process.
    """


class RemoteError(GteRagError):
    """A remote inference service failed; the context is on the error.

    Attributes:
        endpoint: The URL called (never with credentials).
        status: The HTTP status of the last answer, ``None`` when none came (connect error, timeout).
        body: The start of the last answer's body (at most a few hundred characters), or ``""``.
        attempts: Requests sent for this call before giving up.
    """

    def __init__(
        self, message: str, *, endpoint: str, status: int | None = None, body: str = "", attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.body = body
        self.attempts = attempts


class RemoteServiceError(RemoteError, ConnectionError):
    """The service was unreachable, timed out or kept failing (429, 5xx, 424) after its retries."""


class RemoteRequestError(RemoteError, ValueError):
    """The service refused the request as invalid (a 4xx answer other than 429); never retried."""


class RemoteResponseError(RemoteError):
    """The service answered 2xx with a body that is not what was asked for.

    Malformed JSON, a missing or repeated index, the wrong number of vectors or the wrong
    dimension: the whole call fails rather than return a partial result.
    """


class MemoryStoreError(GteRagError):
    """The long-term memory layer refused an operation."""


class MemoryNotFoundError(MemoryStoreError, LookupError):
    """No memory with that id is visible in the scope given (it may exist in another one: never said)."""

    def __init__(self, message: str, *, memory_id: str) -> None:
        super().__init__(message)
        self.memory_id = memory_id


class MemoryScopeError(MemoryStoreError, ConfigError):
    """A memory scope is missing or misused: no ``user_id``, or scope keys inside ``metadata``."""


class InputTypeError(ConfigError, TypeError):
    """An input has the wrong type (for example a non-str among texts)."""
