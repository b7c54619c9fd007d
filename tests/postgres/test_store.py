"""PostgresEventStore beyond the contract: configuration, errors, paging, timeouts, health."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from eventstore import (
    AppendRequest,
    ConcurrencyError,
    ConfigError,
    EventStoreError,
    HealthStatus,
    InvalidArgumentError,
    NewEvent,
    PoolExhaustedError,
    RecordedEvent,
    Snapshot,
    StoreClosedError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from eventstore.postgres import (
    AsyncPostgresEventStore,
    PoolConfig,
    PostgresEventStore,
    _queries,
    _sql,
)
from eventstore.postgres import store as store_module
from eventstore.postgres._pool import CLIENT_KEEPALIVES
from eventstore.testing.logwait import wait_for_position
from tests import server_faults
from tests.network_faults import BlackholeProxy

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-Pa55word"  # noqa: S105  # a fake password the tests look for


def _with_password(dsn: str) -> tuple[str, str]:
    # The embedded server trusts local connections, so a password is accepted
    # and ignored: the store works while carrying one. A server given in
    # EVENTSTORE_TEST_DSN keeps its own password, which must not leak either.
    password = psycopg.conninfo.conninfo_to_dict(dsn).get("password") or PASSWORD
    return psycopg.conninfo.make_conninfo(dsn, password=password), str(password)


@pytest.fixture
def make_store(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[Callable[..., PostgresEventStore]]:
    stores: list[PostgresEventStore] = []

    def make(
        *, migrate: bool = True, dsn: str | None = None, **config: Any
    ) -> PostgresEventStore:
        store = PostgresEventStore(
            dsn or postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(**config),
        )
        stores.append(store)
        if migrate:
            store.migrate()
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def raw(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def _events(count: int, prefix: str = "e") -> list[NewEvent]:
    return [NewEvent("t", {"n": f"{prefix}{i}"}) for i in range(count)]


# --- construction ----------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        'x"; drop table y; --',
        "1starts_with_digit",
        "has space",
        "dash-ed",
        "",
        "é",
        "a" * 64,
        None,
        "pg_events",  # the pg_ prefix is PostgreSQL's: CREATE SCHEMA refuses it
    ],
)
def test_bad_schema_names_are_refused_before_any_sql(schema: object) -> None:
    with pytest.raises(ConfigError, match="schema"):
        PostgresEventStore("host=/nonexistent", schema=schema)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["connect_timeout", "health_timeout"])
def test_seconds_past_the_longest_wait_are_refused(field: str) -> None:
    # 1e300 seconds passed, then raised OverflowError at the first wait.
    options: dict[str, Any] = {field: 1e300}
    with pytest.raises(ConfigError, match=field):
        PostgresEventStore("host=/nonexistent", **options)


def test_a_schema_name_starting_with_upper_case_pg_is_an_ordinary_name() -> None:
    PostgresEventStore("host=/nonexistent", schema="PG_events").close()


def test_a_63_byte_schema_name_is_fine(postgres_dsn: str) -> None:
    with PostgresEventStore(postgres_dsn, schema="a" * 63) as store:
        assert store.schema == "a" * 63


def test_exactly_one_of_dsn_and_pool_is_required(postgres_dsn: str) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        PostgresEventStore()
    with psycopg_pool.ConnectionPool(postgres_dsn, min_size=1, open=True) as pool:
        with pytest.raises(ConfigError, match="exactly one"):
            PostgresEventStore(postgres_dsn, pool=pool)
        with pytest.raises(ConfigError, match="pool_config"):
            PostgresEventStore(pool=pool, pool_config=PoolConfig())


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "10", True])
def test_a_bad_connect_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigError, match="connect_timeout"):
        PostgresEventStore("host=/nonexistent", connect_timeout=timeout)  # type: ignore[arg-type]


def test_an_unparsable_dsn_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresEventStore(f"password={PASSWORD} nonsense")
    assert PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- secrets ---------------------------------------------------------------


def test_the_password_appears_in_no_repr_report_or_log(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn, password = _with_password(postgres_dsn)
    with caplog.at_level(logging.DEBUG):
        store = make_store(dsn=dsn)
        store.append("s", _events(1))
        report = store.health()
    assert report.status is HealthStatus.OK
    assert password not in repr(store)
    assert password not in str(report.to_dict())
    assert password not in caplog.text


def test_an_unreachable_server_is_unavailable_and_leaks_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = f"postgresql://app:{PASSWORD}@/app?host=/nonexistent/socket/dir"
    with caplog.at_level(logging.DEBUG):
        store = PostgresEventStore(
            dsn, pool_config=PoolConfig(timeout=0.5), connect_timeout=2
        )
        try:
            report = store.health()
            with pytest.raises(StoreUnavailableError) as caught:
                store.append("s", _events(1))
        finally:
            store.close()
    assert report.status is HealthStatus.UNAVAILABLE
    assert report.latency_ms is None
    assert report.error
    text = f"{report.to_dict()} {caught.value} {caught.value.__cause__} {store!r}"
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text
    assert isinstance(caught.value.__cause__, psycopg.Error)


# --- migrations ------------------------------------------------------------


def test_migrate_is_idempotent(make_store: Callable[..., PostgresEventStore]) -> None:
    store = make_store()
    assert store.migrate() == 3
    assert store.migrate() == 3
    assert store.health().schema_version == 3


@pytest.fixture
def least_privilege_dsn(
    postgres_dsn: str, raw: psycopg.Connection[Any]
) -> Iterator[Callable[[str], str]]:
    """Make a role with PostgreSQL's default privileges plus DML on a schema; return its DSN."""
    roles: list[str] = []

    def grant(schema: str) -> str:
        role = f"app_{os.getpid()}_{len(roles)}"
        roles.append(role)
        name, on = sql.Identifier(role), sql.Identifier(schema)
        raw.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
        raw.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(on, name))
        raw.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
            ).format(on, name)
        )
        return psycopg.conninfo.make_conninfo(postgres_dsn, user=role)

    yield grant
    for role in roles:
        raw.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        raw.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("partitions", [None, 8], ids=["plain", "partitions=8"])
