"""Faults on a real server: a killed backend mid-append, a restart, a stopped server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from eventstore import (
    AppendRequest,
    ConcurrencyError,
    EventStoreError,
    HealthReport,
    HealthStatus,
    InvalidArgumentError,
    NewEvent,
    StoreUnavailableError,
)
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from eventstore.testing.logwait import wait_for_position
from eventstore.testing.postgres_server import EmbeddedServer
from tests import server_faults

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def restartable_server() -> Iterator[EmbeddedServer]:
    # A server of its own: restarting the session's server would break every
    # other test's connections. Always embedded, even with EVENTSTORE_TEST_DSN.
    with EmbeddedServer.start() as server:
        yield server


@pytest.fixture
def restartable_store(
    restartable_server: EmbeddedServer,
) -> Iterator[PostgresEventStore]:
    store = PostgresEventStore(
        restartable_server.dsn,
        schema="faults",
        pool_config=PoolConfig(min_size=3, max_size=3, timeout=2.0),
    )
    store.migrate()
    yield store
    store.close()


def test_a_backend_killed_during_a_multi_event_append_leaves_nothing_of_it(
    postgres_store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    store = postgres_store
    store.append("s", [NewEvent("t", {"n": 0})], expected_version=0)
    # Inside the append's own statement, its three events inserted, just
    # before COMMIT: its backend terminates itself.
    server_faults.kill_before_commit(
        postgres_dsn, postgres_schema, server_faults.in_stream("s")
    )
    with pytest.raises(StoreUnavailableError) as caught:
        store.append(
            "s", [NewEvent("t", {"n": n}) for n in range(1, 4)], expected_version=1
        )
    server_faults.remove(postgres_dsn, postgres_schema)
    assert "terminating connection" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    assert store.stream_version("s") == 1
    assert [e.data["n"] for e in store.read_stream("s")] == [0]
    # The store carries on, and the same append can be sent again.
    again = store.append("s", [NewEvent("t", {"n": 9})], expected_version=1)
    assert again.version == 2
    wait_for_position(store, again.positions[0])
    assert [e.data["n"] for e in store.read_all()] == [0, 9]


def test_after_a_server_restart_the_same_store_works_again(
    restartable_server: EmbeddedServer, restartable_store: PostgresEventStore
) -> None:
    store = restartable_store
    store.append("before", [NewEvent("t", {})], expected_version=0)
    # Every pooled connection is open (min_size=3) when the server goes away.
    assert store.pool.get_stats()["pool_size"] == 3
    restartable_server.restart()
    # Health and reads find the broken connections, drop them and retry once.
    assert store.health().status is HealthStatus.OK
    assert store.stream_version("before") == 1
    result = store.append("after", [NewEvent("t", {})], expected_version=0)
    assert result.version == 1
    assert store.health().status is HealthStatus.OK
    assert [e.stream_id for e in store.read_all()] == ["before", "after"]


def test_a_stopped_server_is_unavailable_and_the_store_recovers_when_it_returns(
    restartable_server: EmbeddedServer,
) -> None:
    store = PostgresEventStore(
        restartable_server.dsn,
        schema="stopped",
        pool_config=PoolConfig(min_size=1, max_size=2, timeout=1.0),
    )
    try:
        store.migrate()
        store.append("s", [NewEvent("t", {})], expected_version=0)
        restartable_server.stop()
        try:
            report = store.health()  # never raises
            assert report.status is HealthStatus.UNAVAILABLE
            assert report.error
            with pytest.raises(StoreUnavailableError):
                store.append("s", [NewEvent("t", {})], expected_version=1)
            with pytest.raises(StoreUnavailableError):
                store.stream_version("s")
        finally:
            restartable_server.start_again()
        deadline_hits = 0
        while store.health().status is not HealthStatus.OK and deadline_hits < 50:
            deadline_hits += 1
            threading.Event().wait(0.1)
        assert store.health().status is HealthStatus.OK
        assert store.append("s", [NewEvent("t", {})], expected_version=1).version == 2
    finally:
        store.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_full_pool_is_whole_again_soon_after_a_longer_outage(
    restartable_server: EmbeddedServer, flavour: str
) -> None:
    # psycopg_pool re-opens each lost connection after 1, 2, 4, 8 … s, each
    # holding a place of the pool: after 9 s down its next attempt came some
    # 6 s after the server was back, and until then every call failed.
    outage, settings = 9.0, PoolConfig(min_size=2, max_size=2, timeout=1.0)
    schema = f"outage_{flavour}"

    async def health(store: Any) -> HealthStatus:
        report: HealthReport = await store.health()
        return report.status

    def status(store: Any) -> HealthStatus:
        if flavour == "sync":
            report: HealthReport = store.health()
            return report.status
        return loop.run_until_complete(health(store))

    loop = asyncio.new_event_loop()
    if flavour == "sync":
        store: Any = PostgresEventStore(
            restartable_server.dsn, schema=schema, pool_config=settings
        )
        store.migrate()
    else:
        store = AsyncPostgresEventStore(
            restartable_server.dsn, schema=schema, pool_config=settings
        )
        loop.run_until_complete(store.migrate())
    try:
        assert status(store) is HealthStatus.OK
        restartable_server.stop()
        stopped = time.monotonic()
        try:
            while time.monotonic() - stopped < outage:
                assert status(store) is HealthStatus.UNAVAILABLE
                time.sleep(0.5)
        finally:
            restartable_server.start_again()
        back = time.monotonic()
        while status(store) is not HealthStatus.OK:
            assert time.monotonic() - back < 4.0, "the pool waited out its backoff"
            time.sleep(0.1)
    finally:
        if flavour == "sync":
            store.close()
        else:
            loop.run_until_complete(store.close())
        loop.close()


def test_a_unique_violation_on_a_key_not_the_stores_is_no_conflict(
    postgres_store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    # A host's trigger or constraint refusing every append to "s" with a
    # unique violation: no version explains it, so it is the server's error
    # with its cause, never a ConcurrencyError the repository would retry.
    server_faults.fail_before_commit(
        postgres_dsn, postgres_schema, server_faults.in_stream("s"), "23505"
    )
    appends: list[Callable[[], object]] = [
        lambda: postgres_store.append("s", [NewEvent("t", {})], expected_version=0),
        lambda: postgres_store.append("s", [NewEvent("t", {})]),
        lambda: postgres_store.append_many([AppendRequest("s", [NewEvent("t", {})])]),
    ]
    for append in appends:
        with pytest.raises(EventStoreError) as caught:
            append()
        assert not isinstance(caught.value, ConcurrencyError), caught.value
        assert isinstance(caught.value.__cause__, pg_errors.UniqueViolation)
    server_faults.remove(postgres_dsn, postgres_schema)
    assert postgres_store.stream_version("s") == 0


def test_a_value_past_a_server_limit_is_an_invalid_argument_not_an_outage(
    postgres_store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    # Class 54 (program limit exceeded: a jsonb value past 256 MiB, say),
    # which psycopg files under OperationalError: it used to read as
    # StoreUnavailableError, which a Repository re-sends in vain.
    server_faults.fail_before_commit(
        postgres_dsn, postgres_schema, server_faults.in_stream("s"), "54000"
    )
    with pytest.raises(InvalidArgumentError, match="too large") as caught:
        postgres_store.append("s", [NewEvent("t", {})], expected_version=0)
    assert isinstance(caught.value.__cause__, pg_errors.ProgramLimitExceeded)
    server_faults.remove(postgres_dsn, postgres_schema)
    assert postgres_store.stream_version("s") == 0


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_a_transaction_the_server_rolled_back_is_retryable_and_leaves_the_server_trusted(
    postgres_store: PostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    sqlstate: str,
) -> None:
    store = postgres_store
    store.append("s", [NewEvent("t", {"n": 0})], expected_version=0)
    server_faults.fail_before_commit(
        postgres_dsn, postgres_schema, server_faults.in_stream("s"), sqlstate
    )
    with pytest.raises(StoreUnavailableError, match="rolled the transaction back"):
        store.append("s", [NewEvent("t", {"n": 1})], expected_version=1)
    server_faults.remove(postgres_dsn, postgres_schema)
    # A server that answered: the next call is not preceded by a direct ask.
    before = server_faults.sessions_opened(postgres_dsn)
    assert store.append("s", [NewEvent("t", {"n": 1})], expected_version=1).version == 2
    assert (
        server_faults.sessions_opened(postgres_dsn) - before == 1
    )  # this measurement's
