"""A transactional handler that ends, aborts or changes the session it is given: stopped, never duplicated, never lent on."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql

from eventstore import (
    AsyncSubscription,
    Delivery,
    EventStoreError,
    HandlerTransactionError,
    NewEvent,
    OnError,
    RecordedEvent,
    RetryPolicy,
    Subscription,
    SubscriptionFailedError,
    SubscriptionState,
)
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore

pytestmark = pytest.mark.postgres

RETRIES = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=False)
DEADLINE = 30.0
# One pooled connection: the store's next call gets the handler's connection.
ONE_CONNECTION = PoolConfig(min_size=1, max_size=1, timeout=5.0)


@pytest.fixture
def table(postgres_dsn: str, postgres_schema: str) -> sql.Identifier:
    name = sql.Identifier(postgres_schema, "projection")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(postgres_schema)
            )
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (stream_id text, version bigint)").format(name)
        )
    return name


@pytest.fixture
def store(
    postgres_dsn: str, postgres_schema: str, table: sql.Identifier
) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=ONE_CONNECTION
    ) as store:
        store.migrate()
        for i in range(3):
            store.append(f"s-{i}", [NewEvent("e", {"i": i})])
        yield store


def _insert(conn: Any, table: sql.Identifier, events: list[RecordedEvent]) -> None:
    for event in events:
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table),
            (event.stream_id, event.version),
        )


def _rows(dsn: str, table: sql.Identifier) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL("SELECT stream_id, version FROM {} ORDER BY 1, 2").format(table)
        ).fetchall()


Misuse = Callable[[sql.Identifier, list[RecordedEvent], Any], None]
"""A handler that misuses its connection, given the projection's table first."""


