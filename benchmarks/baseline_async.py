"""
The async plain-psycopg baseline: `benchmarks.baseline` on `psycopg.AsyncConnection`.

The same table and the same rendered statements (a `Baseline` made on a
sync connection creates the table and renders them), run the same way:
autocommit connections, every statement prepared and run on a kept cursor,
one ``INSERT … RETURNING position`` per append, one ``COPY`` per 10-event
batch, reads through binary cursors into plain tuples with jsonb decoded by
the function eventstore uses. Only the I/O is async: each round trip is
awaited on the event loop, as an asyncio service would do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads

from benchmarks.baseline import SESSION_SETUP, Baseline, row
from eventstore._json import load_json

GUARANTEES = (
    "the baseline's statements, table and guarantees (above), awaited on "
    "psycopg.AsyncConnection / psycopg_pool.AsyncConnectionPool on the "
    "workload's event loop; reads decode jsonb with the same function"
)
"""What the async baseline does, for the report's notes."""


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    """Open an autocommit connection that decodes jsonb as the sync baseline does."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await _configure(conn)
    return conn


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(load_json, conn)
    await conn.execute(SESSION_SETUP)


def pool(dsn: str, size: int) -> psycopg_pool.AsyncConnectionPool[Any]:
    """Return an unopened pool of *size* autocommit connections, as the 8-thread baseline's."""
    return psycopg_pool.AsyncConnectionPool(
        dsn,
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True},
        configure=_configure,
        open=False,
    )


async def append_one(
    cursor: psycopg.AsyncCursor[Any],
    baseline: Baseline,
    stream_id: str,
    version: int,
    data: dict[str, Any],
) -> int:
    """Insert one event; return its position."""
    await cursor.execute(
        baseline.insert_one, row(stream_id, version, data), prepare=True
    )
    result = await cursor.fetchone()
    assert result is not None
    return int(result[0])


async def append_batch(
    cursor: psycopg.AsyncCursor[Any],
    baseline: Baseline,
    stream_id: str,
    first_version: int,
    datas: Sequence[dict[str, Any]],
) -> None:
    """Insert a batch of events with consecutive versions with one COPY."""
    async with cursor.copy(baseline.copy) as copy:
        for offset, data in enumerate(datas):
            await copy.write_row(row(stream_id, first_version + offset, data))


async def read_stream(
    cursor: psycopg.AsyncCursor[Any], baseline: Baseline, stream_id: str
) -> list[tuple[Any, ...]]:
    """Read a whole stream in one query (a binary cursor), as the sync baseline does."""
    await cursor.execute(baseline.read_stream, (stream_id,), prepare=True)
    return await cursor.fetchall()


async def read_log(
    cursor: psycopg.AsyncCursor[Any],
    baseline: Baseline,
    after: int,
    page: int,
    most: int,
) -> tuple[int, bool]:
    """Page through the log after *after*, as `benchmarks.reads.read_log_baseline`."""
    count = 0
    ordered = True
    while count < most:
        await cursor.execute(baseline.read_page, (after, page), prepare=True)
        rows = await cursor.fetchall()
        count += len(rows)
        if rows:
            ordered = ordered and after < rows[0][0]
            after = rows[-1][0]
        if len(rows) < page:
            break
    return count, ordered
