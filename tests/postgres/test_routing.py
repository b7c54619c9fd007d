"""Statements on one stream go to its own hash partitions, placed as the server places them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventstore import NewEvent, Snapshot
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from eventstore.postgres._connections import StoreConnection
from eventstore.postgres._routing import (
    PROBE_STREAM_IDS,
    hash_bytes_extended,
    partition_of,
)

pytestmark = pytest.mark.postgres

_SEEDS = (0, 1, 0x7A5B22367996DCFD, 0xFFFFFFFFFFFFFFFF)
# PostgreSQL's text cannot hold NUL; every other character can be an id.
_IDS = st.text(
    alphabet=st.characters(exclude_characters="\x00", codec="utf-8"),
    max_size=80,
)


@pytest.fixture(scope="module")
def server_conn(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def hashed_table(server_conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A text column partitioned by hash in 7 partitions, as the server places rows."""
    server_conn.execute("CREATE SCHEMA IF NOT EXISTS es_routing_probe")
    server_conn.execute("DROP TABLE IF EXISTS es_routing_probe.placed")
    server_conn.execute(
        "CREATE TABLE es_routing_probe.placed (k text) PARTITION BY HASH (k)"
    )
    for remainder in range(7):
        server_conn.execute(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF es_routing_probe.placed "
                "FOR VALUES WITH (MODULUS 7, REMAINDER {})"
            ).format(
                sql.Identifier("es_routing_probe", f"p{remainder}"),
                sql.Literal(remainder),
            )
        )
    yield "es_routing_probe.placed"
    server_conn.execute("DROP SCHEMA es_routing_probe CASCADE")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream_id=_IDS)
def test_the_hash_is_the_servers_hashtextextended(
    server_conn: psycopg.Connection[Any], stream_id: str
) -> None:
    row = server_conn.execute(
        # The seeds as the server's signed bigints.
        "SELECT "
        + ", ".join(
            f"hashtextextended(%(k)s, {s - (1 << 64) if s >= 1 << 63 else s}::bigint)"
            for s in _SEEDS
        ),
        {"k": stream_id},
    ).fetchone()
    assert row is not None
    for seed, theirs in zip(_SEEDS, row, strict=True):
        # The server's bigint is the same 64 bits, signed.
        assert hash_bytes_extended(stream_id.encode(), seed) == theirs % (1 << 64)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream_ids=st.lists(_IDS, min_size=1, max_size=20))
def test_partition_of_is_where_the_server_puts_a_row(
    server_conn: psycopg.Connection[Any], hashed_table: str, stream_ids: list[str]
) -> None:
    with server_conn.transaction(force_rollback=True):
        server_conn.execute(
            sql.SQL("INSERT INTO {} SELECT unnest(%s::text[])").format(
                sql.SQL(hashed_table)
            ),
            (stream_ids,),
        )
        placed = server_conn.execute(
            "SELECT k, tableoid::regclass::text FROM es_routing_probe.placed"
        ).fetchall()
    assert sorted(placed) == sorted(
        (k, f"es_routing_probe.p{partition_of(k, 7)}") for k in stream_ids
    )


def test_the_probe_ids_cover_every_tail_length_and_several_scripts() -> None:
    # The store checks the server against these before it routes anything.
    assert {len(i.encode()) % 12 for i in PROBE_STREAM_IDS} >= {0, 1, 7}
    assert any(len(i.encode()) > 24 for i in PROBE_STREAM_IDS)
    assert any(not i.isascii() for i in PROBE_STREAM_IDS)


def _stream_in(partition: int, partitions: int, prefix: str = "s") -> str:
    return next(
        f"{prefix}-{n}"
        for n in range(10_000)
        if partition_of(f"{prefix}-{n}", partitions) == partition
    )


def _impatient(dsn: str) -> str:
    """*dsn* with a 2 s lock_timeout: a statement that waits for a lock fails instead."""
    return make_conninfo(dsn, options="-c lock_timeout=2000")


@contextmanager
def _partition_locked(dsn: str, schema: str, remainder: int) -> Iterator[None]:
    """Hold every lock on one partition of each table that would stop a statement touching it."""
    with psycopg.connect(dsn) as locker:
        for table in ("streams", "events", "snapshots"):
            locker.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(schema, f"{table}_p{remainder}")
                )
            )
        yield
        locker.rollback()


