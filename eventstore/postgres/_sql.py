"""
All SQL of the PostgreSQL backend, with the pure parameter building and row mapping around it.

No I/O here: `Statements` holds the statement texts for one schema, composed
with `psycopg.sql` (schema and table names only ever as `sql.Identifier`),
and the functions turn validated appends into parameters and rows into
`RecordedEvent` / `Snapshot` objects. The synchronous store and its async
twin share all of it.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
from psycopg import sql

from eventstore._json import load_json
from eventstore._subscribing import LogPage, ParkedEvent
from eventstore._validation import EncodedAppend, EncodedSnapshot
from eventstore.errors import ConfigError
from eventstore.events import AppendResult, ExpectedVersion, LogPosition, RecordedEvent
from eventstore.health import LogHolder, SubscriptionHealth
from eventstore.postgres._routing import PROBE_STREAM_IDS
from eventstore.snapshots import Snapshot

__all__ = ["Statements", "StreamStatements", "check_schema_name"]


_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER_BYTES = (
    63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names
)

# Columns of an event row, in the order `event_from_row` reads them. xid8 has
# no cast to bigint and psycopg has no loader for it, so it travels as text
# and is cast through text (an xid8 fits a bigint: 32-bit epoch + 32-bit xid).
# jsonb columns are read as text and decoded by `load_json`, at 40% of the
# cost of psycopg's jsonb loader (which calls json.loads on bytes); the
# server sends the same text either way.
_EVENT_COLUMNS = sql.SQL(
    "stream_id, version, transaction_id::text::bigint, position, type, data::text, "
    "metadata::text, event_id, schema_version, recorded_at"
)
# A stream read knows its stream: without the stream_id column each row
# costs ~0.35 us less to fetch (`stream_event_from_row` reads these).
_STREAM_EVENT_COLUMNS = sql.SQL(
    "version, transaction_id::text::bigint, position, type, data::text, "
    "metadata::text, event_id, schema_version, recorded_at"
)


def check_schema_name(schema: object) -> str:
    """
    Return *schema* if it is a safe schema name.

    Raises:
        ConfigError: Not ``[A-Za-z_][A-Za-z0-9_]*``, longer than 63 bytes,
            or starting with ``pg_``, which PostgreSQL keeps for its own.

    """
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"schema name must match [A-Za-z_][A-Za-z0-9_]*, got {schema!r}"
        )
    if schema.startswith("pg_"):
        # CREATE SCHEMA refuses it ("unacceptable schema name"); quoted, as
        # the store writes names, "PG_…" is an ordinary name.
        raise ConfigError(
            f"schema names starting with pg_ are PostgreSQL's own, got {schema!r}"
        )
    if len(schema.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ConfigError(
            f"schema name must fit {_MAX_IDENTIFIER_BYTES} bytes, got {schema!r}"
        )
    return schema


def _compose(template: str, schema: str, partition: int | None = None) -> bytes:
    # Statements are rendered to bytes once per store: psycopg then skips
    # re-composing on every call, and prepares them by their text. With
    # *partition*, the stream tables are those of that hash partition.
    suffix = "" if partition is None else f"_p{partition}"
    query = sql.SQL(template).format(
        streams=sql.Identifier(schema, "streams" + suffix),
        events=sql.Identifier(schema, "events" + suffix),
        snapshots=sql.Identifier(schema, "snapshots" + suffix),
        migrations=sql.Identifier(schema, "schema_migrations"),
        subscriptions=sql.Identifier(schema, "subscriptions"),
        parked_events=sql.Identifier(schema, "parked_events"),
        event_columns=_EVENT_COLUMNS,
        stream_event_columns=_STREAM_EVENT_COLUMNS,
        page_filter=sql.SQL(_LOG_FILTER.replace("{t}", "page")),
        events_filter=sql.SQL(_LOG_FILTER.replace("{t}", "events")),
    )
    return query.as_bytes(None)


def _compose_positional(
    template: str, schema: str, partition: int | None
) -> tuple[bytes, tuple[str, ...]]:
    text, names = positional(template)
    return _compose(text, schema, partition), names


# --- append ---------------------------------------------------------------
#
# One statement per append: the first CTE claims the stream versions in the
# streams table, with the expected-version condition in its WHERE and a check
# that none of the event ids is stored yet; the INSERT takes its versions from
# that CTE's RETURNING. Zero stream rows (a conflict, a duplicate or a retry)
# insert zero events and draw no identity value; the caller then asks
# the ``diagnose`` statement why.

_CLAIM = {
    # Expected 0: the stream must not exist. A plain INSERT behind a NOT
    # EXISTS test rather than ON CONFLICT DO NOTHING: speculative insertion
    # costs ~30 us of server CPU per append (a sixth of the statement). A
    # concurrent creator makes this insert wait for it and then fail with a
    # unique violation on the streams key; the caller runs the append again,
    # and the NOT EXISTS test then finds the committed row. No probe for
    # stored event ids: they are unique per stream (schema v2), and a stream
    # without its row in streams has no events.
    "new": (
        "INSERT INTO {streams} AS s (stream_id, version) "
        "SELECT %(stream_id)s, %(count)s WHERE NOT EXISTS "
        "(SELECT 1 FROM {streams} WHERE stream_id = %(stream_id)s) "
        "RETURNING s.version"
    ),
    # Expected 0 inside a transaction of several statements (append_many):
    # a unique violation there would roll back the earlier statements and
    # run them again, drawing their log positions twice; ON CONFLICT waits
    # for a concurrent creator and then claims nothing, with no error.
    "new_in_transaction": (
        "INSERT INTO {streams} AS s (stream_id, version) "
        "SELECT %(stream_id)s, %(count)s "
        "ON CONFLICT (stream_id) DO NOTHING RETURNING s.version"
    ),
    # Expected n > 0: the row must be at exactly n. A concurrent writer makes
    # this update wait and then re-check the version of the new row.
    "exact": (
        "UPDATE {streams} AS s SET version = s.version + %(count)s "
        "WHERE s.stream_id = %(stream_id)s AND s.version = %(expected)s AND NOT EXISTS "
        "(@STORED@) "
        "RETURNING s.version"
    ),
    "exists": (
        "UPDATE {streams} AS s SET version = s.version + %(count)s "
        "WHERE s.stream_id = %(stream_id)s AND s.version > 0 AND NOT EXISTS "
        "(@STORED@) "
        "RETURNING s.version"
    ),
    "any": (
        "INSERT INTO {streams} AS s (stream_id, version) "
        "SELECT %(stream_id)s, %(count)s WHERE NOT EXISTS "
        "(@STORED@) "
        "ON CONFLICT (stream_id) DO UPDATE SET version = s.version + EXCLUDED.version "
        "RETURNING s.version"
    ),
}

_APPEND_MANY = (
    "WITH claimed AS ({claim}) "
    "INSERT INTO {{events}} (stream_id, version, event_id, type, schema_version, data, metadata) "
    "SELECT %(stream_id)s, claimed.version - %(count)s + e.ord, e.event_id, e.type, "
    "e.schema_version, e.data::jsonb, e.metadata::jsonb "
    "FROM claimed, unnest(%(ids)b::uuid[], %(types)b::text[], %(schema_versions)b::int[], "
    "%(data)b::text[], %(metadata)b::text[]) "
    "WITH ORDINALITY AS e(event_id, type, schema_version, data, metadata, ord) "
    "RETURNING version, transaction_id::text::bigint, position"
)

# Most appends carry one event: scalar parameters spare the client dumping
# five arrays and the server unnesting them.
_APPEND_ONE = (
    "WITH claimed AS ({claim}) "
    "INSERT INTO {{events}} (stream_id, version, event_id, type, schema_version, data, metadata) "
    "SELECT %(stream_id)s, claimed.version, %(event_id)s, %(type)s, %(schema_version)s, "
    "%(data)s::jsonb, %(metadata)s::jsonb FROM claimed "
    "RETURNING version, transaction_id::text::bigint, position"
)

# Event ids are unique per stream (schema v2): the probes go through the
# (stream_id, event_id) key, which also prunes a partitioned table to one
# partition.
_STORED_ONE = (
    "SELECT 1 FROM {events} WHERE stream_id = %(stream_id)s AND event_id = %(event_id)s"
)
# One index probe per id. "event_id = ANY(ids)" is planned once, generically,
# while the table is small, and that plan (a sequential scan) stays cached:
# each batch then costs time in proportion to the whole table.
_STORED_MANY = (
    "SELECT 1 FROM unnest(%(ids)b::uuid[]) AS i(id) CROSS JOIN LATERAL "
    "(SELECT 1 FROM {events} AS x WHERE x.stream_id = %(stream_id)s "
    "AND x.event_id = i.id LIMIT 1) AS hit"
)


_NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)([sb])")


def positional(template: str) -> tuple[str, tuple[str, ...]]:
    """
    Turn the ``%(name)s`` placeholders of *template* into ``%s``.

    Returns:
        The template and the parameter names in placeholder order. psycopg
        binds a sequence faster than a mapping, and appends are the hot path.

    """
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "%" + match.group(2)

    return _NAMED_PLACEHOLDER.sub(replace, template), tuple(names)


def append_templates() -> dict[str, str]:
    """Return the append statement templates, keyed by `append_key`."""
    templates = {}
    for kind, claim in _CLAIM.items():
        templates[kind + "_one"] = _APPEND_ONE.format(
            claim=claim.replace("@STORED@", _STORED_ONE)
        )
        templates[kind + "_many"] = _APPEND_MANY.format(
            claim=claim.replace("@STORED@", _STORED_MANY)
        )
    return templates


def append_key(append: EncodedAppend, *, in_transaction: bool = False) -> str:
    """
    Return which append statement stores *append*: by expected version and event count.

    *in_transaction*: the statement runs among others in one explicit
    transaction (``append_many``), where a new stream needs the claim that
    cannot fail.
    """
    expected = append.expected_version
    if expected is ExpectedVersion.ANY:
        kind = "any"
    elif expected is ExpectedVersion.EXISTS:
        kind = "exists"
    elif expected == 0:
        kind = "new_in_transaction" if in_transaction else "new"
    else:
        kind = "exact"
    return kind + ("_one" if len(append.events) == 1 else "_many")


def append_params(append: EncodedAppend) -> dict[str, Any]:
    """Return the parameters of the append statement for *append*."""
    events = append.events
    expected = append.expected_version
    if len(events) == 1:
        event = events[0]
        return {
            "stream_id": append.stream_id,
            "count": 1,
            "expected": expected if isinstance(expected, int) else None,
            "event_id": event.event_id,
            "type": event.type,
            "schema_version": event.schema_version,
            "data": event.data,
            "metadata": event.metadata,
        }
    return {
        "stream_id": append.stream_id,
        "count": len(events),
        "expected": expected if isinstance(expected, int) else None,
        "ids": [event.event_id for event in events],
        "types": [event.type for event in events],
        "schema_versions": [event.schema_version for event in events],
        "data": [event.data for event in events],
        "metadata": [event.metadata for event in events],
    }


# --- reads ----------------------------------------------------------------

# The filter of a subscription's page, on table {t}: types, stream prefix,
# and the member of a consumer group (a 63-bit hash of the stream id).
_LOG_FILTER = (
    "(%(types)s::text[] IS NULL OR {t}.type = ANY(%(types)s::text[]))"
    " AND (%(prefix)s::text IS NULL OR starts_with({t}.stream_id, %(prefix)s::text))"
    " AND (%(members)s::bigint IS NULL OR"
    " mod(hashtextextended({t}.stream_id, 0) & 9223372036854775807, %(members)s::bigint)"
    " = %(member_index)s::bigint)"
)

_MOVE_CHECKPOINT = (
    "UPDATE {subscriptions} SET transaction_id = %(transaction_id)s::text::xid8, "
    "position = %(position)s, updated_at = now() "
    "WHERE name = %(name)s AND member = %(member)s "
    "AND transaction_id = %(expected_transaction_id)s::text::xid8 "
    "AND position = %(expected_position)s"
)
"""The compare-and-set of a checkpoint, without its RETURNING."""

# The statements on one stream's rows: on a hash-partitioned schema they may
# run on that stream's own partitions (see `_routing`).
_STREAM_TEMPLATES = {
    "stream_version": "SELECT version FROM {streams} WHERE stream_id = %s",
    # Why an append wrote nothing: the stream's version, and where any of its
    # event ids are stored. Ordered by the position of the id in the batch.
    "diagnose": (
        "SELECT coalesce((SELECT version FROM {streams} WHERE stream_id = %(stream_id)s), 0), "
        "e.stream_id, e.version, e.event_id, e.transaction_id::text::bigint, e.position "
        "FROM (SELECT 1) AS one LEFT JOIN ("
        "  SELECT ev.*, ids.ord FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS ids(event_id, ord) "
        "  JOIN {events} AS ev ON ev.stream_id = %(stream_id)s AND ev.event_id = ids.event_id"
        ") AS e ON true ORDER BY e.ord"
    ),
    # First page of a stream read; carries the stream's version so that the
    # following pages stop where the stream ended at the call.
    "stream_first_forwards": (
        "SELECT {stream_event_columns}, (SELECT version FROM {streams} WHERE stream_id = %(stream_id)s) AS stream_version "
        "FROM {events} WHERE stream_id = %(stream_id)s AND version >= %(low)s "
        "AND version <= %(high)s ORDER BY version LIMIT %(limit)s"
    ),
    "stream_first_backwards": (
        "SELECT {stream_event_columns}, (SELECT version FROM {streams} WHERE stream_id = %(stream_id)s) AS stream_version "
        "FROM {events} WHERE stream_id = %(stream_id)s AND version >= %(low)s "
        "AND version <= %(high)s ORDER BY version DESC LIMIT %(limit)s"
    ),
    "stream_page_forwards": (
        "SELECT {stream_event_columns} FROM {events} WHERE stream_id = %(stream_id)s "
        "AND version >= %(low)s AND version <= %(high)s ORDER BY version LIMIT %(limit)s"
    ),
    "stream_page_backwards": (
        "SELECT {stream_event_columns} FROM {events} WHERE stream_id = %(stream_id)s "
        "AND version >= %(low)s AND version <= %(high)s ORDER BY version DESC LIMIT %(limit)s"
    ),
    # --- snapshots ---
    # One save of a stream's snapshots at a time (a transaction-scoped
    # advisory lock on the table and the stream, taken before the row is
    # written, as the INSERT reads its row from the lock's CTE): the prune
    # after it then sees every save committed before it. Unserialised, each
    # of several concurrent saves pruned without the others' new rows, and
    # a stream kept up to one snapshot per save instead of K.
    "save_snapshot": (
        "WITH serial AS (SELECT pg_advisory_xact_lock(hashtext(%(table)s), "
        "hashtext(%(stream_id)s))) "
        "INSERT INTO {snapshots} AS s (stream_id, version, type, schema_version, state) "
        "SELECT %(stream_id)s, %(version)s::bigint, %(type)s, %(schema_version)s::integer, "
        "%(state)s::jsonb FROM serial "
        "ON CONFLICT (stream_id, version) DO UPDATE SET type = EXCLUDED.type, "
        "schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, "
        "recorded_at = EXCLUDED.recorded_at"
    ),
    "prune_snapshots": (
        "DELETE FROM {snapshots} WHERE stream_id = %(stream_id)s AND version < ("
        "  SELECT version FROM {snapshots} WHERE stream_id = %(stream_id)s "
        "  ORDER BY version DESC OFFSET %(keep)s - 1 LIMIT 1)"
    ),
    "load_snapshot": (
        "SELECT stream_id, version, type, schema_version, state::text, recorded_at "
        "FROM {snapshots} WHERE stream_id = %(stream_id)s AND version <= %(high)s "
        "ORDER BY version DESC LIMIT 1"
    ),
    # Snapshot and the later events in one round trip: the rows have the
    # stream event columns, then their kind: 0 for the snapshot (at most one,
    # first), 1 for the events.
    "load": (
        "WITH snap AS ("
        "  SELECT version, type, schema_version, state, recorded_at FROM {snapshots} "
        "  WHERE %(use_snapshot)s AND stream_id = %(stream_id)s AND version <= %(high)s "
        # Never one beyond the stream's end (saved for versions it never reached).
        "  AND version <= (SELECT version FROM {streams} WHERE stream_id = %(stream_id)s) "
        "  ORDER BY version DESC LIMIT 1) "
        "SELECT version, NULL::bigint, NULL::bigint, type, state::text, NULL::text, "
        "NULL::uuid, schema_version, recorded_at, 0 AS kind FROM snap "
        "UNION ALL "
        "SELECT {stream_event_columns}, 1 FROM {events} "
        "WHERE stream_id = %(stream_id)s AND version <= %(high)s "
        "AND version > coalesce((SELECT version FROM snap), 0) "
        "ORDER BY 10, 1"
    ),
}

_TEMPLATES = {
    # The streams of a multi-stream append, locked in one order before any
    # is claimed: two appends naming the same streams in opposite orders
    # would otherwise each claim one (an existing stream's row, or a new
    # stream's key) and wait for the other until the deadlock detector
    # aborted one. A new stream has no row to lock yet, so the lock is a
    # transaction's advisory lock per stream, in the two-key space (the
    # subscriptions' locks are in the 64-bit one): the schema's events table
    # and the stream's hash, taken in the order of the hashes (the fenced,
    # sorted subquery feeds the locks one row at a time, in that order).
    "lock_streams": (
        "SELECT count(pg_advisory_xact_lock(hashtext(%(table)s), k.key)) FROM "
        "(SELECT DISTINCT hashtext(i.id) AS key FROM unnest(%(ids)s::text[]) AS i(id) "
        "ORDER BY 1 OFFSET 0) AS k"
    ),
    # The global log in commit-safe order: only transactions older than every
    # transaction still running (the snapshot's xmin) are visible, so no event
    # can later appear before a position a reader has already passed. The sort
    # keys are qualified: unqualified, "transaction_id" names the select list's
    # text::bigint cast, which no index can deliver, and every page would sort
    # the whole rest of the log.
    "read_all_first": (
        "SELECT {event_columns} FROM {events} "
        "WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
        "ORDER BY {events}.transaction_id, {events}.position LIMIT %(limit)s"
    ),
    "read_all_after": (
        "SELECT {event_columns} FROM {events} "
        "WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
        "AND (transaction_id, position) > (%(transaction_id)s::text::xid8, %(position)s) "
        "ORDER BY {events}.transaction_id, {events}.position LIMIT %(limit)s"
    ),
    # --- subscriptions ---
    # A page of the log for a subscription: up to `limit` events are scanned
    # in log order, those passing the filter are returned, and one marker row
    # (last, its last column the count scanned; NULL on the others) says
    # where the scan ended, so the checkpoint moves past the events the
    # filter skipped, and whether it reached the end of what was visible.
    # The filters run on the server; a NULL parameter turns its filter off.
    "log_page": (
        "WITH page AS MATERIALIZED ("
        " SELECT {event_columns} FROM {events}"
        " WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        " AND (transaction_id, position) > (%(transaction_id)s::text::xid8, %(position)s)"
        " ORDER BY {events}.transaction_id, {events}.position LIMIT %(limit)s) "
        "SELECT *, NULL::bigint FROM page WHERE {page_filter} "
        "UNION ALL (SELECT *, count(*) OVER () FROM page ORDER BY 3 DESC, 4 DESC LIMIT 1) "
        "ORDER BY 3, 4, 11 NULLS FIRST"
    ),
    "log_behind": (
        "SELECT count(*), min(recorded_at) FROM ("
        " SELECT recorded_at FROM {events}"
        " WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        " AND (transaction_id, position) > (%(transaction_id)s::text::xid8, %(position)s)"
        " AND {events_filter}"
        " ORDER BY {events}.transaction_id, {events}.position LIMIT %(cap)s) AS behind"
    ),
    # Parking keeps the event's key and the error; the event itself stays in
    # the log, where a replay reads it again.
    "park": (
        "INSERT INTO {parked_events} AS p (name, member, stream_id, version, "
        "error, attempts) VALUES (%(name)s, %(member)s, %(stream_id)s, %(version)s, "
        "%(error)s, %(attempts)s) ON CONFLICT (name, member, stream_id, version) "
        "DO UPDATE SET error = EXCLUDED.error, attempts = p.attempts + EXCLUDED.attempts, "
        "parked_at = now()"
    ),
    # A replay that failed keeps the event parked, with the new error, only
    # if it still is: another replay may have taken it meanwhile.
    "repark": (
        "UPDATE {parked_events} SET error = %(error)s, "
        "attempts = attempts + %(attempts)s, parked_at = now() "
        "WHERE name = %(name)s AND member = %(member)s "
        "AND stream_id = %(stream_id)s AND version = %(version)s"
    ),
    "parked": (
        "SELECT p.stream_id, p.version, p.error, p.attempts, p.parked_at, {event_columns} "
        "FROM {parked_events} p JOIN {events} e USING (stream_id, version) "
        "WHERE p.name = %(name)s AND p.member = %(member)s "
        "AND (e.transaction_id, e.position) > (%(transaction_id)s::text::xid8, %(position)s) "
        "ORDER BY e.transaction_id, e.position LIMIT %(limit)s"
    ),
    "parked_count": (
        "SELECT count(*) FROM {parked_events} WHERE name = %(name)s AND member = %(member)s"
    ),
    "unpark": (
        "DELETE FROM {parked_events} WHERE name = %(name)s AND member = %(member)s "
        "AND stream_id = %(stream_id)s AND version = %(version)s"
    ),
    # The oldest open transaction with an id, when events wait behind it:
    # the log shows nothing committed after it started until it ends.
    "log_holder": (
        "SELECT a.pid, a.datname, coalesce(a.application_name, ''), a.state, a.xact_start "
        "FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL "
        "AND a.backend_xid::text::bigint = "
        "mod(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 4294967296) "
        "AND (SELECT max(transaction_id) FROM {events}) "
        ">= pg_snapshot_xmin(pg_current_snapshot()) LIMIT 1"
    ),
    "health_subscriptions": (
        "SELECT s.name, s.member, s.transaction_id::text::bigint, s.position, "
        "s.updated_at, (SELECT count(*) FROM {parked_events} p "
        "WHERE p.name = s.name AND p.member = s.member) "
        "FROM {subscriptions} s ORDER BY s.name, s.member"
    ),
    # A 64-bit key: with 32 bits (hashtext), two of a few thousand
    # subscriptions would share a lock by chance, and one stand by forever.
    "try_subscription_lock": (
        "SELECT pg_try_advisory_lock(hashtextextended(%(key)s, %(seed)s))"
    ),
    # Whether any session holds that lock, asked on a pooled connection
    # without taking it: a standby asks this every poll and opens a session
    # of its own only when the lock is free. Read-only, so a pooled session
    # can never be left holding it. A bigint key shows in pg_locks as its
    # high and low halves (classid, objid) with objsubid 1.
    "subscription_lock_held": (
        "SELECT EXISTS (SELECT 1 FROM pg_locks AS l, "
        "(SELECT hashtextextended(%(key)s, %(seed)s) AS h) AS k "
        "WHERE l.locktype = 'advisory' AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = ((k.h >> 32) & 4294967295)::oid "
        "AND l.objid = (k.h & 4294967295)::oid)"
    ),
    "load_checkpoint": (
        "SELECT transaction_id::text::bigint, position FROM {subscriptions} "
        "WHERE name = %(name)s AND member = %(member)s"
    ),
    "reset_checkpoint": (
        "INSERT INTO {subscriptions} AS s (name, member, transaction_id, position) "
        "VALUES (%(name)s, %(member)s, %(transaction_id)s::text::xid8, %(position)s) "
        "ON CONFLICT (name, member) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, "
        "position = EXCLUDED.position, updated_at = now()"
    ),
    "delete_checkpoint": (
        "DELETE FROM {subscriptions} WHERE name = %(name)s AND member = %(member)s"
    ),
    # Compare-and-set: a checkpoint is created only where none is, and moves
    # only from the position the runner started its batch at; zero rows back
    # mean another runner (or a reset) got there first.
    "create_checkpoint": (
        "INSERT INTO {subscriptions} (name, member, transaction_id, position) "
        "VALUES (%(name)s, %(member)s, %(transaction_id)s::text::xid8, %(position)s) "
        "ON CONFLICT (name, member) DO NOTHING RETURNING 1"
    ),
    "move_checkpoint": _MOVE_CHECKPOINT + " RETURNING 1",
    # The same, committed without waiting for its WAL to reach the disk, for
    # a checkpoint that follows the handler (at least once): a crash may
    # lose the last moves, and the events since come again, which that
    # delivery allows. It saves a disk flush per batch. set_config(..., true)
    # is SET LOCAL: the session's own setting, which appends share, stays.
    "move_checkpoint_relaxed": (
        _MOVE_CHECKPOINT
        + " AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING 1"
    ),
    # The applied migration, the hash partitions of the events table (0:
    # one plain table), and which of the latest layout's tables are missing.
    "schema_version": (
        "SELECT (SELECT max(version) FROM {migrations}), "
        "(SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%(events)s)), "
        "array(SELECT t FROM unnest(%(tables)s::text[]) AS t WHERE to_regclass(t) IS NULL)"
    ),
    # --- routing to partitions (`_routing`) ---
    # Whether the events table exists, the database's encoding, and every
    # partition of the three stream tables in the schema, with its bound:
    # [[name, bound], ...].
    # pg_get_expr with relation 0, since a hash bound names no column: given
    # the partition, it would lock it, and wait behind a VACUUM FULL of it.
    "partition_bounds": (
        "SELECT to_regclass(%(events)s) IS NOT NULL, current_setting('server_encoding'), "
        "array(SELECT ARRAY[c.relname::text, pg_get_expr(c.relpartbound, 0)] "
        "FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent IN (to_regclass(%(streams)s), to_regclass(%(events)s), "
        "to_regclass(%(snapshots)s)) "
        "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s))"
    ),
    # The remainder the server's own partitioning gives each probe id. The
    # ids go as UTF-8 bytes: a pool passed in may use a client encoding in
    # which some of them cannot be written.
    "partition_probe": (
        "SELECT (SELECT r FROM generate_series(0, %(partitions)s::int - 1) AS r "
        "WHERE satisfies_hash_partition(to_regclass(%(events)s), %(partitions)s::int, r, "
        "convert_from(t.id, 'UTF8'))) "
        "FROM unnest(%(ids)s::bytea[]) WITH ORDINALITY AS t(id, ord) ORDER BY t.ord"
    ),
}


@attrs.frozen
class StreamStatements:
    """The statements on one stream's rows, on the parent tables or on one hash partition's."""

    append: dict[str, tuple[bytes, tuple[str, ...]]]
    """Append statements by `append_key`, with positional placeholders and their names."""
    stream_version: bytes
    diagnose: bytes
    stream_first_forwards: bytes
    stream_first_backwards: bytes
    stream_page_forwards: bytes
    stream_page_backwards: bytes
    save_snapshot: bytes
    prune_snapshots: bytes
    load_snapshot: bytes
    load: bytes

    @classmethod
    def for_tables(cls, schema: str, partition: int | None = None) -> StreamStatements:
        """Render them for *schema*'s tables, or for those of hash partition *partition*."""
        check_schema_name(schema)
        return cls(
            append={
                key: _compose_positional(template, schema, partition)
                for key, template in append_templates().items()
            },
            **{
                name: _compose(text, schema, partition)
                for name, text in _STREAM_TEMPLATES.items()
            },
        )


