"""`AsyncInMemoryEventStore`: the whole contract in one process, for tests and small tools."""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import attrs

from eventstore._decide import judge_append
from eventstore._json import load_json
from eventstore._subscribing import AsyncTransactionWork, ParkedEvent
from eventstore._validation import EncodedAppend, EncodedSnapshot, check_int
from eventstore.errors import SubscriptionConflictError
from eventstore.events import AppendResult, LogPosition, RecordedEvent
from eventstore.health import HealthReport, HealthStatus
from eventstore.snapshots import Snapshot
from eventstore.store_async import DEFAULT_SNAPSHOTS_TO_KEEP, AsyncEventStore

__all__ = ["AsyncInMemoryEventStore"]


class _StoredEvent(NamedTuple):
    # Data and metadata stay JSON text, as on PostgreSQL, so that reads
    # return fresh objects a caller may mutate without touching the store.
    # A NamedTuple, not an attrs class: it is built on every append, and is
    # three times cheaper to build.
    stream_id: str
    version: int
    position: LogPosition
    type: str
    data: str
    metadata: str
    event_id: uuid.UUID
    schema_version: int
    recorded_at: datetime

    def to_recorded(self) -> RecordedEvent:
        # Positional, in the order of RecordedEvent's fields (a test pins it):
        # attrs' __init__ takes 9 keywords ~1.5 us slower, on every event read.
        return RecordedEvent(
            self.stream_id,
            self.version,
            self.position,
            self.type,
            load_json(self.data),
            load_json(self.metadata),
            self.event_id,
            self.schema_version,
            self.recorded_at,
        )


@attrs.frozen
class _StoredSnapshot:
    encoded: EncodedSnapshot
    recorded_at: datetime

    def to_snapshot(self) -> Snapshot:
        return Snapshot(
            stream_id=self.encoded.stream_id,
            version=self.encoded.version,
            type=self.encoded.type,
            schema_version=self.encoded.schema_version,
            state=load_json(self.encoded.state),
            recorded_at=self.recorded_at,
        )


@attrs.frozen
class _Parked:
    stream_id: str
    version: int
    error: str
    attempts: int
    parked_at: datetime


def _position_of(event: _StoredEvent) -> LogPosition:
    return event.position


async def _recorded(
    store: AsyncInMemoryEventStore, stream: list[_StoredEvent], indexes: range
) -> AsyncIterator[RecordedEvent]:
    for index in indexes:
        if store.closed:
            store._check_open()  # a read under way ends with its store
        yield stream[index].to_recorded()