def test_a_role_without_create_privilege_migrates_a_schema_that_needs_nothing(
    postgres_dsn: str,
    least_privilege_dsn: Callable[[str], str],
    postgres_schema: str,
    partitions: int | None,
) -> None:
    # A service's own role, granted only its tables, calls migrate() at
    # start-up as the tutorial says: CREATE ... IF NOT EXISTS would need the
    # CREATE privilege even when everything exists.
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, partitions=partitions
    ) as owner:
        owner.migrate()
    dsn = least_privilege_dsn(postgres_schema)
    with PostgresEventStore(dsn, schema=postgres_schema, partitions=partitions) as app:
        assert app.migrate() == _sql.LATEST_MIGRATION
        app.append("s", _events(1))
        assert [e.version for e in app.read_stream("s")] == [1]

    async def migrate_async() -> int:
        async with AsyncPostgresEventStore(
            dsn, schema=postgres_schema, partitions=partitions
        ) as app:
            return await app.migrate()

    assert asyncio.run(migrate_async()) == _sql.LATEST_MIGRATION


def test_a_role_without_create_privilege_cannot_create_a_schema(
    least_privilege_dsn: Callable[[str], str],
    raw: psycopg.Connection[Any],
    postgres_schema: str,
) -> None:
    raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(postgres_schema)))
    dsn = least_privilege_dsn(postgres_schema)
    with (
        PostgresEventStore(dsn, schema=postgres_schema) as app,
        pytest.raises(EventStoreError, match="permission denied"),
    ):
        app.migrate()
    # Nothing of it was applied.
    row = raw.execute(
        "SELECT to_regclass(%s)",
        (_sql.qualified_table(postgres_schema, "schema_migrations"),),
    ).fetchone()
    assert row == (None,)


def test_several_stores_migrating_at_once_apply_each_migration_once(
    make_store: Callable[..., PostgresEventStore],
    raw: psycopg.Connection[Any],
    postgres_schema: str,
) -> None:
    stores = [make_store(migrate=False) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[object] = []

    def migrate(store: PostgresEventStore) -> None:
        barrier.wait()
        try:
            outcomes.append(store.migrate())
        except Exception as exc:  # recorded for the assertion
            outcomes.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [3, 3, 3, 3]
    rows = raw.execute(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(
            sql.Identifier(postgres_schema, "schema_migrations")
        )
    ).fetchall()
    assert rows == [(1,), (2,), (3,)]


def test_a_migration_waits_for_another_beyond_the_pools_time_limits(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    # A replica starting while another migrates a large table waits for it,
    # however short the limits its pool sets for the service's statements.
    store = make_store(migrate=False, statement_timeout=0.3, lock_timeout=0.1)
    outcomes: list[object] = []
    with psycopg.connect(postgres_dsn) as other:  # "another process migrating"
        other.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            (_sql.MIGRATION_LOCK_NAMESPACE, postgres_schema),
        )

        def migrate() -> None:
            try:
                outcomes.append(store.migrate())
            except Exception as exc:  # recorded for the assertion
                outcomes.append(exc)

        migrating = threading.Thread(target=migrate)
        migrating.start()
        deadline = time.monotonic() + 10.0
        waiting = False
        while not waiting and time.monotonic() < deadline:
            row = other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND NOT granted",
                (_sql.MIGRATION_LOCK_NAMESPACE,),
            ).fetchone()
            waiting = row is not None and row[0] > 0
            time.sleep(0.01)
        assert waiting, "the migration never waited for the lock"
        time.sleep(0.6)  # twice the pool's statement_timeout
        assert not outcomes, outcomes
        other.commit()
    migrating.join(30.0)
    assert outcomes == [3]


