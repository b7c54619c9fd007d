"""Schema v2: partition-ready keys, the upgrade of a populated v1 schema, and hash partitions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from eventstore import (
    ConfigError,
    DuplicateEventError,
    InvalidArgumentError,
    NewEvent,
    Snapshot,
)
from eventstore.postgres import PostgresEventStore
from eventstore.postgres._sql import LATEST_MIGRATION, MAX_PARTITIONS
from eventstore.testing.postgres_server import EmbeddedServer
from tests.postgres.fixtures.make_v1_fixture import event_dict, snapshot_dict

pytestmark = pytest.mark.postgres

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_SCHEMA = "es_v1_fixture"


def load_v1_fixture(dsn: str, schema: str) -> None:
    text = (FIXTURES / "v1_schema.sql").read_text(encoding="utf-8")
    # pg_dump's \restrict lines are psql commands, not SQL.
    # split("\n"), not splitlines(): a payload holds a U+2028 line separator.
    script = "\n".join(line for line in text.split("\n") if not line.startswith("\\"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script.replace(FIXTURE_SCHEMA, schema).encode())


def indexes(dsn: str, schema: str, table: str) -> set[tuple[str, tuple[str, ...]]]:
    """Each index of *table*: its kind (primary, unique, plain) and its columns."""
    query = """
        SELECT CASE WHEN i.indisprimary THEN 'primary'
                    WHEN i.indisunique THEN 'unique' ELSE 'plain' END,
               array_agg(a.attname::text ORDER BY k.ord)
        FROM pg_index AS i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = to_regclass(%s)
        GROUP BY i.indexrelid, i.indisprimary, i.indisunique
    """
    name = sql.Identifier(schema, table).as_string(None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(query, (name,)).fetchall()
    return {(kind, tuple(columns)) for kind, columns in rows}


V2_EVENT_INDEXES = {
    ("primary", ("stream_id", "version")),
    ("unique", ("stream_id", "event_id")),
    ("plain", ("transaction_id", "position")),
}


def test_a_populated_v1_schema_migrates_to_v2_and_reads_back_identical(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    load_v1_fixture(postgres_dsn, postgres_schema)
    expected = json.loads((FIXTURES / "v1_expected.json").read_text(encoding="utf-8"))
    store = store_factory()
    assert store.health().schema_version == 1
    assert ("primary", ("position",)) in indexes(
        postgres_dsn, postgres_schema, "events"
    )

    assert store.migrate() == 3
    assert store.migrate() == 3

    assert indexes(postgres_dsn, postgres_schema, "events") == V2_EVENT_INDEXES
    log = store.read_all(limit=10_000)
    assert [event_dict(e) for e in log] == expected["read_all"]
    assert len(log) == 131
    for stream_id, want in expected["streams"].items():
        assert store.stream_version(stream_id) == want["version"], stream_id
        assert [event_dict(e) for e in store.read_stream(stream_id)] == want["events"]
        assert snapshot_dict(store.load_snapshot(stream_id)) == want["snapshot"]
    long = store.load("long")
    assert long.snapshot is not None
    assert (long.snapshot.version, len(long.events)) == (120, 0)


def test_after_the_upgrade_ids_are_unique_per_stream_and_appends_go_on(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    load_v1_fixture(postgres_dsn, postgres_schema)
    store = store_factory()
    store.migrate()
    (first,) = store.read_stream("order-1", limit=1)
    last_before = store.read_all(limit=10_000)[-1].position
    reused = NewEvent("order.copied", {}, event_id=first.event_id)
    # The same id in another stream is another event now (it was refused in v1).
    result = store.append("order-3", [reused], expected_version=0)
    assert result.version == 1
    # The identity column goes on from the v1 sequence.
    assert result.positions[0] > last_before
    assert result.positions[0].position == last_before.position + 1
    with pytest.raises(DuplicateEventError):
        store.append("order-1", [reused, NewEvent("order.more", {})])
    appended = store.append("order-1", [NewEvent("order.more", {})], expected_version=3)
    assert appended.version == 4


def test_an_id_of_another_stream_on_a_v1_schema_not_migrated_says_to_migrate(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    # v1's global key on event ids refuses what v2 allows: the error must
    # point at migrate(), not read as a failure of the server.
    load_v1_fixture(postgres_dsn, postgres_schema)
    store = store_factory()
    (first,) = store.read_stream("order-1", limit=1)
    reused = NewEvent("order.copied", {}, event_id=first.event_id)
    with pytest.raises(ConfigError, match=r"migrate\(\)") as caught:
        store.append("order-3", [reused], expected_version=0)
    assert isinstance(caught.value.__cause__, pg_errors.UniqueViolation)
    assert store.stream_version("order-3") == 0
    store.migrate()
    assert store.append("order-3", [reused], expected_version=0).version == 1


@pytest.mark.parametrize("partitions", [None, 4])
def test_a_new_schema_has_only_the_v2_keys(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    partitions: int | None,
) -> None:
    store = store_factory(partitions=partitions)
    assert store.migrate() == 3
    assert indexes(postgres_dsn, postgres_schema, "events") == V2_EVENT_INDEXES
    assert indexes(postgres_dsn, postgres_schema, "streams") == {
        ("primary", ("stream_id",))
    }
    assert indexes(postgres_dsn, postgres_schema, "snapshots") == {
        ("primary", ("stream_id", "version"))
    }
    report = store.health()
    assert report.partitions == (partitions or 1)
    assert report.to_dict()["partitions"] == (partitions or 1)


def partition_rows(dsn: str, schema: str, table: str) -> dict[str, int]:
    query = sql.SQL(
        "SELECT tableoid::regclass::text, count(*) FROM {} GROUP BY 1"
    ).format(sql.Identifier(schema, table))
    with psycopg.connect(dsn, autocommit=True) as conn:
        return dict(conn.execute(query).fetchall())


def test_partitions_spread_every_table_by_stream(
    store_factory: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = store_factory(partitions=4)
    store.migrate()
    for n in range(40):
        store.append(f"s-{n}", [NewEvent("t", {"n": n}), NewEvent("t", {})])
        store.save_snapshot(Snapshot(f"s-{n}", 2, "state", 1, {"n": n}))
    for table in ("streams", "events", "snapshots"):
        rows = partition_rows(postgres_dsn, postgres_schema, table)
        assert set(rows) == {f"{postgres_schema}.{table}_p{i}" for i in range(4)}, table
        assert sum(rows.values()) == (80 if table == "events" else 40)
    assert [e.data for e in store.read_stream("s-7")] == [{"n": 7}, {}]


def test_the_layout_is_fixed_when_the_schema_is_created(
    store_factory: Callable[..., PostgresEventStore],
) -> None:
    store_factory(partitions=4).migrate()
    with pytest.raises(ConfigError) as caught:
        store_factory(partitions=8).migrate()
    assert "exists with 4 hash partitions" in str(caught.value)
    assert "partitions=8" in str(caught.value)
    # Unset, a store uses the schema as it is.
    reader = store_factory()
    assert reader.migrate() == 3
    assert reader.health().partitions == 4


def test_partitions_cannot_be_asked_of_an_existing_plain_schema(
    store_factory: Callable[..., PostgresEventStore],
) -> None:
    store_factory().migrate()
    with pytest.raises(ConfigError, match="exists with one plain table per role"):
        store_factory(partitions=2).migrate()


@pytest.mark.parametrize("partitions", [0, 1, 1025, True, 2.0, "8"])
def test_a_bad_partition_count_is_refused_at_construction(
    postgres_dsn: str, partitions: Any
) -> None:
    with pytest.raises(InvalidArgumentError, match="partitions"):
        PostgresEventStore(postgres_dsn, partitions=partitions)


def columns(dsn: str, schema: str, table: str) -> list[tuple[Any, ...]]:
    query = """
        SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity
        FROM pg_attribute AS a
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
    """
    name = sql.Identifier(schema, table).as_string(None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, (name,)).fetchall()


def test_the_partitioned_layout_has_the_columns_the_migrations_make(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # The partitioned layout is created at once, not by migrations 1 and 2:
    # it must not drift from what they make.
    plain, hashed = postgres_schema, postgres_schema + "_hash"
    with (
        PostgresEventStore(postgres_dsn, schema=plain) as one,
        PostgresEventStore(postgres_dsn, schema=hashed, partitions=2) as two,
    ):
        one.migrate()
        two.migrate()
        try:
            for table in ("streams", "events", "snapshots", "schema_migrations"):
                made = columns(postgres_dsn, plain, table)
                assert made, table
                assert columns(postgres_dsn, hashed, table) == made, table
        finally:
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(hashed))
                )


def test_partitions_more_than_the_servers_lock_table_holds_are_a_config_error() -> None:
    # A small lock table (10 x 20 connections, and the slack of the server's
    # shared memory, which holds 512 partitions): the most partitions, 1,024,
    # take some 27,000 locks in the one migration transaction.
    settings = {"max_locks_per_transaction": "10", "max_connections": "20"}
    with EmbeddedServer.start(settings) as server:
        with PostgresEventStore(
            server.dsn, schema="many", partitions=MAX_PARTITIONS
        ) as store:
            with pytest.raises(
                ConfigError, match="max_locks_per_transaction"
            ) as caught:
                store.migrate()
            assert isinstance(caught.value.__cause__, pg_errors.OutOfMemory)
        # Nothing of it was left: the schema can still be made another way.
        with PostgresEventStore(server.dsn, schema="many", partitions=2) as store:
            assert store.migrate() == LATEST_MIGRATION
            assert store.health().partitions == 2