class AsyncInMemoryEventStore(AsyncEventStore):
    """
    An event store held in this process's memory, thread-safe.

    It behaves as `eventstore.postgres.AsyncPostgresEventStore` does (both
    pass the same contract suite) and stores event data as JSON text, so it
    accepts and returns the same values (but for jsonb's number
    normalisation; see docs/contract.md). Every append is one "transaction":
    log positions are ``(append number, event number)``, and an event is in
    the global log as soon as its append returns. Nothing survives the
    process.

    Args:
        snapshots_to_keep: Snapshots kept per stream, newest first (at least 1).

    Example:
        >>> from eventstore import AsyncInMemoryEventStore, NewEvent
        >>> async with AsyncInMemoryEventStore() as store:
        ...     _ = await store.append("order-7", [NewEvent("order.placed", {"total": 12})])
        ...     [event.type async for event in store.read_stream("order-7")]
        ['order.placed']
    """

    def __init__(self, *, snapshots_to_keep: int = DEFAULT_SNAPSHOTS_TO_KEEP) -> None:
        self._snapshots_to_keep = check_int(
            snapshots_to_keep, "snapshots_to_keep", minimum=1
        )
        self._lock = threading.Lock()
        self._streams: dict[str, list[_StoredEvent]] = {}
        self._log: list[_StoredEvent] = []
        # Per stream (ids are unique per stream), keyed by the UUID's int:
        # hashing an int is a C call, a UUID's a Python one.
        self._event_ids: dict[str, dict[int, _StoredEvent]] = {}
        self._snapshots: dict[str, dict[int, _StoredSnapshot]] = {}
        self._checkpoints: dict[tuple[str, str], LogPosition] = {}
        self._parked_events: dict[tuple[str, str], dict[LogPosition, _Parked]] = {}
        self._transactions = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} streams={len(self._streams)} events={len(self._log)}>"

    async def _append(self, appends: Sequence[EncodedAppend]) -> list[AppendResult]:
        with self._lock:
            # Again under the lock, here as in every method below: a call past
            # the public check when another thread closed the store would read
            # its emptied tables as an empty store (version 0, no events).
            self._check_open()
            # Check every request before writing any, so a refusal writes nothing.
            results = [self._plan(append) for append in appends]
            if None in results:
                self._transactions += 1
                recorded_at = datetime.now(UTC)
                for index, append in enumerate(appends):
                    if results[index] is None:
                        results[index] = self._write(append, recorded_at)
        return results  # type: ignore[return-value]  # every None was replaced above

    def _plan(self, append: EncodedAppend) -> AppendResult | None:
        """Return the stored result of a retried batch, None to write it, or raise."""
        event_ids = self._event_ids.get(append.stream_id)
        stored = (
            [
                event_ids[event.event_id.int]
                for event in append.events
                if event.event_id.int in event_ids
            ]
            if event_ids
            else []
        )
        actual = len(self._streams.get(append.stream_id, ()))
        return judge_append(append, actual, stored)

    def _write(self, append: EncodedAppend, recorded_at: datetime) -> AppendResult:
        stream_id = append.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = []
            self._event_ids[stream_id] = {}
        event_ids = self._event_ids[stream_id]
        log = self._log
        positions = []
        for event in append.events:
            position = LogPosition(self._transactions, len(log) + 1)
            stored = _StoredEvent(
                stream_id,
                len(stream) + 1,
                position,
                event.type,
                event.data,
                event.metadata,
                event.event_id,
                event.schema_version,
                recorded_at,
            )
            stream.append(stored)
            log.append(stored)
            event_ids[event.event_id.int] = stored
            positions.append(position)
        return AppendResult(stream_id, len(stream), tuple(positions))

    def _read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> AsyncIterator[RecordedEvent]:
        if True:  # ASYNC
            # Bounds are fixed at the first step, as an async PostgreSQL
            # store fixes them with its first page.
            return self._recorded_later(
                stream_id, from_version, to_version, backwards, limit
            )
        else:
            # Bounds are fixed now, at the call.
            return _recorded(  # type: ignore[unreachable]
                self,
                *self._range(stream_id, from_version, to_version, backwards, limit),
            )

    async def _recorded_later(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> AsyncIterator[RecordedEvent]:
        self._check_open()  # closed since the call: its streams are gone
        stream, indexes = self._range(
            stream_id, from_version, to_version, backwards, limit
        )
        # The loop of `_recorded`, not a call of it: one async generator
        # per event read, not two.
        for index in indexes:
            if self._closed:
                self._check_open()  # a read under way ends with its store
            yield stream[index].to_recorded()

    def _range(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> tuple[list[_StoredEvent], range]:
        """Return a stream's list and the indexes of the range, fixed now."""
        # The list only ever grows, so the slice it describes never changes
        # under a concurrent append.
        with self._lock:
            self._check_open()
            stream = self._streams.get(stream_id, [])
            end = len(stream) if to_version is None else min(to_version, len(stream))
        start = from_version - 1
        indexes = range(end - 1, start - 1, -1) if backwards else range(start, end)
        if limit is not None:
            indexes = indexes[:limit]
        return stream, indexes

    async def _stream_version(self, stream_id: str) -> int:
        # Under the lock: a batch's events are added one by one while it is held.
        with self._lock:
            self._check_open()
            return len(self._streams.get(stream_id, ()))

    async def _read_all(
        self, after: LogPosition | None, limit: int
    ) -> list[RecordedEvent]:
        with self._lock:
            self._check_open()
            start = (
                0
                if after is None
                else bisect.bisect_right(self._log, after, key=_position_of)
            )
            page = self._log[start : start + limit]
        return [event.to_recorded() for event in page]

    async def _save_snapshot(self, snapshot: EncodedSnapshot) -> None:
        with self._lock:
            self._check_open()
            kept = self._snapshots.setdefault(snapshot.stream_id, {})
            kept[snapshot.version] = _StoredSnapshot(snapshot, datetime.now(UTC))
            for version in sorted(kept)[: -self._snapshots_to_keep]:
                del kept[version]

    async def _load_snapshot(
        self, stream_id: str, max_version: int | None
    ) -> Snapshot | None:
        with self._lock:
            self._check_open()
            kept = self._snapshots.get(stream_id, {})
            versions = [
                version
                for version in kept
                if max_version is None or version <= max_version
            ]
            return kept[max(versions)].to_snapshot() if versions else None

    async def _load_checkpoint(self, name: str, member: str) -> LogPosition | None:
        with self._lock:
            self._check_open()
            return self._checkpoints.get((name, member))

    async def _save_checkpoint(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        *,
        durable: bool = True,
    ) -> None:
        with self._lock:
            self._check_open()
            actual = self._checkpoints.get((name, member))
            if actual != expected:
                raise SubscriptionConflictError(name, member, expected, actual)
            self._checkpoints[name, member] = new

    async def _reset_checkpoint(
        self,
        name: str,
        member: str,
        to: LogPosition | None,
        work: AsyncTransactionWork | None,
    ) -> None:
        with self._lock:
            self._check_open()
            if to is None:
                self._checkpoints.pop((name, member), None)
            else:
                self._checkpoints[name, member] = to

    async def _park(
        self,
        name: str,
        member: str,
        event: RecordedEvent,
        error: str,
        attempts: int,
        *,
        still_parked: bool = False,
    ) -> None:
        with self._lock:
            self._check_open()
            parked = self._parked_events.setdefault((name, member), {})
            before = parked.get(event.position)
            if still_parked and before is None:
                return
            total = attempts + (0 if before is None else before.attempts)
            # The event's place, not the handler's object (which it may have
            # changed): it is read from the stream again, as PostgreSQL does.
            parked[event.position] = _Parked(
                event.stream_id, event.version, error, total, datetime.now(UTC)
            )

    async def _parked(
        self, name: str, member: str, after: LogPosition | None, limit: int
    ) -> list[ParkedEvent]:
        with self._lock:
            self._check_open()
            parked = self._parked_events.get((name, member), {})
            later = sorted(p for p in parked if after is None or p > after)
            return [self._parked_event(parked[p]) for p in later[:limit]]

    def _parked_event(self, parked: _Parked) -> ParkedEvent:
        stored = self._streams[parked.stream_id][parked.version - 1]
        return ParkedEvent(
            stored.to_recorded(), parked.error, parked.attempts, parked.parked_at
        )

    async def _parked_count(self, name: str, member: str) -> int:
        with self._lock:
            self._check_open()
            return len(self._parked_events.get((name, member), {}))

    async def _unpark(
        self, name: str, member: str, stream_id: str, version: int
    ) -> None:
        with self._lock:
            self._check_open()
            parked = self._parked_events.get((name, member), {})
            for position, item in list(parked.items()):
                if (item.stream_id, item.version) == (stream_id, version):
                    del parked[position]

    async def _health(self) -> HealthReport:
        if self._closed:
            return HealthReport(
                HealthStatus.UNAVAILABLE, None, None, error="the store is closed"
            )
        started = time.perf_counter()
        with self._lock:
            pass  # how long the store's one lock takes to get is its latency
        latency_ms = (time.perf_counter() - started) * 1000
        return HealthReport(HealthStatus.OK, latency_ms, None)

    async def _close(self) -> None:
        with self._lock:
            self._streams.clear()
            self._log.clear()
            self._event_ids.clear()
            self._snapshots.clear()
            self._checkpoints.clear()
            self._parked_events.clear()