@attrs.frozen
class Statements:
    """The statements of one schema, rendered once."""

    stream: StreamStatements
    """The statements on one stream's rows, on the parent tables."""
    lock_streams: bytes
    read_all_first: bytes
    read_all_after: bytes
    log_page: bytes
    log_behind: bytes
    park: bytes
    repark: bytes
    parked: bytes
    parked_count: bytes
    unpark: bytes
    log_holder: bytes
    health_subscriptions: bytes
    try_subscription_lock: bytes
    subscription_lock_held: bytes
    load_checkpoint: bytes
    reset_checkpoint: bytes
    delete_checkpoint: bytes
    create_checkpoint: bytes
    move_checkpoint: bytes
    move_checkpoint_relaxed: bytes
    schema_version: bytes
    partition_bounds: bytes
    partition_probe: bytes
    events_table: str
    """The qualified name of the events table, as ``to_regclass`` reads it."""
    snapshots_table: str
    """The qualified name of the snapshots table (a key of its saves' lock)."""
    tables: tuple[str, ...]
    """The qualified names of the latest layout's tables, as ``to_regclass`` reads them."""

    @classmethod
    def for_schema(cls, schema: str) -> Statements:
        """Render every statement for *schema* (validated here too)."""
        check_schema_name(schema)
        return cls(
            stream=StreamStatements.for_tables(schema),
            **{name: _compose(text, schema) for name, text in _TEMPLATES.items()},
            events_table=qualified_table(schema, "events"),
            snapshots_table=qualified_table(schema, "snapshots"),
            tables=tuple(qualified_table(schema, table) for table in _LATEST_TABLES),
        )


