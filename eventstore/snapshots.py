"""Snapshot records, and what a store returns when it loads a stream for an aggregate."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from eventstore.events import RecordedEvent

__all__ = ["LoadedStream", "Snapshot", "crosses_snapshot_boundary"]


@attrs.frozen
class Snapshot:
    """
    The state of one stream's aggregate at a version, stored to shorten loads.

    Saving a snapshot at a version that already has one replaces it. A store
    keeps the newest few per stream (two by default) and drops older ones.

    Args:
        stream_id: The stream it summarises.
        version: The stream version whose state it holds (the events up to
            and including this version are folded into *state*).
        type: The stable type name of the state, for the serializer.
        schema_version: The version of *state*'s schema, for upcasting.
        state: The aggregate state as a JSON object.
        recorded_at: When it was stored; set by the store on load, ``None``
            on a snapshot not yet saved.
    """

    stream_id: str
    version: int
    type: str
    schema_version: int
    state: Mapping[str, Any]
    recorded_at: datetime | None = None


@attrs.frozen
class LoadedStream:
    """
    A stream as needed to rebuild an aggregate: a snapshot and the events after it.

    Attributes:
        stream_id: The stream.
        snapshot: The newest snapshot at or below the requested version, or
            ``None`` when there is none (or none was asked for).
        events: The events after the snapshot (all events when there is no
            snapshot), ascending, up to the requested version.
        version: The version the aggregate is at once the events are applied:
            the last event's version, else the snapshot's, else 0.
    """

    stream_id: str
    snapshot: Snapshot | None
    events: tuple[RecordedEvent, ...]
    version: int

    @classmethod
    def of(
        cls,
        stream_id: str,
        snapshot: Snapshot | None,
        events: tuple[RecordedEvent, ...],
    ) -> LoadedStream:
        """Build a `LoadedStream`, working out the version the aggregate will be at."""
        if events:
            version = events[-1].version
        else:
            version = 0 if snapshot is None else snapshot.version
        return cls(stream_id, snapshot, events, version)


def crosses_snapshot_boundary(old_version: int, new_version: int, every: int) -> bool:
    """
    Whether a save from *old_version* to *new_version* passes a multiple of *every*.

    A repository with ``snapshot_every = 50`` snapshots after the save that
    takes the stream from 48 to 51, as well as from 49 to 50.

    Example:
        >>> crosses_snapshot_boundary(48, 51, 50), crosses_snapshot_boundary(50, 52, 50)
        (True, False)
    """
    return new_version // every > old_version // every
