"""Sessions the server ended while they sat idle in the pool: the next call, an append too, goes through."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from eventstore import NewEvent, Subscription, SubscriptionState
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore

pytestmark = pytest.mark.postgres

DEADLINE = 15.0
WAYS = ["terminated", "idle_session_timeout"]


def _config(name: str) -> PoolConfig:
    return PoolConfig(min_size=3, max_size=3, timeout=5.0, application_name=name)


def _dsn(postgres_dsn: str, way: str) -> str:
    if way == "idle_session_timeout":
        return make_conninfo(postgres_dsn, options="-c idle_session_timeout=200")
    return postgres_dsn


def _end_every_idle_session(postgres_dsn: str, name: str, way: str) -> None:
    """End the pool's sessions (or wait for the server to), and wait until none is left."""
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if way == "terminated":
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND state = 'idle'",
                    (name,),
                )
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (name,),
            ).fetchone()
            assert row is not None
            if row[0] == 0:
                return
            time.sleep(0.05)  # polling the server's own state, bounded
    raise AssertionError(f"the sessions of {name} were not ended in {DEADLINE}s")


def _application_name() -> str:
    return f"ended-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("way", WAYS)
def test_an_append_after_the_server_ended_every_idle_session_goes_through(
    postgres_dsn: str, postgres_schema: str, way: str
) -> None:
    # The first append after it used to fail with StoreUnavailableError,
    # sent on a connection the server had closed, having written nothing.
    name = _application_name()
    with PostgresEventStore(
        _dsn(postgres_dsn, way), schema=postgres_schema, pool_config=_config(name)
    ) as store:
        store.migrate()
        store.append("s", [NewEvent("t", {"n": 0})])
        _end_every_idle_session(postgres_dsn, name, way)
        for n in range(1, 4):
            store.append("s", [NewEvent("t", {"n": n})], expected_version=n)
        assert [e.data["n"] for e in store.read_stream("s")] == [0, 1, 2, 3]


@pytest.mark.parametrize("way", WAYS)
async def test_an_async_append_after_the_server_ended_every_idle_session_goes_through(
    postgres_dsn: str, postgres_schema: str, way: str
) -> None:
    name = _application_name()
    async with AsyncPostgresEventStore(
        _dsn(postgres_dsn, way), schema=postgres_schema, pool_config=_config(name)
    ) as store:
        await store.migrate()
        await store.append("s", [NewEvent("t", {"n": 0})])
        _end_every_idle_session(postgres_dsn, name, way)
        for n in range(1, 4):
            await store.append("s", [NewEvent("t", {"n": n})], expected_version=n)
        assert [e.data["n"] async for e in store.read_stream("s")] == [0, 1, 2, 3]


def test_a_runner_keeps_its_lock_and_listener_past_the_servers_idle_session_timeout(
    postgres_dsn: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Its lock's session and its listener sit idle by design: the server
    # ended them every 200 ms, and the runner stood by and took over again.
    name = _application_name()
    caplog.set_level(logging.DEBUG, logger="eventstore")
    handled: list[int] = []
    with PostgresEventStore(
        _dsn(postgres_dsn, "idle_session_timeout"),
        schema=postgres_schema,
        pool_config=_config(name),
    ) as store:
        store.migrate()
        subscription = Subscription(
            store, "idle", lambda events: handled.extend(e.data["n"] for e in events)
        )
        stop = threading.Event()
        runner = threading.Thread(target=subscription.run, kwargs={"stop": stop})
        runner.start()
        try:
            store.append("s", [NewEvent("t", {"n": 0})])
            _wait(lambda: handled == [0])
            # Five times the server's limit with nothing to do, then more.
            time.sleep(1.0)
            store.append("s", [NewEvent("t", {"n": 1})])
            _wait(lambda: handled == [0, 1])
            assert subscription.status().state is SubscriptionState.RUNNING
        finally:
            stop.set()
            runner.join(DEADLINE)
        assert not runner.is_alive()
    troubles = [
        r.getMessage()
        for r in caplog.records
        if "lost its lock" in r.getMessage() or "stopped hearing" in r.getMessage()
    ]
    assert troubles == []


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)