def routing_params(schema: str) -> dict[str, Any]:
    """Return the parameters of ``partition_bounds`` (and, with ``partitions``, ``partition_probe``)."""
    return {
        "schema": schema,
        **{
            table: qualified_table(schema, table)
            for table in ("streams", "events", "snapshots")
        },
        "ids": [stream_id.encode() for stream_id in PROBE_STREAM_IDS],
    }


def qualified_table(schema: str, table: str) -> str:
    """Return ``"schema"."table"``, quoted as ``to_regclass`` expects."""
    return sql.Identifier(schema, table).as_string(None)


def _utc(value: datetime) -> datetime:
    # The store's own connections run with TimeZone=UTC, so this is a no-op
    # on the hot path; a caller-owned pool may use another zone.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


# The row mappers below build a LogPosition as NamedTuple.__new__ does, but
# without its Python-level call, and test recorded_at's zone inline: 3-8%
# of a 10,000-event stream read (40 interleaved reads each way).
_new_tuple = tuple.__new__

# And a RecordedEvent through its slots' own descriptors, in the order of
# attrs.fields (a test pins it): attrs' __init__ of a frozen class sets each
# field through object.__setattr__, 8% slower on a 10,000-event stream read
# (25 paired reads). The class has no validators or converters to skip.
_new_event = object.__new__
(
    _set_stream_id,
    _set_version,
    _set_position,
    _set_type,
    _set_data,
    _set_metadata,
    _set_event_id,
    _set_schema_version,
    _set_recorded_at,
) = (
    getattr(RecordedEvent, field.name).__set__ for field in attrs.fields(RecordedEvent)
)


