"""Memory records: scopes, payload fields, deterministic ids, times and input checks (pure).

A memory is one Qdrant point. Its payload holds the text, the scope (``user_id`` and
optionally ``agent_id`` / ``session_id``), who said it (``speaker``), two times (``timestamp``:
when it happened; ``created_at``: when it was stored), ``importance``, its position in its
session (``turn``), a content hash for exact dedup, and the supersede links. The caller's
``metadata`` lives under its own key, so it can never overwrite a scope field, and scope
keys inside it are refused anyway (mem0 lets them through: mem0#6277).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, MemoryNotFoundError, MemoryScopeError
from ..qdrant import GTE_RAG_NAMESPACE

__all__ = [
    "AddResult",
    "MemoryEvent",
    "MemoryHit",
    "MemoryRecord",
    "Message",
    "RESERVED_FIELDS",
    "SCOPE_FIELDS",
    "Scope",
]

SCOPE_FIELDS = ("user_id", "agent_id", "session_id")
"""Payload fields that scope a memory; every read and write filters on the ones given."""

TEXT, SPEAKER, TIMESTAMP, CREATED_AT = "text", "speaker", "timestamp", "created_at"
IMPORTANCE, TURN, HASH, METADATA = "importance", "turn", "hash", "metadata"
STATE, KIND, LINEAGE, VERSION = "state", "_kind", "lineage", "version"
ACTIVE, SUPERSEDED = "active", "superseded"  # values of STATE (a keyword: bool matches differ across engines)
SUPERSEDED_BY, SUPERSEDED_AT, SUPERSEDES, MEMORY_ID = "superseded_by", "superseded_at", "supersedes", "memory_id"
MEMORY_KIND, HISTORY_KIND, COUNTER_KIND = "memory", "history", "counter"

RESERVED_FIELDS = frozenset({
    *SCOPE_FIELDS, TEXT, SPEAKER, TIMESTAMP, CREATED_AT, IMPORTANCE, TURN, HASH, METADATA, STATE, KIND,
    LINEAGE, VERSION, SUPERSEDED_BY, SUPERSEDED_AT, SUPERSEDES, MEMORY_ID,
})
"""Top-level payload fields the memory layer writes; ``metadata`` must not use any of them."""

EventKind = Literal["added", "duplicate"]


def _check_key(name: str, value: Any, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise MemoryScopeError(f"{name} is required: every memory belongs to a user; pass {name}='...'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise MemoryScopeError(f"{name} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to: a user, optionally narrowed to an agent and a session.

    A call sees the memories whose fields equal every field it gives: ``Scope("u")`` sees
    all of user ``u``'s memories, ``Scope("u", agent_id="a")`` only those agent ``a`` holds.

    Raises:
        MemoryScopeError: ``user_id`` is missing, or a field is not a non-empty string.
    """

    user_id: str
    agent_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        _check_key("user_id", self.user_id, required=True)
        _check_key("agent_id", self.agent_id, required=False)
        _check_key("session_id", self.session_id, required=False)

    def fields(self) -> dict[str, str]:
        """The given scope fields (those that filter)."""
        return {k: v for k, v in (("user_id", self.user_id), ("agent_id", self.agent_id),
                                  ("session_id", self.session_id)) if v is not None}

    def sees(self, payload: Mapping[str, Any]) -> bool:
        """Whether a stored payload lies inside this scope (the rule the Qdrant filter enforces)."""
        return all(payload.get(k) == v for k, v in self.fields().items())


def resolve_encoder(embed_model: Any) -> Any:
    """The core encoder behind ``embed_model`` (a GteEncoder, RemoteEncoder, or an adapter holding one)."""
    needed = ("encode", "dimension", "has_sparse", "sparse_mode", "model_name")
    if all(hasattr(embed_model, a) for a in needed):
        return embed_model
    inner = getattr(embed_model, "encoder", None)
    if inner is not None and all(hasattr(inner, a) for a in needed):
        return inner
    raise ConfigError(
        f"embed_model must be a GteEmbedding, GteRemoteEmbedding, GteEncoder or RemoteEncoder, got "
        f"{type(embed_model).__name__}; wrap other models in a GteEncoder"
    )


