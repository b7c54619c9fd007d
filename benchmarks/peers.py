"""
The ``eventsourcing`` library (9.5.6) as a peer: its PostgreSQL recorder, used directly.

Each workload gets a `PostgresDatastore` with the library's default settings
(``originator_id_type="uuid"``, no database functions, ``lock_timeout`` 0) and
a pool of one connection per thread of the workload, and a
`PostgresApplicationRecorder` whose ``stored_events`` table lives in its own
schema ``esrc_<workload>`` on the same server. Below the recorder the library
has its mapper and transcoder (domain events to bytes and back); they are not
timed here, as eventstore's serializer is not: the peer is handed
`StoredEvent`s whose state is the same JSON the other sides store, encoded by
the standard library's ``json``, and its reads return the state as bytes.

What the recorder does (eventsourcing/postgres.py, 9.5.6):

- ``insert_events`` runs, in one pipelined transaction, ``SET LOCAL
  lock_timeout``, ``LOCK TABLE … IN EXCLUSIVE MODE`` (``_lock_table``: so
  that notification ids are handed out in commit order), ``NOTIFY`` and one
  ``INSERT … SELECT … FROM unnest(%s::stored_event_uuid[])`` of all the
  events, returning their notification ids. Writers of one table are
  serialised; readers are not blocked.
- Concurrency control is the primary key ``(originator_id,
  originator_version)`` alone: a clash is an ``IntegrityError``. There is no
  expected-version check of its own (a writer may leave gaps in versions) and
  no event id, so a re-sent insert is refused, not recognised.
- ``select_events`` reads a whole stream in one query into a list (no
  paging); ``select_notifications`` reads the log ordered by the
  ``notification_id`` bigserial (``SELECT *``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql

from benchmarks.baseline import METADATA

TOPIC = "bench.event"

GUARANTEES = (
    "eventsourcing 9.5.6's PostgresApplicationRecorder used directly, with the "
    "library's default settings (UUID originator ids, no database functions, "
    "lock_timeout 0) and a pool of one connection per thread, its own "
    "stored_events table in schema esrc_<workload>. Each insert is one "
    "pipelined transaction: SET LOCAL lock_timeout, LOCK TABLE stored_events "
    "IN EXCLUSIVE MODE, NOTIFY, INSERT ... SELECT FROM unnest(composite[]) "
    "RETURNING notification_id. The table lock serialises every writer of the "
    "table (8 threads run one at a time) so that notification ids are in "
    "commit order: a reader that follows the log by notification_id never "
    "skips an event (ids drawn by a refused insert stay gaps). Concurrency "
    "control is the primary key (originator_id, originator_version) alone: no "
    "expected-version check of its own (versions may have gaps), a clash is "
    "an IntegrityError; it has no event ids, so a re-sent insert is refused "
    "rather than recognised; the state is opaque bytes, not validated. Reads "
    "fetch a whole stream in one query into a list (no paging) and the log by "
    "notification_id (SELECT *); what is timed is what the recorder returns, "
    "StoredEvents and Notifications with the state undecoded (its mapper "
    "would decode it, untimed here), while eventstore's figures include "
    "decoding the JSON into RecordedEvents."
)
"""What the peer does and does not guarantee, for the report's notes."""


def state(data: dict[str, Any]) -> bytes:
    """Encode an event's data and metadata as the peer stores them: one JSON document."""
    return json.dumps({"data": data, "metadata": METADATA}).encode()


def data_of(state: bytes) -> Any:
    """Decode the data of a state made by `state` (for checks, not timed)."""
    return json.loads(state)["data"]


def stream_id(name: str) -> uuid.UUID:
    """Return the UUID the peer uses for the stream *name* (its ids are UUIDs by default)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, name)


class Peer:
    """One workload's eventsourcing recorder, in its own schema."""

    def __init__(
        self, admin: psycopg.Connection[Any], schema: str, pool_size: int
    ) -> None:
        admin.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        info = admin.info
        self.schema = schema
        self.datastore = PostgresDatastore(
            dbname=info.dbname,
            host=info.host,
            port=info.port,
            user=info.user,
            password=info.password,
            schema=schema,
            pool_size=pool_size,
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        # The pool opens lazily on first use; open it now, as eventstore's is.
        self.datastore.pool.open(wait=True, timeout=30.0)
        self.table = sql.Identifier(schema, self.recorder.events_table_name)
        self._admin = admin

    def insert(self, events: Sequence[StoredEvent]) -> None:
        """Insert *events* in one call of the recorder."""
        self.recorder.insert_events(events)

    def select(self, originator_id: uuid.UUID) -> Sequence[StoredEvent]:
        # The recorder's methods lose their types under its @retry decorator.
        events: Sequence[StoredEvent] = self.recorder.select_events(originator_id)
        return events

    def page(self, after: int | None, limit: int) -> Sequence[Notification]:
        """One page of the notification log, after notification id *after*."""
        page: Sequence[Notification] = self.recorder.select_notifications(
            after, limit, inclusive_of_start=False
        )
        return page

    def version(self, originator_id: uuid.UUID) -> int:
        """The stream's last version (0 when absent)."""
        last: Sequence[StoredEvent] = self.recorder.select_events(
            originator_id, desc=True, limit=1
        )
        return last[0].originator_version if last else 0

    def count(self) -> int:
        row = self._admin.execute(
            sql.SQL("SELECT count(*) FROM {}").format(self.table)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        self.datastore.close()


def event(originator_id: uuid.UUID, version: int, data: dict[str, Any]) -> StoredEvent:
    """A `StoredEvent` at *version* of *originator_id*, its state encoded now."""
    return StoredEvent(originator_id, version, TOPIC, state(data))