def event_from_row(row: Sequence[Any]) -> RecordedEvent:
    """Map a row of the event columns to a `RecordedEvent`."""
    # The stream id first, then the stream event columns (a slice: ~1% of a
    # log read, against a second copy of the mapping).
    return stream_event_from_row(row[0], row[1:])


def stream_event_from_row(stream_id: str, row: Sequence[Any]) -> RecordedEvent:
    """Map a row of the stream event columns (no stream id) to a `RecordedEvent`."""
    event: RecordedEvent = _new_event(RecordedEvent)
    _set_stream_id(event, stream_id)
    _set_version(event, row[0])
    _set_position(event, _new_tuple(LogPosition, (row[1], row[2])))
    _set_type(event, row[3])
    _set_data(event, load_json(row[4]))
    _set_metadata(event, load_json(row[5]))
    _set_event_id(event, row[6])
    _set_schema_version(event, row[7])
    _set_recorded_at(event, at if (at := row[8]).tzinfo is UTC else at.astimezone(UTC))
    return event


def snapshot_from_row(row: Sequence[Any]) -> Snapshot:
    """Map a ``load_snapshot`` row to a `Snapshot`."""
    return Snapshot(
        stream_id=row[0],
        version=row[1],
        type=row[2],
        schema_version=row[3],
        state=load_json(row[4]),
        recorded_at=_utc(row[5]),
    )


