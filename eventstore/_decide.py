"""
How every backend decides an append against what is stored: pure, no I/O.

A backend finds the stream's version and where the append's event ids are
stored already; `judge_append` then says whether the append is a retry (and
what it returned the first time), must be refused, or may be written. Both
backends call it, so they cannot drift apart on these rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from eventstore._validation import EncodedAppend
from eventstore.errors import ConcurrencyError, DuplicateEventError
from eventstore.events import AppendResult, ExpectedVersion, LogPosition

__all__ = ["StoredEvent", "judge_append"]

# Module globals: on Python 3.11 an enum member lookup (ExpectedVersion.ANY)
# costs ten times a global's, and this runs on every append.
_ANY = ExpectedVersion.ANY
_EXISTS = ExpectedVersion.EXISTS


class StoredEvent(Protocol):
    """Where an event id is stored: what `judge_append` needs to know of it."""

    @property
    def stream_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def event_id(self) -> uuid.UUID: ...

    @property
    def position(self) -> LogPosition: ...


def judge_append(
    append: EncodedAppend, actual: int, stored: Sequence[StoredEvent]
) -> AppendResult | None:
    """
    Decide *append*, given its stream's *actual* version and its *stored* ids.

    The idempotency check comes first: a batch whose ids are all stored, in
    this stream, at consecutive versions, in order, is a retry, whatever the
    stream's version is now.

    Args:
        append: The validated append.
        actual: The stream's version now (0 when it does not exist).
        stored: The append's event ids that are stored already, in batch order.

    Returns:
        The original result when the append is a retry; ``None`` when it may
        be written.

    Raises:
        DuplicateEventError: Some ids are stored, and this is no retry.
        ConcurrencyError: The stream is not at the expected version.
    """
    if stored:
        first = stored[0].version
        if len(stored) == len(append.events) and all(
            event.stream_id == append.stream_id and event.version == first + offset
            for offset, event in enumerate(stored)
        ):
            return AppendResult(
                append.stream_id,
                stored[-1].version,
                tuple(event.position for event in stored),
            )
        raise DuplicateEventError(
            append.stream_id, [event.event_id for event in stored]
        )
    expected = append.expected_version
    if expected is _ANY:
        return None
    if expected is _EXISTS:
        if actual == 0:
            raise ConcurrencyError(append.stream_id, expected, actual)
        return None
    if expected != actual:
        raise ConcurrencyError(append.stream_id, expected, actual)
    return None
