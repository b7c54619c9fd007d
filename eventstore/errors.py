"""
The one exception hierarchy of eventstore, rooted at `EventStoreError`.

Every error the library raises is an `EventStoreError`. Leaves also inherit a
fitting builtin (`ValueError`, `TypeError`, `LookupError`, `ConnectionError`,
`TimeoutError`) so callers that only know builtins still catch them. Each
passes all of its constructor arguments to ``super().__init__`` so that it
survives pickling (across processes, in task queues), and exposes its data as
attributes instead of only in the message.

Driver errors never escape: the PostgreSQL backend translates them at one
boundary and chains the original as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

__all__ = [
    "AggregateAlreadyExists",
    "AggregateNotFound",
    "ConcurrencyError",
    "ConfigError",
    "DuplicateEventError",
    "EventStoreError",
    "FutureSchemaVersionError",
    "HandlerTransactionError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "PoolExhaustedError",
    "RegistrationError",
    "SerializationError",
    "StoreClosedError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StreamNotFound",
    "SubscriptionConflictError",
    "SubscriptionFailedError",
    "UnhandledEventError",
    "UnknownTypeError",
]


class EventStoreError(Exception):
    """Base class of every error raised by eventstore."""


class InvalidArgumentError(EventStoreError, ValueError):
    """
    An argument is malformed; nothing was written.

    Raised before any I/O, so a caller can rely on the store being untouched.
    """


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (``None``, a bool, a float …); nothing was written."""


class ConcurrencyError(EventStoreError):
    """
    The stream is not at the version the caller expected.

    Also raised when the expected version is *ahead* of the stream: versions
    never have gaps.

    Attributes:
        stream_id: The stream appended to.
        expected: The expected version the caller passed (an ``int`` or an
            `ExpectedVersion` member).
        actual: The stream's version when the append was refused.
        attempts: How many attempts a repository made before giving up, or
            ``None`` when raised by a store directly.
    """

    def __init__(
        self,
        stream_id: str,
        expected: object,
        actual: int,
        attempts: int | None = None,
    ) -> None:
        super().__init__(stream_id, expected, actual, attempts)
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        self.attempts = attempts

    def __str__(self) -> str:
        message = (
            f"stream {self.stream_id!r} is at version {self.actual}, "
            f"expected {self.expected}"
        )
        if self.attempts is not None:
            message += f" (gave up after {self.attempts} attempts)"
        return message


class AggregateAlreadyExists(ConcurrencyError):
    """
    A repository's ``create`` found the aggregate's stream already has events.

    A `ConcurrencyError` too, so code that catches that keeps working; its
    ``expected`` is 0.

    Attributes:
        stream_id: The aggregate's stream.
        aggregate_id: The id of the aggregate that was to be created.
        actual: The stream's version: how many events it has.
    """

    def __init__(self, stream_id: str, aggregate_id: object, actual: int) -> None:
        super().__init__(stream_id, 0, actual)
        self.args = (stream_id, aggregate_id, actual)
        self.aggregate_id = aggregate_id

    def __str__(self) -> str:
        return (
            f"aggregate {self.aggregate_id!r} already exists: stream "
            f"{self.stream_id!r} is at version {self.actual}"
        )


class DuplicateEventError(EventStoreError, ValueError):
    """
    Event ids of an append are already stored, and the append is not a retry.

    Event ids are unique per stream. A retry re-sends exactly a batch already
    stored, in order, in the same stream, and succeeds without writing.
    Anything else that reuses an id stored in that stream (a partial
    overlap, another order) or repeats an id within one batch is this error;
    the same id in another stream is another event.

    Attributes:
        stream_id: The stream appended to.
        event_ids: The ids that were already taken.
    """

    def __init__(self, stream_id: str, event_ids: Sequence[UUID]) -> None:
        super().__init__(stream_id, tuple(event_ids))
        self.stream_id = stream_id
        self.event_ids = tuple(event_ids)

    def __str__(self) -> str:
        ids = ", ".join(str(event_id) for event_id in self.event_ids)
        return f"append to stream {self.stream_id!r} reuses event ids: {ids}"


class StreamNotFound(EventStoreError, LookupError):
    """
    A stream that must exist does not.

    Attributes:
        stream_id: The missing stream.
    """

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.stream_id = stream_id

    def __str__(self) -> str:
        return f"stream {self.stream_id!r} does not exist"


class AggregateNotFound(StreamNotFound):
    """
    A repository found no events for an aggregate, or fewer than the version asked for.

    Attributes:
        stream_id: The aggregate's stream.
        aggregate_id: The id the caller asked for.
        version: The version asked for, or ``None`` for the latest.
        actual: The stream's version (0: no events).
    """

    def __init__(
        self,
        stream_id: str,
        aggregate_id: object = None,
        version: int | None = None,
        actual: int = 0,
    ) -> None:
        super().__init__(stream_id)
        self.args = (stream_id, aggregate_id, version, actual)
        self.aggregate_id = aggregate_id
        self.version = version
        self.actual = actual

    def __str__(self) -> str:
        if self.actual:
            return (
                f"aggregate {self.aggregate_id!r} (stream {self.stream_id!r}) is at "
                f"version {self.actual}; version {self.version} does not exist yet"
            )
        return f"aggregate {self.aggregate_id!r} not found (stream {self.stream_id!r})"