def load_rows(
    stream_id: str, rows: Sequence[Sequence[Any]]
) -> tuple[Snapshot | None, tuple[RecordedEvent, ...]]:
    """Split the rows of the ``load`` statement into the snapshot and the events."""
    snapshot = None
    events = []
    for row in rows:
        if row[9] == 0:
            snapshot = Snapshot(
                stream_id=stream_id,
                version=row[0],
                type=row[3],
                schema_version=row[7],
                state=load_json(row[4]),
                recorded_at=_utc(row[8]),
            )
        else:
            events.append(stream_event_from_row(stream_id, row))
    return snapshot, tuple(events)


def log_page_from_rows(rows: Sequence[Sequence[Any]], limit: int) -> LogPage:
    """Map the rows of ``log_page`` (read with *limit*): the events, then the marker of where the scan ended."""
    if not rows:
        return LogPage([], None, at_end=True)
    marker = rows[-1]
    return LogPage(
        [event_from_row(row) for row in rows[:-1]],
        _new_tuple(LogPosition, (marker[2], marker[3])),
        at_end=marker[-1] < limit,
    )


def parked_from_rows(rows: Sequence[Sequence[Any]]) -> list[ParkedEvent]:
    """Map the rows of ``parked``: the parking's columns, then the event's."""
    return [
        ParkedEvent(event_from_row(row[5:]), row[2], row[3], _utc(row[4]))
        for row in rows
    ]