def _rolls_back_then_writes(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    conn.execute("ROLLBACK")  # its writes now autocommit, apart from the checkpoint
    _insert(conn, table, events)


def _writes_then_closes(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    _insert(conn, table, events)
    conn.close()


def _commits_then_raises(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    _insert(conn, table, events[:1])
    conn.execute("COMMIT")  # the checkpoint, moved first, commits with it
    raise RuntimeError("poison")


def _ends_and_begins_again(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    conn.execute("ROLLBACK")
    conn.execute("BEGIN")  # "in a transaction" again, but another one
    _insert(conn, table, events)


def _commits_writes_then_raises(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    _insert(conn, table, events[:1])
    conn.execute("COMMIT")
    _insert(conn, table, events[1:2])  # a transaction psycopg begins itself
    raise RuntimeError("poison")


def _swallows_a_failed_statement(
    table: sql.Identifier, events: list[RecordedEvent], conn: Any
) -> None:
    _insert(conn, table, events)
    # Without a savepoint: the transaction is aborted, and commits nothing.
    with contextlib.suppress(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")


@pytest.mark.parametrize(
    ("misuse", "says"),
    [
        (_rolls_back_then_writes, "COMMIT or ROLLBACK of its own"),
        (_writes_then_closes, "closed its connection"),
        (_commits_then_raises, "COMMIT or ROLLBACK of its own"),
        (_swallows_a_failed_statement, "savepoint"),
        (_ends_and_begins_again, "COMMIT or ROLLBACK of its own"),
    ],
    ids=["rollback", "close", "commit-then-raise", "aborted", "rollback-begin"],
)
@pytest.mark.parametrize("on_error", [OnError.STOP, OnError.PARK])
def test_a_handler_that_ends_its_transaction_stops_the_subscription_at_once(  # noqa: PLR0917  # fixtures and parameters
    store: PostgresEventStore,
    table: sql.Identifier,
    postgres_dsn: str,
    misuse: Misuse,
    says: str,
    on_error: OnError,
) -> None:
    calls: list[int] = []
    handler = functools.partial(misuse, table)

    def counted(events: list[RecordedEvent], conn: Any) -> None:
        calls.append(len(events))
        handler(events, conn)

    subscription = Subscription(
        store,
        "p",
        counted,
        delivery=Delivery.TRANSACTIONAL,
        retry_policy=RETRIES,
        on_error=on_error,
    )
    with pytest.raises(SubscriptionFailedError) as failed:
        subscription.catch_up()
    assert isinstance(failed.value.__cause__, HandlerTransactionError)
    assert says in str(failed.value.__cause__)
    assert str(failed.value.__cause__).startswith("the handler ")
    # Neither retried, nor handed over again one by one, nor parked: each
    # of those would write what may already have committed once more.
    assert calls == [3]
    assert subscription.status().state is SubscriptionState.FAILED
    assert subscription.status().parked == 0
    assert len(_rows(postgres_dsn, table)) <= 3
    # The pool's one connection still serves the store.
    assert store.append("after", [NewEvent("e", {})]).version == 1


def test_a_running_subscription_stops_instead_of_handing_a_batch_over_again(
    store: PostgresEventStore, table: sql.Identifier, postgres_dsn: str
) -> None:
    subscription = Subscription(
        store,
        "p",
        functools.partial(_rolls_back_then_writes, table),
        delivery=Delivery.TRANSACTIONAL,
        retry_policy=RETRIES,
        poll_interval=0.05,
    )
    stop = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            subscription.run(stop)
        except BaseException as exc:  # reported to the test
            raised.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(DEADLINE)
    stop.set()
    runner.join(DEADLINE)
    assert not runner.is_alive()
    assert len(raised) == 1
    assert isinstance(raised[0], SubscriptionFailedError)
    assert isinstance(raised[0].__cause__, HandlerTransactionError)
    assert _rows(postgres_dsn, table) == [
        ("s-0", 1),
        ("s-1", 1),
        ("s-2", 1),
    ]  # once, never again


@pytest.mark.parametrize(
    ("statement", "check"),
    [
        ("SET statement_timeout = '1234ms'", "SHOW statement_timeout"),
        ("SET search_path = pg_catalog", "SHOW search_path"),
        (
            "SET default_transaction_read_only = on",
            "SHOW default_transaction_read_only",
        ),
        ("SET TimeZone = 'Asia/Tokyo'", "SHOW TimeZone"),
        ("LISTEN somewhere", "SELECT count(*)::text FROM pg_listening_channels()"),
        (
            "SELECT pg_advisory_lock(42)::text",
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        ),
    ],
)
def test_what_a_handler_sets_on_its_session_is_undone_before_the_pool_lends_it_on(
    store: PostgresEventStore, table: sql.Identifier, statement: str, check: str
) -> None:
    with store.pool.connection() as conn:
        before = conn.execute(check).fetchone()

    def handler(events: list[RecordedEvent], conn: Any) -> None:
        conn.execute(statement)
        _insert(conn, table, events)

    assert (
        Subscription(store, "p", handler, delivery=Delivery.TRANSACTIONAL).catch_up()
        == 3
    )
    with store.pool.connection() as conn:
        assert conn.execute(check).fetchone() == before
    # A read-only default left on the session made the store's own appends fail.
    assert store.append("after", [NewEvent("e", {})]).version == 1


def test_on_reset_that_ends_its_transaction_or_fails_a_statement_says_so(
    store: PostgresEventStore, table: sql.Identifier, postgres_dsn: str
) -> None:
    subscription = Subscription(
        store,
        "p",
        lambda events, conn: _insert(conn, table, events),
        delivery=Delivery.TRANSACTIONAL,
    )
    assert subscription.catch_up() == 3

    def rolls_back(conn: Any) -> None:
        conn.execute("ROLLBACK")

    with pytest.raises(
        HandlerTransactionError, match=r"^on_reset ended its transaction"
    ):
        subscription.reset(on_reset=rolls_back)
    assert subscription.status().position is not None  # not reset
    # The projection's own table missing is on_reset's statement failing,
    # not the store's tables (no "run migrate()").
    with pytest.raises(
        EventStoreError, match=r"^on_reset's statement failed: .*no_such_table"
    ) as failed:
        subscription.reset(on_reset=lambda conn: conn.execute("TRUNCATE no_such_table"))
    assert "migrate" not in str(failed.value)
    assert subscription.status().position is not None
    assert len(_rows(postgres_dsn, table)) == 3


async def test_an_async_handler_that_rolls_back_or_closes_stops_the_subscription(
    postgres_dsn: str, postgres_schema: str, table: sql.Identifier
) -> None:
    async with AsyncPostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=ONE_CONNECTION
    ) as store:
        await store.migrate()
        for i in range(3):
            await store.append(f"s-{i}", [NewEvent("e", {"i": i})])

        async def rolls_back(events: list[RecordedEvent], conn: Any) -> None:
            await conn.execute("ROLLBACK")
            for event in events:
                await conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table),
                    (event.stream_id, event.version),
                )

        async def closes(events: list[RecordedEvent], conn: Any) -> None:
            await conn.close()

        for name, handler in (("rolls-back", rolls_back), ("closes", closes)):
            subscription = AsyncSubscription(
                store,
                name,
                handler,
                delivery=Delivery.TRANSACTIONAL,
                retry_policy=RETRIES,
            )
            with pytest.raises(SubscriptionFailedError) as failed:
                await subscription.catch_up()
            assert isinstance(failed.value.__cause__, HandlerTransactionError)
        assert (
            len(_rows(postgres_dsn, table)) == 3
        )  # the rolled-back handler's writes, once
        assert (await store.append("after", [NewEvent("e", {})])).version == 1


@pytest.mark.parametrize(
    "misuse",
    [_rolls_back_then_writes, _commits_writes_then_raises],
    ids=["rollback", "commit-write-raise"],
)
def test_a_rollback_is_caught_on_a_callers_pool_of_connections_in_transactions(
    postgres_dsn: str,
    postgres_schema: str,
    table: sql.Identifier,
    misuse: Misuse,
) -> None:
    # Not autocommit: after the handler's ROLLBACK psycopg begins a
    # transaction itself, so the status alone reads as if nothing happened.
    with (
        psycopg_pool.ConnectionPool(
            postgres_dsn, min_size=1, max_size=1, open=True
        ) as pool,
        PostgresEventStore(pool=pool, schema=postgres_schema) as store,
    ):
        store.migrate()
        for i in range(3):
            store.append(f"s-{i}", [NewEvent("e", {"i": i})])
        calls: list[int] = []

        def handler(events: list[RecordedEvent], conn: Any) -> None:
            calls.append(len(events))
            misuse(table, events, conn)

        subscription = Subscription(
            store,
            "p",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            retry_policy=RETRIES,
        )
        with pytest.raises(SubscriptionFailedError) as failed:
            subscription.catch_up()
        assert isinstance(failed.value.__cause__, HandlerTransactionError)
        assert calls == [3]
        # Stopped at once: whatever was written, never written again.
        assert len(_rows(postgres_dsn, table)) <= 1
        assert store.append("after", [NewEvent("e", {})]).version == 1


ADVISORY_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


def test_a_session_advisory_lock_is_released_after_a_batch_that_failed(
    store: PostgresEventStore,
) -> None:
    def handler(events: list[RecordedEvent], conn: Any) -> None:
        conn.execute("SELECT pg_advisory_lock(4242)")
        raise RuntimeError("refused")  # the rollback keeps a session lock

    subscription = Subscription(
        store,
        "p",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        retry_policy=RETRIES,
        on_error=OnError.STOP,
    )
    with pytest.raises(SubscriptionFailedError):
        subscription.catch_up()
    with store.pool.connection() as conn:
        assert conn.execute(ADVISORY_LOCKS).fetchone() == (0,)


def test_a_handler_that_committed_leaves_no_setting_on_the_pools_connections(
    store: PostgresEventStore,
) -> None:
    def handler(events: list[RecordedEvent], conn: Any) -> None:
        conn.execute("COMMIT")
        conn.execute("SET default_transaction_read_only = on")

    with pytest.raises(SubscriptionFailedError):
        Subscription(
            store, "p", handler, delivery=Delivery.TRANSACTIONAL, retry_policy=RETRIES
        ).catch_up()
    # Its session is no longer the store's: closed, and replaced.
    assert store.append("after", [NewEvent("e", {})]).version == 1
    with store.pool.connection() as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)


def test_a_role_a_handler_sets_is_undone_to_the_connections_own(
    store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    role = f"{postgres_schema}_reader"
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        raw.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        raw.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
    try:
        with store.pool.connection() as conn:
            before = conn.execute("SELECT current_user").fetchone()

        def handler(events: list[RecordedEvent], conn: Any) -> None:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

        Subscription(store, "p", handler, delivery=Delivery.TRANSACTIONAL).catch_up()
        with store.pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == before
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as raw:
            raw.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("then_a_statement", [True, False], ids=["statement", "return"])
def test_a_handler_idle_past_the_servers_timeout_is_the_handlers_error_and_parks(
    store: PostgresEventStore,
    postgres_dsn: str,
    table: sql.Identifier,
    then_a_statement: bool,
) -> None:
    # The server ends the session, so the connection is broken: it used to
    # read as an outage, retried at every turn for ever, never parked.
    def handler(events: list[RecordedEvent], conn: Any) -> None:
        _insert(conn, table, events)
        if any(event.data["i"] == 1 for event in events):
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = '50ms'")
            time.sleep(0.3)  # the slow work under test, five times the limit
            if then_a_statement:
                conn.execute("SELECT 1")

    subscription = Subscription(
        store,
        "slow",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=RetryPolicy(max_retries=0),
    )
    assert subscription.catch_up() == 2
    [parked] = subscription.parked()
    assert parked.event.data["i"] == 1
    assert "the handler spent longer between two statements" in parked.error
    assert "idle_in_transaction_session_timeout" in parked.error
    assert _rows(postgres_dsn, table) == [("s-0", 1), ("s-2", 1)]
    assert subscription.status().state is not SubscriptionState.FAILED


def test_a_handler_idle_past_the_servers_timeout_stops_the_subscription_saying_so(
    store: PostgresEventStore, postgres_dsn: str, table: sql.Identifier
) -> None:
    def handler(events: list[RecordedEvent], conn: Any) -> None:
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = '50ms'")
        time.sleep(0.3)  # the slow work under test
        _insert(conn, table, events)

    subscription = Subscription(
        store,
        "slow",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        retry_policy=RetryPolicy(max_retries=1, base_delay=0.0, jitter=False),
    )
    with pytest.raises(SubscriptionFailedError) as failed:
        subscription.catch_up()
    cause = failed.value.__cause__
    assert type(cause) is EventStoreError, cause
    assert "idle_in_transaction_session_timeout" in str(cause)
    assert subscription.status().position is None  # nothing committed
    assert _rows(postgres_dsn, table) == []