def now_utc() -> _dt.datetime:
    """The current time, timezone-aware UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


def as_datetime(value: Any, what: str = "timestamp") -> _dt.datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC), a date, an ISO string or epoch seconds.

    Raises:
        ConfigError: the value is none of these.
    """
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=_dt.timezone.utc) if value.tzinfo is None else value.astimezone(_dt.timezone.utc)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch(value, what)
    if isinstance(value, str):
        try:
            return as_datetime(_dt.datetime.fromisoformat(value.replace("Z", "+00:00")), what)
        except ValueError:
            pass
    raise ConfigError(
        f"{what}={value!r} is not a time; pass a datetime (naive means UTC), a date, "
        "an ISO 8601 string or epoch seconds"
    )


_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a datetime holds


def _from_epoch(value: float, what: str) -> _dt.datetime:
    seconds = float(value)
    if not math.isfinite(seconds) or abs(seconds) > _MAX_EPOCH:
        hint = (" (that looks like epoch milliseconds: divide by 1000)"
                if math.isfinite(seconds) and abs(seconds) / 1000.0 <= _MAX_EPOCH else "")
        raise ConfigError(
            f"{what}={value!r} is out of range: epoch seconds expected, got milliseconds?{hint} "
            f"Pass epoch seconds within +-{_MAX_EPOCH:.0f}, a datetime or an ISO 8601 string"
        )
    try:
        return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise ConfigError(f"{what}={value!r} is not a valid time in epoch seconds ({exc}); pass a datetime") from exc


METADATA_MAX_BYTES = 64 * 1024
"""Largest metadata of one memory, serialised as JSON (UTF-8 bytes)."""
_INT64 = (-(2**63), 2**63 - 1)


