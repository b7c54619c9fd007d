"""A network that stops answering: the store's calls still end, in a time the store bounds."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import psycopg_pool
import pytest

from eventstore import HealthReport, HealthStatus, StoreUnavailableError
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from tests.network_faults import BlackholeProxy

pytestmark = pytest.mark.postgres

_POOL_SIZE = 3


def _terminate(dsn: str, pid: int) -> None:
    """End backend *pid* (from a connection that bypasses the proxy), and wait until it is gone."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still running after 10 s")


def _first_in_line(pool: psycopg_pool.ConnectionPool[Any]) -> int:
    """Return the pid of the connection the pool lends next: every one taken, given back in order."""
    conns = [pool.getconn() for _ in range(_POOL_SIZE)]
    pids = [conn.info.backend_pid for conn in conns]
    for conn in conns:
        pool.putconn(conn)
    return int(pids[0])


async def _first_in_line_async(pool: psycopg_pool.AsyncConnectionPool[Any]) -> int:
    conns = [await pool.getconn() for _ in range(_POOL_SIZE)]
    pids = [conn.info.backend_pid for conn in conns]
    for conn in conns:
        await pool.putconn(conn)
    return int(pids[0])


def test_a_read_whose_connection_broke_ends_while_the_idle_ones_stop_answering(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # The read's connection is ended by the server; the pool's two others sit
    # behind a network that drops everything, so checking them would wait
    # as long as TCP does: without keepalives on a proxy, for ever.
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    pool = psycopg_pool.ConnectionPool(
        proxy.dsn,
        min_size=_POOL_SIZE,
        max_size=_POOL_SIZE,
        kwargs={"autocommit": True},
        open=True,
    )
    try:
        pool.wait(10.0)
        store = PostgresEventStore(
            pool=pool, schema=postgres_schema, connect_timeout=2.0
        )
        assert store.stream_version("s") == 0
        pid = _first_in_line(pool)
        proxy.drop()
        _terminate(postgres_dsn, pid)
        outcome: list[BaseException] = []

        def read() -> None:
            try:
                store.stream_version("s")
            except BaseException as exc:  # the thread's outcome
                outcome.append(exc)

        started = time.monotonic()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30.0)
        elapsed = time.monotonic() - started
        assert not reader.is_alive(), "the read still waits on the pool's check"
        # The check's wait and the direct ask's, each connect_timeout + 1 s.
        assert elapsed < 8.0, f"took {elapsed:.2f} s"
        assert len(outcome) == 1
        assert isinstance(outcome[0], StoreUnavailableError)
        store.close()
    finally:
        proxy.close()  # ends the check, which then gives the pool its connections
        pool.close()


