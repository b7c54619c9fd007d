"""A third-party backend written against `eventstore.backend` alone: lists and one lock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from eventstore import (
    AppendResult,
    HealthReport,
    HealthStatus,
    LogPosition,
    RecordedEvent,
    Snapshot,
)
from eventstore.backend import (
    DEFAULT_SNAPSHOTS_TO_KEEP,
    EncodedAppend,
    EncodedSnapshot,
    EventStore,
    judge_append,
)

# One stored event: stream id, version, position, type, data (JSON text),
# metadata (JSON text), event id, schema version, recorded at.
_Row = tuple[Any, ...]


def _recorded(row: _Row) -> RecordedEvent:
    stream_id, version, position, type_, data, metadata, event_id, schema, at = row
    return RecordedEvent(
        stream_id,
        version,
        position,
        type_,
        json.loads(data),
        json.loads(metadata),
        event_id,
        schema,
        at,
    )


class ListStore(EventStore):
    """Every event in one list, in log order; O(n) everywhere, and correct."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[_Row] = []
        # Per stream, by version: the snapshot as received, and when.
        self._snapshots: dict[str, dict[int, tuple[EncodedSnapshot, datetime]]] = {}
        self._transactions = 0

    def _stream(self, stream_id: str) -> list[_Row]:
        return [row for row in self._rows if row[0] == stream_id]

    def _append(self, appends: Sequence[EncodedAppend]) -> list[AppendResult]:
        with self._lock:
            decided: list[AppendResult | None] = []
            for append in appends:
                stream = self._stream(append.stream_id)
                by_id = {row[6]: _recorded(row) for row in stream}
                stored = [
                    by_id[e.event_id] for e in append.events if e.event_id in by_id
                ]
                decided.append(judge_append(append, len(stream), stored))
            if None in decided:
                self._transactions += 1
                now = datetime.now(UTC)
                for index, append in enumerate(appends):
                    if decided[index] is None:
                        decided[index] = self._write(append, now)
        return [result for result in decided if result is not None]

    def _write(self, append: EncodedAppend, now: datetime) -> AppendResult:
        version = len(self._stream(append.stream_id))
        positions = []
        for event in append.events:
            version += 1
            position = LogPosition(self._transactions, len(self._rows) + 1)
            self._rows.append(
                (
                    append.stream_id,
                    version,
                    position,
                    event.type,
                    event.data,
                    event.metadata,
                    event.event_id,
                    event.schema_version,
                    now,
                )
            )
            positions.append(position)
        return AppendResult(append.stream_id, version, tuple(positions))

    def _read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> Iterator[RecordedEvent]:
        with self._lock:  # the range is fixed now, at the call
            rows = [
                row
                for row in self._stream(stream_id)
                if row[1] >= from_version
                and (to_version is None or row[1] <= to_version)
            ]
        if backwards:
            rows.reverse()
        return self._while_open([_recorded(row) for row in rows[:limit]])

    def _while_open(self, events: list[RecordedEvent]) -> Iterator[RecordedEvent]:
        for event in events:
            self._check_open()  # a read under way ends with its store
            yield event

    def _stream_version(self, stream_id: str) -> int:
        with self._lock:
            return len(self._stream(stream_id))

    def _read_all(self, after: LogPosition | None, limit: int) -> list[RecordedEvent]:
        with self._lock:
            rows = [row for row in self._rows if after is None or row[2] > after]
        return [_recorded(row) for row in rows[:limit]]

    def _save_snapshot(self, snapshot: EncodedSnapshot) -> None:
        with self._lock:
            kept = self._snapshots.setdefault(snapshot.stream_id, {})
            kept[snapshot.version] = (snapshot, datetime.now(UTC))
            for version in sorted(kept)[:-DEFAULT_SNAPSHOTS_TO_KEEP]:
                del kept[version]

    def _load_snapshot(
        self, stream_id: str, max_version: int | None
    ) -> Snapshot | None:
        with self._lock:
            kept = self._snapshots.get(stream_id, {})
            versions = [v for v in kept if max_version is None or v <= max_version]
            if not versions:
                return None
            found, recorded_at = kept[max(versions)]
        return Snapshot(
            found.stream_id,
            found.version,
            found.type,
            found.schema_version,
            json.loads(found.state),
            recorded_at,
        )

    def _health(self) -> HealthReport:
        if self.closed:
            return HealthReport(HealthStatus.UNAVAILABLE, None, None, error="closed")
        started = time.perf_counter()
        with self._lock:
            pass
        return HealthReport(
            HealthStatus.OK, (time.perf_counter() - started) * 1000, None
        )

    def _close(self) -> None:
        with self._lock:
            self._rows.clear()
            self._snapshots.clear()
