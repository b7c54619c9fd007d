"""
The plain-psycopg baseline: the fastest straightforward code doing each job.

One table per workload with the keys of eventstore's schema v2: primary key
``(stream_id, version)``, ``UNIQUE (stream_id, event_id)``, and an index on
the identity ``position``, by which its global-log read pages (v2's log
index is ``(transaction_id, position)``; the baseline keeps no commit-safe
order, so it has no transaction id). Event ids are UUIDv7, as eventstore's.
Autocommit connections; every statement prepared (``prepare=True``) and run
on a kept cursor; one statement per append; a 10-event batch is one ``COPY``
(on this machine 9,200 events/s against 7,300 for a prepared 10-row
``INSERT … VALUES`` and 6,800 for ``INSERT … SELECT unnest(…)``, medians of
7 interleaved runs); reads through binary cursors into plain tuples, jsonb
decoded by the same function eventstore uses, sessions in UTC as
eventstore's, a stream's read without the stream id its caller knows. The version a writer expects
is enforced only by the primary key: it skips what eventstore does on top
(expected-version check against a streams table, idempotent retries by
event id, commit-safe global-log order, argument and JSON validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_loads

from eventstore._ids import new_event_id
from eventstore._json import load_json

_TABLE = (
    "CREATE TABLE {table} ("
    " position bigint GENERATED ALWAYS AS IDENTITY,"
    " stream_id text NOT NULL, version bigint NOT NULL, event_id uuid NOT NULL,"
    " type text NOT NULL, schema_version integer NOT NULL DEFAULT 1,"
    " data jsonb NOT NULL, metadata jsonb NOT NULL,"
    " recorded_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (stream_id, version), UNIQUE (stream_id, event_id))"
)
_LOG_INDEX = "CREATE INDEX ON {table} (position)"
_COLUMNS = "stream_id, version, event_id, type, data, metadata"
_READ_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, data, metadata, "
    "recorded_at"
)
# A stream's read leaves out the stream id, which its caller knows, as
# eventstore's does.
_STREAM_READ_COLUMNS = (
    "position, version, event_id, type, schema_version, data, metadata, recorded_at"
)

SESSION_SETUP = "SET TimeZone = 'UTC'"
"""Timestamps arrive in UTC and need no zone conversion per row, as on eventstore's sessions."""


def configure(conn: psycopg.Connection[Any]) -> None:
    """Set a baseline connection up as eventstore sets its own: UTC, and its JSON decoder."""
    # The decoding eventstore uses (eventstore._json), given the jsonb
    # loader's bytes directly: json.loads minus its encoding sniffing and
    # whitespace regexes. Any plain-psycopg program can do the same.
    set_json_loads(load_json, conn)
    conn.execute(SESSION_SETUP)


class Baseline:
    """The baseline's statements for one table in *schema*."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        configure(conn)
        table = sql.Identifier(schema, "events")
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_TABLE).format(table=table))
        conn.execute(sql.SQL(_LOG_INDEX).format(table=table))
        self.table = table

        def render(text: str) -> bytes:
            return sql.SQL(text).format(table=table).as_bytes(conn)

        self.insert_one = render(
            f"INSERT INTO {{table}} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "RETURNING position"
        )
        self.copy = render(f"COPY {{table}} ({_COLUMNS}) FROM STDIN")
        self.read_stream = render(
            f"SELECT {_STREAM_READ_COLUMNS} FROM {{table}} WHERE stream_id = %s "
            "ORDER BY version"
        )
        self.read_page = render(
            f"SELECT {_READ_COLUMNS} FROM {{table}} WHERE position > %s "
            "ORDER BY position LIMIT %s"
        )
        self.count_stream = render(
            "SELECT count(*), coalesce(max(version), 0) FROM {table} WHERE stream_id = %s"
        )
        self.count_all = render("SELECT count(*) FROM {table}")


GUARANTEES = (
    "plain psycopg on a table with schema v2's keys (primary key (stream_id, "
    "version), UNIQUE (stream_id, event_id)) and an index on its identity "
    "position; one prepared INSERT per append, one COPY per batch. It "
    "guarantees only that a (stream_id, version) is stored once: no "
    "expected-version check beyond that key, no idempotent re-send (a re-sent "
    "append is refused by the key), no validation; its log is ordered by the "
    "identity position, which is drawn at insert and not at commit, so a reader "
    "that checkpoints a position can skip an event committed late by a "
    "concurrent writer. Reads decode jsonb to dicts in plain tuples."
)
"""What the baseline does and does not guarantee, for the report's notes."""

METADATA = {"correlation_id": "7d3c1f0e-5b8a-4c1e-9f2a-0b6d8e4a1c55"}
"""The metadata of every event, on both sides."""


def row(stream_id: str, version: int, data: dict[str, Any]) -> tuple[Any, ...]:
    """The parameters of one event row."""
    return (
        stream_id,
        version,
        new_event_id(),
        "bench.event",
        Jsonb(data),
        Jsonb(METADATA),
    )


def append_one(
    cursor: psycopg.Cursor[Any],
    baseline: Baseline,
    stream_id: str,
    version: int,
    data: dict[str, Any],
) -> int:
    """Insert one event; return its position."""
    cursor.execute(baseline.insert_one, row(stream_id, version, data), prepare=True)
    result = cursor.fetchone()
    assert result is not None
    return int(result[0])


def append_batch(
    cursor: psycopg.Cursor[Any],
    baseline: Baseline,
    stream_id: str,
    first_version: int,
    datas: Sequence[dict[str, Any]],
) -> None:
    """Insert a batch of events with consecutive versions with one COPY."""
    with cursor.copy(baseline.copy) as copy:
        for offset, data in enumerate(datas):
            copy.write_row(row(stream_id, first_version + offset, data))