async def test_an_async_read_whose_connection_broke_ends_while_the_idle_ones_stop_answering(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    pool = psycopg_pool.AsyncConnectionPool(
        proxy.dsn,
        min_size=_POOL_SIZE,
        max_size=_POOL_SIZE,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open()
    try:
        await pool.wait(10.0)
        store = AsyncPostgresEventStore(
            pool=pool, schema=postgres_schema, connect_timeout=2.0
        )
        assert await store.stream_version("s") == 0
        pid = await _first_in_line_async(pool)
        proxy.drop()
        _terminate(postgres_dsn, pid)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            # The test's own limit, far above the store's: a hang fails it.
            await asyncio.wait_for(store.stream_version("s"), 30.0)
        elapsed = time.monotonic() - started
        assert elapsed < 8.0, f"took {elapsed:.2f} s"
        await store.close()  # cancels the check still waiting on its connections
    finally:
        proxy.close()
        await pool.close()


_HEALTH_TIMEOUT = 0.5


def test_health_answers_within_its_timeout_when_the_server_sends_nothing(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # The proxy still takes every byte (TCP sees a live peer: data and
    # keepalives acknowledged), so only the client's own deadline ends the wait.
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    pool = psycopg_pool.ConnectionPool(
        proxy.dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    )
    try:
        pool.wait(10.0)
        store = PostgresEventStore(
            pool=pool, schema=postgres_schema, health_timeout=_HEALTH_TIMEOUT
        )
        assert store.health().status is HealthStatus.OK
        proxy.drop()
        reports: list[HealthReport] = []
        started = time.monotonic()
        checker = threading.Thread(
            target=lambda: reports.append(store.health()), daemon=True
        )
        checker.start()
        checker.join(30.0)
        elapsed = time.monotonic() - started
        assert not checker.is_alive(), "health() still waits for the server"
        assert elapsed < _HEALTH_TIMEOUT + 2.0, f"took {elapsed:.2f} s"
        assert reports[0].status is HealthStatus.UNAVAILABLE
        assert reports[0].error is not None
        assert "no answer within 0.5 s" in reports[0].error
        store.close()
    finally:
        proxy.close()
        pool.close()


async def test_async_health_answers_within_its_timeout_when_the_server_sends_nothing(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    pool = psycopg_pool.AsyncConnectionPool(
        proxy.dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    try:
        await pool.wait(10.0)
        store = AsyncPostgresEventStore(
            pool=pool, schema=postgres_schema, health_timeout=_HEALTH_TIMEOUT
        )
        assert (await store.health()).status is HealthStatus.OK
        proxy.drop()
        started = time.monotonic()
        report = await asyncio.wait_for(store.health(), 30.0)
        elapsed = time.monotonic() - started
        assert elapsed < _HEALTH_TIMEOUT + 2.0, f"took {elapsed:.2f} s"
        assert report.status is HealthStatus.UNAVAILABLE
        assert report.error is not None
        assert "no answer within 0.5 s" in report.error
        await store.close()
    finally:
        proxy.close()
        await pool.close()


_CHECK_DEADLINE = 20.0
"""Seconds the test waits for the pool's check to give up on both silent connections (3 s each)."""


def test_the_store_pools_check_gives_up_on_idle_connections_that_stop_answering(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # The store's own pool checks each idle connection with a deadline, so
    # the two behind the silent network are found dead and replaced rather
    # than held (out of the pool) for as long as TCP waits.
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    store = PostgresEventStore(
        proxy.dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=_POOL_SIZE, max_size=_POOL_SIZE),
        connect_timeout=2.0,
    )
    try:
        store.pool.wait(10.0)
        assert store.stream_version("s") == 0
        pid = _first_in_line(store.pool)
        proxy.drop()
        _terminate(postgres_dsn, pid)
        with pytest.raises(StoreUnavailableError):
            store.stream_version("s")
        deadline = time.monotonic() + _CHECK_DEADLINE
        lost = 0
        while time.monotonic() < deadline:
            lost = store.pool.get_stats().get("connections_lost", 0)
            if lost >= _POOL_SIZE - 1:
                break
            time.sleep(0.05)
        assert lost >= _POOL_SIZE - 1, "the check still waits on a silent connection"
    finally:
        proxy.close()
        store.close()


async def test_the_async_store_pools_check_gives_up_on_idle_connections_that_stop_answering(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    proxy = BlackholeProxy(postgres_dsn)
    store = AsyncPostgresEventStore(
        proxy.dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=_POOL_SIZE, max_size=_POOL_SIZE),
        connect_timeout=2.0,
    )
    try:
        assert await store.stream_version("s") == 0  # opens the pool
        await store.pool.wait(10.0)
        pid = await _first_in_line_async(store.pool)
        proxy.drop()
        _terminate(postgres_dsn, pid)
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.stream_version("s"), 30.0)
        deadline = time.monotonic() + _CHECK_DEADLINE
        lost = 0
        while time.monotonic() < deadline:
            lost = store.pool.get_stats().get("connections_lost", 0)
            if lost >= _POOL_SIZE - 1:
                break
            await asyncio.sleep(0.05)
        assert lost >= _POOL_SIZE - 1, "the check still waits on a silent connection"
    finally:
        proxy.close()
        await store.close()
