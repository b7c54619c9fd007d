# Generated from _queries_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""The statements' I/O, one connection at a time: run a query, in a transaction when the connection needs one."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final, TypeVar

import psycopg

from eventstore.errors import StoreTimeoutError
from eventstore.postgres._deadline import CUT_MARGIN, CutOff
from eventstore.postgres._pool import millis
from eventstore.postgres._sql import LOCAL_TIMEOUTS

__all__ = [
    "CHUNK_ROWS",
    "Row",
    "execute",
    "fetch_streamed",
    "fetchall",
    "fetchall_within",
    "in_transaction",
]

_Connection = psycopg.Connection[Any]
Row = tuple[Any, ...]
_T = TypeVar("_T")

CHUNK_ROWS: Final = 100
"""Rows per chunk of a streamed result (50 to 200 measured the same)."""

_CHUNKED: Final = psycopg.capabilities.has_stream_chunked()
"""Whether libpq streams results in chunks (version 17 and later)."""


def in_transaction(conn: _Connection) -> AbstractContextManager[Any]:
    # A statement on an autocommit connection is its own transaction; a
    # caller-owned pool may lend connections that are not autocommit.
    return nullcontext() if conn.autocommit else conn.transaction()


def fetchall(conn: _Connection, query: bytes, params: Any) -> list[Row]:
    # Binary results: psycopg parses ints, UUIDs and timestamps faster from
    # their binary forms (~1.5 us per event row here).
    with in_transaction(conn):
        cursor = conn.execute(query, params, prepare=True, binary=True)
        return cursor.fetchall()


def fetchall_within(
    conn: _Connection, query: bytes, params: Any, seconds: float
) -> list[Row]:
    """
    Run *query* as `fetchall` does, cut off after *seconds*, lock waits included.

    For `health`, which must answer within its timeout even while a
    migration holds a table it reads, or while the server does not answer
    at all. The server keeps to *seconds* by statement and lock timeouts set
    for the statement's own transaction, in the same pipeline (one round
    trip more than `fetchall`, for BEGIN and the settings); the client shuts
    the connection down `CUT_MARGIN` later if no answer came (`CutOff`).

    Raises:
        psycopg.errors.QueryCanceled: The statement ran out of time.
        psycopg.errors.LockNotAvailable: It waited for a lock that long.
        StoreTimeoutError: No answer came at all; the connection is shut
            down, and the pool discards it.
    """
    limit = str(millis(seconds))
    with CutOff(conn, seconds + CUT_MARGIN) as cut:
        try:
            with conn.pipeline(), conn.transaction():
                conn.execute(LOCAL_TIMEOUTS, (limit, limit), prepare=True)
                cursor = conn.execute(query, params, prepare=True, binary=True)
                return cursor.fetchall()
        except psycopg.Error as exc:
            if cut.fired:
                raise StoreTimeoutError(
                    f"PostgreSQL sent no answer within {seconds:g} s"
                ) from exc
            raise


def fetch_streamed(
    conn: _Connection, query: bytes, params: Any, map_row: Callable[[Row], _T]
) -> list[_T]:
    """
    Run *query* and map its rows with *map_row* as they arrive, chunk by chunk.

    A long page is mapped while the server still produces and sends the
    rest of it, on the other core, instead of after its last row: 1,000
    rows of the log in 9.3 us a row against 11.7 for `fetchall` and
    mapping after it, 6.1 against 9.5 for 2,000. A streamed statement is
    not prepared, so it costs about 130 us more in all, which a page of
    300 rows or more earns back (`streams`). With a libpq older than 17,
    which cannot stream in chunks, the rows are fetched whole, then mapped.
    """
    if not _CHUNKED:
        return [map_row(row) for row in fetchall(conn, query, params)]
    with in_transaction(conn):
        cursor = conn.cursor(binary=True)
        return [map_row(row) for row in cursor.stream(query, params, size=CHUNK_ROWS)]


def execute(conn: _Connection, query: bytes, params: Any) -> None:
    with in_transaction(conn):
        conn.execute(query, params, prepare=True)