def holder_from_rows(rows: Sequence[Sequence[Any]]) -> LogHolder | None:
    """Map the row of ``log_holder``, if any."""
    if not rows:
        return None
    pid, database, application_name, state, xact_start = rows[0]
    return LogHolder(
        pid,
        database,
        application_name,
        state,
        None if xact_start is None else _utc(xact_start),
    )


def subscriptions_from_rows(
    rows: Sequence[Sequence[Any]],
) -> tuple[SubscriptionHealth, ...]:
    """Map the rows of ``health_subscriptions``."""
    return tuple(
        SubscriptionHealth(
            name, member, str(LogPosition(tx, position)), _utc(at), int(parked)
        )
        for name, member, tx, position, at, parked in rows
    )


def checkpoint_statement(
    statements: Statements, expected: LogPosition | None, *, durable: bool = True
) -> bytes:
    """
    Return the compare-and-set that moves a checkpoint from *expected*.

    Not *durable*: a move commits without waiting for the disk (the
    creation of a checkpoint always waits).
    """
    if expected is None:
        return statements.create_checkpoint
    return statements.move_checkpoint if durable else statements.move_checkpoint_relaxed


def checkpoint_from_rows(rows: Sequence[Sequence[Any]]) -> LogPosition | None:
    """Map the row of ``load_checkpoint``, if any, to its position."""
    return _new_tuple(LogPosition, (rows[0][0], rows[0][1])) if rows else None


def result_from_rows(stream_id: str, rows: list[tuple[Any, ...]]) -> AppendResult:
    """Map the rows an append statement returned to its `AppendResult`."""
    rows.sort()  # by version: RETURNING promises no order
    return AppendResult(
        stream_id, rows[-1][0], tuple(LogPosition(row[1], row[2]) for row in rows)
    )


def clashing_append(
    appends: Sequence[EncodedAppend], detail: str | None
) -> EncodedAppend:
    """
    Return the append whose ``(stream_id, version)`` key a unique violation names.

    PostgreSQL's detail reads ``Key (stream_id, version)=(s-1, 3) already
    exists.``; without it (a role that may not see the values), the first.
    """
    # The stream id is printed as it is, commas and all: the key's version
    # is the last number before the closing parenthesis.
    match = _CLASHING_KEY.search(detail or "")
    stream_id = match.group(1) if match else None
    return next((a for a in appends if a.stream_id == stream_id), appends[0])


_CLASHING_KEY: Final = re.compile(
    r"\(stream_id, version\)=\((.*), \d+\) already exists", re.DOTALL
)


_LATEST_TABLES: Final = (
    "streams",
    "events",
    "snapshots",
    "subscriptions",
    "parked_events",
)
"""The tables of the latest migration, the migrations table apart."""


def health_params(statements: Statements) -> dict[str, Any]:
    """Return the parameters of ``schema_version``."""
    return {"events": statements.events_table, "tables": list(statements.tables)}


def layout_from_rows(
    rows: Sequence[Sequence[Any]],
) -> tuple[int | None, int | None, tuple[str, ...]]:
    """Return the schema version, partition count (1: plain) and missing tables of ``schema_version``."""
    if not rows:
        return None, None, ()
    version, partitions, missing = rows[0]
    return (
        version,
        None if partitions is None else max(int(partitions), 1),
        tuple(missing or ()),
    )