class UnhandledEventError(EventStoreError, TypeError):
    """
    An aggregate has no handler for an event type it was asked to apply.

    Attributes:
        aggregate_type: The aggregate's class name.
        event_type: The event's class name.
    """

    def __init__(self, aggregate_type: str, event_type: str) -> None:
        super().__init__(aggregate_type, event_type)
        self.aggregate_type = aggregate_type
        self.event_type = event_type

    def __str__(self) -> str:
        return (
            f"{self.aggregate_type} has no handler for {self.event_type}: "
            f"add a method decorated with @applies({self.event_type})"
        )


class ConfigError(EventStoreError, ValueError):
    """A configuration value (pool size, schema name, environment variable) is invalid."""


class StoreUnavailableError(EventStoreError, ConnectionError):
    """
    The store could not be reached, or the connection broke mid-call.

    Transient: the call may succeed if repeated. A repository re-sends the
    *same* append on this error, which idempotency makes safe even when the
    first attempt committed and only its reply was lost.
    """


class StoreTimeoutError(EventStoreError, TimeoutError):
    """
    A statement or lock wait ran past its configured timeout, or was cancelled; it was rolled back.

    A cancel from another session (``pg_cancel_backend``, an operator) is
    the same SQLSTATE as a statement timeout, so it is raised as this too;
    the message carries the server's reason ("due to statement timeout",
    "due to user request").
    """


class PoolExhaustedError(StoreTimeoutError):
    """
    No connection became free within the pool's timeout.

    Not retried by the library: waiting longer on a saturated pool only
    deepens the queue. Size the pool, or shed load.
    """


class StoreClosedError(EventStoreError, RuntimeError):
    """The store was used after `close()`."""


class SerializationError(EventStoreError, ValueError):
    """An object or payload cannot be encoded or decoded."""


class RegistrationError(SerializationError, TypeError):
    """A type cannot be registered (duplicate name, unsupported field type, broken upcaster chain)."""


class UnknownTypeError(SerializationError, LookupError):
    """
    A payload names a type the registry does not know.

    Attributes:
        type_name: The unknown name.
        stream_id: The stream of the stored event or snapshot, when known.
        stream_version: Its version in that stream, when known.
    """

    def __init__(
        self,
        type_name: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
    ) -> None:
        super().__init__(type_name, stream_id, stream_version)
        self.type_name = type_name
        self.stream_id = stream_id
        self.stream_version = stream_version

    def __str__(self) -> str:
        where = ""
        if self.stream_id is not None:
            where = f" (stream {self.stream_id!r}, version {self.stream_version})"
        return (
            f"unknown type name {self.type_name!r}{where}: register it, or an "
            "upcaster that renames it"
        )


class FutureSchemaVersionError(SerializationError):
    """
    A payload has a schema version newer than the code knows.

    Written by a newer release of the host app; this code cannot read it
    without losing data, so it refuses. A repository falls back to replaying
    events when a snapshot is too new.

    Attributes:
        type_name: The payload's type.
        version: The payload's schema version.
        current: The newest version this code knows.
    """

    def __init__(self, type_name: str, version: int, current: int) -> None:
        super().__init__(type_name, version, current)
        self.type_name = type_name
        self.version = version
        self.current = current

    def __str__(self) -> str:
        return (
            f"{self.type_name!r} payload has schema version {self.version}, "
            f"newer than {self.current}, the newest this code knows"
        )


def _describe(value: Any) -> str:
    """Render *value* for an error message without dumping huge payloads."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class SubscriptionConflictError(EventStoreError):
    """
    A subscription's checkpoint moved under a runner: another instance handles it.

    Attributes:
        name: The subscription.
        member: ``""``, or ``"i/n"`` for a member of a consumer group.
        expected: The checkpoint this runner started its batch from.
        actual: The checkpoint it found instead.
    """

    def __init__(self, name: str, member: str, expected: Any, actual: Any) -> None:
        super().__init__(name, member, expected, actual)
        self.name = name
        self.member = member
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        who = self.name + (f" [{self.member}]" if self.member else "")
        return (
            f"subscription {who!r} is at {self.actual}, not {self.expected}: "
            "another runner moved its checkpoint"
        )


class SubscriptionFailedError(EventStoreError):
    """
    A subscription stopped on an event its handler kept failing on (`OnError.STOP`).

    The checkpoint stays just before the event; the handler's last error is
    the ``__cause__``.

    Attributes:
        name: The subscription.
        stream_id: The event's stream.
        version: The event's version in its stream.
    """

    def __init__(self, name: str, stream_id: str, version: int) -> None:
        super().__init__(name, stream_id, version)
        self.name = name
        self.stream_id = stream_id
        self.version = version

    def __str__(self) -> str:
        return (
            f"subscription {self.name!r} stopped: its handler failed on event "
            f"{self.version} of stream {self.stream_id!r}"
        )


class HandlerTransactionError(EventStoreError):
    """
    A transactional handler, or ``on_reset``, ended the transaction it was given.

    With `Delivery.TRANSACTIONAL` the handler's writes and the checkpoint's
    move commit together, in a transaction the subscription opens and ends.
    A handler that sends its own ``COMMIT`` or ``ROLLBACK``, closes the
    connection, or catches a failed statement of its own without a
    savepoint (leaving the transaction aborted) breaks that: its writes
    would commit without the checkpoint, or the checkpoint without them.
    The subscription stops at once (`SubscriptionFailedError`, with this as
    its ``__cause__``): retried or parked, the batch would be written again.
    To refuse a batch, raise; to go on after a failing statement, run it in
    ``with conn.transaction():`` (a savepoint).
    """
