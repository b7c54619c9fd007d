"""
The interface of a backend: what a store of your own implements, and receives.

A backend subclasses `EventStore` (or `AsyncEventStore`, whose hooks are the
same, awaited) and implements its ``_``-prefixed hooks.
The public methods have already checked and encoded every argument, the
same way for every backend, so a hook receives validated values and never
re-checks them:

- ``_append(appends: Sequence[EncodedAppend]) -> list[AppendResult]``:
  store every append or none. Decide each with `judge_append` (a retry of a
  stored batch, a duplicate, a conflict, or a write), before writing any.
  A refused append draws no log position.
- ``_read_stream(stream_id, from_version, to_version, backwards, limit) ->
  Iterator[RecordedEvent]``: the inclusive range, fixed at the call.
- ``_stream_version(stream_id) -> int``: 0 for a stream that does not exist.
- ``_read_all(after: LogPosition | None, limit: int) -> list[RecordedEvent]``:
  one page of the global log after *after*, in an order that never changes
  once read.
- ``_save_snapshot(snapshot: EncodedSnapshot)``, ``_load_snapshot(stream_id,
  max_version) -> Snapshot | None``: keep the newest
  ``DEFAULT_SNAPSHOTS_TO_KEEP`` (or a number of the store's own) per stream.
- ``_load(stream_id, to_version, use_snapshot) -> LoadedStream`` (optional):
  a snapshot and the events after it; `EventStore` builds it from the two
  reads above unless a backend can do it in one round trip.
- ``_health() -> HealthReport``: never raises; ``_close()``: called once.

Event data, metadata and snapshot state arrive as compact JSON text
(`EncodedEvent.data`, `EncodedSnapshot.state`); store it as JSON and return
it decoded, so that every backend accepts and returns the same values.
`eventstore.testing.EventStoreContract` is the test: a backend passes by
subclassing it with a ``store`` fixture. ``docs/backends.md`` walks through a
whole backend written against this module alone.
"""

from __future__ import annotations

from eventstore._decide import StoredEvent, judge_append
from eventstore._validation import EncodedAppend, EncodedEvent, EncodedSnapshot
from eventstore.store import DEFAULT_SNAPSHOTS_TO_KEEP, EventStore
from eventstore.store_async import AsyncEventStore

__all__ = [
    "DEFAULT_SNAPSHOTS_TO_KEEP",
    "AsyncEventStore",
    "EncodedAppend",
    "EncodedEvent",
    "EncodedSnapshot",
    "EventStore",
    "StoredEvent",
    "judge_append",
]
