# Generated from _queries_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""The statements' I/O, one connection at a time: run a query, in a transaction when the connection needs one."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import psycopg

__all__ = ["Row", "execute", "fetchall", "in_transaction"]

_Connection = psycopg.Connection[Any]
Row = tuple[Any, ...]


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


def execute(conn: _Connection, query: bytes, params: Any) -> None:
    with in_transaction(conn):
        conn.execute(query, params, prepare=True)
