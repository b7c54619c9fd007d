"""Value objects of the store contract: events, expected versions, log positions."""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import attrs

from eventstore._ids import new_event_id
from eventstore.errors import InvalidArgumentError

__all__ = [
    "AppendRequest",
    "AppendResult",
    "ExpectedVersion",
    "LogPosition",
    "NewEvent",
    "RecordedEvent",
]


class ExpectedVersion(enum.Enum):
    """
    The symbolic expected versions of an append.

    An ``int`` expected version means "the stream is at exactly this version"
    (0: it must not exist yet). These members cover the other cases.
    """

    ANY = "any"
    """No check: append whatever the stream's version."""

    EXISTS = "exists"
    """The stream must hold at least one event."""

    def __str__(self) -> str:
        return f"ExpectedVersion.{self.name}"


def _empty_mapping() -> Mapping[str, Any]:
    return {}


@attrs.frozen
class NewEvent:
    """
    An event to append, before the store gives it a place.

    Args:
        type: A stable type name such as ``"document.created"``.
        data: A JSON object: str keys, JSON values, no NaN or NUL characters.
        metadata: A JSON object; carries correlation and causation ids by
            convention.
        event_id: The event's identity, unique within its stream: a
            time-ordered UUIDv7 when omitted, or any UUID. Re-sending an
            append with the same ids is a safe retry.
        schema_version: The version of *data*'s schema, for upcasting.

    Example:
        >>> NewEvent("document.created", {"title": "Q3 policy"}).schema_version
        1
    """

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = attrs.field(factory=_empty_mapping)
    event_id: uuid.UUID = attrs.field(factory=new_event_id)
    schema_version: int = 1


_TEXT_SEPARATOR = "/"
# ASCII digits only (str.isdigit takes superscripts and other scripts), at most 19 each.
_POSITION_TEXT = re.compile(r"([0-9]{1,19})/([0-9]{1,19})")


class LogPosition(NamedTuple):
    """
    A place in the global log, ordered, and stable once read.

    On PostgreSQL it is the pair (transaction id, position): events are read
    in commit-safe order, so a checkpoint never skips an event that commits
    late. Compare positions, store them as text with ``str()``, and read them
    back with `LogPosition.parse`.

    It is an immutable named tuple rather than an attrs class because one is
    made for every event stored and read, and a tuple is the cheapest ordered
    pair Python has.

    Example:
        >>> LogPosition.parse(str(LogPosition(7, 42)))
        LogPosition(transaction_id=7, position=42)
    """

    transaction_id: int
    position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}{_TEXT_SEPARATOR}{self.position}"

    @classmethod
    def parse(cls, text: str) -> LogPosition:
        """
        Read a position back from the text ``str(position)`` gave.

        Raises:
            InvalidArgumentError: *text* is not a position.
        """
        match = _POSITION_TEXT.fullmatch(str(text))
        if match is None:
            raise InvalidArgumentError(f"not a log position: {text!r}")
        return cls(int(match[1]), int(match[2]))


@attrs.frozen
class RecordedEvent:
    """
    An event as stored: the appended event plus its place in stream and log.

    Attributes:
        stream_id: The stream it belongs to.
        version: Its 1-based place in the stream.
        position: Its place in the global log.
        type: The stable type name.
        data: The event's JSON object.
        metadata: The metadata JSON object.
        event_id: The id it was appended with.
        schema_version: The schema version of *data*.
        recorded_at: When it was stored, by the store's clock, in UTC.
    """

    stream_id: str
    version: int
    position: LogPosition
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    event_id: uuid.UUID
    schema_version: int
    recorded_at: datetime


@attrs.frozen
class AppendResult:
    """
    What an append stored.

    Attributes:
        stream_id: The stream appended to.
        version: The stream's version after the append (the version of its
            last event).
        positions: The log positions of the appended events, in order.
    """

    stream_id: str
    version: int
    positions: tuple[LogPosition, ...]


@attrs.frozen
class AppendRequest:
    """
    One stream's part of an atomic multi-stream append (`EventStore.append_many`).

    Args:
        stream_id: The stream to append to.
        events: The events, in order.
        expected_version: As for `EventStore.append`.
    """

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | ExpectedVersion = ExpectedVersion.ANY