def _check_json_value(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"metadata[{path}] is {value!r}: NaN and infinities are not JSON; store None or a string")
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise ConfigError(f"metadata[{path}]={value!r} is outside int64 (Qdrant payload integers); store it as a string")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_json_value(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json_value(v, f"{path}[{i}]")


def iso(value: _dt.datetime) -> str:
    """RFC 3339 text of a UTC datetime, as stored in the payload (Qdrant datetime index)."""
    return value.astimezone(_dt.timezone.utc).isoformat()


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-compatible copy of the caller's metadata, refusing scope and internal keys.

    Raises:
        MemoryScopeError: a key is a scope field or an internal field.
        ConfigError: metadata is not a mapping with string keys, not JSON-compatible (NaN,
            infinity, an int outside int64: the key is named), or over 64 KiB as JSON.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    bad = sorted(str(k) for k in metadata if k in RESERVED_FIELDS or str(k).startswith("_"))
    if bad:
        scope = [k for k in bad if k in SCOPE_FIELDS]
        what = f"scope keys {scope}" if scope else f"internal keys {bad}"
        raise MemoryScopeError(
            f"metadata holds {what}: the scope is given only by the user_id / agent_id / session_id arguments "
            f"(each call builds its filter from them), and {sorted(RESERVED_FIELDS)} and keys starting with '_' "
            "are written by the memory layer. Rename or drop those keys"
        )
    if any(not isinstance(k, str) for k in metadata):
        raise ConfigError("metadata keys must be strings")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        if "Circular" not in str(exc):
            for k, v in metadata.items():
                _check_json_value(v, repr(k))  # names the key of a NaN / infinity
        raise ConfigError(f"metadata must be JSON-compatible: {exc}") from exc
    for k, v in metadata.items():
        _check_json_value(v, repr(k))  # ints beyond int64 serialise but no engine stores them
    size = len(text.encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise ConfigError(
            f"metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES // 1024} KiB per memory. "
            "Keep large data elsewhere and store a reference to it"
        )
    out: dict[str, Any] = json.loads(text)
    return out


def content_hash(text: str) -> str:
    """Hash of the text after case and whitespace folding: the exact-duplicate key."""
    folded = re.sub(r"\s+", " ", text).strip().casefold()
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def turn_id(scope: Scope, session_id: str, turn: int) -> str:
    """Deterministic id of turn ``turn`` of a session inside a scope (neighbours are fetched by id)."""
    key = json.dumps(["memory-turn", scope.user_id, scope.agent_id, session_id, int(turn)])
    return str(uuid.uuid5(GTE_RAG_NAMESPACE, key))


def counter_id(scope: Scope, session_id: str) -> str:
    """Id of a session's turn counter: a point holding only ``{_kind: "counter", turn: next}`` (no
    text, no scope fields, so ``forget`` leaves it and a deleted turn's id is never issued again)."""
    key = json.dumps(["memory-counter", scope.user_id, scope.agent_id, session_id])
    return str(uuid.uuid5(GTE_RAG_NAMESPACE, key))


def history_id(memory_id: str, version: int) -> str:
    """Id of the stored copy of version ``version`` of a memory (kept for ``history``)."""
    return str(uuid.uuid5(GTE_RAG_NAMESPACE, f"memory-history:{memory_id}:{int(version)}"))


def canonical_id(memory_id: Any) -> str:
    """The canonical form of a memory id (a UUID).

    Raises:
        MemoryNotFoundError: it is not a UUID, so no memory has it.
    """
    try:
        return str(uuid.UUID(str(memory_id)))
    except ValueError:
        raise MemoryNotFoundError(
            f"{memory_id!r} is not a memory id (memory ids are UUIDs)", memory_id=str(memory_id)
        ) from None


def check_importance(value: Any) -> float | None:
    """``None`` or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"importance must be a number in [0, 1] (0.5 is neutral), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Message:
    """One message to remember: who said it, what, and when (``None``: the call's time)."""

    content: str
    speaker: str | None = None
    timestamp: _dt.datetime | None = None


def as_messages(value: Any, default_time: _dt.datetime | None) -> list[Message]:
    """Normalise ``add``'s input: a string, or messages (dicts with ``content`` and ``role`` /
    ``name`` / ``timestamp``, or objects with ``.content`` and ``.role`` such as LlamaIndex's
    ``ChatMessage``).

    Raises:
        ConfigError: an empty text, or a message of another shape.
    """
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    if isinstance(value, Mapping) or not isinstance(items, Sequence) or not items:
        raise ConfigError(
            "add() takes a string or a non-empty list of messages ({'role': ..., 'content': ...}), "
            f"got {type(value).__name__}"
        )
    out: list[Message] = []
    for i, item in enumerate(items):
        content: Any
        speaker: Any
        when: Any
        if isinstance(item, str):
            content, speaker, when = item, None, None
        elif isinstance(item, Mapping):
            content = item.get("content")
            speaker = item.get("name") or item.get("role")
            when = item.get("timestamp")
        elif hasattr(item, "content"):
            content = getattr(item, "content")
            role = getattr(item, "role", None)
            speaker = getattr(getattr(item, "additional_kwargs", None) or {}, "get", lambda _k: None)("name") or (
                getattr(role, "value", role)
            )
            when = None
        else:
            raise ConfigError(f"message {i} is a {type(item).__name__}; pass a str or a dict with 'content'")
        if not isinstance(content, str) or not content.strip():
            raise ConfigError(f"message {i} has no text (content={content!r}); drop empty messages")
        stamp = default_time if when is None else as_datetime(when, f"message {i} timestamp")
        out.append(Message(content.strip(), None if speaker is None else str(speaker), stamp))
    return out


def indexed_from_payload(payload: Mapping[str, Any]) -> str:
    """The embedded text of a stored memory (its speaker and text)."""
    return indexed_text(Message(str(payload.get(TEXT, "")), payload.get(SPEAKER)))


def indexed_text(message: Message) -> str:
    """What is embedded for a message: ``"speaker: content"`` (who said it counts)."""
    if message.speaker and not message.content.lower().startswith(message.speaker.lower() + ":"):
        return f"{message.speaker}: {message.content}"
    return message.content


@dataclass
class MemoryRecord:
    """A stored memory (or a stored older version of one, in ``history``).

    Attributes:
        id: The memory id (for a history copy: the id of the memory it is a version of).
        text: What was remembered.
        user_id, agent_id, session_id: Its scope.
        speaker: Who said it (a role or a name), if known.
        timestamp: When it happened (UTC).
        created_at: When this version was stored (UTC).
        importance: In [0, 1].
        metadata: The caller's metadata.
        turn: Position in its session, or ``None``.
        active: ``False`` once superseded (hidden from search) or for an older version.
        superseded_by: Id of the memory that replaced it, if any.
        version: 0 for the first version; ``update`` adds one.
    """

    id: str
    text: str
    user_id: str
    agent_id: str | None
    session_id: str | None
    speaker: str | None
    timestamp: _dt.datetime
    created_at: _dt.datetime
    importance: float
    metadata: dict[str, Any]
    turn: int | None
    active: bool
    superseded_by: str | None
    version: int

    @classmethod
    def from_payload(cls, point_id: str, payload: Mapping[str, Any]) -> MemoryRecord:
        """Rebuild a record from a stored payload."""
        turn = payload.get(TURN)
        return cls(
            id=str(payload.get(MEMORY_ID) or point_id),
            text=str(payload.get(TEXT, "")),
            user_id=str(payload.get("user_id")),
            agent_id=payload.get("agent_id"),
            session_id=payload.get("session_id"),
            speaker=payload.get(SPEAKER),
            timestamp=as_datetime(payload.get(TIMESTAMP)),
            created_at=as_datetime(payload.get(CREATED_AT)),
            importance=float(payload.get(IMPORTANCE, 0.5)),
            metadata=dict(payload.get(METADATA) or {}),
            turn=turn if isinstance(turn, int) and not isinstance(turn, bool) else None,
            active=payload.get(STATE) == ACTIVE,
            superseded_by=payload.get(SUPERSEDED_BY),
            version=int(payload.get(VERSION, 0)),
        )


@dataclass
class MemoryHit(MemoryRecord):
    """A search result: the record, its score (higher is better) and the turns around it.

    Attributes:
        score: The final score (fused hybrid score, recency, importance, neighbour share).
        context: The turns before and after it in its session (``neighbours`` each side), in
            turn order, the hit itself left out; empty when neighbour expansion is off.
    """

    score: float = 0.0
    context: list[MemoryRecord] = field(default_factory=list)


@dataclass(frozen=True)
class MemoryEvent:
    """What ``add`` did with one text: stored it (``"added"``) or found it already there (``"duplicate"``).

    Attributes:
        id: The stored memory's id, or the existing memory's id for a duplicate.
        text: The text given.
        event: ``"added"`` or ``"duplicate"``.
        similarity: For a duplicate: 1.0 when exact, else the cosine similarity that matched.
        superseded: Ids this memory superseded (hidden from search, kept in history).
    """

    id: str
    text: str
    event: EventKind
    similarity: float | None = None
    superseded: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddResult:
    """The outcome of ``add``: one event per text stored or matched, in input order."""

    events: tuple[MemoryEvent, ...]

    @property
    def ids(self) -> list[str]:
        """The memories' ids, one per text (a duplicate gives the id it matched)."""
        return [e.id for e in self.events]

    @property
    def added(self) -> list[str]:
        """Ids of the memories stored by this call."""
        return [e.id for e in self.events if e.event == "added"]

    @property
    def duplicates(self) -> list[MemoryEvent]:
        """The texts that were not stored because the scope already held them."""
        return [e for e in self.events if e.event == "duplicate"]

    @property
    def superseded(self) -> list[str]:
        """Ids superseded by this call."""
        return [i for e in self.events for i in e.superseded]