def test_an_unmigrated_schema_is_a_config_error_and_unhealthy(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store(migrate=False)
    with pytest.raises(ConfigError, match="migrate") as caught:
        store.append("s", _events(1))
    assert isinstance(caught.value.__cause__, psycopg.Error)
    report = store.health()
    assert report.status is HealthStatus.UNAVAILABLE
    assert "migrate" in (report.error or "")


# --- a caller-owned pool ---------------------------------------------------


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_caller_owned_pool_is_used_and_left_open(
    postgres_dsn: str, postgres_schema: str, autocommit: bool
) -> None:
    with psycopg_pool.ConnectionPool(
        postgres_dsn,
        min_size=1,
        max_size=2,
        kwargs={"autocommit": autocommit},
        open=True,
    ) as pool:
        with PostgresEventStore(pool=pool, schema=postgres_schema) as store:
            store.migrate()
            first = store.append("s", _events(2), expected_version=0)
            with pytest.raises(ConcurrencyError):
                store.append("s", _events(1, "x"), expected_version=0)
            assert [e.version for e in store.read_stream("s")] == [1, 2]
            wait_for_position(store, first.positions[0])
            assert store.read_all()[0].position == first.positions[0]
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_text_a_caller_pools_encoding_cannot_carry_is_an_invalid_argument(
    postgres_dsn: str, postgres_schema: str, flavour: str
) -> None:
    # The pool's connections write LATIN1, which has no euro sign: psycopg
    # raised UnicodeEncodeError, from no hierarchy of ours.
    kwargs = {"client_encoding": "LATIN1", "autocommit": True}
    bad: list[Callable[[Any], Any]] = [
        lambda store: store.append("s-€", _events(1), expected_version=0),
        lambda store: store.append("s", [NewEvent("t", {"x": "€"})]),
        lambda store: store.append_many(
            [
                AppendRequest("s", _events(1), expected_version=0),
                AppendRequest("t-€", _events(1), expected_version=0),
            ]
        ),
        lambda store: store.stream_version("s-€"),
    ]

    def check(error: BaseException) -> None:
        assert isinstance(error, InvalidArgumentError), repr(error)
        assert "LATIN1" in str(error)
        assert "'€'" in str(error)
        assert isinstance(error.__cause__, UnicodeEncodeError)

    if flavour == "sync":
        with psycopg_pool.ConnectionPool(
            postgres_dsn, kwargs=kwargs, min_size=1, max_size=1
        ) as pool:
            store = PostgresEventStore(pool=pool, schema=postgres_schema)
            store.migrate()
            for call in bad:
                with pytest.raises(EventStoreError) as info:
                    call(store)
                check(info.value)
            with pytest.raises(EventStoreError) as info:
                list(store.read_stream("s-€"))
            check(info.value)
            # Nothing was written, and the pool's connection still works.
            assert store.stream_version("s") == 0
            assert store.read_all() == []
            store.append("zoë", _events(1), expected_version=0)
            assert store.stream_version("zoë") == 1
    else:

        async def run() -> None:
            async with psycopg_pool.AsyncConnectionPool(
                postgres_dsn, kwargs=kwargs, min_size=1, max_size=1
            ) as pool:
                store = AsyncPostgresEventStore(pool=pool, schema=postgres_schema)
                await store.migrate()
                for call in bad:
                    with pytest.raises(EventStoreError) as info:
                        await call(store)
                    check(info.value)
                with pytest.raises(EventStoreError) as info:
                    [e async for e in store.read_stream("s-€")]
                check(info.value)
                assert await store.stream_version("s") == 0
                assert await store.read_all() == []
                await store.append("zoë", _events(1), expected_version=0)
                assert await store.stream_version("zoë") == 1

        asyncio.run(run())


# --- appends ---------------------------------------------------------------


def test_a_stream_version_clash_in_the_backstop_is_a_concurrency_error(
    make_store: Callable[..., PostgresEventStore],
    raw: psycopg.Connection[Any],
    postgres_schema: str,
) -> None:
    store = make_store()
    store.append("s", _events(1), expected_version=0)
    # A row written behind the streams table's back (a buggy tool, say)
    # takes version 2; UNIQUE (stream_id, version) still refuses a second one.
    raw.execute(
        sql.SQL(
            "INSERT INTO {} (stream_id, version, event_id, type, schema_version, data, metadata)"
            " VALUES ('s', 2, gen_random_uuid(), 't', 1, '{{}}', '{{}}')"
        ).format(sql.Identifier(postgres_schema, "events"))
    )
    with pytest.raises(ConcurrencyError) as caught:
        store.append("s", _events(1, "y"), expected_version=1)
    assert isinstance(caught.value.__cause__, pg_errors.UniqueViolation)
    assert caught.value.stream_id == "s"
    assert store.stream_version("s") == 1


def test_a_multi_event_append_to_many_streams_lands_atomically(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    from eventstore import AppendRequest  # noqa: PLC0415

    store = make_store()
    store.append("b", _events(1), expected_version=0)
    with pytest.raises(ConcurrencyError):
        store.append_many(
            [
                AppendRequest("a", _events(3), expected_version=0),
                AppendRequest("b", _events(2), expected_version=0),
            ]
        )
    assert store.stream_version("a") == 0
    assert store.stream_version("b") == 1


# --- reads -----------------------------------------------------------------


def test_read_stream_pages_through_a_long_stream_in_both_directions(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store()
    total = 1234
    for start in range(0, total, 200):
        store.append("long", _events(min(200, total - start), f"{start}-"))
    assert [e.version for e in store.read_stream("long")] == list(range(1, total + 1))
    assert [e.version for e in store.read_stream("long", backwards=True)] == list(
        range(total, 0, -1)
    )
    assert [
        e.version for e in store.read_stream("long", from_version=300, to_version=1100)
    ] == list(range(300, 1101))
    assert [
        e.version
        for e in store.read_stream(
            "long", from_version=300, to_version=1100, backwards=True, limit=700
        )
    ] == list(range(1100, 400, -1))
    assert [e.version for e in store.read_stream("long", limit=501)] == list(
        range(1, 502)
    )
    assert list(store.read_stream("long", from_version=total + 1)) == []


def _prepared(store: PostgresEventStore, statement: bytes) -> bool:
    """Whether the pooled session of *store* holds *statement* prepared."""
    # psycopg sends %(name)s as $1, $2... numbered by first appearance.
    names: dict[str, str] = {}
    text = re.sub(
        rb"%\((\w+)\)s",
        lambda m: names.setdefault(m[1].decode(), f"${len(names) + 1}").encode(),
        statement,
    ).decode()
    with store.pool.connection() as conn:
        rows = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    return any(row[0] == text for row in rows)


@pytest.mark.parametrize("chunked", [True, False], ids=["libpq-17", "older-libpq"])
def test_long_pages_are_streamed_and_read_the_same_as_short_ones(
    make_store: Callable[..., PostgresEventStore],
    monkeypatch: pytest.MonkeyPatch,
    chunked: bool,
) -> None:
    # With a libpq older than 17, which cannot stream in chunks, long pages
    # are fetched whole: the same events either way.
    monkeypatch.setattr(_queries, "_CHUNKED", chunked)
    store = make_store(min_size=1, max_size=1)
    for start in range(0, 2500, 500):
        store.append("long", _events(500, f"{start}-"))
        store.append(f"other-{start}", _events(3, f"{start}-"))
    log = store.read_all(limit=5000)  # streamed: asked for 300 rows or more
    assert _prepared(store, store._sql.read_all_first) is not chunked
    assert [e.data["n"] for e in log if e.stream_id == "long"] == [
        f"{start}-{i}" for start in range(0, 2500, 500) for i in range(500)
    ]
    # Short pages, prepared and fetched whole, walk the same log.
    paged: list[RecordedEvent] = []
    while page := store.read_all(paged[-1].position if paged else None, limit=299):
        paged.extend(page)
    assert _prepared(store, store._sql.read_all_after)
    assert paged == log
    assert list(store.read_all(log[100].position, limit=1000)) == log[101:1101]
    # A long stream's first page is prepared; the full pages after it stream.
    whole = [e for e in log if e.stream_id == "long"]
    assert list(store.read_stream("long")) == whole
    assert list(store.read_stream("long", backwards=True)) == whole[::-1]
    assert _prepared(store, store._sql.stream.stream_first_forwards)
    assert _prepared(store, store._sql.stream.stream_page_forwards) is not chunked


def test_read_stream_stops_where_the_stream_ended_at_the_call(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store()
    store.append("s", _events(600))
    iterator = store.read_stream("s")
    store.append("s", _events(5, "late"))
    assert len(list(iterator)) == 600


def test_load_fetches_the_snapshot_and_later_events_in_one_round_trip(
    make_store: Callable[..., PostgresEventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    store.append("s", _events(5))
    store.save_snapshot(Snapshot("s", 3, "state", 1, {"sum": 3}))
    calls: list[object] = []
    original = vars(store_module)["_fetchall"]

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(store_module, "_fetchall", counting)
    loaded = store.load("s")
    assert len(calls) == 1
    assert loaded.snapshot is not None
    assert loaded.snapshot.version == 3
    assert [e.version for e in loaded.events] == [4, 5]
    assert loaded.version == 5


@pytest.mark.parametrize("statement", ["read_all_first", "read_all_after"])
def test_read_all_is_delivered_in_order_by_the_transaction_position_index(
    make_store: Callable[..., PostgresEventStore], statement: str
) -> None:
    store = make_store()
    store.append("s", _events(3))
    query = getattr(store._sql, statement)  # the statement under test
    with store.pool.connection() as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                b"EXPLAIN " + query,
                {"transaction_id": 1, "position": 1, "limit": 10},
            )
        )
        conn.execute("RESET enable_seqscan")
    assert "events_log_idx" in plan
    # The index delivers the order: a Sort node would sort the whole rest of
    # the log on every page.
    assert "Sort" not in plan, plan
    if statement == "read_all_after":
        assert "Index Cond" in plan
        assert "transaction_id" in plan.split("Index Cond")[1]


# --- timeouts and the pool -------------------------------------------------


@pytest.mark.parametrize(
    ("config", "cause"),
    [
        ({"lock_timeout": 0.2}, pg_errors.LockNotAvailable),
        ({"statement_timeout": 0.3}, pg_errors.QueryCanceled),
    ],
)
def test_configured_timeouts_take_effect(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    config: dict[str, float],
    cause: type[Exception],
) -> None:
    store = make_store(**config)
    store.append("s", _events(1), expected_version=0)
    with psycopg.connect(postgres_dsn) as blocker:
        blocker.execute(
            sql.SQL("SELECT * FROM {} WHERE stream_id = 's' FOR UPDATE").format(
                sql.Identifier(postgres_schema, "streams")
            )
        )
        with pytest.raises(StoreTimeoutError) as caught:
            store.append("s", _events(1, "blocked"), expected_version=1)
        blocker.rollback()
    assert type(caught.value.__cause__) is cause
    assert store.append("s", _events(1, "after"), expected_version=1).version == 2


def test_a_statement_cancelled_by_another_session_says_so_and_writes_nothing(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    # pg_cancel_backend raises the SQLSTATE of a statement timeout: the
    # error is a StoreTimeoutError, and its message gives the server's reason.
    store = make_store()
    store.append("s", _events(1), expected_version=0)
    caught: list[BaseException] = []

    def blocked_append() -> None:
        try:
            store.append("s", _events(1, "blocked"), expected_version=1)
        except BaseException as exc:  # the test's subject
            caught.append(exc)

    with (
        psycopg.connect(postgres_dsn, autocommit=True) as admin,
        psycopg.connect(postgres_dsn) as blocker,
    ):
        blocker.execute(
            sql.SQL("SELECT * FROM {} WHERE stream_id = 's' FOR UPDATE").format(
                sql.Identifier(postgres_schema, "streams")
            )
        )
        appender = threading.Thread(target=blocked_append)
        appender.start()
        deadline = time.monotonic() + 30
        waiting: list[tuple[Any, ...]] = []
        while not waiting:
            assert time.monotonic() < deadline, "the append never waited"
            waiting = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND pid <> pg_backend_pid() AND datname = current_database()"
            ).fetchall()
            time.sleep(0.01)
        admin.execute("SELECT pg_cancel_backend(%s)", waiting[0])
        appender.join(30)
        blocker.rollback()
    assert not appender.is_alive()
    assert len(caught) == 1
    assert isinstance(caught[0], StoreTimeoutError)
    assert isinstance(caught[0].__cause__, pg_errors.QueryCanceled)
    assert "user request" in str(caught[0])
    assert [e.data["n"] for e in store.read_stream("s")] == ["e0"]
    assert store.append("s", _events(1, "after"), expected_version=1).version == 2


def test_an_exhausted_pool_fails_fast_with_our_error_and_health_is_degraded(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store(min_size=2, max_size=2, timeout=0.3)
    assert store.health().status is HealthStatus.OK
    with store.pool.connection(), store.pool.connection():
        with pytest.raises(PoolExhaustedError) as caught:
            store.stream_version("s")
        assert isinstance(caught.value.__cause__, psycopg_pool.PoolTimeout)
        report = store.health()
        assert report.status is HealthStatus.DEGRADED
        assert report.pool is not None
        assert report.pool.in_use == 2
        assert report.pool.utilization_pct == 100.0
        assert report.pool.timeouts >= 1
    assert store.health().status is HealthStatus.OK


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_an_exhausted_pool_is_told_from_the_moment_of_the_timeout_without_asking_the_server(
    postgres_dsn: str, postgres_schema: str, flavour: str
) -> None:
    # Every connection lent when the wait ends: exhaustion, whatever happens
    # after. The server is not asked (no session opened): a probe would take
    # time in which connections come back, and exhaustion pass for an outage.
    # A pool timeout longer than the half second the probe's last outcome is
    # reused: the store's first call asked the server, and that is stale.
    config = PoolConfig(min_size=2, max_size=2, timeout=0.8)
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    if flavour == "sync":
        with PostgresEventStore(
            postgres_dsn, schema=postgres_schema, pool_config=config
        ) as store:
            assert store.stream_version("s") == 0
            with store.pool.connection(), store.pool.connection():
                before = server_faults.sessions_opened(postgres_dsn)
                with pytest.raises(PoolExhaustedError):
                    store.stream_version("s")
                opened = server_faults.sessions_opened(postgres_dsn) - before
            assert store.stream_version("s") == 0
    else:
        async with AsyncPostgresEventStore(
            postgres_dsn, schema=postgres_schema, pool_config=config
        ) as async_store:
            assert await async_store.stream_version("s") == 0
            async with async_store.pool.connection(), async_store.pool.connection():
                before = server_faults.sessions_opened(postgres_dsn)
                with pytest.raises(PoolExhaustedError):
                    await async_store.stream_version("s")
                opened = server_faults.sessions_opened(postgres_dsn) - before
            assert await async_store.stream_version("s") == 0
    assert opened == 1  # the measurement's own second connection


def test_health_reports_latency_schema_version_and_pool_figures(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store(min_size=1, max_size=4)
    report = store.health().to_dict()
    assert report["status"] == "ok"
    assert report["schema_version"] == 3
    assert report["latency_ms"] >= 0
    assert set(report["pool"]) == {
        "min_size",
        "max_size",
        "size",
        "available",
        "in_use",
        "waiting",
        "utilization_pct",
        "timeouts",
    }
    assert report["pool"]["min_size"] == 1
    assert report["pool"]["max_size"] == 4


def test_timeouts_and_application_name_reach_the_connection_settings() -> None:
    config = PoolConfig(
        statement_timeout=1.5, lock_timeout=0.25, application_name="svc"
    )
    with PostgresEventStore(
        "host=/nonexistent options='-c work_mem=8MB'",
        pool_config=config,
        connect_timeout=3.2,
    ) as store:
        kwargs = store.pool.kwargs
        assert isinstance(kwargs, dict)
    assert kwargs["connect_timeout"] == "4"
    assert kwargs["application_name"] == "svc"
    assert kwargs["options"] == (
        "-c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 "
        "-c tcp_keepalives_count=3 -c tcp_user_timeout=30000 "
        "-c work_mem=8MB -c TimeZone=UTC "
        r"-c default_transaction_isolation=read\ committed "
        "-c plan_cache_mode=force_generic_plan "
        "-c statement_timeout=1500 -c lock_timeout=250"
    )
    assert kwargs["autocommit"] is True


def test_keepalives_default_on_both_sides_and_the_dsn_may_change_them() -> None:
    with PostgresEventStore("host=/nonexistent") as store:
        defaults = store.pool.kwargs
    assert isinstance(defaults, dict)
    assert {key: defaults[key] for key in CLIENT_KEEPALIVES} == {
        "keepalives": "1",
        "keepalives_idle": "15",
        "keepalives_interval": "5",
        "keepalives_count": "3",
        "tcp_user_timeout": "30000",
    }
    dsn = (
        "host=/nonexistent keepalives_idle=60 tcp_user_timeout=0 "
        "options='-c tcp_keepalives_idle=60'"
    )
    with PostgresEventStore(dsn) as store:
        kwargs = store.pool.kwargs
        conninfo = store.pool.conninfo
    assert isinstance(kwargs, dict)
    assert isinstance(conninfo, str)
    # The DSN's own values stand: kwargs would override them.
    assert "keepalives_idle" not in kwargs
    assert "tcp_user_timeout" not in kwargs
    assert kwargs["keepalives_count"] == "3"
    assert "keepalives_idle=60" in conninfo
    # Server side: the DSN's options come after the defaults, so they win.
    options = kwargs["options"]
    assert options.index("-c tcp_keepalives_idle=15") < options.index(
        "-c tcp_keepalives_idle=60"
    )


def test_a_store_connection_over_tcp_has_the_keepalive_settings(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # Over TCP (the proxy), libpq applies them to the socket itself.
    with (
        BlackholeProxy(postgres_dsn) as proxy,
        PostgresEventStore(proxy.dsn, schema=postgres_schema) as store,
        store.pool.connection() as conn,
        socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
    ):
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
        keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    assert (keepalive, idle, user_timeout) == (1, 15, 30000)


def test_statement_timeout_is_set_on_the_server_session(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store(statement_timeout=2.0, lock_timeout=0.5)
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
        ).fetchone()
    assert row == ("2s", "500ms")


def test_a_pool_in_another_time_zone_still_reads_times_in_utc(
    postgres_dsn: str, postgres_schema: str
) -> None:
    import datetime as dt  # noqa: PLC0415

    kwargs = {"autocommit": True, "options": "-c TimeZone=Asia/Tokyo"}
    with psycopg_pool.ConnectionPool(postgres_dsn, kwargs=kwargs, open=True) as pool:
        with PostgresEventStore(pool=pool, schema=postgres_schema) as store:
            store.migrate()
            before = dt.datetime.now(dt.UTC)
            store.append("s", [NewEvent("t", {})])
            event = next(iter(store.read_stream("s")))
            wait_for_position(store, event.position)
            (logged,) = store.read_all()
            loaded = store.load("s").events[0]
            store.save_snapshot(Snapshot("s", 1, "state", 1, {}))
            snapshot = store.load_snapshot("s")
        with pool.connection() as conn:
            row = conn.execute("SHOW TimeZone").fetchone()
    assert row == ("Asia/Tokyo",)
    assert snapshot is not None
    for when in (
        event.recorded_at,
        logged.recorded_at,
        loaded.recorded_at,
        snapshot.recorded_at,
    ):
        assert when is not None
        assert when.tzinfo is dt.UTC
        assert abs((when - before).total_seconds()) < 60


def test_a_read_only_server_refuses_appends_as_unavailable_and_still_reads(
    make_store: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    # What a DSN meets after a failover that left it on the old primary,
    # now a standby: every write is refused as read-only.
    writer = make_store()
    writer.append("s", [NewEvent("t", {})])
    read_only = psycopg.conninfo.make_conninfo(
        postgres_dsn, options="-c default_transaction_read_only=on"
    )
    store = make_store(migrate=False, dsn=read_only)
    with pytest.raises(StoreUnavailableError, match="read-only transaction") as caught:
        store.append("s", [NewEvent("t", {})])
    assert isinstance(caught.value.__cause__, pg_errors.ReadOnlySqlTransaction)
    assert store.stream_version("s") == 1


@pytest.mark.parametrize("table", ["schema_migrations", "events"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_health_keeps_to_its_timeout_while_a_migration_holds_a_table(
    postgres_dsn: str, postgres_schema: str, table: str, flavour: str
) -> None:
    # A migration (another process's) holds the table health reads.
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    locked = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.Identifier(postgres_schema, table)
    )
    with psycopg.connect(postgres_dsn) as blocker:
        if flavour == "sync":
            with PostgresEventStore(
                postgres_dsn, schema=postgres_schema, health_timeout=0.5
            ) as store:
                assert store.health().status is HealthStatus.OK  # its pool warm
                blocker.execute(locked)
                started = time.monotonic()
                report = store.health()
        else:
            async with AsyncPostgresEventStore(
                postgres_dsn, schema=postgres_schema, health_timeout=0.5
            ) as async_store:
                assert (await async_store.health()).status is HealthStatus.OK
                blocker.execute(locked)
                started = time.monotonic()
                report = await async_store.health()
        elapsed = time.monotonic() - started
        blocker.rollback()
    # Each statement is cut off at 0.5 s by the server (two of them when the
    # events table is held: the subscriptions' look is dropped).
    assert elapsed < 2.5, f"took {elapsed:.2f} s"
    if table == "schema_migrations":
        assert report.status is HealthStatus.UNAVAILABLE
        assert report.error is not None
        assert "timeout" in report.error.lower()
    else:
        assert report.status is HealthStatus.OK
        assert report.subscriptions == ()


def test_health_is_degraded_and_says_why_when_the_schema_is_at_another_version(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store()
    assert store.health().status is HealthStatus.OK
    migrations = sql.Identifier(postgres_schema, "schema_migrations")
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        # As if a newer release had migrated, then as if the last migration
        # had not run; the rows are put back as they were after each.
        admin.execute(
            sql.SQL(
                "INSERT INTO {} (version, description) VALUES (99, 'ahead')"
            ).format(migrations)
        )
        ahead = store.health()
        admin.execute(sql.SQL("DELETE FROM {} WHERE version = 99").format(migrations))
        removed = admin.execute(
            sql.SQL(
                "DELETE FROM {0} WHERE version = (SELECT max(version) FROM {0}) "
                "RETURNING version, description"
            ).format(migrations)
        ).fetchone()
        assert removed is not None
        behind = store.health()
        admin.execute(
            sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                migrations
            ),
            removed,
        )
    assert (ahead.status, ahead.schema_version) == (HealthStatus.DEGRADED, 99)
    assert ahead.error is not None
    assert "newer than this code" in ahead.error
    assert behind.status is HealthStatus.DEGRADED
    assert behind.schema_version == removed[0] - 1
    assert behind.error is not None
    assert "run migrate()" in behind.error
    assert store.health().status is HealthStatus.OK


@pytest.mark.parametrize("table", ["events", "parked_events"])
def test_health_is_unavailable_when_a_table_is_gone_from_a_migrated_schema(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    table: str,
) -> None:
    # It said OK, while every append failed for the missing table.
    store = make_store()
    store.append("s", _events(1))
    assert store.health().status is HealthStatus.OK
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP TABLE {} CASCADE").format(
                sql.Identifier(postgres_schema, table)
            )
        )
    report = store.health()
    assert report.status is HealthStatus.UNAVAILABLE
    assert report.error is not None
    assert f'"{postgres_schema}"."{table}"' in report.error
    assert "records migration" in report.error


async def test_a_read_made_before_a_fresh_async_store_closed_never_opens_its_pool(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
        migrating.append("s", _events(1))
    store = AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema)
    reading = store.read_stream("s")  # no call yet: the pool is unopened
    await store.close()
    with pytest.raises(StoreClosedError):
        await anext(reading)
    with pytest.raises(StoreClosedError):
        await store._connections.call(
            lambda conn: conn.execute("SELECT 1"), retry=False
        )
    assert store.pool.closed  # never opened: no connections, no workers left behind


def test_an_async_store_used_on_a_second_event_loop_says_so(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # Per-test event loops around one store: the second loop's calls seemed
    # to work, and close() failed with a bare "Event loop is closed".
    store = AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.migrate())
        first.run_until_complete(store.append("s", _events(1), expected_version=0))
        for call in (store.stream_version("s"), store.close()):
            with pytest.raises(ConfigError, match="another event loop"):
                asyncio.run(call)
        # A refused close() leaves the store open, to be closed on its loop.
        assert not store.pool.closed
        assert first.run_until_complete(store.stream_version("s")) == 1
        first.run_until_complete(store.close())
        assert store.closed
        assert store.pool.closed
    finally:
        first.close()


def test_closing_a_closed_async_store_again_on_another_loop_does_nothing(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # A shutdown hook, or a fixture's finalizer, on a loop of its own.
    store = AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema)

    async def use_and_close() -> None:
        await store.migrate()
        await store.close()

    asyncio.run(use_and_close())
    asyncio.run(store.close())
    assert store.closed


def test_a_connect_timeout_at_the_longest_wait_still_connects(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # The direct ask waits connect_timeout + 1 s: past TIMEOUT_MAX that
    # raised OverflowError at the first call.
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, connect_timeout=threading.TIMEOUT_MAX
    ) as store:
        store.migrate()
        assert store.stream_version("s") == 0


async def test_a_first_call_cancelled_as_the_servers_answer_comes_writes_nothing(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # A store's first call asks the server directly, in a thread; on Python
    # 3.11 asyncio.wait_for returned the answer to a task cancelled in the
    # turn it came (gh-86296), and the cancelled append went on to write.
    with PostgresEventStore(postgres_dsn, schema=postgres_schema) as migrating:
        migrating.migrate()
    fresh = AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema)
    try:
        task = asyncio.create_task(fresh.append("s", _events(1)))
        await asyncio.sleep(0)  # the task now awaits the probe's answer
        time.sleep(0.5)  # the probe's thread answers while the loop is held
        asyncio.get_running_loop().call_later(0, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await fresh.stream_version("s") == 0
    finally:
        await fresh.close()


async def test_cancelled_waits_for_a_connection_are_not_pool_timeouts(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # Clients that hang up cancel their requests: a healthy pool must not
    # look as if callers were failing with PoolExhaustedError.
    async with AsyncPostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=1, timeout=0.3),
    ) as store:
        await store.migrate()
        held = await store.pool.getconn()
        try:
            waiting = [asyncio.create_task(store.stream_version("s")) for _ in range(5)]
            deadline = time.monotonic() + 10.0
            while store._pool_metrics().waiting < 5:
                assert time.monotonic() < deadline, "the calls never waited"
                await asyncio.sleep(0.01)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert store._pool_metrics().timeouts == 0
            with pytest.raises(PoolExhaustedError):
                await store.stream_version("s")
            assert store._pool_metrics().timeouts == 1
        finally:
            await store.pool.putconn(held)
