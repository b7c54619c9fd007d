"""`CutOff` shuts a connection down only while the statement it guards is under way."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from eventstore.postgres._deadline import AsyncCutOff, CutOff

pytestmark = pytest.mark.postgres


def test_a_late_statement_is_cut_and_an_ended_block_is_left_alone(
    postgres_dsn: str,
) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        with CutOff(conn, 0.05) as cut:
            conn.execute("SELECT 1")
        time.sleep(0.2)  # past the deadline: the block has ended
        assert not cut.fired
        assert conn.execute("SELECT 2").fetchone() == (2,)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError), CutOff(conn, 0.2) as late:
            conn.execute("SELECT pg_sleep(5)")
        assert late.fired
        assert time.monotonic() - started < 2.0
        assert conn.broken


async def test_async_a_late_statement_is_cut_and_an_ended_block_is_left_alone(
    postgres_dsn: str,
) -> None:
    conn = await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True)
    try:
        with AsyncCutOff(conn, 0.05) as cut:
            await conn.execute("SELECT 1")
        await asyncio.sleep(0.2)
        assert not cut.fired
        assert await (await conn.execute("SELECT 2")).fetchone() == (2,)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError), AsyncCutOff(conn, 0.2) as late:
            await conn.execute("SELECT pg_sleep(5)")
        assert late.fired
        assert time.monotonic() - started < 2.0
        assert conn.broken
    finally:
        await conn.close()
