"""The statements' I/O, one connection at a time: run a query, in a transaction when the connection needs one."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import psycopg

__all__ = ["Row", "execute", "fetchall", "in_transaction"]

_Connection = psycopg.AsyncConnection[Any]
Row = tuple[Any, ...]


def in_transaction(conn: _Connection) -> AbstractAsyncContextManager[Any]:
    # A statement on an autocommit connection is its own transaction; a
    # caller-owned pool may lend connections that are not autocommit.
    return nullcontext() if conn.autocommit else conn.transaction()


async def fetchall(conn: _Connection, query: bytes, params: Any) -> list[Row]:
    # Binary results: psycopg parses ints, UUIDs and timestamps faster from
    # their binary forms (~1.5 us per event row here).
    async with in_transaction(conn):
        cursor = await conn.execute(query, params, prepare=True, binary=True)
        return await cursor.fetchall()


async def execute(conn: _Connection, query: bytes, params: Any) -> None:
    async with in_transaction(conn):
        await conn.execute(query, params, prepare=True)