def test_a_stream_is_written_and_read_while_another_partition_is_locked(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    # A generic plan on the parent tables locks every partition before it
    # prunes them (and the store's statements run generic plans), so this
    # store's statements would wait for the lock below; on the stream's own
    # partitions they do not. lock_timeout turns a wait into an error. (A
    # stream's first append, expected version 0, goes through the parents.)
    store_factory(partitions=8).migrate()
    store = store_factory(_impatient(postgres_dsn), partitions=8)
    existing = _stream_in(2, 8)
    store.append(existing, [NewEvent("t", {"n": 0})])
    with _partition_locked(postgres_dsn, postgres_schema, 5):
        for _ in range(8):  # past the prepare threshold: the generic plans
            version = store.stream_version(existing)
            store.append(
                existing, [NewEvent("t", {"n": version})], expected_version=version
            )
            store.append(existing, [NewEvent("t", {}), NewEvent("t", {})])
            assert len(list(store.read_stream(existing, limit=3))) == 3
            store.save_snapshot(
                Snapshot(existing, version + 1, "state", 1, {"v": version})
            )
            loaded = store.load(existing)
            assert loaded.snapshot is not None
        assert store.stream_version(existing) == 1 + 8 * 3
    # The stream's rows are where the server itself would have put them.
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        placed = conn.execute(
            sql.SQL("SELECT DISTINCT tableoid::regclass::text FROM {}").format(
                sql.Identifier(postgres_schema, "events")
            )
        ).fetchall()
    assert placed == [(f"{postgres_schema}.events_p2",)]


def test_the_async_store_routes_the_same(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store_factory(partitions=8).migrate()
    stream = _stream_in(6, 8)

    async def run() -> list[int]:
        async with AsyncPostgresEventStore(
            _impatient(postgres_dsn),
            schema=postgres_schema,
        ) as store:
            with _partition_locked(postgres_dsn, postgres_schema, 1):
                for n in range(8):
                    await store.append(stream, [NewEvent("t", {"n": n})])
                return [e.data["n"] async for e in store.read_stream(stream)]

    assert asyncio.run(run()) == list(range(8))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_pool_passed_in_with_another_client_encoding_routes(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    flavour: str,
) -> None:
    # LATIN1 cannot write some of the probe's ids; the probe must not care.
    store_factory(partitions=4).migrate()
    stream = _stream_in(0, 4, prefix="zoë")
    kwargs = {"client_encoding": "LATIN1", "autocommit": True}
    dsn = _impatient(postgres_dsn)
    if flavour == "sync":
        with psycopg_pool.ConnectionPool(
            dsn, kwargs=kwargs, min_size=1, max_size=2
        ) as pool:
            store = PostgresEventStore(pool=pool, schema=postgres_schema)
            with _partition_locked(postgres_dsn, postgres_schema, 3):
                for n in range(4):
                    store.append(stream, [NewEvent("t", {"n": n})])
                read = [e.data["n"] for e in store.read_stream(stream)]
    else:

        async def run() -> list[int]:
            async with psycopg_pool.AsyncConnectionPool(
                dsn, kwargs=kwargs, min_size=1, max_size=2
            ) as pool:
                store = AsyncPostgresEventStore(pool=pool, schema=postgres_schema)
                with _partition_locked(postgres_dsn, postgres_schema, 3):
                    for n in range(4):
                        await store.append(stream, [NewEvent("t", {"n": n})])
                    return [e.data["n"] async for e in store.read_stream(stream)]

        read = asyncio.run(run())
    assert read == list(range(4))


def test_a_store_without_partitions_routes_on_a_partitioned_schema(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store_factory(partitions=4).migrate()
    reader = store_factory(_impatient(postgres_dsn))
    stream = _stream_in(0, 4)
    with _partition_locked(postgres_dsn, postgres_schema, 3):
        for n in range(8):
            reader.append(stream, [NewEvent("t", {"n": n})])
        assert reader.stream_version(stream) == 8


def test_a_store_used_before_its_schema_exists_routes_once_it_is_migrated(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    early = store_factory(_impatient(postgres_dsn))
    with pytest.raises(Exception, match="migrate"):
        early.stream_version("s")
    store_factory(partitions=4).migrate()  # another store, as another process would
    stream = _stream_in(1, 4)
    with _partition_locked(postgres_dsn, postgres_schema, 2):
        for n in range(8):
            early.append(stream, [NewEvent("t", {"n": n})])


def test_partitions_it_cannot_place_a_stream_in_are_used_through_the_parents(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_factory(partitions=4).migrate()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        # Not the layout partitions=N makes: the store cannot know which
        # partition is which by name any more.
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(postgres_schema, "events_p3"),
                sql.Identifier("events_part_three"),
            )
        )
    store = store_factory()
    with caplog.at_level(logging.WARNING, logger="eventstore.postgres"):
        for n in range(40):
            store.append(f"s-{n}", [NewEvent("t", {"n": n})])
    assert "statements go through the parent tables" in caplog.text
    assert [e.data["n"] for e in store.read_all()] == list(range(40))
    assert all(store.stream_version(f"s-{n}") == 1 for n in range(40))


def test_a_connection_keeps_one_cursor_per_append_statement_and_a_bounded_number(
    store_factory: Callable[..., PostgresEventStore],
) -> None:
    # psycopg keeps a cursor's dumpers and loaders only while it runs the
    # same query: appends that alternate between partitions each get theirs.
    store = store_factory(partitions=8, pool_config=PoolConfig(min_size=1, max_size=1))
    store.migrate()
    streams = [_stream_in(r, 8) for r in range(8)]
    for _ in range(3):
        for stream in streams:
            store.append(stream, [NewEvent("t", {})])
    with store.pool.connection() as conn:
        assert isinstance(conn, StoreConnection)
        cursors = conn.append_cursors
        assert cursors is not None
        # Appends with expected ANY to a stream in each partition: one
        # statement per partition, 8 cursors.
        assert len(cursors) == 8
        assert len({id(c) for c in cursors.values()}) == 8
        assert set(cursors) == {
            store._router.for_stream(s).append["any_one"][0] for s in streams
        }
    for n in range(200):  # many statements: the kept cursors stay bounded
        store.append(f"many-{n}", [NewEvent("t", {})], expected_version=0)
        store.append(f"many-{n}", [NewEvent("t", {})], expected_version=1)
    with store.pool.connection() as conn:
        assert isinstance(conn, StoreConnection)
        assert conn.append_cursors is not None
        assert 0 < len(conn.append_cursors) <= 64


def test_a_database_in_another_encoding_is_used_through_the_parents(
    postgres_dsn: str, server_conn: psycopg.Connection[Any]
) -> None:
    # The server hashes an id's bytes in the database's encoding: in LATIN1
    # they are not the UTF-8 ones, and the probe's CJK id cannot be sent.
    server_conn.execute("DROP DATABASE IF EXISTS es_routing_latin1")
    server_conn.execute(
        "CREATE DATABASE es_routing_latin1 ENCODING 'LATIN1' "
        "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )
    try:
        dsn = make_conninfo(postgres_dsn, dbname="es_routing_latin1")
        with PostgresEventStore(dsn, partitions=4) as store:
            store.migrate()
            ids = ["plain", "Überweisung-1", "Ärger-2", "zoë-3"]
            for stream in ids:
                store.append(stream, [NewEvent("t", {"id": stream})])
                store.append(stream, [NewEvent("t", {})], expected_version=1)
            assert [store.stream_version(s) for s in ids] == [2, 2, 2, 2]
            assert [e.data for e in store.read_stream("zoë-3")] == [{"id": "zoë-3"}, {}]
    finally:
        server_conn.execute("DROP DATABASE es_routing_latin1 WITH (FORCE)")


def test_a_connection_keeps_every_partitions_statements_prepared(
    store_factory: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    # psycopg's default of 100 prepared statements per connection would
    # re-plan the least used ones of 16 partitions on every turn.
    store = store_factory(partitions=16, pool_config=PoolConfig(min_size=1, max_size=1))
    store.migrate()
    for n in range(160):
        stream = f"s-{n}"
        store.append(stream, [NewEvent("t", {})], expected_version=0)
        store.append(stream, [NewEvent("t", {})], expected_version=1)
        store.append(stream, [NewEvent("t", {}), NewEvent("t", {})])
        store.append(stream, [NewEvent("t", {}), NewEvent("t", {})], expected_version=4)
        assert len(list(store.read_stream(stream))) == store.stream_version(stream) == 6
        store.save_snapshot(Snapshot(stream, 6, "state", 1, {}))
        assert store.load(stream).snapshot is not None
        assert store.load_snapshot(stream) is not None
    with store.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert row is not None
        assert 120 < row[0] <= PoolConfig().prepared_statements
        assert conn.prepared_max == PoolConfig().prepared_statements


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_pool_config_sets_how_many_statements_a_connection_keeps_prepared(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    flavour: str,
) -> None:
    config = PoolConfig(min_size=1, max_size=1, prepared_statements=5)
    if flavour == "async":
        async with AsyncPostgresEventStore(
            postgres_dsn, schema=postgres_schema, pool_config=config
        ) as async_store:
            await async_store.migrate()
            await async_store.append("s", [NewEvent("t", {})])
            async with async_store.pool.connection() as async_conn:
                assert async_conn.prepared_max == 5
        return
    store = store_factory(partitions=4, pool_config=config)
    store.migrate()
    for n in range(40):  # 4 partitions' statements, each called 5+ times
        store.append(f"s-{n}", [NewEvent("t", {})])
        store.stream_version(f"s-{n}")
    with store.pool.connection() as conn:
        assert conn.prepared_max == 5
        row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert row is not None
        assert 0 < row[0] <= 5