def tables_missing(missing: Sequence[str], version: int) -> str:
    """Say that the tables *missing* are gone from a schema that records migration *version*."""
    return (
        f"the schema records migration {version}, but its tables {', '.join(missing)} "
        "are missing (dropped?): calls that need them fail, and migrate() does not "
        "recreate what a recorded migration made"
    )


def snapshot_params(snapshot: EncodedSnapshot, keep: int, table: str) -> dict[str, Any]:
    """
    Return the parameters of ``save_snapshot`` and ``prune_snapshots``.

    *table*: the snapshots table's qualified name (`Statements.snapshots_table`),
    the first key of the lock that serialises a stream's saves.
    """
    return {
        "table": table,
        "stream_id": snapshot.stream_id,
        "version": snapshot.version,
        "type": snapshot.type,
        "schema_version": snapshot.schema_version,
        "state": snapshot.state,
        "keep": keep,
    }


@attrs.frozen
class StoredId:
    """Where an event id of a refused append is stored already."""

    stream_id: str
    version: int
    event_id: uuid.UUID
    position: LogPosition


def diagnosis_from_rows(rows: Sequence[Sequence[Any]]) -> tuple[int, list[StoredId]]:
    """Return the stream's actual version and the stored ids, in batch order."""
    actual = int(rows[0][0])
    stored = [
        StoredId(row[1], row[2], row[3], LogPosition(row[4], row[5]))
        for row in rows
        if row[1] is not None
    ]
    return actual, stored


# --- migrations -----------------------------------------------------------

MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (
        1,
        "streams, events, snapshots",
        """
        CREATE TABLE {streams} (
            stream_id text PRIMARY KEY,
            version bigint NOT NULL CHECK (version >= 0)
        ) WITH (
            -- Every append updates its stream's row: free space on each page
            -- keeps those updates HOT, and frequent vacuuming keeps a hot
            -- stream's row from trailing a chain of dead versions.
            fillfactor = 50,
            autovacuum_vacuum_scale_factor = 0,
            autovacuum_vacuum_threshold = 1000
        );
        CREATE TABLE {events} (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            stream_id text NOT NULL,
            version bigint NOT NULL CHECK (version >= 1),
            event_id uuid NOT NULL,
            type text NOT NULL,
            schema_version integer NOT NULL,
            data jsonb NOT NULL,
            metadata jsonb NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_event_id_key UNIQUE (event_id),
            CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version)
        );
        CREATE INDEX events_log_idx ON {events} (transaction_id, position);
        CREATE TABLE {snapshots} (
            stream_id text NOT NULL,
            version bigint NOT NULL,
            type text NOT NULL,
            schema_version integer NOT NULL,
            state jsonb NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (stream_id, version)
        );
        """,
    ),
    (
        2,
        "partition-ready keys: (stream_id, version), (stream_id, event_id)",
        # Every key leads with stream_id, so the tables can be partitioned
        # and distributed by stream; event ids become unique per stream.
        # LogPosition is (transaction_id, position), which the log index
        # serves: position needs no index of its own.
        """
        ALTER TABLE {events} DROP CONSTRAINT events_pkey;
        ALTER TABLE {events} DROP CONSTRAINT events_event_id_key;
        ALTER TABLE {events} DROP CONSTRAINT events_stream_id_version_key;
        ALTER TABLE {events} ADD CONSTRAINT events_pkey PRIMARY KEY (stream_id, version);
        ALTER TABLE {events}
            ADD CONSTRAINT events_stream_id_event_id_key UNIQUE (stream_id, event_id);
        """,
    ),
    (
        3,
        "subscriptions: checkpoints, parked events",
        # One row per subscription (and per member of a consumer group):
        # the last log position it handled or skipped; and the events its
        # handler kept failing on, with the error, under OnError.PARK.
        """
        CREATE TABLE {subscriptions} (
            name text NOT NULL,
            member text NOT NULL DEFAULT '',
            transaction_id xid8 NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (name, member)
        );
        CREATE TABLE {parked_events} (
            name text NOT NULL,
            member text NOT NULL,
            stream_id text NOT NULL,
            version bigint NOT NULL,
            error text NOT NULL,
            attempts integer NOT NULL,
            parked_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (name, member, stream_id, version)
        );
        """,
    ),
)
"""Versioned migrations: (version, description, statements). Append only; never edit one."""

LATEST_MIGRATION: Final = MIGRATIONS[-1][0]


def schema_mismatch(stored: int, latest: int) -> str:
    """Say how a schema at version *stored* differs from this code's *latest*, and what to do."""
    if stored < latest:
        return (
            f"the schema is at version {stored}; this code needs {latest}: "
            "run migrate()"
        )
    return (
        f"the schema is at version {stored}, newer than this code's {latest}: "
        "upgrade eventstore"
    )


PARTITIONED_LAYOUT_MIGRATION: Final = 2
"""`partitioned_layout` makes what migrations 1 to this one make; later ones run as they are."""

# The layout migrations 1 and 2 make, hash-partitioned by stream_id: a new
# schema with `partitions=N` is created like this at once (a table cannot be
# partitioned in place). Storage parameters belong to the partitions, as a
# partitioned table has no storage of its own.
_PARTITIONED_TABLES = """
CREATE TABLE {streams} (
    stream_id text NOT NULL,
    version bigint NOT NULL CHECK (version >= 0),
    CONSTRAINT streams_pkey PRIMARY KEY (stream_id)
) PARTITION BY HASH (stream_id);
CREATE TABLE {events} (
    position bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    event_id uuid NOT NULL,
    type text NOT NULL,
    schema_version integer NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, version),
    CONSTRAINT events_stream_id_event_id_key UNIQUE (stream_id, event_id)
) PARTITION BY HASH (stream_id);
CREATE INDEX events_log_idx ON {events} (transaction_id, position);
CREATE TABLE {snapshots} (
    stream_id text NOT NULL,
    version bigint NOT NULL,
    type text NOT NULL,
    schema_version integer NOT NULL,
    state jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, version)
) PARTITION BY HASH (stream_id);
"""

_PARTITION = (
    "CREATE TABLE {partition} PARTITION OF {parent} "
    "FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder}){options};"
)
_STREAMS_OPTIONS = (
    # As migration 1 gives the plain streams table: room for HOT updates.
    " WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, "
    "autovacuum_vacuum_threshold = 1000)"
)

MIN_PARTITIONS: Final = 2
MAX_PARTITIONS: Final = 1024
PARTITIONS_MIN_SERVER: Final = 170000
LAYOUT_LOCKS_PER_PARTITION: Final = 27
"""Locks creating the layout takes per partition (its three tables, their
indexes and TOAST tables, and their types), counted in ``pg_locks`` on
PostgreSQL 18 at N = 8 and 32."""
"""PostgreSQL 17 is the first to allow an identity column on a partitioned table."""


def partitioned_layout(schema: str, partitions: int) -> bytes:
    """Return the statements that create the latest layout in *partitions* hash partitions."""
    check_schema_name(schema)
    tables = {
        name: sql.Identifier(schema, name)
        for name in ("streams", "events", "snapshots")
    }
    statements = [sql.SQL(_PARTITIONED_TABLES).format(**tables)]
    statements.extend(
        sql.SQL(_PARTITION).format(
            partition=sql.Identifier(schema, f"{name}_p{remainder}"),
            parent=parent,
            modulus=sql.Literal(partitions),
            remainder=sql.Literal(remainder),
            options=sql.SQL(_STREAMS_OPTIONS if name == "streams" else ""),
        )
        for name, parent in tables.items()
        for remainder in range(partitions)
    )
    return sql.SQL("\n").join(statements).as_bytes(None)


_EVENTS_TABLE = re.compile(r"events(?:_p\d+)?")
_STREAM_VERSION_KEY = re.compile(r"events(?:_p\d+)?_pkey")


def is_stream_version_clash(table: str | None, constraint: str | None) -> bool:
    """
    Tell whether a unique violation is the ``(stream_id, version)`` backstop.

    On a partitioned table PostgreSQL names the partition and its own index
    (``events_p3``, ``events_p3_pkey``), not the parent's.
    """
    return bool(
        table
        and constraint
        and _EVENTS_TABLE.fullmatch(table)
        and _STREAM_VERSION_KEY.fullmatch(constraint)
    )


def migration_statements(schema: str) -> dict[str, bytes]:
    """Return the statements `migrate` runs, for *schema*."""
    check_schema_name(schema)
    return {
        # Another process's migration may take minutes (migration 2 on a
        # large table): waiting for it is no statement or lock wait that
        # the pool's limits are meant for, so the lock is awaited with
        # none, and the session's own limits are put back after it.
        "limits": b"SELECT current_setting('statement_timeout'), "
        b"current_setting('lock_timeout')",
        "lock": b"SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        # CREATE ... IF NOT EXISTS needs the CREATE privilege even when the
        # object exists: a role without it may migrate a schema that needs
        # nothing (at start-up, say), so the DDL runs only when the table
        # of migrations is missing.
        "migrations_exist": b"SELECT to_regclass(%s) IS NOT NULL",
        "create_schema": sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
        .format(sql.Identifier(schema))
        .as_bytes(None),
        "create_migrations": _compose(
            "CREATE TABLE IF NOT EXISTS {migrations} ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())",
            schema,
        ),
        "applied": _compose(
            "SELECT coalesce(max(version), 0) FROM {migrations}", schema
        ),
        "record": _compose(
            "INSERT INTO {migrations} (version, description) VALUES (%s, %s)", schema
        ),
        "partitions": _compose(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)", schema
        ),
        **{
            f"migration_{version}": _compose(text, schema)
            for version, _, text in MIGRATIONS
        },
    }


MIGRATION_LOCK_NAMESPACE: Final = 0x45_56_53  # "EVS": our advisory-lock key space
SUBSCRIPTION_LOCK_SEED: Final = 0x45_56_42  # "EVB": the hash seed of runners' lock keys

# A lock's session releases it before it closes: a backend ends (and drops
# its locks) a moment after its client hangs up, and a standby asking in
# that moment would find the lock still held. The session holds no other.
SUBSCRIPTION_UNLOCK: Final = b"SELECT pg_advisory_unlock_all()"
# A handler's session state, undone before its connection goes back to the
# pool: its role and settings back to the connection's own (its startup
# options; RESET ALL leaves the role and the session authorization alone),
# its channels and its session advisory locks gone. Five statements in one
# message (no parameters, so psycopg sends it as a simple query).
RESET_SESSION: Final = (
    b"RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; UNLISTEN *; "
    b"SELECT pg_advisory_unlock_all()"
)
# The transaction a handler was given, told from one begun after it ended.
TRANSACTION_ID: Final = b"SELECT pg_current_xact_id_if_assigned()::text"
# A dedicated session (a subscription's lock, its LISTEN) sits idle by design.
NO_IDLE_SESSION_TIMEOUT: Final = b"SET idle_session_timeout = 0"
IDLE_SESSION_TIMEOUT_SINCE: Final = 140000  # the server version that has the setting
LOCK_PROBE: Final = b"SELECT 1"  # a lock's session answers: it, and the lock, live
# For the rest of a transaction: its statements, lock waits included, are
# cut off by the server after these many milliseconds (both parameters).
LOCAL_TIMEOUTS: Final = (
    b"SELECT set_config('statement_timeout', %s, true), "
    b"set_config('lock_timeout', %s, true)"
)


def notify_channel(schema: str) -> str:
    """Return the channel a schema's appends notify: short, whatever the schema's length."""
    return f"eventstore_{zlib.crc32(schema.encode('utf-8')):08x}"


def listen_statement(schema: str) -> bytes:
    """Return the LISTEN statement of *schema*'s channel."""
    return (
        sql.SQL("LISTEN {}")
        .format(sql.Identifier(notify_channel(schema)))
        .as_bytes(None)
    )


NOTIFY: Final = b"SELECT pg_notify(%s, '')"
"""Wakes the listeners of a channel, at the commit of the statement's transaction."""


def subscription_lock_key(schema: str, name: str, member: str) -> str:
    """Return the text hashed (64 bits, `SUBSCRIPTION_LOCK_SEED`) into a subscription's advisory-lock key."""
    return f"{schema}/{name}/{member}"
